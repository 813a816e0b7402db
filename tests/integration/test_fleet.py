#!/usr/bin/python3
"""Configuration from Notehub, governed (docs/fleet.md), and the health note, against
notecard-sim (its env vars set as Notehub would) and a real mosquitto:
- an allowed variable becomes the overlay, is applied by the reload and audited with
  its old and new value;
- a forbidden one ([control]) and malformed ones (a bad value, an unknown key) are refused whole,
  each named with its reason in the audit log, on <prefix>/error, in `notegw status`,
  in `notegw fleet` and in a note on the gateway notefile at the hub;
- a change that passes the check but that a plugin refuses at reload is rolled back:
  the previous overlay is in force again, and that is reported the same ways;
- health notes reach the hub, templated compact, with their fields and the overlay's
  revision, in under 60 bytes on the air (the simulator's count and bench/health_bench's)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, TOP_BUILDDIR, TOP_SRCDIR, Daemon, TestDir, check, wait_for  # noqa: E402
from mqtthelp import broker  # noqa: E402
from mqttmini import Client  # noqa: E402
from sim import Sim  # noqa: E402

PREFIX = "notegw."
HEALTH_FIELDS = ("v", "fw", "up", "q", "age", "dr", "rf", "pl", "cs", "bars", "rssi", "df", "rev", "er")


def audit(gw, action):
    _, out, _ = gw.cli("audit", "-n", "500", "--json")
    return [r["detail"] for r in json.loads(out)["audit"] if r["action"] == action]


def fleet(gw):
    _, out, _ = gw.cli("fleet", "--json")
    return json.loads(out)["fleet"]


def hub(sim, file):
    return [e["body"] for e in sim.hub_notes() if e.get("file") == file and "body" in e]


def errors_seen(watch, seen):
    for topic, payload, _ in watch.drain(0.3):
        if topic == "notecard/error":
            seen.append(json.loads(payload))
    return seen


def refused_everywhere(gw, sim, watch, mqtt_seen, var, why_part, what="refused"):
    """var refused (or rolled back) with a reason holding why_part on every channel."""
    action = "fleet-refused" if what == "refused" else "fleet-rolled-back"
    wait_for(lambda: any(var in d and why_part in d for d in audit(gw, action)), 40, 0.3,
             "%s %s in the audit log" % (what, var))
    f = fleet(gw)
    check(f["last"] == what and any(var in r["var"] and why_part in r["why"] for r in f["refused"]),
          "notegw fleet shows %s %s: %r" % (what, var, f))
    st = gw.status()["status"]
    check(any(var in r["var"] for r in st["fleet"]["refused"]),
          "notegw status shows the refusal of %s: %r" % (var, st["fleet"]))
    _, text, _ = gw.cli("fleet")
    check(var in text and why_part in text, "notegw fleet's text names %s and why: %r" % (var, text))
    wait_for(lambda: any(var in e.get("topic", "") and why_part in e.get("error", "")
                         for e in errors_seen(watch, mqtt_seen)), 20, 0.2, "%s on notecard/error" % var)
    wait_for(lambda: any(b.get("fleet") == what and var in b.get("var", "") and why_part in b.get("why", "")
                         for b in hub(sim, "notegw.qo")), 40, 0.3, "the %s note for %s at the hub" % (what, var))


def main():
    with TestDir("fleet") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        b = broker(d).start()
        watch = Client(b.port, "watch-errors").connect()
        watch.subscribe("notecard/error")
        record = d.file("example.jsonl")
        gw = Daemon(d, {
            "notecard": {"transport": "serial", "device": sim.serial_path, "poll_interval": "1s"},
            "hub": {"mode": "continuous"},
            "mqtt": {"enabled": True, "host": "127.0.0.1", "port": b.port, "client_id": "notegw-fleet",
                     "reconnect_min": "100ms", "reconnect_max": "1s"},
            "example": {"file": record},
            "update": {"enabled": False},
            "fleet": {"allow": "hub.outbound, example.*"},
            "health": {"interval": "2s"},
            # compact, as on a satellite notefile: no time and location from the card
            "notefile.health.qo": {"template": os.path.join(TOP_SRCDIR, "etc", "health-template.json"),
                                   "ntn": True},
        }, plugins=["mqtt", "example"])
        overlay = os.path.join(gw.dir, "fleet.conf")

        # --check-config knows [fleet] and [health], and says FILE:LINE
        good = open(gw.config).read()
        bad = good.replace("allow = hub.outbound, example.*", "allow = hub.outbound, crypto.*")
        bad = bad.replace("[health]\n", "[health]\nfrequency = 3\n")
        with open(gw.config, "w") as f:
            f.write(bad)
        lines = bad.splitlines()
        at = {k: "%s:%d:" % (gw.config, 1 + next(i for i, s in enumerate(lines) if s.startswith(k)))
              for k in ("allow", "frequency")}
        p = subprocess.run([NOTEGWD, "--check-config", "-c", gw.config], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode != 0 and at["allow"] + " [fleet] allow: 'crypto.*' can never be allowed" in p.stderr
              and at["frequency"] + " unknown key 'frequency' in [health]" in p.stderr,
              "--check-config refuses [fleet]/[health] problems at FILE:LINE: %r" % p.stderr)
        with open(gw.config, "w") as f:
            f.write(good)
        gw.start()
        mqtt_seen = []

        # an allowed change: the overlay, the reload, the audit with old and new value
        sim.env({PREFIX + "hub.outbound": "30"})
        wait_for(lambda: any("hub.outbound: (unset) -> 30 (revision 1)" in x for x in audit(gw, "fleet-set")),
                 40, 0.3, "the allowed change applied and audited")
        f = fleet(gw)
        check(f["revision"] == 1 and f["last"] == "applied" and f["refused"] == [],
              "revision 1 applied: %r" % f)
        check(os.path.exists(overlay) and 'outbound = "30"' in open(overlay).read() and
              "# revision 1" in open(overlay).read(), "the overlay file holds the change")
        check(f["text"] == open(overlay).read(), "notegw fleet shows the overlay")
        check(gw.status()["status"]["daemon"]["reloads"] >= 1, "applied by a reload")

        # a forbidden one: nothing of the batch applied
        sim.env({PREFIX + "control.socket": "/tmp/elsewhere.sock"})
        refused_everywhere(gw, sim, watch, mqtt_seen, PREFIX + "control.socket", "gateway only")
        check(fleet(gw)["revision"] == 1 and 'outbound = "30"' in open(overlay).read(),
              "a refused batch left the overlay alone")

        # a malformed one, checked as --check-config checks a file
        # (a bad value and an unknown key, each named with its own reason)
        sim.env({PREFIX + "control.socket": "", PREFIX + "hub.outbound": "soon",
                 PREFIX + "example.nonsense": "1"})
        refused_everywhere(gw, sim, watch, mqtt_seen, PREFIX + "hub.outbound", "'soon' is not an integer")
        refused_everywhere(gw, sim, watch, mqtt_seen, PREFIX + "example.nonsense",
                           "unknown key 'nonsense' in [example]")
        check(fleet(gw)["revision"] == 1, "a malformed batch left revision 1")

        # a change a plugin refuses at reload: rolled back to revision 1
        sim.env({PREFIX + "hub.outbound": "45", PREFIX + "example.nonsense": "",
                 PREFIX + "example.fail": "reload"})
        refused_everywhere(gw, sim, watch, mqtt_seen, PREFIX + "example.fail", "revision 1 is back",
                           what="rolled back")
        f = fleet(gw)
        check(f["revision"] == 1 and 'outbound = "30"' in open(overlay).read() and
              "fail" not in open(overlay).read(), "the previous overlay is back: %r" % f)
        check(gw.proc.poll() is None, "the daemon runs on after a rollback")

        # the fix goes through: revision 2, audited 30 -> 45
        sim.env({PREFIX + "example.fail": ""})
        wait_for(lambda: any("hub.outbound: 30 -> 45 (revision 2)" in x for x in audit(gw, "fleet-set")),
                 40, 0.3, "the fixed batch applied as revision 2")
        check(fleet(gw)["refused"] == [], "nothing refused once applied")

        # health notes: at the hub, with their fields and the revision now in force
        def health_rev2():
            return [h for h in hub(sim, "health.qo") if h.get("rev") == 2]
        notes = wait_for(health_rev2, 40, 0.5, "a health note with revision 2 at the hub")
        h = notes[-1]
        missing = [k for k in HEALTH_FIELDS if k not in h]
        check(not missing, "health note fields present (missing %r): %r" % (missing, h))
        check(h["cs"] == 1 and h["up"] >= 1 and "r" in h["pl"] and h["v"] > 0,
              "health note: card ready, uptime, running plugins, version: %r" % h)
        check("_gw" in h or "_id" in h, "the health note names its gateway: %r" % h)
        files = gw.status()["status"].get("notefiles", {})
        hf = files.get("health.qo", {})
        check(hf.get("templated", 0) >= 1, "health notes go templated: %r" % hf)
        print("health note: %d B/note on the air templated (%r)" % (hf.get("bytes_per_note", -1), h))
        check(0 < hf.get("bytes_per_note", 0) < 60, "a health note takes under 60 B on the air: %r" % hf)
        bench = subprocess.run([os.path.join(TOP_BUILDDIR, "bench", "health_bench")], capture_output=True,
                               text=True, timeout=60)
        print(bench.stdout, end="")
        check(bench.returncode == 0, "health_bench: the body fits the shipped template, under 60 B: %r"
              % (bench.stdout + bench.stderr))
        watch.close()
        check(gw.stop() == 0, "daemon stopped cleanly")
    print("PASS: test_fleet")


if __name__ == "__main__":
    main()
