"""The card's brain: state, the request loop and sync. The requests themselves are in
api_notes.py (note.*, file.*) and api_hub.py (hub.*, env.*, card.*, dfu.*).

`Card.transact(line)` takes one request line (bytes, without the newline) and returns the response
line (bytes, with "\\r\\n") or None for a `cmd`. Transports (serial, i2c), faults and timing live
elsewhere; everything here runs under one lock, like the card's single request loop.
"""
import json
import os
import random
import sys
import threading
import time
import zlib

from . import apicheck
from .api_hub import HubCardAPI
from .api_notes import NotesAPI
from .util import (ALL_SUFFIXES, DB_SYNCED, KNOWN_REQUESTS, NAME_RE, NOTE_OVERHEAD,
                   QUEUE_OUT, ReqError, _parse, now, suffix_of)
from .wire import add_crc, dumps, split_crc


REQUESTS_KEPT = 100000      # transactions kept in memory for the control socket


class Card(NotesAPI, HubCardAPI):
    def __init__(self, opts, hub, log=None):
        self.opts = opts
        self.hub = hub                      # hub side: writes synced notes, holds inbound
        self.log = log                      # callable(entry dict) or None
        self.lock = threading.RLock()
        self.rng = random.Random(opts.seed)
        self.counters = {}
        self.requests = []                  # recent transactions, as the card saw them
        self.requests_base = 0              # absolute index of requests[0] (older ones dropped)
        self.last_crc = None                # (seq, crc) of the last request with a crc
        self.last_rsp = None
        self.sync_event = threading.Event()
        self.sync_busy = False
        self.attn_listeners = []
        self.state = self._fresh_state()
        self._load()
        # api.json: every answer this card gives must fit it; a request that does not is
        # reported (a real card often accepts it, so the simulator still answers it)
        self.api = apicheck.default() if getattr(opts, "api_check", True) else None

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
            # no fsync: the file must survive the simulator being killed, not a power cut
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
            if len(self.requests) > REQUESTS_KEPT:
                drop = len(self.requests) // 2     # the --log file keeps everything
                del self.requests[:drop]
                self.requests_base += drop
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
                self._check_request(name, req)
                out = self.dispatch(name, req)
                self.count("ok")
                self._check_answer(name, out)
            except ReqError as e:
                out = {"err": str(e)}
                self.count("errors")
            except Exception as e:     # a simulator bug must not kill the card: say so loudly
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

    def _check_request(self, name, req):
        if self.api is None or name not in self.api.requests:
            return
        for p in self.api.check_request(req):
            self.count("api_request_mismatches")
            print("notecard-sim: request outside api.json: %s" % p, file=sys.stderr, flush=True)

    def _check_answer(self, name, out):
        if self.api is None or name not in self.api.requests:
            return
        for p in self.api.check_answer(name, out if out is not None else {}):
            self.count("api_errors")
            print("notecard-sim: answer outside api.json: %s" % p, file=sys.stderr, flush=True)

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
