"""Transcript replay (the format is in docs/transcripts.md).

A transcript is a list of exchanges; each is zero or more directive lines, one `>` request line
and at most one `<` response line:
  # text            comment
  ! FAULT           the card misbehaves on this exchange: io | garble | drop | crc | silent
  ~ SECONDS         the card takes this long before answering
  > {json}          the request the host must send (compared as JSON; crc and id ignored)
  < {json}          the card's answer (id and crc added as a card does)
  < *               the simulated card itself answers (its notefiles and hub move)
  (no < line)       a cmd: the simulated card acts on it, no answer; after "! io": the
                    {io} answer
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


def parse(path):
    out = []
    cur = None
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            tag, _, rest = line.partition(" ")
            rest = rest.strip()
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


class Replay:
    def __init__(self, path, card, faults):
        self.path = path
        self.exchanges = parse(path)
        self.card = card
        self.faults = faults
        self.pos = 0
        self.mismatches = []
        self.lock = threading.Lock()

    def status(self):
        with self.lock:
            return {"path": self.path, "position": self.pos, "total": len(self.exchanges),
                    "done": self.pos >= len(self.exchanges), "mismatches": list(self.mismatches)}

    def answer(self, line):
        """The transcript's answer to one request line (bytes with CRLF, or None)."""
        with self.lock:
            stripped = line.strip()
            if not stripped:
                return b"\r\n"
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
        if not isinstance(got, dict) or _strip(got) != _strip(ex.request):
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
