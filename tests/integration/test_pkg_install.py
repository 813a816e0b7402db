"""Install, upgrade under load and purge the built Debian packages on this machine.

Run by tools/ci-pkg.sh (NOTEGW_DEBS = the directory holding the .debs), on a
throwaway machine only: it really runs dpkg -i, twice, and dpkg --purge. There is
no systemd here, so the test does what the unit would: it starts the installed
notegwd as the notegw user against the installed notecard-sim, and on upgrade
stops the old daemon and starts the new one where postinst would restart it.

Checks: the user, groups, modes and directories the packages promise; a producer
keeps sending notes through `notegw send` across the upgrade and every note it
was told was accepted reaches the simulated Notehub (nothing lost); mosquitto,
started as root with the package's example configuration, drops to its own user
and its broker plugin commits into the daemon's store (through the notegw-store
group) before and after the upgrade, and can read the notefile rules the daemon
writes beside it; a store left where earlier releases kept it
is taken along by the new daemon; purge removes the state, the configuration and
the statoverride, and leaves what Debian policy leaves (the system user and
group)."""
import glob
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

DEBS = os.environ.get("NOTEGW_DEBS")
PKGS = ["notegw-mqtt", "notegw-mqtt-broker", "notegw-modbus", "notegw-dev", "notegw"]
DROPIN = "/etc/notegw/conf.d/90-pkgtest.conf"
QUEUE = "/var/lib/notegw/queue"
STORE = QUEUE + "/store.db"
LEGACY_STORE = "/var/lib/notegw/store.db"  # where releases before the queue directory kept it
BROKER_EXAMPLE = "/usr/share/doc/notegw-mqtt-broker/examples/notegw.conf"
SOCK = "/run/notegw/control.sock"
SUFFIX = "+pkgtest1"
WANTS = ("/etc/systemd/system/multi-user.target.wants/notegwd.service",
         "/etc/systemd/system/paths.target.wants/notegw-update.path")
procs = []
stop = threading.Event()  # ends the producer, also when the test fails


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def fail(msg):
    log("FAIL:", msg)
    raise SystemExit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def run(*cmd, ok=True, timeout=300, **kw):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if ok and p.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    return p


