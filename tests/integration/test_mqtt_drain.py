"""The client plugin draining a backlog in bursts, with the real daemon and mosquitto:
messages queued at the broker for the daemon's session while it is stopped are read
many per wake-up and committed together, each PUBACK after that commit. notegwd is
killed (SIGKILL) three times in the middle of a drain; a PUBACK that left before its
message's commit would make the broker forget a message the store never got. At the
end every message is in the store, and none twice (a message committed whose PUBACK
died with the daemon comes again with the same delivery key, and is not queued again)."""
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, log, skip, wait_for  # noqa: E402
from mqtthelp import MQTT_SO, Publisher, broker  # noqa: E402
from mqttmini import Client  # noqa: E402

N = 4000
FILE = "drain.qo"


def stored(store):
    """The n of every row of FILE the store committed, seen from another connection."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % store, uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        rows = db.execute("SELECT body FROM out WHERE file = ?", (FILE,)).fetchall()
    except sqlite3.Error:
        rows = []
    finally:
        db.close()
    return [json.loads(b)["n"] for (b,) in rows]


def online(port):
    c = Client(port, "peek-%d" % time.monotonic_ns()).connect()
    c.subscribe("notecard/status")
    msgs = c.drain(0.5)
    c.close()
    return bool(msgs) and json.loads(msgs[-1][1]).get("online") is True


def main():
    if not os.path.exists(MQTT_SO):
        skip("mqtt plugin not built")
    with TestDir("mqtt-drain") as d:
        b = broker(d, extra="max_queued_messages 0\n")
        b.start()
        # no card: the store only fills, so every committed row stays to be counted
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("no-card")},
                        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": b.port,
                                 "client_id": "notegw-drain", "reconnect_min": "100ms",
                                 "reconnect_max": "1s"}},
                    plugins=["mqtt"])
        gw.start()
        wait_for(lambda: online(b.port), 20, 0.2, "the plugin online (subscribed)")
        gw.stop()

        p = Publisher(b.port, "notecard/out/" + FILE, N)
        p.start()
        p.join(120)
        check(not p.is_alive() and p.error is None and len(p.acked) == N,
              "backlog publisher: %r" % p.error)

        kills = []
        for share in (0.1, 0.3, 0.5):
            gw.start(wait=False)
            want = int(N * share)
            wait_for(lambda: len(stored(gw.store)) >= want, 60, 0.005, "%d rows committed" % want)
            gw.kill()
            kills.append(len(stored(gw.store)))
        # on a loaded machine a drain can outrun the poll; one kill in mid-drain is the test
        check(any(k < N for k in kills), "the backlog was drained before every kill: nothing tested")
        gw.start()
        wait_for(lambda: len(set(stored(gw.store))) >= N, 120, 0.2, "every message in the store")
        got = stored(gw.store)
        lost = sorted(set(range(N)) - set(got))
        dups = len(got) - len(set(got))
        log("drain: %d messages, SIGKILLs at %s rows, %d lost, %d stored twice" % (N, kills, len(lost), dups))
        check(not lost, "messages lost (a PUBACK before its commit): %s" % lost[:10])
        check(dups == 0, "%d messages stored twice despite their delivery keys" % dups)
        gw.stop()
        b.stop()


if __name__ == "__main__":
    main()
