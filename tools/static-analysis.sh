#!/usr/bin/env bash
# Static analysis gate: cppcheck, clang-tidy (bugprone, cert, clang-analyzer) and
# gcc -fanalyzer over the C sources; any finding fails. Suppressions live inline,
# next to the code, each with its reason (cppcheck-suppress id ; why / NOLINT(check): why).
# Needs a configured build directory for config.h (default build-ci).
# Usage: tools/static-analysis.sh [BUILD_DIR]   (JOBS=N to change the parallelism)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bdir=${1:-build-ci}
jobs=${JOBS:-$(nproc)}
[ -f "$bdir/config.h" ] || { echo "static-analysis: configure $bdir first" >&2; exit 2; }
srcs=$(git ls-files 'src/*.c' 'src/**/*.c' 'plugins/*.c' 'plugins/**/*.c' | sort -u)
incs="-Iinclude -Isrc -I$bdir -include $bdir/config.h -DSYSCONFDIR=\"/etc\" -DLOCALSTATEDIR=\"/var\" -DRUNSTATEDIR=\"/run\" -DPLUGINDIR=\"/usr/lib/notegw/plugins\" -DLIBEXECDIR=\"/usr/libexec\""
pkgs=$(pkg-config --cflags jansson libsystemd sqlite3 libcrypto libmosquitto libmodbus libgpiod 2>/dev/null)
status=0

# clang-tidy: the bugprone, cert and clang-analyzer families, less these checks,
# each of which is noise for this codebase rather than a class of bug in it:
#  bugprone-easily-swappable-parameters  flags every f(int, int); a style opinion
#  bugprone-reserved-identifier, cert-dcl37-c, cert-dcl51-cpp  fire on the _GNU_SOURCE
#      and include-guard macros the build and system headers need
#  bugprone-assignment-in-if-condition  `if ((r = f()) < 0)` is the house idiom
#  cert-err33-c  wants every printf/snprintf/fclose result checked, including the ones
#      whose failure cannot be acted on (logging); the ones that matter are checked
#  bugprone-narrowing-conversions  fires on every size_t -> int of a bounded length
#  clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling  wants the
#      Annex K *_s functions, which glibc does not have
#  bugprone-implicit-widening-of-multiplication-result  flags constant products such as
#      `64 * 1024` or `n * 1000u` assigned to 64-bit sizes: all operands here are small
#      bounded constants or already checked, and overflow of int arithmetic is caught
#      by -fsanitize=undefined in the tests and fuzzers instead
#  clang-analyzer-optin.performance.Padding  an opt-in layout hint, not a defect
checks='-*,bugprone-*,cert-*,clang-analyzer-*'
checks+=',-bugprone-easily-swappable-parameters,-bugprone-reserved-identifier,-cert-dcl37-c,-cert-dcl51-cpp'
checks+=',-bugprone-assignment-in-if-condition,-cert-err33-c,-bugprone-narrowing-conversions'
checks+=',-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling'
checks+=',-bugprone-implicit-widening-of-multiplication-result,-clang-analyzer-optin.performance.Padding'

# gcc -fanalyzer, less two of its checks. GCC 12's analyzer loses track of a pointer
# once it is stored into a heap object (an array grown by realloc, a struct reached
# through a pointer argument) and of arrays filled in a loop: every one of its 12
# reports here was that (batch.c put array, link_card.c in_files, store_in/out.c
# result arrays, mqtt.c password and mid_ids, cfg_doc.c diag messages; crypto.c's
# base64 quartet v[4] filled by a 4-step loop). Leaks stay covered by clang-analyzer
# unix.Malloc and cppcheck above, LeakSanitizer in the sanitizer build of make check
# and the fuzzers, and tools/valgrind-suite.sh; uninitialised reads by
# clang-analyzer core.* and valgrind. The analyzer's other checks (double free,
# use after free, NULL dereference, fd leaks, ...) stay on.
gcc_off='-Wno-analyzer-malloc-leak -Wno-analyzer-use-of-uninitialized-value'

# One job per (tool, file), run $jobs at a time; each prints its findings in one
# block and fails when it has any.
one() {
	local tool=$1 f=$2 out
	case $tool in
	tidy)
		# shellcheck disable=SC2086
		out=$(clang-tidy --quiet -checks="$checks" --warnings-as-errors='*' "$f" -- -std=gnu11 $incs $pkgs 2>&1) && return 0
		echo "$out" | grep -v '^[0-9]* warnings\? \(and [0-9]* errors\? \)\?generated'
		return 1
		;;
	gcc)
		# shellcheck disable=SC2086
		out=$(gcc -std=gnu11 -O1 -fanalyzer $gcc_off -c -o /dev/null $incs $pkgs "$f" 2>&1)
		if echo "$out" | grep -q 'warning:\|error:'; then
			echo "$out"
			return 1
		fi
		;;
	esac
	return 0
}
export -f one
export checks incs pkgs gcc_off

echo "== cppcheck"
# shellcheck disable=SC2086
if ! cppcheck -j"$jobs" --quiet --error-exitcode=1 --inline-suppr --std=c11 \
	--enable=warning,portability,performance --suppress=missingIncludeSystem \
	-D__GNUC__ -DHAVE_GPIOD_V1=1 -Iinclude -Isrc -I"$bdir" $srcs 2>&1; then
	status=1
fi

echo "== clang-tidy and gcc -fanalyzer ($jobs jobs)"
# the slowest files first, so the pool does not end on one long job
# shellcheck disable=SC2086
if ! for f in $(ls -S $srcs); do echo "tidy $f"; echo "gcc $f"; done |
	xargs -P"$jobs" -L1 bash -c 'one "$0" "$1"'; then
	status=1
fi
[ $status = 0 ] && echo "static analysis: clean"
exit $status
