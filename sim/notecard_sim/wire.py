"""The request/response line protocol: CRC field handling, id echo, retry de-duplication.

The CRC field is `"crc":"SSSS:CCCCCCCC"`, the last field of the object, preceded by ',' (or by
' ' when the object is otherwise empty, as note-c writes it). CCCCCCCC is CRC-32 (zlib) over the
text with the field and its separator removed, i.e. ending in '}'.
"""
import json
import re
import zlib

CRC_RE = re.compile(rb'(?P<sep>[ ,]?)"crc":"(?P<seq>[0-9A-Fa-f]{4}):(?P<crc>[0-9A-Fa-f]{8})"\}\s*$')


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def split_crc(line: bytes):
    """Return (text_without_crc, seq, crc) or (line, None, None) when there is no crc field."""
    m = CRC_RE.search(line)
    if not m:
        return line, None, None
    text = line[:m.start()] + b"}"
    return text, int(m.group("seq"), 16), int(m.group("crc"), 16)


def add_crc(text: bytes, seq: int) -> bytes:
    """Append the crc field to a compact JSON object text (as note-c's crcAdd does)."""
    c = crc32(text)
    sep = b" " if b":" not in text else b","
    return text[:-1] + sep + b'"crc":"%04X:%08X"}' % (seq & 0xFFFF, c)


def dumps(obj) -> bytes:
    """Compact JSON, UTF-8, as the card prints it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
