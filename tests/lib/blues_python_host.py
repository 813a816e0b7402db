#!/usr/bin/python3
"""A host built on Blues' note-python, unchanged, for the interoperability tests
(tests/integration/test_blues_python.py): one request per line on stdin, one answer per line on
stdout (the card's JSON, or "ERROR <why>" when note-python raised). A line that is not JSON is
sent as it is through note-python's own transaction path, as a garbled line from a host would be.

usage: blues_python_host.py NOTE_PYTHON_DIR serial TTY LOCKFILE | i2c DEVICE MAX_TRANSFER
The I2C device is opened with python-periphery; under tests/lib/i2c_shim.c it is the simulator."""
import json
import sys

sys.path.insert(0, sys.argv[1])
import notecard  # noqa: E402  (Blues' library, found through the argument)


def open_card(args):
    if args[0] == "serial":
        import serial
        port = serial.Serial(args[1], 9600, timeout=1)
        return notecard.OpenSerial(port, lock_path=args[2])
    from periphery import I2C
    return notecard.OpenI2C(I2C(args[1]), 0, int(args[2]))


def main():
    card = open_card(sys.argv[2:])
    print("ready", flush=True)
    for line in sys.stdin:
        line = line.rstrip("\n")
        try:
            try:
                req = json.loads(line)
            except ValueError:
                req = None
            if req is None:
                rsp = card._transact(line.encode() + b"\n", rsp_expected=True, timeout_secs=10)
                out = rsp.decode("latin-1").strip()
            else:
                out = json.dumps(card.Transaction(req), separators=(",", ":"))
        except Exception as e:  # note-python's own failures are the test's findings
            out = "ERROR %s" % e
        print(out, flush=True)


main()
