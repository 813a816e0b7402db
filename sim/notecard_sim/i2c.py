"""Serial-over-I2C, the card's side, reached through the LD_PRELOAD shim over a Unix socket.

Shim framing (documented in tests/lib/i2c_shim.c too), little-endian:
  shim -> sim: [op u8][addr u8][len u16] then len bytes for a write
               op 'O' (0x4f): the program opens the bus (a refusal fails its open())
               op 'W' (0x57): the master writes these bytes to addr
               op 'R' (0x52): the master reads len bytes from addr
  sim -> shim: [status u8][errno u8][len u16] then len bytes (reads only)
               status 0 = ACK, 1 = NACK/error (the shim fails the call with that errno);
               a read reply shorter than asked is a short read.
Card side (facts §3): a write [len][len bytes] appends to the request line (len up to 255:
note-python writes 255-byte chunks, note-c, note-go and note-arduino at most 253); a write
[0x00][n] asks for up to n bytes, either as its own transfer or combined with the read in one
I2C_RDWR; the next read returns [available][sent][sent bytes], `sent` being n whenever the card
holds n bytes. `available` never exceeds 253 (note-go and note-arduino reject more), so a host
that asks for what was advertised always gets exactly that. Bytes past the answer read 0xff, as
a released bus does. Zero-length writes are probes and are ACKed.

Protocol violations are answered as leniently as a card would but counted, so a test can assert
there were none: `i2c_unrequested_reads` (a read with no [0][n] request before it; it gets
[available][0]) and `i2c_protocol_errors` (that, and a write whose length byte disagrees with
its size).

Pacing is observed, not enforced (the card's real tolerance is undocumented); the thresholds
sit below what note-c and note-python do themselves: `i2c_chunk_gap_short` (a write chunk
< 15 ms after the previous one; both wait 20 ms plus 5-6 ms), `i2c_segment_overruns` (a chunk
begun while more than 250 bytes have gone since the last >= 200 ms pause; both pause 250 ms
once a segment passes 250 bytes, so one chunk may carry it to 255) and `i2c_poll_gap_short`
(empty polls < 15 ms apart; both poll every 50 ms while waiting, every 20 ms while draining on
reset).
"""
import os
import socket
import struct
import sys
import threading
import traceback
import time

MAX_AVAILABLE = 253     # the most a read header ever advertises
MAX_TRANSFER = 256      # [len] + 255 bytes
CHUNK_GAP_MIN = 0.015
SEGMENT_BYTES = 250
SEGMENT_PAUSE = 0.2
POLL_GAP_MIN = 0.015


