#!/usr/bin/python3
"""Every sample request in Blues' schemas for a request the simulator implements goes through
the simulator; each answer must match the response schema (or be a well-formed error), and the
logged requests must match the request schemas."""
import json
import os

from simtest import check, finish
from sim import Sim, SerialClient, schema_dir, validate_exchange, validate_log

IMPLEMENTED = """card.attn card.location card.restart card.status card.time card.version
card.wireless dfu.get dfu.status env.default env.get env.modified env.set file.changes
file.changes.pending file.delete file.stats hub.get hub.set hub.status hub.sync hub.sync.status
note.add note.changes note.delete note.get note.template note.update""".split()

if not os.path.isdir(schema_dir()):
    print("schema directory missing: %s" % schema_dir())
    raise SystemExit(1)

samples = []
for name in IMPLEMENTED:
    with open(os.path.join(schema_dir(), name + ".req.notecard.api.json")) as f:
        for smp in json.load(f).get("samples", []):
            samples.append((name, smp["json"]))
check(len(samples) > 40, "enough samples (%d)" % len(samples))

ok = 0
restarts = 0
with Sim(serial=True, args=["--product", "com.example:schema"]) as s:
    c = SerialClient(s.serial_path, timeout=3.0)
    s.inject("data.qi", {"x": 1}, now=True)
    s.control("dfu", data="aGVsbG8=", now=True)
    for name, text in samples:
        req = json.loads(text)
        if req.get("mode") == "off" and name == "hub.set":
            continue            # keep syncing possible for the rest
        if "cmd" in req:
            c.request(req)
        else:
            rsp = c.request(req, crc=True)
            for p in validate_exchange(json.dumps(req), json.dumps(rsp)):
                check(False, "sample %s: %s" % (text, p))
            if "err" not in rsp:
                ok += 1
        if name == "card.restart":
            # the card answers (a req), then resets: wait for the reset, then resync
            restarts += 1
            s.wait_for(lambda: s.counters().get("resets", 0) >= restarts, what="restart")
            s.wait_for(c.resync, what="restart done")
    c.close()
    log_problems = validate_log(s.log_path)
    for p in s.problems():
        check(False, p)
check(ok >= len(samples) // 2, "most samples succeed (%d of %d)" % (ok, len(samples)))
for p in log_problems:
    check(False, "log: " + p)
finish()
