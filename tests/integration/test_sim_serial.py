#!/usr/bin/python3
"""notecard-sim over its pty: bytes on the wire (CRC, id, cmd), notefile kinds, sync to the hub
file, inbound delivery, env, ATTN, templates, DFU, persistence across a restart."""
import base64
import hashlib
import json
import os
import tempfile

from simtest import check, finish
from sim import Sim, SerialClient, crc_add, validate_log

state = tempfile.mkdtemp(prefix="ncsim-state-")
img = os.urandom(20000)
imgpath = os.path.join(state, "image.bin")
with open(imgpath, "wb") as f:
    f.write(img)

with Sim(serial=True, state=state, args=["--product", "com.example:test"]) as s:
    c = SerialClient(s.serial_path)

    # --- wire: crc, id, cmd, blank line, garbage
    raw = c.raw(b'{"req":"card.version"}')
    check(raw.endswith(b"}\r\n") and b'"crc"' not in raw, "plain request: CRLF, no crc")
    line = crc_add(b'{"req":"hub.get"}', 0x1234)
    raw = c.raw(line)
    check(b'"crc":"1234:' in raw, "crc request answered with the same sequence number")
    rsp = c.request({"req": "card.version", "id": 42})
    check(rsp.get("id") == 42, "id echoed")
    raw = c.raw(b'{"req":"card.version","crc":"0007:DEADBEEF"}')
    check(b"{io}" in raw and b'"crc":"0007:' in raw, "bad crc -> {io} with crc")
    raw = c.raw(b'{"req":"card.vers')
    check(b"{io}" in raw, "garbled JSON -> {io}")
    check(c.raw(b"") == b"\r\n", "blank line answered with CRLF (resync)")
    empty = crc_add(b"{}", 3)
    check(empty == b'{ "crc":"0003:%08X"}' % (__import__("zlib").crc32(b"{}")), "crc on {}")
    c.request({"cmd": "hub.set", "mode": "minimum"})
    check(c.drain(0.2) == b"", "cmd gets no response")
    check(c.request({"req": "hub.get"})["mode"] == "minimum", "cmd executed")
    check("{not-supported}" in c.request({"req": "bogus.req"})["err"], "unknown request")
    check("{not-supported}" in c.request({"req": "web.get", "route": "x"})["err"],
          "web.* is not faked")

    # --- retry of the same sequence number is answered, not executed twice
    line = crc_add(b'{"req":"note.add","file":"dup.qo","body":{"n":1}}', 77)
    r1 = c.raw(line)
    r2 = c.raw(line)
    check(r1 == r2, "retried request gets the same answer")
    check(s.files()["dup.qo"]["total"] == 1, "retried note.add not executed twice")

    # --- note.add validation
    bad = [({"req": "note.add", "file": "x.qi", "body": {}}, "queue"),
           ({"req": "note.add", "file": "x.txt", "body": {}}, "{notefile-bad-name}"),
           ({"req": "note.add", "file": "x.qo", "body": [1]}, "object"),
           ({"req": "note.add", "file": "x.qo", "payload": "!!"}, "base64"),
           ({"req": "note.add", "file": "x.qo", "note": "a", "body": {}}, "note ID"),
           ({"req": "note.add", "file": "x.qo", "key": "nokey", "body": {}}, "key")]
    for req, word in bad:
        r = c.request(req)
        check("err" in r and word in r["err"], "note.add refused: %s -> %r" % (word, r))

    # --- queues out, sync to hub
    for i in range(3):
        r = c.request({"req": "note.add", "file": "sensors.qo", "body": {"i": i}})
        check(r == {"total": i + 1}, "note.add total %d: %r" % (i + 1, r))
    c.request({"req": "note.add", "file": "bin.qos", "payload": base64.b64encode(b"\x01\x02").decode()})
    fc = c.request({"req": "file.changes.pending"})
    check(fc.get("pending") and fc["info"]["sensors.qo"]["changes"] == 3, "file.changes.pending")
    check(c.request({"req": "hub.sync"}) == {}, "hub.sync")
    s.wait_for(lambda: "completed" in c.request({"req": "hub.sync.status"}).get("status", ""),
               what="sync completed")
    hub = [e for e in s.hub_notes() if e["file"] == "sensors.qo"]
    check([e["body"]["i"] for e in hub] == [0, 1, 2], "notes reached the hub in order")
    e = hub[0]
    check(all(k in e for k in ("event", "device", "product", "file", "body", "when")),
          "hub event fields")
    check(e["product"] == "com.example:test", "product on hub events")
    check(any(e["file"] == "bin.qos" and e["payload"] == "AQI=" for e in s.hub_notes()),
          "payload reached the hub")
    check(c.request({"req": "file.changes.pending"}) == {}, "nothing pending after sync")
    with open(s.hub_path) as f:
        check(len(f.readlines()) == len(s.hub_notes()), "hub file has one line per event")

    # --- mode off: nothing moves
    c.request({"req": "hub.set", "mode": "off"})
    c.request({"req": "note.add", "file": "off.qo", "body": {}, "sync": True})
    check("{hub-mode}" in c.request({"req": "hub.sync"}).get("err", ""), "hub.sync in mode off")
    check(not any(e["file"] == "off.qo" for e in s.hub_notes()), "mode off: nothing synced")
    c.request({"req": "hub.set", "mode": "periodic"})

    # --- inbound queue, via control and via the inbound directory
    s.inject("cmd.qi", {"a": 1})
    with open(os.path.join(s.inbound_dir, "001.json"), "w") as f:
        json.dump([{"file": "cmd.qi", "body": {"a": 2}}, {"env": {"level": "7"}}], f)
    r = c.request({"req": "note.get", "file": "cmd.qi"})
    check("{note-noexist}" in r.get("err", ""), "inbound waits for a sync")
    s.sync()
    check(not os.listdir(s.inbound_dir), "inbound file consumed")
    r = c.request({"req": "note.get", "file": "cmd.qi"})
    check(r.get("body") == {"a": 1}, "note.get without delete peeks")
    r = c.request({"req": "note.get", "file": "cmd.qi"})
    check(r.get("body") == {"a": 1}, "peek again: same note")
    r = c.request({"req": "note.get", "file": "cmd.qi", "delete": True})
    check(r.get("body") == {"a": 1}, "note.get delete pops")
    r = c.request({"req": "note.get", "file": "cmd.qi", "delete": True})
    check(r.get("body") == {"a": 2}, "second inbound note")
    check("{note-noexist}" in c.request({"req": "note.get", "file": "cmd.qi"}).get("err", ""),
          "empty queue -> {note-noexist}")
    check("{notefile-queue-disallowed}" in c.request(
        {"req": "note.get", "file": "sensors.qo"}).get("err", ""), "note.get on .qo refused")

    # --- env
    r = c.request({"req": "env.get", "name": "level"})
    check(r.get("text") == "7", "env var from the hub")
    t = c.request({"req": "env.modified"})["time"]
    check("{env-not-modified}" in c.request({"req": "env.modified", "time": t}).get("err", ""),
          "env.modified with current time")
    c.request({"req": "env.default", "name": "dflt", "text": "x"})
    check(c.request({"req": "env.get"})["body"] == {"level": "7", "dflt": "x"}, "env.get all")

    # --- db and dbx
    r = c.request({"req": "note.add", "file": "cfg.db", "note": "?", "body": {"v": 1}})
    nid = r.get("note")
    check(nid and r["total"] == 1, "db note with generated id")
    check("{note-exists}" in c.request({"req": "note.add", "file": "cfg.db", "note": nid,
                                        "body": {}}).get("err", ""), "duplicate id refused")
    c.request({"req": "note.update", "file": "cfg.db", "note": nid, "body": {"v": 2}})
    check(c.request({"req": "note.get", "file": "cfg.db", "note": nid})["body"] == {"v": 2},
          "note.update")
    c.request({"req": "note.add", "file": "local.dbx", "note": "k", "body": {"x": 1}})
    ch = c.request({"req": "note.changes", "file": "local.dbx"})
    check(ch["total"] == 1 and "k" in ch["notes"], "note.changes")
    s.sync()
    check(any(e["file"] == "cfg.db" and e.get("note") == nid for e in s.hub_notes()),
          "db note synced with its id")
    check(not any(e["file"] == "local.dbx" for e in s.hub_notes()), "dbx stays local")
    c.request({"req": "note.delete", "file": "cfg.db", "note": nid})
    check("{note-noexist}" in c.request({"req": "note.get", "file": "cfg.db",
                                         "note": nid}).get("err", ""), "note.delete")
    s.inject("cfg.db", {"remote": True}, note="r1", now=True)
    check(c.request({"req": "note.get", "file": "cfg.db", "note": "r1"})["body"] ==
          {"remote": True}, "inbound db update")

    # --- ATTN
    c.request({"req": "card.attn", "mode": "arm,files", "files": ["cmd.qi"]})
    check(s.attn()["set"] is False and s.attn()["armed"], "attn armed, low")
    s.inject("other.qi", {"n": 0}, now=True)
    check(s.attn()["set"] is False, "unwatched file does not fire ATTN")
    s.inject("cmd.qi", {"n": 1}, now=True)
    check(s.attn()["set"] is True, "watched file fires ATTN")
    r = c.request({"req": "card.attn"})
    check(r.get("set") is True and "cmd.qi" in r.get("files", []), "card.attn reports files")
    c.request({"req": "card.attn", "mode": "arm,env"})
    check(s.attn()["set"] is False, "re-armed")
    s.env({"level": "8"}, now=True)
    check(s.attn()["set"] is True, "env change fires ATTN")

    # --- templates: byte accounting
    r = c.request({"req": "note.template", "file": "t.qo", "format": "compact",
                   "body": {"a": 12.1, "b": 14, "ok": True, "s": "10"}})
    check(r.get("bytes") == 2 + 4 + 1 + 10, "template record size %r" % r)
    r = c.request({"req": "note.add", "file": "t.qo", "body": {"a": 1.5, "b": 7, "ok": False,
                                                               "s": "hi"}})
    check(r.get("template") is True, "templated note.add")
    r = c.request({"req": "note.add", "file": "t.qo", "body": {"zzz": 1}})
    check("{template-incompatible}" in r.get("err", ""), "body outside template refused")
    r = c.request({"req": "note.add", "file": "t.qo", "body": {"b": 1 << 40}})
    check("{template-incompatible}" in r.get("err", ""), "int out of range refused")
    f = s.files()["t.qo"]
    check(f["bytes_json"] == len('{"a":1.5,"b":7,"ok":false,"s":"hi"}') and
          f["bytes_templated"] == 17, "bytes_json / bytes_templated %r" % f)
    # every documented type hint's size (compact: no metadata)
    hints = {"i8": 11, "i16": 12, "i24": 13, "i32": 14, "i64": 18, "u8": 21, "u16": 22,
             "u24": 23, "u32": 24, "f16": 12.1, "f32": 14.1, "f64": 18.1, "b": True,
             "s5": "5", "sv": "0", "nested": {"x": 12}}
    r = c.request({"req": "note.template", "file": "types.qo", "format": "compact",
                   "body": hints})
    want = 1 + 2 + 3 + 4 + 8 + 1 + 2 + 3 + 4 + 2 + 4 + 8 + 1 + 5 + 1 + 2
    check(r.get("bytes") == want, "type hint sizes: %r, want %d" % (r, want))
    r = c.request({"req": "note.template", "file": "meta.qo", "body": {"a": 11}})
    check(r.get("bytes") == 1 + 16, "non-compact template carries metadata: %r" % r)
    c.request({"req": "note.add", "file": "types.qo", "body": {"sv": "hello", "u8": 255}})
    check(s.files()["types.qo"]["bytes_templated"] == want + 5, "variable string counted")
    r = c.request({"req": "note.add", "file": "types.qo", "body": {"u8": 256}})
    check("{template-incompatible}" in r.get("err", ""), "u8 range")
    v = c.request({"req": "note.template", "file": "t.qo", "verify": True})
    check(v.get("template") is True and v.get("format") == "compact", "template verify")

    # --- card.*
    st = c.request({"req": "card.status"})
    check(st["status"] == "{normal}" and isinstance(st["storage"], int), "card.status")
    check("zone" in c.request({"req": "card.time"}), "card.time")
    check(c.request({"req": "card.wireless"})["net"]["bars"] == 3, "card.wireless")
    check("mode" in c.request({"req": "card.location"}), "card.location")

    # --- dfu
    check(c.request({"req": "dfu.status", "name": "user"})["mode"] == "idle", "dfu idle")
    check("{dfu-not-ready}" in c.request({"req": "dfu.get", "length": 10}).get("err", ""),
          "dfu.get without image")
    s.control("dfu", path=imgpath, version="1.2.3")
    check(c.request({"req": "dfu.status"})["mode"] == "idle", "image waits for a sync")
    s.sync()
    ds = c.request({"req": "dfu.status", "name": "user"})
    check(ds["mode"] == "ready" and ds["body"]["length"] == len(img) and
          ds["body"]["md5"] == hashlib.md5(img).hexdigest(), "dfu ready with length and md5")
    got = b""
    while len(got) < len(img):
        r = c.request({"req": "dfu.get", "length": 8192, "offset": len(got)})
        got += base64.b64decode(r["payload"])
    check(got == img, "dfu.get reassembles the image")
    check("8192" in c.request({"req": "dfu.get", "length": 8193}).get("err", ""),
          "dfu.get chunk limit")
    c.request({"req": "dfu.status", "stop": True, "status": "installed 1.2.3"})
    d = s.control("dfu_status")["dfu"]
    check(d["host_status"] == "installed 1.2.3" and d["mode"] == "idle", "dfu stop recorded")
    check(any(e["file"] == "_dfu" for e in s.hub_notes()), "dfu outcome reported to hub")

    # --- storage fills
    c.request({"req": "note.add", "file": "keep.qo", "body": {"x": 1}})
    c.close()
    problems = validate_log(s.log_path, skip_unparsable=True)
    for p in s.problems():
        check(False, p)

