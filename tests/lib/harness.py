"""Test harness for notegw integration tests (Debian's /usr/bin/python3, stdlib only).

Starts the real programs from the build tree in a temporary directory and stops them
afterwards: the daemon (Daemon), a mosquitto broker on a free loopback port (Broker).
The simulator has its own helper in tests/lib/sim.py.

    from harness import Daemon, Broker, TestDir, free_port, wait_for
    with TestDir("mytest") as d:
        gw = Daemon(d, {"notecard": {...}, "store": {...}}, plugins=["example"])
        gw.start()
        rc, out, err = gw.cli("status", "--json")
        gw.stop()
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP_SRCDIR = os.environ.get("top_srcdir", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOP_BUILDDIR = os.environ.get("top_builddir", TOP_SRCDIR)
NOTEGWD = os.path.join(TOP_BUILDDIR, "notegwd")
NOTEGW = os.path.join(TOP_BUILDDIR, "notegw")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fail(msg):
    log("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def skip(msg):
    print("SKIP:", msg, flush=True)
    sys.exit(77)


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=20.0, step=0.05, what="condition"):
    """Poll pred() until it returns a true value; fail the test after timeout."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            fail("timed out waiting for " + what)
        time.sleep(step)


def plugin_so(name):
    """Path of a built plugin (libtool keeps it under .libs)."""
    for d in (os.path.join(TOP_BUILDDIR, "plugins", name, ".libs"),
              os.path.join(TOP_BUILDDIR, "plugins", "example", ".libs")):
        p = os.path.join(d, name + ".so")
        if os.path.exists(p):
            return p
    return None


class TestDir:
    """A temporary directory removed at the end unless the test failed (kept for logs)."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="notegw-%s-" % name)
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep cleaning up
                log("cleanup:", e)
        if et is None or et is SystemExit and ev.code == 0:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            log("test files kept in", self.path)
        return False

    def file(self, *parts):
        return os.path.join(self.path, *parts)


def render_config(sections):
    """INI text from {section: {key: value}} (values str/int/bool)."""
    out = []
    for sec, keys in sections.items():
        out.append("[%s]" % sec)
        for k, v in keys.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class Daemon:
    """notegwd from the build tree with a config of its own in a TestDir."""

    def __init__(self, tdir, sections, plugins=(), name="gw", env=None, valgrind=False):
        self.t = tdir
        self.name = name
        self.dir = tdir.file(name)
        os.makedirs(self.dir, exist_ok=True)
        self.plugin_dir = os.path.join(self.dir, "plugins")
        os.makedirs(self.plugin_dir, exist_ok=True)
        for p in plugins:
            so = plugin_so(p)
            if not so:
                fail("plugin %s is not built" % p)
            dst = os.path.join(self.plugin_dir, p + ".so")
            if not os.path.exists(dst):
                os.symlink(so, dst)
        self.socket = os.path.join(self.dir, "control.sock")
        self.store = os.path.join(self.dir, "store.db")
        self.logfile = os.path.join(self.dir, "notegwd.log")
        base = {
            "daemon": {"plugin_dir": self.plugin_dir, "state_dir": self.dir, "log_level": "debug"},
            "store": {"path": self.store},
            "control": {"socket": self.socket},
        }
        for sec, keys in sections.items():
            base.setdefault(sec, {}).update(keys)
        self.sections = base
        self.config = os.path.join(self.dir, "notegw.conf")
        self.write_config()
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        self.valgrind = valgrind
        self.proc = None
        tdir.procs.append(self)

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(render_config(self.sections))

    def start(self, wait=True):
        cmd = [NOTEGWD, "-f", "-c", self.config]
        if self.valgrind:
            cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                   "--quiet"] + cmd
        self.logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                fail("notegwd exited with %s during start; log:\n%s" % (self.proc.returncode, self.log_text()))
            rc, _, _ = self.cli("status", "--json", check_rc=False)
            return rc == 0
        wait_for(ready, timeout, 0.1, "notegwd to answer on its control socket")

    def log_text(self):
        try:
            with open(self.logfile, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cli(self, *args, input=None, check_rc=True, timeout=60, env=None, user=None):
        cmd = [NOTEGW, "-s", self.socket] + list(args)
        p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                           env=env or self.env, user=user)
        if check_rc and p.returncode != 0:
            fail("notegw %s exited %d: %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p.returncode, p.stdout, p.stderr

    def status(self):
        _, out, _ = self.cli("status", "--json")
        return json.loads(out)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL: a crash, nothing flushed."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout=20):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("notegwd did not stop on SIGTERM within %ss" % timeout)
        self.logf.close()
        return self.proc.returncode


class Broker:
    """mosquitto on a free 127.0.0.1 port, persistence in the test dir. A test that
    gives clients a name sets bind to it before start(): mosquitto then listens on
    every address the name resolves to."""

    def __init__(self, tdir, name="broker", extra=""):
        self.t = tdir
        self.dir = tdir.file(name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        self.extra = extra
        self.bind = "127.0.0.1"
        self.proc = None
        tdir.procs.append(self)

    def start(self):
        if not shutil.which("mosquitto") and not os.path.exists("/usr/sbin/mosquitto"):
            skip("mosquitto is not installed")
        with open(self.conf, "w") as f:
            f.write("listener %d %s\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\nautosave_interval 1\n%s\n"
                    % (self.port, self.bind, self.dir, self.extra))
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.logf = open(os.path.join(self.dir, "mosquitto.log"), "ab")
        self.proc = subprocess.Popen([exe, "-c", self.conf], stdout=self.logf, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                fail("mosquitto exited: see %s" % self.dir)
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return True
            except OSError:
                return False
        wait_for(up, 10, 0.05, "mosquitto to listen")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