class I2CCard:
    def __init__(self, device, address=0x17):
        self.device = device
        self.address = address
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.asked = None
        self.lock = threading.Lock()
        self.busy = False
        self.last_chunk = 0.0
        self.segment = 0
        self.last_poll = 0.0
        device.reset_listeners.append(self._on_reset)

    def _on_reset(self):
        self.inbuf.clear()
        self.outbuf.clear()
        self.asked = None

    def _count(self, name, n=1):
        self.device.card.count(name, n)

    def write(self, data):
        """Returns (status, errno)."""
        faults = self.device.faults
        if faults.gone() or faults.hit("nack"):
            self._count("i2c_nacks")
            return 1, faults.nack_errno
        if len(data) > MAX_TRANSFER:
            self._count("i2c_oversize")
            return 1, faults.nack_errno
        self._count("i2c_writes")
        if len(data) == 0:
            return 0, 0
        if data[0] == 0 and len(data) == 2:
            with self.lock:
                self.asked = data[1]
            return 0, 0
        n = data[0]
        if n != len(data) - 1:
            self._count("i2c_protocol_errors")
            n = min(n, len(data) - 1)
        self._count("i2c_write_chunks")
        t = time.monotonic()
        if t - self.last_chunk < CHUNK_GAP_MIN and self.inbuf:
            self._count("i2c_chunk_gap_short")
        if t - self.last_chunk >= SEGMENT_PAUSE or not self.inbuf:
            self.segment = 0
        if self.segment > SEGMENT_BYTES:
            self._count("i2c_segment_overruns")
            self.segment = 0
        self.segment += n
        self.last_chunk = t
        self.device.card.counters["i2c_max_chunk"] = max(
            self.device.card.counters.get("i2c_max_chunk", 0), n)
        with self.lock:
            self.inbuf += data[1:1 + n]
            lines = []
            while b"\n" in self.inbuf:
                i = self.inbuf.index(b"\n")
                lines.append(bytes(self.inbuf[:i]))
                del self.inbuf[:i + 1]
        for line in lines:
            threading.Thread(target=self._process, args=(line.rstrip(b"\r"),),
                             daemon=True).start()
        return 0, 0

    def _process(self, line):
        self.busy = True
        try:
            rsp = self.device.request(line, "i2c")
        finally:
            self.busy = False
        cut = self.device.cut_response(rsp)
        if cut is not None:
            rsp = cut           # the reset cleared the buffers; half the line got out
        if rsp:
            with self.lock:
                self.outbuf += rsp

    def read(self, m):
        """Returns (status, errno, bytes)."""
        faults = self.device.faults
        if faults.gone() or faults.hit("nack"):
            self._count("i2c_nacks")
            return 1, faults.nack_errno, b""
        self._count("i2c_reads")
        with self.lock:
            n = self.asked
            self.asked = None
            if n is None:
                n = 0
                self._count("i2c_unrequested_reads")
                self._count("i2c_protocol_errors")
            sent = min(n, len(self.outbuf), max(0, m - 2))
            data = bytes(self.outbuf[:sent])
            del self.outbuf[:sent]
            avail = min(len(self.outbuf), MAX_AVAILABLE)
        if n == 0:
            self._count("i2c_polls")
            t = time.monotonic()
            if t - self.last_poll < POLL_GAP_MIN:
                self._count("i2c_poll_gap_short")
            self.last_poll = t
        hdr_sent = sent
        if sent and faults.hit("bad_sent"):
            hdr_sent = min(255, sent + 1)
        out = bytes([avail, hdr_sent]) + data
        out += b"\xff" * max(0, m - len(out))
        if m > 2 and faults.hit("short_read"):
            out = out[:max(1, len(out) // 2)]
            self._count("i2c_short_reads")
        return 0, 0, out


class I2CServer:
    def __init__(self, device, path, address=0x17):
        self.card = I2CCard(device, address)
        self.device = device
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._accept, daemon=True, name="i2c")

    def start(self):
        self.thread.start()

    def _accept(self):
        while True:
            conn, _ = self.sock.accept()
            self.device.card.count("i2c_opens")
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _recv(conn, n):
        buf = b""
        while len(buf) < n:
            part = conn.recv(n - len(buf))
            if not part:
                raise EOFError
            buf += part
        return buf

    def _serve(self, conn):
        timing = self.device.timing
        try:
            while True:
                op, addr, length = struct.unpack("<BBH", self._recv(conn, 4))
                data = self._recv(conn, length) if op == 0x57 else b""
                if timing.real():
                    time.sleep(timing.i2c_bytes(length))
                if op == 0x4F:
                    f = self.device.faults
                    if f.gone() and f.open_fails:
                        self.device.card.count("i2c_open_refused")
                        conn.sendall(struct.pack("<BBH", 1, f.open_errno, 0))
                    else:
                        conn.sendall(struct.pack("<BBH", 0, 0, 0))
                    continue
                if addr != self.card.address:
                    self.device.card.count("i2c_wrong_address")
                    conn.sendall(struct.pack("<BBH", 1, self.device.faults.nack_errno, 0))
                    continue
                if op == 0x57:
                    st, err = self.card.write(data)
                    conn.sendall(struct.pack("<BBH", st, err, 0))
                elif op == 0x52:
                    st, err, out = self.card.read(length)
                    conn.sendall(struct.pack("<BBH", st, err, len(out)) + out)
                else:
                    conn.sendall(struct.pack("<BBH", 1, 22, 0))
        except (EOFError, OSError):
            pass
        except Exception:              # a simulator bug: log it; the host sees EIO
            traceback.print_exc(file=sys.stderr)
            self.device.card.count("internal_errors")
        finally:
            conn.close()
