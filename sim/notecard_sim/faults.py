"""Runtime-settable faults and the timing model.

Each fault is {"p": probability} and/or {"count": n} (the next n occasions); counts are used up
first. Names:
  io          answer {io} instead of executing the request
  garble      flip one byte of a response (never its final newline)
  drop        remove one byte of a response (never its final newline)
  crc         corrupt the crc field of a response (the request was executed)
  reset       reset in the middle of a transaction: the request is lost, no response, the card
              is deaf for `reset_seconds`
  reset_response  the request is executed, then the card resets halfway through its answer:
              the host gets half a line (and the card has forgotten the request, so a retry
              is executed again — a duplicate the host must tolerate)
  nack        i2c: NACK a transfer (errno `nack_errno`, default EREMOTEIO)
  short_read  i2c: deliver fewer bytes than the master asked for
  bad_sent    i2c: a read header whose `sent` does not match the data that follows
  err_nocrc   an error answer goes out without its crc field, though the request carried one
              (card firmware that does so is met in the field; note-c accepts it)
Card gone: `gone_until` (time.monotonic()); i2c NACKs everything, serial answers nothing.
"""
import errno
import json
import random
import threading
import time

from .wire import split_crc

NAMES = ("io", "garble", "drop", "crc", "reset", "reset_response", "nack", "short_read",
         "bad_sent", "err_nocrc")


class Faults:
    def __init__(self, seed=None):
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.spec = {}
        self.fired = {}
        self.gone_until = 0.0
        self.deaf_until = 0.0
        self.nack_errno = errno.EREMOTEIO
        self.open_fails = False         # while gone: i2c opens fail too (a USB adapter unplugged)
        self.open_errno = errno.ENODEV
        self.reset_seconds = 0.05

    def set(self, name, p=None, count=None):
        if name not in NAMES:
            raise ValueError("unknown fault: %s" % name)
        with self.lock:
            s = self.spec.setdefault(name, {"p": 0.0, "count": 0})
            if p is not None:
                s["p"] = float(p)
            if count is not None:
                s["count"] = int(count)

    def clear(self):
        with self.lock:
            self.spec = {}
            self.gone_until = 0.0

    def hit(self, name):
        with self.lock:
            s = self.spec.get(name)
            if not s:
                return False
            if s["count"] > 0:
                s["count"] -= 1
                hit = True
            else:
                hit = s["p"] > 0 and self.rng.random() < s["p"]
            if hit:
                self.fired[name] = self.fired.get(name, 0) + 1
            return hit

    def gone(self):
        t = time.monotonic()
        return t < self.gone_until or t < self.deaf_until

    def go_away(self, seconds, open_fails=False):
        self.gone_until = time.monotonic() + seconds
        self.open_fails = open_fails

    def come_back(self):
        self.gone_until = 0.0

    def deafen(self, seconds):
        self.deaf_until = time.monotonic() + seconds

    def mangle(self, rsp):
        """Apply response faults (garble, drop, crc) to response bytes."""
        if not rsp or len(rsp) < 3:
            return rsp
        if "err_nocrc" in self.spec and _is_error(rsp) and self.hit("err_nocrc"):
            text, seq, _ = split_crc(rsp.rstrip())
            if seq is not None:
                rsp = text + b"\r\n"
        b = bytearray(rsp)
        body = len(b) - 2          # keep the final \r\n
        if self.hit("crc"):
            i = b.rfind(b'"crc":"')
            if i >= 0:
                j = i + 7 + 5 + self.rng.randrange(8)
                b[j] = ord("0") if b[j] != ord("0") else ord("1")
        if self.hit("garble") and body > 0:
            i = self.rng.randrange(body)
            b[i] = (b[i] ^ (1 << self.rng.randrange(7))) or 0x7E
            if b[i] in (0x0A, 0x0D):
                b[i] = 0x7E
        if self.hit("drop") and body > 0:
            del b[self.rng.randrange(body)]
        return bytes(b)

    def status(self):
        with self.lock:
            return {"spec": {k: dict(v) for k, v in self.spec.items()},
                    "fired": dict(self.fired),
                    "gone": self.gone(), "nack_errno": self.nack_errno}


class Timing:
    """fast: near-zero delays; real: bus and UART speeds and a per-request processing time."""

    def __init__(self, mode="fast", baud=9600, i2c_hz=100000, proc_ms=None):
        self.mode = mode
        self.baud = baud
        self.i2c_hz = i2c_hz
        self.proc_ms = proc_ms

    def real(self):
        return self.mode == "real"

    def processing(self, name):
        if self.proc_ms is not None:
            return self.proc_ms / 1000.0
        if not self.real():
            return 0.0
        # The card's own processing time is undocumented (facts §3: confirm on hardware);
        # these are estimates: a flash write for requests that store, less for reads.
        return 0.010 if name in ("note.add", "note.template", "hub.set", "note.update") \
            else 0.005

    def uart_bytes(self, n):
        return n * 10.0 / self.baud if self.real() else 0.0

    def i2c_bytes(self, n):
        # address byte + n data bytes, 9 clocks each (8 bits + ACK)
        return (n + 1) * 9.0 / self.i2c_hz if self.real() else 0.0


def _is_error(rsp):
    try:
        obj = json.loads(rsp)
    except ValueError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("err"), str)
