#!/usr/bin/python3
"""notecard-sim over serial-over-I2C, driven by tests/lib/i2c_probe (real i2c-dev calls) through
the LD_PRELOAD shim: framing at the edges, chunk sizes (253 and note-python's 255), what is
advertised and sent, reads nobody asked for, note-c's pacing, NACK, short reads, bad headers,
gone."""
import errno
import json
import os
import subprocess
import sys
import time

from simtest import check, finish
from sim import Sim, asan_runtime, shim_path, TOP_BUILDDIR

probe = os.path.join(TOP_BUILDDIR, "tests", "lib", "i2c_probe")
if not os.path.exists(probe) or shim_path() is None:
    print("i2c_probe or libi2cshim.so not built")
    sys.exit(77 if os.environ.get("NOTEGW_ALLOW_SKIP") else 1)


def run(s, *args, chunk=None):
    env = dict(os.environ)
    env.update(s.i2c_env(probe))
    cmd = [probe] + (["-c", str(chunk)] if chunk else []) + list(args)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        print("probe failed:", r.returncode, r.stdout, r.stderr)
    return r.stdout.splitlines()


def wait_avail(s, timeout=20):
    """Poll ([0][0] then a 2-byte read, as a host does) until the card has an answer
    ready; its bytes available, or 0 at the timeout. The simulator answers on a thread
    of its own, so a fixed sleep is not enough on a loaded machine."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = run(s, "R", "0")
        if out and out[0].startswith("hex") and int(out[0][4:6], 16) > 0:
            return int(out[0][4:6], 16)
        time.sleep(0.03)
    return 0


def wait_awake(s, timeout=20):
    """Wait out a reset's deaf time (the card reboots) before the next step."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and s.control("faults").get("gone"):
        time.sleep(0.05)


