"""The notefile requests: note.add/get/delete/update/changes/template and file.* (a mixin of
Card; it uses the card's state and helpers)."""
import base64
import binascii
import uuid

from . import template as tmpl
from .util import (DB_SYNCED, NOTE_OVERHEAD, QUEUE_IN, QUEUE_OUT, ReqError, dumps, now,
                   suffix_of)


class NotesAPI:
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
