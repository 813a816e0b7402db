#!/usr/bin/python3
"""The notegw CLI against a stand-in daemon on a temporary Unix socket: the requests
it sends (the shapes written down in src/cli/core.c), how it renders answers, and
its exit codes (0 ok, 1 refused, 2 usage, 3 unreachable, 4 try again later)."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("top_builddir", ".")
NOTEGW = os.path.join(BUILD, "notegw")
NOW = int(time.time())

ANSWERS = {
    "status": {"ok": True, "status": {
               "daemon": {"version": "0.1.0", "pid": 812, "uptime_s": 3725,
                          "config": "/etc/notegw/notegw.conf"},
               "notecard": {"state": "ready", "uid": "dev:864475044204278",
                            "sku": "NOTE-WBEX", "firmware": "8.1.3.17044",
                            "connected": True,
                            "signal": {"bars": 3, "rssi": -71, "rat": "lte"},
                            "temperature": 31.5},
               "store": {"queued": 12, "bytes": 4096, "oldest_ms": (NOW - 300) * 1000},
               "plugins": {"mqtt": {"state": "running", "received": 7}},
               "update": {"state": "idle"}}},
    "queue": {"ok": True, "files": [
        {"file": "meter.qo", "count": 2, "bytes": 100, "oldest_ms": (NOW - 7200) * 1000},
        {"file": "data.qo", "count": 10, "bytes": 3000000, "oldest_ms": (NOW - 60) * 1000}]},
    "send": {"ok": True, "id": 42},
    "sync": {"ok": True, "response": {}},
    "audit": {"ok": True, "audit": [
        {"time_ms": 1764036000000, "actor": "uid:0", "action": "send",
         "detail": "data.qo"}]},
}


class FakeDaemon:
    def __init__(self, path):
        self.path = path
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, req):
        cmd = req.get("cmd")
        if cmd == "req":
            name = req["req"].get("req")
            if name == "bad.req":
                return {"ok": True, "response": {"err": "unknown request {io}"}}
            if name == "slow.fail":
                return {"ok": False, "error": "card: no answer", "code": 110}
            if name == "old.shape":
                return {"ok": True, "rsp": {"device": "dev:2"}}
            return {"ok": True, "response": {"device": "dev:1", "echo": req["req"]}}
        if cmd == "send" and req.get("file") == "full.qo":
            return {"ok": False, "error": "store: full", "code": 28}
        if cmd == "send" and req.get("file") == "diskfull.qo":
            return {"ok": False, "error": "not accepted: disk full", "code": 11}
        return ANSWERS.get(cmd, {"ok": False, "error": "unknown command", "code": 2})

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.handle(conn)

    def handle(self, conn):
        """One request line in, one answer line out."""
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        req = json.loads(data)
        self.requests.append(req)
        conn.sendall(json.dumps(self.answer(req)).encode() + b"\n")


class Busy(FakeDaemon):
    """Too many clients: says so at once and hangs up, as notegwd does past its limits."""

    def handle(self, conn):
        conn.sendall(b'{"ok":false,"error":"too many clients of this user, try again",'
                     b'"code":16}\n')


class Refuser(FakeDaemon):
    """Says no at once and hangs up without reading, as notegwd does to a stranger."""

    def handle(self, conn):
        conn.sendall(b'{"ok":false,"error":"permission denied: not in the notegw '
                     b'groups","code":13}\n')


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(sock, *args, stdin=None):
    p = subprocess.run([NOTEGW, "-s", sock, *args], input=stdin, capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def main():
    if not os.access(NOTEGW, os.X_OK):
        print("notegw not built at", NOTEGW)
        return 1
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "control.sock")
        fake = FakeDaemon(sock)

        rc, out, err = run(sock, "status")
        check(rc == 0, f"status exits 0 ({rc}, {err})")
        for text in ("device UID", "dev:864475044204278", "3 bars, rssi -71 dBm, lte",
                     "1h 2m", "4.0 KiB", "(5m ago)", "temperature", "31.5",
                     "mqtt", "running", "received", "hub\n  (not reported)",
                     "update\n  state        idle"):
            check(text in out, f"status shows {text!r}:\n{out}")
        check(fake.requests[-1] == {"cmd": "status"}, "status request shape")

        rc, out, err = run(sock, "status", "--json")
        check(rc == 0 and json.loads(out) == ANSWERS["status"], "status --json is the answer")
        rc, out, err = run(sock, "--json", "queue")
        check(rc == 0 and json.loads(out)["files"][0]["file"] == "meter.qo", "global --json")

        rc, out, err = run(sock, "queue")
        lines = out.splitlines()
        check(rc == 0 and lines[0].split() == ["FILE", "COUNT", "BYTES", "OLDEST"],
              f"queue header: {out}")
        check(lines[1].startswith("meter.qo") and "(2h ago)" in lines[1], f"queue row: {out}")
        check("2.9 MiB" in lines[2], f"queue bytes: {out}")

        rc, out, err = run(sock, "send", "data.qo", '{"temp": 21.5}')
        check(rc == 0 and "queued for data.qo (id 42)" in out, f"send: {rc} {out} {err}")
        check(fake.requests[-1] == {"cmd": "send", "file": "data.qo", "body": {"temp": 21.5}},
              f"send request shape: {fake.requests[-1]}")
        rc, out, err = run(sock, "send", "data.qo", "-", stdin='{"from": "stdin"}\n')
        check(rc == 0 and fake.requests[-1]["body"] == {"from": "stdin"}, "send from stdin")
        rc, out, err = run(sock, "send", "beat.qo")
        check(rc == 0 and fake.requests[-1]["body"] == {}, "send without a body")
        n = len(fake.requests)
        for bad in (["send", "data.qo", "[1,2]"], ["send", "data.qo", "{oops"],
                    ["send", "data.qi", "{}"], ["send"], ["send", "a.qo", "{}", "x"],
                    ["status", "extra"], ["audit", "-n", "0"], ["nosuch"], ["req"]):
            rc, out, err = run(sock, *bad)
            check(rc == 2, f"{bad} is a usage error ({rc}, {err})")
        check(len(fake.requests) == n, "usage errors send nothing")
        rc, out, err = run(sock, "send", "full.qo", "{}")
        check(rc == 1 and "store: full" in err, f"refusal exits 1: {rc} {err}")
        rc, out, err = run(sock, "--json", "send", "full.qo", "{}")
        check(rc == 1 and json.loads(out)["code"] == 28, "refusal with --json prints the answer")

        rc, out, err = run(sock, "send", "diskfull.qo", "{}")
        check(rc == 4 and "disk full" in err, f"a full disk exits 4 (try again later): {rc} {err}")

        rc, out, err = run(sock, "req", "card.version")
        check(rc == 0 and fake.requests[-1] == {"cmd": "req", "req": {"req": "card.version"}},
              f"req by name: {fake.requests[-1]}")
        check(json.loads(out) == {"device": "dev:1", "echo": {"req": "card.version"}},
              f"req prints the card's answer: {out}")
        rc, out, err = run(sock, "req", '{"req":"hub.get","x":1}')
        check(rc == 0 and fake.requests[-1]["req"] == {"req": "hub.get", "x": 1}, "req JSON")
        rc, out, err = run(sock, "req", "old.shape")
        check(rc == 0 and json.loads(out) == {"device": "dev:2"}, "req reads \"rsp\" too")
        rc, out, err = run(sock, "req", "bad.req")
        check(rc == 1 and "{io}" in err, f"card error exits 1: {rc} {err}")
        rc, out, err = run(sock, "req", "slow.fail")
        check(rc == 1 and "no answer" in err, "no answer exits 1")
        rc, out, err = run(sock, "req", '{"x":1}')
        check(rc == 2, "req without req is a usage error")

        rc, out, err = run(sock, "sync")
        check(rc == 0 and "sync requested" in out and fake.requests[-1] == {"cmd": "sync"},
              "sync")
        rc, out, err = run(sock, "audit", "-n", "5")
        check(rc == 0 and fake.requests[-1] == {"cmd": "audit", "limit": 5}, "audit request")
        check("2025-11-25 02:00:00Z" in out and "uid:0" in out and "data.qo" in out,
              f"audit rows: {out}")

        rsock = os.path.join(d, "refuse.sock")
        refuser = Refuser(rsock)
        time.sleep(0.1)
        big = json.dumps({"req": "x", "pad": "x" * 50000})
        for args in (["status"], ["send", "x.qo", "{}"], ["req", "-"]):
            rc, out, err = run(rsock, *args, stdin=big)
            check(rc == 1 and "permission denied" in err, f"refusal at connect: {args} {rc} {err}")
        refuser.sock.close()

        bsock = os.path.join(d, "busy.sock")
        busy = Busy(bsock)
        time.sleep(0.1)
        for args in (["status"], ["send", "x.qo", "{}"]):
            rc, out, err = run(bsock, *args)
            check(rc == 4 and "too many clients" in err, f"too many clients exits 4: {args} {rc} {err}")
        busy.sock.close()

        rc, out, err = run(os.path.join(d, "none.sock"), "status")
        check(rc == 3 and "cannot reach the daemon" in err, f"unreachable exits 3: {rc}")
        rc, out, err = run(sock, "--version")
        check(rc == 0 and out.startswith("notegw "), "--version")
        fake.sock.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
