#!/bin/sh
# Long crash run: the crash test (tests/integration/test_crash.py) with ROUNDS
# SIGKILLs of notegwd while `notegw send` keeps accepting notes; every accepted note
# must reach the simulated hub, duplicates only under the same _id. The last line
# gives the figures docs/reliability.md records.
# Usage: tools/crash-long.sh [BUILDDIR [ROUNDS [SEED]]]   (run from the source tree)
set -eu
builddir=${1:-build}
rounds=${2:-1000}
seed=${3:-4}
srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=$(cd "$builddir" && pwd)
if [ ! -x "$builddir/notegwd" ] || [ ! -x "$builddir/notegw" ]; then
	make -C "$builddir" notegwd notegw >/dev/null
fi
top_srcdir=$srcdir top_builddir=$builddir PYTHONDONTWRITEBYTECODE=1 \
	CRASH_ROUNDS=$rounds CRASH_SEED=$seed \
	CRASH_GAP_MIN=${CRASH_GAP_MIN:-0.2} CRASH_GAP_MAX=${CRASH_GAP_MAX:-0.8} \
	exec /usr/bin/python3 "$srcdir/tests/integration/test_crash.py"
