"""Test helper for notecard-sim (Debian's /usr/bin/python3, stdlib; python3-jsonschema only
when NOTEGW_SCHEMA_DIR asks for Blues' schemas too).

    import sys, os; sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "lib"))
    from sim import Sim, validate_log

    with Sim(serial=True) as s:             # or Sim(i2c=True), or both
        s.serial_path                       # pty for [notecard] device (transport = serial)
        s.i2c_env()                         # env for a program under the I2C shim (see below)
        s.inject("data.qi", {"cmd": "on"})  # inbound note, delivered at the next sync
        s.env({"threshold": "5"})           # env var on the hub
        s.fault("io", p=0.2)                # 20% {io} errors; s.clear_faults()
        s.sync(); s.hub_notes()             # what reached "Notehub"
        s.counters(); s.attn(); s.files()
        s.request_log()                     # every transaction: req/rsp parsed, *_raw as sent
        assert not s.problems()             # no internal errors in the simulator
    validate_log(s.log_path)                # every request/response against api.json

I2C: the daemon is run with s.i2c_env(binary) merged into its environment: LD_PRELOAD names the
shim (tests/lib/.libs/libi2cshim.so in the build tree; with libasan first when the binary is
linked against gcc's libasan) and NOTEGW_I2C_SIM the simulator's socket. Its config then says
transport = i2c, device = /dev/i2c-1 (any /dev/i2c-N reaches the simulator), address = 0x17.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zlib

TOP_SRCDIR = os.environ.get("top_srcdir",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOP_BUILDDIR = os.environ.get("top_builddir", TOP_SRCDIR)
PYTHON = "/usr/bin/python3"


def sim_program():
    """The notecard-sim launcher from the source tree (or $NOTECARD_SIM)."""
    return os.environ.get("NOTECARD_SIM", os.path.join(TOP_SRCDIR, "sim", "notecard-sim"))


def built_shim(name):
    """A test library `make check` built under tests/lib (libtool puts it in .libs), e.g.
    "libi2cshim.so"; None when this build has none."""
    for d in (os.path.join(TOP_BUILDDIR, "tests", "lib", ".libs"),
              os.path.join(TOP_BUILDDIR, "tests", "lib")):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def shim_path():
    """The I2C LD_PRELOAD shim (tests/lib/i2c_shim.c)."""
    return built_shim("libi2cshim.so")


def asan_runtime(binary):
    """Path of the dynamic ASan runtime `binary` needs first in LD_PRELOAD, or None."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    return None


class SimError(Exception):
    pass


