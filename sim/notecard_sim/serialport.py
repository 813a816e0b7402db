"""Serial transport: a pseudo-terminal in raw mode. The host writes request lines to the slave;
the card answers on the same line. In real timing the card receives and sends at the UART's baud
rate (10 bits a byte) — the pty itself is instantaneous, so the card waits for the bytes' arrival
time before it acts, and paces its answer.

A request segment longer than 250 bytes arriving without a pause is counted in
`serial_segment_overruns` (the card's receive buffer; facts §2).
"""
import os
import select
import threading
import time
import tty


class SerialPort:
    def __init__(self, device):
        self.device = device
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.buf = bytearray()
        self.ready_at = 0.0
        self.burst = 0
        self.last_rx = 0.0
        self.stop = False
        device.reset_listeners.append(self._on_reset)
        self.thread = threading.Thread(target=self._run, daemon=True, name="serial")

    def start(self):
        self.thread.start()

    def _on_reset(self):
        self.buf.clear()

    def _run(self):
        timing = self.device.timing
        card = self.device.card
        while not self.stop:
            r, _, _ = select.select([self.master], [], [], 0.2)
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
                if rsp and not self.device.faults.gone():
                    self._send(rsp)

    def _send(self, rsp):
        timing = self.device.timing
        if not timing.real():
            os.write(self.master, rsp)
            return
        # paced at the baud rate, in small bursts
        for i in range(0, len(rsp), 16):
            piece = rsp[i:i + 16]
            os.write(self.master, piece)
            time.sleep(timing.uart_bytes(len(piece)))
