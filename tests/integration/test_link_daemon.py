"""The link end to end: notegwd against notecard-sim over serial (the simulator's pty) and
over I2C (the LD_PRELOAD shim, the daemon's real i2c-dev code unchanged).
- `notegw req '{"req":"card.version"}'` answers;
- hub.set made to agree with [hub] once, not rewritten by a restart, redone on SIGHUP;
- `notegw status` shows the card (UID, SKU, firmware, signal) and the hub;
- with 20% injected {io} errors every queued note reaches the hub exactly once after the
  faults stop;
- an inbound note lands in the store and leaves the card; a .db note is stored once;
- a card that vanishes is shown absent, notes wait in the store, and flow when it returns;
- no request the daemon sent fails the Notecard API check (api.json)."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, Daemon, TestDir, check, log, wait_for  # noqa: E402
from sim import Sim, shim_path, validate_log  # noqa: E402

PRODUCT = "com.example.test:gateway"


def hub_events(sim, file):
    return [e for e in sim.hub_notes() if e.get("file") == file]


def count_requests(sim, name):
    n = 0
    for e in sim.request_log():
        req = e.get("req")
        if isinstance(req, str):
            try:
                req = json.loads(req)
            except ValueError:
                continue
        if isinstance(req, dict) and req.get("req") == name:
            n += 1
    return n


def status(gw):
    st = gw.status()
    return st.get("status", st)


def run(transport):
    with TestDir("link-" + transport) as d, \
            Sim(serial=transport == "serial", i2c=transport == "i2c",
                workdir=d.file("sim")) as sim:
        nc = {"poll_interval": "1s", "timing_scale": 5}
        env = None
        if transport == "serial":
            nc.update({"transport": "serial", "device": sim.serial_path})
        else:
            nc.update({"transport": "i2c", "device": "/dev/i2c-1", "address": "0x17"})
            env = sim.i2c_env(NOTEGWD)
        gw = Daemon(d, {"notecard": nc, "hub": {"product": PRODUCT, "mode": "continuous"},
                        "update": {"enabled": False}}, env=env)
        gw.start()

        # a raw request answers
        _, out, _ = gw.cli("req", '{"req":"card.version"}')
        check("dev:" in out, "%s: card.version answered: %r" % (transport, out))

        # status: card and hub, once the link has probed
        def ready():
            st = status(gw)
            c = st.get("notecard", {})
            return st if c.get("state") == "ready" and c.get("uid") else None
        st = wait_for(ready, 30, 0.1, "the link to report the card ready")
        c = st["notecard"]
        check(c.get("sku") and c.get("firmware"), "%s: status has SKU and firmware: %s"
              % (transport, c))
        wait_for(lambda: "signal" in status(gw).get("notecard", {}), 30, 0.2,
                 "signal in status")
        check(status(gw)["hub"].get("product") == PRODUCT, "%s: hub product in status"
              % transport)

        # hub.set once; a restart agrees without writing
        sets = count_requests(sim, "hub.set")
        check(sets == 1, "%s: one hub.set on first start (got %d)" % (transport, sets))
        gw.stop()
        gw.start()
        wait_for(ready, 30, 0.1, "the link ready after restart")
        check(count_requests(sim, "hub.set") == 1, "%s: no hub.set after restart" % transport)

        # a reload with another hub mode: hub.set again, with just that key
        gw.sections["hub"]["mode"] = "periodic"
        gw.write_config()
        gw.signal(signal.SIGHUP)
        wait_for(lambda: count_requests(sim, "hub.set") == 2, 30, 0.2, "hub.set after SIGHUP")
        last = [e for e in sim.request_log()
                if isinstance(e.get("req"), dict) and e["req"].get("req") == "hub.set"][-1]
        check(last["req"].get("mode") == "periodic" and "product" not in last["req"],
              "%s: reload set only the mode: %s" % (transport, last["req"]))

        # 20% {io}: every note arrives once the faults stop
        sim.fault("io", p=0.2)
        for i in range(20):
            gw.cli("send", "io.qo", json.dumps({"i": i}))
        wait_for(lambda: status(gw)["store"]["queued"] == 0, 60, 0.2,
                 "the store to drain under {io}")
        sim.clear_faults()
        sim.sync()
        ev = hub_events(sim, "io.qo")
        got = sorted(e["body"]["i"] for e in ev)
        check(got == list(range(20)), "%s: 20 notes once each at the hub: %s" % (transport, got))
        ids = [e["body"].get("_id") for e in ev]
        check(len(set(ids)) == 20 and all(ids), "%s: each carries its own _id" % transport)

        # inbound: into the store, then off the card
        before = status(gw)["store"]["inbound"]
        sim.inject("data.qi", {"cmd": "open"}, now=True)
        wait_for(lambda: status(gw)["store"]["inbound"] > before, 30, 0.2,
                 "the inbound note in the store")
        wait_for(lambda: sim.files().get("data.qi", {}).get("total", 0) == 0, 30, 0.2,
                 "the inbound note deleted from the card")

        # a database notefile: its notes land once, however often it is looked at again
        before = status(gw)["store"]["inbound"]
        sim.inject("cfg.db", {"rate": 5}, note="settings", now=True)
        wait_for(lambda: status(gw)["store"]["inbound"] == before + 1, 30, 0.2,
                 "the .db note in the store")
        seen = count_requests(sim, "note.changes")
        wait_for(lambda: count_requests(sim, "note.changes") >= seen + 2, 30, 0.2,
                 "two more looks at cfg.db")
        check(status(gw)["store"]["inbound"] == before + 1,
              "%s: the .db note stored once" % transport)

        # the card vanishes: shown, notes wait, then flow
        sim.gone(12)
        wait_for(lambda: status(gw)["notecard"]["state"] in ("absent", "not answering"), 30,
                 0.2, "the link to notice the card is gone")
        gw.cli("send", "gone.qo", '{"during":"outage"}')
        check(status(gw)["store"]["queued"] >= 1, "%s: note kept while the card is gone"
              % transport)
        wait_for(lambda: status(gw)["notecard"]["state"] == "ready", 60, 0.2,
                 "the link to find the card again")
        wait_for(lambda: status(gw)["store"]["queued"] == 0, 30, 0.2, "the held note sent")
        sim.sync()
        check(len(hub_events(sim, "gone.qo")) == 1, "%s: held note reached the hub" % transport)

        gw.stop()
        if transport == "i2c":
            c = sim.counters()
            check(c.get("i2c_unrequested_reads", 0) == 0 and
                  c.get("i2c_protocol_errors", 0) == 0,
                  "i2c: no read without a [0][n] request (%d), no protocol errors (%d)"
                  % (c.get("i2c_unrequested_reads", 0), c.get("i2c_protocol_errors", 0)))
        problems = validate_log(sim.log_path)
        check(not problems, "%s: schema problems: %s" % (transport, problems[:5]))
        log("%s: ok" % transport)


def main():
    run("serial")
    if shim_path() is None:
        print("SKIP: i2c half: libi2cshim.so is not built")
    else:
        run("i2c")
    return 0


if __name__ == "__main__":
    sys.exit(main())
