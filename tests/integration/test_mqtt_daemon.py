"""MQTT end to end with the real daemon, the Notecard simulator and mosquitto:
1,000 QoS 1 messages on out/ reach the simulated Notehub; refusals are reported on
error/ and nothing is queued; inbound notes appear on in/; the status is retained
and the will fires when the daemon is killed; an inbound note the plugin held while
its broker was out of reach survives a reload. Then the broker plugin path: the
broker is killed and the daemon is killed mid-stream, and still every acknowledged
message reaches the hub."""
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, Daemon, TestDir, check, free_port, log, skip, wait_for  # noqa: E402
from mqtthelp import BROKER_SO, MQTT_SO, Client, Publisher, broker  # noqa: E402
from sim import Sim  # noqa: E402

N = 1000


def hub(s, file):
    return [e["body"].get("n") for e in s.hub_file_events() if e.get("file") == file]


def retained(port, topic):
    c = Client(port, "peek-%d" % time.monotonic_ns()).connect()
    c.subscribe(topic)
    msgs = c.drain(0.5)
    c.close()
    return json.loads(msgs[-1][1]) if msgs and msgs[-1][2] else None


def gateway(d, s, port, name="gw", **mqtt):
    keys = {"enabled": True, "host": "127.0.0.1", "port": port, "client_id": "notegw-" + name,
            "reconnect_min": "100ms", "reconnect_max": "1s"}
    keys.update(mqtt)
    return Daemon(d, {"notecard": {"transport": "serial", "device": s.serial_path, "poll_interval": "1s"},
                      "hub": {"mode": "continuous"}, "mqtt": keys}, plugins=["mqtt"], name=name)


def status(gw):
    s = gw.status()
    return s.get("status", s)


def queued(gw):
    return status(gw)["store"]["queued"]


def test_client_path(d, s, b):
    gw = gateway(d, s, b.port).start()
    st = wait_for(lambda: retained(b.port, "notecard/status"), 20, 0.2, "retained status")
    check(st.get("online") is True, "status not online: %r" % st)

    watch = Client(b.port, "watcher").connect()
    watch.subscribe("notecard/#")

    p = Publisher(b.port, "notecard/out/data.qo", N)
    p.start()
    p.join(120)
    check(not p.is_alive() and p.error is None and len(p.acked) == N, "publisher: %r" % p.error)
    wait_for(lambda: len(hub(s, "data.qo")) >= N, 120, 0.5, "1000 notes at the simulated hub")
    check(sorted(hub(s, "data.qo")) == list(range(N)), "hub holds other notes than the 1000 published")

    wait_for(lambda: queued(gw) == 0, 30, 0.2, "an empty queue")
    pub = Client(b.port, "bad").connect()
    bad = [("notecard/out/data.qo", b"{oops", "payload is not valid JSON"),
           ("notecard/out/data.qo", json.dumps({"x": "y" * 9000}).encode(), "payload larger than max_payload"),
           ("notecard/out/data.txt", b'{"a":1}', "notefile must end in .qo, .qos, .db or .dbs")]
    for topic, payload, _ in bad:
        pub.publish(topic, payload)
    msgs = watch.drain(1.0)
    for topic, _, why in bad:
        errs = [json.loads(p) for t, p, _ in msgs if t == "notecard/error" and json.loads(p)["topic"] == topic]
        check(any(e["error"] == why for e in errs), "no error for %s: %r" % (topic, errs))
    check(queued(gw) == 0, "a refused message was queued")
    stats = status(gw)["plugins"]["mqtt"]
    log("mqtt counters:", stats)

    # Inbound: Notehub -> card -> store -> in/<file>
    s.inject("cmd.qi", {"valve": "open"}, now=True)
    c = wait_for(lambda: [json.loads(p) for t, p, _ in watch.drain(0.3) if t == "notecard/in/cmd.qi"], 30, 0.1,
                 "the inbound note on notecard/in/cmd.qi")
    check(c[0]["body"] == {"valve": "open"} and c[0]["file"] == "cmd.qi", "inbound message: %r" % c)
    pub.close()
    watch.close()

    # SIGHUP with a new prefix: the plugin says goodbye on the old one and works on the new.
    gw.sections["mqtt"]["prefix"] = "site1"
    gw.write_config()
    gw.signal(signal.SIGHUP)
    wait_for(lambda: (retained(b.port, "site1/status") or {}).get("online") is True, 20, 0.2,
             "status under the new prefix after reload")
    check(retained(b.port, "notecard/status") == {"online": False}, "old prefix not marked offline")
    pub = Client(b.port, "after-reload").connect()
    pub.publish("site1/out/reloaded.qo", b'{"ok":1}')
    pub.close()
    wait_for(lambda: hub(s, "reloaded.qo") or queued(gw), 30, 0.2, "a note through the new prefix")

    gw.kill()
    wait_for(lambda: retained(b.port, "site1/status") == {"online": False}, 15, 0.2, "the will after SIGKILL")
    return stats


