"""A minimal MQTT 3.1.1 client for the tests (stdlib only): enough to know exactly
which QoS 1 publishes the broker acknowledged, which mosquitto_pub cannot tell.

    c = Client(port, "pub1").connect()
    c.publish("notecard/out/data.qo", b'{"n":1}')   # returns after PUBACK
    c.subscribe("notecard/#"); topic, payload, retain = c.recv()
"""
import socket
import struct
import time


class MqttError(Exception):
    pass


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


class Client:
    def __init__(self, port, client_id, clean=True, host="127.0.0.1", timeout=10.0, keepalive=60):
        self.addr = (host, port)
        self.client_id = client_id
        self.clean = clean
        self.timeout = timeout
        self.keepalive = keepalive
        self.sock = None
        self.mid = 0
        self.buf = b""
        self.pending = []  # PUBLISH packets received while waiting for something else

    # -- wire ------------------------------------------------------------------------
    def _send(self, ptype, body):
        self.sock.sendall(bytes([ptype]) + _varint(len(body)) + body)

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("mqtt read timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MqttError("connection closed by the broker")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _packet(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        h = self._read_exact(1, deadline)[0]
        mult, length = 1, 0
        while True:
            b = self._read_exact(1, deadline)[0]
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        return h, self._read_exact(length, deadline)

    def _next_mid(self):
        self.mid = self.mid % 65535 + 1
        return self.mid

    def _wait(self, want, mid=None):
        while True:
            h, body = self._packet()
            if h >> 4 == 3:
                self._got_publish(h, body)
                continue
            if h >> 4 == want and (mid is None or struct.unpack("!H", body[:2])[0] == mid):
                return body

    def _got_publish(self, h, body):
        qos = (h >> 1) & 3
        tl = struct.unpack("!H", body[:2])[0]
        topic = body[2:2 + tl].decode()
        rest = body[2 + tl:]
        if qos:
            mid = struct.unpack("!H", rest[:2])[0]
            rest = rest[2:]
            self._send(0x40, struct.pack("!H", mid))  # PUBACK
        self.pending.append((topic, rest, bool(h & 1)))

    # -- API -------------------------------------------------------------------------
    def connect(self, will=None):
        """will: (topic, payload, retain) or None. Returns self; raises on refusal."""
        self.sock = socket.create_connection(self.addr, self.timeout)
        flags = 0x02 if self.clean else 0
        payload = _str(self.client_id)
        if will:
            flags |= 0x04 | (1 << 3) | (0x20 if will[2] else 0)
            payload += _str(will[0]) + _str(will[1])
        body = _str("MQTT") + bytes([4, flags]) + struct.pack("!H", self.keepalive) + payload
        self._send(0x10, body)
        h, b = self._packet()
        if h >> 4 != 2 or b[1] != 0:
            raise MqttError("connection refused (%r)" % (b,))
        return self

    def publish(self, topic, payload, qos=1, retain=False):
        """Send one PUBLISH; for QoS 1 return only after its PUBACK."""
        if isinstance(payload, str):
            payload = payload.encode()
        h = 0x30 | (qos << 1) | (1 if retain else 0)
        if qos == 0:
            self._send(h, _str(topic) + payload)
            return
        mid = self._next_mid()
        self._send(h, _str(topic) + struct.pack("!H", mid) + payload)
        self._wait(4, mid)

    def subscribe(self, topic, qos=1):
        mid = self._next_mid()
        self._send(0x82, struct.pack("!H", mid) + _str(topic) + bytes([qos]))
        body = self._wait(9, mid)
        if body[2] == 0x80:
            raise MqttError("subscription refused")

    def recv(self, timeout=None):
        """The next PUBLISH received: (topic, payload bytes, retain)."""
        while not self.pending:
            h, body = self._packet(timeout)
            if h >> 4 == 3:
                self._got_publish(h, body)
        return self.pending.pop(0)

    def drain(self, quiet=0.5):
        """Every PUBLISH until none arrives for `quiet` seconds."""
        out = []
        while True:
            try:
                out.append(self.recv(quiet))
            except socket.timeout:
                return out

    def close(self):
        if self.sock:
            try:
                self._send(0xE0, b"")
            except OSError:
                pass
            self.sock.close()
            self.sock = None

    def abort(self):
        """Drop the TCP connection without DISCONNECT (the will fires)."""
        if self.sock:
            self.sock.close()
            self.sock = None
