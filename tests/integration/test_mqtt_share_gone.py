"""A gateway whose Notecard is gone leaves the share group: two notegwd share a site
(share_group, share_leave_after = 2s), each with its own simulated Notecard. When one
card is gone, that gateway unsubscribes once share_leave_after has passed, and the
other takes every message the publisher sends meanwhile; when the card is back, the
gateway joins again and takes its share. Every acknowledged message reaches a hub.
First, --check-config reports bad share keys as FILE:LINE: message."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, Daemon, TestDir, check, log, wait_for  # noqa: E402
from mqtthelp import MQTT_SO, Publisher, broker, share_gateway  # noqa: E402
from sim import Sim  # noqa: E402

COUNT = int(os.environ.get("SHARE_GONE_COUNT", "200"))
LEAVE_S = 2


def gateway(d, s, port, i):
    return share_gateway(d, s, port, i, "notegw-gone", share_leave_after="%ds" % LEAVE_S)


def mqtt(g):
    return g.status()["status"]["plugins"]["mqtt"]


def check_config(d):
    """Each bad share key is named with FILE:LINE; a good share section passes."""
    bad = {"share_group": {"share_group": "site/a"},
           "share_leave_after": {"share_group": "site", "share_leave_after": "0"},
           "ingest": {"share_group": "site", "ingest": "broker"}}
    for i, (word, keys) in enumerate(sorted(bad.items())):
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("none")},
                        "mqtt": keys}, plugins=["mqtt"], name="conf%d" % i)
        p = subprocess.run([NOTEGWD, "--check-config", "-c", gw.config], capture_output=True,
                           text=True, timeout=30)
        check(p.returncode != 0, "bad %s passed --check-config" % word)
        check(any(l.startswith(gw.config + ":") and "share_" in l for l in p.stderr.splitlines()),
              "no FILE:LINE message about %s: %r" % (word, p.stderr))
    gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("none")},
                    "mqtt": {"share_group": "site", "share_leave_after": "90s"}},
                plugins=["mqtt"], name="confok")
    p = subprocess.run([NOTEGWD, "--check-config", "-c", gw.config], capture_output=True,
                       text=True, timeout=30)
    check(p.returncode == 0, "a good share section refused: %r" % p.stderr)


def main():
    if not os.path.exists(MQTT_SO):
        print("SKIP: mqtt plugin not built")
        sys.exit(77)
    with TestDir("mqtt-share-gone") as d:
        check_config(d)
        sims = [Sim(serial=True, workdir=d.file("sim%d" % i)) for i in range(2)]
        d.procs.extend(sims)  # stopped by TestDir, after the daemons started later
        run(d, sims)
    print("PASS: test_mqtt_share_gone")


def publish(port, name):
    p = Publisher(port, "notecard/out/%s.qo" % name, COUNT, client_id="pub-" + name)
    p.start()
    p.join(120)
    check(not p.is_alive() and p.error is None, "publisher did not finish: %r" % p.error)
    check(len(p.acked) == COUNT, "every message acknowledged")
    return set(p.acked)


def at_hub(s, file):
    return {(ev.get("body") or {}).get("n") for ev in s.hub_notes() if ev.get("file") == file}


def run(d, sims):
    b = broker(d, extra="max_queued_messages 0\n").start()
    gws = [gateway(d, s, b.port, i) for i, s in enumerate(sims)]
    for g in gws:
        g.start()
    for g in gws:
        wait_for(lambda: mqtt(g).get("sharing"), 20, 0.1, "both gateways in the share group")

    # Both share while both cards are there.
    acked = publish(b.port, "before")
    wait_for(lambda: acked <= at_hub(sims[0], "before.qo") | at_hub(sims[1], "before.qo"),
             60, 0.5, "the first messages at the hubs")
    check(at_hub(sims[0], "before.qo") and at_hub(sims[1], "before.qo"),
          "both gateways took a share before the card went")

    # Card 0 gone: gateway 0 leaves after share_leave_after, not before.
    gone_at = time.monotonic()
    sims[0].gone(600)
    wait_for(lambda: not mqtt(gws[0]).get("sharing"), 60, 0.1, "gateway 0 to leave the group")
    left_after = time.monotonic() - gone_at
    log("gateway 0 left %.1f s after its card went" % left_after)
    check(left_after >= LEAVE_S, "left the group before share_leave_after (%.1f s)" % left_after)
    check(mqtt(gws[1]).get("sharing"), "gateway 1 still in the group")
    received = mqtt(gws[0])["received"]
    acked = publish(b.port, "gone")
    wait_for(lambda: acked <= at_hub(sims[1], "gone.qo"), 60, 0.5,
             "every message sent while card 0 was gone at hub 1")
    check(mqtt(gws[0])["received"] == received,
          "gateway 0 took messages while out of the group")

    # Card 0 back: gateway 0 joins again and takes its share.
    sims[0].back()
    wait_for(lambda: mqtt(gws[0]).get("sharing"), 60, 0.1, "gateway 0 to join again")
    acked = publish(b.port, "back")
    wait_for(lambda: acked <= at_hub(sims[0], "back.qo") | at_hub(sims[1], "back.qo"),
             60, 0.5, "the last messages at the hubs")
    split = [len(at_hub(s, "back.qo")) for s in sims]
    print("mqtt share, card gone: left %.1f s after (share_leave_after %d s); while gone "
          "gateway 1 took %d of %d; after it came back the split was %s"
          % (left_after, LEAVE_S, len(at_hub(sims[1], "gone.qo")), COUNT, split))
    check(split[0] > 0, "gateway 0 took a share again after its card came back")
    for g in gws:
        check(g.stop() == 0, "daemon did not stop cleanly")


if __name__ == "__main__":
    main()
