"""An idle notegwd on notecard-sim (serial, fast timing), with or without ATTN, and what it costs
while nothing happens: wake-ups per second over a window, per thread, and its memory. ATTN goes
through the daemon's real libgpiod code path, on the fake chip of tests/lib/gpio_shim.c whose pin
is the simulator's --attn-file. Used by tests/integration/test_idle.py and bench/idle_bench.py."""
import os
import time

from harness import NOTEGWD, Daemon, wait_for
from procstat import memory_kb, wakeups, wakeups_per_thread
from sim import Sim, asan_runtime, built_shim



def gpio_shim():
    """The fake GPIO chip built by `make check` (libgpiod v1 builds only), or None."""
    return built_shim("libgpioshim.so")


def card_status(gw):
    return gw.status()["status"].get("notecard", {})


def idle_run(t, name, attn=False, poll=None, window=20.0, settle=3.0, extra=None):
    """Start a daemon (ATTN on the fake chip when attn), wait until its card is ready and has
    settled, then count wake-ups over `window` seconds. Returns a dict: per_s (all threads),
    threads ({name/tid: per_s}), mem (memory_kb at the end), gw and sim (still running: the
    caller may go on using them; TestDir stops them)."""
    simdir = t.file(name + "-sim")
    os.makedirs(simdir, exist_ok=True)
    pin = os.path.join(simdir, "attn")
    s = Sim(serial=True, workdir=simdir, timing="fast", args=["--attn-file", pin])
    t.procs.append(s)
    nc = {"transport": "serial", "device": s.serial_path}
    if poll:
        nc["poll_interval"] = poll
    env = None
    if attn:
        nc["attn"] = "gpiochip0:17"
        # a sanitized daemon needs its ASan runtime first in LD_PRELOAD (as for the I2C shim)
        pre = [p for p in (asan_runtime(NOTEGWD), gpio_shim()) if p]
        env = {"LD_PRELOAD": " ".join(pre), "NOTEGW_GPIO_SIM": pin}
    sections = {"daemon": {"log_level": "info"}, "notecard": nc, "update": {"enabled": False}}
    for sec, keys in (extra or {}).items():
        sections.setdefault(sec, {}).update(keys)
    gw = Daemon(t, sections, name=name, env=env)
    gw.start()
    wait_for(lambda: card_status(gw).get("state") == "ready", timeout=30, what="card ready")
    if attn:
        wait_for(lambda: s.attn().get("armed"), timeout=30, what="ATTN armed")
    time.sleep(settle)
    pid = gw.proc.pid
    th0, n0, t0 = wakeups_per_thread(pid), wakeups(pid), time.monotonic()
    time.sleep(window)
    th1, n1, t1 = wakeups_per_thread(pid), wakeups(pid), time.monotonic()
    el = t1 - t0
    threads = {k: (th1[k] - th0.get(k, 0)) / el for k in th1}
    return {"per_s": (n1 - n0) / el, "threads": threads, "mem": memory_kb(pid), "gw": gw, "sim": s}
