"""The session Blues' own host libraries run against notecard-sim (test_blues_python.py,
test_blues_notec.py): the requests a real application sends, what each answer must hold, and
the card-side counters that must stay at zero (protocol violations, pacing the simulator would
flag). The libraries are not part of the project: they come from $NOTEGW_BLUES_HOSTS (a folder
holding note-python/ and note-c/, unmodified; CI points it at a copy beside the repository)."""
import glob
import json
import os
import subprocess
import sys

from simtest import check

PRODUCT = "com.example.blues:hosts"
BIG = "x" * 7900          # the gateway's body limit is 8 KB: a note near it


def hosts_dir(sub):
    """$NOTEGW_BLUES_HOSTS/sub, or exit 77 (SKIP) saying why."""
    root = os.environ.get("NOTEGW_BLUES_HOSTS")
    if not root:
        print("SKIP: NOTEGW_BLUES_HOSTS is not set (a folder holding Blues' note-python and "
              "note-c; see docs/simulator.md)")
        sys.exit(77)
    path = os.path.join(root, sub)
    if not os.path.isdir(path):
        print("SKIP: NOTEGW_BLUES_HOSTS=%s has no %s/" % (root, sub))
        sys.exit(77)
    return path


def build_notec_host(note_c, work, top):
    """Compile tests/lib/blues_notec_host.c with note-c's sources into work/; returns the
    program's path, or (None, compiler output) when it does not build."""
    cc = os.environ.get("CC", "cc").split()
    host = os.path.join(work, "blues_notec_host")
    objs = []
    for src in sorted(glob.glob(os.path.join(note_c, "*.c"))):
        obj = os.path.join(work, os.path.basename(src)[:-2] + ".o")
        # note-c is Blues' code, built as it comes: its warnings are not ours to fix
        subprocess.run(cc + ["-std=gnu11", "-O2", "-w", "-I", note_c, "-c", src, "-o", obj],
                       check=True)
        objs.append(obj)
    r = subprocess.run(cc + ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-I", note_c,
                             "-o", host, os.path.join(top, "tests", "lib", "blues_notec_host.c")]
                       + objs + ["-lm"], capture_output=True, text=True)
    return (host, "") if r.returncode == 0 else (None, r.stderr)


def no_err(r):
    return isinstance(r, dict) and "err" not in r


def err_has(tok):
    return lambda r: isinstance(r, dict) and tok in r.get("err", "")


# (what, request line, check of the answer: a dict, or the raw text for a non-JSON line)
SESSION = [
    ("card.version", {"req": "card.version"},
     lambda r: no_err(r) and r.get("device", "").startswith("dev:") and "version" in r),
    ("card.status", {"req": "card.status"}, no_err),
    ("hub.set", {"req": "hub.set", "product": PRODUCT, "mode": "periodic", "outbound": 60},
     no_err),
    ("hub.get", {"req": "hub.get"}, lambda r: no_err(r) and r.get("product") == PRODUCT),
    ("note.add", {"req": "note.add", "file": "data.qo", "body": {"temp": 21.5}}, no_err),
    ("note.add sync", {"req": "note.add", "file": "data.qo", "body": {"n": 2}, "sync": True},
     no_err),
    ("note.add .qos", {"req": "note.add", "file": "secure.qos", "body": {"s": 1}}, no_err),
    ("note.add .db", {"req": "note.add", "file": "settings.db", "note": "cfg",
                      "body": {"rate": 5}}, no_err),
    ("note.get .db", {"req": "note.get", "file": "settings.db", "note": "cfg"},
     lambda r: no_err(r) and r.get("body") == {"rate": 5}),
    ("note.delete .db", {"req": "note.delete", "file": "settings.db", "note": "cfg"}, no_err),
    ("note.get .db gone", {"req": "note.get", "file": "settings.db", "note": "cfg"},
     err_has("{note-noexist}")),
    ("note.get .qi", {"req": "note.get", "file": "commands.qi"},
     lambda r: no_err(r) and r.get("body") == {"cmd": "reboot"}),
    ("note.get .qi delete", {"req": "note.get", "file": "commands.qi", "delete": True},
     lambda r: no_err(r) and r.get("body") == {"cmd": "reboot"}),
    ("note.get .qi empty", {"req": "note.get", "file": "commands.qi"},
     err_has("{note-noexist}")),
    ("file.changes", {"req": "file.changes"},
     lambda r: no_err(r) and "data.qo" in r.get("info", {})),
    ("env.get", {"req": "env.get", "name": "interval"},
     lambda r: no_err(r) and r.get("text") == "30"),
    ("card.time", {"req": "card.time"}, lambda r: no_err(r) and r.get("time", 0) > 0),
    ("card.location", {"req": "card.location"}, lambda r: isinstance(r, dict)),
    ("note.template", {"req": "note.template", "file": "tmpl.qo",
                       "body": {"t": 14.1, "n": 12}, "format": "compact"}, no_err),
    ("templated note.add", {"req": "note.add", "file": "tmpl.qo", "body": {"t": 22.5, "n": 3}},
     no_err),
    ("7.9 KB note", {"req": "note.add", "file": "big.qo", "body": {"blob": BIG}}, no_err),
    ("garbage line", "this is not json", lambda r: isinstance(r, str) and "{io}" in r),
    ("in sync after garbage", {"req": "card.version"}, no_err),
]


def prepare(s):
    """What the card holds before the host starts: an inbound note and a variable."""
    s.inject("commands.qi", body={"cmd": "reboot"}, now=True)
    s.env({"interval": "30"}, now=True)


def run_session(s, cmd, env, label, timeout=240):
    """Run the host, feed it the session, check every answer and the card's view."""
    lines = [r if isinstance(r, str) else json.dumps(r, separators=(",", ":"))
             for _, r, _ in SESSION]
    p = subprocess.run(cmd, input="\n".join(lines) + "\n", env=env, capture_output=True,
                       text=True, timeout=timeout)
    out = p.stdout.splitlines()
    if not check(p.returncode == 0 and out[:1] == ["ready"],
                 "%s: host started and ended cleanly (rc %d)" % (label, p.returncode)):
        print(p.stdout[-3000:], p.stderr[-3000:])
        return
    answers = out[1:]
    check(len(answers) == len(SESSION), "%s: %d answers for %d requests"
          % (label, len(answers), len(SESSION)))
    for (what, req, ok), ans in zip(SESSION, answers):
        if isinstance(req, str):
            got = ans
        else:
            try:
                got = json.loads(ans)
            except ValueError:
                got = ans
        check(ok(got), "%s: %s -> %s" % (label, what, ans[:300]))
    # the card's side: the big note arrived whole, nothing was flagged
    big = [e for e in s.request_log() if e.get("req", {}).get("file") == "big.qo" and
           e["req"].get("body", {}).get("blob") == BIG and no_err(e.get("rsp"))]
    check(len(big) == 1, "%s: the 7.9 KB note reached the card intact, once (%d)"
          % (label, len(big)))
    c = s.counters()
    for name in ("i2c_protocol_errors", "i2c_unrequested_reads", "i2c_oversize",
                 "i2c_chunk_gap_short", "i2c_segment_overruns", "i2c_poll_gap_short",
                 "serial_segment_overruns", "internal_errors"):
        check(c.get(name, 0) == 0, "%s: card counter %s = %d" % (label, name, c.get(name, 0)))
    for prob in s.problems():
        check(False, "%s: %s" % (label, prob))
    return c
