#!/usr/bin/env bash
# notegwd under valgrind memcheck; exits non-zero on any memory error or definite leak.
# Needs a plain (non-sanitizer) build with the plugins and `make check`'s helpers built.
#   tools/valgrind-suite.sh [BUILD_DIR]         the representative flow
#                                               (tests/memcheck/valgrind_flow.py), ~10 s
#   tools/valgrind-suite.sh --all [BUILD_DIR]   that, then every tests/integration/*.py with
#                                               each daemon it starts under valgrind (slow)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
all=0
if [ "${1:-}" = --all ]; then
	all=1
	shift
fi
bdir=$(cd "${1:-$top/build-ci}" && pwd)
export top_srcdir=$top top_builddir=$bdir
py=/usr/bin/python3
status=0
$py "$top/tests/memcheck/valgrind_flow.py" || status=1
if [ $all = 1 ]; then
	for t in "$top"/tests/integration/test_*.py "$top"/tests/integration/cli.py; do
		n=$(basename "$t")
		out=$(timeout 900 $py "$top/tests/memcheck/under_valgrind.py" "$t" 2>&1)
		rc=$?
		case $rc in
		0) echo "PASS: $n (under valgrind)" ;;
		77) echo "SKIP: $n" ;;
		*)
			echo "FAIL: $n (under valgrind, exit $rc)"
			echo "$out" | tail -30
			status=1
			;;
		esac
	done
fi
exit $status
