"""The crash test: notes accepted through `notegw send` while the daemon is
SIGKILLed again and again all reach the simulated hub after restarts; duplicates,
if any, carry the same gateway id."""
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

        gw.start()
        t = threading.Thread(target=producer, daemon=True)
        t.start()
        for i in range(ROUNDS):
            time.sleep(rnd.uniform(0.3, 1.5))
            gw.kill()
            log("round %d: killed with %d accepted" % (i, len(accepted)))
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
            seen = wait_for(all_in, 90, 0.5, "every accepted note at the hub")
        except SystemExit:
            s = arrived()
            missing = [k for k in accepted if k not in s]
            log("missing %d of %d accepted: %s" % (len(missing), len(accepted), missing[:20]))
            raise
        dups = {k: ids for k, ids in seen.items() if k in accepted and len(ids) > 1}
        check(not dups, "a duplicate carried a different gateway id: %r" % dups)
        copies = sum(1 for ev in sim.hub_notes() if ev.get("file") == "crash.qo")
        gw.stop()
        print("crash: %d rounds, %d sends attempted, %d accepted, 0 lost, %d duplicate copies"
              % (ROUNDS, attempted, len(accepted), copies - len(seen)))
    print("PASS: test_crash")


if __name__ == "__main__":
    main()
