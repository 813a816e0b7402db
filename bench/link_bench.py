#!/usr/bin/python3
"""link_bench: how fast notegwd drains its store to a card, in real time, against the limit
note-c's own pacing allows for the same bytes.

Each round starts notecard-sim in real timing (100 kHz I2C bus model, 9600-baud UART, the card
processing each request for --card-ms, 20 ms by default so that with the simulator's own
overhead it answers within 25 ms), queues --notes notes in notegwd's store while the card is
away, brings the card back and lets the daemon drain the store over I2C (the real i2c-dev code
through the LD_PRELOAD shim) and then over serial (the other order on odd rounds). The
simulator's request log gives the time of each note.add and its exact request and answer
bytes. The rate is taken over the intervals between two note.adds with nothing else between
them (the store, the link thread, the shim all included), and also over the whole span from
the first to the last note.add, which includes the link's own periodic requests (status,
environment, inbound: about 1.5 s once a minute over serial).

The limit is computed from those bytes with note-c's constants only (n_lib.h, n_i2c.c,
n_serial.c at blues/note-c 9a12cfc), not from notegwd's timing table:
  I2C: per chunk of n <= 253 bytes (NOTE_I2C_MAX_MAX): 6 ms (_delayIO) + the write on the bus
       (address, length byte, n bytes; 9 clocks a byte at 100 kHz) + 20 ms
       (CARD_REQUEST_I2C_CHUNK_DELAY_MS) + 250 ms (CARD_REQUEST_I2C_SEGMENT_DELAY_MS) when the
       segment has passed 250 bytes; then 6 ms and the length poll ([0][0] written, 2 bytes
       read), repeated every 50 ms until the card has answered (it has, when it needs no more
       than the 26 ms already waited); then the answer in reads of up to 253, back to back.
  serial: the request's bytes at 10 bits a byte at 9600 baud with 250 ms after each full
       250-byte segment that has more after it (CARD_REQUEST_SERIAL_SEGMENT_*), the card's
       processing, the answer's bytes on the wire.
The daemon runs with its default configuration (card_max_pending = 0: the card's storage
decides how much it is fed).

Each round also drains a large backlog (--backlog notes, queued through the control socket
from 30 connections at once) into a card with a small flash (--card-kib-*: it fills and must
sync within the sample, in the simulator 2 s a sync), and measures --sample-s seconds of that
drain from its first note.add: the steady-state rate with everything included (storage looks,
hub.sync, the link's periodic requests, sent-mark commits, a full card). It is a sample of the
drain, not the drain of 100,000 notes (about 100 minutes at 17 notes/s over I2C): what changes
over a longer drain is only how often those events recur, which the sample already holds.

Ratio = achieved rate / limit rate, per round. With $NOTEGW_BLUES_HOSTS set, each drain is
paired with Blues' note-c (tests/lib/blues_notec_host.c, built from that copy) sending the very
same note.add lines to a fresh simulator right after it: what note-c itself achieves against
this simulator on this machine under the same load, and notegwd's rate over it. note-c
itself stays near half the limit over I2C: its length-poll loop (_i2cNoteQueryLength, a `for`
whose increment is _DelayMs(50)) sleeps 50 ms after the poll that found the answer too, so the
limit above, which does not count that sleep, is stricter than note-c's own behaviour. Both
transports run in every round; the median over the rounds is reported. Also printed: the machine, its load
and the latency of an fsync in the store's directory, which the daemon pays per batch.

Not part of make check (it takes a few minutes). From a plain build (not ASan):
    top_srcdir=$PWD top_builddir=$PWD/build bench/link_bench.py [--rounds N] [--notes N]
Figures from this project's machine are in docs/notecard-link.md."""
import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from harness import NOTEGWD, Daemon, TestDir, fail, wait_for  # noqa: E402
from sim import Sim, shim_path  # noqa: E402
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from blueshosts import build_notec_host  # noqa: E402

