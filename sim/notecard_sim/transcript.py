"""Transcript replay (the format is in docs/transcripts.md).

A transcript is a list of exchanges; each is zero or more directive lines, one `>` request line
and at most one `<` response line:
  # text            comment
  ! FAULT           the card misbehaves on this exchange: io | garble | drop | crc | silent
  ~ SECONDS         the card takes this long before answering
  > {json}          the request the host must send (compared as JSON; crc and id ignored;
                    the string "*" matches any value)
  < {json}          the card's answer (id and crc added as a card does)
  < *               the simulated card itself answers (its notefiles and hub move)
  (no < line)       a cmd: the simulated card acts on it, no answer; after "! io": the
                    {io} answer
  = {json}          anywhere: a request that may come at any time, any number of times (a
                    daemon's polling); it matches when its fields include these, and the
                    simulated card answers it without moving the transcript on
"""
import json
import threading
import time

from .wire import add_crc, dumps, split_crc


class Exchange:
    def __init__(self, lineno):
        self.lineno = lineno
        self.faults = []
        self.delay = 0.0
        self.request = None
        self.response = None        # dict, "*" or None


def parse(path, ambient=None):
    """The exchanges of a transcript; `=` patterns are appended to `ambient` if given."""
    out = []
    cur = None
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            tag, _, rest = line.partition(" ")
            rest = rest.strip()
            if tag == "=":
                if ambient is not None:
                    ambient.append(json.loads(rest))
                continue
            if cur is None or (tag in ("!", "~", ">") and cur.request is not None):
                cur = Exchange(lineno)
                out.append(cur)
            if tag == "!":
                if rest not in ("io", "garble", "drop", "crc", "silent"):
                    raise ValueError("%s:%d: unknown fault %r" % (path, lineno, rest))
                cur.faults.append(rest)
            elif tag == "~":
                cur.delay = float(rest)
            elif tag == ">":
                cur.request = json.loads(rest)
            elif tag == "<":
                if cur.request is None:
                    raise ValueError("%s:%d: response before request" % (path, lineno))
                cur.response = "*" if rest == "*" else json.loads(rest)
            else:
                raise ValueError("%s:%d: unknown line %r" % (path, lineno, line))
    for ex in out:
        if ex.request is None:
            raise ValueError("%s:%d: exchange without a request" % (path, ex.lineno))
    return out


def _strip(obj):
    return {k: v for k, v in obj.items() if k not in ("crc", "id")}


def match(want, got):
    """JSON equality where the string "*" in `want` stands for any value."""
    if want == "*":
        return True
    if isinstance(want, dict):
        return isinstance(got, dict) and want.keys() == got.keys() and \
            all(match(want[k], got[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and \
            all(match(w, g) for w, g in zip(want, got))
    return type(want) is type(got) and want == got


class Replay:
    def __init__(self, path, card, faults):
        self.path = path
        self.ambient = []
        self.exchanges = parse(path, self.ambient)
        self.card = card
        self.faults = faults
        self.pos = 0
        self.mismatches = []
        self.lock = threading.Lock()

    def status(self):
        with self.lock:
            return {"path": self.path, "position": self.pos, "total": len(self.exchanges),
                    "done": self.pos >= len(self.exchanges), "mismatches": list(self.mismatches)}

    def _ambient(self, stripped):
        """True when the request matches an `=` pattern and is not the next expected one."""
        if not self.ambient:
            return False
        try:
            got = _strip(json.loads(split_crc(stripped)[0]))
        except (ValueError, AttributeError):
            return False
        with self.lock:
            if self.pos < len(self.exchanges) and \
                    match(_strip(self.exchanges[self.pos].request), got):
                return False
        return any(all(k in got and match(v, got[k]) for k, v in pat.items())
                   for pat in self.ambient)

    def answer(self, line):
        """The transcript's answer to one request line (bytes with CRLF, or None)."""
        stripped = line.strip()
        if not stripped:
            return b"\r\n"
        if self._ambient(stripped):
            self.card.count("transcript_ambient")
            return self.card.transact(stripped, "transcript")
        with self.lock:
            if self.pos >= len(self.exchanges):
                self.mismatches.append({"line": None, "got": stripped.decode("utf-8", "replace"),
                                        "why": "request after the end of the transcript"})
                return dumps({"err": "transcript ended"}) + b"\r\n"
            ex = self.exchanges[self.pos]
            self.pos += 1
        text, seq, _ = split_crc(stripped)
        try:
            got = json.loads(text)
        except ValueError:
            got = None
        if not isinstance(got, dict) or not match(_strip(ex.request), _strip(got)):
            with self.lock:
                self.mismatches.append({"line": ex.lineno,
                                        "got": stripped.decode("utf-8", "replace"),
                                        "want": ex.request})
        if ex.delay:
            time.sleep(ex.delay)
        if "silent" in ex.faults:
            self.card.record(stripped, None, "transcript", fault="silent")
            return None
        is_cmd = isinstance(got, dict) and "req" not in got and "cmd" in got
        if ex.response == "*" or (ex.response is None and is_cmd):
            # the simulated card answers (or, for a cmd, just acts)
            rsp = self.card.transact(stripped, "transcript", io_fault="io" in ex.faults)
        elif ex.response is None and "io" not in ex.faults:
            with self.lock:
                self.mismatches.append({"line": ex.lineno, "why": "req without a < line"})
            rsp = None
        else:
            body = dict({"err": "request failed: communications error {io}"}
                        if "io" in ex.faults else ex.response)
            if isinstance(got, dict) and "id" in got:
                body["id"] = got["id"]
            rsp = dumps(body)
            if seq is not None:
                rsp = add_crc(rsp, seq)
            self.card.record(stripped, rsp, "transcript")
            rsp += b"\r\n"
        if rsp:
            for f in ex.faults:
                if f in ("garble", "drop", "crc"):
                    self.faults.set(f, count=1)
        return rsp
