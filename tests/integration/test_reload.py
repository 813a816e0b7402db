"""A reload (SIGHUP) checks the file exactly as --check-config and a start do: an
unknown section, or an unknown key under a disabled plugin's section, is refused as
a whole. The daemon keeps running on the old configuration, logs each problem as
FILE:LINE and records the refusal in the audit log; the good file then reloads."""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, Daemon, TestDir, check, fail, render_config, wait_for  # noqa: E402


def reloads(gw):
    return gw.status()["status"]["daemon"]["reloads"]


def refusals(gw):
    _, out, _ = gw.cli("audit", "--json")
    return [r for r in json.loads(out)["audit"] if r["action"] == "reload-refused"]


def hup_until(gw, what):
    at = len(gw.log_text())
    gw.signal(signal.SIGHUP)
    wait_for(lambda: what in gw.log_text()[at:], 20, 0.1, "'%s' after SIGHUP" % what)
    return gw.log_text()[at:]


def refused_everywhere(gw, text, problem):
    """text has one problem, on the line holding `problem`'s key or section: the
    check, a fresh start and a reload all refuse it at that FILE:LINE."""
    good = render_config(gw.sections)
    with open(gw.config, "w") as f:
        f.write(text)
    line = 1 + next(i for i, s in enumerate(text.splitlines()) if problem[1] in s)
    where = "%s:%d:" % (gw.config, line)

    p = subprocess.run([NOTEGWD, "--check-config", "-c", gw.config], capture_output=True, text=True,
                       timeout=60)
    check(p.returncode != 0 and where in p.stderr and problem[0] in p.stderr,
          "--check-config did not refuse %s at %s: %r" % (problem[0], where, p.stderr))
    try:
        p = subprocess.run([NOTEGWD, "-f", "-c", gw.config], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        fail("a fresh start accepted %s" % problem[0])
    check(p.returncode != 0 and where in p.stderr, "a fresh start did not refuse at %s: %r" % (where, p.stderr))

    n, audited = reloads(gw), len(refusals(gw))
    out = hup_until(gw, "reload refused")
    check(where in out and problem[0] in out, "the refusal does not log %s %s: %r" % (where, problem[0], out))
    check("configuration reloaded" not in out, "a refused reload says it reloaded: %r" % out)
    check(gw.proc.poll() is None, "the daemon stopped on a refused reload")
    check(reloads(gw) == n, "a refused reload was taken")
    rows = refusals(gw)  # newest first
    check(len(rows) == audited + 1 and where in rows[0]["detail"],
          "the audit log does not record the refusal at %s: %r" % (where, rows))

    with open(gw.config, "w") as f:
        f.write(good)
    hup_until(gw, "configuration reloaded")
    check(reloads(gw) == n + 1, "the good file's reload was not counted")


def main():
    with TestDir("reload") as d:
        gw = Daemon(d, {"notecard": {"transport": "serial", "device": d.file("no-card"),
                                     "poll_interval": "1s"},
                        "example": {"enabled": False},
                        "update": {"enabled": False}}, plugins=["example"])
        gw.start()
        plugins = gw.status()["status"]["plugins"]
        check(plugins["example"]["state"] == "disabled", "example plugin not disabled: %r" % plugins)
        good = render_config(gw.sections)

        refused_everywhere(gw, good + "[nosuchsection]\nx = 1\n",
                           ("unknown section [nosuchsection]", "[nosuchsection]"))
        # The disabled plugin still owns and checks its section.
        text = good.replace("[example]\n", "[example]\nnonsense = 3\n")
        refused_everywhere(gw, text, ("unknown key 'nonsense' in [example]", "nonsense = 3"))
        check(gw.stop() == 0, "daemon did not stop cleanly")
    print("PASS: test_reload")


if __name__ == "__main__":
    main()
