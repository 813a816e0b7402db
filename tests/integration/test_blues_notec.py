#!/usr/bin/python3
"""Blues' note-c, unchanged, against notecard-sim: tests/lib/blues_notec_host.c is compiled at
test time with note-c's sources from $NOTEGW_BLUES_HOSTS/note-c (SKIP without it) and runs the
session of blueshosts.py over a 9600-baud serial line and over I2C (i2c-dev through the shim)
with note-c's largest chunk (253, NOTE_I2C_MAX_MAX) and its default (30, sized for Arduino)."""
import os
import subprocess
import sys
import tempfile

from simtest import check, finish, TOP
from sim import Sim, shim_path
from blueshosts import build_notec_host, hosts_dir, prepare, run_session

note_c = hosts_dir("note-c")
if shim_path() is None:
    print("libi2cshim.so not built")
    sys.exit(77 if os.environ.get("NOTEGW_ALLOW_SKIP") else 1)

work = tempfile.mkdtemp(prefix="notec-host-")
host, why = build_notec_host(note_c, work, TOP)
if not check(host is not None, "the note-c host builds: " + why[-2000:]):
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
