#!/usr/bin/python3
"""soak: what notegwd's memory does under load. Memory is read from /proc (tests/lib/procstat.py):
VmRSS, and beside it Pss and private memory from smaps_rollup. VmRSS counts the shared libraries
(libc, SQLite, OpenSSL, jansson: about 5 MiB here) that every process mapping them shares, so
it is private memory (Private_Dirty: heap, stacks, the libraries' data) that says what the
daemon itself holds. (Private_Clean, text no other process happens to map at the moment, moves
with what else runs on the machine and is left out; tests/lib/procstat.py.)

Two phases:
- queue (always): notegwd on the simulator (serial, fast timing) while bench/store_fill puts
  notes into its store from another process, the way the broker plugin does, in big
  transactions: 10, 100, 1,000, 10,000, 100,000 then 1,000,000 queued (--max). At each step the
  daemon is woken by the write, drains what the card takes, is asked for its status (which
  counts the queue) and then measured; at the largest queue it goes on draining for a minute,
  sampled every 10 s. Verdict: private memory within +-256 kB of its value at
  10 queued, all the way to the largest queue (the limit is LIMIT_KB below, not a
  percentage), and <= 2 MiB idle at 10 queued.
- flow (--flow N): N notes through MQTT -> store -> link -> the simulator (hub mode
  continuous), the publisher keeping at most WINDOW notes in flight so the queue stays
  bounded and any growth is the daemon's, not the backlog's; memory sampled --samples times.
  Same limit, from the first sample after warm-up to the last. The broker is told to queue
  without limit for its subscribers: mosquitto's default (max_queued_messages 1000) drops
  QoS 1 messages for a subscriber that falls that far behind, after it has acknowledged them
  to the publisher. That is the broker's limit, outside notegw's guarantee.

Not part of make check. Run from a plain build (not ASan, whose quarantine grows memory):
    top_srcdir=$PWD top_builddir=$PWD/build bench/soak.py [--max N] [--flow N] [--quick]
--quick: queue to 100,000 and a 20,000-note flow. Figures, with date and machine, are in
docs/benchmarks.md."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from harness import TOP_BUILDDIR, Broker, Daemon, TestDir, fail, plugin_so, skip, wait_for  # noqa: E402
from procstat import memory_kb  # noqa: E402
from sim import Sim  # noqa: E402

LIMIT_KB = 256       # private memory may move this much from its first sample, either way
IDLE_MAX_KB = 2048   # private memory with 10 notes queued
SETTLE_S = 5         # draining after each put, before the status calls and the sample
DRAIN_S = 60         # then sampled every 10 s while the largest queue drains
STORE_FILL = os.path.join(TOP_BUILDDIR, "bench", "store_fill")


class HubCounter:
    """Counts notes the simulator's hub wrote to its JSON-lines file, incrementally."""

    def __init__(self, path):
        self.path, self.off, self.n = path, 0, 0

    def count(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except FileNotFoundError:
            return 0
        k = data.rfind(b"\n") + 1
        self.n += data.count(b"\n", 0, k)
        self.off += k
        return self.n


def mem_row(label, m):
    return "%12s %9d %9d %9d" % (label, m["rss"], m["pss"], m["private"])


def mem_head(label):
    return "%12s %9s %9s %9s" % (label, "VmRSS kB", "Pss kB", "priv kB")


def queue_phase(t, top):
    """Private memory with 10 -> top notes queued. Returns True when flat."""
    if not os.access(STORE_FILL, os.X_OK):
        skip("bench/store_fill not built")
    levels = [n for n in (10, 100, 1000, 10000, 100000, 1000000) if n < top] + [top]
    with Sim(serial=True, workdir=t.file("qsim"), timing="fast") as s:
        gw = Daemon(t, {
            "daemon": {"log_level": "info"},
            "notecard": {"transport": "serial", "device": s.serial_path},
            "hub": {"mode": "continuous"},
            "update": {"enabled": False},
        }, name="queue")
        gw.start()
        pid = gw.proc.pid
        wait_for(lambda: gw.status()["status"].get("notecard", {}).get("state") == "ready",
                 timeout=30, what="card ready")
        rows, put = [], 0
        print("soak: queue phase: notes put into the store by bench/store_fill", flush=True)
        print(mem_head("queued") + " %9s" % "put", flush=True)
        for level in levels:
            subprocess.run([STORE_FILL, gw.store, str(level - put)], check=True)
            put = level
            time.sleep(SETTLE_S)  # the daemon wakes on the write and drains meanwhile
            st = None
            for _ in range(3):
                st = gw.status()["status"]
            time.sleep(1)
            queued = st.get("store", {}).get("queued", -1)
            m = memory_kb(pid)
            rows.append((queued, m))
            print(mem_row(str(queued), m) + " %9d" % put, flush=True)
        # then the largest backlog drains a while: pages of sent notes pass through the cache
        for _ in range(DRAIN_S // 10):
            time.sleep(10)
            queued = gw.status()["status"].get("store", {}).get("queued", -1)
            m = memory_kb(pid)
            rows.append((queued, m))
            print(mem_row(str(queued), m) + " %9s" % "draining", flush=True)
        rc = gw.stop()
        if rc != 0:
            fail("notegwd exited %s on SIGTERM" % rc)
    first, last = rows[0][1]["private"], rows[-1][1]["private"]
    peak = max(r[1]["private"] for r in rows)
    low = min(r[1]["private"] for r in rows)
    flat = max(peak - first, first - low) <= LIMIT_KB
    idle_ok = first <= IDLE_MAX_KB
    print("soak: queue: private %d kB at %d queued, %d kB at %d queued, range %d..%d kB: "
          "%s (limit +-%d kB); idle %s (limit %d kB)"
          % (first, rows[0][0], last, rows[-1][0], low, peak, "FLAT" if flat else "GROWING",
             LIMIT_KB, "OK" if idle_ok else "TOO BIG", IDLE_MAX_KB), flush=True)
    return flat and idle_ok


def flow_phase(t, total, samples_n, window):
    """Private memory while `total` notes flow through MQTT -> store -> link -> hub."""
    if not plugin_so("mqtt") or not shutil.which("mosquitto_pub"):
        skip("the flow phase needs the mqtt plugin and mosquitto-clients")
    every = max(1, total // samples_n)
    broker = Broker(t, extra="max_queued_messages 0").start()
    with Sim(serial=True, workdir=t.file("sim"), timing="fast") as s:
        gw = Daemon(t, {
            "daemon": {"log_level": "info"},
            "notecard": {"transport": "serial", "device": s.serial_path, "poll_interval": "1s"},
            "hub": {"mode": "continuous"},
            "update": {"enabled": False},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "prefix": "soak"},
        }, plugins=["mqtt"], name="gw")
        gw.start()
        pid = gw.proc.pid
        pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                                "-t", "soak/out/soak.qo", "-l"], stdin=subprocess.PIPE)
        hub = HubCounter(s.hub_path)
        samples = []  # (notes at hub, memory, seconds)
        sent = 0
        t0 = time.monotonic()
        next_sample = 0
        last_done, last_move = -1, time.monotonic()
        print("soak: flow phase: %d notes through MQTT -> store -> link -> hub" % total, flush=True)
        print(mem_head("at hub") + " %9s %8s" % ("notes/s", "elapsed"), flush=True)
        while True:
            done = hub.count()
            if done >= next_sample:
                el = time.monotonic() - t0
                samples.append((done, memory_kb(pid), el))
                print(mem_row(str(done), samples[-1][1]) + " %9.0f %7.0fs"
                      % (done / el if el else 0, el), flush=True)
                next_sample += every
            if done >= total:
                break
            if done != last_done:
                last_done, last_move = done, time.monotonic()
            elif time.monotonic() - last_move > 60:
                fail("no progress for 60 s at %d of %d sent; mqtt plugin: %r"
                     % (done, sent, gw.status()["status"]["plugins"].get("mqtt")))
            if gw.proc.poll() is not None:
                fail("notegwd exited with %s" % gw.proc.returncode)
            room = min(window - (sent - done), total - sent)
            if room > 0:
                lines = "".join(json.dumps({"seq": sent + i, "temp": 21.5, "unit": "C",
                                            "tag": "soak"}) + "\n" for i in range(room))
                pub.stdin.write(lines.encode())
                pub.stdin.flush()
                sent += room
            else:
                time.sleep(0.05)
        pub.stdin.close()
        pub.wait(30)
        el = time.monotonic() - t0
        rc = gw.stop()
        if rc != 0:
            fail("notegwd exited %s on SIGTERM" % rc)
    warm = samples[1] if len(samples) > 2 else samples[0]  # after start-up and first caches
    last = samples[-1]
    peak = max(x[1]["private"] for x in samples[1:] or samples)
    growth = last[1]["private"] - warm[1]["private"]
    flat = max(abs(growth), peak - warm[1]["private"]) <= LIMIT_KB
    print("soak: flow: %d notes in %.0fs (%.0f notes/s)" % (total, el, total / el))
    print("soak: flow: private first %d kB (after warm-up, at %d notes), last %d kB, max %d kB, "
          "growth %+d kB (VmRSS %d -> %d kB): %s (limit +-%d kB)"
          % (warm[1]["private"], warm[0], last[1]["private"], peak, growth, warm[1]["rss"],
             last[1]["rss"], "FLAT" if flat else "GROWING", LIMIT_KB), flush=True)
    return flat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=1000000, help="largest queue (default 1,000,000)")
    ap.add_argument("--flow", type=int, default=0, help="also flow N notes through MQTT")
    ap.add_argument("--quick", action="store_true", help="queue to 100,000, flow 20,000")
    ap.add_argument("--samples", type=int, default=20, help="memory samples over the flow")
    ap.add_argument("--window", type=int, default=500, help="notes in flight at most (flow)")
    a = ap.parse_args()
    top, flow = (100000, 20000) if a.quick else (a.max, a.flow)
    with TestDir("soak") as t:
        ok = queue_phase(t, top)
        if flow:
            ok = flow_phase(t, flow, a.samples, a.window) and ok
    print("soak: verdict: %s" % ("FLAT" if ok else "GROWING"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
