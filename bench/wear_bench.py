#!/usr/bin/python3
"""wear_bench: bytes notegwd writes to disk per note, end to end (enqueue + send), and idle.

One run: notecard-sim (fast timing, serial) is away while --notes notes are queued through
the control socket's `send` (what `notegw send` does) from --senders connections, one note in
flight on each (the daemon's group commit gathers what arrives together, as it does for that
many MQTT or Modbus producers); then the card comes back and the daemon
drains its store into it (filling the card, asking it to sync, feeding it again); then it
sits idle for --idle seconds. The figures are the daemon's own write_bytes from
/proc/PID/io (bytes it caused to be written to the block device: the store's WAL, its
checkpoints, the state file; its log goes to a file too and is kept at warnings so that it
does not count), read before and after each phase, divided by the notes. Rounds alternate
nothing (one mode); the median over --rounds is printed with min and max.

Targets: <= 1 kB per note end to end, 0 B idle. Not part of make check; `make bench` runs it
from a build tree, or:
    top_srcdir=$PWD top_builddir=$PWD/build bench/wear_bench.py [--rounds N] [--notes N]
The store must be on a real disk (the test directory, under $TMPDIR): on tmpfs nothing
reaches a block device and every figure is 0. Figures from this project's machine are in
docs/store.md."""
import argparse
import os
import statistics
import sys
import time

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Daemon, TestDir, fail, wait_for  # noqa: E402
from sim import Sim  # noqa: E402
from link_bench import fsync_ms, machine, queue_notes  # noqa: E402


def write_bytes(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    fail("no write_bytes in /proc/%d/io" % pid)


def fs_type(path):
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, typ = line.split()[:3]
            if path.startswith(mnt) and len(mnt) > len(best):
                best, kind = mnt, typ
    return kind


def one_round(notes, senders, idle_s):
    with TestDir("wearbench") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "60s"},
                        "hub": {"mode": "continuous"},
                        "daemon": {"log_level": "warning"},
                        "update": {"enabled": False}})
        sim.gone(3600)
        gw.start()
        pid = gw.proc.pid
        time.sleep(1.0)
        w0 = write_bytes(pid)
        t0 = time.monotonic()
        queue_notes(gw, notes, file="wear.qo", senders=senders)
        t_enq = time.monotonic() - t0
        w1 = write_bytes(pid)
        start = sim.control("log", since=0)["next"]
        sim.back()
        t0 = time.monotonic()

        def queued():
            st = gw.status()
            return (st.get("status", st).get("store") or {}).get("queued")
        wait_for(lambda: queued() == 0, 3600, 1.0, "the store drained into the card")
        t_send = time.monotonic() - t0
        w2 = write_bytes(pid)
        time.sleep(idle_s)
        w3 = write_bytes(pid)
        log = sim.control("log", since=start)["log"]
        adds = len([e for e in log if (e.get("req") or {}).get("file") == "wear.qo"
                    and e.get("rsp") is not None and "err" not in e["rsp"]])
        st = gw.status()
        link = st.get("status", st).get("link", {})
        gw.stop()
        return {"enqueue": (w1 - w0) / notes, "send": (w2 - w1) / notes,
                "total": (w2 - w0) / notes, "idle": w3 - w2, "t_enq": t_enq, "t_send": t_send,
                "adds": adds, "commits": link.get("mark_commits"),
                "syncs": link.get("syncs_asked")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--notes", type=int, default=10000)
    ap.add_argument("--senders", type=int, default=30)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds idle after the drain")
    a = ap.parse_args()
    print("wear_bench: bytes notegwd writes to disk per note (enqueue + send), /proc/PID/io")
    print("machine: %s" % machine())
    with TestDir("wearbench-probe") as d:
        print("store directory on %s; fsync of 4 KiB there: median %.2f ms"
              % (fs_type(os.path.realpath(d.path)), fsync_ms(d.path)))
    rows = []
    for r in range(a.rounds):
        load = os.getloadavg()[0]
        x = one_round(a.notes, a.senders, a.idle)
        rows.append(x)
        print("round %d: %d notes from %d senders in %.0f s, sent in %.0f s (%d note.adds, %s "
              "mark commits, %s hub.sync): enqueue %.0f B/note, send %.0f B/note, total %.0f "
              "B/note; idle %.0f s: %d B (load %.2f)"
              % (r + 1, a.notes, a.senders, x["t_enq"], x["t_send"], x["adds"], x["commits"],
                 x["syncs"], x["enqueue"], x["send"], x["total"], a.idle, x["idle"], load),
              flush=True)
    for k, what in (("enqueue", "enqueue B/note"), ("send", "send B/note"),
                    ("total", "end to end B/note"), ("idle", "idle B")):
        v = [x[k] for x in rows]
        print("%-18s median %8.0f over %d rounds (min %.0f, max %.0f)"
              % (what, statistics.median(v), len(v), min(v), max(v)))
    print("target: end to end <= 1024 B/note, idle 0 B; load average now: %.2f %.2f %.2f"
          % os.getloadavg())


if __name__ == "__main__":
    main()
