"""Serial transport: a pseudo-terminal in raw mode. The host writes request lines to the slave;
the card answers on the same line. In real timing the card receives and sends at the UART's baud
rate (10 bits a byte) — the pty itself is instantaneous, so the card waits for the bytes' arrival
time before it acts, and paces its answer.

A request segment longer than 250 bytes arriving without a pause is counted in
`serial_segment_overruns` (the card's receive buffer; facts §2).

Unplugging (a USB Notecard re-enumerating): the pty is closed — the host's fd sees a hangup —
and the stable name (`--serial-link`, a symlink like /dev/ttyACM0) disappears; plugging back in
makes a new pty and points the link at it.
"""
import os
import select
import threading
import time
import tty


class SerialPort:
    def __init__(self, device, link=None, on_change=None):
        self.device = device
        self.link = link
        self.on_change = on_change      # called with the new pty path (or None) on (un)plug
        self.ops = []                   # (un)plug requests, carried out by the reader thread
        self.lock = threading.Lock()
        self.master = None
        self._plug()
        self.buf = bytearray()
        self.ready_at = 0.0
        self.burst = 0
        self.last_rx = 0.0
        self.stop = False
        device.reset_listeners.append(self._on_reset)
        self.thread = threading.Thread(target=self._run, daemon=True, name="serial")

    def start(self):
        self.thread.start()

    def _plug(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        if self.link:
            tmp = self.link + ".new"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)
        if self.on_change:
            self.on_change(self.path)

    def _unplug(self):
        if self.master is None:
            return
        if self.link and os.path.lexists(self.link):
            os.unlink(self.link)
        os.close(self.master)
        os.close(self.slave)
        self.master = None
        self.path = None
        self.buf.clear()
        self.device.card.count("serial_unplugs")
        if self.on_change:
            self.on_change(None)

    def request_plug(self, plugged, seconds=None):
        """Unplug (plugged=False, back after `seconds` if given) or plug back in."""
        done = threading.Event()
        with self.lock:
            self.ops.append((plugged, seconds, done))
        done.wait(2.0)

    def _do_ops(self):
        with self.lock:
            ops, self.ops = self.ops, []
        for plugged, seconds, done in ops:
            if plugged and self.master is None:
                self._plug()
            elif not plugged:
                self._unplug()
                if seconds:
                    threading.Timer(seconds, self.request_plug, args=(True,)).start()
            done.set()

    def _on_reset(self):
        self.buf.clear()

    def _run(self):
        timing = self.device.timing
        card = self.device.card
        while not self.stop:
            self._do_ops()
            if self.master is None:
                time.sleep(0.05)
                continue
            r, _, _ = select.select([self.master], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            t = time.monotonic()
            if self.device.faults.gone():
                card.count("serial_bytes_ignored", len(data))
                continue
            if t - self.last_rx > 0.2:
                self.burst = 0
            self.last_rx = t
            self.burst += len(data)
            if self.burst > 250:
                card.count("serial_segment_overruns")
                self.burst = 0
            self.ready_at = max(self.ready_at, t) + timing.uart_bytes(len(data))
            self.buf += data
            while b"\n" in self.buf:
                i = self.buf.index(b"\n")
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                self.burst = len(self.buf)
                wait = self.ready_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                rsp = self.device.request(line.rstrip(b"\r"), "serial")
                cut = self.device.cut_response(rsp)
                if cut is not None:
                    self._send(cut)
                elif rsp and self.device.faults.gone():
                    card.count("serial_responses_lost")
                elif rsp:
                    self._send(rsp)

    def _send(self, rsp):
        timing = self.device.timing
        if self.master is None:
            return
        if not timing.real():
            os.write(self.master, rsp)
            return
        # paced at the baud rate, in small bursts
        for i in range(0, len(rsp), 16):
            piece = rsp[i:i + 16]
            os.write(self.master, piece)
            time.sleep(timing.uart_bytes(len(piece)))
