#!/usr/bin/python3
"""Run one integration test with every daemon it starts under valgrind memcheck:
harness.Daemon's valgrind switch turned on by default, then the test run as __main__.
A daemon that valgrind saw misbehave (exit 99 at stop) fails the run even when the
test passed. Daemons a test SIGKILLs are not checked (valgrind reports at exit).
Usage (what tools/valgrind-suite.sh --all does per test): under_valgrind.py TEST.py"""
import os
import runpy
import sys

top = os.environ.get("top_srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(top, "tests", "lib"))
import harness  # noqa: E402

_init = harness.Daemon.__init__


def _init_valgrind(self, *a, **kw):
    kw.setdefault("valgrind", True)
    _init(self, *a, **kw)


harness.Daemon.__init__ = _init_valgrind
_start = harness.Daemon.start


def _start_slow(self, wait=True):
    # valgrind makes start-up slower: wait longer than the harness's 20 s
    _start(self, wait=False)
    if wait:
        self.wait_ready(120)
    return self


harness.Daemon.start = _start_slow
_stop = harness.Daemon.stop
dirty = []


def _stop_checked(self, timeout=20):
    # valgrind exits 99 on a memory error or definite leak; the tests themselves
    # (and TestDir's clean-up) do not look at the code, so look here
    rc = _stop(self, timeout=max(timeout, 120))
    if rc == 99:
        dirty.append(self.name)
        print("valgrind: errors in daemon %s:\n%s" % (self.name, "\n".join(
            x for x in self.log_text().splitlines() if x.startswith("=="))), flush=True)
    return rc


harness.Daemon.stop = _stop_checked
test = os.path.abspath(sys.argv[1])
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(test))  # as `python3 TEST.py` would (simtest.py)
code = 0
try:
    runpy.run_path(test, run_name="__main__")
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
if dirty:
    print("valgrind: FAIL: memory errors or definite leaks in %s" % ", ".join(dirty))
    sys.exit(1)
sys.exit(code)
