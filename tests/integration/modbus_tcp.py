#!/usr/bin/python3
"""The Modbus plugin against independent Modbus TCP peers: pymodbus (Debian's
python3-pymodbus) as a well-behaved server, hand-made misbehaving servers for the
faults (an answer from another unit id, or with an MBAP length that lies, among
them). Checks every type and word order (negative, NaN), merged reads, one note
per poll, report-on-change with a deadband, each fault kind counted and reported
once as a state change, a bad device not holding up a good one, and writes: done,
refused (not writable, out of range) and failed with a Modbus exception."""
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests/lib"))
from mbpeer import MbHost, Peer, free_port, words_f32, words_f32_bits, words_i32, words_u32  # noqa

try:
    import pymodbus  # noqa: F401
except ImportError:
    print("skip: python3-pymodbus is not installed")
    sys.exit(77)


def regs(words, base):
    return {str(base + i): w for i, w in enumerate(words)}


HR = {}
HR.update({"0": 40000, "1": 0xFB2E})                     # u16, i16 -1234
HR.update(regs(words_u32(305419896, "be"), 2))
HR.update(regs(words_u32(305419896, "le"), 4))
HR.update(regs(words_i32(-123456789, "be"), 6))
HR.update(regs(words_i32(-123456789, "le"), 8))
HR.update(regs(words_f32(-12.25, "be"), 10))
HR.update(regs(words_f32(1.5, "le"), 12))
HR.update(regs(words_f32_bits(0x7FC00000, "be"), 14))     # NaN
HR.update(regs(words_f32_bits(0x7FC00000, "le"), 16))     # NaN, low word first
HR.update({"18": 2301, "19": (-5) & 0xFFFF, "20": 0})
HR.update(regs(words_f32(0.0, "be"), 21))
LAYOUT = {"units": [1], "hr": HR, "ir": {"0": 7, "1": 0xFFFF},
          "co": {"0": 1, "1": 0}, "di": {"0": 1}}

EXPECT = {"u16": 40000, "i16": -1234, "u32": 305419896, "u32le": 305419896,
          "i32": -123456789, "i32le": -123456789, "f32": -12.25, "f32le": 1.5,
          "nan": None, "nanle": None, "volts": 230.1, "offs": 90.0, "sp": 0, "fsp": 0.0,
          "inp": 7, "inneg": -1, "relay": True, "relay2": False, "door": True}


