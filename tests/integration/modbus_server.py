#!/usr/bin/python3
"""The gateway's own Modbus TCP server, read by mbpoll (an independent client):
the register map of docs/modbus.md — gateway state from the host's status, device
states, latest polled values as f32 — read-only (writes refused with exception 1),
other units refused, and garbage or oversized requests not taking it down."""
import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests/lib"))
from mbpeer import MbHost, Peer, free_port, words_f32  # noqa

try:
    import pymodbus  # noqa: F401
except ImportError:
    print("skip: python3-pymodbus is not installed")
    sys.exit(77)
if not shutil.which("mbpoll"):
    print("skip: mbpoll is not installed")
    sys.exit(77)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def mbpoll(port, *args, write=()):
    r = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-0", "-1", "-o", "5"]
                       + [str(a) for a in args] + ["127.0.0.1"] + [str(w) for w in write],
                       capture_output=True, text=True, timeout=30)
    vals = {}
    for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", r.stdout, re.M):
        vals[int(m.group(1))] = m.group(2)
    return r, vals


def main():
    tmp = tempfile.TemporaryDirectory()
    dev_port, srv_port = free_port(), free_port()
    hr = {"0": 1234, "1": (-7) & 0xFFFF}
    hr.update({str(2 + i): w for i, w in enumerate(words_f32(-3.25))})
    with open(os.path.join(tmp.name, "layout.json"), "w") as f:
        json.dump({"units": [1], "hr": hr, "co": {"0": 1}}, f)
    peer = Peer("tcp", dev_port, os.path.join(tmp.name, "layout.json"))
    env = dict(os.environ, MBHOST_STATUS=json.dumps(
        {"store": {"queued": 70000}, "notecard": {"connected": True, "bars": 3},
         "hub": {"last_sync": 1700000000}}))
    conf = ("[modbus]\nenabled = true\nserver = %d\nserver_unit = 1\n"
            "[modbus.m]\nurl = tcp://127.0.0.1:%d\ninterval = 200ms\n"
            "[modbus.m.a]\nregister = holding:0\nscale = 0.5\n"
            "[modbus.m.b]\nregister = holding:1\ntype = i16\n"
            "[modbus.m.f]\nregister = holding:2\ntype = f32\n"
            "[modbus.m.c]\nregister = coil:0\n"
            "[modbus.dead]\nurl = tcp://127.0.0.1:%d\ninterval = 200ms\ndown_after = 1\n"
            "[modbus.dead.x]\nregister = holding:0\n") % (srv_port, dev_port, free_port())
    host = None
    try:
        host = MbHost(conf, tmp.name, env=env)
        host.wait(lambda e: e["event"] == "note", 20, "first poll")
        host.wait_stats(lambda s: s["devices"]["dead"]["state"] == "down", what="dead down")

        r, v = mbpoll(srv_port, "-a", 1, "-t", 3, "-r", 0, "-c", 9)
        check(r.returncode == 0, r.stdout + r.stderr)
        # version, devices, points, connected, bars, queued hi/lo, last sync hi/lo
        want = [1, 2, 5, 1, 3, 70000 >> 16, 70000 & 0xFFFF, 1700000000 >> 16, 1700000000 & 0xFFFF]
        got = [int(v[i]) & 0xFFFF for i in range(9)]
        check(got == want, "gateway registers %s != %s" % (got, want))
        r, v = mbpoll(srv_port, "-a", 1, "-t", 3, "-r", 100, "-c", 2)
        check([v[100], v[101]] == ["1", "2"], "device states up, down: %s" % v)
        r, v = mbpoll(srv_port, "-a", 1, "-t", "3:float", "-B", "-r", 1000, "-c", 5)
        check(r.returncode == 0, r.stdout + r.stderr)
        vals = [float(v[1000 + 2 * i]) for i in range(5)]
        check(vals[:4] == [617.0, -7.0, -3.25, 1.0], "point values as f32: %s" % vals)
        check(math.isnan(vals[4]), "never-read point is NaN: %s" % vals)
        # holding registers mirror the input registers
        r, v = mbpoll(srv_port, "-a", 1, "-t", "4:float", "-B", "-r", 1000, "-c", 1)
        check(float(v[1000]) == 617.0, v)
        print("ok: map read by mbpoll")

        # status changes reach the map
        host.send("status " + json.dumps({"store": {"queued": 5}, "notecard": {"connected": False, "bars": 0}}))
        host.wait(lambda e: e["event"] == "status-set", 10, "status")
        r, v = mbpoll(srv_port, "-a", 1, "-t", 3, "-r", 3, "-c", 4)
        check([int(v[i]) for i in (3, 4, 5, 6)] == [0, 0, 0, 5], "updated status: %s" % v)

        # read-only, right unit only, addresses checked
        r, v = mbpoll(srv_port, "-a", 1, "-t", 4, "-r", 1000, write=[5])
        check(r.returncode != 0 and "llegal function" in r.stdout + r.stderr, r.stdout + r.stderr)
        r, v = mbpoll(srv_port, "-a", 9, "-t", 3, "-r", 0, "-c", 1)
        check(r.returncode != 0 and "ateway" in r.stdout + r.stderr, r.stdout + r.stderr)
        r, v = mbpoll(srv_port, "-a", 1, "-t", 3, "-r", 1008, "-c", 4)
        check(r.returncode != 0 and "llegal data address" in r.stdout + r.stderr, r.stdout + r.stderr)
        r, v = mbpoll(srv_port, "-a", 1, "-t", 0, "-r", 0, "-c", 1)
        check(r.returncode != 0, "no coils served")

        # hostile clients: garbage, then an oversized count; the server lives on
        s = socket.create_connection(("127.0.0.1", srv_port))
        s.sendall(b"\x00\x01\x99\x99\x00\x06\x01\x03\x00\x00\x00\x01")
        check(s.recv(100) == b"", "non-Modbus client dropped")
        s.close()
        s = socket.create_connection(("127.0.0.1", srv_port))
        s.sendall(b"\x00\x02\x00\x00\x00\x06\x01\x04\x00\x00\x07\xd0")  # 2000 registers
        rsp = s.recv(100)
        check(rsp == b"\x00\x02\x00\x00\x00\x03\x01\x84\x03", "exception 3 for 2000 regs: %r" % rsp)
        s.sendall(b"\x00\x03\x00\x00\x00\x06\x01\x04\x00\x00\x00\x01")
        rsp = s.recv(100)
        check(rsp[:9] == b"\x00\x03\x00\x00\x00\x05\x01\x04\x02" and len(rsp) == 11, "%r" % rsp)
        s.close()
        r, v = mbpoll(srv_port, "-a", 1, "-t", 3, "-r", 0, "-c", 1)
        check(r.returncode == 0 and v[0] == "1", "still serving")
        st = host.stats()["server"]
        check(st["requests"] >= 8 and st["exceptions"] >= 4, st)
        print("ok: read-only, unit and range checks, hostile clients")
    finally:
        rc = host.stop() if host else 0
    check(rc == 0, "mbhost exit %s" % rc)

    # Every fd below 1100 taken: the device's socket would be past FD_SETSIZE, where
    # libmodbus 3.1.6's select() overflows; it must be refused, not handed over. The
    # server (epoll, no select) serves clients on such fds all the same.
    host = None
    try:
        old_port, srv_port = srv_port, free_port()
        high = conf.replace("server = %d\n" % old_port, "server = %d\n" % srv_port)
        host = MbHost(high, tmp.name, env=dict(env, MBHOST_FILL_FDS="1100"))
        st = host.wait_stats(lambda s: s["devices"]["m"]["polls"] >= 2, what="polls with high fds")
        m = st["devices"]["m"]
        check(m["ok"] == 0 and m["errors"]["connect"] == m["polls"]
              and "unsafe for libmodbus" in (m["last_error"] or ""), "high fd refused: %s" % m)
        r, v = mbpoll(srv_port, "-a", 1, "-t", 3, "-r", 0, "-c", 1)
        check(r.returncode == 0 and v[0] == "1", "server with high fds: %s" % r.stdout)
        print("ok: sockets past FD_SETSIZE kept away from libmodbus")
    finally:
        rc = host.stop() if host else 0
        peer.stop()
    check(rc == 0, "mbhost exit %s" % rc)
    print("pass")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
