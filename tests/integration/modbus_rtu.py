#!/usr/bin/python3
"""The Modbus plugin over RTU: pymodbus as the RTU server on one end of a socat pty
pair, the plugin on the other. Two devices share the line (one answering, one unit
that never answers), values decode, a write goes through, and a peer whose frames
fail their CRC is counted as bad responses."""
import json
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests/lib"))
from mbpeer import MbHost, Peer, PtyPair, words_f32, words_i32  # noqa

try:
    import pymodbus  # noqa: F401
    import serial_asyncio  # noqa: F401
except ImportError as e:
    print("skip: %s" % e)
    sys.exit(77)
if not shutil.which("socat"):
    print("skip: socat is not installed")
    sys.exit(77)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main():
    tmp = tempfile.TemporaryDirectory()
    hr = {"0": 1234, "1": (-2) & 0xFFFF}
    hr.update({str(2 + i): w for i, w in enumerate(words_i32(-100000, "le"))})
    hr.update({str(4 + i): w for i, w in enumerate(words_f32(21.5, "be"))})
    hr["6"] = 0
    layout = {"units": [1], "hr": hr, "co": {"0": 0}, "baud": 115200}
    with open(os.path.join(tmp.name, "layout.json"), "w") as f:
        json.dump(layout, f)
    line, bad = PtyPair(tmp.name, "line"), PtyPair(tmp.name, "bad")
    peers, host = [], None
    try:
        peers.append(Peer("rtu", line.a, os.path.join(tmp.name, "layout.json")))
        peers.append(Peer("rawrtu", bad.a, "badcrc"))
        url = "rtu:%s?baud=115200&parity=N&data=8&stop=1&rs485=1" % line.b
        conf = ("[modbus]\nenabled = true\n"
                "[modbus.pump]\nurl = %s\nunit = 1\ninterval = 200ms\nnotefile = pump.qo\n"
                "[modbus.pump.a]\nregister = holding:0\n"
                "[modbus.pump.b]\nregister = holding:1\ntype = i16\n"
                "[modbus.pump.c]\nregister = holding:2\ntype = i32_le\n"
                "[modbus.pump.t]\nregister = holding:4\ntype = f32_be\n"
                "[modbus.pump.sp]\nregister = holding:6\nwritable = true\nmax = 1000\n"
                "[modbus.pump.run]\nregister = coil:0\nwritable = true\n"
                "[modbus.ghost]\nurl = %s\nunit = 7\ninterval = 200ms\ntimeout = 200ms\n"
                "backoff = 200ms\nbackoff_max = 1s\ndown_after = 2\n"
                "[modbus.ghost.x]\nregister = holding:0\n"
                "[modbus.crc]\nurl = rtu:%s?baud=9600\nunit = 1\ninterval = 200ms\ntimeout = 300ms\n"
                "backoff = 200ms\nbackoff_max = 1s\ndown_after = 2\n"
                "[modbus.crc.x]\nregister = holding:0\ntype = u32\n") % (url, url, bad.b)
        host = MbHost(conf, tmp.name)
        n = host.wait(lambda e: e["event"] == "note" and e["file"] == "pump.qo", 20, "pump note")
        b = n["body"]
        check(b["a"] == 1234 and b["b"] == -2 and b["c"] == -100000 and b["sp"] == 0
              and b["run"] is False and math.isclose(b["t"], 21.5), "rtu values: %s" % b)
        print("ok: values over RTU")

        host.send('inbound 1 modbus.qi {"device":"pump","point":"sp","value":750}')
        host.wait(lambda e: e["event"] == "done" and e["id"] == 1, 15, "write done")
        res = host.emits("modbus/result")[-1]
        check(res == {"device": "pump", "point": "sp", "value": 750, "ok": True}, res)
        host.send('inbound 2 modbus.qi {"device":"pump","point":"run","value":true}')
        host.wait(lambda e: e["event"] == "done" and e["id"] == 2, 15, "write done")
        check(host.emits("modbus/result")[-1]["ok"] is True, host.emits("modbus/result")[-1])
        host.wait(lambda e: e["event"] == "note" and e["file"] == "pump.qo"
                  and e["body"]["sp"] == 750 and e["body"]["run"] is True, 20, "written values")
        host.send('inbound 3 modbus.qi {"device":"pump","point":"sp","value":1001}')
        host.wait(lambda e: e["event"] == "done" and e["id"] == 3, 15, "refusal")
        check("range" in host.emits("modbus/result")[-1]["error"], host.emits("modbus/result")[-1])
        print("ok: writes over RTU")

        st = host.wait_stats(lambda s: s["devices"]["ghost"]["polls"] >= 3
                             and s["devices"]["crc"]["polls"] >= 3, 40, "ghost/crc polls")
        g, c, p = st["devices"]["ghost"], st["devices"]["crc"], st["devices"]["pump"]
        check(g["state"] == "down" and g["errors"]["timeout"] == g["polls"], g)
        check(c["state"] == "down" and c["errors"]["bad_response"] == c["polls"], c)
        check(p["state"] == "up" and p["ok"] == p["polls"], "pump unaffected on the shared line: %s" % p)
        check(p["requests"] == 2 * p["polls"], "holding 0-6 and coil 0: two reads: %s" % p)
        states = host.emits("modbus/state")
        check(len([s for s in states if s["device"] == "ghost"]) == 1, states)
        check(len([s for s in states if s["device"] == "crc"]) == 1, states)
        print("ok: silent unit and bad CRC on RTU")
        # a pty has no RS-485 mode: said once per device, and the line works anyway
        warned = [l for l in host.stderr if "no RS-485 mode" in l]
        check(1 <= len(warned) <= 2, "rs485 warning once per device: %s" % warned)
    finally:
        rc = host.stop() if host else 0
        for p in peers:
            p.stop()
        line.stop()
        bad.stop()
    check(rc == 0, "mbhost exit %s" % rc)
    print("pass")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
