"""The mosquitto broker plugin (notegw_broker.so): out/ messages are committed to the
store inside mosquitto before the publisher's PUBACK, so an acknowledged message
survives the broker being killed at any moment. Refusals are reported on error/ and
leave the store untouched. The store is read with Python's sqlite3 (WAL readers do
not disturb the writer)."""
import json
import os
import pwd
import random
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TestDir, check, free_port, skip  # noqa: E402
from mqtthelp import BROKER_SO, Client, MqttError, Publisher, broker, sanitizer_env  # noqa: E402

N = 1000
KILLS = 6


def rows(db):
    if not os.path.exists(db):
        return []
    c = sqlite3.connect(db, timeout=10)
    try:
        return c.execute("SELECT file, body FROM out ORDER BY id").fetchall()
    finally:
        c.close()


def nums(db, file):
    return [json.loads(b)["n"] for f, b in rows(db) if f == file]


def start_broker(d, db, extra=""):
    conf = "plugin %s\nplugin_opt_store %s\nplugin_opt_prefix notecard\n%s" % (BROKER_SO, db, extra)
    return broker(d, extra=conf).start()


def test_stream_and_refusals(d):
    db = d.file("store.db")
    b = start_broker(d, db)
    watch = Client(b.port, "watcher").connect()
    watch.subscribe("notecard/#")

    p = Publisher(b.port, "notecard/out/data.qo", N)
    p.start()
    p.join(90)
    check(not p.is_alive() and p.error is None and len(p.acked) == N, "publisher: %r" % p.error)
    # No waiting: PUBACK came after the commit, so every row is there already.
    check(nums(db, "data.qo") == list(range(N)), "store does not hold the 1000 acknowledged notes in order")

    before = len(rows(db))
    pub = Client(b.port, "bad").connect()
    bad = [("notecard/out/data.qo", b"not json", "payload is not valid JSON"),
           ("notecard/out/data.qo", b'"just a string"', "payload is not a JSON object"),
           ("notecard/out/data.qo", json.dumps({"x": "a" * 9000}).encode(), "payload larger than max_payload"),
           ("notecard/out/data.qi", b'{"a":1}', "notefile must end in .qo, .qos, .db or .dbs")]
    for topic, payload, _ in bad:
        pub.publish(topic, payload)  # acknowledged: refused for good, not to be retried
    msgs = watch.drain(1.0)
    for topic, payload, why in bad:
        errs = [json.loads(p) for t, p, _ in msgs if t == "notecard/error" and json.loads(p)["topic"] == topic]
        check(any(e["error"] == why for e in errs), "no error message for %s: %r" % (topic, errs))
        check(not any(t == topic and p == payload for t, p, _ in msgs), "refused message delivered on %s" % topic)
    check(len(rows(db)) == before, "a refused message reached the store")

    # A retained out/ message is queued once and not kept by the broker.
    pub.publish("notecard/out/r.qo", b'{"r":1}', retain=True)
    check(len(nums_r(db)) == 1, "retained message not queued")
    peek = Client(b.port, "peek").connect()
    peek.subscribe("notecard/out/#")
    check(peek.drain(0.5) == [], "broker kept a retained out/ message")
    peek.close()
    pub.close()
    watch.close()
    b.stop()


def nums_r(db):
    return [b for f, b in rows(db) if f == "r.qo"]


def test_store_busy(d):
    """A note that cannot be committed (another writer holds the store's lock past the
    plugin's 5 s wait) is not acknowledged: the publisher is disconnected without a
    PUBACK, the reason goes to error/, and the message committed on its next try."""
    db = d.file("store3.db")
    b = start_broker(d, db)
    watch = Client(b.port, "watch-busy").connect()
    watch.subscribe("notecard/error")
    Client(b.port, "warm").connect().publish("notecard/out/w.qo", b'{"w":1}')  # creates the store
    hold = sqlite3.connect(db, timeout=10, isolation_level=None)
    hold.execute("BEGIN IMMEDIATE")
    pub = Client(b.port, "busy-pub", timeout=15).connect()
    acked = True
    try:
        pub.publish("notecard/out/busy.qo", b'{"n":1}')
    except (OSError, MqttError):
        acked = False
    hold.execute("ROLLBACK")
    hold.close()
    check(not acked, "a message that could not be committed was acknowledged")
    errs = [json.loads(p) for t, p, _ in watch.drain(1.0)]
    check(any(e["topic"] == "notecard/out/busy.qo" and "not acknowledged" in e["error"] for e in errs),
          "no error report for the uncommitted message: %r" % errs)
    check(nums_busy(db) == [], "the message is in the store although it was not acknowledged")
    Client(b.port, "busy-pub").connect().publish("notecard/out/busy.qo", b'{"n":1}')  # the retry
    check(nums_busy(db) == ['{"n":1}'], "the retry was not committed")
    watch.close()
    b.stop()