with Sim(i2c=True) as s:
    out = run(s, "z", "R", "0", "r", "0")
    check(out == ["ok", "hex 0000", "hex 0000"], "empty poll, RDWR and plain: %r" % out)

    # requests of the edge sizes, in 253-byte and 30-byte chunks
    for size in (1, 250, 251, 255, 256, 600):
        pad = max(0, size - len('{"req":"note.add","file":"e.qo","body":{"p":""}}') - 1)
        req = '{"req":"note.add","file":"e.qo","body":{"p":"%s"}}' % ("x" * pad)
        for chunk in (253, 30):
            out = run(s, "q", req, chunk=chunk)
            check(len(out) == 1 and out[0].startswith("rsp ") and
                  "total" in json.loads(out[0][4:]), "request of %d bytes, chunk %d: %r"
                  % (len(req) + 1, chunk, out[:1]))
    check(s.counters()["i2c_max_chunk"] == 253, "253-byte chunks reach the card whole")
    check(s.counters().get("i2c_protocol_errors", 0) == 0, "no framing errors")
    check(s.counters().get("i2c_unrequested_reads", 0) == 0, "every read asked for")

    # responses of many sizes: an env var makes env.get answers long
    for n in (0, 1, 200, 252, 253, 254, 500, 3000):
        s.env({"v": "y" * n} if n else {"v": ""}, now=True)
        out = run(s, "q", '{"req":"env.get","name":"v"}')
        rsp = json.loads(out[0][4:]) if out and out[0].startswith("rsp ") else {}
        check(rsp.get("text", "") == "y" * n, "response with a %d-byte value" % n)

    # the read header by hand: request a line, then read it out in pieces
    out = run(s, "w", "".join("%02x" % b for b in bytes([len(b'{"req":"hub.get"}\n')]) +
                              b'{"req":"hub.get"}\n'), "s", "50", "R", "0", "R", "10", "r", "5")
    check(out[0] == "ok", "write chunk acked")
    avail = int(out[1][4:6], 16)
    check(avail > 0 and out[1][6:8] == "00", "poll: available %d, sent 0" % avail)
    chunk = bytes.fromhex(out[2][4:])
    check(chunk[1] == 10 and chunk[2:] == b'{"device":' and chunk[0] == avail - 10,
          "read 10: [available][sent][data] %r" % chunk)
    chunk = bytes.fromhex(out[3][4:])
    check(chunk[1] == 5 and chunk[2:] == b'"dev:', "plain write+read of 5")
    run(s, "R", "253", "R", "253")     # drain

    # what Blues' hosts send: note-python's [255][255 bytes] chunks are taken whole
    req = '{"req":"note.add","file":"w.qo","body":{"p":"%s"}}'
    req = (req % ("x" * (255 - len(req % "")))).encode()
    out = run(s, "w", "ff" + req.hex(), "s", "30", "w", "010a", "s", "50", "R", "0")
    check(out[:2] == ["ok", "ok"], "a 256-byte transfer [255][255 bytes] is taken: %r" % out)
    avail = int(out[2][4:6], 16)
    out = run(s, "R", str(avail))
    check(b'"total"' in bytes.fromhex(out[0][4:]), "its request answered %r" % out)
    check(s.counters()["i2c_max_chunk"] == 255, "255-byte chunks reach the card whole")
    before = s.counters().get("i2c_oversize", 0)
    out = run(s, "w", "ff" + "20" * 256)
    check(out == ["err %d" % errno.EREMOTEIO] and
          s.counters().get("i2c_oversize", 0) == before + 1, "257 bytes: NACKed %r" % out)
    # never more advertised than a host may ask for, and what is asked for is sent
    s.env({"v": "z" * 600}, now=True)
    line = b'{"req":"env.get","name":"v"}\n'
    out = run(s, "w", "%02x" % len(line) + line.hex(), "s", "50", "R", "0", "R", "253")
    check(int(out[1][4:6], 16) == 253, "a 600-byte answer advertises 253: %r" % out[1][:8])
    b = bytes.fromhex(out[2][4:])
    check(b[1] == 253 and len(b) == 255, "asked 253 of it, sent 253")
    run(s, "R", "253", "R", "253", "R", "253")
    # an idle bus reads 0xff past the header
    out = run(s, "R", "5")
    check(out == ["hex 0000ffffffffff"], "past the answer: 0xff %r" % out)
    # a read nobody asked for is answered leniently, and counted
    before = s.counters()
    out = run(s, "b", "2")
    c = s.counters()
    check(out == ["hex 0000"] and
          c.get("i2c_unrequested_reads", 0) == before.get("i2c_unrequested_reads", 0) + 1 and
          c.get("i2c_protocol_errors", 0) == before.get("i2c_protocol_errors", 0) + 1,
          "a read without [0][n] counted %r" % out)
    # note-c's own pacing is not flagged: 253-byte chunks 6 + 20 ms apart with its 250 ms
    # segment pause, the first poll 6 ms after, polls 20 ms apart (its reset drain)
    before = s.counters()
    req = ('{"req":"note.add","file":"nc.qo","body":{"p":"%s"}}' % ("x" * 600)).encode() + b"\n"
    cmds = []
    for off in range(0, len(req), 253):
        piece = req[off:off + 253]
        cmds += ["s", "6", "w", "%02x" % len(piece) + piece.hex(), "s",
                 "270" if len(piece) > 250 else "20"]
    cmds += ["s", "6", "R", "0", "s", "50", "R", "0", "s", "20", "R", "0", "s", "20", "R", "0"]
    run(s, *cmds)
    run(s, "R", "253", "R", "253", "R", "253")
    c = s.counters()
    for name in ("i2c_chunk_gap_short", "i2c_segment_overruns", "i2c_poll_gap_short"):
        check(c.get(name, 0) == before.get(name, 0), "note-c's pacing: %s not counted" % name)

    # wrong length byte: the card counts a framing error
    before = s.counters().get("i2c_protocol_errors", 0)
    run(s, "w", "05414243")
    check(s.counters().get("i2c_protocol_errors", 0) == before + 1, "length mismatch counted")
    # resync as a host does: a newline, then drain (the garbage line gets an {io} answer)
    out = run(s, "w", "010a", "s", "50", "R", "253")
    check("{io}" in bytes.fromhex(out[1][4:]).decode("latin-1"), "garbage line -> {io}")

    # faults
    s.fault("nack", count=1)
    out = run(s, "z")
    check(out == ["err %d" % errno.EREMOTEIO], "NACK -> EREMOTEIO %r" % out)
    s.control("nack_errno", errno="ENXIO")
    s.fault("nack", count=1)
    check(run(s, "R", "0") == ["err %d" % errno.ENXIO], "NACK -> ENXIO")
    s.control("nack_errno", errno="EREMOTEIO")

    run(s, "w", "".join("%02x" % b for b in bytes([18]) + b'{"req":"hub.get"}\n'), "s", "50")
    check(wait_avail(s) > 20, "hub.get answered before the read faults")
    s.fault("short_read", count=1)
    out = run(s, "r", "20")
    check(out and out[0].startswith("hex") and len(out[0][4:]) // 2 < 22, "short read %r" % out)
    s.fault("short_read", count=1)
    out = run(s, "R", "20")
    b = bytes.fromhex(out[0][4:])
    check(len(b) == 22 and b.endswith(b"\xff"), "short read under I2C_RDWR: 0xff fill")
    s.fault("bad_sent", count=1)
    out = run(s, "R", "10")
    b = bytes.fromhex(out[0][4:])
    check(b[1] == 11, "bad sent header: sent %d with 10 bytes of data" % b[1])
    run(s, "R", "253", "R", "253")

    # a reset halfway through the answer: half a line, then nothing
    s.fault("reset_response", count=1)
    line = b'{"req":"hub.get"}\n'
    run(s, "w", "%02x" % len(line) + line.hex(), "s", "300")
    avail = wait_avail(s)
    out = run(s, "R", str(avail), "s", "50", "R", "0")
    data = bytes.fromhex(out[0][4:])[2:]
    check(0 < avail < 60 and data.startswith(b'{"device"') and b"\n" not in data,
          "reset mid-answer over i2c: half a line (%d bytes)" % avail)
    check(out[1] == "hex 0000", "nothing more after the reset")
    wait_awake(s)

    s.gone(30)
    out = run(s, "q", '{"req":"card.version"}')
    check(out and out[0].startswith("err"), "gone: NACKs %r" % out)
    s.back()
    out = run(s, "q", '{"req":"card.version"}')
    check(out and out[0].startswith("rsp ") and "version" in out[0], "back: answers")
    s.gone(30, open_fails=True)
    check(run(s, "z") == ["open-err %d" % errno.ENODEV], "unplugged: open fails ENODEV")
    s.back()
    check(run(s, "z") == ["ok"], "plugged back in")

    # pacing is observed: 30-byte chunks 1 ms apart are counted as too close
    before = s.counters().get("i2c_chunk_gap_short", 0)
    run(s, "q", '{"req":"note.add","file":"p.qo","body":{"pad":"%s"}}' % ("x" * 300), chunk=30)
    c = s.counters()
    check(c.get("i2c_chunk_gap_short", 0) > before, "short chunk gaps counted")
    check(c.get("i2c_segment_overruns", 0) >= 1, "segment without a pause counted")

    out = run(s, "q", '{"req":"card.version"}', "-a", "0x18")
    out = subprocess.run([probe, "-a", "0x18", "z"], env=dict(os.environ, **s.i2c_env(probe)),
                         capture_output=True, text=True).stdout.split()
    check(out == ["err", str(errno.EREMOTEIO)], "another address NACKs")

    # 20% {io}: the transaction answers {io}; retried it succeeds
    s.fault("io", p=0.5)
    outs = run(s, *sum([["q", '{"req":"card.version"}'] for _ in range(20)], []))
    s.clear_faults()
    check(any("{io}" in o for o in outs) and any("version" in o for o in outs), "io over i2c")

    check(s.counters().get("i2c_opens", 0) > 10, "each probe opened the bus")
    for p in s.problems():
        check(False, p)

env = dict(os.environ)
env.pop("NOTEGW_I2C_SIM", None)
env["LD_PRELOAD"] = " ".join(filter(None, [asan_runtime(probe), shim_path()]))
r = subprocess.run([probe, "-d", "/nonexistent-i2c", "z"], env=env, capture_output=True, text=True)
check(r.stdout.startswith("open-err %d" % errno.ENOENT), "non-i2c paths pass through to libc")
env["LD_PRELOAD"] = shim_path()
r = subprocess.run(["cat", "/proc/self/status"], env=env, capture_output=True, text=True)
check(r.returncode == 0 and "Name:" in r.stdout, "ordinary programs unaffected by the shim")
finish()