# note-c's constants (n_lib.h, note.h), and the bus and line speeds of the model
I2C_MAX = 253
DELAY_IO_MS = 6
CHUNK_DELAY_MS = 20
SEGMENT_BYTES = 250
SEGMENT_DELAY_MS = 250
POLL_MS = 50
SERIAL_SEGMENT_BYTES = 250
SERIAL_SEGMENT_DELAY_MS = 250
BUS_HZ = 100000
BAUD = 9600


def bus_ms(nbytes):
    """One I2C message of nbytes data bytes plus the address byte, 9 clocks a byte."""
    return (nbytes + 1) * 9 * 1000.0 / BUS_HZ


def i2c_limit_ms(req, rsp, card_ms):
    t, seg, left = 0.0, 0, req
    while left:
        n = min(left, I2C_MAX)
        t += DELAY_IO_MS + bus_ms(1 + n)
        seg += n
        left -= n
        if seg > SEGMENT_BYTES:
            seg = 0
            t += SEGMENT_DELAY_MS
        t += CHUNK_DELAY_MS
    waited = CHUNK_DELAY_MS + DELAY_IO_MS           # since the last chunk, before the 1st poll
    t += DELAY_IO_MS + bus_ms(2) + bus_ms(2)
    while waited < card_ms:                          # polls 50 ms apart until it has answered
        t += POLL_MS + bus_ms(2) + bus_ms(2)
        waited += POLL_MS
    left = rsp
    while left:
        n = min(left, I2C_MAX)
        t += bus_ms(2) + bus_ms(2 + n)
        left -= n
    return t


def serial_limit_ms(req, rsp, card_ms):
    pauses = max(0, (req - 1) // SERIAL_SEGMENT_BYTES)
    return (req + rsp) * 10 * 1000.0 / BAUD + pauses * SERIAL_SEGMENT_DELAY_MS + card_ms


def fsync_ms(path, rounds=20):
    f = os.path.join(path, "fsync.probe")
    out = []
    with open(f, "wb") as fh:
        for _ in range(rounds):
            fh.write(b"x" * 4096)
            fh.flush()
            t = time.perf_counter()
            os.fsync(fh.fileno())
            out.append((time.perf_counter() - t) * 1000)
    os.unlink(f)
    return statistics.median(out)


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, %s %s" % (model, os.cpu_count() or 0, platform.system(),
                                   platform.release())


def card_state(gw):
    st = gw.status()
    return st.get("status", st).get("notecard", {}).get("state")


