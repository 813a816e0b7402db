#!/usr/bin/python3
"""Replay every tests/transcripts/*.txt through notecard-sim with a small host written here
(CRC, sequence numbers, retries on {io} and CRC errors, the way note-c does it), and compare what
reached the hub with the golden *.chk. Also: a host that strays from the transcript is reported.
(The daemon-driven replay is added once the daemon lands.)"""
import glob
import json
import os

from simtest import check, finish
from sim import Sim, SerialClient, crc_add, crc_check, TOP_SRCDIR

sys_dir = os.path.join(TOP_SRCDIR, "tests", "transcripts")
from notecard_sim.transcript import match, parse  # noqa: E402


def reduce(ev):
    return {k: ev[k] for k in ("file", "body", "payload", "note") if k in ev}


def host_replay(s, c, exchanges):
    """Play the host side: retry the same request after a transport or {io} error."""
    seq = 0
    prev = None
    for ex in exchanges:
        req = ex.request
        if prev is not None and req != prev:
            seq += 1
        prev = req
        text = json.dumps(req, separators=(",", ":")).encode()
        if "cmd" in req and "req" not in req:
            c.write(text + b"\n")
            continue
        line = c.raw(crc_add(text, seq), timeout=2.0)
        ok, body = crc_check(line, seq)
        if any(f in ex.faults for f in ("crc", "garble", "drop")):
            check(not ok, "line %d: fault %s seen by the host" % (ex.lineno, ex.faults))
            continue
        check(ok, "line %d: crc verifies (%r)" % (ex.lineno, line))
        rsp = json.loads(body) if ok else {}
        if "io" in ex.faults:
            check("{io}" in rsp.get("err", ""), "line %d: {io} answer" % ex.lineno)
            continue
        if isinstance(ex.response, dict):
            check(rsp == ex.response, "line %d: answer %r" % (ex.lineno, rsp))
        else:
            check("err" not in rsp, "line %d: card answered %r" % (ex.lineno, rsp))
        if ok and "err" not in rsp:
            prev = None          # success: the next identical request is a new one
            seq += 1


# daemon-*.txt are driven by notegwd (test_sim_daemon.py), the others by the host above
paths = sorted(p for p in glob.glob(os.path.join(sys_dir, "*.txt"))
               if not os.path.basename(p).startswith("daemon-"))
check(len(paths) >= 3, "transcripts present")
for path in paths:
    name = os.path.basename(path)[:-4]
    exchanges = parse(path)
    with open(path[:-4] + ".chk") as f:
        golden = [json.loads(l) for l in f if l.strip()]
    s = Sim(serial=True, args=["--transcript", path, "--product", "com.example.user:gateway"])
    c = SerialClient(s.serial_path)
    host_replay(s, c, exchanges)
    st = s.wait_for(lambda: (lambda t: t if t["done"] else None)(s.control("transcript")),
                    what="transcript done")
    check(not st["mismatches"], "%s: no mismatches %r" % (name, st["mismatches"]))
    s.wait_for(lambda: len(s.hub_notes()) >= len(golden), what="%s: hub" % name)
    got = [reduce(e) for e in s.hub_notes()]
    check(len(got) == len(golden) and all(match(w, g) for w, g in zip(golden, got)),
          "%s: hub matches golden\n got %r\nwant %r" % (name, got, golden))
    c.close()
    rc = s.stop()
    check(rc == 0, "%s: simulator exit status %d" % (name, rc))
    s.cleanup()

# ambient requests (a daemon's polling) may come between strict exchanges
path = os.path.join(sys_dir, "ambient-poll.txt")
s = Sim(serial=True, args=["--transcript", path])
c = SerialClient(s.serial_path)
c.request({"req": "file.changes"})
c.request({"req": "card.version"})
c.request({"req": "env.modified"})
c.request({"req": "file.changes"})
st = s.control("transcript")
check(st["position"] == 1 and not st["mismatches"], "ambient requests leave the transcript %r" % st)
check(s.counters().get("transcript_ambient") == 3, "ambient requests answered by the card")
c.close()
s.stop()
s.cleanup()

# a host that sends something else is reported, and the exit status says so
s = Sim(serial=True, args=["--transcript", paths[0]])
c = SerialClient(s.serial_path)
c.request({"req": "card.status"})
st = s.control("transcript")
check(len(st["mismatches"]) == 1 and st["mismatches"][0]["want"] == {"req": "card.version"},
      "mismatch reported %r" % st)
c.close()
check(s.stop() == 3, "exit status 3 after a mismatch")
s.cleanup()
finish()
