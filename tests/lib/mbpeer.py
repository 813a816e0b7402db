#!/usr/bin/python3
"""Modbus peers for the notegw Modbus tests, independent of libmodbus.

  mbpeer.py tcp PORT LAYOUT.json         pymodbus TCP server on 127.0.0.1:PORT
  mbpeer.py rtu DEVICE LAYOUT.json       pymodbus RTU server on a serial device (a pty)
  mbpeer.py raw MODE:PORT [MODE:PORT...] misbehaving TCP servers (hand-made frames):
  mbpeer.py rawrtu DEVICE badcrc         RTU server whose answers fail their CRC
        silent   accepts, reads, never answers
        badcount answers reads with a byte count that does not match the request
        short    answers with a frame cut short, then nothing
        junk     answers with bytes that are not Modbus TCP (protocol id 0x1234)
        badunit  answers correctly, but from another unit id than the one asked
        badlen   answers correctly, but its MBAP length counts 2 bytes more than it sends
Each prints "ready" on stdout once it listens. LAYOUT: {"units":[1], "hr":{"0":5},
"ir":{...}, "co":{...}, "di":{...}} (protocol addresses; any address not listed
answers with exception 2, illegal data address).

Also a library: free_port(), Peer (start/stop a peer), words_f32/… encoders."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

PY = "/usr/bin/python3"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def words_u32(v, order="be"):
    hi, lo = (v >> 16) & 0xFFFF, v & 0xFFFF
    return [hi, lo] if order == "be" else [lo, hi]


def words_i32(v, order="be"):
    return words_u32(v & 0xFFFFFFFF, order)


def words_f32(v, order="be"):
    return words_u32(struct.unpack(">I", struct.pack(">f", v))[0], order)


def words_f32_bits(bits, order="be"):
    return words_u32(bits, order)


class Peer:
    """A peer process; stop() ends it."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([PY, os.path.abspath(__file__)] + [str(a) for a in args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError("mbpeer did not start: %r" % line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _context(layout):
    from pymodbus.datastore import (ModbusServerContext, ModbusSlaveContext,
                                    ModbusSparseDataBlock)

    def block(name):
        vals = {int(k): int(v) for k, v in layout.get(name, {}).items()}
        # an empty sparse block answers every address with exception 2
        return ModbusSparseDataBlock(vals if vals else {65535: 0})

    slaves = {}
    for unit in layout.get("units", [1]):
        slaves[unit] = ModbusSlaveContext(di=block("di"), co=block("co"), hr=block("hr"),
                                          ir=block("ir"), zero_mode=True)
    return ModbusServerContext(slaves=slaves, single=False)


def serve_tcp(port, layout):
    import asyncio
    from pymodbus.server import StartAsyncTcpServer

    async def main():
        server = await StartAsyncTcpServer(context=_context(layout), address=("127.0.0.1", port),
                                           defer_start=True, allow_reuse_address=True,
                                           ignore_missing_slaves=True)
        task = asyncio.create_task(server.serve_forever())
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        print("ready", flush=True)
        await task

    asyncio.run(main())


def serve_rtu(device, layout):
    import asyncio
    from pymodbus.server import StartAsyncSerialServer
    from pymodbus.transaction import ModbusRtuFramer

    async def main():
        server = await StartAsyncSerialServer(context=_context(layout), framer=ModbusRtuFramer,
                                              port=device, baudrate=layout.get("baud", 9600),
                                              defer_start=True, ignore_missing_slaves=True)
        await server.start()
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


def _raw_client(conn, mode):
    buf = b""
    with conn:
        while True:
            data = conn.recv(512)
            if not data:
                return
            buf += data
            while len(buf) >= 7:
                length = struct.unpack(">H", buf[4:6])[0]
                if len(buf) < 6 + length:
                    break
                req, buf = buf[:6 + length], buf[6 + length:]
                tid, unit, fc = req[0:2], req[6], req[7]
                count = struct.unpack(">H", req[10:12])[0] if len(req) >= 12 else 1
                if mode == "silent":
                    continue
                if mode == "badcount":
                    # asked for count registers; claim and send one fewer
                    n = max(count - 1, 0)
                    pdu = bytes([fc, 2 * n]) + b"\x00\x01" * n
                elif mode == "short":
                    pdu = bytes([fc, 2 * count]) + b"\x00\x01" * count
                    frame = tid + b"\x00\x00" + struct.pack(">H", 1 + len(pdu)) + bytes([unit]) + pdu
                    conn.sendall(frame[:len(frame) - 3])
                    continue
                elif mode in ("badunit", "badlen"):
                    pdu = bytes([fc, 2 * count]) + b"\x00\x01" * count
                    length = 1 + len(pdu) + (2 if mode == "badlen" else 0)
                    other = unit + 1 if mode == "badunit" else unit
                    conn.sendall(tid + b"\x00\x00" + struct.pack(">H", length) + bytes([other]) + pdu)
                    continue
                else:  # junk
                    conn.sendall(tid + b"\x12\x34\x00\x03" + bytes([unit]) + b"\xde\xad")
                    continue
                conn.sendall(tid + b"\x00\x00" + struct.pack(">H", 1 + len(pdu)) + bytes([unit]) + pdu)


