"""What sits between a transport and the card's brain: per-request timing, faults, resets, and
transcript replay. Both transports hand a complete request line to `Device.request()`.
"""
import json
import threading
import time


class Device:
    def __init__(self, card, faults, timing, replay=None):
        self.card = card
        self.faults = faults
        self.timing = timing
        self.replay = replay            # transcript.Replay or None
        self.generation = 0             # bumped on every reset: in-flight work is dropped
        self.reset_listeners = []
        self.lock = threading.Lock()    # one transaction at a time, as on the card

    def reset(self, seconds=None):
        """The card resets: buffers are lost and it is deaf for a while."""
        self.generation += 1
        self.faults.deafen(self.faults.reset_seconds if seconds is None else seconds)
        with self.card.lock:
            self.card.last_crc = self.card.last_rsp = None     # RAM is lost
        self.card.count("resets")
        for cb in self.reset_listeners:
            cb()

    def cut_response(self, rsp):
        """The reset_response fault: None, or the half of `rsp` that gets out before the card
        resets (the reset has happened when this returns)."""
        if not rsp or not self.faults.hit("reset_response"):
            return None
        self.card.count("faults_reset_response")
        self.reset()
        return rsp[:len(rsp) // 2]

    def request(self, line, transport):
        """Returns the response bytes (CRLF-terminated, faults applied) or None."""
        with self.lock:
            gen = self.generation
            if self.faults.hit("reset"):
                self.card.count("faults_reset")
                self.card.record(line, None, transport, fault="reset")
                self.reset()
                return None
            name = _req_name(line)
            # the card's processing time is the whole of it, its flash write (the state
            # file here, which grows with the notes it holds) included
            delay = self.timing.processing(name)
            began = time.monotonic()
            if self.replay is not None:
                rsp = self.replay.answer(line)
            else:
                rsp = self.card.transact(line, transport, io_fault=self.faults.hit("io"))
            if getattr(self.card, "restart_pending", False):
                self.card.restart_pending = False
                self.card.save()
                _rest(delay, began)
                # the card answers, then restarts once the host has had time to read it
                threading.Timer(0.25 if self.timing.real() else 0.1, self.reset,
                                args=(1.5 if self.timing.real() else 0.1,)).start()
                return rsp
            self.card.save()
            _rest(delay, began)
            if gen != self.generation:
                return None
            return self.faults.mangle(rsp) if rsp else rsp


def _rest(delay, began):
    """Sleep out what is left of the processing time since began."""
    left = delay - (time.monotonic() - began) if delay else 0
    if left > 0:
        time.sleep(left)


def _req_name(line):
    try:
        obj = json.loads(line)
        return obj.get("req") or obj.get("cmd") or ""
    except (ValueError, AttributeError):
        return ""