def test_client_path_kills(d, s, b):
    """The client plugin's PUBACK window with the real daemon: SIGKILL notegwd while a
    publisher streams; print what was acknowledged but never reached the hub."""
    rnd = random.Random(int(os.environ.get("NOTEGW_SEED", time.time())))
    gw = gateway(d, s, b.port, name="gwk").start()
    wait_for(lambda: (retained(b.port, "notecard/status") or {}).get("online") is True, 20, 0.2, "online")
    p = Publisher(b.port, "notecard/out/k.qo", 1500, pause=0.003)
    p.start()
    kills = 0
    while p.is_alive() and kills < 5:
        time.sleep(rnd.uniform(0.3, 0.8))
        gw.kill()
        kills += 1
        gw.start()
    p.join(120)
    check(not p.is_alive() and p.error is None, "publisher: %r" % p.error)
    check(kills >= 2, "the stream ended before two kills")
    acked = set(p.acked)
    # Wait until every acknowledged message is at the hub, or the hub stops growing
    # with nothing left in the store (what is missing then was lost in the window).
    end, last, still = time.monotonic() + 90, -1, 0
    while time.monotonic() < end and not acked <= set(hub(s, "k.qo")):
        n = len(hub(s, "k.qo"))
        still = still + 1 if n == last and queued(gw) == 0 else 0
        if still >= 4:
            break
        last = n
        time.sleep(1.0)
    got = hub(s, "k.qo")
    lost = sorted(acked - set(got))
    print("client plugin + daemon: %d SIGKILLs of notegwd, %d acknowledged, %d lost %s, %d duplicates"
          % (kills, len(acked), len(lost), lost[:10], len(got) - len(set(got))))
    check(not lost, "acknowledged messages lost: the PUBACK went out before the commit")
    gw.stop()


def test_broker_path(d, s):
    """ingest = broker: mosquitto commits into the daemon's store; kill the broker and
    the daemon mid-stream; every acknowledged message reaches the hub."""
    rnd = random.Random(int(os.environ.get("NOTEGW_SEED", time.time())))
    gw = Daemon(d, {"notecard": {"transport": "serial", "device": s.serial_path, "poll_interval": "1s"},
                    "hub": {"mode": "continuous"}}, plugins=["mqtt"], name="gwb")
    conf = "plugin %s\nplugin_opt_store %s\nplugin_opt_prefix notecard\n" % (BROKER_SO, gw.store)
    b = broker(d, name="broker-plugin", extra=conf)
    gw.sections["mqtt"] = {"enabled": True, "host": "127.0.0.1", "port": b.port, "client_id": "notegw-b",
                           "ingest": "broker", "reconnect_min": "100ms", "reconnect_max": "1s"}
    gw.write_config()
    gw.start()
    b.start()
    p = Publisher(b.port, "notecard/out/b.qo", 1200, pause=0.003)
    p.start()
    events = 0
    while p.is_alive() and events < 6:
        time.sleep(rnd.uniform(0.2, 0.6))
        if events % 2 == 0:
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait()
            b.start()
        else:
            gw.kill()
            gw.start()
        events += 1
    p.join(120)
    check(not p.is_alive() and p.error is None, "publisher: %r" % p.error)
    check(events >= 2, "the stream ended before both the broker and the daemon were killed")
    acked = set(p.acked)
    wait_for(lambda: acked <= set(hub(s, "b.qo")), 120, 0.5, "every acknowledged message at the hub")
    got = hub(s, "b.qo")
    print("broker plugin + daemon: %d kills (broker and daemon), %d acknowledged, 0 lost, %d duplicates"
          % (events, len(acked), len(got) - len(set(got))))
    stats = status(gw)["plugins"]["mqtt"]
    check(stats.get("received") == 0, "the client plugin also ingested out/ with ingest = broker: %r" % stats)
    check(stats.get("broker_plugin") is True, "the broker plugin's answer was not seen: %r" % stats)
    gw.stop()
    b.stop()


