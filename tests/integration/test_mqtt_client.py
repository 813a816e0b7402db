"""The MQTT client plugin (mqtt.so) against a real mosquitto: out/ messages become
notes, acknowledged to the broker after their commit; refusals are reported on error/ and
nothing is queued, inbound notes go out on in/ and are marked delivered only on
PUBACK, status is retained with a last will, the session persists across restarts.
The plugin runs in tests/unit/mqtt_fakehost (real plugin ABI and config binder; its
store is a group-committed, fsync'd JSON-lines file)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import TestDir, check, fail, log, skip, wait_for  # noqa: E402
from mqtthelp import MQTT_SO, Client, FakeHost, Publisher, broker, numbers  # noqa: E402

N = 1000


def retained(port, topic):
    """What a fresh subscriber gets as the retained message on topic (or None)."""
    c = Client(port, "peek-%d" % time.monotonic_ns()).connect()
    c.subscribe(topic)
    msgs = c.drain(0.5)
    c.close()
    return json.loads(msgs[-1][1]) if msgs and msgs[-1][2] else None


def errors_for(msgs, topic):
    return [json.loads(p) for t, p, _ in msgs if t == "notecard/error" and json.loads(p)["topic"] == topic]


def test_main_path(d, b):
    h = FakeHost(d, b.port, raw_requests=True).start()
    h.wait_connected()
    # The status goes out right after CONNACK; poll until a new subscriber gets it retained.
    st = wait_for(lambda: retained(b.port, "notecard/status"), 10, 0.1, "a retained status")
    check(st.get("online") is True and st.get("daemon") == {"fake": True},
          "status not retained with online:true: %r" % (st,))

    watch = Client(b.port, "watcher").connect()
    watch.subscribe("notecard/#")

    # 1,000 QoS 1 messages: every one committed, in order.
    p = Publisher(b.port, "notecard/out/data.qo", N)
    p.start()
    p.join(90)
    check(not p.is_alive() and p.error is None and len(p.acked) == N, "publisher: %r %d" % (p.error, len(p.acked)))
    wait_for(lambda: len(h.notes()) >= N, 30, 0.1, "1000 notes")
    got = numbers(h.notes(), "data.qo")
    check(got == list(range(N)), "notes differ from what was published (first: %r)" % got[:5])

    # Refusals: each produces an error message, nothing is queued.
    before = len(h.notes())
    pub = Client(b.port, "bad-publisher").connect()
    bad = [("notecard/out/data.qo", b"this is not json", "payload is not valid JSON"),
           ("notecard/out/data.qo", b"[1,2,3]", "payload is not a JSON object"),
           ("notecard/out/data.qo", json.dumps({"x": "a" * 9000}).encode(), "payload larger than max_payload"),
           ("notecard/out/data.qi", b'{"a":1}', "notefile must end in .qo, .qos, .db or .dbs"),
           ("notecard/out/sub/dir.qo", b'{"a":1}', "notefile name may only hold"),
           ("notecard/out/refuse.qo", b'{"a":1}', "store full")]  # refused by the host
    for topic, payload, _ in bad:
        pub.publish(topic, payload)
    msgs = watch.drain(1.0)
    for topic, _, why in bad:
        errs = errors_for(msgs, topic)
        check(len(errs) >= 1 and any(e["error"].startswith(why) for e in errs),
              "no error message for %s (%s): %r" % (topic, why, errs))
    check(len(h.notes()) == before, "a refused message was queued")

    # A retained out/ message is queued once (live), not again when replayed on resubscribe.
    pub.publish("notecard/out/kept.qo", b'{"k":1}', retain=True)
    wait_for(lambda: numbers_k(h) == 1, 10, 0.1, "retained message queued once")

    # A commit that fails for a reason that may pass: no PUBACK (the plugin drops the
    # connection), the reason on error/, and the broker's redelivery is committed.
    pub.publish("notecard/out/flaky.qo", b'{"try":1}')
    wait_for(lambda: [n for n in h.notes() if n["file"] == "flaky.qo"], 20, 0.1, "the redelivered note")
    msgs = watch.drain(0.5)
    check(any(e["error"].startswith("store could not commit") for e in errors_for(msgs, "notecard/out/flaky.qo")),
          "no error report for the failed commit")
    s = h.stats()
    check(s["failed"] == 1 and s["reconnects"] == 1 and len([n for n in h.notes() if n["file"] == "flaky.qo"]) == 1,
          "failed commit not retried exactly once: %r" % s)
    watch.close()
    watch = Client(b.port, "watcher2").connect()
    watch.subscribe("notecard/#")

    # Inbound: published on in/<file>, marked done only after the broker's PUBACK.
    h.send('inbound 42 cmd.qi {"valve": "open"}')
    h.expect(lambda l: l == "done 42", "done 42")
    msgs = watch.drain(0.5)
    ins = [json.loads(p) for t, p, _ in msgs if t == "notecard/in/cmd.qi"]
    check(ins and ins[0]["body"] == {"valve": "open"} and ins[0]["file"] == "cmd.qi" and ins[0]["time"] == 1700000000,
          "inbound note not published as expected: %r" % ins)

    # env (retained), emit, on_error, status updates.
    h.send("env sample_rate 30")
    h.send('emit modbus/result {"ok":true}')
    h.send("error modbus write refused: register 7 is read-only")
    h.send('status {"card":{"uid":"dev:123"}}')
    msgs = watch.drain(0.5)
    tops = {t: p for t, p, _ in msgs}
    check(tops.get("notecard/modbus/result") == b'{"ok":true}', "emit not published: %r" % tops)
    check(errors_for(msgs, "modbus"), "on_error not published: %r" % msgs)
    check(retained(b.port, "notecard/env/sample_rate") == 30, "env not retained")
    st = retained(b.port, "notecard/status")
    check(st == {"card": {"uid": "dev:123"}, "online": True}, "status update not retained: %r" % st)

    # Raw requests (on in this config): answered on rsp.
    pub.publish("notecard/req", b'{"req":"card.version"}')
    h.expect(lambda l: l.startswith("req "), "the request to reach the card")
    msgs = watch.drain(0.5)
    rsp = [json.loads(p) for t, p, _ in msgs if t == "notecard/rsp"]
    check(rsp and json.loads(rsp[0]["echo"]) == {"req": "card.version"}, "no response on rsp: %r" % msgs)

    s = h.stats()
    # refused: the bad ones, and the retained kept.qo replayed after the flaky reconnect
    check(s["queued"] == N + 2 and s["refused"] == len(bad) + 1 and s["failed"] == 1
          and s["received"] == s["queued"] + s["refused"] + s["failed"] + 1,
          "counters: %r" % s)
    pub.close()
    watch.close()
    return h


def numbers_k(h):
    return len([n for n in h.notes() if n["file"] == "kept.qo"])


def test_persistent_session(d, b, h):
    """Messages published while the gateway is down are delivered when it is back."""
    h.stop()
    check(retained(b.port, "notecard/status") == {"online": False}, "clean stop did not publish offline status")
    before = len(h.notes())
    pub = Client(b.port, "pub2").connect()
    for i in range(20):
        pub.publish("notecard/out/late.qo", json.dumps({"n": i}))
    pub.close()
    h.start()
    wait_for(lambda: len(numbers(h.notes(), "late.qo")) == 20, 20, 0.1, "messages kept by the broker")
    check(numbers(h.notes(), "late.qo") == list(range(20)), "order or content changed")
    check(len(h.notes()) == before + 20, "unexpected notes")
    # The retained out/ message replayed on resubscription was refused, not queued again.
    check(numbers_k(h) == 1, "retained out/ message queued again after reconnect")


def test_will(d, b, h):
    h.wait_connected()
    wait_for(lambda: (retained(b.port, "notecard/status") or {}).get("online") is True, 10, 0.1, "online status")
    h.kill()
    wait_for(lambda: retained(b.port, "notecard/status") == {"online": False}, 10, 0.2, "the last will")


def test_inbound_across_broker_restart(d, b):
    """An inbound note offered while the broker is down is sent after reconnecting,
    and only then marked done; a persistent subscriber gets it."""
    sub = Client(b.port, "app", clean=False).connect()
    sub.subscribe("notecard/in/#")
    sub.close()
    h = FakeHost(d, b.port, name="host2").start()
    h.wait_connected()
    b.stop()
    time.sleep(0.3)
    h.send('inbound 77 alarm.qi {"level": 3}')
    time.sleep(0.5)
    h.send("stats")
    l = h.expect(lambda l: l.startswith("stats ") or l.startswith("done"), "stats")
    check(not l.startswith("done"), "inbound marked done while the broker is down")
    b.start()
    h.expect(lambda l: l == "done 77", "done 77 after reconnect", timeout=30)
    check(h.stats()["reconnects"] >= 1, "reconnect not counted")
    sub = Client(b.port, "app", clean=False).connect()
    msgs = sub.drain(1.0)
    sub.close()
    got = [json.loads(p) for t, p, _ in msgs if t == "notecard/in/alarm.qi"]
    check(got and got[0]["body"] == {"level": 3}, "persistent subscriber did not get the note: %r" % msgs)
    h.stop()


def test_password_file(d, b):
    pw = d.file("pw")
    with open(pw, "w") as f:
        f.write("secret\n")
    os.chmod(pw, 0o644)
    h = FakeHost(d, b.port, name="host3", username="gw", password_file=pw).start(wait_ready=False)
    rc = h.proc.wait(20)
    check(rc != 0 and "readable or writable by others" in h.log_text(), "world-readable password file accepted")
    os.chmod(pw, 0o600)
    h = FakeHost(d, b.port, name="host4", username="gw", password_file=pw).start()
    h.wait_connected()
    check("secret" not in h.log_text(), "password in the log")
    h.stop()


def test_credentials(d):
    """The password from password_file is what the broker checks."""
    pwfile = d.file("mosquitto.passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", pwfile, "gw", "right-horse"], check=True,
                   capture_output=True, timeout=20)
    b = broker(d, name="authbroker", extra="allow_anonymous false\npassword_file %s\n" % pwfile)
    b.start()
    good, bad = d.file("pw-good"), d.file("pw-bad")
    for path, text in ((good, "right-horse\n"), (bad, "wrong-horse\n")):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
    h = FakeHost(d, b.port, name="auth-good", username="gw", password_file=good).start()
    h.wait_connected()
    h.stop()
    h = FakeHost(d, b.port, name="auth-bad", username="gw", password_file=bad).start()
    time.sleep(1.5)
    check(not h.stats()["connected"], "connected with a wrong password")
    check("refused the connection" in h.log_text() and "horse" not in h.log_text(),
          "refusal not logged, or the password was: %s" % h.log_text())
    h.stop()
    b.stop()


def test_bad_config(d, b):
    for keys, word in (({"prefix": "a/#"}, "prefix"), ({"qos": "0"}, "qos"),
                       ({"cert_file": "/x", "tls": True}, "key_file"),
                       ({"ca_file": "/x"}, "tls"), ({"reconnect_min": "10s", "reconnect_max": "1s"}, "reconnect_min"),
                       ({"ingest": "both"}, "ingest"), ({"bogus": "1"}, "bogus")):
        h = FakeHost(d, b.port, name="badconf", **keys).start(wait_ready=False)
        rc = h.proc.wait(20)
        check(rc != 0 and word in h.log_text(), "bad [mqtt] %r accepted or not named: %s" % (keys, h.log_text()))
        check("Sanitizer" not in h.log_text(), "leak or error on a refused config: %s" % h.log_text())
        os.remove(h.errlog)


def test_ingest_broker(d, b):
    """With ingest = broker the client plugin must not also queue out/ messages; and
    when the broker does not run notegw_broker.so, it says so instead of letting out/
    messages vanish."""
    watch = Client(b.port, "watch5").connect()
    watch.subscribe("notecard/error")
    h = FakeHost(d, b.port, name="host5", ingest="broker").start()
    h.wait_connected()
    errs = [json.loads(p) for t, p, _ in watch.drain(6.0)]
    check(any(e["topic"] == "notecard/out/#" and "notegw_broker.so" in e["error"] for e in errs),
          "no error when the broker plugin is missing: %r" % errs)
    check(h.stats().get("broker_plugin") is False, "stats do not show the missing broker plugin")
    check("did not answer as notegw_broker.so would" in h.log_text(), "not logged")
    watch.close()
    pub = Client(b.port, "pub5").connect()
    pub.publish("notecard/out/data.qo", b'{"a":1}')
    pub.close()
    time.sleep(0.5)
    check(h.notes() == [] and h.stats()["received"] == 0, "ingest=broker still queued out/ messages")
    h.send('inbound 5 x.qi {"a":1}')
    h.expect(lambda l: l == "done 5", "inbound still delivered")
    h.stop()


def test_protocol5(d, b):
    """MQTT 5: the session survives a restart because the plugin asks for a session
    expiry (without one an MQTT 5 broker drops the session at disconnect)."""
    h = FakeHost(d, b.port, name="v5", protocol="5", raw_requests=True).start()
    h.wait_connected()
    # MQTT 5 request/response: the answer goes to the response topic, with the correlation data.
    sub = subprocess.Popen(["mosquitto_sub", "-V", "mqttv5", "-p", str(b.port), "-t", "app/answers",
                            "-C", "1", "-W", "15", "-F", "%t|%D|%p"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    r = subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-p", str(b.port), "-q", "1", "-t", "notecard/req",
                        "-D", "publish", "response-topic", "app/answers",
                        "-D", "publish", "correlation-data", "req-17",
                        "-m", '{"req":"card.status"}'], capture_output=True, text=True, timeout=20)
    check(r.returncode == 0, "mosquitto_pub v5: %s" % r.stderr)
    out, _ = sub.communicate(timeout=20)
    parts = out.strip().split("|", 2)
    check(len(parts) == 3 and parts[0] == "app/answers" and parts[1] == "req-17"
          and json.loads(json.loads(parts[2])["echo"]) == {"req": "card.status"}, "MQTT 5 answer: %r" % out)

    h.stop()
    pub = Client(b.port, "pub-v5").connect()
    for i in range(5):
        pub.publish("notecard/out/v5.qo", json.dumps({"n": i}))
    pub.close()
    h.start()
    wait_for(lambda: numbers(h.notes(), "v5.qo") == list(range(5)), 20, 0.1,
             "messages kept for the MQTT 5 session")
    h.stop()


def test_full_disk_log(d, b, h):
    """A disk full for three deliveries of one message: none is acknowledged (the
    broker sends it again each time) but the log says so once, and once more when
    the commit works; every failure is still reported on error/."""
    before = len(h.log_text())
    s0 = h.stats()
    watch = Client(b.port, "watch-full").connect()
    watch.subscribe("notecard/error")
    pub = Client(b.port, "pub-full").connect()
    pub.publish("notecard/out/full.qo", b'{"full":1}')
    pub.close()
    wait_for(lambda: [n for n in h.notes() if n["file"] == "full.qo"], 30, 0.1, "the note once the disk had room")
    s = h.stats()
    text = h.log_text()[before:]
    check(s["failed"] - s0["failed"] == 3 and len([n for n in h.notes() if n["file"] == "full.qo"]) == 1,
          "full disk: %d failures, want 3: %r" % (s["failed"] - s0["failed"], s))
    check(text.count("not committed (") == 1 and text.count("notes commit again; 3 message(s)") == 1,
          "full disk: not one line each way:\n%s" % text)
    reports = errors_for(watch.drain(0.5), "notecard/out/full.qo")
    # (a report queued as the connection was dropped may come twice: QoS 1 resends it)
    check(len(reports) >= 3, "full disk: %d reports on error/, want one per failure" % len(reports))
    watch.close()


def main():
    if not os.path.exists(MQTT_SO):
        skip("mqtt plugin not built (configure --disable-mqtt)")
    with TestDir("mqtt-client") as d:
        b = broker(d).start()
        h = test_main_path(d, b)
        test_persistent_session(d, b, h)
        test_full_disk_log(d, b, h)
        test_will(d, b, h)
        test_inbound_across_broker_restart(d, b)
        test_password_file(d, b)
        test_bad_config(d, b)
        test_ingest_broker(d, b)
        test_protocol5(d, b)
        test_credentials(d)
    print("PASS")


if __name__ == "__main__":
    main()
