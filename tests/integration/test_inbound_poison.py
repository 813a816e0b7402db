"""An inbound note the daemon cannot parse must not block the notes behind it: notegwd
against notecard-sim over serial. A note whose body holds a \\u0000 (which the daemon's
JSON parser refuses) waits on the card ahead of an ordinary command note. The command
arrives; the bad note is taken off the card, its raw text kept in the audit log
(inbound-quarantined), counted in `notegw status` and logged."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, wait_for  # noqa: E402
from sim import Sim  # noqa: E402


def main():
    with TestDir("inbound-poison") as d:
        with Sim(serial=True, workdir=d.file("sim")) as s:
            gw = Daemon(d, {"notecard": {"transport": "serial", "device": s.serial_path,
                                         "poll_interval": "1s"},
                            "hub": {"mode": "continuous"}})
            gw.start()
            wait_for(lambda: gw.status()["status"]["notecard"]["state"] == "ready", 20, 0.2, "the card ready")
            s.inject("cmd.qi", {"valve": "x\u0000y"}, now=True)
            s.inject("cmd.qi", {"valve": "open"}, now=True)

            def arrived():
                st = gw.status()["status"]
                return st["store"]["inbound"] >= 1 and \
                    st["link"]["counters"].get("inbound_quarantined", 0) >= 1
            wait_for(arrived, 30, 0.3, "the good note stored and the bad one quarantined")
            st = gw.status()["status"]
            check(st["store"]["inbound"] == 1, "inbound notes stored: %r" % st["store"])
            check(st["link"]["counters"]["inbound_quarantined"] == 1, "quarantined: %r" % st["link"])
            check(st["notecard"]["state"] == "ready", "the card was taken for failed: %r" % st["notecard"])
            _, out, _ = gw.cli("audit", "--json")
            rows = json.loads(out).get("audit") or json.loads(out).get("entries")
            q = [r for r in rows if r["action"] == "inbound-quarantined"]
            check(len(q) == 1 and "cmd.qi" in q[0]["detail"] and "\\u0000" in q[0]["detail"],
                  "the raw text in the audit log: %r" % q)
            text = gw.log_text()
            check("taken off the card" in text, "no log line for the quarantined note")
            gw.stop()
    print("PASS")


if __name__ == "__main__":
    main()
