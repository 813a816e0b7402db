#!/usr/bin/python3
"""Fault injection over the pty: {io}, garbled / dropped bytes, CRC corruption, reset in the
middle of a transaction, the card gone and back — each seen the way a host sees it."""
import errno
import json
import os
import tempfile

from simtest import check, finish
from sim import Sim, SerialClient, crc_add, crc_check

with Sim(serial=True) as s:
    c = SerialClient(s.serial_path, timeout=1.0)
    line = crc_add(b'{"req":"note.add","file":"f.qo","body":{"k":1}}', 5)

    s.fault("io", count=1)
    r = c.raw(line)
    check(b"{io}" in r and crc_check(r, 5)[0], "io fault: {io} error with a valid crc")
    check(s.files().get("f.qo", {}).get("total", 0) == 0, "io fault: request not executed")
    r = c.raw(line)
    check(crc_check(r, 5)[0] and json.loads(crc_check(r, 5)[1]) == {"total": 1},
          "retry after {io} executes once")

    s.fault("crc", count=1)
    line = crc_add(b'{"req":"note.add","file":"f.qo","body":{"k":2}}', 6)
    r = c.raw(line)
    check(crc_check(r, 6)[0] is False, "crc fault: response crc does not verify")
    r = c.raw(line)
    check(crc_check(r, 6)[0] and json.loads(crc_check(r, 6)[1]) == {"total": 2},
          "retry after a corrupted crc is answered, not executed twice")

    s.fault("garble", count=1)
    r = c.raw(crc_add(b'{"req":"card.version"}', 7))
    ok, text = crc_check(r, 7)
    check(r.endswith(b"\r\n") and not ok, "garbled response fails its crc")

    good = c.raw(crc_add(b'{"req":"hub.get"}', 8))
    s.fault("drop", count=1)
    r = c.raw(crc_add(b'{"req":"hub.get"}', 9))
    check(len(r) == len(good) - 1 and not crc_check(r, 9)[0], "dropped byte %r %r" % (good, r))

    s.fault("reset", count=1)
    r = c.raw(crc_add(b'{"req":"note.add","file":"f.qo","body":{"k":3}}', 10), timeout=0.5)
    check(r == b"", "reset mid-transaction: no answer")
    check(s.files()["f.qo"]["total"] == 2, "reset: request lost")
    s.wait_for(c.resync, what="card back after reset")
    check(s.counters().get("resets") == 1, "reset counted")

    s.fault("reset_response", count=1)
    line = crc_add(b'{"req":"note.add","file":"f.qo","body":{"k":4}}', 11)
    r = c.raw(line, timeout=0.5)
    check(r and not r.endswith(b"\n"), "reset mid-answer: half a line %r" % r)
    check(s.files()["f.qo"]["total"] == 3, "reset mid-answer: the request was executed")
    s.wait_for(c.resync, what="card back after reset mid-answer")
    r = c.raw(line)
    check(crc_check(r, 11)[0] and s.files()["f.qo"]["total"] == 4,
          "retry after a reset is executed again (the card forgot it)")

    s.gone(30)
    check(c.raw(b'{"req":"card.version"}', timeout=0.3) == b"", "gone: silent")
    s.back()
    c.drain()
    check(b"version" in c.raw(b'{"req":"card.version"}'), "back: answers again")

    s.control("reset")
    check(c.raw(b'{"req":"card.version"}', timeout=0.02) == b"" or True, "forced reset")
    s.wait_for(c.resync, what="card back after forced reset")

    # 20% {io}: a host that retries gets every note in exactly once
    s.fault("io", p=0.2)
    seq = 100
    for i in range(30):
        line = crc_add(json.dumps({"req": "note.add", "file": "many.qo", "body": {"i": i}},
                                  separators=(",", ":")).encode(), seq)
        for attempt in range(20):
            r = c.raw(line)
            ok, text = crc_check(r, seq)
            if ok and b"{io}" not in text:
                break
        seq += 1
    s.clear_faults()
    check(s.files()["many.qo"]["total"] == 30, "every note once under 20% {io}")
    check(s.control("faults")["fired"].get("io", 0) > 0, "io faults fired")
    s.sync()
    got = [e["body"]["i"] for e in s.hub_notes() if e["file"] == "many.qo"]
    check(got == list(range(30)), "hub has each note once, in order")

    # restart: answers, then deaf briefly
    r = c.request({"req": "card.restart"}, seq=500)
    check(r == {}, "card.restart answered")
    s.wait_for(lambda: s.counters().get("resets", 0) >= 4, what="restart reset")
    s.wait_for(c.resync, what="card back after restart")
    check(s.counters().get("restarts") == 1, "restart counted")
    c.close()

# USB re-enumeration: the pty goes away under the host and comes back under the same link name
linkdir = tempfile.mkdtemp(prefix="ncsim-link-")
link = os.path.join(linkdir, "ttyACM0")
with Sim(serial=True, args=["--serial-link", link]) as s:
    check(os.path.realpath(link) == s.serial_path, "link points at the pty")
    c = SerialClient(link)
    check("version" in c.request({"req": "card.version"}), "answers through the link")
    s.unplug()
    check(not os.path.lexists(link), "unplugged: link gone")
    try:
        data = os.read(c.fd, 10)
        hung = data == b""
    except OSError as e:
        hung = e.errno == errno.EIO
    check(hung, "unplugged: the host's fd hangs up")
    c.close()
    new = s.replug()
    check(os.path.realpath(link) == new, "replugged: link points at the new pty")
    with open(s.info_path) as f:
        check(json.load(f)["serial"] == new, "info file follows the pty")
    c = SerialClient(link)
    check("version" in c.request({"req": "card.version"}), "answers after replug")
    c.close()
    s.unplug(seconds=0.2)
    s.wait_for(lambda: os.path.lexists(link), what="replug after seconds")
os.rmdir(linkdir)
finish()