# Requests this test sent wrong on purpose must be flagged by the schema check; nothing else
# (api.json also holds payloads to base64, which Blues' schemas do not).
deliberate = ('"file":"x.qi"', '"file":"x.txt"', '"body":[1]', '"payload":"!!"', "bogus.req",
              "web.get")
check(any('"file":"x.txt"' in p for p in problems), "validate_log flags a bad notefile name")
for p in problems:
    if not any(d in p for d in deliberate):
        check(False, "schema: " + p)

# --- a restart keeps the card's flash (state dir)
with Sim(serial=True, state=state) as s:
    c = SerialClient(s.serial_path)
    check(s.files().get("keep.qo", {}).get("total") == 1, "queued note survives a restart")
    check(c.request({"req": "hub.get"}).get("product") == "com.example:test",
          "hub settings survive a restart")
    c.close()

# --- the hub mode's own schedule: periodic (a simulated minute of 0.1 s) and continuous
attn_file = os.path.join(state, "attn")
with Sim(serial=True, args=["--minute", "0.1", "--attn-file", attn_file]) as s:
    c = SerialClient(s.serial_path)
    c.request({"req": "hub.set", "mode": "periodic", "outbound": 1, "inbound": 1})
    c.request({"req": "note.add", "file": "p.qo", "body": {"n": 1}})
    s.wait_for(lambda: any(e["file"] == "p.qo" for e in s.hub_notes()), what="periodic sync")
    s.inject("p.qi", {"n": 2})
    s.wait_for(lambda: "body" in c.request({"req": "note.get", "file": "p.qi"}),
               what="periodic inbound")
    c.request({"req": "hub.set", "mode": "continuous"})
    check(c.request({"req": "hub.status"}).get("connected") is True, "continuous: connected")
    c.request({"req": "note.add", "file": "c.qo", "body": {"n": 3}})
    s.wait_for(lambda: any(e["file"] == "c.qo" for e in s.hub_notes()), what="continuous out")
    s.inject("c.qi", {"n": 4})
    s.wait_for(lambda: "body" in c.request({"req": "note.get", "file": "c.qi"}),
               what="continuous inbound")
    c.request({"req": "card.attn", "mode": "arm", "seconds": 1})
    with open(attn_file) as f:
        check(f.read() == "0\n", "attn file: low while armed")
    s.wait_for(lambda: s.attn()["set"], what="attn timeout")
    check("timeout" in s.attn()["fired"], "attn fired by its timeout")
    with open(attn_file) as f:
        check(f.read() == "1\n", "attn file: high once fired")
    c.close()