class Sim:
    def __init__(self, serial=False, i2c=False, args=(), workdir=None, timing="fast",
                 hub_mode=None, state=None):
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="ncsim-")
        self.control_path = os.path.join(self.dir, "control.sock")
        self.i2c_path = os.path.join(self.dir, "i2c.sock") if i2c else None
        self.hub_path = os.path.join(self.dir, "hub.jsonl")
        self.log_path = os.path.join(self.dir, "card.log")
        self.inbound_dir = os.path.join(self.dir, "inbound")
        self.state_dir = state or os.path.join(self.dir, "state")
        self.info_path = os.path.join(self.dir, "info.json")
        os.makedirs(self.inbound_dir, exist_ok=True)
        cmd = [PYTHON, sim_program(), "--control", self.control_path, "--hub", self.hub_path,
               "--log", self.log_path, "--inbound", self.inbound_dir, "--state", self.state_dir,
               "--info", self.info_path, "--timing", timing, "--seed", "1"]
        if serial:
            cmd.append("--serial")
        if i2c:
            cmd += ["--i2c", self.i2c_path]
        cmd += list(args)
        self.cmd = cmd
        self.stderr = open(os.path.join(self.dir, "sim.stderr"), "w")
        # unbuffered bytes, so select() below sees exactly what has not been read yet
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, bufsize=0)
        self.serial_path = None
        import select
        end = time.monotonic() + 30
        while True:
            if not select.select([self.proc.stdout], [], [], max(0, end - time.monotonic()))[0]:
                self.proc.kill()
                raise SimError("notecard-sim did not get ready: " + self.read_stderr())
            line = self.proc.stdout.readline()
            if not line:
                raise SimError("notecard-sim exited early: " + self.read_stderr())
            line = line.decode().strip()
            if line.startswith("serial: "):
                self.serial_path = line[8:]
            if line == "ready":
                break
        self._ctl = None
        self._ctl_lock = threading.Lock()  # one command and its reply at a time

    def read_stderr(self):
        self.stderr.flush()
        with open(os.path.join(self.dir, "sim.stderr")) as f:
            return f.read()

    # ---- control socket --------------------------------------------------------------
    def control(self, cmd, **kw):
        """Send one control command; returns its reply (raises SimError on ok:false)."""
        kw["cmd"] = cmd
        # a test's watcher thread shares the connection: without the lock one thread
        # could read the other's reply
        with self._ctl_lock:
            if self._ctl is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.control_path)
                self._ctl = (s, s.makefile("rwb"))
            f = self._ctl[1]
            f.write(json.dumps(kw).encode() + b"\n")
            f.flush()
            line = f.readline()
        if not line:
            raise SimError("control socket closed")
        rep = json.loads(line)
        if not rep.get("ok"):
            raise SimError(rep.get("error", "control command failed"))
        return rep

    def inject(self, file, body=None, payload=None, note=None, now=False, **kw):
        kw.update({"file": file, "now": now})
        if body is not None:
            kw["body"] = body
        if payload is not None:
            kw["payload"] = payload if isinstance(payload, str) else \
                base64.b64encode(payload).decode()
        if note is not None:
            kw["note"] = note
        return self.control("inject", **kw)

    def env(self, vars, now=False):
        return self.control("env", vars=vars, now=now)

    def sync(self):
        return self.control("sync")["synced"]

    def fault(self, name, p=None, count=None):
        kw = {"name": name}
        if p is not None:
            kw["p"] = p
        if count is not None:
            kw["count"] = count
        return self.control("fault", **kw)

    def clear_faults(self):
        return self.control("clear_faults")

    def counters(self):
        return self.control("counters")["counters"]

    def hub_notes(self):
        return self.control("hub")["events"]

    def hub_file_events(self):
        """The events in the hub file (it outlives a simulator restart, unlike hub_notes()).
        Read while the simulator may be appending: a last line without its newline is still
        arriving and is left for the next read; any whole line that is not JSON is an error."""
        try:
            with open(self.hub_path) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        lines = text.split("\n")
        return [json.loads(x) for x in lines[:-1] if x.strip()]

    def attn(self):
        return self.control("attn")

    def files(self):
        return self.control("files")["files"]

    def request_log(self, since=0):
        """Every transaction the card saw: dicts with t, transport, req and rsp (parsed; req is
        {} when it was not JSON, rsp None when there was no answer), req_raw and rsp_raw (the
        exact text), and fault when a fault ate it."""
        return self.control("log", since=since)["log"]

    def gone(self, seconds, open_fails=False):
        """The card disappears for `seconds`: i2c NACKs (and with open_fails, opening the bus
        fails with ENODEV), serial answers nothing. back() ends it early."""
        return self.control("gone", seconds=seconds, open_fails=open_fails)

    def back(self):
        return self.control("back")

    def unplug(self, seconds=None):
        """Serial: the USB card re-enumerates — its pty closes (hangup for the host) and the
        --serial-link symlink vanishes until replug() (or `seconds` later)."""
        kw = {"seconds": seconds} if seconds else {}
        return self.control("unplug", **kw)

    def replug(self):
        """Serial: a new pty; returns its path (the --serial-link points at it)."""
        self.serial_path = self.control("replug")["serial"]
        return self.serial_path

    def wait_for(self, pred, timeout=10.0, what="condition"):
        """Poll pred() until it is true (a readiness wait, not a timed assertion)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = pred()
            if v:
                return v
            time.sleep(0.02)
        raise SimError("timed out waiting for " + what)

    def problems(self):
        """The simulator's own trouble (empty when healthy): internal errors, answers outside
        api.json, tracebacks.
        Call before stop(); a test that drove the card should check it is empty."""
        out = []
        n = self.counters().get("internal_errors", 0)
        if n:
            out.append("notecard-sim: %d internal errors" % n)
        n = self.counters().get("api_errors", 0)
        if n:
            out.append("notecard-sim: %d answers outside api.json" % n)
        if "Traceback" in self.read_stderr():
            out.append("notecard-sim stderr: " + self.read_stderr()[-2000:])
        return out

    def i2c_env(self, binary=None):
        """Environment variables that put `binary` on the simulated I2C bus."""
        shim = shim_path()
        if shim is None:
            raise SimError("libi2cshim.so not built (make check builds it)")
        pre = [shim]
        if binary:
            asan = asan_runtime(binary)
            if asan:
                pre.insert(0, asan)
        return {"LD_PRELOAD": " ".join(pre), "NOTEGW_I2C_SIM": self.i2c_path}

    # ---- lifecycle -----------------------------------------------------------------
    def stop(self):
        """Stop the simulator; returns its exit status."""
        if self._ctl:
            try:
                self._ctl[1].close()
                self._ctl[0].close()
            except OSError:
                pass
            self._ctl = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode

    def cleanup(self):
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is None:
            self.cleanup()
        else:
            print("notecard-sim workdir kept: %s" % self.dir)


# ---- a minimal wire-protocol client (serial pty) ---------------------------------------
def crc_add(text, seq):
    """note-c's crcAdd: the request text with its crc field appended."""
    c = zlib.crc32(text) & 0xFFFFFFFF
    sep = b" " if b":" not in text else b","
    return text[:-1] + sep + b'"crc":"%04X:%08X"}' % (seq, c)


