#!/usr/bin/python3
"""End to end with [crypto] uplink = host: notes queued with `notegw send` reach the
simulated Notehub sealed, so neither the card (its request log) nor the hub (its
routed events) ever holds the plaintext, and `notegw decrypt` with the cloud's key
gets it back; a notefile with encrypt = off goes in the clear. Downlink: a note the
cloud sealed to the gateway's key is opened before MQTT subscribers see it; a
tampered one is reported on the error topic and not published as plaintext."""
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "lib"))
from harness import NOTEGW, NOTEGWD, TOP_SRCDIR, Broker, Daemon, TestDir, check, plugin_so, skip, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

if not os.path.exists(NOTEGWD) or not os.path.exists(NOTEGW):
    skip("notegwd/notegw are not built")
if not plugin_so("mqtt"):
    skip("the mqtt plugin is not built")
if not shutil.which("mosquitto_sub"):
    skip("mosquitto_sub (mosquitto-clients) is not installed")

# The cloud side's code: the reference printed in docs/encryption.md.
import re  # noqa: E402

doc = open(os.path.join(TOP_SRCDIR, "docs", "encryption.md"), encoding="utf-8").read()
ref = {}
exec(compile([b for b in re.findall(r"```python\n(.*?)```", doc, re.S)
              if b.startswith("# notegw reference:")][0], "encryption.md", "exec"), ref)
from cryptography.hazmat.primitives import serialization  # noqa: E402

MARK = "SECRET-" + uuid.uuid4().hex  # appears only inside plaintext bodies
OPEN = "VISIBLE-" + uuid.uuid4().hex


def run(*args, stdin=None):
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=60)


ALG = {"p384": "ngw1-p384-aes256gcm", "rsa3072": "ngw1-rsa-aes256gcm"}


