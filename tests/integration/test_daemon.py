"""The daemon core: --version, --check-config, the control socket and its access
rules, and the plugin loader's refusals (wrong ABI, failing configure and start)."""
import json
import os
import pwd
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGWD, Daemon, TestDir, check, fail, log, plugin_so, render_config  # noqa: E402


def run(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, **kw)


def base(d):
    return {"notecard": {"transport": "serial", "device": d.file("no-card"), "poll_interval": "1s"}}


def test_version():
    p = run(NOTEGWD, "--version")
    check(p.returncode == 0 and p.stdout.startswith("notegwd "), "--version: %r" % (p.stdout,))


def test_check_config(d):
    good = d.file("good.conf")
    with open(good, "w") as f:
        f.write(render_config({"notecard": {"transport": "serial", "device": "/dev/ttyACM0"},
                               "store": {"path": d.file("s.db"), "max_size": "16M", "when_full": "refuse-new"},
                               "daemon": {"plugin_dir": d.file("none")}}))
    p = run(NOTEGWD, "--check-config", "-c", good)
    check(p.returncode == 0, "valid config refused: %s" % p.stderr)

    bad = d.file("bad.conf")
    with open(bad, "w") as f:
        f.write("[notecard]\ntransport = serial\n\n[store]\npath = /tmp/x.db\nbogus = 1\n")
    p = run(NOTEGWD, "--check-config", "-c", bad)
    check(p.returncode != 0, "unknown key accepted")
    check("%s:6:" % bad in p.stderr and "bogus" in p.stderr, "error does not name FILE:LINE and key: %r" % p.stderr)

    with open(bad, "w") as f:
        f.write("[notecard]\ntransport = carrier-pigeon\n")
    p = run(NOTEGWD, "--check-config", "-c", bad)
    check(p.returncode != 0 and "%s:2:" % bad in p.stderr, "bad enum not reported at FILE:LINE: %r" % p.stderr)

    with open(bad, "w") as f:
        f.write("[nosuchsection]\nx = 1\n")
    p = run(NOTEGWD, "--check-config", "-c", bad)
    check(p.returncode != 0 and "%s:1:" % bad in p.stderr, "unknown section not reported: %r" % p.stderr)

    # A plugin's own section is checked by the plugin.
    pd = d.file("plugins")
    os.makedirs(pd, exist_ok=True)
    os.symlink(plugin_so("example"), os.path.join(pd, "example.so"))
    with open(bad, "w") as f:
        f.write("[daemon]\nplugin_dir = %s\n[example]\nenabled = true\nnonsense = 3\n" % pd)
    p = run(NOTEGWD, "--check-config", "-c", bad)
    check(p.returncode != 0 and "%s:5:" % bad in p.stderr, "plugin key error not reported: %r" % p.stderr)

    p = run(NOTEGWD, "--check-config", "-c", d.file("missing.conf"))
    check(p.returncode != 0, "missing file accepted")


def test_status_and_access(d):
    gw = Daemon(d, base(d), plugins=["example"], name="access")
    gw.sections["example"] = {"file": d.file("example.events")}
    gw.write_config()
    gw.start()
    st = gw.status()
    check(st["status"]["daemon"]["pid"] == gw.proc.pid, "status does not describe the daemon: %r" % st)
    check(st["status"]["plugins"]["example"]["state"] == "running", "example plugin not running: %r" % st)
    rc, out, _ = gw.cli("status")
    check(rc == 0 and "store" in out.lower(), "readable status missing: %r" % out)

    # A peer without rights: 'nobody' is neither root nor in the service groups.
    nobody = pwd.getpwnam("nobody")
    if os.geteuid() == 0:
        os.chmod(os.path.dirname(gw.dir), 0o755)
        os.chmod(gw.dir, 0o755)
        os.chmod(gw.socket, 0o777)  # let it connect; the daemon must still refuse it
        p = subprocess.run([gw_cli_path(), "-s", gw.socket, "status"], capture_output=True, text=True,
                           user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], timeout=30)
        check(p.returncode == 1, "unprivileged peer was not refused (rc %d): %s %s" % (p.returncode, p.stdout, p.stderr))
        check("denied" in p.stderr.lower() or "permission" in p.stderr.lower(),
              "refusal does not say why: %r" % p.stderr)
        p = subprocess.run([gw_cli_path(), "-s", gw.socket, "send", "x.qo", "{}"], capture_output=True, text=True,
                           user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], timeout=30)
        check(p.returncode == 1, "unprivileged send was not refused")
    else:
        log("not root: the refusal of another uid is checked in tests/unit/test_control")

    rc = gw.stop()
    check(rc == 0, "notegwd exited %s on SIGTERM" % rc)
    with open(d.file("example.events")) as f:
        kinds = [json.loads(line)["event"] for line in f]
    check(kinds[0] == "start" and kinds[-1] == "stop", "plugin not started and stopped: %r" % kinds)


def gw_cli_path():
    from harness import NOTEGW
    return NOTEGW


def test_plugin_refusals(d):
    gw = Daemon(d, base(d), plugins=["example"], name="refusals")
    bad = plugin_so("badabi")
    check(bad is not None, "badabi test plugin not built")
    os.symlink(bad, os.path.join(gw.plugin_dir, "badabi.so"))
    gw.sections["example"] = {"fail": "start"}
    gw.write_config()
    gw.start()
    st = gw.status()["status"]
    plugins = st["plugins"]
    check("badabi" not in plugins, "plugin with a wrong ABI was loaded: %r" % plugins)
    check(plugins["example"]["state"] == "failed", "plugin whose start failed is %r" % plugins["example"])
    log_text = gw.log_text()
    check("ABI 99.0" in log_text and "refused" in log_text, "ABI refusal not logged clearly")
    check("example: start failed" in log_text, "start failure not logged")
    check(gw.stop() == 0, "daemon did not stop cleanly after a plugin failure")

    # A plugin whose configure fails is unloaded; the daemon goes on.
    gw2 = Daemon(d, base(d), plugins=["example"], name="cfgfail")
    gw2.sections["example"] = {"fail": "configure"}
    gw2.write_config()
    p = run(NOTEGWD, "--check-config", "-c", gw2.config)
    check(p.returncode != 0 and "asked to fail" in p.stderr, "configure failure not reported by --check-config")


def main():
    test_version()
    with TestDir("daemon") as d:
        test_check_config(d)
        test_status_and_access(d)
        test_plugin_refusals(d)
    print("PASS: test_daemon")


if __name__ == "__main__":
    main()
