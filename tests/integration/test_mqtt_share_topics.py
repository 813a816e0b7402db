"""The mqtt plugin in a share group, topic by topic (stand-in host, gateway id
fa4e000000000001): out/ is taken through $share/site/notecard/out/#; status (and its
will), in, env, error, emits and raw requests live under notecard/gw/<id>/, and nothing
goes to the single-gateway topics. A status saying the card is gone makes the plugin
leave the group after share_leave_after, and one saying it is ready makes it join again."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TestDir, check, wait_for  # noqa: E402
from mqtthelp import MQTT_SO, Client, FakeHost, broker  # noqa: E402

GW = "notecard/gw/fa4e000000000001"


def retained(port, topic):
    c = Client(port, "reader").connect()
    c.subscribe(topic)
    msgs = c.drain(0.5)
    c.close()
    return json.loads(msgs[-1][1]) if msgs and msgs[-1][2] else None


def main():
    if not os.path.exists(MQTT_SO):
        print("SKIP: mqtt plugin not built")
        sys.exit(77)
    with TestDir("mqtt-share-topics") as d:
        b = broker(d).start()
        h = FakeHost(d, b.port, share_group="site", share_leave_after="1s",
                     raw_requests=True).start()
        h.wait_connected()
        st = wait_for(lambda: retained(b.port, GW + "/status"), 10, 0.1, "the gateway's status")
        check(st.get("online") is True, "status not online: %r" % st)
        check(retained(b.port, "notecard/status") is None, "status on the single-gateway topic")
        stats = h.stats()
        check(stats.get("share_group") == "site" and stats.get("topics") == GW and stats.get("sharing"),
              "stats: %r" % stats)

        watch = Client(b.port, "watcher").connect()
        watch.subscribe("notecard/#")
        pub = Client(b.port, "publisher").connect()
        pub.publish("notecard/out/data.qo", b'{"a":1}')
        wait_for(lambda: [n for n in h.notes() if n["file"] == "data.qo"], 10, 0.1,
                 "the shared out/ message queued")
        h.send('inbound 7 data.qi {"x":1}')
        h.expect(lambda l: l == "done 7", "the inbound note acknowledged")
        h.send("env site_name north")
        h.send("error modbus bad-write")
        h.send('emit modbus/result {"ok":true}')
        pub.publish("notecard/req", b'{"req":"card.version"}')  # nobody's in a group
        pub.publish(GW + "/req", b'{"req":"card.status"}')
        req = h.expect(lambda l: l.startswith("req "), "the gateway's request to reach the card")
        check(json.loads(req[4:]) == {"req": "card.status"}, "the wrong request answered: %s" % req)
        pub.publish("notecard/out/bad.qi", b'{"a":1}')
        topics = {t for t, _, _ in watch.drain(1.0)}
        for t in ("/in/data.qi", "/env/site_name", "/error", "/modbus/result", "/rsp"):
            check(GW + t in topics, "nothing on %s%s: %r" % (GW, t, sorted(topics)))
        ours = {t for t in topics if not t.startswith(GW + "/") and not t.startswith("notecard/out/")
                and t != "notecard/req"}
        check(not ours, "published outside the gateway's namespace: %r" % sorted(ours))

        # The card gone: out of the group after share_leave_after, back in when ready.
        h.send('status {"notecard":{"state":"absent"}}')
        gone = time.monotonic()
        wait_for(lambda: not h.stats()["sharing"], 10, 0.05, "the plugin to leave the group")
        check(time.monotonic() - gone >= 1.0, "left before share_leave_after")
        received = h.stats()["received"]
        pub.publish("notecard/out/data.qo", b'{"a":2}')
        time.sleep(0.5)
        check(h.stats()["received"] == received, "took a shared message while out of the group")
        h.send('status {"notecard":{"state":"ready"}}')
        wait_for(lambda: h.stats()["sharing"], 10, 0.05, "the plugin to join again")
        pub.publish("notecard/out/data.qo", b'{"a":3}')
        wait_for(lambda: h.stats()["received"] > received, 10, 0.1, "a shared message taken again")
        pub.close()
        watch.close()

        h.kill()  # the will, on the gateway's own status topic
        wait_for(lambda: (retained(b.port, GW + "/status") or {}).get("online") is False, 10, 0.2,
                 "the will on the gateway's status")
    print("PASS: test_mqtt_share_topics")


if __name__ == "__main__":
    main()
