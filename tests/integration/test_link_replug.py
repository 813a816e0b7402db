"""A USB Notecard that re-enumerates: the simulator's pty disappears and comes back under
the same stable name (like /dev/ttyACM0 via udev). The daemon shows the card absent, keeps
what is sent meanwhile in the store, finds the card again and delivers everything once."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Daemon, TestDir, check, log, wait_for  # noqa: E402
from sim import Sim  # noqa: E402


def status(gw):
    st = gw.status()
    return st.get("status", st)


def main():
    with TestDir("link-replug") as d:
        link = d.file("ttyACM-notecard")
        with Sim(serial=True, workdir=d.file("sim"), args=["--serial-link", link]) as sim:
            gw = Daemon(d, {"notecard": {"transport": "serial", "device": link,
                                         "poll_interval": "1s", "timing_scale": 5},
                            "update": {"enabled": False}})
            gw.start()
            wait_for(lambda: status(gw)["notecard"].get("state") == "ready", 30, 0.1,
                     "the card ready")
            gw.cli("send", "plug.qo", json.dumps({"n": 1}))
            wait_for(lambda: status(gw)["store"]["queued"] == 0, 30, 0.1, "the first note sent")

            sim.control("unplug", seconds=4)
            wait_for(lambda: status(gw)["notecard"]["state"] == "absent", 30, 0.1,
                     "the card shown absent")
            st = status(gw)["notecard"]
            check("retry_in_ms" in st and st.get("error"), "absent card has error and retry: %s"
                  % st)
            gw.cli("send", "plug.qo", json.dumps({"n": 2}))
            check(status(gw)["store"]["queued"] == 1, "the note waits in the store")
            wait_for(lambda: status(gw)["notecard"]["state"] == "ready", 60, 0.2,
                     "the card found again")
            wait_for(lambda: status(gw)["store"]["queued"] == 0, 30, 0.1, "the held note sent")
            sim.sync()
            got = sorted(e["body"]["n"] for e in sim.hub_notes() if e.get("file") == "plug.qo")
            check(got == [1, 2], "both notes at the hub once: %s" % got)
            gw.stop()
            log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
