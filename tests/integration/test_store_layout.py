#!/usr/bin/python3
"""The store's shared layout (notegw.conf(5), [store] path): with path set to
<state_dir>/queue/store.db the daemon makes the directory and moves in a store left
at <state_dir>/store.db, where the package kept it before, queued notes and all; in a setgid
directory its group may write, the store's files get that group and mode 0660 (the
broker plugin, as another user, writes them too); a reload that names another
store path is noted and applied only at the next start."""
import json
import os
import signal
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

N = 12


def mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def main():
    with TestDir("store-layout") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        # 1. An older package's store, with notes queued while no card answers.
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("no-card"),
                                     "poll_interval": "1s"},
                        "hub": {"mode": "continuous"}, "update": {"enabled": False}})
        legacy = gw.store  # <state_dir>/store.db, where the package kept it before
        gw.start()
        for i in range(N):
            gw.cli("send", "layout.qo", json.dumps({"i": i}))
        gw.stop()
        check(os.path.exists(legacy), "no store at the old default path %s" % legacy)

        # 2. The shared layout, in a setgid group-writable directory (as the package
        # makes it; our own group here, which is all a test can count on).
        queue = os.path.join(gw.dir, "queue")
        shared = os.path.join(queue, "store.db")
        os.mkdir(queue)
        os.chmod(queue, 0o2770)
        gw.sections["store"]["path"] = shared
        gw.sections["notecard"]["device"] = sim.serial_path
        gw.write_config()
        old_umask = os.umask(0o077)
        try:
            gw.start()
        finally:
            os.umask(old_umask)
        check(not os.path.exists(legacy), "the old store was not moved")
        check("moved %s to %s" % (legacy, shared) in gw.log_text(), "the move was not logged")
        check(mode(shared) == 0o660, "the shared store is %o, not 660" % mode(shared))
        sim.wait_for(lambda: len([e for e in sim.hub_notes() if e["file"] == "layout.qo"]) >= N,
                     timeout=60, what="the moved store's notes at the hub")
        got = sorted(e["body"]["i"] for e in sim.hub_notes() if e["file"] == "layout.qo")
        check(got == list(range(N)), "every note queued before the move, once: %r" % got)
        wal = shared + "-wal"
        check(os.path.exists(wal) and mode(wal) == 0o660,
              "the WAL made after the move is not group-writable")

        # 3. A reload naming another store: noted, not half-applied.
        gw.sections["store"]["path"] = d.file("elsewhere.db")
        gw.write_config()
        gw.signal(signal.SIGHUP)
        wait_for(lambda: "takes effect when notegwd restarts" in gw.log_text(), 20, 0.1,
                 "the reload to note the new store path")
        gw.cli("send", "layout.qo", json.dumps({"i": N}))
        sim.wait_for(lambda: any(e["file"] == "layout.qo" and e["body"]["i"] == N
                                 for e in sim.hub_notes()), timeout=60, what="a note after the reload")
        check(not os.path.exists(d.file("elsewhere.db")), "the reload opened the new store path")
        gw.stop()
    print("PASS: test_store_layout: a store at the old path moved in with %d notes; shared mode 660" % N)


if __name__ == "__main__":
    main()
