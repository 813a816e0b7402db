#!/usr/bin/python3
"""notegwd under valgrind memcheck through a representative flow: the simulator (serial),
a mosquitto broker, the mqtt and example plugins and host encryption; notes in from
the CLI and from MQTT, an inbound note out to MQTT and the example plugin, a raw
request, SIGHUP reloads, a heartbeat from the example plugin, then SIGTERM. valgrind
exits 99 on any memory error or definite leak (see harness.Daemon), so the check is
that the daemon stops with 0. Run by tools/valgrind-suite.sh (slow: not in make check)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "lib"))
from harness import NOTEGW, NOTEGWD, Broker, Daemon, TestDir, check, fail, log, plugin_so, skip, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

if not shutil.which("valgrind"):
    skip("valgrind is not installed")
if not os.path.exists(NOTEGWD) or not plugin_so("mqtt") or not plugin_so("example"):
    skip("notegwd and the mqtt and example plugins must be built")
if "libasan" in subprocess.run(["ldd", NOTEGWD], capture_output=True, text=True).stdout:
    skip("notegwd is built with ASan: valgrind needs a plain build")

W = float(os.environ.get("VALGRIND_WAIT_S", "120"))  # everything is ~20x slower under valgrind


def main():
    with TestDir("valgrind") as t:
        keys = t.file("keys")
        r = subprocess.run([NOTEGW, "keys", "generate", keys], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "notegw keys generate: " + r.stderr)
        broker = Broker(t).start()
        sub_path = t.file("mqtt.txt")
        sub_out = open(sub_path, "w")
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-v",
                                "-t", "ngw/in/#", "-t", "ngw/error"], stdout=sub_out,
                               stderr=subprocess.STDOUT)
        events = t.file("example.events")
        try:
            with Sim(serial=True, workdir=t.file("sim")) as s:
                gw = Daemon(t, {
                    "notecard": {"transport": "serial", "device": s.serial_path, "poll_interval": "1s"},
                    "hub": {"mode": "continuous"},
                    "update": {"enabled": False},
                    "crypto": {"uplink": "host", "public_key": os.path.join(keys, "uplink.pub.pem")},
                    "notefile.plain.qo": {"encrypt": "off"},
                    "mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker.port, "prefix": "ngw"},
                    "example": {"file": events, "heartbeat": "2s", "notefile": "beat.qo"},
                }, plugins=["mqtt", "example"], name="gw", valgrind=True)
                gw.start(wait=False)
                gw.wait_ready(W)
                with open("/proc/%d/maps" % gw.proc.pid) as f:
                    check("vgpreload_memcheck" in f.read(), "the daemon runs under memcheck")
                log("daemon up under valgrind memcheck")

                gw.cli("send", "sensors.qo", json.dumps({"t": 1}))
                gw.cli("send", "plain.qo", json.dumps({"t": 2}))
                p = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                                    "-t", "ngw/out/plain.qo", "-m", json.dumps({"t": 3})],
                                   capture_output=True, text=True, timeout=30)
                check(p.returncode == 0, "mosquitto_pub: " + p.stderr)
                subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                                "-t", "ngw/out/bad name", "-m", "[1"], capture_output=True, timeout=30)

                def at_hub():
                    files = [e.get("file") for e in s.hub_notes()]
                    return files.count("plain.qo") >= 2 and "sensors.qo" in files
                wait_for(at_hub, W, 0.5, "the CLI and MQTT notes at the hub")

                s.inject("cmd.qi", {"valve": "open"}, now=True)
                gw.cli("sync", check_rc=False)

                def inbound():
                    sub_out.flush()
                    text = open(sub_path).read()
                    ev = open(events).read() if os.path.exists(events) else ""
                    return "ngw/in/cmd.qi" in text and "valve" in ev
                wait_for(inbound, W, 0.5, "the inbound note on MQTT and at the example plugin")

                rc, out, _ = gw.cli("req", '{"req":"card.version"}')
                check("version" in out, "notegw req answered: %r" % out)
                for _ in range(3):
                    gw.signal(signal.SIGHUP)
                    time.sleep(1)
                gw.wait_ready(W)
                gw.cli("send", "sensors.qo", json.dumps({"t": 4}))
                wait_for(lambda: sum(1 for e in s.hub_notes() if e.get("file") == "sensors.qo") >= 2,
                         W, 0.5, "a note sent after the reloads at the hub")
                wait_for(lambda: any(e.get("file") == "beat.qo" for e in s.hub_notes()), W, 0.5,
                         "the example plugin's heartbeat at the hub")
                gw.cli("status")
                gw.cli("queue")
                rc = gw.stop(timeout=W)
                vg = [x for x in gw.log_text().splitlines() if x.startswith("==")]
                if vg:
                    log("valgrind said:\n" + "\n".join(vg[-80:]))
                check(rc == 0, "notegwd under valgrind exited %s (99: memory errors or definite leaks)" % rc)
        finally:
            sub.terminate()
            sub.wait()
            sub_out.close()
    print("valgrind: notegwd clean (0 errors, 0 definite leaks) through send, MQTT in/out, "
          "inbound, req, reload, heartbeat and stop")


if __name__ == "__main__":
    main()
