"""A message the broker redelivers after the gateway committed it keeps one "_id":
notegwd with the mqtt plugin (client ingest, QoS 1) is stopped (SIGTERM) and killed
(SIGKILL) again and again while a publisher streams numbered messages; every
acknowledged number reaches the simulated hub, and a receiver deduplicating on "_id"
(docs/store.md) sees each number once: copies of one number all carry one "_id"."""
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, log, wait_for  # noqa: E402
from mqtthelp import MQTT_SO, Publisher, broker  # noqa: E402
from sim import Sim  # noqa: E402

COUNT = int(os.environ.get("REDELIVER_COUNT", "3000"))
RESTARTS = int(os.environ.get("REDELIVER_RESTARTS", "16"))


def main():
    if not os.path.exists(MQTT_SO):
        print("SKIP: mqtt plugin not built")
        sys.exit(77)
    rnd = random.Random(int(os.environ.get("NOTEGW_SEED", "7")))
    with TestDir("mqtt-redeliver") as d, Sim(serial=True, workdir=d.file("sim")) as s:
        b = broker(d, extra="max_queued_messages 0\n").start()
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": s.serial_path,
                                     "poll_interval": "1s", "timing_scale": 5},
                        "hub": {"mode": "continuous"}, "update": {"enabled": False},
                        "mqtt": {"enabled": True, "host": "127.0.0.1", "port": b.port,
                                 "client_id": "notegw-redeliver", "qos": 1,
                                 "reconnect_min": "100ms", "reconnect_max": "1s"}},
                    plugins=["mqtt"])
        gw.start()
        p = Publisher(b.port, "notecard/out/r.qo", COUNT, pause=0.002)
        p.start()
        restarts = 0
        while p.is_alive() and restarts < RESTARTS:
            time.sleep(rnd.uniform(0.2, 0.8))
            if restarts % 2:
                gw.kill()
            else:
                gw.stop()
            restarts += 1
            gw.start()
        p.join(180)
        check(not p.is_alive() and p.error is None, "publisher did not finish: %r" % p.error)
        acked = set(p.acked)

        def ids():
            seen = {}
            for ev in s.hub_notes():
                if ev.get("file") == "r.qo":
                    b_ = ev.get("body") or {}
                    seen.setdefault(b_.get("n"), []).append(b_.get("_id"))
            return seen

        def all_in():
            got = ids()
            return got if acked <= set(got) else None
        got = wait_for(all_in, 180, 1.0, "every acknowledged message at the hub")
        time.sleep(3)  # redeliveries still on their way come in too
        got = ids()
        copies = sum(len(v) for v in got.values()) - len(got)
        split = {n: v for n, v in got.items() if len(set(v)) > 1}
        print("mqtt redelivery: %d restarts, %d acknowledged, %d copies beyond the first, "
              "%d numbers under more than one _id" % (restarts, len(acked), copies, len(split)))
        check(restarts >= RESTARTS // 2, "publisher finished before enough restarts (%d)" % restarts)
        check(not split, "redelivered messages stored again under a new _id: %r"
              % dict(list(split.items())[:5]))
        check(gw.stop() == 0, "daemon did not stop cleanly")
    print("PASS: test_mqtt_redeliver")


if __name__ == "__main__":
    main()
