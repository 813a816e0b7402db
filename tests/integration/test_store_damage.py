#!/usr/bin/python3
"""Damage to the store is never silent (docs/store.md, "Damage SQLite would take
silently"): with notes queued and no card, the daemon is killed and the store's WAL
deleted, then (stopped cleanly) the database emptied, then pages of it scribbled over.
Each time the next start logs it, writes it to the audit log, shows it in `notegw
status` and in the metrics, and keeps the gateway id; the corrupt file's readable
notes are queued again, and `notegw store salvage` does not queue them twice."""
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, wait_for  # noqa: E402

N = 120


def gateway_id(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute("SELECT gateway_id FROM meta").fetchone()[0]
    finally:
        db.close()


def state_id(path):
    with open(path + ".state") as f:
        return dict(line.split(" ", 1) for line in f.read().splitlines())["gateway_id"]


def assert_loud(gw, prom, what, count=1):
    """The log, the audit log, status and the metrics all say it."""
    check("DAMAGED: " in gw.log_text() and what in gw.log_text(),
          "no loud log line for %r:\n%s" % (what, gw.log_text()[-2000:]))
    st = gw.status()["status"]["store"]
    check(st.get("damage_count") == count and what in st.get("damage", ""),
          "status does not show the damage (%r): %r" % (what, st))
    _, out, _ = gw.cli("status")
    check("damaged" in out and what in out, "readable status lacks the damage: %r" % out)
    _, out, _ = gw.cli("audit", "--json")
    check(any(r["action"] == "damaged" and what in r["detail"] for r in json.loads(out)["audit"]),
          "no audit row for %r: %s" % (what, out))

    def metric():
        try:
            with open(prom) as f:
                text = f.read()
        except OSError:
            return None
        return text if "notegw_store_damage_total %d\n" % count in text else None
    wait_for(metric, 40, 0.2, "notegw_store_damage_total %d in the metrics" % count)


def main():
    with TestDir("store-damage") as d:
        prom = d.file("notegw.prom")
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("no-card"),
                                     "poll_interval": "1s"},
                        "hub": {"mode": "continuous"}, "update": {"enabled": False},
                        "daemon": {"metrics_file": prom}})
        store = gw.store
        gw.start()
        for i in range(N):
            gw.cli("send", "damage.qo", json.dumps({"i": i, "pad": "x" * 400}))
        check(gw.status()["status"]["store"].get("damage_count") == 0, "damage before any")
        gid = state_id(store)

        # 1. Killed, and the WAL (the only copy of these notes) deleted.
        gw.kill()
        os.unlink(store + "-wal")
        gw.start()
        assert_loud(gw, prom, "WAL was missing")
        gw.stop()
        check(gateway_id(store) == gid, "the gateway id changed after a lost WAL")

        # 2. Stopped cleanly, the database emptied.
        os.truncate(store, 0)
        gw.start()
        assert_loud(gw, prom, "missing or empty")
        for i in range(N):
            gw.cli("send", "damage.qo", json.dumps({"i": i, "pad": "x" * 400}))
        gw.stop()
        check(gateway_id(store) == gid, "the gateway id changed after an empty file")

        # 3. Pages scribbled over: moved aside, the readable notes queued again.
        with open(store, "r+b") as f:
            size = f.seek(0, 2)
            for off in range(size // 3 // 4096 * 4096, size * 2 // 3, 4096):
                f.seek(off)
                f.write(b"\xa5" * 64)
        gw.start()
        assert_loud(gw, prom, "corrupt")
        queued = gw.status()["status"]["store"]["queued"]
        check(0 < queued < N, "%d of %d notes re-queued from the corrupt file" % (queued, N))
        aside = [n for n in os.listdir(os.path.dirname(store))
                 if n.startswith(os.path.basename(store) + ".corrupt-") and not n.endswith(("-wal", "-shm"))]
        check(len(aside) == 1, "moved-aside file: %r" % aside)
        rc, out, err = gw.cli("store", "salvage", os.path.join(os.path.dirname(store), aside[0]),
                              check_rc=False)
        check(rc != 0 and "before" in (out + err), "a second salvage was not refused: %r" % (out + err))
        check(gw.status()["status"]["store"]["queued"] == queued, "salvaged twice")
        gw.stop()
        check(gateway_id(store) == gid, "the gateway id changed after a corrupt file")
    print("PASS: test_store_damage: a lost WAL, an emptied file and corrupt pages were loud; "
          "gateway id kept; %d/%d notes re-queued from the corrupt file" % (queued, N))


if __name__ == "__main__":
    main()
