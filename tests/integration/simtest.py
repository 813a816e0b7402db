"""Shared bits of the test_sim_* tests: paths, a check() that counts failures, the exit code."""
import os
import sys

TOP = os.environ.get("top_srcdir",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))      # sim.py
sys.path.insert(0, os.path.join(TOP, "sim"))               # the notecard_sim package

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: %s" % what)
    return cond


def finish():
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed")
    sys.exit(0)
