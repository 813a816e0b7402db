"""Three gateways share one site through one broker: three notegwd (mqtt plugin,
share_group = site), each with its own simulated Notecard, take one set of
<prefix>/out/ publishers through an MQTT shared subscription. Several publishers send
small numbered QoS 1 messages; one gateway is SIGKILLed mid-stream and restarted.
Every message the broker acknowledged reaches exactly one simulated hub (copies only
under one "_id", i.e. from one gateway), the split is printed, and each gateway keeps
its own retained status under <prefix>/gw/<gateway id>/."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TestDir, check, log, wait_for  # noqa: E402
from mqtthelp import MQTT_SO, Client, Publisher, broker, share_gateway  # noqa: E402
from sim import Sim  # noqa: E402

COUNT = int(os.environ.get("SHARE_COUNT", "3000"))
PUBLISHERS = 3
GATEWAYS = 3


def gateway(d, s, port, i):
    return share_gateway(d, s, port, i, "notegw-share")


def main():
    if not os.path.exists(MQTT_SO):
        print("SKIP: mqtt plugin not built")
        sys.exit(77)
    with TestDir("mqtt-share") as d:
        sims = [Sim(serial=True, workdir=d.file("sim%d" % i)) for i in range(GATEWAYS)]
        d.procs.extend(sims)  # stopped by TestDir, after the daemons started later
        run(d, sims)
    print("PASS: test_mqtt_share")


def run(d, sims):
    # The broker keeps a killed gateway's share in its session until it is back.
    b = broker(d, extra="max_queued_messages 0\n").start()
    gws = [gateway(d, s, b.port, i) for i, s in enumerate(sims)]
    for g in gws:
        g.start()
    for g in gws:
        wait_for(lambda: g.status()["status"]["plugins"]["mqtt"].get("sharing"), 20, 0.1,
                 "every gateway in the share group")
    topics = [g.status()["status"]["plugins"]["mqtt"]["topics"] for g in gws]
    check(len(set(topics)) == GATEWAYS and all("/gw/" in t for t in topics),
          "each gateway has its own topics: %r" % topics)

    per = COUNT // PUBLISHERS
    pubs = [Publisher(b.port, "notecard/out/p%d.qo" % k, per, client_id="pub%d" % k,
                      pause=0.001) for k in range(PUBLISHERS)]
    for p in pubs:
        p.start()
    victim = gws[1]
    wait_for(lambda: sum(len(p.acked) for p in pubs) >= COUNT // 3, 120, 0.05,
             "a third of the messages acknowledged")
    victim.kill()
    log("gw1 killed after %d acknowledged" % sum(len(p.acked) for p in pubs))
    wait_for(lambda: sum(len(p.acked) for p in pubs) >= 2 * COUNT // 3 or
             not any(p.is_alive() for p in pubs), 120, 0.05, "two thirds acknowledged")
    victim.start()
    for p in pubs:
        p.join(180)
        check(not p.is_alive() and p.error is None, "publisher did not finish: %r" % p.error)
    acked = {("p%d.qo" % k, n) for k, p in enumerate(pubs) for n in p.acked}
    check(len(acked) == per * PUBLISHERS, "every message acknowledged (%d)" % len(acked))

    def seen():
        got = {}
        for i, s in enumerate(sims):
            for ev in s.hub_notes():
                body = ev.get("body") or {}
                if ev.get("file", "").startswith("p") and "n" in body:
                    got.setdefault((ev["file"], body["n"]), []).append((i, body.get("_id")))
        return got

    def all_in():
        got = seen()
        return got if acked <= set(got) else None
    wait_for(all_in, 240, 1.0, "every acknowledged message at a hub")
    time.sleep(2)  # redeliveries still on their way come in too
    got = seen()
    split = [0] * GATEWAYS
    for copies in got.values():
        split[copies[0][0]] += 1
    twice = {k: v for k, v in got.items() if len({c[0] for c in v}) > 1 or len({c[1] for c in v}) > 1}
    extra = sum(len(v) for v in got.values()) - len(got)
    print("mqtt share: %d acknowledged, split over %d gateways %s (gw1 killed and restarted), "
          "%d copies beyond the first (same _id)" % (len(acked), GATEWAYS, split, extra))
    check(not twice, "messages at more than one hub or under more than one _id: %r"
          % dict(list(twice.items())[:5]))
    check(all(n > 0 for n in split), "every gateway took a share: %r" % split)

    # Each gateway's retained status is its own, under its own topics.
    c = Client(b.port, "status-reader", clean=True).connect()
    c.subscribe("notecard/gw/+/status")
    status = {t: json.loads(p) for t, p, _ in c.drain(1.0)}
    c.close()
    check(set(status) == {t + "/status" for t in topics} and
          all(v.get("online") for v in status.values()),
          "each gateway's status under its own topic: %r" % sorted(status))
    for g in gws:
        check(g.stop() == 0, "daemon did not stop cleanly")


if __name__ == "__main__":
    main()
