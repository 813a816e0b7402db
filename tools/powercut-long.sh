#!/bin/sh
# Long power-cut run: thousands of simulated power cuts against the store (see
# tests/unit/test_powercut.c). Usage: tools/powercut-long.sh [BUILDDIR [CYCLES [SEED]]]
# A failure prints the seed; rerun with it to reproduce.
set -eu
builddir=${1:-build}
cycles=${2:-20000}
prog="$builddir/tests/unit/test_powercut"
if [ ! -x "$prog" ]; then
	make -C "$builddir" tests/unit/test_powercut >/dev/null
fi
if [ $# -ge 3 ]; then
	exec "$prog" "$cycles" "$3"
fi
exec "$prog" "$cycles"
