"""The crash test: notes accepted through `notegw send` while the daemon is
SIGKILLed again and again all reach the simulated hub after restarts; duplicates,
if any, carry the same gateway id.

Then a backlog drain killed half way: "sent" marks are committed in batches, so the kill
finds notes the card took whose marks were not committed yet. Those notes go to the card
again after the restart, each with its own _id, and none is lost."""
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGW, Daemon, TestDir, check, log, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "6"))
# Seconds of load between two kills, drawn uniformly; tools/crash-long.sh shortens
# them so that a thousand rounds fit in an hour.
GAP_MIN = float(os.environ.get("CRASH_GAP_MIN", "0.3"))
GAP_MAX = float(os.environ.get("CRASH_GAP_MAX", "1.5"))


BACKLOG = 300
KILL_AT = 70  # just past a commit of sent marks: 63, then 127 (batches 1, 2, 4 ... 64)


def backlog_killed(gw, sim):
    sim.gone(600)
    for k in range(BACKLOG):
        gw.cli("send", "backlog.qo", json.dumps({"k": k}))
    start = sim.control("log", since=0)["next"]

    def adds(since):
        rep = sim.control("log", since=since)
        return [e for e in rep["log"] if (e.get("req") or {}).get("file") == "backlog.qo"
                and e.get("rsp") is not None and "err" not in e["rsp"]], rep["next"]
    sim.back()
    wait_for(lambda: len(adds(start)[0]) >= KILL_AT, 120, 0.02, "%d notes on the card" % KILL_AT)
    gw.kill()
    before = len(adds(start)[0])
    gw.start()

    def arrived():
        seen = {}
        for ev in sim.hub_notes():
            if ev.get("file") == "backlog.qo":
                b = ev.get("body") or {}
                seen.setdefault(b.get("k"), set()).add(b.get("_id"))
        return seen if len(seen) == BACKLOG else None
    seen = wait_for(arrived, 180, 0.5, "the whole backlog at the hub after the kill")
    dups = {k: ids for k, ids in seen.items() if len(ids) > 1}
    check(not dups, "a resent note carried a different _id: %r" % dups)
    sent = len(adds(start)[0])
    again = sent - BACKLOG
    # one commit per note would resend at most the one note in flight
    check(again >= 2, "the kill found sent marks not yet committed (%d notes sent again, "
          "%d on the card at the kill)" % (again, before))
    print("backlog: killed with %d of %d on the card; %d sent again with their _id, 0 lost"
          % (before, BACKLOG, again))


def main():
    rnd = random.Random(int(os.environ.get("CRASH_SEED", "4")))
    with TestDir("crash") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "1s", "timing_scale": 5},
                        "hub": {"mode": "continuous"},
                        "update": {"enabled": False}})
        accepted, attempted = [], 0
        stop = threading.Event()

        def producer():
            nonlocal attempted
            k = 0
            while not stop.is_set():
                k += 1
                attempted += 1
                body = json.dumps({"k": k, "pad": "x" * rnd.randint(0, 64)})
                p = subprocess.run([NOTEGW, "-s", gw.socket, "send", "crash.qo", body],
                                   capture_output=True, text=True, timeout=30)
                if p.returncode == 0:
                    accepted.append(k)
                elif p.returncode not in (1, 3):
                    log("send exited", p.returncode, p.stderr)

        t0 = time.monotonic()
        gw.start()
        t = threading.Thread(target=producer, daemon=True)
        t.start()
        for i in range(ROUNDS):
            time.sleep(rnd.uniform(GAP_MIN, GAP_MAX))
            gw.kill()
            if i % 50 == 0 or i == ROUNDS - 1:
                log("round %d: killed with %d accepted (%.0fs)" % (i, len(accepted), time.monotonic() - t0))
            gw.start()
        # On a slow (sanitized, loaded) machine the rounds may be over before many
        # notes went in: keep producing until enough have been accepted to mean
        # something, with the daemon running.
        wait_for(lambda: len(accepted) >= 30, 120, 0.2, "30 notes accepted")
        stop.set()
        t.join(60)

        def arrived():
            seen = {}
            for ev in sim.hub_notes():
                if ev.get("file") != "crash.qo":
                    continue
                b = ev.get("body") or {}
                seen.setdefault(b.get("k"), set()).add(b.get("_id"))
            return seen

        def all_in():
            s = arrived()
            return s if all(k in s for k in accepted) else None
        try:
            seen = wait_for(all_in, max(90, 0.1 * len(accepted)), 0.5, "every accepted note at the hub")
        except SystemExit:
            s = arrived()
            missing = [k for k in accepted if k not in s]
            log("missing %d of %d accepted: %s" % (len(missing), len(accepted), missing[:20]))
            raise
        dups = {k: ids for k, ids in seen.items() if k in accepted and len(ids) > 1}
        check(not dups, "a duplicate carried a different gateway id: %r" % dups)
        copies = sum(1 for ev in sim.hub_notes() if ev.get("file") == "crash.qo")
        backlog_killed(gw, sim)
        gw.stop()
        print("crash: %d rounds, %d sends attempted, %d accepted, 0 lost, %d duplicate copies, %.0fs"
              % (ROUNDS, attempted, len(accepted), copies - len(seen), time.monotonic() - t0))
    print("PASS: test_crash")


if __name__ == "__main__":
    main()