def nums_busy(db):
    return [b for f, b in rows(db) if f == "busy.qo"]


def test_broker_killed(d):
    """SIGKILL the broker mid-stream, again and again: every acknowledged message is in
    the store."""
    db = d.file("store2.db")
    b = start_broker(d, db)
    rnd = random.Random(int(os.environ.get("NOTEGW_SEED", time.time())))
    p = Publisher(b.port, "notecard/out/k.qo", 3000, pause=0.001)
    p.start()
    kills = 0
    while p.is_alive() and kills < KILLS:
        time.sleep(rnd.uniform(0.2, 0.8))
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait()
        kills += 1
        b.start()
    p.join(120)
    check(not p.is_alive() and p.error is None, "publisher: %r" % p.error)
    got = nums(db, "k.qo")
    lost = sorted(set(p.acked) - set(got))
    print("broker plugin: %d broker kills, %d acknowledged, %d lost, %d duplicates (resent after a kill)"
          % (kills, len(p.acked), len(lost), len(got) - len(set(got))))
    check(kills >= KILLS // 2, "too few kills (%d)" % kills)
    check(not lost, "acknowledged messages missing from the store: %r" % lost[:20])
    b.stop()


NOTEFILES_CONF = """# notegwd's configuration, as far as the broker plugin reads it
[notefile.sat.qo]
template = auto
ntn = true
learn = 1

[notefile.alarm.qo]
urgent = true
"""


def prio_rows(db, file):
    c = sqlite3.connect(db, timeout=10)
    try:
        return c.execute("SELECT body, prio FROM out WHERE file = ? ORDER BY id", (file,)).fetchall()
    finally:
        c.close()


def test_notefile_rules(d, default=False):
    """The broker plugin passes every message through the daemon's intake with
    notegwd's [notefile.*]: an urgent notefile's notes are queued urgent, and a
    satellite (ntn) notefile refuses what it could never send, with the same reason
    a producer inside notegwd hears. default: no plugin_opt_config; the rules come
    from notefiles.conf beside the store, where notegwd writes them."""
    if default:
        os.makedirs(d.file("default"), exist_ok=True)
        db = os.path.join(d.file("default"), "store.db")
        conf = os.path.join(d.file("default"), "notefiles.conf")
        # The queue directory is no configuration directory: a conf.d there is not read
        # (plain.qo below must stay at normal priority).
        os.makedirs(os.path.join(d.file("default"), "conf.d"), exist_ok=True)
        with open(os.path.join(d.file("default"), "conf.d", "x.conf"), "w") as f:
            f.write("[notefile.plain.qo]\nurgent = true\n")
    else:
        db = d.file("store4.db")
        conf = d.file("notegw-rules.conf")
    with open(conf, "w") as f:
        f.write(NOTEFILES_CONF)
    b = start_broker(d, db, "" if default else "plugin_opt_config %s\n" % conf)
    watch = Client(b.port, "watch-rules").connect()
    watch.subscribe("notecard/error")
    pub = Client(b.port, "rules").connect()
    pub.publish("notecard/out/alarm.qo", b'{"fire":1}')
    pub.publish("notecard/out/plain.qo", b'{"n":1}')
    check(prio_rows(db, "alarm.qo") == [('{"fire":1}', 1)],
          "urgent notefile not queued urgent: %r" % prio_rows(db, "alarm.qo"))
    check(prio_rows(db, "plain.qo") == [('{"n":1}', 0)],
          "ordinary notefile not queued at normal priority: %r" % prio_rows(db, "plain.qo"))

    pub.publish("notecard/out/sat.qo", b'{"t":21.5,"ok":true}')
    big = json.dumps({"x": "a" * 300}).encode()
    pub.publish("notecard/out/sat.qo", big)
    pub.publish("notecard/out/sat.qo", b'{"nested":{"a":1}}')
    errs = [json.loads(p)["error"] for t, p, _ in watch.drain(1.0) if t == "notecard/error"]
    check(any("satellite" in e and "256" in e for e in errs), "oversize ntn body not refused: %r" % errs)
    check(any("satellite" in e and "flat" in e for e in errs), "nested ntn body not refused: %r" % errs)
    check([body for body, _ in prio_rows(db, "sat.qo")] == ['{"t":21.5,"ok":true}'],
          "the satellite notefile holds other than its one fitting note: %r" % prio_rows(db, "sat.qo"))

    # The Notecard's own notefiles are not for producers, through mosquitto either.
    pub.publish("notecard/out/_env.dbs", b'{"a":1}')
    errs = [json.loads(p)["error"] for t, p, _ in watch.drain(1.0) if t == "notecard/error"]
    check(any("system notefiles" in e for e in errs), "_env.dbs not refused: %r" % errs)
    check(prio_rows(db, "_env.dbs") == [], "a system notefile reached the store")

    if default:
        # notegwd reloaded without the urgent rule: it renames a new file in, and the
        # plugin reads it before the next message, mosquitto still running.
        with open(conf + ".tmp", "w") as f:
            f.write(NOTEFILES_CONF.replace("urgent = true", "urgent = false"))
        os.rename(conf + ".tmp", conf)
        pub.publish("notecard/out/alarm.qo", b'{"fire":2}')
        check(prio_rows(db, "alarm.qo") == [('{"fire":1}', 1), ('{"fire":2}', 0)],
              "rewritten rules not read again: %r" % prio_rows(db, "alarm.qo"))
    pub.close()
    watch.close()
    b.stop()


def test_no_rules(d):
    """plugin_opt_config none: no rules even where notefiles.conf has them."""
    os.makedirs(d.file("none"), exist_ok=True)
    db = os.path.join(d.file("none"), "store.db")
    with open(os.path.join(d.file("none"), "notefiles.conf"), "w") as f:
        f.write(NOTEFILES_CONF)
    b = start_broker(d, db, "plugin_opt_config none\n")
    pub = Client(b.port, "none").connect()
    pub.publish("notecard/out/alarm.qo", b'{"fire":1}')
    check(prio_rows(db, "alarm.qo") == [('{"fire":1}', 0)], "plugin_opt_config none still read the rules")
    pub.close()
    b.stop()


def test_bad_options(d):
    """mosquitto must refuse to start with a plugin it cannot configure."""
    os.makedirs(d.file("wrong"), exist_ok=True)
    with open(os.path.join(d.file("wrong"), "notefiles.conf"), "w") as f:
        f.write("[notefile.a.qo]\nurgent = maybe\n")
    for opts, word in (("plugin_opt_prefix notecard/#\nplugin_opt_store %s\n" % d.file("x.db"), "prefix"),
                       ("plugin_opt_prefix notecard\n", "plugin_opt_store"),
                       ("plugin_opt_store %s\nplugin_opt_config %s\n" % (d.file("y.db"), d.file("none.conf")),
                        "plugin_opt_config"),
                       # the rules beside the store, there but wrong: refused, not ignored
                       ("plugin_opt_store %s\n" % os.path.join(d.file("wrong"), "store.db"),
                        "notefiles.conf")):
        conf = d.file("bad.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nuser %s\nplugin %s\n%s"
                    % (free_port(), pwd.getpwuid(os.getuid()).pw_name, BROKER_SO, opts))
        env = dict(os.environ, **sanitizer_env(BROKER_SO))
        p = subprocess.run(["mosquitto", "-c", conf], capture_output=True, text=True, timeout=20, env=env)
        out = p.stdout + p.stderr
        check(p.returncode != 0 and word in out, "bad plugin options accepted: %s" % out)


def main():
    if not os.path.exists(BROKER_SO):
        skip("broker plugin not built (mosquitto_broker.h missing at configure time)")
    with TestDir("mqtt-broker") as d:
        test_stream_and_refusals(d)
        test_store_busy(d)
        test_broker_killed(d)
        test_notefile_rules(d)
        test_notefile_rules(d, default=True)
        test_no_rules(d)
        test_bad_options(d)
    print("PASS")


if __name__ == "__main__":
    main()