def scenario(t, kind):
    """One daemon, simulator and broker, with keys of one kind (p384 or rsa3072)."""
    keys = t.file("keys-" + kind)
    for args in ([], ["--name", "downlink"]):
        r = run(NOTEGW, "keys", "generate", "--type", kind, *args, keys)
        check(r.returncode == 0, "notegw keys generate: " + r.stderr)
    up_priv, up_pub = os.path.join(keys, "uplink.key.pem"), os.path.join(keys, "uplink.pub.pem")
    dn_priv, dn_pub = os.path.join(keys, "downlink.key.pem"), os.path.join(keys, "downlink.pub.pem")

    broker = Broker(t, name="broker-" + kind).start()
    sub_out = open(t.file("mqtt-%s.txt" % kind), "w")
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-v",
                            "-t", "ngw/in/#", "-t", "ngw/error"], stdout=sub_out,
                           stderr=subprocess.STDOUT)
    try:
        with Sim(serial=True, workdir=t.file("sim-" + kind)) as s:
            gw = Daemon(t, {
                "notecard": {"transport": "serial", "device": s.serial_path, "poll_interval": "1s"},
                "hub": {"mode": "continuous"},
                "update": {"enabled": False},
                "crypto": {"uplink": "host", "public_key": up_pub, "private_key": dn_priv},
                "notefile.plain.qo": {"encrypt": "off"},
                "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port,
                         "prefix": "ngw"},
            }, plugins=["mqtt"], name="gw-" + kind)
            gw.start()

            # ---- uplink ----
            sealed = [{"secret": MARK, "n": i} for i in range(3)]
            for b in sealed:
                gw.cli("send", "sensors.qo", json.dumps(b))
            gw.cli("send", "plain.qo", json.dumps({"open": OPEN}))

            hub_events = s.hub_file_events

            wait_for(lambda: len(hub_events()) >= 4, 30, 0.2, "four notes at the simulated hub")
            events = hub_events()
            hub_text = open(s.hub_path).read()
            card_log = open(s.log_path, errors="replace").read()
            check(MARK not in hub_text, "the hub never sees the plaintext")
            check(MARK not in card_log, "the Notecard (request log) never sees the plaintext")
            mine = [e for e in events if e.get("file") == "sensors.qo"]
            check(len(mine) == 3, "three sealed notes reached the hub")
            for e in mine:
                if kind == "p384":
                    # v2: the sealed body is the binary payload, only _id in the body
                    check(set(e["body"]) == {"_id"} and "payload" in e,
                          "a sealed P-384 note is a sealed payload: %r" % e)
                    raw = base64.b64decode(e["payload"])
                    check(raw[0] == 2 and len(raw) == 68 + len(json.dumps(sealed[0],
                                                                          separators=(",", ":"))),
                          "the payload adds 68 bytes to the body")
                else:
                    check(e["body"].get("alg") == ALG[kind] and "data" in e["body"],
                          "a sealed RSA note's body is an envelope: %r" % e["body"])
            plain = [e for e in events if e.get("file") == "plain.qo"]
            check(len(plain) == 1 and plain[0]["body"].get("open") == OPEN,
                  "encrypt = off sends plain.qo in the clear")
            # the cloud opens them with notegw decrypt (the hub file is JSON lines)
            lines = "".join(json.dumps(e) + "\n" for e in mine)
            r = run(NOTEGW, "decrypt", "--key", up_priv, "-", stdin=lines)
            check(r.returncode == 0, "notegw decrypt opens the hub's events: " + r.stderr)
            got = sorted((json.loads(x) for x in r.stdout.splitlines()), key=lambda b: b["n"])
            check(got == sealed, "the cloud reads back exactly what was sent")
            # and so does the reference code in docs/encryption.md
            with open(up_priv, "rb") as f:
                k = serialization.load_pem_private_key(f.read(), password=None)
            check(sorted(json.loads(ref["open_event"](k, e))["n"] for e in mine) == [0, 1, 2],
                  "the documented reference code opens them too")
            print("ok   %s: uplink sealed end to end (%d-byte bodies at the hub)"
                  % (kind, len(json.dumps(mine[0]["body"])) + len(mine[0].get("payload", ""))))

            # ---- downlink ----
            with open(dn_pub, "rb") as f:
                pub = serialization.load_pem_public_key(f.read())
            good = ref["seal_body"](pub, json.dumps({"cmd": "open-valve", "tag": MARK}).encode())
            bad = ref["seal_body"](pub, json.dumps({"cmd": "self-destruct", "tag": MARK}).encode())
            d = bad["data"]
            bad["data"] = d[:70] + ("A" if d[70] != "A" else "B") + d[71:]
            s.inject("cmd.qi", good, now=True)
            s.inject("cmd.qi", bad, now=True)
            gw.cli("sync", check_rc=False)

            def mqtt_lines():
                sub_out.flush()
                with open(t.file("mqtt-%s.txt" % kind)) as f:
                    return f.read().splitlines()
            wait_for(lambda: any("open-valve" in x for x in mqtt_lines()) and
                     any(x.startswith("ngw/error") for x in mqtt_lines()), 30, 0.2,
                     "the opened note and the error report on MQTT")
            time.sleep(0.5)  # let anything else that would wrongly follow arrive too
            lines = mqtt_lines()
            check(any(x.startswith("ngw/in/cmd.qi ") and "open-valve" in x for x in lines),
                  "the sealed downlink note reaches subscribers opened")
            check(not any("self-destruct" in x for x in lines),
                  "the tampered note's plaintext is never published")
            err = [x for x in lines if x.startswith("ngw/error")]
            check(any("decrypt" in x or "tampered" in x for x in err),
                  "the tampered note is reported on the error topic: %r" % err)
            check(MARK not in open(s.log_path, errors="replace").read(),
                  "the Notecard never saw the downlink plaintext either")
            gw.stop()
            print("ok   %s: downlink opened, the tampered note reported and withheld" % kind)
    finally:
        sub.terminate()
        sub.wait()
        sub_out.close()


with TestDir("crypto-e2e") as t:
    for kind in ("p384", "rsa3072"):
        scenario(t, kind)
print("passed")
