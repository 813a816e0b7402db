"""SIGTERM stops the daemon while a request waits on a card that went silent: the
link abandons the transaction instead of sitting out its 30 s response timeout and
its retries (systemd would otherwise kill it), and what was queued stays queued."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGW, Daemon, TestDir, check, log, wait_for  # noqa: E402
from sim import Sim  # noqa: E402


def main():
    with TestDir("stop") as d, Sim(serial=True, workdir=d.file("sim")) as sim:
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                     "poll_interval": "1s"},
                        "hub": {"mode": "off"}, "update": {"enabled": False}})
        gw.start()
        wait_for(lambda: gw.status()["status"]["notecard"]["state"] == "ready", 30, 0.1, "the card")
        sim.gone(120)  # deaf: a request now waits for an answer that never comes
        req = subprocess.Popen([NOTEGW, "-s", gw.socket, "req", '{"req":"card.version"}'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        gw.cli("send", "held.qo", json.dumps({"held": True}))
        time.sleep(1.5)  # the request is on the wire and waiting
        t0 = time.monotonic()
        rc = gw.stop(timeout=10)
        took = time.monotonic() - t0
        check(rc == 0, "notegwd exited %s" % rc)
        log("stopped %.1f s after SIGTERM with a request waiting on a silent card" % took)
        out, err = req.communicate(timeout=10)
        check(req.returncode != 0, "the abandoned request claimed success: %s" % out)
        sim.back()
        gw.start()
        _, out, _ = gw.cli("queue", "--json")
        files = {f["file"]: f["count"] for f in json.loads(out)["files"]}
        check(files.get("held.qo") == 1, "the queued note did not survive the stop: %r" % files)
        gw.stop()
    print("PASS: test_stop")


if __name__ == "__main__":
    main()
