#!/usr/bin/env bash
# ci-pkg.sh: the packaging gates, as CI runs them after the test suite.
#  1. build the Debian packages from a clean copy of the tree (dpkg-buildpackage -us -uc -b)
#  2. lintian: no error and no warning on the .changes and every .deb
#  3. hardening-check on every ELF file the packages install
#  4. the unit's sandbox: systemd-analyze security exposure at most 1.5
#  5. install, upgrade under load and purge (tests/integration/test_pkg_install.py),
#     only on a throwaway machine: CI=true or NOTEGW_PKG_TEST=1, as root.
#  6. the unit under a real systemd (tools/unit-under-systemd.sh: PID 1 of a
#     systemd-nspawn container on an overlay of this machine's root), as root;
#     with the same condition, as it installs systemd-container here.
# Usage: tools/ci-pkg.sh [--no-install] [--keep]   (exit 0 all passed, 1 a gate failed)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
install_deps=1 keep=0
for a in "$@"; do
	case $a in
	--no-install) install_deps=0 ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--no-install] [--keep]" >&2; exit 2 ;;
	esac
done
started=$(date +%s)
step() { echo "=== pkg: $* ($(($(date +%s) - started))s)"; }
status=0
fail() { echo "pkg: FAIL: $*" >&2; status=1; }

# The tools of the gates (the build dependencies come from tools/deps.txt).
need="debhelper devscripts lintian systemd dpkg-dev"
throwaway=0
if [ "${CI:-}" = true ] || [ "${NOTEGW_PKG_TEST:-}" = 1 ]; then
	throwaway=1
	need="$need systemd-container"
fi
if [ "$install_deps" = 1 ]; then
	missing=""
	for p in $need; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		step "installing$missing"
		sudo=""
		[ "$(id -u)" = 0 ] || sudo="sudo"
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing ||
			{ echo "pkg: cannot install$missing" >&2; exit 1; }
	fi
fi

work=$(mktemp -d /tmp/notegw-pkg.XXXXXX)
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
src="$work/notegw-$version"

# 1. A clean copy: what git tracks plus new files not ignored, so the gate sees the
# tree as a fresh clone would (no build directories, no configure output).
step "copying the tree to $src"
mkdir -p "$src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -xf - -C "$src"
else
	tar -C "$top" --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

step "dpkg-buildpackage -us -uc -b"
jobs=$(nproc 2>/dev/null || echo 2)
# nocheck (option and profile): CI has just run the whole suite twice; the package
# build need not repeat it, nor need the test-only build dependencies.
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$jobs" \
	dpkg-buildpackage -us -uc -b -Pnocheck >"$work/build.log" 2>&1); then
	tail -80 "$work/build.log"
	echo "pkg: FAIL: dpkg-buildpackage (log above)" >&2
	exit 1
fi
grep -E '^dpkg-(shlibdeps|gencontrol|genchanges): warning' "$work/build.log" || true
changes=$(ls "$work"/notegw_*.changes)
ls -1 "$work"/*.deb

step "lintian"
lintian --info --display-level '>=warning' "$changes" >"$work/lintian.out" 2>&1
cat "$work/lintian.out"
if grep -qE '^[EW]: ' "$work/lintian.out"; then
	fail "lintian reported errors or warnings"
else
	echo "lintian: 0 errors, 0 warnings"
fi

step "hardening-check"
mkdir -p "$work/root"
for deb in "$work"/*.deb; do
	case $deb in *-dbgsym_*) continue ;; esac # detached debug info, not programs
	dpkg-deb -x "$deb" "$work/root"
done
nelf=0
while IFS= read -r -d '' f; do
	head -c 4 "$f" | grep -q $'^\x7fELF' || continue
	nelf=$((nelf + 1))
	# --nocfprotection: the IBT/SHSTK note survives linking only when every object
	# has it, and bookworm's own crt1.o/libc_nonshared.a do not; no binary linked on
	# bookworm passes (mosquitto's neither). We still compile with -fcf-protection.
	if out=$(hardening-check --nocfprotection "$f" 2>&1); then
		echo "hardening-check: ${f#"$work/root"}: ok"
	else
		printf '%s\n' "$out"
		fail "hardening-check: ${f#"$work/root"}"
	fi
done < <(find "$work/root" -type f -print0)
[ "$nelf" -gt 0 ] || fail "hardening-check: the packages install no ELF file"

step "unit security"
unit="$work/root/lib/systemd/system/notegwd.service"
if [ -f "$unit" ]; then
	"$top/tools/check-unit-security.sh" "$unit" || fail "unit security above the limit"
else
	fail "the notegw package installs no notegwd.service"
fi

step "install, upgrade under load, purge"
if [ "${CI:-}" = true ] || [ "${NOTEGW_PKG_TEST:-}" = 1 ]; then
	if [ "$(id -u)" != 0 ]; then
		fail "install test needs root"
	else
		NOTEGW_DEBS="$work" /usr/bin/python3 "$top/tests/integration/test_pkg_install.py"
		rc=$?
		case $rc in
		0) ;;
		77) echo "pkg: install test skipped (reason above)" ;;
		*) fail "install, upgrade, purge" ;;
		esac
	fi
else
	echo "pkg: install test not run: it installs and purges the package on this machine;"
	echo "     set CI=true or NOTEGW_PKG_TEST=1 on a throwaway machine"
fi

step "the unit under a real systemd"
if [ "$throwaway" = 1 ]; then
	if [ "$(id -u)" != 0 ]; then
		fail "the unit test under systemd needs root"
	elif ! "$top/tools/unit-under-systemd.sh" "$work" >"$work/unit-under-systemd.log" 2>&1; then
		cat "$work/unit-under-systemd.log"
		fail "the unit under a real systemd (log above)"
	else
		grep -E '^(ok|FAIL)' "$work/unit-under-systemd.log"
		grep -E "CHECKS (PASSED|FAILED)" "$work/unit-under-systemd.log"
	fi
else
	echo "pkg: unit test under systemd not run (installs systemd-container): set CI=true or NOTEGW_PKG_TEST=1"
fi

step "done"
[ "$status" = 0 ] && echo "pkg: all gates passed" || echo "pkg: some gates FAILED"
exit $status
