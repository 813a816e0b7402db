#!/usr/bin/python3
"""notegwd against notecard-sim over serial (pty) and over I2C (the LD_PRELOAD shim, so the
daemon's real i2c-dev code runs): `notegw req` answers, and shows a card error that came
without a crc as the card's error; with 20% injected {io} errors every queued note reaches the
hub exactly once, and so under garbled, shortened and CRC-damaged answers; over I2C every read
is asked for first (the simulator counts reads without a [0][n] request); no request the daemon
sent fails the API check (api.json); a daemon-driven transcript replays."""
import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, Daemon, TestDir  # noqa: E402
from simtest import check, finish  # noqa: E402
from sim import Sim, shim_path, validate_log, TOP_SRCDIR  # noqa: E402

sys.path.insert(0, os.path.join(TOP_SRCDIR, "sim"))
from notecard_sim.transcript import match  # noqa: E402

N = 20
M = 8     # notes sent under damaged answers


def run(transport):
    with TestDir("simd-" + transport) as d, \
            Sim(serial=transport == "serial", i2c=transport == "i2c",
                workdir=d.file("sim")) as sim:
        card = {"transport": transport, "poll_interval": "1s"}
        env = None
        if transport == "serial":
            card["device"] = sim.serial_path
        else:
            card.update({"device": "/dev/i2c-1", "address": "0x17"})
            env = sim.i2c_env(NOTEGWD)
        gw = Daemon(d, {"notecard": card, "hub": {"mode": "continuous"},
                        "update": {"enabled": False}}, env=env)
        gw.start()
        rc, out, err = gw.cli("req", '{"req":"card.version"}', check_rc=False)
        check(rc == 0 and json.loads(out).get("device") == "dev:864475040000001",
              "%s: notegw req card.version answers (%d %r %r)" % (transport, rc, out[:80], err))
        # a card that has shown CRC support answers an error without one: the caller gets the
        # card's own error, from one attempt (note-c skips the check for answers with err)
        sim.fault("err_nocrc", p=1.0)
        rc, out, err = gw.cli("req", '{"req":"note.get","file":"none.qi"}', check_rc=False)
        sim.clear_faults()
        tries = [e for e in sim.request_log() if e["req"].get("file") == "none.qi"]
        check(rc == 1 and "{note-noexist}" in out and "the Notecard said:" in err and
              "{note-noexist}" in err and len(tries) == 1 and "crc" in tries[0]["req"],
              "%s: a crc-less {note-noexist} reaches notegw req as the card's error, in one "
              "attempt (%d %r %r, %d attempts)" % (transport, rc, out[:80], err[:120], len(tries)))
        sim.fault("io", p=0.2)
        for i in range(N):
            gw.cli("send", "t.qo", json.dumps({"i": i}))
        sim.wait_for(lambda: len([e for e in sim.hub_notes() if e["file"] == "t.qo"]) >= N,
                     timeout=60, what="%s: notes at the hub" % transport)
        sim.clear_faults()
        got = sorted(e["body"]["i"] for e in sim.hub_notes() if e["file"] == "t.qo")
        check(got == list(range(N)), "%s: every note once under 20%% {io}: %r" % (transport, got))
        c = sim.counters()
        check(c.get("io_faults", 0) > 0, "%s: {io} faults were injected" % transport)

        # damaged answers: the daemon retries with the same sequence number, the card answers
        # again without executing twice, so each note still arrives exactly once
        damage = ("garble", "drop", "crc") + \
            (("short_read", "bad_sent") if transport == "i2c" else ())
        for f in damage:
            sim.fault(f, p=0.1)
        for i in range(N, N + M):
            gw.cli("send", "t.qo", json.dumps({"i": i}))
        sim.wait_for(lambda: len([e for e in sim.hub_notes() if e["file"] == "t.qo"]) >= N + M,
                     timeout=90, what="%s: notes at the hub under damage" % transport)
        fired = sim.control("faults")["fired"]
        sim.clear_faults()
        got = sorted(e["body"]["i"] for e in sim.hub_notes() if e["file"] == "t.qo")
        check(got == list(range(N + M)), "%s: every note once under %s: %r"
              % (transport, "/".join(damage), got))
        check(sum(fired.get(f, 0) for f in damage) > 0, "%s: damage injected %r"
              % (transport, fired))
        if transport == "i2c":
            check(c.get("i2c_protocol_errors", 0) == 0, "i2c: no framing errors")
        gw.stop()
        if transport == "i2c":
            # every read the daemon made was asked for with [0][n] first (a read without
            # one gets [available][0] from a lenient card and would pass unnoticed)
            c = sim.counters()
            check(c.get("i2c_reads", 0) > 0 and c.get("i2c_unrequested_reads", 0) == 0 and
                  c.get("i2c_protocol_errors", 0) == 0,
                  "i2c: %d reads, %d without a request, %d protocol errors" %
                  (c.get("i2c_reads", 0), c.get("i2c_unrequested_reads", 0),
                   c.get("i2c_protocol_errors", 0)))
        for p in sim.problems():
            check(False, "%s: %s" % (transport, p))
        for p in validate_log(sim.log_path):
            check(False, "%s: schema: %s" % (transport, p))


def replay(path):
    """The daemon against a transcript: strict exchanges, ambient polling, golden hub."""
    name = os.path.basename(path)[:-4]
    with open(path[:-4] + ".chk") as f:
        golden = [json.loads(l) for l in f if l.strip()]
    with TestDir("simd-" + name) as d, \
            Sim(serial=True, workdir=d.file("sim"), args=["--transcript", path]) as sim:
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "1s"},
                        "hub": {"mode": "continuous", "product": "com.example.user:gateway"},
                        "update": {"enabled": False}})
        gw.start()
        with open(path[:-4] + ".send") as f:
            for line in f:
                if line.strip():
                    notefile, body = line.split(" ", 1)
                    gw.cli("send", notefile, body.strip())
        st = sim.wait_for(lambda: (lambda t: t if t["done"] else None)(
            sim.control("transcript")), timeout=30, what="%s replayed" % name)
        sim.wait_for(lambda: len(sim.hub_notes()) >= len(golden), timeout=30,
                     what="%s: hub" % name)
        gw.stop()
        st = sim.control("transcript")
        check(not st["mismatches"], "%s: the daemon followed the transcript %r"
              % (name, st["mismatches"]))
        hub = [{k: e[k] for k in ("file", "body", "payload", "note") if k in e}
               for e in sim.hub_notes()]
        check(len(hub) == len(golden) and all(match(w, g) for w, g in zip(golden, hub)),
              "%s: hub matches golden: %r" % (name, hub))


if shim_path() is None:
    print("libi2cshim.so is not built")
    sys.exit(1)
run("serial")
run("i2c")
for path in sorted(glob.glob(os.path.join(TOP_SRCDIR, "tests", "transcripts", "daemon-*.txt"))):
    replay(path)
finish()
