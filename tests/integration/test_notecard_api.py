#!/usr/bin/python3
"""The project's Notecard API description (sim/notecard_sim/api.json) and its checker:
- the description is well formed and its samples fit it;
- it lists exactly the requests the simulator implements (its r_* dispatch table), and every
  request notegwd's sources send (a new request in src/ or plugins/ fails here until it is
  described; the integration tests' validate_log catches those built at run time);
- the checker catches each kind of mistake: unknown request or field, wrong type, missing
  required field, enum, req/cmd, id echo, every crc rule, malformed errors."""
import os
import re
import sys

from simtest import check, finish
from sim import TOP_SRCDIR, api

sys.path.insert(0, os.path.join(TOP_SRCDIR, "sim"))
from notecard_sim.card import Card  # noqa: E402
from notecard_sim.wire import add_crc  # noqa: E402

A = api()
described = set(A.names())

# --- the description itself
for p in A.lint():
    check(False, "api.json: " + p)

# --- the simulator's dispatch table
implemented = {n[2:].replace("_", ".") for n in dir(Card) if n.startswith("r_")}
check(len(implemented) > 20, "found the simulator's requests (%d)" % len(implemented))
for n in sorted(implemented - described):
    check(False, "the simulator implements %s, api.json does not describe it" % n)
for n in sorted(described - implemented):
    check(False, "api.json describes %s, the simulator does not implement it" % n)

# --- what the daemon's sources send: json_pack(..."req", "NAME"...) and "{\"req\":\"NAME\"}"
SENT = [re.compile(r'"req",\s*"([a-z]+\.[a-z0-9.]+)"'),
        re.compile(r'\\"req\\":\s*\\"([a-z]+\.[a-z0-9.]+)\\"')]
sent = {}
for top in ("src", "plugins"):
    for d, _, files in os.walk(os.path.join(TOP_SRCDIR, top)):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(d, f)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            for rx in SENT:
                for m in rx.finditer(text):
                    sent.setdefault(m.group(1), os.path.relpath(path, TOP_SRCDIR))
for must in ("note.add", "note.get", "hub.set", "hub.sync", "card.attn", "dfu.get",
             "note.template"):
    check(must in sent, "the source scan finds %s" % must)
for n, where in sorted(sent.items()):
    check(n in described, "%s sends %s, api.json does not describe it" % (where, n))


# --- the checker catches mistakes
def spoil(line):
    """The line with the last digit of its crc changed."""
    d = line[-3:-2]
    return line[:-3] + (b"1" if d == b"0" else b"0") + line[-2:]


def flagged(req, rsp, word):
    probs = A.check_exchange(req if isinstance(req, str) else req.decode(),
                             rsp if rsp is None or isinstance(rsp, str) else rsp.decode())
    check(any(word in p for p in probs), "flagged (%s): %s -> %s: %s" % (word, req, rsp, probs))


def fits(req, rsp):
    probs = A.check_exchange(req if isinstance(req, str) else req.decode(),
                             rsp if rsp is None or isinstance(rsp, str) else rsp.decode())
    check(not probs, "fits: %s -> %s: %s" % (req, rsp, probs))


fits(add_crc(b'{"req":"card.version","id":3}', 9), add_crc(b'{"version":"8.1.3","id":3}', 9))
fits(add_crc(b'{"req":"hub.sync"}', 0), add_crc(b'{}', 0))
fits('{"cmd":"card.attn","mode":"arm,files","files":["data.qi"]}', None)
fits('{"req":"note.get","file":"data.qi"}', '{"err":"no notes {note-noexist}"}')
fits(spoil(add_crc(b'{"req":"card.version"}', 1)), add_crc(b'{"err":"crc error {io}"}', 1))
flagged('{"req":"web.get"}', '{}', "not described")
flagged('{"req":"note.add","bogus":1}', '{"total":1}', "'bogus' is not described")
flagged('{"req":"note.add","file":"x.qo","body":[1]}', '{"total":1}', "is not object")
flagged('{"req":"note.add","file":"x.qi"}', '{"total":1}', "not a notefile_writable")
flagged('{"req":"note.changes"}', '{}', "required field 'file' missing")
flagged('{"req":"hub.set","mode":"sometimes"}', '{}', "is not one of")
flagged('{"req":"hub.set","outbound":-5}', '{}', "below")
flagged('{"req":"card.version","cmd":"card.version"}', '{}', "exactly one of req and cmd")
flagged('{"req":1}', '{}', "not a string")
flagged('{"cmd":"hub.sync","crc":"0000:00000000"}', None, "a cmd carries no crc")
flagged('{"cmd":"hub.sync"}', '{}', "a cmd was answered")
flagged('{"req":"card.version","id":"x"}', '{"version":"1","id":"x"}', "not an integer")
flagged('{"req":"card.version","id":4}', '{"version":"1"}', "not echoed")
flagged('{"req":"card.version"}', '{"version":"1","id":4}', "an id the request lacked")
flagged('{"req":"card.version"}', '{"name":"x"}', "required field 'version' missing")
flagged('{"req":"card.version"}', '{"version":1}', "is not string")
flagged('{"req":"card.version"}', '{"version":"1","extra":true}', "'extra' is not described")
flagged('{"req":"card.version"}', '{"err":"x","why":1}', "error answer malformed")
flagged('{"req":"card.version"}', '{"err":5}', "error answer malformed")
flagged('{"req":"card.version","crc":"12:34"}', '{}', "not SSSS:CCCCCCCC")
flagged('{"crc":"0000:00000000","req":"card.version"}', '{}', "not the last field")
flagged(add_crc(b'{"req":"card.version"}', 2), '{"version":"1"}', "answer has none")
flagged(add_crc(b'{"req":"card.version"}', 2), add_crc(b'{"version":"1"}', 3), "sequence")
flagged(add_crc(b'{"req":"card.version"}', 2), spoil(add_crc(b'{"version":"1"}', 2)),
        "answer crc wrong")
flagged(spoil(add_crc(b'{"req":"card.version"}', 2)), add_crc(b'{"version":"1"}', 2),
        "wrong crc was not answered {io}")
flagged('{"req":"card.version"', '{}', "request is not JSON")
flagged('{"req":"card.version"}', 'x', "answer is not JSON")
finish()