def crc_check(line, seq):
    """(ok, text_without_crc) for a response line, as note-c's crcError checks it."""
    line = line.rstrip(b"\r\n")
    if len(line) < 24 or not line.endswith(b"}") or line[-22:-16] != b'"crc":':
        return None, line
    off = len(line) - 1 - 22
    text = line[:off] + b"}"
    got_seq = int(line[off + 8:off + 12], 16)
    got_crc = int(line[off + 13:off + 21], 16)
    return (got_seq == seq and got_crc == (zlib.crc32(text) & 0xFFFFFFFF)), text


class SerialClient:
    """Talks to the simulator's pty byte by byte, the way a host does."""

    def __init__(self, path, timeout=5.0):
        import termios
        import tty
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.timeout = timeout
        self.seq = 0

    def close(self):
        os.close(self.fd)

    def write(self, data):
        os.write(self.fd, data)

    def readline(self, timeout=None):
        """Bytes up to and including \\n, or what arrived before the timeout."""
        import select
        buf = b""
        end = time.monotonic() + (timeout or self.timeout)
        while not buf.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                buf += os.read(self.fd, 1)
        return buf

    def drain(self, quiet=0.1):
        import select
        got = b""
        while True:
            r, _, _ = select.select([self.fd], [], [], quiet)
            if not r:
                return got
            got += os.read(self.fd, 4096)

    def resync(self, quiet=0.3):
        """The host's reset: write a newline, drain; True when only CR/LF came back."""
        self.write(b"\n")
        got = self.drain(quiet)
        return got != b"" and got.strip(b"\r\n") == b""

    def raw(self, line, timeout=None):
        """Send a raw request line (bytes, without newline); return the raw response line."""
        self.write(line + b"\n")
        return self.readline(timeout)

    def request(self, obj, crc=True, seq=None):
        """Send a request object; returns the parsed response (crc verified and removed)."""
        text = json.dumps(obj, separators=(",", ":")).encode()
        s = self.seq if seq is None else seq
        if crc and "req" in obj:
            text = crc_add(text, s)
        if "cmd" in obj and "req" not in obj:
            self.write(text + b"\n")
            return None
        line = self.raw(text)
        if seq is None:
            self.seq = (self.seq + 1) & 0xFFFF
        if crc:
            ok, body = crc_check(line, s)
            if ok is False:
                raise SimError("crc mismatch in %r" % line)
            if ok is None:
                raise SimError("no crc in %r" % line)
            line = body
        return json.loads(line)


# ---- checking against the API description ----------------------------------------------
# Always against the project's own description (sim/notecard_sim/api.json, through
# apicheck.py); also against Blues' published schema set when NOTEGW_SCHEMA_DIR names it (an
# optional extra: python3-jsonschema; docs/notecard-api.md lists where the two differ).
def api():
    """The project's description of the Notecard API (notecard_sim.apicheck.API)."""
    import sys
    d = os.path.join(TOP_SRCDIR, "sim")
    if d not in sys.path:
        sys.path.insert(0, d)
    from notecard_sim import apicheck
    return apicheck.default()


def schema_dir():
    """Blues' schema set (NOTEGW_SCHEMA_DIR), or None when the variable is not set."""
    return os.environ.get("NOTEGW_SCHEMA_DIR") or None