def _crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def serve_rawrtu(device, mode):
    """An RTU server that answers 8-byte read requests wrongly (mode badcrc)."""
    import termios
    import tty
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    termios.tcflush(fd, termios.TCIOFLUSH)
    print("ready", flush=True)
    buf = b""
    while True:
        buf += os.read(fd, 256)
        while len(buf) >= 8:
            req, buf = buf[:8], buf[8:]
            unit, fc, count = req[0], req[1], struct.unpack(">H", req[4:6])[0]
            body = bytes([unit, fc, 2 * count]) + b"\x00\x01" * count
            crc = _crc16(body)
            os.write(fd, body + bytes([crc[0] ^ 0xFF, crc[1]]))


def serve_raw(specs):
    socks = []
    for spec in specs:
        mode, port = spec.split(":")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(port)))
        s.listen(8)
        socks.append((s, mode))

    def accept_loop(s, mode):
        while True:
            conn, _ = s.accept()
            threading.Thread(target=_raw_client, args=(conn, mode), daemon=True).start()

    for s, mode in socks:
        threading.Thread(target=accept_loop, args=(s, mode), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    import logging
    logging.disable(logging.CRITICAL)
    kind = sys.argv[1]
    if kind == "tcp":
        serve_tcp(int(sys.argv[2]), json.load(open(sys.argv[3])))
    elif kind == "rtu":
        serve_rtu(sys.argv[2], json.load(open(sys.argv[3])))
    elif kind == "raw":
        serve_raw(sys.argv[2:])
    elif kind == "rawrtu":
        serve_rawrtu(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: mbpeer.py tcp|rtu|raw ...")


class PtyPair:
    """Two connected ptys from socat, as stable symlinks a and b in dir."""

    def __init__(self, tmpdir, name):
        self.a = os.path.join(tmpdir, name + "-a")
        self.b = os.path.join(tmpdir, name + "-b")
        self.proc = subprocess.Popen(["socat", "pty,raw,echo=0,link=" + self.a,
                                      "pty,raw,echo=0,link=" + self.b],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(self.a) and os.path.exists(self.b):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("socat made no ptys")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class MbHost:
    """The Modbus plugin under the fake host (tests/modbus/mbhost): events as dicts."""

    def __init__(self, conf_text, tmpdir, env=None, check=False):
        import queue
        self.builddir = os.environ.get("top_builddir", ".")
        self.conf = os.path.join(tmpdir, "modbus.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        exe = os.path.join(self.builddir, "tests/modbus/mbhost")
        so = os.path.join(self.builddir, "plugins/modbus/.libs/modbus.so")
        args = [exe] + (["--check"] if check else []) + [self.conf, so]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.events = []
        self.q = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        if not check:
            self.wait(lambda e: e["event"] == "started", 15, "start")

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                self.q.put({"event": "garbage", "line": line})
        self.q.put(None)

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)
            sys.stderr.write("mbhost: " + line)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, pred, timeout=20, what="event", past=False):
        """The next event matching pred; with past, also one already received."""
        import queue
        if past:
            for e in self.events:
                if pred(e):
                    return e
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s within %ss" % (what, timeout))
            try:
                e = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if e is None:
                raise AssertionError("mbhost exited while waiting for %s" % what)
            self.events.append(e)
            if pred(e):
                return e

    def notes(self, file=None, device_points=None):
        return [e for e in self.events if e["event"] == "note" and (file is None or e["file"] == file)]

    def emits(self, topic):
        return [e["json"] for e in self.events if e["event"] == "emit" and e["topic"] == topic]

    def stats(self):
        self.send("stats")
        return self.wait(lambda e: e["event"] == "stats", 10, "stats")["stats"]

    def wait_stats(self, pred, timeout=30, what="stats"):
        end = time.monotonic() + timeout
        while True:
            st = self.stats()
            if pred(st):
                return st
            if time.monotonic() > end:
                raise AssertionError("stats never matched (%s): %s" % (what, json.dumps(st)))
            time.sleep(0.1)

    def stop(self):
        """Quit; returns the exit code (nonzero under ASan when something leaked)."""
        try:
            self.send("quit")
        except (BrokenPipeError, ValueError):
            pass
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9
