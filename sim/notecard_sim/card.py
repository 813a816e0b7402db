"""The card's brain: notefiles, hub, environment, ATTN, DFU — the Notecard API the gateway uses.

`Card.transact(line)` takes one request line (bytes, without the newline) and returns the response
line (bytes, with "\\r\\n") or None for a `cmd`. Transports (serial, i2c), faults and timing live
elsewhere; everything here runs under one lock, like the card's single request loop.
"""
import base64
import binascii
import hashlib
import json
import os
import random
import re
import threading
import time
import uuid
import zlib

from . import template as tmpl
from .wire import add_crc, dumps, split_crc

QUEUE_OUT = (".qo", ".qos")
QUEUE_IN = (".qi", ".qis")
DB_SYNCED = (".db", ".dbs")
ALL_SUFFIXES = QUEUE_OUT + QUEUE_IN + DB_SYNCED + (".dbx",)
NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
NOTE_OVERHEAD = 64          # bytes of flash per stored note beyond its content (estimate)
DFU_CHUNK_MAX = 8192

# Requests the real card knows (the schema set) that the simulator does not implement.
KNOWN_REQUESTS = set("""
card.attn card.aux card.aux.serial card.binary card.binary.get card.binary.put card.carrier
card.contact card.dfu card.illumination card.io card.led card.location card.location.mode
card.location.track card.monitor card.motion card.motion.mode card.motion.sync
card.motion.track card.power card.random card.restart card.restore card.sleep card.status
card.temp card.time card.trace card.transport card.triangulate card.usage.get card.usage.test
card.version card.voltage card.wifi card.wireless card.wireless.penalty dfu.get dfu.status
env.default env.get env.modified env.set env.template file.changes file.changes.pending
file.clear file.delete file.stats hub.get hub.log hub.set hub.signal hub.status hub.sync
hub.sync.status note.add note.changes note.delete note.get note.template note.update ntn.gps
ntn.reset ntn.status var.delete var.get var.set web web.delete web.get web.post web.put
""".split())


class ReqError(Exception):
    pass


def suffix_of(name):
    i = name.rfind(".")
    return name[i:] if i >= 0 else ""


def now():
    return int(time.time())


def _parse(text):
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


