"""Checks Notecard requests and answers against api.json, notegw's own description of the
requests it uses (fields, types, required keys, and the envelope: req/cmd, id, crc).

Standard library only: the simulator checks its own answers with it, and tests/lib/sim.py checks
whole transaction logs. Each check returns a list of problems (strings); empty means it fits.
docs/notecard-api.md describes the file's format.
"""
import json
import os
import re
import zlib

API_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api.json")
ENVELOPE = ("req", "cmd", "id", "crc")
TYPES = ("string", "integer", "number", "boolean", "object", "array", "string[]")
# The crc field at the end of a line, as the host appends it (see "envelope" in api.json).
CRC_TAIL = re.compile(r'(?P<sep>[ ,]?)"crc":"(?P<val>[^"]*)"\}\s*$')


def _is(value, t):
    if t == "string":
        return isinstance(value, str)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string[]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise ValueError("unknown type %r" % t)


def field_spec(spec):
    """A field's description as a dict: {"type": ..., optional "format", "enum", "min"}."""
    return {"type": spec} if isinstance(spec, str) else spec


class API:
    """The loaded description. `requests` maps a request name to its entry."""

    def __init__(self, path=API_PATH):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.requests = self.doc["requests"]
        self.formats = {k: re.compile(v) for k, v in self.doc["formats"].items()}
        self.crc_re = re.compile(self.doc["envelope"]["crc_pattern"])

    def names(self):
        return sorted(self.requests)

    # ---- the description itself --------------------------------------------------------
    def lint(self):
        """Problems of the description itself: unknown types or formats, required keys that
        are not fields, samples that do not fit."""
        out = []
        for name, r in sorted(self.requests.items()):
            for side in ("request", "answer"):
                part = r.get(side)
                if not isinstance(part, dict) or not isinstance(part.get("fields"), dict):
                    out.append("%s: no %s fields" % (name, side))
                    continue
                for fname, spec in part["fields"].items():
                    s = field_spec(spec)
                    for t in s.get("type", "").split("|"):
                        if t not in TYPES:
                            out.append("%s %s.%s: unknown type %r" % (name, side, fname, t))
                    if "format" in s and s["format"] not in self.formats:
                        out.append("%s %s.%s: unknown format %r" % (name, side, fname,
                                                                   s["format"]))
                    if set(s) - {"type", "format", "enum", "min"}:
                        out.append("%s %s.%s: unknown keys %s" % (
                            name, side, fname, sorted(set(s) - {"type", "format", "enum", "min"})))
                    if fname in ENVELOPE:
                        out.append("%s %s.%s: an envelope field" % (name, side, fname))
                for k in part.get("required", []):
                    if k not in part["fields"]:
                        out.append("%s %s: required %r is not a field" % (name, side, k))
            if not r.get("samples"):
                out.append("%s: no samples" % name)
            for smp in r.get("samples", []):
                if smp.get("req", smp.get("cmd")) != name:
                    out.append("%s: sample %r names another request" % (name, smp))
                out += ["%s: sample %r: %s" % (name, smp, p) for p in self.check_request(smp)]
        return out

    # ---- one object -------------------------------------------------------------------
    def _fields(self, what, part, obj):
        out = []
        fields = part["fields"]
        for k, v in obj.items():
            if k in ENVELOPE:
                continue
            spec = fields.get(k)
            if spec is None:
                out.append("%s: field %r is not described" % (what, k))
                continue
            out += self._value(what + "." + k, field_spec(spec), v)
        for k in part.get("required", []):
            if k not in obj:
                out.append("%s: required field %r missing" % (what, k))
        return out

    def _value(self, what, s, v):
        types = s["type"].split("|")
        if not any(_is(v, t) for t in types):
            return ["%s: %s is not %s" % (what, json.dumps(v)[:60], s["type"])]
        out = []
        if "enum" in s and v not in s["enum"]:
            out.append("%s: %r is not one of %s" % (what, v, s["enum"]))
        if "min" in s and isinstance(v, (int, float)) and v < s["min"]:
            out.append("%s: %r is below %r" % (what, v, s["min"]))
        fmt = self.formats.get(s.get("format"))
        if fmt is not None:
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, str) and not fmt.match(item):
                    out.append("%s: %r is not a %s" % (what, item, s["format"]))
        return out

    def check_request(self, obj):
        """Problems of a parsed request object (the envelope's shape and the fields)."""
        if not isinstance(obj, dict):
            return ["request is not a JSON object"]
        has_req, has_cmd = "req" in obj, "cmd" in obj
        if has_req == has_cmd:
            return ["request needs exactly one of req and cmd: %s" % _short(obj)]
        name = obj["req"] if has_req else obj["cmd"]
        if not isinstance(name, str):
            return ["request name is not a string: %s" % _short(obj)]
        r = self.requests.get(name)
        if r is None:
            return ["request %r is not described" % name]
        out = []
        if "id" in obj and not _is(obj["id"], "integer"):
            out.append("%s request: id %r is not an integer" % (name, obj["id"]))
        if "crc" in obj:
            if has_cmd:
                out.append("%s: a cmd carries no crc" % name)
            elif not isinstance(obj["crc"], str) or not self.crc_re.match(obj["crc"]):
                out.append("%s request: crc %r is not SSSS:CCCCCCCC" % (name, obj["crc"]))
        return out + self._fields(name + " request", r["request"], obj)

    def check_answer(self, name, obj):
        """Problems of a parsed answer object to request `name` (success or error)."""
        if not isinstance(obj, dict):
            return ["%s answer is not a JSON object" % name]
        if "err" in obj:
            extra = set(obj) - {"err", "id", "crc"}
            if not isinstance(obj["err"], str) or extra:
                return ["%s error answer malformed: %s" % (name, _short(obj))]
            return []
        r = self.requests.get(name)
        if r is None:
            return ["request %r is not described" % name]
        return self._fields(name + " answer", r["answer"], obj)

    # ---- one transaction, as bytes on the wire ---------------------------------------
    def check_exchange(self, req_text, rsp_text):
        """Problems of one request line and its answer line, as sent. rsp_text None: no answer
        was seen (right for a cmd; for a req the caller knows whether one was due)."""
        req, seq, crc_ok, out = self._split(req_text, "request")
        if req is None:
            return out
        out += ["%s (%s)" % (p, req_text.strip()) for p in self.check_request(req)]
        if out and any("not described" in p or "exactly one" in p or "not a string" in p
                       for p in out):
            return out
        is_cmd = "req" not in req
        name = req.get("req", req.get("cmd"))
        if is_cmd:
            if seq is not None:
                out.append("%s: a cmd carries no crc (%s)" % (name, req_text.strip()))
            if rsp_text is not None:
                out.append("%s: a cmd was answered: %r" % (name, rsp_text))
            return out
        if rsp_text is None:
            return out
        rsp, rseq, rcrc_ok, p = self._split(rsp_text, "answer")
        out += p
        if rsp is None:
            return out
        if "id" in req and rsp.get("id") != req["id"]:
            out.append("%s: id %r not echoed: %r" % (name, req["id"], rsp_text))
        if "id" not in req and "id" in rsp:
            out.append("%s: answer has an id the request lacked: %r" % (name, rsp_text))
        if seq is not None:
            if rseq is None:
                out.append("%s: request had a crc, answer has none: %r" % (name, rsp_text))
            elif rseq != seq:
                out.append("%s: answer sequence %04X, request %04X" % (name, rseq, seq))
            if rcrc_ok is False:
                out.append("%s: answer crc wrong: %r" % (name, rsp_text))
            if crc_ok is False and "{io}" not in str(rsp.get("err", "")):
                out.append("%s: a request with a wrong crc was not answered {io}: %r" %
                           (name, rsp_text))
        if crc_ok is False:
            return out          # the card never ran it: its answer is the crc error
        return out + self.check_answer(name, rsp)

    def _split(self, text, what):
        """(object with crc removed, seq or None, crc matches (None: no crc), problems)."""
        line = text.rstrip("\r\n")
        seq = ok = None
        m = CRC_TAIL.search(line)
        if m:
            val = m.group("val")
            body = line[:m.start()] + "}"
            if not self.crc_re.match(val):
                return None, None, None, ["%s crc %r is not SSSS:CCCCCCCC" % (what, val)]
            seq = int(val[:4], 16)
            ok = (zlib.crc32(body.encode("utf-8")) & 0xFFFFFFFF) == int(val[5:], 16)
            line = body
        try:
            obj = json.loads(line)
        except ValueError as e:
            return None, None, None, ["%s is not JSON (%s): %r" % (what, e, text)]
        if not isinstance(obj, dict):
            return None, None, None, ["%s is not a JSON object: %r" % (what, text)]
        if "crc" in obj:
            return None, None, None, ["%s: crc is not the last field: %r" % (what, text)]
        return obj, seq, ok, []


def _short(obj):
    return json.dumps(obj, separators=(",", ":"))[:120]


_default = None


def default():
    """The description shipped beside this module (loaded once)."""
    global _default
    if _default is None:
        _default = API()
    return _default
