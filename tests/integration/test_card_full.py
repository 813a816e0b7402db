"""A Notecard that fills up: notegwd against notecard-sim with a tiny flash (--capacity) and
a hub that syncs only when asked (periodic, outbound once a day), over serial.
- the link feeds the card until its storage or a refusal says it is full, asks it to sync
  (hub.sync) and feeds it again once the sync made room: the whole backlog reaches the hub
  in seconds, with the default card_max_pending (the card decides);
- the card is never sent a note while it reports no room beyond the one refusal that tells
  the link so, and its storage never passes its usable 80%;
- nothing is lost, and a note seen twice carries the same _id."""
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

NOTES = 60
CAPACITY = 2400  # bytes of flash: about 15 of these notes fit in its usable 80%


def main():
    with TestDir("cardfull") as d, \
            Sim(serial=True, workdir=d.file("sim"), args=["--capacity", str(CAPACITY)]) as sim:
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "1s", "timing_scale": 5},
                        "hub": {"mode": "periodic", "outbound": 1440, "inbound": 1440},
                        "update": {"enabled": False}})
        sim.gone(600)
        gw.start()
        for k in range(NOTES):
            gw.cli("send", "full.qo", json.dumps({"k": k, "v": "x" * 16}))
        # the card's storage, sampled all along the drain
        peak = [0]
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], sim.control("state")["storage"])
                except Exception:  # noqa: BLE001 - the simulator may be stopping at the end
                    pass
                stop.wait(0.05)
        sim.back()
        t = threading.Thread(target=watch, daemon=True)
        t.start()

        def added():
            return len([e for e in sim.request_log() if e.get("req", {}).get("req") == "note.add"
                        and "err" not in (e.get("rsp") or {"err": 1})]) >= NOTES
        # a link that waits for the card's own sync (once a day) never gets there
        wait_for(added, 60, 0.2, "the backlog on the card through a card that fills up")
        # what is left on the card goes at the card's next sync, as the hub mode says
        sim.sync()

        def arrived():
            seen = {}
            for ev in sim.hub_notes():
                if ev.get("file") == "full.qo":
                    b = ev.get("body") or {}
                    seen.setdefault(b.get("k"), set()).add(b.get("_id"))
            return seen if len(seen) == NOTES else None
        seen = wait_for(arrived, 30, 0.2, "every note at the hub")
        stop.set()
        t.join(5)
        c = sim.counters()
        syncs = c.get("sync_requests", 0)
        refused = c.get("storage_full", 0)
        check(syncs >= 2, "the link asked the full card to sync (%d hub.sync)" % syncs)
        check(refused <= syncs + 1,
              "a full card is not sent notes again before a sync made room: %d refusals, "
              "%d syncs" % (refused, syncs))
        check(peak[0] <= 80, "the card's storage stayed within its usable 80%%: %d%%" % peak[0])
        dups = {k: ids for k, ids in seen.items() if len(ids) > 1}
        check(not dups, "a note came twice with different _ids: %r" % dups)
        gw.stop()
        print("card full: %d notes through a card holding ~15, %d hub.sync, %d refusals, "
              "peak storage %d%%" % (NOTES, syncs, refused, peak[0]))
    print("PASS: test_card_full")


if __name__ == "__main__":
    main()