_schemas = {}


def _validator(name, kind):
    from jsonschema import Draft202012Validator
    key = (name, kind)
    if key not in _schemas:
        p = os.path.join(schema_dir(), "%s.%s.notecard.api.json" % (name, kind))
        if not os.path.exists(p):
            _schemas[key] = None
        else:
            with open(p) as f:
                _schemas[key] = Draft202012Validator(json.load(f))
    return _schemas[key]


def _strip_transport(text):
    """Parse a logged line and drop the transport's own fields (crc, id)."""
    raw = text.encode("utf-8")
    line = raw.rstrip(b"\r\n")
    if line.endswith(b"}") and b'"crc":"' in line[-23:]:
        line = line[:len(line) - 1 - 22] + b"}"
    obj = json.loads(line)
    obj.pop("crc", None)
    obj.pop("id", None)
    return obj


def validate_exchange(req_text, rsp_text):
    """Problems (list of strings) of one request/response pair, as sent on the wire.

    Against api.json: the envelope (req/cmd, id echoed, crc form, sequence and value), the
    request's fields and the answer's (an error answer must be {"err": string}). A request
    api.json does not describe is a problem. With NOTEGW_SCHEMA_DIR set, also against Blues'
    schemas (after removing crc and id, which they do not describe)."""
    problems = api().check_exchange(req_text, rsp_text)
    if schema_dir():
        problems += ["Blues schema: " + p for p in validate_blues(req_text, rsp_text)]
    return problems


def validate_blues(req_text, rsp_text):
    """Problems of one request/response pair against Blues' schemas in NOTEGW_SCHEMA_DIR.

    The request is checked against <name>.req; the response against <name>.rsp unless it is an
    error (`err` present: the schemas describe successes only; an error must be
    {"err": string}). A request the card could not parse is a problem; a request naming a
    request with no schema is a problem."""
    problems = []
    try:
        req = _strip_transport(req_text)
    except ValueError as e:
        return ["request is not JSON (%s): %r" % (e, req_text)]
    name = req.get("req") or req.get("cmd")
    if not isinstance(name, str):
        return ["request has neither req nor cmd: %r" % req_text]
    v = _validator(name, "req")
    if v is None:
        return ["no schema for request %r" % name]
    for e in v.iter_errors(req):
        problems.append("%s request: %s (%s)" % (name, e.message, req_text))
    if rsp_text is None:
        return problems
    try:
        rsp = _strip_transport(rsp_text)
    except ValueError as e:
        return problems + ["response is not JSON (%s): %r" % (e, rsp_text)]
    if "err" in rsp:
        if not isinstance(rsp["err"], str) or set(rsp) - {"err"}:
            problems.append("%s error response malformed: %r" % (name, rsp_text))
        return problems
    v = _validator(name, "rsp")
    if v is None:
        return problems + ["no schema for response of %r" % name]
    for e in v.iter_errors(rsp):
        problems.append("%s response: %s (%s)" % (name, e.message, rsp_text))
    return problems


def validate_log(logfile, skip_unparsable=False, validate=None):
    """Check every request (and its response) in a --log file; returns a list of problems.

    `validate` checks one pair (default validate_exchange: api.json, and Blues' schemas when
    NOTEGW_SCHEMA_DIR is set). A req logged without an answer is a problem unless the
    simulator logged a fault that swallowed it. Blank lines (resync newlines) are skipped.
    With skip_unparsable, requests that are not JSON (deliberately garbled by a test, or a
    fault) are skipped too."""
    if schema_dir() and not os.path.isdir(schema_dir()):
        return ["NOTEGW_SCHEMA_DIR is not a directory: %s" % schema_dir()]
    validate = validate or validate_exchange
    problems = []
    with open(logfile) as f:
        for n, line in enumerate(f, 1):
            e = json.loads(line)
            if not e["req_raw"].strip():
                continue
            if skip_unparsable:
                try:
                    _strip_transport(e["req_raw"])
                except ValueError:
                    continue
            rsp = e.get("rsp_raw") or None
            if rsp is None and "req" in (e.get("req") or {}) and "fault" not in e:
                problems.append("%s:%d: a req got no answer: %s" % (logfile, n, e["req_raw"]))
            for p in validate(e["req_raw"], rsp):
                problems.append("%s:%d: %s" % (logfile, n, p))
    return problems
