#!/usr/bin/env bash
# Install what notegw needs (Debian 12) and run every test: the normal build with
# warnings as errors, then the same suite under AddressSanitizer + UBSan.
# Usage: tools/test-all.sh [--no-install] [--no-sanitizers]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
install=1 san=1
for a in "$@"; do
	case $a in
	--no-install) install=0 ;;
	--no-sanitizers) san=0 ;;
	*) echo "usage: $0 [--no-install] [--no-sanitizers]" >&2; exit 2 ;;
	esac
done
jobs=$(nproc 2>/dev/null || echo 2)

if [ "$install" = 1 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	pkgs=$(grep -v '^#' tools/deps.txt | tr '\n' ' ')
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q
	# shellcheck disable=SC2086
	$sudo apt-get install -y -q --no-install-recommends $pkgs
fi

[ -x configure ] || autoreconf -fi

status=0
build() { # dir, configure args...
	local dir=$1
	shift
	mkdir -p "$dir"
	(cd "$dir" && ../configure --enable-werror "$@" >configure.out) ||
		{ cat "$dir/configure.out"; tail -50 "$dir/config.log"; return 1; }
	make -C "$dir" -j"$jobs" >"$dir/make.out" 2>&1 || { tail -80 "$dir/make.out"; return 1; }
}
check() { # dir, label
	local dir=$1 label=$2 rc=0
	echo "=== $label: make check"
	make -C "$dir" -j"$jobs" check >"$dir/check.out" 2>&1 || rc=1
	grep -E '^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP): ' "$dir/check.out" || true
	if [ $rc != 0 ]; then
		status=1
		for f in $(grep -lE '^:test-result: (FAIL|ERROR)' $(find "$dir" -name '*.trs') 2>/dev/null); do
			echo "--- ${f%.trs}.log"
			tail -60 "${f%.trs}.log"
		done
		grep -q 'Testsuite summary' "$dir/check.out" || tail -60 "$dir/check.out"
	fi
	sed -n '/Testsuite summary/,/^=====*$/p;/^# TOTAL/,/^# ERROR/p' "$dir/check.out" | grep -E '^# ' || true
	# The totals some suites report (faults injected and notes lost, crash rounds, MQTT loss).
	cat "$dir"/tests/integration/test_faults.log "$dir"/tests/integration/test_crash.log \
		"$dir"/tests/integration/test_mqtt_loss.log 2>/dev/null |
		grep -E '^(fault suite|crash|[a-z]+: [0-9]+ faults injected)|lost' | grep -v '^FAIL' | sed 's/^/  /' || true
}

build build-ci
check build-ci "gcc -Werror"
if [ "$san" = 1 ]; then
	build build-asan --enable-sanitizers
	check build-asan "ASan+UBSan"
fi
# One plain closing line over both builds, for readers that know no automake.
pass=0 failn=0 skipn=0
for f in $(find build-ci build-asan -name '*.trs' 2>/dev/null); do
	case $(sed -n 's/^:global-test-result: //p' "$f") in
	PASS | XFAIL) pass=$((pass + 1)) ;;
	SKIP) skipn=$((skipn + 1)) ;;
	*) failn=$((failn + 1)) ;;
	esac
done
echo "tests: $pass passed, $failn failed, $skipn skipped" | tee build-ci/summary.txt
exit $status
