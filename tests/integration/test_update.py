"""Host updates end to end on the simulator: a signed package is fetched in chunks,
verified and handed to the installer while notes keep flowing; refusals (wrong
signer, flipped bit, truncated image, MD5 mismatch, downgrade) each say why; a
daemon killed halfway through a download resumes from its offset."""
import base64
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import NOTEGW, TOP_SRCDIR, Daemon, TestDir, check, fail, log, wait_for  # noqa: E402
from sim import Sim  # noqa: E402

INSTALLER = os.path.join(TOP_SRCDIR, "tools", "notegw-update-install")


def sh(*cmd, **kw):
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=120, **kw)
    if p.returncode != 0:
        fail("%s: %s %s" % (" ".join(cmd), p.stdout, p.stderr))
    return p.stdout


def make_deb(d, version, size=150000):
    root = d.file("pkg-%s" % version)
    os.makedirs(os.path.join(root, "DEBIAN"), exist_ok=True)
    os.makedirs(os.path.join(root, "usr", "share", "notegw-otatest"), exist_ok=True)
    with open(os.path.join(root, "DEBIAN", "control"), "w") as f:
        f.write("Package: notegw-otatest\nVersion: %s\nArchitecture: all\n"
                "Maintainer: test <test@example.com>\nDescription: update test payload\n" % version)
    with open(os.path.join(root, "usr", "share", "notegw-otatest", "blob"), "wb") as f:
        f.write(os.urandom(size))  # incompressible, so the image has many chunks
    deb = d.file("otatest_%s.deb" % version)
    sh("dpkg-deb", "--build", "-Znone", root, deb)
    return deb


def sign(d, key, deb, version, name):
    img = d.file(name)
    sh(NOTEGW, "update", "sign", "--key", key, "--version", version, deb, img)
    return img


def status(gw):
    return gw.status()["status"]["update"]


def offer(sim, path, md5=None):
    kw = {"path": path, "now": True, "version": "x"}
    if md5:
        kw["md5"] = md5
    sim.control("dfu", **kw)


def requests(sim):
    """Every request the card received, parsed (the log keeps the wire text)."""
    out = []
    for r in sim.request_log():
        req = r.get("req")
        if isinstance(req, str):
            try:
                req = json.loads(req)
            except ValueError:
                continue
        if isinstance(req, dict):
            out.append(req)
    return out


def dfu_reports(sim):
    return [r for r in requests(sim) if r.get("req") == "dfu.status" and r.get("stop")]