def dpkg(*args):
    """dpkg, waiting out another dpkg or apt holding the lock (a shared machine)."""
    end = time.monotonic() + 120
    while True:
        p = run("dpkg", *args, ok=False)
        if p.returncode == 0 or "lock" not in p.stderr or time.monotonic() > end:
            break
        time.sleep(1)
    if p.returncode != 0:
        fail("dpkg %s exited %d:\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            fail("timed out waiting for " + what)
        time.sleep(0.1)


def mode_owner(path):
    st = os.stat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


def installed(pkg):
    p = run("dpkg-query", "-W", "-f=${Status} ${Version}", pkg, ok=False)
    return p.stdout.split()[-1] if p.returncode == 0 and " installed " in p.stdout + " " else None


def purge_all():
    present = [p for p in PKGS if run("dpkg-query", "-W", p, ok=False).returncode == 0]
    if present:
        dpkg("--purge", *present)


def as_notegw(*cmd):
    """The unit's User=/Group= and the groups of notegw, without systemd."""
    return ["setpriv", "--reuid=notegw", "--regid=notegw", "--init-groups",
            "--inh-caps=-all", "--"] + list(cmd)


def bumped(debs, work):
    """The same packages as version X+pkgtest1: a real upgrade, without rebuilding."""
    out = []
    for deb in debs:
        d = os.path.join(work, os.path.basename(deb) + ".d")
        run("dpkg-deb", "-R", deb, d)
        ctl = os.path.join(d, "DEBIAN", "control")
        with open(ctl) as f:
            text = f.read()
        fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
        v = fields["Version"]
        text = text.replace("Version: " + v, "Version: " + v + SUFFIX)
        text = text.replace("(= %s)" % v, "(= %s%s)" % (v, SUFFIX))
        with open(ctl, "w") as f:
            f.write(text)
        new = os.path.join(work, os.path.basename(deb).replace("_" + v + "_", "_" + v + SUFFIX + "_"))
        run("dpkg-deb", "-Zgzip", "-b", d, new)
        out.append(new)
    return out


def gw_status():
    p = run("/usr/bin/notegw", "-s", SOCK, "status", "--json", ok=False)
    try:
        s = json.loads(p.stdout) if p.returncode == 0 else {}
    except ValueError:
        return {}
    return s.get("status", s)


def free_port():
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        return so.getsockname()[1]


class Mosquitto:
    """mosquitto as its unit runs it: started as root, it drops to the mosquitto user
    (and that user's groups) before it loads plugins. The configuration is the
    broker package's example, on a loopback port of the test's own."""

    def __init__(self, work, port, example):
        self.dir = os.path.join(work, "mosquitto")
        os.makedirs(self.dir, exist_ok=True)
        shutil.chown(self.dir, "mosquitto", "mosquitto")
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(example) as f:
            text = f.read()
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nuser mosquitto\n"
                    "persistence_location %s/\n%s" % (port, self.dir, text))
        self.port = port
        self.logpath = os.path.join(work, "mosquitto.log")
        self.p = None

    def start(self):
        self.p = subprocess.Popen(["mosquitto", "-c", self.conf, "-v"], stdout=subprocess.DEVNULL,
                                  stderr=open(self.logpath, "a"))
        procs.append(self.p)

        def up():
            if self.p.poll() is not None:
                return True
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return True
            except OSError:
                return False
        wait_for(up, 20, "mosquitto to listen")
        if self.p.poll() is not None:
            fail("mosquitto exited %d; log:\n%s" % (self.p.returncode, open(self.logpath).read()[-3000:]))

    def stop(self):
        self.p.terminate()
        self.p.wait(20)

    def publish(self, topic, payloads):
        """QoS 1: mosquitto_pub exits 0 once every message was acknowledged, and the
        plugin lets mosquitto acknowledge only what it committed."""
        for m in payloads:
            p = run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1",
                    "-t", topic, "-m", m, ok=False)
            if p.returncode != 0:
                fail("mosquitto_pub %s exited %d: %s\nmosquitto log:\n%s" % (
                    m, p.returncode, p.stderr, open(self.logpath).read()[-3000:]))


class Gateway:
    """The installed daemon, run the way notegwd.service runs it."""

    def __init__(self, logpath):
        self.logpath = logpath
        self.p = None

    def start(self):
        # RuntimeDirectory=notegw
        os.makedirs("/run/notegw", exist_ok=True)
        shutil.chown("/run/notegw", "notegw", "notegw")
        os.chmod("/run/notegw", 0o755)
        logf = open(self.logpath, "a")
        self.p = subprocess.Popen(as_notegw("/usr/sbin/notegwd", "-f"), stdout=logf,
                                  stderr=subprocess.STDOUT)
        procs.append(self.p)
        wait_for(lambda: self.p.poll() is not None or
                 run("/usr/bin/notegw", "-s", SOCK, "status", "--json", ok=False).returncode == 0,
                 30, "notegwd to answer on its control socket")
        if self.p.poll() is not None:
            fail("notegwd exited %d; log:\n%s" % (self.p.returncode, open(self.logpath).read()[-3000:]))

    def stop(self):
        """systemctl stop: SIGTERM, then the daemon drains and exits 0."""
        self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(30)
        check(rc == 0, "notegwd exited %d on SIGTERM" % rc)


