"""Helpers for the MQTT tests: the plugin's stand-in host (tests/unit/mqtt_fakehost),
a broker that may run as root, and a publisher thread that records what was acked."""
import json
import os
import pwd
import queue
import signal
import subprocess
import threading
import time

from harness import TOP_BUILDDIR, Broker, Daemon, fail, log, wait_for
from mqttmini import Client, MqttError

FAKEHOST = os.path.join(TOP_BUILDDIR, "tests", "unit", "mqtt_fakehost")
MQTT_SO = os.path.join(TOP_BUILDDIR, "plugins", "mqtt", ".libs", "mqtt.so")
BROKER_SO = os.path.join(TOP_BUILDDIR, "plugins", "mqtt", ".libs", "notegw_broker.so")


def sanitizer_env(so):
    """A plugin built with ASan/UBSan needs their runtimes loaded first in mosquitto,
    which is not built with them; mosquitto's own allocations are not ours to judge."""
    p = subprocess.run(["ldd", so], capture_output=True, text=True)
    libs = [l.split("=>")[1].split()[0] for l in p.stdout.splitlines()
            if "=>" in l and ("libasan" in l or "libubsan" in l)]
    if not libs:
        return {}
    return {"LD_PRELOAD": " ".join(libs), "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1"}


class PluginBroker(Broker):
    """A Broker that loads notegw_broker.so (with the sanitizer runtimes if needed)."""

    def start(self):
        saved = dict(os.environ)
        os.environ.update(sanitizer_env(BROKER_SO))
        try:
            return super().start()
        finally:
            os.environ.clear()
            os.environ.update(saved)


def broker(tdir, name="broker", extra=""):
    """mosquitto drops root for user "mosquitto", which cannot write the test's
    private temp dir: keep the current user (ignored when not root)."""
    me = pwd.getpwuid(os.getuid()).pw_name
    cls = PluginBroker if BROKER_SO in extra else Broker
    return cls(tdir, name, "user %s\n%s" % (me, extra))


def share_gateway(d, s, port, i, client_prefix, **mqtt):
    """Gateway i of a share group "site": a daemon on simulator s (serial) with the MQTT
    client plugin on the broker at port; extra [mqtt] keys in mqtt."""
    conf = {"enabled": True, "host": "127.0.0.1", "port": port,
            "client_id": "%s-%d" % (client_prefix, i), "qos": 1, "share_group": "site",
            "reconnect_min": "100ms", "reconnect_max": "1s"}
    conf.update(mqtt)
    return Daemon(d, {"notecard": {"transport": "serial", "device": s.serial_path,
                                   "poll_interval": "1s", "timing_scale": 5},
                      "hub": {"mode": "continuous"}, "update": {"enabled": False},
                      "mqtt": conf},
                  plugins=["mqtt"], name="gw%d" % i)


def render(sections):
    out = []
    for sec, keys in sections.items():
        out.append("[%s]" % sec)
        out += ["%s = %s" % (k, ("true" if v else "false") if isinstance(v, bool) else v)
                for k, v in keys.items()]
        out.append("")
    return "\n".join(out)


class FakeHost:
    """mqtt.so loaded by the stand-in host; its notes land in a JSON-lines file."""

    def __init__(self, tdir, port, name="host", **mqtt):
        self.dir = tdir.file(name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "gw.conf")
        self.notes_file = os.path.join(self.dir, "notes.jsonl")
        self.errlog = os.path.join(self.dir, "host.log")
        keys = {"host": "127.0.0.1", "port": port, "client_id": "gw-" + name,
                "reconnect_min": "100ms", "reconnect_max": "1s"}
        keys.update(mqtt)
        with open(self.conf, "w") as f:
            f.write(render({"mqtt": keys}))
        self.proc = None
        self.lines = queue.Queue()
        tdir.procs.append(self)

    def start(self, wait_ready=True):
        self.err = open(self.errlog, "ab")
        self.proc = subprocess.Popen([FAKEHOST, MQTT_SO, self.conf, self.notes_file],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, bufsize=1)
        self.lines = queue.Queue()
        t = threading.Thread(target=self._reader, args=(self.proc, self.lines), daemon=True)
        t.start()
        if wait_ready:
            self.expect(lambda l: l == "ready", "ready")
        return self

    @staticmethod
    def _reader(proc, q):
        for line in proc.stdout:
            q.put(line.rstrip("\n"))
        q.put(None)

    def expect(self, pred, what, timeout=20):
        end = time.monotonic() + timeout
        while True:
            try:
                l = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                fail("fake host: timed out waiting for %s; log:\n%s" % (what, self.log_text()))
            if l is None:
                fail("fake host exited while waiting for %s; log:\n%s" % (what, self.log_text()))
            if pred(l):
                return l

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def stats(self):
        self.send("stats")
        return json.loads(self.expect(lambda l: l.startswith("stats "), "stats")[6:])

    def wait_connected(self, timeout=20):
        wait_for(lambda: self.stats()["connected"], timeout, 0.1, "the plugin to connect")

    def notes(self):
        try:
            with open(self.notes_file) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def log_text(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.send("quit")
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("fake host did not quit")
            # A clean quit exits 0: under ASan a leak or an error makes it fail here.
            if self.proc.returncode != 0:
                fail("fake host exited %d; log:\n%s" % (self.proc.returncode, self.log_text()))
        return self.proc.returncode if self.proc else 0


class Publisher(threading.Thread):
    """Publishes {"n": i} QoS 1 to topic, one at a time, reconnecting (persistent
    session) whenever the broker goes away; `acked` holds every i whose PUBACK came."""

    def __init__(self, port, topic, count, client_id="publisher", pause=0.0):
        super().__init__(daemon=True)
        self.port, self.topic, self.count, self.cid, self.pause = port, topic, count, client_id, pause
        self.acked = []
        self.failures = 0
        self.error = None

    def run(self):
        i = 0
        c = None
        deadline = time.monotonic() + 120
        try:
            while i < self.count and time.monotonic() < deadline:
                try:
                    if c is None:
                        c = Client(self.port, self.cid, clean=True, timeout=5).connect()
                    c.publish(self.topic, json.dumps({"n": i}))
                    self.acked.append(i)
                    i += 1
                    if self.pause:
                        time.sleep(self.pause)
                except (OSError, MqttError):
                    # Not acked: send the same number again on the next connection.
                    self.failures += 1
                    if c:
                        c.abort()
                    c = None
                    time.sleep(0.05)
        except Exception as e:  # report in the main thread
            self.error = e
        finally:
            if c:
                c.close()


def numbers(notes, file):
    return [json.loads(n["body"])["n"] for n in notes if n["file"] == file]


__all__ = ["broker", "FakeHost", "Publisher", "Client", "MqttError", "numbers", "log", "MQTT_SO", "BROKER_SO",
           "sanitizer_env"]