def queue_notes(gw, notes, file="bench.qo", senders=30):
    """Queue notes through the control socket's send (what `notegw send` does) from several
    connections, one note in flight on each, so the daemon's group commit gathers them."""
    errors = []

    def sender(first):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(gw.socket)
        f = s.makefile("rwb")
        for i in range(first, notes, senders):
            body = {"temp": 21.5, "hum": 48.25, "site": "plant-7", "i": i}
            f.write(json.dumps({"cmd": "send", "file": file, "body": body}).encode() + b"\n")
            f.flush()
            rep = json.loads(f.readline() or b"{}")
            if not rep.get("ok"):
                errors.append(rep)
                break
        s.close()
    ts = [threading.Thread(target=sender, args=(k,)) for k in range(min(senders, notes))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        fail("send failed: %r" % errors[0])


def drain(transport, notes, card_ms, sample_s=None, capacity=None):
    """One drain (of a sample_s window of it, when given); returns measure()'s figures and
    the simulator's counters."""
    args = ["--proc-ms", str(card_ms)]
    if capacity:
        args += ["--capacity", str(capacity)]
    with TestDir("linkbench-" + transport) as d, \
            Sim(serial=transport == "serial", i2c=transport == "i2c", timing="real",
                args=args, workdir=d.file("sim")) as sim:
        card = {"transport": transport, "poll_interval": "60s"}
        env = None
        if transport == "serial":
            card["device"] = sim.serial_path
        else:
            card.update({"device": "/dev/i2c-1", "address": "0x17"})
            env = sim.i2c_env(NOTEGWD)
        # the card is away while the notes are queued, so the drain is one uninterrupted run;
        # the daemon's configuration is the default one (the card's room decides)
        sim.gone(600)
        gw = Daemon(d, {"notecard": card, "daemon": {"log_level": "info"},
                        "update": {"enabled": False}}, env=env)
        gw.start()
        queue_notes(gw, notes)
        sim.back()
        if sample_s:
            # the sample starts with the first note on the card, not with the link's backoff
            wait_for(lambda: any(e["req"].get("req") == "note.add" for e in sim.request_log()),
                     120, 0.2, "%s: the first note.add" % transport)
            time.sleep(sample_s)
        else:
            wait_for(lambda: len([e for e in sim.request_log()
                                  if e["req"].get("req") == "note.add" and
                                  e["req"].get("file") == "bench.qo" and e.get("rsp") and
                                  "err" not in e["rsp"]]) >= notes, 300, 0.5,
                     "%s: the store drained" % transport)
        gw.stop()
        return measure(sim.request_log(), transport, card_ms) + (sim.counters(),)


def measure(log, transport, card_ms):
    """(rate notes/s back to back, rate overall, limit notes/s, request bytes, answer bytes,
    the requests' texts). Back to back: the intervals between two note.adds with nothing
    else between them; overall: first to last, the link's other requests included."""
    def is_add(e):
        return e["req"].get("req") == "note.add" and e["req"].get("file") == "bench.qo" and \
            e.get("rsp") and "err" not in e["rsp"]
    first = next(i for i, e in enumerate(log) if is_add(e))
    last = max(i for i, e in enumerate(log) if is_add(e))
    adds = [e for e in log[first:last + 1] if is_add(e)]
    gaps = [b["t"] - a["t"] for a, b in zip(log[first:last], log[first + 1:last + 1])
            if is_add(a) and is_add(b)]
    rate = len(gaps) / sum(gaps)
    overall = (len(adds) - 1) / (adds[-1]["t"] - adds[0]["t"])
    # the bytes on the wire: the line and its newline; the answer and its \r\n
    reqb = [len(e["req_raw"].encode()) + 1 for e in adds[1:]]
    rspb = [len(e["rsp_raw"].encode()) + 2 for e in adds[1:]]
    lim = i2c_limit_ms if transport == "i2c" else serial_limit_ms
    limit_ms = statistics.mean(lim(q, a, card_ms) for q, a in zip(reqb, rspb))
    texts = [json.dumps({k: v for k, v in e["req"].items() if k != "crc"},
                        separators=(",", ":")) for e in adds]
    return rate, overall, 1000.0 / limit_ms, statistics.mean(reqb), statistics.mean(rspb), texts


def drain_notec(host, transport, texts, card_ms):
    """Blues' note-c sends the daemon's very note.add lines to a fresh card, the same way."""
    with Sim(serial=transport == "serial", i2c=transport == "i2c", timing="real",
             args=["--proc-ms", str(card_ms)]) as sim:
        if transport == "serial":
            cmd, env = [host, "serial", sim.serial_path], None
        else:
            cmd, env = [host, "i2c", "/dev/i2c-1", str(I2C_MAX)], dict(os.environ)
            env.update(sim.i2c_env())
        p = subprocess.run(cmd, input="\n".join(texts) + "\n", env=env, capture_output=True,
                           text=True, timeout=600)
        if p.returncode != 0:
            fail("the note-c host failed: %s" % p.stderr[-2000:])
        return measure(sim.request_log(), transport, card_ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--notes", type=int, default=60, help="notes per I2C drain")
    ap.add_argument("--serial-notes", type=int, default=20, help="notes per serial drain")
    ap.add_argument("--card-ms", type=float, default=20.0)
    ap.add_argument("--backlog", type=int, default=3000,
                    help="notes queued for the backlog drains (0: none)")
    ap.add_argument("--sample-s", type=float, default=90.0,
                    help="seconds of each backlog drain measured (the steady state)")
    ap.add_argument("--card-kib-i2c", type=int, default=128,
                    help="the simulated card's flash for the I2C backlog drain (fills and "
                         "syncs within the sample)")
    ap.add_argument("--card-kib-serial", type=int, default=48)
    a = ap.parse_args()
    if shim_path() is None:
        fail("libi2cshim.so is not built (make check builds it)")
    print("link_bench: notegwd draining its store to notecard-sim in real time")
    print("machine: %s" % machine())
    with TestDir("linkbench-probe") as d:
        print("fsync of 4 KiB in the test directory: median %.2f ms" % fsync_ms(d.path))
    host = None
    blues = os.environ.get("NOTEGW_BLUES_HOSTS")
    if blues and os.path.isdir(os.path.join(blues, "note-c")):
        host, why = build_notec_host(os.path.join(blues, "note-c"),
                                     tempfile.mkdtemp(prefix="linkbench-notec-"), TOP)
        if host is None:
            fail("the note-c host does not build: %s" % why)
        print("baseline: Blues' note-c (NOTEGW_BLUES_HOSTS) sending the same note.add lines to a "
              "fresh simulator in the same round")
    else:
        print("baseline: none (set NOTEGW_BLUES_HOSTS to pair each drain with Blues' note-c)")
    ratios = {tr: {"daemon": [], "overall": [], "note-c": [], "paired": [], "backlog": []}
              for tr in ("i2c", "serial")}
    for r in range(a.rounds):
        order = ("i2c", "serial") if r % 2 == 0 else ("serial", "i2c")
        for tr in order:
            n = a.notes if tr == "i2c" else a.serial_notes
            load = os.getloadavg()[0]
            rate, overall, limit, reqb, rspb, texts, _ = drain(tr, n, a.card_ms)
            ratios[tr]["daemon"].append(rate / limit)
            ratios[tr]["overall"].append(overall / limit)
            line = ("round %d %-6s %3d notes, %.0f-byte note.add, %.0f-byte answer: notegwd %6.2f"
                    " notes/s (%.2f with its other requests), note-c's pacing allows %6.2f: "
                    "ratio %.3f (%.3f)"
                    % (r + 1, tr, n, reqb, rspb, rate, overall, limit, rate / limit,
                       overall / limit))
            if host:
                crate, _, climit, _, _, _ = drain_notec(host, tr, texts, a.card_ms)
                ratios[tr]["note-c"].append(crate / climit)
                ratios[tr]["paired"].append(rate / crate)
                line += "; note-c itself %6.2f (ratio %.3f); notegwd/note-c %.3f" % (
                    crate, crate / climit, rate / crate)
            print(line + " (load %.2f)" % load, flush=True)
        if a.backlog:
            for tr in order:
                load = os.getloadavg()[0]
                cap = a.card_kib_i2c if tr == "i2c" else a.card_kib_serial
                rate, overall, limit, reqb, rspb, texts, c = drain(
                    tr, a.backlog, a.card_ms, sample_s=a.sample_s, capacity=cap * 1024)
                ratios[tr]["backlog"].append(overall / limit)
                print("round %d %-6s backlog of %d, %.0f s of its drain (%d notes) with a %d KiB "
                      "card (%d hub.sync, %d refusals for room): %.2f notes/s all included, "
                      "%.2f back to back, limit %.2f: ratio %.3f (%.3f back to back) (load %.2f)"
                      % (r + 1, tr, a.backlog, a.sample_s, len(texts), cap,
                         c.get("sync_requests", 0), c.get("storage_full", 0), overall, rate,
                         limit, overall / limit, rate / limit, load), flush=True)
    for tr in ("i2c", "serial"):
        for what, v in ratios[tr].items():
            if v:
                print("%-6s %-22s median %.3f over %d rounds (min %.3f, max %.3f)"
                      % (tr, {"daemon": "notegwd / limit", "overall": "(with other requests)",
                              "note-c": "note-c / limit",
                              "paired": "notegwd / note-c",
                              "backlog": "backlog sample / limit"}[what],
                         statistics.median(v), len(v), min(v), max(v)))
    print("target: notegwd / limit >= 0.95; backlog sample (all requests included) >= 0.9; "
          "load average now: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
