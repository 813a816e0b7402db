"""The link's request layer and both transports against notecard-sim, byte for byte:
serial over the simulator's pty and I2C through the LD_PRELOAD shim (the real i2c-dev
code unchanged). Requests of the framing's edge sizes arrive intact; under each injected
fault every request is still answered; with 20% {io} every note arrives exactly once; every
request sent and answer received fits the Notecard API description (api.json)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ["top_srcdir"], "tests", "lib"))
from sim import Sim, shim_path, validate_log  # noqa: E402

BUILD = os.environ["top_builddir"]
CARDREQ = os.path.join(BUILD, "tests", "lib", "cardreq")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run(transport, device, requests, env=None):
    """Send requests through cardreq; returns (results, counters)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in requests)
    p = subprocess.run([CARDREQ, transport, device, "5"], input=text, capture_output=True,
                       text=True, env=e, timeout=120)
    if p.returncode != 0:
        raise SystemExit("cardreq failed: %s" % p.stderr)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    return lines[:-1], lines[-1]["counters"]


def note(i, size=40):
    return {"req": "note.add", "file": "data.qo", "body": {"i": i, "pad": "x" * size}}


def data_total(sim):
    return sim.files().get("data.qo", {}).get("total", 0)


def exercise(transport, sim, device, env=None, extra_faults=()):
    # card.version answers
    res, _ = run(transport, device, [{"req": "card.version"}], env)
    check(res[0]["rc"] == 0 and "device" in res[0]["rsp"], "%s: card.version" % transport)

    # request sizes around the chunk and segment edges: each arrives whole (the card
    # parses it and stores the body; an altered byte would fail its crc)
    edges = []
    for total in (250, 251, 253, 255, 256, 600, 1200):
        base = len(json.dumps(note(0, 0), separators=(",", ":"))) + 23  # crc field + '\n'
        edges.append(note(total, max(0, total - base)))
    before = data_total(sim)
    res, _ = run(transport, device, edges, env)
    check(all(r["rc"] == 0 and "err" not in r["rsp"] for r in res),
          "%s: edge-size requests answered without error: %s" % (transport, res))
    check(data_total(sim) == before + len(edges), "%s: edge-size notes all stored" % transport)

    # an answer larger than one chunk and one segment: note.get of a big inbound note
    sim.inject("big.qi", {"blob": "y" * 700}, now=True)
    res, _ = run(transport, device, [{"req": "note.get", "file": "big.qi"}], env)
    check(res[0]["rc"] == 0 and res[0]["rsp"].get("body", {}).get("blob") == "y" * 700,
          "%s: 700-byte answer read whole" % transport)

    # {io} 20%: every note answered and stored exactly once (an {io} answer means the card
    # did not execute it)
    sim.fault("io", p=0.2)
    before = data_total(sim)
    res, cnt = run(transport, device, [note(i) for i in range(30)], env)
    sim.clear_faults()
    check(all(r["rc"] == 0 and "err" not in r["rsp"] for r in res),
          "%s: every note answered under 20%% {io}" % transport)
    check(data_total(sim) == before + 30, "%s: 30 notes stored once under {io} (got %d)"
          % (transport, data_total(sim) - before))
    check(cnt["io_errors"] > 0 and cnt["retries"] >= cnt["io_errors"],
          "%s: {io} answers were retried (%s)" % (transport, cnt))

    # transport faults: the answer is damaged or lost, the request was executed; the
    # layer resyncs and retries, so every request gets its answer
    for fault in ("garble", "drop", "crc", "reset") + tuple(extra_faults):
        sim.fault(fault, p=0.25, count=2)  # the count makes sure it fires
        res, cnt = run(transport, device, [{"req": "card.status"} for _ in range(12)], env)
        fired = sim.control("faults")["fired"].get(fault, 0)
        sim.clear_faults()
        check(all(r["rc"] == 0 and "err" not in r["rsp"] for r in res),
              "%s: every request answered under %s: %s" % (transport, fault,
                                                             [r["rc"] for r in res]))
        # it may strike a resync's drain (absorbed there) or an answer (retried)
        check(fired > 0, "%s: the %s fault fired (%s)" % (transport, fault, cnt))

    # schema: every request the layer built and every answer
    problems = validate_log(sim.log_path, skip_unparsable=True)
    check(not problems, "%s: schema problems: %s" % (transport, problems[:5]))


def main():
    if not os.path.exists(CARDREQ):
        print("cardreq not built")
        return 1
    with Sim(serial=True) as s:
        exercise("serial", s, s.serial_path)
    if shim_path() is None:
        print("SKIP i2c half: libi2cshim.so is not built in this tree")
    else:
        with Sim(i2c=True) as s:
            exercise("i2c", s, "/dev/i2c-1", s.i2c_env(CARDREQ),
                     extra_faults=("nack", "short_read", "bad_sent"))
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