def test_rules_for_broker(d, s):
    """notegwd writes its [notefile.*] rules, and nothing else of its configuration,
    beside the store (notefiles.conf, 0640) at start and again at a reload, conf.d
    included; the broker plugin, given no plugin_opt_config, judges its notes by
    them (an oversize satellite body refused; urgent is shown in
    test_mqtt_broker.py)."""
    gw = Daemon(d, {"notecard": {"transport": "serial", "device": s.serial_path, "poll_interval": "1s"},
                    "hub": {"mode": "continuous"}, "mqtt": {"enabled": False},
                    "notefile.alarm.qo": {"urgent": True}}, plugins=["mqtt"], name="gwr")
    rules = os.path.join(os.path.dirname(gw.store), "notefiles.conf")
    gw.start()
    text = open(rules).read()
    check(os.stat(rules).st_mode & 0o777 == 0o640, "notefiles.conf mode %o" % (os.stat(rules).st_mode & 0o777))
    check('[notefile.alarm.qo]\nurgent = "true"' in text, "urgent rule not exported: %r" % text)
    check("[mqtt]" not in text and "[store]" not in text and "[daemon]" not in text,
          "more than the notefile rules exported: %r" % text)
    os.makedirs(os.path.join(gw.dir, "conf.d"), exist_ok=True)
    with open(os.path.join(gw.dir, "conf.d", "50-sat.conf"), "w") as f:
        f.write("[notefile.sat.qo]\ntemplate = auto\nntn = true\n")
    gw.signal(signal.SIGHUP)
    wait_for(lambda: "[notefile.sat.qo]" in open(rules).read(), 20, 0.1, "the reload to rewrite notefiles.conf")

    b = broker(d, name="broker-rules",
               extra="plugin %s\nplugin_opt_store %s\nplugin_opt_prefix notecard\n" % (BROKER_SO, gw.store))
    b.start()
    watch = Client(b.port, "watch-gwr").connect()
    watch.subscribe("notecard/error")
    pub = Client(b.port, "pub-gwr").connect()
    pub.publish("notecard/out/sat.qo", json.dumps({"x": "a" * 300}).encode())
    errs = [json.loads(p)["error"] for t, p, _ in watch.drain(1.0) if t == "notecard/error"]
    check(any("satellite" in e and "256" in e for e in errs), "oversize ntn body not refused: %r" % errs)
    pub.close()
    watch.close()
    b.stop()
    gw.stop()


def test_inbound_across_reload(d, s, b):
    """A reload replaces the plugin's instance and drops what it held: an inbound note
    offered while the broker was out of reach must be offered to the new instance,
    not left pending until the daemon restarts."""
    gw = gateway(d, s, free_port(), name="reoffer").start()  # nothing listens there
    watch = Client(b.port, "watch-reoffer").connect()
    watch.subscribe("notecard/in/#")
    s.inject("held.qi", {"k": 7}, now=True)
    wait_for(lambda: status(gw)["store"]["inbound_pending"] >= 1, 30, 0.1, "the inbound note in the store")
    time.sleep(1)  # offered to the plugin, which holds it for the broker
    gw.sections["mqtt"]["port"] = b.port
    gw.write_config()
    gw.signal(signal.SIGHUP)
    got = wait_for(lambda: [json.loads(p) for t, p, _ in watch.drain(0.3) if t == "notecard/in/held.qi"],
                   30, 0.1, "the held inbound note on notecard/in/held.qi after the reload")
    check(got[0]["body"] == {"k": 7}, "inbound message after reload: %r" % got)
    wait_for(lambda: status(gw)["store"]["inbound_pending"] == 0, 30, 0.2, "the note marked delivered")
    watch.close()
    gw.stop()


def test_check_config(d):
    """notegwd --check-config reports [mqtt] mistakes as FILE:LINE: message."""
    gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("none")},
                    "mqtt": {"prefix": "bad/#", "tls": False, "ca_file": "/etc/ssl/x.pem"}},
                plugins=["mqtt"], name="checkconf")
    p = subprocess.run([NOTEGWD, "--check-config", "-c", gw.config], capture_output=True, text=True, timeout=30)
    lines = p.stderr.splitlines()
    check(p.returncode != 0, "bad [mqtt] passed --check-config")
    for word in ("prefix", "tls"):
        check(any(l.startswith(gw.config + ":") and word in l for l in lines),
              "no FILE:LINE message about %s: %r" % (word, p.stderr))


def main():
    if not os.path.exists(MQTT_SO):
        skip("mqtt plugin not built")
    with TestDir("mqtt-daemon") as d:
        test_check_config(d)
        with Sim(serial=True, workdir=d.file("sim")) as s:
            b = broker(d, extra="max_queued_messages 0\n").start()
            test_client_path(d, s, b)
            test_client_path_kills(d, s, b)
            test_inbound_across_reload(d, s, b)
            b.stop()
            if os.path.exists(BROKER_SO):
                test_broker_path(d, s)
                test_rules_for_broker(d, s)
            else:
                print("broker plugin not built: its end-to-end part not run")
    print("PASS")


if __name__ == "__main__":
    main()
