#!/usr/bin/python3
"""A card that answers nothing (notecard-sim `gone` over serial: no byte comes back) is
shown as `not answering` in `notegw status`, with why, and logged, within the time a
request may take (response_timeout_ms, 9 s at timing_scale 30) — not only after the
link has spent every retry and reset on it; and it is `ready` again when it answers."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

TIMEOUT_S = 9.0  # response_timeout_ms (30 s) at timing_scale 30; a retry doubles it
POLL_S = 1.0


def card(gw):
    st = gw.status()
    return st.get("status", st)["notecard"]


def main():
    with TestDir("card-hung") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "1s", "timing_scale": 30},
                        "hub": {"mode": "continuous"}, "update": {"enabled": False}})
        gw.start()
        wait_for(lambda: card(gw)["state"] == "ready", 30, 0.2, "the card ready")
        sim.gone(60)
        t0 = time.monotonic()
        # the next poll asks within POLL_S; its answer is due TIMEOUT_S later; the
        # watch looks once a second; the rest is a loaded machine's slack
        limit = POLL_S + TIMEOUT_S + 1.0 + 3.0
        c = wait_for(lambda: (lambda c: c if c["state"] != "ready" else None)(card(gw)),
                     limit + 5, 0.1, "status to stop saying ready")
        took = time.monotonic() - t0
        check(took <= limit, "status said ready for %.1f s with no answer (limit %.1f s)"
              % (took, limit))
        check(c["state"] == "not answering", "state is %r" % c["state"])
        check("no answer" in c.get("error", ""), "status says not why: %r" % c)
        wait_for(lambda: "no answer to" in gw.log_text(), 5, 0.1, "a log line")
        took_log = time.monotonic() - t0
        check(took_log <= limit + 1, "logged only after %.1f s" % took_log)
        sim.back()
        wait_for(lambda: card(gw)["state"] == "ready", 60, 0.2, "the card ready again")
        gw.stop()
    print("PASS: test_card_hung: a card answering nothing shown and logged after %.1f s "
          "(request timeout %.0f s)" % (took, TIMEOUT_S))


if __name__ == "__main__":
    main()
