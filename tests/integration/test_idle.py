"""An idle gateway sleeps: wake-ups (voluntary context switches of all notegwd's threads,
tests/lib/procstat.py) over a quiet window, on notecard-sim over serial.
- With ATTN configured, through the daemon's real libgpiod path on the fake chip of
  tests/lib/gpio_shim.c (the simulator's ATTN pin), an idle daemon wakes <= 0.1 times a second
  (it used to wake 2.3 times: the loop's watch and the store check every second, env, inbound
  and status looks on timers);
- `notegw status` shows the daemon's memory (private <= Pss <= VmRSS);
- that path is the one working: an inbound note and an env change injected on the card reach
  the daemon at once, by ATTN, long before any fallback look;
- without ATTN and a 24 h poll interval it also stays <= 0.1 a second (only the poll interval
  wakes it);
- a note another process writes into the store (bench/store_fill, as the broker plugin does)
  is sent without a poll: the daemon watches the store's files.
Skips without the fake chip (a build without libgpiod v1)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TOP_BUILDDIR, TestDir, check, log, skip, wait_for  # noqa: E402
from idle import card_status, gpio_shim, idle_run  # noqa: E402

MAX_PER_S = 0.1
WINDOW_S = 20.0


def counters(gw):
    return gw.status()["status"].get("link", {}).get("counters", {})


def main():
    if gpio_shim() is None:
        skip("tests/lib/libgpioshim.so not built (needs libgpiod v1)")
    fill = os.path.join(TOP_BUILDDIR, "bench", "store_fill")
    with TestDir("idle") as t:
        r = idle_run(t, "attn", attn=True, window=WINDOW_S)
        log("ATTN idle: %.3f wake-ups/s %r" % (r["per_s"], r["threads"]))
        gw, s = r["gw"], r["sim"]
        check(card_status(gw).get("attn") is True, "ATTN in use")
        d = gw.status()["status"]["daemon"]
        check(0 < d.get("private_bytes", 0) <= d.get("pss_bytes", 0) <= d.get("rss_bytes", 0),
              "status shows memory three ways: %r" % d)
        check(r["per_s"] <= MAX_PER_S, "idle with ATTN: %.3f wake-ups/s <= %.1f" % (r["per_s"], MAX_PER_S))

        before = counters(gw)
        s.inject("data.qi", {"cmd": "on"}, now=True)
        wait_for(lambda: counters(gw).get("inbound", 0) > before.get("inbound", 0), timeout=10,
                 what="inbound note taken on ATTN")
        s.env({"mode": "eco"}, now=True)
        wait_for(lambda: counters(gw).get("env_changes", 0) > before.get("env_changes", 0), timeout=10,
                 what="env change taken on ATTN")
        check(counters(gw).get("attn", 0) >= 2, "both came by ATTN: %r" % counters(gw).get("attn"))
        gw.stop()

        r = idle_run(t, "poll", poll="24h", window=WINDOW_S)
        log("no ATTN, 24 h poll, idle: %.3f wake-ups/s %r" % (r["per_s"], r["threads"]))
        check(r["per_s"] <= MAX_PER_S, "idle, 24 h poll: %.3f wake-ups/s <= %.1f" % (r["per_s"], MAX_PER_S))
        gw = r["gw"]
        sent = counters(gw).get("notes_sent", 0)
        t0 = time.monotonic()
        subprocess.run([fill, gw.store, "3"], check=True)
        wait_for(lambda: counters(gw).get("notes_sent", 0) >= sent + 3, timeout=10,
                 what="notes written by another process sent")
        log("3 notes from another process sent in %.1f s" % (time.monotonic() - t0))
        gw.stop()


if __name__ == "__main__":
    main()