def conf(p):
    pts = [("u16", "holding:0", "u16", ""), ("i16", "holding:1", "i16", ""),
           ("u32", "holding:2", "u32", ""), ("u32le", "holding:4", "u32_le", ""),
           ("i32", "holding:6", "i32_be", ""), ("i32le", "holding:8", "i32_le", ""),
           ("f32", "holding:10", "f32", ""), ("f32le", "holding:12", "f32_le", ""),
           ("nan", "holding:14", "f32", ""), ("nanle", "holding:16", "f32_le", ""),
           ("volts", "holding:18", "u16", "scale = 0.1\n"),
           ("offs", "holding:19", "i16", "scale = 2\noffset = 100\n"),
           ("sp", "holding:20", "i16", "writable = true\nmin = -50\nmax = 50\n"),
           ("fsp", "holding:21", "f32", "writable = true\n"),
           ("inp", "input:0", "u16", ""), ("inneg", "input:1", "i16", ""),
           ("relay", "coil:0", "bool", "writable = true\n"), ("relay2", "coil:1", "bool", ""),
           ("door", "discrete:0", "bool", "")]
    text = "[modbus]\nenabled = true\n"
    text += "[modbus.good]\nurl = tcp://127.0.0.1:%d\ninterval = 200ms\nnotefile = good.qo\n" % p["good"]
    for name, reg, typ, extra in pts:
        text += "[modbus.good.%s]\nregister = %s\ntype = %s\n%s" % (name, reg, typ, extra)
    # the same peer, report on change; sp with a deadband of 2
    text += ("[modbus.chg]\nurl = tcp://127.0.0.1:%d\ninterval = 200ms\nnotefile = chg.qo\n"
             "report = change\n[modbus.chg.sp]\nregister = holding:20\ntype = i16\ndeadband = 2\n"
             "[modbus.chg.u16]\nregister = holding:0\n") % p["good"]
    bad = "backoff = 200ms\nbackoff_max = 1s\ntimeout = 300ms\ndown_after = 2\n"
    text += ("[modbus.exc]\nurl = tcp://127.0.0.1:%d\ninterval = 200ms\n%s"
             "[modbus.exc.missing]\nregister = holding:100\nwritable = true\n") % (p["good"], bad)
    text += ("[modbus.nounit]\nurl = tcp://127.0.0.1:%d\nunit = 9\ninterval = 200ms\n%s"
             "[modbus.nounit.x]\nregister = holding:0\n") % (p["good"], bad)
    for mode in ("silent", "badcount", "short", "junk", "badunit", "badlen", "refused"):
        text += ("[modbus.%s]\nurl = tcp://127.0.0.1:%d\ninterval = 200ms\n%s"
                 "[modbus.%s.x]\nregister = holding:0\ntype = u32\n") % (mode, p[mode], bad, mode)
    return text


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main():
    ports = {k: free_port() for k in ("good", "silent", "badcount", "short", "junk", "badunit", "badlen",
                                      "refused")}
    tmp = tempfile.TemporaryDirectory()
    with open(os.path.join(tmp.name, "layout.json"), "w") as f:
        json.dump(LAYOUT, f)
    peers = [Peer("tcp", ports["good"], os.path.join(tmp.name, "layout.json")),
             Peer("raw", *["%s:%d" % (m, ports[m])
                           for m in ("silent", "badcount", "short", "junk", "badunit", "badlen")])]
    host = None
    try:
        host = MbHost(conf(ports), tmp.name)

        # ---- values: every type and word order, in one note per poll
        note = host.wait(lambda e: e["event"] == "note" and e["file"] == "good.qo", 20, "good note")
        body = note["body"]
        check(set(body) == set(EXPECT), "note has exactly the points: %s" % sorted(body))
        for k, v in EXPECT.items():
            if isinstance(v, float):
                check(isinstance(body[k], float) and math.isclose(body[k], v, rel_tol=1e-9),
                      "%s: %r != %r" % (k, body[k], v))
            else:
                check(body[k] == v and type(body[k]) == type(v), "%s: %r != %r" % (k, body[k], v))
        print("ok: values decoded for every type and word order, NaN as null")

        # ---- merged reads: 4 requests per poll (holding 0-22, input 0-1, coils 0-1, discrete 0)
        st = host.wait_stats(lambda s: s["devices"]["good"]["polls"] >= 3, what="good polls")
        g = st["devices"]["good"]
        check(g["requests"] == 4 * g["polls"], "4 requests per poll: %s" % g)
        check(g["state"] == "up", "good is up: %s" % g)

        # ---- faults: each kind, state change reported once, nothing delays good
        kinds = {"exc": "exception", "nounit": "timeout", "silent": "timeout",
                 "badcount": "bad_response", "short": "timeout", "junk": "bad_response",
                 "badunit": "bad_response", "badlen": "bad_response",
                 "refused": "connect"}
        st = host.wait_stats(lambda s: all(s["devices"][d]["polls"] >= 4 for d in kinds),
                             timeout=40, what="4 polls of each bad device")
        for dev, kind in kinds.items():
            d = st["devices"][dev]
            check(d["state"] == "down", "%s down: %s" % (dev, d))
            check(d["errors"][kind] == d["polls"], "%s: every poll a %s: %s" % (dev, kind, d))
            check(d["ok"] == 0 and d["last_ok"] is None and d["last_error"], "%s: %s" % (dev, d))
            downs = [e for e in host.emits("modbus/state") if e["device"] == dev]
            check(len(downs) == 1 and downs[0]["state"] == "down",
                  "%s: one state change for %d failed polls: %s" % (dev, d["polls"], downs))
            check(not host.notes("%s.qo" % dev), "%s: no notes" % dev)
        check("exception 2 (illegal data address)" in st["devices"]["exc"]["last_error"],
              st["devices"]["exc"]["last_error"])
        slowest = max(st["devices"][d]["polls"] for d in ("silent", "short", "nounit"))
        check(st["devices"]["good"]["polls"] > 1.5 * slowest,
              "good keeps polling while timeouts happen: %s vs %s" % (st["devices"]["good"]["polls"], slowest))
        check(st["devices"]["good"]["errors"] == {k: 0 for k in st["devices"]["good"]["errors"]},
              "no errors on good: %s" % st["devices"]["good"])
        print("ok: exception, timeout, bad response, connect: counted, one state change each")

        # ---- report on change: first note has all, then nothing until a move
        chg = [e["body"] for e in host.notes("chg.qo")]
        check(chg and chg[0] == {"sp": 0, "u16": 40000}, "first change note: %s" % chg)
        check(len(chg) == 1, "nothing moved, nothing sent: %s" % chg)

        # ---- writes
        def write(i, req):
            host.send("inbound %d modbus.qi %s" % (i, json.dumps(req)))
            done = host.wait(lambda e: e["event"] == "done" and e["id"] == i, 15, "done %d" % i)
            res = [e for e in host.events if e["event"] == "emit" and e["topic"] == "modbus/result"][-1]["json"]
            notes = [e["body"] for e in host.notes("modbus.qo")]
            check(notes and notes[-1] == res, "result also goes up as a note: %s" % notes[-1:])
            return res, done

        res, _ = write(1, {"device": "good", "point": "sp", "value": -7})
        check(res == {"device": "good", "point": "sp", "value": -7, "ok": True}, res)
        res, _ = write(2, {"device": "good", "point": "relay", "value": False})
        check(res["ok"] is True and res["value"] is False, res)
        res, _ = write(3, {"device": "good", "point": "fsp", "value": -2.5})
        check(res["ok"] is True, res)
        res, _ = write(4, {"device": "good", "point": "u16", "value": 1})
        check(res["ok"] is False and "not writable" in res["error"], res)
        res, _ = write(5, {"device": "good", "point": "sp", "value": 51})
        check(res["ok"] is False and "range" in res["error"], res)
        res, _ = write(6, {"device": "good", "point": "sp", "value": 1.5})
        check(res["ok"] is False, res)
        res, _ = write(7, {"device": "nosuch", "point": "sp", "value": 1})
        check(res["ok"] is False and "no device" in res["error"], res)
        res, _ = write(8, {"device": "exc", "point": "missing", "value": 1})
        check(res["ok"] is False and "modbus exception 2" in res["error"], res)
        host.send("inbound 9 modbus.qi not json")
        host.wait(lambda e: e["event"] == "done" and e["id"] == 9, 15, "done 9")
        # not a write request: done with at once (the store keeps a note until every
        # plugin had it), and nothing written or answered
        host.send("inbound 10 other.qi {\"device\":\"good\",\"point\":\"sp\",\"value\":9}")
        host.wait(lambda e: e["event"] == "done" and e["id"] == 10, 15, "done 10")
        st = host.stats()
        check(st["writes"] == {"ok": 3, "failed": 1, "refused": 5}, st["writes"])

        # the written values come back in the next polls, read by us and by pymodbus
        n = host.wait(lambda e: e["event"] == "note" and e["file"] == "good.qo"
                      and e["body"]["sp"] == -7 and e["body"]["relay"] is False
                      and e["body"]["fsp"] == -2.5, 20, "written values polled")
        from pymodbus.client import ModbusTcpClient
        c = ModbusTcpClient("127.0.0.1", port=ports["good"])
        c.connect()
        rr = c.read_holding_registers(20, 3, slave=1)
        check(rr.registers == [(-7) & 0xFFFF] + words_f32(-2.5), "pymodbus sees the writes: %s" % rr.registers)
        check(c.read_coils(0, 1, slave=1).bits[0] is False, "coil cleared")
        c.close()
        check(len(host.emits("modbus/result")) == 9, "no answer to a foreign note")
        print("ok: writes done, refused and failed, results as note + emit, inbound_done")

        # change detection: sp moved -7 from 0 (> deadband 2) -> a note with only sp
        e = host.wait(lambda e: e["event"] == "note" and e["file"] == "chg.qo" and e["body"] != chg[0],
                      20, "change note", past=True)
        check(e["body"] == {"sp": -7}, "only the moved point: %s" % e["body"])
        # within the deadband: -6 is 1 away from -7 -> no note
        write(11, {"device": "good", "point": "sp", "value": -6})
        before = host.stats()["devices"]["chg"]["polls"]
        host.wait_stats(lambda s: s["devices"]["chg"]["polls"] >= before + 3, what="chg polls")
        check(len(host.notes("chg.qo")) == 2, "a move within the deadband sends nothing: %s"
              % [e["body"] for e in host.notes("chg.qo")])
        print("ok: report = change with deadband")

        # ---- reload: workers joined, new devices polled, a write queued to a
        # silent device is not lost track of (no crash, no leak under ASan)
        host.send('inbound 12 modbus.qi {"device":"silent","point":"x","value":1}')
        with open(host.conf, "w") as f:
            f.write("[modbus]\nenabled = true\n[modbus.only]\nurl = tcp://127.0.0.1:%d\n"
                    "interval = 200ms\nnotefile = only.qo\n[modbus.only.v]\nregister = holding:0\n"
                    % ports["good"])
        host.send("reload")
        e = host.wait(lambda e: e["event"] == "reloaded", 20, "reload")
        check(e["rc"] == 0, e)
        n = host.wait(lambda e: e["event"] == "note" and e["file"] == "only.qo", 20, "note after reload")
        check(n["body"] == {"v": 40000}, n)
        st = host.stats()
        check(list(st["devices"]) == ["only"], st)
        print("ok: reload")
    finally:
        rc = host.stop() if host else 0
        for p in peers:
            p.stop()
    check(rc == 0, "mbhost exit %s" % rc)
    print("pass")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
