#!/usr/bin/python3
"""Blues' note-c, unchanged, against notecard-sim: tests/lib/blues_notec_host.c is compiled at
test time with note-c's sources from $NOTEGW_BLUES_HOSTS/note-c (SKIP without it) and runs the
session of blueshosts.py over a 9600-baud serial line and over I2C (i2c-dev through the shim)
with note-c's largest chunk (253, NOTE_I2C_MAX_MAX) and its default (30, sized for Arduino)."""
import glob
import os
import subprocess
import sys
import tempfile

from simtest import check, finish, TOP
from sim import Sim, shim_path
from blueshosts import hosts_dir, prepare, run_session

note_c = hosts_dir("note-c")
if shim_path() is None:
    print("libi2cshim.so not built")
    sys.exit(77 if os.environ.get("NOTEGW_ALLOW_SKIP") else 1)

work = tempfile.mkdtemp(prefix="notec-host-")
cc = os.environ.get("CC", "cc").split()
host = os.path.join(work, "blues_notec_host")
objs = []
for src in sorted(glob.glob(os.path.join(note_c, "*.c"))):
    obj = os.path.join(work, os.path.basename(src)[:-2] + ".o")
    # note-c is Blues' code, built as it comes: its warnings are not ours to fix
    subprocess.run(cc + ["-std=gnu11", "-O1", "-w", "-I", note_c, "-c", src, "-o", obj],
                   check=True)
    objs.append(obj)
r = subprocess.run(cc + ["-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror", "-I", note_c,
                         "-o", host, os.path.join(TOP, "tests", "lib", "blues_notec_host.c")] +
                   objs + ["-lm"], capture_output=True, text=True)
if not check(r.returncode == 0, "the note-c host builds: " + r.stderr[-2000:]):
    finish()

with Sim(serial=True) as s:
    prepare(s)
    run_session(s, [host, "serial", s.serial_path], dict(os.environ), "note-c serial")

for chunk in (253, 30):
    label = "note-c i2c chunk %d" % chunk
    with Sim(i2c=True) as s:
        prepare(s)
        env = dict(os.environ)
        env.update(s.i2c_env())
        c = run_session(s, [host, "i2c", "/dev/i2c-1", str(chunk)], env, label)
        if c is not None:
            check(c.get("i2c_max_chunk") == chunk, "%s: its chunks reached the card (largest %s)"
                  % (label, c.get("i2c_max_chunk")))

subprocess.run(["rm", "-rf", work])
finish()
