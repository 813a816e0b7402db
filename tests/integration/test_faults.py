"""The fault suite: the simulator's faults over both wires (garbled and
dropped bytes, {io}, CRC corruption, a reset mid-transaction, I2C NACKs, short
reads and bad headers, the card gone and back), SIGHUP storms and SIGKILLs of the
daemon under load. After each phase the faults stop and every note accepted so far
must reach the hub, and the daemon must be back to normal by itself. Prints the
totals: faults injected, notes accepted, notes lost (must be 0)."""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGW, NOTEGWD, Daemon, TestDir, check, log, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

PHASE_S = float(os.environ.get("FAULT_PHASE_S", "2.5"))


class Producer:
    """Sends notes through `notegw send` in a thread; remembers what was accepted."""

    def __init__(self, gw, file):
        self.gw, self.file = gw, file
        self.accepted = []
        self.k = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.k += 1
            p = subprocess.run([NOTEGW, "-s", self.gw.socket, "send", self.file,
                                json.dumps({"k": self.k})], capture_output=True, text=True, timeout=60)
            if p.returncode == 0:
                self.accepted.append(self.k)
            else:
                time.sleep(0.05)

    def start(self):
        self.t.start()
        return self

    def finish(self):
        self.stop.set()
        self.t.join(90)


def arrived(sim, file):
    return {(e.get("body") or {}).get("k") for e in sim.hub_notes() if e.get("file") == file}


def run_wire(d, wire, totals):
    with Sim(serial=(wire == "serial"), i2c=(wire == "i2c"), workdir=d.file("sim-" + wire),
             args=["--seed", "7"]) as sim:
        nc = {"poll_interval": "1s", "timing_scale": 2}
        env = None
        if wire == "serial":
            nc.update(transport="serial", device=sim.serial_path)
        else:
            nc.update(transport="i2c", device="/dev/i2c-1", address="0x17")
            env = sim.i2c_env(NOTEGWD)
        gw = Daemon(d, {"notecard": nc, "hub": {"mode": "continuous"}, "update": {"enabled": False}},
                    name="gw-" + wire, env=env)
        gw.start()
        file = "faults-%s.qo" % wire
        prod = Producer(gw, file).start()
        phases = [("io", 0.2), ("garble", 0.15), ("drop", 0.15), ("crc", 0.2), ("reset", 0.05)]
        if wire == "i2c":
            phases += [("nack", 0.1), ("short_read", 0.1), ("bad_sent", 0.1)]
        for name, p in phases:
            sim.fault(name, p=p)
            time.sleep(PHASE_S)
            sim.clear_faults()
            log("%s: %s at %.0f%%: %d accepted so far" % (wire, name, p * 100, len(prod.accepted)))
        # The card gone (unplugged) for a while, then back.
        sim.gone(3)
        time.sleep(4)
        sim.back()
        # SIGHUP storm: reloads must not lose or stall anything.
        for _ in range(20):
            gw.signal(signal.SIGHUP)
            time.sleep(0.05)
        # SIGKILLs at random points under load.
        rnd = random.Random(3)
        for _ in range(3):
            time.sleep(rnd.uniform(0.2, 1.0))
            gw.kill()
            gw.start()
        time.sleep(0.5)
        prod.finish()
        injected = sum(sim.control("faults")["fired"].values())
        want = set(prod.accepted)

        def all_in():
            return want <= arrived(sim, file)
        try:
            wait_for(all_in, 120, 0.5, "every accepted note at the hub (%s)" % wire)
        except SystemExit:
            lost = sorted(want - arrived(sim, file))
            log("%s: lost %d: %s" % (wire, len(lost), lost[:30]))
            raise
        st = gw.status()["status"]
        check(st["notecard"].get("state") in ("ready", "ok", "connected", "online"),
              "%s: the link did not return to normal: %r" % (wire, st["notecard"]))
        check(gw.stop() == 0, "%s: daemon did not stop cleanly" % wire)
        totals["faults"] += injected
        totals["accepted"] += len(want)
        log("%s: %d faults injected, %d notes accepted, 0 lost" % (wire, injected, len(want)))


def main():
    totals = {"faults": 0, "accepted": 0}
    with TestDir("faults") as d:
        run_wire(d, "serial", totals)
        run_wire(d, "i2c", totals)
    print("fault suite: %d faults injected, %d notes accepted, 0 notes lost"
          % (totals["faults"], totals["accepted"]))
    print("PASS: test_faults")


if __name__ == "__main__":
    main()