def main():
    if not DEBS:
        print("SKIP: run by tools/ci-pkg.sh, which builds the packages (NOTEGW_DEBS)")
        raise SystemExit(77)
    if os.environ.get("CI") != "true" and os.environ.get("NOTEGW_PKG_TEST") != "1":
        print("SKIP: installs and purges notegw on this machine; only with CI=true or "
              "NOTEGW_PKG_TEST=1 (a throwaway machine)")
        raise SystemExit(77)
    check(os.geteuid() == 0, "needs root (dpkg -i)")
    debs = sorted(d for d in glob.glob(os.path.join(DEBS, "*.deb")) if "-dbgsym_" not in d)
    names = {os.path.basename(d).split("_")[0] for d in debs}
    check(set(PKGS) <= names, "missing packages: %s" % sorted(set(PKGS) - names))
    work = tempfile.mkdtemp(prefix="notegw-pkgtest.")
    os.chmod(work, 0o755)
    try:
        test(debs, work)
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.path.exists(DROPIN):
            os.unlink(DROPIN)
        purge_all()
        if os.environ.get("NOTEGW_PKG_KEEP") == "1":
            log("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def test(debs, work):
    purge_all()  # a previous run's leftovers
    groups_before = {g.gr_name for g in grp.getgrall()}

    # --- 1. install --------------------------------------------------------------
    # notegw alone first: a gateway without plugins must start from the shipped
    # configuration (a plugin's section is an error while the plugin is absent).
    main_deb = [d for d in debs if os.path.basename(d).startswith("notegw_")]
    dpkg("-i", *main_deb)
    p = run("/usr/sbin/notegwd", "--check-config", ok=False)
    check(p.returncode == 0, "the shipped configuration fails without plugins:\n" + p.stderr)
    dpkg("-i", *debs)
    version = installed("notegw")
    check(version, "notegw not installed after dpkg -i")
    u = pwd.getpwnam("notegw")
    check(u.pw_uid < 1000 and u.pw_shell == "/usr/sbin/nologin" and u.pw_dir == "/var/lib/notegw",
          "notegw is not a locked system user: %r" % (u,))
    check(grp.getgrnam("notegw-admin"), "no notegw-admin group")
    groups_after = {g.gr_name for g in grp.getgrall()}
    for g in ("i2c", "gpio", "dialout"):
        if g in groups_before:
            check("notegw" in grp.getgrnam(g).gr_mem, "notegw not in " + g)
        else:
            check(g not in groups_after, "the package created the group " + g)
    check(mode_owner("/etc/notegw") == (0o755, "root", "root"), "/etc/notegw: %r" % (mode_owner("/etc/notegw"),))
    check(mode_owner("/etc/notegw/notegw.conf") == (0o640, "root", "notegw"),
          "notegw.conf: %r" % (mode_owner("/etc/notegw/notegw.conf"),))
    # The state directory can be passed (not listed) by the broker's user, which
    # reaches the queue through notegw-store; nothing of the daemon's opens to it.
    check(mode_owner("/var/lib/notegw") == (0o711, "notegw", "notegw"),
          "/var/lib/notegw: %r" % (mode_owner("/var/lib/notegw"),))
    check(mode_owner(QUEUE) == (0o2770, "notegw", "notegw-store"),
          "%s: %r" % (QUEUE, mode_owner(QUEUE)))
    store_grp = grp.getgrnam("notegw-store")
    check(set(store_grp.gr_mem) == {"notegw", "mosquitto"},
          "notegw-store members: %r (want notegw and mosquitto)" % (store_grp.gr_mem,))
    check("mosquitto" not in grp.getgrnam("notegw").gr_mem,
          "mosquitto joined the notegw group (it may read all of the daemon's state)")
    check(os.path.exists(BROKER_EXAMPLE), BROKER_EXAMPLE + " not installed")
    for f in ("/lib/systemd/system/notegwd.service", "/usr/lib/sysusers.d/notegw.conf",
              "/usr/share/man/man8/notegwd.8.gz", "/usr/share/bash-completion/completions/notegw",
              "/usr/libexec/notegw/notegw-update-install"):
        check(os.path.exists(f), f + " not installed")
    # Enabled at install (deb-systemd-helper works without a running systemd);
    # the installer unit is only ever started by its path unit.
    for link in WANTS:
        check(os.path.islink(link), "not enabled: " + link)
    check(not glob.glob("/etc/systemd/system/*.wants/notegw-update.service"),
          "notegw-update.service enabled on its own")
    p = run("/usr/sbin/notegwd", "--check-config", ok=False)
    check(p.returncode == 0, "the shipped configuration fails with every plugin:\n" + p.stderr)
    log("installed notegw %s" % version)

    # --- 2. a gateway on the installed simulator --------------------------------
    simdir = os.path.join(work, "sim")
    os.makedirs(simdir)
    shutil.chown(simdir, "notegw", "notegw")
    hub = os.path.join(simdir, "hub.jsonl")
    info = os.path.join(simdir, "info.json")
    sim = subprocess.Popen(as_notegw("/usr/bin/notecard-sim", "--serial", "--hub", hub, "--info", info,
                                     "--state", os.path.join(simdir, "state")),
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "sim.log"), "w"))
    procs.append(sim)
    wait_for(lambda: os.path.exists(info) and os.path.getsize(info) > 0, 20, "the simulator")
    with open(info) as f:
        pty = json.load(f)["serial"]
    broker = Mosquitto(work, free_port(), BROKER_EXAMPLE)
    broker.start()
    with open(DROPIN, "w") as f:
        f.write("[notecard]\ntransport = serial\ndevice = %s\npoll_interval = 1s\ntiming_scale = 5\n\n"
                "[hub]\nmode = continuous\n\n[update]\nenabled = false\n\n"
                "[mqtt]\nport = %d\ningest = broker\n" % (pty, broker.port))
    os.chmod(DROPIN, 0o644)
    p = run("/usr/sbin/notegwd", "--check-config", ok=False)
    check(p.returncode == 0, "the test configuration does not pass --check-config:\n" + p.stderr)
    gw = Gateway(os.path.join(work, "notegwd.log"))
    gw.start()
    # The broker plugin (as mosquitto) and the daemon (as notegw) write one store.
    check(mode_owner(STORE)[0] == 0o660 and mode_owner(STORE)[2] == "notegw-store",
          "%s: %r" % (STORE, mode_owner(STORE)))
    # Its [notefile.*] rules, for the broker plugin: beside the store, readable through
    # notegw-store (mosquitto is not in notegw, checked above).
    rules = QUEUE + "/notefiles.conf"
    check(mode_owner(rules) == (0o640, "notegw", "notegw-store"), "%s: %r" % (rules, mode_owner(rules)))
    check(run("setpriv", "--reuid=mosquitto", "--regid=mosquitto", "--init-groups", "--",
              "cat", rules, ok=False).returncode == 0, "mosquitto cannot read " + rules)
    broker.publish("notecard/out/broker.qo", ['{"b":%d}' % i for i in range(10)])
    wait_for(lambda: (gw_status().get("plugins", {}).get("mqtt", {}).get("broker_plugin") is True),
             30, "the client plugin to hear the broker plugin (ingest = broker)")

    # --- 3. load: a producer that keeps sending, across the upgrade ---------------
    accepted = []

    def producer():
        k = 0
        while not stop.is_set():
            k += 1
            p = subprocess.run(["/usr/bin/notegw", "-s", SOCK, "send", "upgrade.qo", json.dumps({"k": k})],
                               capture_output=True, text=True, timeout=30)
            if p.returncode == 0:
                accepted.append(k)
            elif p.returncode not in (1, 3):  # refused / daemon away: the producer retries later
                log("send exited %d: %s" % (p.returncode, p.stderr.strip()))

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    wait_for(lambda: len(accepted) >= 20, 60, "20 notes accepted before the upgrade")

    # --- 4. upgrade under load: new packages over the running daemon -------------
    new = bumped(debs, work)
    before = len(accepted)
    dpkg("-i", *new)
    check(installed("notegw") == version + SUFFIX, "upgrade did not install %s" % (version + SUFFIX))
    # postinst's "restart" (deb-systemd-invoke restart notegwd): stop drains, start.
    # Earlier releases kept the store at LEGACY_STORE, private to notegw; put it
    # back there as they left it (mosquitto could not open it then), and the new
    # daemon must move it into the queue directory with every note in it.
    gw.stop()
    broker.stop()
    os.rename(STORE, LEGACY_STORE)
    shutil.chown(LEGACY_STORE, "notegw", "notegw")
    os.chmod(LEGACY_STORE, 0o600)
    gw.start()
    check(not os.path.exists(LEGACY_STORE) and os.path.exists(STORE),
          "the store at %s was not moved to %s" % (LEGACY_STORE, STORE))
    check(mode_owner(STORE)[0] == 0o660 and mode_owner(STORE)[2] == "notegw-store",
          "the moved store is not shared: %r" % (mode_owner(STORE),))
    broker.start()
    broker.publish("notecard/out/broker.qo", ['{"b":%d}' % i for i in range(10, 20)])
    wait_for(lambda: len(accepted) >= before + 20, 60, "20 more notes accepted after the upgrade")
    # Installing the same version again (a reinstall) must be as harmless.
    dpkg("-i", *new)
    gw.stop()
    gw.start()
    n = len(accepted)
    wait_for(lambda: len(accepted) >= n + 5, 60, "notes accepted after the reinstall")
    stop.set()
    t.join(60)
    check(mode_owner("/etc/notegw/notegw.conf") == (0o640, "root", "notegw"),
          "upgrade changed notegw.conf's mode: %r" % (mode_owner("/etc/notegw/notegw.conf"),))

    def at_hub(notefile, key):
        """The values of body[key] of the notes in notefile that reached the hub."""
        vals = set()
        if os.path.exists(hub):
            with open(hub) as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if ev.get("file") == notefile:
                        vals.add((ev.get("body") or {}).get(key))
        return vals

    def hub_ks():
        return at_hub("upgrade.qo", "k")

    try:
        wait_for(lambda: all(k in hub_ks() for k in accepted), 120, "every accepted note at the hub")
    except SystemExit:
        missing = sorted(set(accepted) - hub_ks())
        log("missing %d of %d accepted: %s" % (len(missing), len(accepted), missing[:20]))
        log(open(os.path.join(work, "notegwd.log")).read()[-3000:])
        raise
    log("upgrade under load: %d notes accepted, all at the hub" % len(accepted))

    def hub_bs():
        return at_hub("broker.qo", "b")
    try:
        wait_for(lambda: set(range(20)) <= hub_bs(), 120, "every message the broker acknowledged at the hub")
    except SystemExit:
        log("missing: %s" % sorted(set(range(20)) - hub_bs()))
        log(open(broker.logpath).read()[-3000:])
        raise
    log("broker plugin as mosquitto: 20 acknowledged messages, all at the hub")
    gw.stop()
    broker.stop()
    sim.terminate()
    sim.wait(10)

    # --- 5. purge --------------------------------------------------------------------
    os.unlink(DROPIN)  # the admin's own file: dpkg leaves what it did not install
    shutil.rmtree("/run/notegw", ignore_errors=True)  # RuntimeDirectory= goes on stop
    dpkg("--purge", *PKGS)
    for p in ("/var/lib/notegw", "/etc/notegw", "/usr/sbin/notegwd", "/usr/bin/notegw",
              "/lib/systemd/system/notegwd.service", "/usr/lib/sysusers.d/notegw.conf",
              "/usr/share/notegw", "/var/lib/systemd/deb-systemd-helper-enabled/notegwd.service.dsh-also"
              ) + WANTS:
        check(not os.path.lexists(p), "purge left " + p)
    so = run("dpkg-statoverride", "--list", "/etc/notegw/notegw.conf", ok=False)
    check(so.returncode != 0, "purge left the statoverride: " + so.stdout)
    check(installed("notegw") is None, "notegw still installed after purge")
    # Debian policy: system users stay (files elsewhere may carry their ids).
    check(pwd.getpwnam("notegw"), "purge removed the notegw user")
    check("mosquitto" not in grp.getgrnam("notegw-store").gr_mem,
          "mosquitto still in notegw-store after the broker plugin was purged")
    print("PASS: test_pkg_install: install, upgrade %s -> %s%s under load (%d notes, 0 lost), purge"
          % (version, version, SUFFIX, len(accepted)))


if __name__ == "__main__":
    main()