# --- inbound from a JSON-lines file, read on from where the last sync stopped
inbox = os.path.join(state, "inbox.jsonl")
open(inbox, "w").close()
with Sim(serial=True, args=["--inbound", inbox]) as s:
    c = SerialClient(s.serial_path)
    with open(inbox, "a") as f:
        f.write(json.dumps({"file": "l.qi", "body": {"n": 1}}) + "\n")
        f.write(json.dumps({"file": "l.qi", "body": {"n": 2}}))       # not finished yet
    s.sync()
    check(c.request({"req": "file.changes", "files": ["l.qi"]})["total"] == 1,
          "inbound file: complete lines only")
    with open(inbox, "a") as f:
        f.write("\n")
    s.sync()
    s.sync()
    check(c.request({"req": "file.changes", "files": ["l.qi"]})["total"] == 2,
          "inbound file: each line once")
    c.close()

# --- a full card refuses notes
with Sim(serial=True, args=["--capacity", "2000"]) as s:
    c = SerialClient(s.serial_path)
    errs = [c.request({"req": "note.add", "body": {"pad": "x" * 100}}) for _ in range(20)]
    check(any("{file-storage-full}" in r.get("err", "") for r in errs), "full card refuses")
    check(c.request({"req": "card.status"})["storage"] >= 70, "storage grows")
    c.close()

finish()
