#!/usr/bin/python3
"""Blues' note-python, unchanged, against notecard-sim: over serial, and over I2C (python-periphery
through the i2c-dev shim) with note-python's default 255-byte transfers (`OpenI2C(port, 0, 0)`,
as Blues' Raspberry Pi examples do) and with max_transfer=253. Needs $NOTEGW_BLUES_HOSTS
(SKIP without it) and Debian's python3-periphery, python3-serial and python3-filelock."""
import os
import sys

from simtest import check, finish, TOP
from sim import Sim, shim_path
from blueshosts import hosts_dir, prepare, run_session

note_python = hosts_dir("note-python")
try:
    import periphery  # noqa: F401
    import serial  # noqa: F401
    import filelock  # noqa: F401
except ImportError as e:
    print("missing a Debian package note-python needs (tools/deps.txt): %s" % e)
    sys.exit(1)
if shim_path() is None:
    print("libi2cshim.so not built")
    sys.exit(77 if os.environ.get("NOTEGW_ALLOW_SKIP") else 1)

host = os.path.join(TOP, "tests", "lib", "blues_python_host.py")
python = "/usr/bin/python3"

with Sim(serial=True) as s:
    prepare(s)
    lock = os.path.join(s.dir, "serial.lock")
    run_session(s, [python, host, note_python, "serial", s.serial_path, lock],
                dict(os.environ), "note-python serial")

for max_transfer, label in ((0, "note-python i2c default (255)"),
                            (253, "note-python i2c max_transfer=253")):
    with Sim(i2c=True) as s:
        prepare(s)
        env = dict(os.environ)
        env.update(s.i2c_env())
        c = run_session(s, [python, host, note_python, "i2c", "/dev/i2c-1", str(max_transfer)],
                        env, label)
        if c is not None:
            want = 255 if max_transfer == 0 else 253
            check(c.get("i2c_max_chunk") == want,
                  "%s: its %d-byte chunks reached the card (largest %s)"
                  % (label, want, c.get("i2c_max_chunk")))
finish()
