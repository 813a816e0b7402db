"""Note templates over the simulator. The daemon learns a template for a
notefile from its first bodies, registers it (note.template, valid against api.json)
before the first templated note.add, sends later notes templated (fewer bytes on the
air by the simulator's accounting), still delivers an out-of-shape body, keeps the
learned template across a restart, shows bytes per note in `notegw status`, and refuses
at the producer a body a satellite (ntn) notefile cannot carry, and clears a template
it did not set when the card refuses a note for it."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, log, wait_for  # noqa: E402
from sim import Sim, validate_exchange  # noqa: E402

LEARN = 3


def sensor(k):
    return {"k": k, "temp": 20.5 + k / 4, "hum": 40 + k, "ok": True, "state": "run"}


def main():
    with TestDir("templates") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        fixed = d.file("fixed.json")
        with open(fixed, "w") as f:
            json.dump({"level": 22, "alarm": True}, f)
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "1s", "timing_scale": 5},
                        "hub": {"mode": "continuous"},
                        "update": {"enabled": False},
                        "notefile.sensors.qo": {"template": "auto", "learn": LEARN},
                        "notefile.fixed.qo": {"template": fixed},
                        "notefile.sat.qo": {"template": "auto", "ntn": True, "learn": 1}})
        gw.start()

        def send(file, body, ok=True):
            rc, out, err = gw.cli("send", file, json.dumps(body), check_rc=False)
            if ok:
                check(rc == 0, "send %s %r: rc %d %s%s" % (file, body, rc, out, err))
            return rc, out + err

        for k in range(1, 9):
            send("sensors.qo", sensor(k))
        odd = {"k": 100, "note": "calibration done", "nested": {"a": [1, 2]}}
        send("sensors.qo", odd)
        send("sensors.qo", sensor(9))
        send("fixed.qo", {"level": 500, "alarm": False})
        send("fixed.qo", {"level": 1, "alarm": False, "extra": "x"})

        def at_hub():
            ks = {(ev.get("body") or {}).get("k") for ev in sim.hub_notes()
                  if ev.get("file") == "sensors.qo"}
            fx = [ev for ev in sim.hub_notes() if ev.get("file") == "fixed.qo"]
            return ks >= set(range(1, 10)) | {100} and len(fx) == 2
        wait_for(at_hub, 60, 0.2, "every note at the hub")

        # the out-of-shape body arrived whole
        got = [ev for ev in sim.hub_notes() if (ev.get("body") or {}).get("k") == 100]
        check(len(got) >= 1, "out-of-shape note not at the hub")
        b = got[0]["body"]
        check(b.get("note") == odd["note"] and b.get("nested") == odd["nested"],
              "out-of-shape body changed on the way: %r" % b)
        check(not got[0].get("template"), "out-of-shape note went templated")

        # note.template before the first templated note.add; every template request valid
        entries = sim.request_log()
        first_tmpl = first_templated = None
        for i, e in enumerate(entries):
            req = e.get("req") or {}
            if req.get("req") == "note.template" or req.get("cmd") == "note.template":
                probs = validate_exchange(e["req_raw"], e.get("rsp_raw"))
                check(not probs, "note.template invalid: %s" % probs)
                check(" " not in e["req_raw"].strip(), "request not compact: %r" % e["req_raw"])
                if req.get("file") == "sensors.qo" and "body" in req and first_tmpl is None:
                    first_tmpl = i
                    log("template:", e["req_raw"].strip())
            if req.get("req") == "note.add" and req.get("file") == "sensors.qo" and \
                    (e.get("rsp") or {}).get("template") and first_templated is None:
                first_templated = i
        check(first_tmpl is not None, "no note.template for sensors.qo")
        check(first_templated is not None, "no templated note.add for sensors.qo")
        check(first_tmpl < first_templated, "note.add templated before note.template")
        body = entries[first_tmpl]["req"]["body"]
        check(set(body) == {"k", "temp", "hum", "ok", "state", "_id"}, "learned fields %r" % body)
        check(body["ok"] is True and body["temp"] == 14.1 and body["state"] == "8",
              "learned hints %r" % body)
        check(isinstance(body["_id"], str), "_id hint not a string: %r" % body)

        files = sim.files()
        f = files.get("sensors.qo")
        check(f and f["bytes_air"] < f["bytes_json"], "no bytes saved on the air: %r" % f)
        fx = files.get("fixed.qo")
        check(fx and fx["bytes_air"] < fx["bytes_json"], "fixed template saved nothing: %r" % fx)

        # status: bytes per note per notefile
        st = gw.status()["status"]
        nf = st.get("notefiles", {})
        s = nf.get("sensors.qo")
        check(s is not None, "status has no notefiles.sensors.qo: %r" % nf)
        check(s["notes"] == 10, "sensors.qo notes %r" % s)
        check(s["templated"] >= 10 - LEARN - 1 - 3, "too few templated %r" % s)
        check(s["bytes_per_note"] * s["notes"] <= s["bytes"] and s["bytes"] < s["bytes_json"],
              "bytes per note %r" % s)
        check(nf.get("fixed.qo", {}).get("templated") == 1, "fixed.qo %r" % nf.get("fixed.qo"))
        _, text, _ = gw.cli("status")
        check("notefiles" in text and "sensors.qo   10 notes, %d B/note" % s["bytes_per_note"]
              in text, "readable status lacks bytes per note:\n" + text)
        log("status notefiles:", json.dumps(nf))

        # satellite: a body no template can carry is refused at the producer, with why
        rc, msg = send("sat.qo", {"blob": "x" * 300}, ok=False)
        check(rc != 0 and "satellite" in msg and "256" in msg, "big ntn body: rc %d %s" % (rc, msg))
        rc, msg = send("sat.qo", {"a": [1, 2]}, ok=False)
        check(rc != 0 and "satellite" in msg and "flat" in msg, "nested ntn body: %d %s" % (rc, msg))
        send("sat.qo", {"lvl": 3, "ok": True})
        wait_for(lambda: any(ev.get("file") == "sat.qo" for ev in sim.hub_notes()), 30, 0.2,
                 "the satellite note at the hub")
        sat = [e for e in sim.request_log() if (e.get("req") or {}).get("req") == "note.template"
               and e["req"].get("file") == "sat.qo" and "body" in e["req"]]
        check(sat and sat[-1]["req"].get("format") == "compact" and
              1 <= sat[-1]["req"].get("port", 0) <= 100, "ntn template not compact+port: %r" % sat)

        # a template the gateway did not set (left on the card by someone else) refuses a
        # note: the gateway clears it and the note still arrives whole
        gw.cli("req", json.dumps({"req": "note.template", "file": "plain.qo",
                                  "body": {"a": 11}}))
        send("plain.qo", {"b": "not in that template"})
        wait_for(lambda: any(ev.get("file") == "plain.qo" and
                             (ev.get("body") or {}).get("b") == "not in that template"
                             for ev in sim.hub_notes()), 30, 0.2, "plain.qo note at the hub")
        seen = [("add-refused" if "template" in ((e.get("rsp") or {}).get("err") or "")
                 else "add") if e["req"].get("req") == "note.add" else
                ("clear" if "body" not in e["req"] else "set")
                for e in sim.request_log() if (e.get("req") or {}).get("file") == "plain.qo"]
        check(seen[-3:] == ["add-refused", "clear", "add"], "plain.qo exchange %r" % seen)

        # a restart keeps the learned template: the next note goes templated at once
        gw.stop()
        mark = len(sim.request_log())
        gw.start()
        send("sensors.qo", sensor(50))
        wait_for(lambda: any((ev.get("body") or {}).get("k") == 50 for ev in sim.hub_notes()),
                 30, 0.2, "note after restart at the hub")
        after = sim.request_log(since=mark) if mark else sim.request_log()
        adds = [e for e in after if (e.get("req") or {}).get("req") == "note.add"
                and e["req"].get("file") == "sensors.qo" and e["req"].get("body", {}).get("k") == 50]
        check(adds and (adds[-1].get("rsp") or {}).get("template"),
              "first note after a restart not templated: %r" % adds)
        check("using the template learned before" in gw.log_text(), "template not reloaded")
        gw.stop()
    print("PASS: test_templates")


if __name__ == "__main__":
    main()
