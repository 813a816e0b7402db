#!/usr/bin/python3
"""The Modbus plugin inside the real daemon: notegwd with the simulated Notecard,
pymodbus as the field device. Polled notes reach the (simulated) hub through the
store; a write request injected at the hub comes down, is written to the device and
its result goes back up; `notegw status` shows the plugin's counters; mbpoll reads
the gateway's server; --check-config reports a bad Modbus section at FILE:LINE."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, Daemon, TestDir, check, log, plugin_so, skip, wait_for  # noqa: E402

try:
    import pymodbus  # noqa: F401
except ImportError:
    skip("python3-pymodbus is not installed")
from mbpeer import Peer, free_port, words_f32  # noqa: E402
from sim import Sim  # noqa: E402


def main():
    if not plugin_so("modbus") or not os.path.exists(NOTEGWD):
        skip("notegwd or the modbus plugin is not built")
    with TestDir("modbus") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        dev_port, srv_port = free_port(), free_port()
        hr = {"0": 2301, "1": 0}
        hr.update({str(2 + i): w for i, w in enumerate(words_f32(-1.5))})
        with open(d.file("layout.json"), "w") as f:
            json.dump({"units": [1], "hr": hr, "co": {"0": 0}}, f)
        peer = Peer("tcp", dev_port, d.file("layout.json"))
        try:
            run(d, sim, dev_port, srv_port)
        finally:
            peer.stop()


def run(d, sim, dev_port, srv_port):
    sections = {
        "notecard": {"transport": "serial", "device": sim.serial_path, "poll_interval": "1s",
                     "timing_scale": 5},
        "hub": {"mode": "continuous"},
        "update": {"enabled": False},
        "modbus": {"enabled": True, "server": srv_port},
        "modbus.meter": {"url": "tcp://127.0.0.1:%d" % dev_port, "interval": "500ms",
                         "notefile": "meter.qo"},
        "modbus.meter.volts": {"register": "holding:0", "scale": 0.1},
        "modbus.meter.sp": {"register": "holding:1", "type": "i16", "writable": True,
                            "min": -100, "max": 100},
        "modbus.meter.temp": {"register": "holding:2", "type": "f32"},
        "modbus.meter.relay": {"register": "coil:0", "writable": True},
    }
    gw = Daemon(d, sections, plugins=["modbus"])

    # --check-config runs the plugin's checks too
    bad = d.file("bad.conf")
    with open(gw.config) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text + "\n[modbus.meter.broken]\nregister = coil:9\ntype = f32\n")
    p = subprocess.run([NOTEGWD, "--check-config", "-c", bad], capture_output=True, text=True, timeout=60)
    lines = text.count("\n") + 1
    check(p.returncode != 0 and ("%s:%d:" % (bad, lines + 3)) in p.stderr and "bool" in p.stderr,
          "bad point not reported at FILE:LINE: %r" % p.stderr)

    gw.start()

    def hub(file):
        return [e for e in sim.hub_notes() if e.get("file") == file]

    notes = wait_for(lambda: hub("meter.qo"), 60, 0.2, "a meter note at the hub")
    body = notes[0]["body"]
    check(body.get("volts") == 230.1 and body.get("sp") == 0 and body.get("temp") == -1.5
          and body.get("relay") is False, "polled values at the hub: %r" % body)
    log("ok: polled note reached the hub:", body)

    sim.inject("modbus.qi", body={"device": "meter", "point": "relay", "value": True}, now=True)
    sim.inject("modbus.qi", body={"device": "meter", "point": "volts", "value": 1}, now=True)
    results = wait_for(lambda: len(hub("modbus.qo")) >= 2 and hub("modbus.qo"), 60, 0.2,
                       "two write results at the hub")
    by_point = {r["body"]["point"]: r["body"] for r in results}
    check(by_point["relay"].get("ok") is True, "relay write: %r" % by_point)
    check(by_point["volts"].get("ok") is False and "not writable" in by_point["volts"].get("error", ""),
          "write to a read-only point refused: %r" % by_point)
    wait_for(lambda: any(n["body"].get("relay") is True for n in hub("meter.qo")), 60, 0.2,
             "the written coil read back")
    log("ok: writes from the hub, results back up")

    full = gw.status()["status"]
    st = full["plugins"]["modbus"]
    m = st["devices"]["meter"]
    check(st["state"] == "running" and m["state"] == "up" and m["ok"] >= 1, "status: %r" % st)
    check(st["writes"]["ok"] == 1 and st["writes"]["refused"] == 1, "write counters: %r" % st)

    r = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(srv_port), "-0", "-1", "-o", "5", "-t", "3:float", "-B",
                        "-r", "1000", "-c", "1", "127.0.0.1"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and "230.1" in r.stdout, "server value: %s" % r.stdout)

    # the gateway's own state, from the daemon's status (refreshed every 5 s): wait
    # until the registers agree with a status read right after them
    def agree():
        r = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(srv_port), "-0", "-1", "-o", "5",
                            "-t", "3", "-r", "0", "-c", "9", "127.0.0.1"], capture_output=True,
                           text=True, timeout=30)
        v = [int(x) & 0xFFFF for x in re.findall(r"^\[\d+\]:\s+(-?\d+)", r.stdout, re.M)]
        s = gw.status()["status"]
        card, hub = s.get("notecard", {}), s.get("hub", {})
        want = [1, 1, 4,
                int(card["connected"]) if "connected" in card else 0xFFFF,
                card.get("signal", {}).get("bars", 0xFFFF)]
        last[0] = (v, want, hub.get("last_sync"))
        return len(v) == 9 and v[:5] == want and (v[7] << 16 | v[8]) == hub.get("last_sync", 0) \
            and (v[5] << 16 | v[6]) != 0xFFFFFFFF
    last = [None]
    try:
        wait_for(agree, 40, 0.5, "gateway state in the server's registers")
    except SystemExit:
        log("registers, expected, last_sync:", last[0])
        raise
    check(gw.stop() == 0, "notegwd exit status")
    log("ok: status and server")


if __name__ == "__main__":
    main()