def main():
    with TestDir("update") as d:
        keys = d.file("trusted")
        os.makedirs(keys)
        sh("openssl", "genpkey", "-algorithm", "ed25519", "-out", d.file("good.pem"))
        sh("openssl", "pkey", "-in", d.file("good.pem"), "-pubout", "-out", os.path.join(keys, "good.pem"))
        sh("openssl", "genpkey", "-algorithm", "ed25519", "-out", d.file("evil.pem"))
        deb = make_deb(d, "2.0")
        good = sign(d, d.file("good.pem"), deb, "2.0", "good.img")
        spool = d.file("spool")
        with Sim(serial=True, workdir=d.file("sim")) as sim:
            gw = Daemon(d, {"notecard": {"transport": "serial", "device": sim.serial_path,
                                         "poll_interval": "1s", "timing_scale": 5},
                            "hub": {"mode": "continuous"},
                            "update": {"trusted_keys": keys, "spool": spool, "interval": "1s",
                                       "chunk": "1K"}})
            gw.start()
            # Resume: kill the daemon halfway through the download.
            offer(sim, good)
            size = os.path.getsize(good)
            wait_for(lambda: 8 * 1024 < status(gw).get("offset", 0) < size - 8 * 1024, 60, 0.02,
                     "the download to be under way")
            gw.kill()
            part = os.path.getsize(os.path.join(spool, "download.part"))
            log("killed at %d of %d bytes on disk" % (part, size))
            n_before = len([r for r in requests(sim) if r.get("req") == "dfu.get"])
            gw.start()
            for i in range(20):  # notes keep flowing during the update
                gw.cli("send", "during.qo", json.dumps({"i": i}))
            wait_for(lambda: status(gw)["state"] == "installing", 90, 0.1, "the image to be verified")
            gets = [r for r in requests(sim) if r.get("req") == "dfu.get"]
            resumed = gets[n_before]
            check(resumed.get("offset", 0) > 0, "the restarted daemon began again at 0: %r" % resumed)
            log("resumed at offset", resumed.get("offset"))
            check(os.path.exists(os.path.join(spool, "ready.img")), "no image handed to the installer")
            # The privileged installer, as notegw-update.service runs it (dpkg faked).
            fake = d.file("fake-dpkg")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\necho \"$@\" > %s\n" % d.file("dpkg.args"))
            os.chmod(fake, 0o755)
            env = dict(os.environ, NOTEGW_CLI=NOTEGW, NOTEGW_DPKG=fake, NOTEGW_INSTALLED_VERSION="1.0")
            p = subprocess.run(["sh", INSTALLER, "--spool", spool, "--trusted", keys], env=env,
                               capture_output=True, text=True)
            check(p.returncode == 0, "installer failed: %s" % p.stderr)
            check("-i" in open(d.file("dpkg.args")).read(), "dpkg -i was not run")
            wait_for(lambda: status(gw)["state"] == "idle" and "installed" in status(gw).get("last_result", ""),
                     30, 0.1, "the daemon to report the installation")
            wait_for(lambda: any(r.get("status") for r in dfu_reports(sim)), 10, 0.1,
                     "the outcome reported to Notehub")
            wait_for(lambda: len([e for e in sim.hub_notes() if e.get("file") == "during.qo"]) == 20,
                     60, 0.2, "the notes queued during the update at the hub")

            # Refusals by the daemon: each says why and reports it with dfu.status err.
            cases = [
                ("wrong signer", sign(d, d.file("evil.pem"), deb, "2.1", "evil.img"), None, "trusted"),
            ]
            raw = open(good, "rb").read()
            flipped = d.file("flipped.img")
            with open(flipped, "wb") as f:
                f.write(raw[:2000] + bytes([raw[2000] ^ 1]) + raw[2001:])
            cases.append(("flipped bit", flipped, None, "digest"))
            trunc = d.file("trunc.img")
            with open(trunc, "wb") as f:
                f.write(raw[:len(raw) // 2])
            cases.append(("truncated", trunc, None, "truncated"))
            cases.append(("md5 mismatch", good, "0" * 32, "MD5"))
            for what, img, md5, word in cases:
                before = status(gw)["refusals"]
                offer(sim, img, md5)
                wait_for(lambda: status(gw)["refusals"] > before, 60, 0.1, "refusal of " + what)
                err = status(gw)["last_error"]
                check(word.lower() in err.lower(), "%s: refusal does not say why: %r" % (what, err))
                check(not os.path.exists(os.path.join(spool, "ready.img")), what + ": handed over anyway")
                log("%s refused: %s" % (what, err))
            errs = [r.get("err") for r in dfu_reports(sim) if r.get("err")]
            check(len(errs) >= len(cases), "refusals not all reported to Notehub: %r" % errs)

            # Downgrade: authentic, but older than what is installed: the installer refuses.
            old = sign(d, d.file("good.pem"), make_deb(d, "1.5", 2000), "1.5", "old.img")
            offer(sim, old)
            wait_for(lambda: status(gw)["state"] == "installing", 60, 0.1, "the old image to be verified")
            env["NOTEGW_INSTALLED_VERSION"] = "2.0"
            p = subprocess.run(["sh", INSTALLER, "--spool", spool, "--trusted", keys], env=env,
                               capture_output=True, text=True)
            check(p.returncode != 0 and "downgrade" in p.stderr, "downgrade not refused: %s" % p.stderr)
            wait_for(lambda: "downgrade" in status(gw).get("last_error", ""), 30, 0.1,
                     "the daemon to report the refused downgrade")
            check(gw.stop() == 0, "daemon did not stop cleanly")
    print("PASS: test_update")


if __name__ == "__main__":
    main()
