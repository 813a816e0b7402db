#!/usr/bin/python3
"""idle_bench: what an idle notegwd costs, on notecard-sim over serial (fast timing), nothing
queued and nothing arriving. For each configuration: wake-ups a second (voluntary context
switches of all its threads over the window, tests/lib/procstat.py), per thread, and memory
(VmRSS, and Pss and private memory from smaps_rollup).
- attn: ATTN configured, through the real libgpiod path on the fake chip tests/lib/gpio_shim.c
  (aim: 0; the daemon only looks hourly in case an edge was lost);
- poll 5s (the default), poll 60s, poll 24h: without ATTN only the poll interval should wake
  it; each look is a few card requests, each one or two wake-ups, so the figure is printed
  next to the looks a second the configuration asks for;
- attn + metrics: a configured metrics textfile (every 15 s) on top of ATTN.
Not part of make check. Usage (from the source tree, after make check has built the shims):
    top_srcdir=$PWD top_builddir=$PWD/build bench/idle_bench.py [--window S]
Figures with date and machine: docs/benchmarks.md."""
import argparse
import os
import sys

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
from harness import TestDir, skip  # noqa: E402
from idle import gpio_shim, idle_run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float, default=60.0, help="seconds measured per case")
    a = ap.parse_args()
    if gpio_shim() is None:
        skip("tests/lib/libgpioshim.so not built (make check builds it; needs libgpiod v1)")
    cases = [
        ("attn", {"attn": True}, 0.0),
        ("poll 5s", {"poll": "5s"}, 1 / 5),
        ("poll 60s", {"poll": "60s"}, 1 / 60),
        ("poll 24h", {"poll": "24h"}, 1 / 86400),
        ("attn+metrics", {"attn": True, "extra": {"daemon": {"metrics_file": "METRICS"}}}, 1 / 15),
    ]
    print("idle_bench: %.0f s per case; wake-ups = voluntary context switches, all threads" % a.window)
    print("%-14s %9s %9s %9s %9s %9s  %s" % ("case", "wakeups/s", "looks/s", "VmRSS kB", "Pss kB",
                                              "priv kB", "per thread /s"))
    with TestDir("idle-bench") as t:
        for i, (name, kw, looks) in enumerate(cases):
            kw = dict(kw)
            if "extra" in kw:
                kw["extra"] = {"daemon": {"metrics_file": t.file("metrics-%d.prom" % i)}}
            r = idle_run(t, "c%d" % i, window=a.window, **kw)
            m = r["mem"]
            th = " ".join("%.2f" % v for _, v in sorted(r["threads"].items()))
            print("%-14s %9.3f %9.3f %9d %9d %9d  %s" % (name, r["per_s"], looks, m["rss"], m["pss"],
                                                          m["private"], th), flush=True)
            r["gw"].stop()
            r["sim"].stop()


if __name__ == "__main__":
    main()