class Card:
    def __init__(self, opts, hub, log=None):
        self.opts = opts
        self.hub = hub                      # hub side: writes synced notes, holds inbound
        self.log = log                      # callable(entry dict) or None
        self.lock = threading.RLock()
        self.rng = random.Random(opts.seed)
        self.counters = {}
        self.requests = []                  # every transaction, as the card saw it
        self.last_crc = None                # (seq, crc) of the last request with a crc
        self.last_rsp = None
        self.sync_event = threading.Event()
        self.sync_busy = False
        self.attn_listeners = []
        self.state = self._fresh_state()
        self._load()

    # ---- state ---------------------------------------------------------------------------
    def _fresh_state(self):
        o = self.opts
        return {
            "files": {},
            "env": {}, "env_default": {}, "env_local": {}, "env_modified": now(),
            "hub": {"product": o.product or "", "sn": o.sn or "", "mode": "periodic",
                    "outbound": 60, "inbound": 240, "host": "a.notefile.net"},
            "attn": {"modes": [], "files": [], "armed": False, "set": False, "fired": [],
                     "enabled": True},
            "dfu": {"on": True, "mode": "idle", "image": None, "meta": None, "pending": None,
                    "host_status": None, "host_err": None, "host_version": None},
            "time_known": not o.fresh, "last_sync": None, "sync_requested": None,
            "flash_writes": 0, "note_seq": 0, "templates": {},
        }

    def _state_path(self):
        return os.path.join(self.opts.state, "card.json") if self.opts.state else None

    def _load(self):
        p = self._state_path()
        if p and os.path.exists(p):
            with open(p) as f:
                saved = json.load(f)
            self.state.update(saved)

    def save(self):
        p = self._state_path()
        if not p:
            return
        with self.lock:
            self._save(p)

    def _save(self, p):
        tmp = "%s.%d.tmp" % (p, threading.get_ident())
        with open(tmp, "w") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    # ---- transactions --------------------------------------------------------------------
    def transact(self, line, transport="?", io_fault=False):
        """Handle one request line; returns response bytes (with CRLF) or None."""
        with self.lock:
            return self._transact(line, transport, io_fault)

    def _transact(self, line, transport, io_fault):
        self.count("requests")
        rsp = self._respond(line, io_fault)
        self.record(line, rsp, transport)
        if rsp is not None:
            rsp += b"\r\n"
        return rsp

    def record(self, line, rsp, transport, **extra):
        """One request log entry: `req`/`rsp` parsed (a dict, {} if not JSON, rsp None when
        there was no answer) and `req_raw`/`rsp_raw` exactly as the card saw and said them."""
        entry = {"t": time.time(), "transport": transport, "req": _parse(line),
                 "req_raw": line.decode("utf-8", "replace"), "rsp": None, "rsp_raw": None}
        if rsp is not None:
            rsp = rsp.rstrip(b"\r\n")
            entry["rsp"] = _parse(rsp)
            entry["rsp_raw"] = rsp.decode("utf-8", "replace")
        entry.update(extra)
        with self.lock:
            self.requests.append(entry)
        if self.log:
            self.log(entry)

    def _respond(self, line, io_fault):
        stripped = line.strip()
        if not stripped:
            self.count("blank_lines")
            return b""
        text, seq, crc = split_crc(stripped)
        if seq is not None and (zlib.crc32(text) & 0xFFFFFFFF) != crc:
            self.count("crc_errors")
            return add_crc(dumps({"err": "crc error {io}"}), seq)
        try:
            req = json.loads(text)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            self.count("parse_errors")
            return dumps({"err": "cannot interpret JSON request {io}"})
        is_cmd = "req" not in req and "cmd" in req
        name = req.get("req", req.get("cmd"))
        if seq is not None and not is_cmd and self.last_crc == (seq, crc) \
                and self.last_rsp is not None:
            # A retry of the request just executed (same sequence number and CRC): answer it
            # again without doing it twice.
            self.count("retries_deduplicated")
            return self.last_rsp
        rid = req.get("id")
        if io_fault:
            self.count("io_faults")
            out = {"err": "request failed: communications error {io}"}
        elif not isinstance(name, str):
            out = {"err": "no request type specified (req or cmd)"}
        else:
            try:
                out = self.dispatch(name, req)
                self.count("ok")
            except ReqError as e:
                out = {"err": str(e)}
                self.count("errors")
            except Exception as e:     # a simulator bug must not kill the card: say so loudly
                import sys
                import traceback
                traceback.print_exc(file=sys.stderr)
                out = {"err": "simulator internal error: %s: %s" % (type(e).__name__, e)}
                self.count("internal_errors")
        if is_cmd:
            return None
        if rid is not None:
            out["id"] = rid
        rsp = dumps(out)
        if seq is not None:
            rsp = add_crc(rsp, seq)
            if not io_fault:
                self.last_crc, self.last_rsp = (seq, crc), rsp
        return rsp

    def dispatch(self, name, req):
        fn = getattr(self, "r_" + name.replace(".", "_"), None)
        if fn is None:
            if name in KNOWN_REQUESTS:
                raise ReqError("%s is not supported by this simulator {not-supported}" % name)
            raise ReqError("unknown request: %s {not-supported}" % name)
        out = fn(req)
        return out if out is not None else {}

    # ---- helpers ------------------------------------------------------------------------
    def _file(self, name, create=False):
        f = self.state["files"].get(name)
        if f is None and create:
            f = {"notes": [], "bytes_json": 0, "bytes_air": 0, "synced_notes": 0}
            self.state["files"][name] = f
        return f

    def _check_name(self, name):
        if not isinstance(name, str) or not NAME_RE.match(name) or \
                suffix_of(name) not in ALL_SUFFIXES:
            raise ReqError("invalid notefile name: %s {notefile-bad-name}" % name)

    def _used_bytes(self):
        used = 0
        for f in self.state["files"].values():
            for n in f["notes"]:
                used += NOTE_OVERHEAD + n.get("air", 0)
        return used

    def storage_percent(self):
        return min(100, (self._used_bytes() * 100) // max(1, self.opts.capacity))

    def _new_id(self):
        self.state["note_seq"] += 1
        return "%d" % self.state["note_seq"]

    def _live(self, f):
        return [n for n in f["notes"] if not n.get("deleted")]

    def _changed(self, name, reason=None):
        """A notefile changed: fire ATTN if it is watched."""
        a = self.state["attn"]
        if a["armed"] and "files" in a["modes"] and name in a["files"]:
            self._attn_fire(name)

    def _attn_fire(self, what):
        a = self.state["attn"]
        if what not in a["fired"]:
            a["fired"].append(what)
        if a["armed"] and not a["set"]:
            a["set"] = True
            a["armed"] = False
            self.count("attn_fired")
            for cb in self.attn_listeners:
                cb(True)

    def _sync_allowed(self):
        return self.state["hub"]["mode"] != "off"

    def request_sync(self):
        if self._sync_allowed():
            self.state["sync_requested"] = now()
            self.sync_event.set()

    # ---- note.* ---------------------------------------------------------------------------
    def r_note_add(self, req):
        name = req.get("file", "data.qo")
        self._check_name(name)
        suf = suffix_of(name)
        if suf in QUEUE_IN:
            raise ReqError("note.add: cannot add notes to an inbound queue (%s) "
                           "{notefile-queue-disallowed}" % name)
        body = req.get("body")
        if body is not None and not isinstance(body, dict):
            raise ReqError("note.add: body must be a JSON object")
        payload = req.get("payload")
        raw = b""
        if payload is not None:
            try:
                raw = base64.b64decode(payload, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise ReqError("note.add: payload must be base64")
        if req.get("binary"):
            raise ReqError("note.add: binary buffer transfers are not supported by this "
                           "simulator {not-supported}")
        key = req.get("key")
        if key is not None and self._env_value(key) is None:
            raise ReqError("note.add: encryption key '%s' is not an environment variable "
                           "{env-noexist}" % key)
        nid = req.get("note")
        f = self._file(name)
        if nid is not None and suf in QUEUE_OUT:
            raise ReqError("note.add: note ID cannot be specified for a queue")
        live = self._live(f) if f else []
        mx = req.get("max")
        if isinstance(mx, int) and mx > 0 and len(live) >= mx:
            raise ReqError("note.add: notefile %s has reached its maximum of %d notes "
                           "{note-max}" % (name, mx))
        ret = {}
        if suf not in QUEUE_OUT:
            if nid in (None, "?"):
                gen = uuid.uuid4().hex[:12]
                if nid == "?":
                    ret["note"] = gen
                nid = gen
            if any(n["id"] == nid for n in live):
                raise ReqError("note.add: note '%s' already exists {note-exists}" % nid)
        else:
            nid = self._new_id()
        bjson = len(dumps(body if body is not None else {})) + len(raw)
        air = bjson
        t = self.state["templates"].get(name)
        if t is not None:
            try:
                air = tmpl.note_size(t, body, len(raw))
            except tmpl.TemplateError as e:
                raise ReqError("note.add: %s" % e)
        if self._used_bytes() + NOTE_OVERHEAD + air > self.opts.capacity * 0.8:
            self.count("storage_full")
            raise ReqError("note.add: notefile storage is full; sync to free space "
                           "{file-storage-full}")
        f = self._file(name, create=True)
        # a db note replacing a deleted tombstone
        f["notes"] = [n for n in f["notes"] if n["id"] != nid]
        note = {"id": nid, "time": now(), "pending": suf != ".dbx", "air": air, "json": bjson}
        if body is not None:
            note["body"] = body
        if payload is not None:
            note["payload"] = payload
        if key is not None:
            note["key"] = key
        if t is not None:
            note["templated"] = True
        f["notes"].append(note)
        f["bytes_json"] += bjson
        f["bytes_air"] += air
        self.count("notes_added")
        total = len(self._live(f))
        ret["total"] = total
        if t is not None:
            ret["template"] = True
        if req.get("sync") and (not isinstance(mx, int) or mx <= 0 or total >= mx):
            self.request_sync()
        elif self.state["hub"]["mode"] == "continuous":
            self.sync_event.set()
        self._changed(name)
        return ret

    def _db_note(self, f, nid, deleted=False):
        for n in f["notes"] if f else []:
            if n["id"] == nid and (deleted or not n.get("deleted")):
                return n
        return None

    def r_note_get(self, req):
        name = req.get("file", "data.qi")
        self._check_name(name)
        suf = suffix_of(name)
        if suf in QUEUE_OUT:
            raise ReqError("note.get: cannot get notes from an outbound queue "
                           "{notefile-queue-disallowed}")
        if req.get("decrypt"):
            raise ReqError("note.get: decryption is not supported by this simulator "
                           "{not-supported}")
        f = self._file(name)
        if suf in QUEUE_IN:
            live = self._live(f) if f else []
            if "note" in req:
                live = [n for n in live if n["id"] == req["note"]]
            if not live:
                raise ReqError("no notes available in %s {note-noexist}" % name)
            n = live[0]
        else:
            nid = req.get("note")
            if nid is None:
                raise ReqError("note.get: note ID is required for a database notefile")
            n = self._db_note(f, nid, deleted=bool(req.get("deleted")))
            if n is None:
                raise ReqError("note '%s' does not exist in %s {note-noexist}" % (nid, name))
        out = {}
        if "body" in n:
            out["body"] = n["body"]
        if "payload" in n:
            out["payload"] = n["payload"]
        out["time"] = n["time"]
        if req.get("delete"):
            self._delete_note(name, f, n)
        return out

    def _delete_note(self, name, f, n):
        if suffix_of(name) in DB_SYNCED:
            n["deleted"] = True          # a tombstone the next sync carries to the hub
            n["pending"] = True
            n.pop("body", None)
            n.pop("payload", None)
        else:
            f["notes"].remove(n)
        self.count("notes_deleted")

    def r_note_delete(self, req):
        name = req.get("file")
        nid = req.get("note")
        if name is None or nid is None:
            raise ReqError("note.delete: file and note are required")
        self._check_name(name)
        if suffix_of(name) in QUEUE_OUT:
            raise ReqError("note.delete: not allowed on an outbound queue "
                           "{notefile-queue-disallowed}")
        f = self._file(name)
        n = self._db_note(f, nid)
        if n is None:
            raise ReqError("note '%s' does not exist in %s {note-noexist}" % (nid, name))
        self._delete_note(name, f, n)
        return {}

    def r_note_update(self, req):
        name = req.get("file")
        nid = req.get("note")
        if name is None or nid is None:
            raise ReqError("note.update: file and note are required")
        self._check_name(name)
        if suffix_of(name) not in DB_SYNCED + (".dbx",):
            raise ReqError("note.update: only database notefiles have updatable notes "
                           "{notefile-queue-disallowed}")
        if "body" not in req and "payload" not in req:
            raise ReqError("note.update: body or payload is required")
        f = self._file(name)
        n = self._db_note(f, nid)
        if n is None:
            raise ReqError("note '%s' does not exist in %s {note-noexist}" % (nid, name))
        if "body" in req:
            if not isinstance(req["body"], dict):
                raise ReqError("note.update: body must be a JSON object")
            n["body"] = req["body"]
        if "payload" in req:
            n["payload"] = req["payload"]
        n["time"] = now()
        n["pending"] = suffix_of(name) != ".dbx"
        return {}

    def r_note_changes(self, req):
        name = req.get("file")
        if name is None:
            raise ReqError("note.changes: file is required")
        self._check_name(name)
        if suffix_of(name) in QUEUE_OUT:
            raise ReqError("note.changes: not allowed on an outbound queue "
                           "{notefile-queue-disallowed}")
        f = self._file(name)
        live = self._live(f) if f else []
        mx = req.get("max")
        notes = {}
        for n in live[:mx] if isinstance(mx, int) and mx > 0 else live:
            e = {"time": n["time"]}
            if "body" in n:
                e["body"] = n["body"]
            if "payload" in n:
                e["payload"] = n["payload"]
            notes[n["id"]] = e
        if req.get("delete"):
            for n in list(live):
                if n["id"] in notes:
                    self._delete_note(name, f, n)
        return {"changes": len(notes), "total": len(live), "notes": notes}

    def r_note_template(self, req):
        name = req.get("file")
        if name is None:
            raise ReqError("note.template: file is required")
        self._check_name(name)
        cur = self.state["templates"].get(name)
        if req.get("verify"):
            if cur is None:
                return {}
            out = {"template": True, "body": cur["body"], "bytes": tmpl.record_size(cur)}
            if cur.get("format"):
                out["format"] = cur["format"]
            return out
        if "body" not in req:
            self.state["templates"].pop(name, None)
            self.count("templates_cleared")
            return {}
        body = req["body"]
        if not isinstance(body, dict):
            raise ReqError("note.template: body must be a JSON object")
        t = {"body": body}
        for k in ("format", "length", "port"):
            if k in req:
                t[k] = req[k]
        if t.get("format") not in (None, "compact"):
            raise ReqError("note.template: unknown format '%s'" % t["format"])
        try:
            size = tmpl.record_size(t)
        except tmpl.TemplateError as e:
            raise ReqError("note.template: %s" % e)
        self.state["templates"][name] = t
        self.state["flash_writes"] += 1
        self.count("templates_set")
        self._file(name, create=True)
        return {"template": True, "bytes": size}

    # ---- file.* ---------------------------------------------------------------------------
    def _file_info(self, names):
        info, changes, total = {}, 0, 0
        for name in names:
            f = self._file(name)
            if f is None:
                continue
            live = self._live(f)
            pend = len([n for n in f["notes"] if n.get("pending")])
            c = len(live) if suffix_of(name) in QUEUE_IN else pend
            info[name] = {"changes": c, "total": len(live)}
            changes += c
            total += len(live)
        return info, changes, total

    def r_file_changes(self, req):
        files = req.get("files")
        if files is not None and not isinstance(files, list):
            raise ReqError("file.changes: files must be an array")
        names = files if files is not None else sorted(self.state["files"])
        info, changes, total = self._file_info(names)
        out = {"changes": changes, "total": total}
        if info:
            out["info"] = info
        return out

    def r_file_changes_pending(self, req):
        names = [n for n in sorted(self.state["files"])
                 if suffix_of(n) in QUEUE_OUT + DB_SYNCED]
        info, changes, total = self._file_info(names)
        info = {k: v for k, v in info.items() if v["changes"]}
        if not info:
            return {}
        return {"total": total, "changes": changes, "pending": True, "info": info}

    def r_file_stats(self, req):
        name = req.get("file")
        names = [name] if name else sorted(self.state["files"])
        info, changes, total = self._file_info(names)
        out = {"total": total, "changes": changes}
        if changes:
            out["sync"] = True
        return out

    def r_file_delete(self, req):
        files = req.get("files")
        if not isinstance(files, list) or not files:
            raise ReqError("file.delete: files must be a non-empty array")
        for name in files:
            self.state["files"].pop(name, None)
            self.state["templates"].pop(name, None)
        return {}

    # ---- hub.* ---------------------------------------------------------------------------
    HUB_MODES = ("periodic", "continuous", "minimum", "off", "dfu", "dfu-completed")

    def r_hub_set(self, req):
        h = self.state["hub"]
        changed = False
        if "mode" in req:
            if req["mode"] not in self.HUB_MODES and req["mode"] != "-":
                raise ReqError("hub.set: unknown mode '%s'" % req["mode"])
            h["mode"] = "periodic" if req["mode"] == "-" else req["mode"]
            changed = True
        for k in ("product", "sn", "host", "voutbound", "vinbound"):
            if k in req:
                if not isinstance(req[k], str):
                    raise ReqError("hub.set: %s must be a string" % k)
                h[k] = req[k]
                changed = True
        for k in ("outbound", "inbound", "duration", "seconds"):
            if k in req:
                if not isinstance(req[k], int) or isinstance(req[k], bool):
                    raise ReqError("hub.set: %s must be an integer" % k)
                h[k] = req[k]
                changed = True
        if "version" in req:
            h["version"] = req["version"]
            changed = True
        if "align" in req:
            h["align"] = bool(req["align"])
            changed = True
        if changed:
            self.state["flash_writes"] += 1
            self.count("hub_set_writes")
        if req.get("sync"):
            self.request_sync()
        return {}

    def r_hub_get(self, req):
        h = self.state["hub"]
        out = {"device": self.opts.device, "mode": h["mode"]}
        for k in ("product", "sn", "host", "voutbound", "vinbound"):
            if h.get(k):
                out[k] = h[k]
        for k in ("outbound", "inbound"):
            if k in h:
                out[k] = h[k]
        return out

    def r_hub_status(self, req):
        if self.state["hub"]["mode"] == "continuous" and not self.gone_hub():
            return {"status": "connected (session open) {connected}", "connected": True}
        return {"status": "idle {disconnected}"}

    def gone_hub(self):
        return False

    def r_hub_sync(self, req):
        if not self._sync_allowed():
            raise ReqError("hub.sync: hub is in mode 'off' {hub-mode}")
        self.request_sync()
        self.count("sync_requests")
        return {}

    def r_hub_sync_status(self, req):
        st = self.state
        if req.get("sync") and self._sync_allowed() and any(
                n.get("pending") for f in st["files"].values() for n in f["notes"]):
            self.request_sync()
        if self.sync_busy or self.sync_event.is_set():
            out = {"status": "sync in progress {sync-begin}", "sync": True}
            if st["sync_requested"]:
                out["requested"] = max(0, now() - st["sync_requested"])
            return out
        if st["last_sync"] is None:
            return {"status": "idle"}
        return {"status": "completed {sync-end}", "time": st["last_sync"],
                "completed": max(0, now() - st["last_sync"])}

    # ---- env.* ---------------------------------------------------------------------------
    def _env_all(self):
        out = dict(self.state["env_default"])
        out.update(self.state["env"])
        out.update(self.state["env_local"])
        return out

    def _env_value(self, name):
        return self._env_all().get(name)

    def r_env_get(self, req):
        t = self.state["env_modified"]
        if isinstance(req.get("time"), int) and req["time"] >= t:
            raise ReqError("environment variables have not been modified {env-not-modified}")
        if "name" in req:
            v = self._env_value(req["name"])
            out = {"time": t}
            if v is not None:
                out["text"] = v
            return out
        allv = self._env_all()
        if "names" in req:
            if not isinstance(req["names"], list):
                raise ReqError("env.get: names must be an array")
            allv = {k: v for k, v in allv.items() if k in req["names"]}
        return {"body": allv, "time": t}

    def r_env_modified(self, req):
        t = self.state["env_modified"]
        if isinstance(req.get("time"), int) and req["time"] >= t:
            raise ReqError("environment variables have not been modified {env-not-modified}")
        return {"time": t}

    def r_env_default(self, req):
        name = req.get("name")
        if not isinstance(name, str) or not name:
            raise ReqError("env.default: name is required")
        text = req.get("text", "")
        if text:
            self.state["env_default"][name] = text
        else:
            self.state["env_default"].pop(name, None)
        self._env_changed()
        return {}

    def r_env_set(self, req):
        name = req.get("name")
        if not isinstance(name, str) or not name:
            raise ReqError("env.set: name is required")
        text = req.get("text", "")
        if text:
            self.state["env_local"][name] = text
        else:
            self.state["env_local"].pop(name, None)
        self._env_changed()
        return {"time": self.state["env_modified"]}

    def _env_changed(self):
        self.state["env_modified"] = max(now(), self.state["env_modified"] + 1)
        a = self.state["attn"]
        if a["armed"] and "env" in a["modes"]:
            self._attn_fire("modified")

    # ---- card.* --------------------------------------------------------------------------
    def r_card_version(self, req):
        v = self.opts.firmware
        major, minor, patch = (int(x) for x in v.split(".")[:3])
        return {"version": "notecard-" + v, "device": self.opts.device,
                "name": "Blues Wireless Notecard", "sku": self.opts.sku, "board": "1.11",
                "cell": True, "gps": True,
                "body": {"org": "Blues Wireless", "product": "Notecard",
                         "version": "notecard-" + v, "ver_major": major, "ver_minor": minor,
                         "ver_patch": patch, "ver_build": 17000, "built": "notecard-sim"}}

    def r_card_status(self, req):
        h = self.state["hub"]
        out = {"status": "{normal}", "usb": True, "storage": self.storage_percent(),
               "connected": h["mode"] == "continuous", "cell": True}
        if self.state["time_known"]:
            out["time"] = now()
        if h["mode"] == "periodic":
            out["inbound"], out["outbound"] = h.get("inbound", 240), h.get("outbound", 60)
        return out

    def r_card_time(self, req):
        if not self.state["time_known"]:
            raise ReqError("time is not yet set {no-time}")
        return {"time": now(), "zone": "UTC,Unknown", "minutes": 0}

    def r_card_wireless(self, req):
        for k in ("mode", "apn", "method", "hours"):
            if k in req:
                raise ReqError("card.wireless: changing %s is not supported by this simulator "
                               "{not-supported}" % k)
        bars = self.opts.bars
        return {"status": "{modem-on}", "count": 3,
                "net": {"iccid": "89011703278100000000", "imsi": "310170810000000",
                        "imei": "860000000000000", "modem": "sim", "band": "LTE BAND 2",
                        "rat": "lte", "rssir": -69, "rssi": -60 - 10 * (4 - bars),
                        "rsrp": -90 - 5 * (4 - bars), "sinr": 10, "rsrq": -10, "bars": bars,
                        "mcc": 310, "mnc": 410}}

    def r_card_location(self, req):
        return {"status": "GPS inactive {gps-inactive}", "mode": "off"}

    def r_card_restart(self, req):
        self.count("restarts")
        self.restart_pending = True
        return {}

    def r_card_attn(self, req):
        a = self.state["attn"]
        if "on" in req and req["on"]:
            a["enabled"] = True
        if "off" in req and req["off"]:
            a["enabled"] = False
        mode = req.get("mode")
        if mode is not None:
            if not isinstance(mode, str):
                raise ReqError("card.attn: mode must be a string")
            for kw in [m.strip() for m in mode.split(",") if m.strip()]:
                neg = kw.startswith("-")
                kw = kw.lstrip("-")
                if kw == "arm":
                    a["armed"], a["set"], a["fired"] = True, False, []
                    for cb in self.attn_listeners:
                        cb(False)
                    secs = req.get("seconds")
                    if isinstance(secs, int) and secs > 0:
                        self.attn_arms = getattr(self, "attn_arms", 0) + 1
                        threading.Timer(secs, self._attn_timeout, args=(self.attn_arms,)).start()
                elif kw == "disarm":
                    a["armed"], a["set"] = False, True
                    for cb in self.attn_listeners:
                        cb(True)
                elif kw in ("files", "env", "sleep", "connected", "watchdog", "location",
                            "motion", "usb", "wireless", "signal", "auxgpio", "rearm"):
                    if neg:
                        if kw in a["modes"]:
                            a["modes"].remove(kw)
                    elif kw not in a["modes"]:
                        a["modes"].append(kw)
                else:
                    raise ReqError("card.attn: unknown mode '%s'" % kw)
        if "files" in req:
            if not isinstance(req["files"], list):
                raise ReqError("card.attn: files must be an array")
            a["files"] = list(req["files"])
        out = {}
        if req.get("verify") or not req.keys() - {"req", "cmd", "id", "crc"} or a["set"]:
            if a["set"] and a["fired"]:
                out["files"] = list(a["fired"])
            elif req.get("verify") and a["files"]:
                out["files"] = list(a["files"])
            out["set"] = a["set"]
        if not a["enabled"]:
            out["off"] = True
        return out

    def _attn_timeout(self, arm):
        with self.lock:
            if arm == getattr(self, "attn_arms", 0) and self.state["attn"]["armed"]:
                self._attn_fire("timeout")

    # ---- dfu.* ---------------------------------------------------------------------------
    def r_dfu_status(self, req):
        d = self.state["dfu"]
        if req.get("name", "user") == "card":
            return {"mode": "idle", "status": "no download in progress", "on": True}
        if req.get("on"):
            d["on"] = True
        if req.get("off"):
            d["on"] = False
        if "version" in req:
            d["host_version"] = req["version"]
        if req.get("stop"):
            d["host_status"] = req.get("status")
            d["host_err"] = req.get("err")
            d["image"], d["meta"] = None, None
            d["mode"] = "error" if req.get("err") else "idle"
            self.count("dfu_stops")
            self.hub.report_dfu(self, d)
        out = {"mode": d["mode"], "on": d["on"]}
        if not d["on"]:
            out["off"] = True
        if d["mode"] == "ready" and d["on"]:
            out["status"] = "successfully downloaded"
            out["body"] = d["meta"]
        elif d["mode"] == "error":
            out["status"] = d["host_err"] or "error"
        else:
            out["status"] = "no download in progress"
        return out

    def r_dfu_get(self, req):
        d = self.state["dfu"]
        if req.get("binary"):
            raise ReqError("dfu.get: binary transfers are not supported by this simulator "
                           "{not-supported}")
        if d["mode"] != "ready" or d["image"] is None:
            raise ReqError("dfu.get: no firmware image is ready {dfu-not-ready}")
        length = req.get("length")
        offset = req.get("offset", 0)
        if not isinstance(length, int) or length < 0:
            raise ReqError("dfu.get: length is required")
        if length > DFU_CHUNK_MAX:
            raise ReqError("dfu.get: length may be at most %d bytes" % DFU_CHUNK_MAX)
        if length == 0:
            return {}
        if not isinstance(offset, int) or offset < 0:
            raise ReqError("dfu.get: offset must be a non-negative integer")
        img = base64.b64decode(d["image"])
        self.count("dfu_bytes", len(img[offset:offset + length]))
        return {"payload": base64.b64encode(img[offset:offset + length]).decode()}

    def set_dfu_image(self, data, name="host-image.bin", version=None, ready=True, md5=None):
        """A host image on the hub; `md5` overrides the digest reported (to test a mismatch)."""
        d = self.state["dfu"]
        meta = {"length": len(data), "md5": md5 or hashlib.md5(data).hexdigest(),
                "crc32": zlib.crc32(data) & 0xFFFFFFFF, "created": now(), "modified": now(),
                "name": name, "source": name, "type": "firmware", "info": {}}
        if version:
            meta["version"] = version
        if ready:
            d["image"], d["meta"], d["mode"] = base64.b64encode(data).decode(), meta, "ready"
            d["host_status"] = d["host_err"] = None
        else:
            d["pending"] = {"image": base64.b64encode(data).decode(), "meta": meta}

    # ---- sync (called by the sync thread) ----------------------------------------------
    def sync(self):
        """Move outbound notes to the hub and deliver inbound. Returns counts."""
        st = self.state
        out = 0
        for name in sorted(st["files"]):
            suf = suffix_of(name)
            f = st["files"][name]
            if suf in QUEUE_OUT:
                for n in f["notes"]:
                    self.hub.emit(self, name, n)
                    out += 1
                f["synced_notes"] += len(f["notes"])
                f["notes"] = []
            elif suf in DB_SYNCED:
                for n in list(f["notes"]):
                    if n.get("pending"):
                        self.hub.emit(self, name, n)
                        out += 1
                        n["pending"] = False
                        if n.get("deleted"):
                            f["notes"].remove(n)
        inbound = self.hub.take_inbound()
        got = 0
        env_changed = False
        for item in inbound:
            if "env" in item:
                for k, v in item["env"].items():
                    if v is None or v == "":
                        st["env"].pop(k, None)
                    else:
                        st["env"][k] = str(v)
                env_changed = True
                continue
            if "dfu" in item:
                d = st["dfu"]
                d["pending"] = item["dfu"]
                continue
            name = item.get("file", "data.qi")
            suf = suffix_of(name)
            f = self._file(name, create=True)
            n = {"id": item.get("note") or self._new_id(), "time": item.get("time", now()),
                 "pending": False, "air": len(dumps(item.get("body", {}))), "json": 0}
            if "body" in item:
                n["body"] = item["body"]
            if "payload" in item:
                n["payload"] = item["payload"]
            if suf in DB_SYNCED + (".dbx",):
                f["notes"] = [x for x in f["notes"] if x["id"] != n["id"]]
                if item.get("deleted"):
                    self._changed(name)
                    continue
            f["notes"].append(n)
            got += 1
            self._changed(name)
        d = st["dfu"]
        if d.get("pending"):
            p = d["pending"]
            d["image"], d["meta"], d["mode"], d["pending"] = p["image"], p["meta"], "ready", None
            d["host_status"] = d["host_err"] = None
        if env_changed:
            self._env_changed()
        st["last_sync"] = now()
        st["time_known"] = True
        self.count("syncs")
        self.count("notes_synced_out", out)
        self.count("notes_synced_in", got)
        return out, got
