#!/usr/bin/env bash
# fresh-box.sh: prove the repository alone builds, tests and packages on a fresh
# Debian 12 machine. It makes a bookworm amd64 root with mmdebstrap (the debootstrap
# default: Priority required + important, no compiler, no python, no git), puts a
# clone of HEAD alone in an empty directory in it (uncommitted files stay out), and
# runs, as root in a chroot:
#   box 1: the README's two commands as the README shows them: tools/demo.sh (notes
#          must reach the simulated Notehub and come back over MQTT), tools/test-all.sh;
#   box 2: a minimal root (Priority required, as Debian's build daemons use) given
#          only the Build-Depends (apt-get build-dep ./), then dpkg-buildpackage -us
#          -uc -b with the tests on.
# A test that skips fails the gate, so a missing dependency cannot hide as a skip.
# Needs root, mount(8) and the network to reach the Debian mirror.
# Usage: tools/fresh-box.sh [--keep]    (--keep: leave the roots for a look afterwards)
# Environment (all optional):
#   NOTEGW_FRESH_CACHE   where the base roots are cached as tarballs, made when absent
#                        (default /var/cache/notegw-fresh); they never hold anything
#                        installed beyond the base system
#   NOTEGW_FRESH_MIRROR  Debian mirror (default http://deb.debian.org/debian; security
#                        updates from http://deb.debian.org/debian-security)
#   NOTEGW_FRESH_BOXES   which boxes to run: "readme package" (default) or either one
#   NOTEGW_FRESH_DROP    packages to remove from tools/deps.txt and Build-Depends in the
#                        clone: shows that the gate fails when a dependency is missing
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
keep=0
for a in "$@"; do
	case $a in
	--keep) keep=1 ;;
	*) echo "usage: $0 [--keep]" >&2; exit 2 ;;
	esac
done
cache=${NOTEGW_FRESH_CACHE:-/var/cache/notegw-fresh}
mirror=${NOTEGW_FRESH_MIRROR:-http://deb.debian.org/debian}
boxes=${NOTEGW_FRESH_BOXES:-readme package}
drop=${NOTEGW_FRESH_DROP:-}
jobs=$(nproc 2>/dev/null || echo 2)

started=$SECONDS last=$SECONDS
step() { # the time of each step: since the start, and of the step before
	echo "=== fresh-box: $* (at $((SECONDS - started))s; previous step $((SECONDS - last))s)"
	last=$SECONDS
}
die() { echo "fresh-box: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot, mounts)"
git -C "$top" rev-parse --verify -q HEAD >/dev/null || die "$top is not a git checkout"
if ! command -v mmdebstrap >/dev/null; then
	step "installing mmdebstrap"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
		--no-install-recommends mmdebstrap || die "cannot install mmdebstrap"
fi

# The base roots, cached as they are the slow part and always the same; made into a
# .part file and renamed, so a run that dies never leaves half a tarball behind.
#   important: what a fresh Debian 12 machine is (debootstrap's default);
#   minbase:   Priority required only, what Debian's build daemons start from: the
#              package builds there from its Build-Depends alone.
base_tar() { # variant -> prints the tarball's path
	local t=$cache/bookworm-amd64-$1.tar
	if [ ! -s "$t" ]; then
		step "making the $1 base root $t (mmdebstrap)" >&2
		mkdir -p "$cache" || die "cannot create $cache"
		mmdebstrap --variant="$1" --architectures=amd64 bookworm "$t.part.tar" \
			"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
			"deb ${mirror%/debian}/debian-security bookworm-security main" >"$cache/mmdebstrap.log" 2>&1 ||
			{ tail -30 "$cache/mmdebstrap.log" >&2; rm -f "$t.part.tar"; die "mmdebstrap"; }
		mv "$t.part.tar" "$t"
	fi
	echo "$t"
}

work=$(mktemp -d /var/tmp/notegw-fresh.XXXXXX) || die "mktemp"
roots=()
# Processes still running in a root (a server a failed test left), then its mounts,
# innermost first. Only a root whose mounts are all gone is removed, and never across
# a file system boundary.
teardown() { # root
	local root=$1 p m
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	for m in $(awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || echo "fresh-box: cannot unmount $m" >&2
	done
	if awk -v r="$root" '$5 == r || index($5, r "/") == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
		echo "fresh-box: $root still has mounts; not removed" >&2
		return 1
	fi
}
cleanup() {
	local r ok=1
	for r in "${roots[@]}"; do teardown "$r" || ok=0; done
	if [ "$keep" = 1 ]; then
		echo "fresh-box: roots kept in $work"
	elif [ "$ok" = 1 ]; then
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A fresh root from the base, with the kernel's file systems a machine has, the
# host's name resolution for apt, and the clone in /srv/fresh with nothing beside it.
make_box() { # name variant -> sets $root
	local base
	base=$(base_tar "$2") || exit 1
	root=$work/$1
	mkdir -p "$root"
	roots+=("$root")
	tar -xf "$base" -C "$root" || die "cannot unpack $base"
	cp -L /etc/resolv.conf "$root/etc/resolv.conf"
	# minbase has no /etc/hosts: Debian's default localhost lines, as a machine has
	grep -qs '^127\.0\.0\.1[[:space:]].*localhost' "$root/etc/hosts" ||
		printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >>"$root/etc/hosts"
	mount -t proc proc "$root/proc" &&
		mount -t sysfs -o ro sysfs "$root/sys" &&
		mount --bind /dev "$root/dev" &&
		mount --bind /dev/pts "$root/dev/pts" &&
		mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm" &&
		mount -t tmpfs -o mode=755 tmpfs "$root/run" || die "cannot mount in $root"
	mkdir -p "$root/srv/fresh"
	git clone -q --no-hardlinks "$top" "$root/srv/fresh/notegw" || die "git clone"
	if [ -n "$drop" ]; then
		local p
		for p in $drop; do
			sed -i "/^$p\$/d" "$root/srv/fresh/notegw/tools/deps.txt"
			sed -i -E "/^[[:space:]]*$p( |,|$)/d; s/^(Build-Depends:[[:space:]]*)${p}[^,]*,[[:space:]]*/\\1/" \
				"$root/srv/fresh/notegw/debian/control"
		done
		echo "fresh-box: dropped from deps.txt and Build-Depends in the clone: $drop"
	fi
}

# A command in the box, as root, with a clean environment (nothing of the host's or
# CI's leaks in) and a time limit so a hang fails instead of stalling CI.
in_box() { # limit command
	local limit=$1
	shift
	timeout -k 30 "$limit" chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		/bin/bash -c "cd /srv/fresh/notegw && $1"
}

# No test may skip in the box: each skip is a program or module the box lacks, so a
# dependency missing from the lists would otherwise pass unnoticed. The exceptions
# are the optional extras from outside the repository (name<TAB>why).
optional_skips="
tests/integration/test_notecard_api_blues	Blues' schema set: only with NOTEGW_SCHEMA_DIR
tests/integration/test_blues_notec	Blues' note-c: only with NOTEGW_BLUES_HOSTS
tests/integration/test_blues_python	Blues' note-python: only with NOTEGW_BLUES_HOSTS
"
check_skips() { # make-check-output builddir label
	local t why bad=0
	# automake names a test with and without its extension (test-suite.log)
	for t in $(sed -nE 's/^SKIP: ([^ ]+)$/\1/p' "$1" | sed -E 's/\.(py|sh)$//' | sort -u); do
		why=$(printf '%s\n' "$optional_skips" | awk -F '\t' -v t="$t" '$1 == t { print $2 }')
		if [ -n "$why" ]; then
			echo "fresh-box: $3: $t skipped, an optional extra ($why)"
			continue
		fi
		echo "fresh-box: $3: $t skipped: a dependency missing from the box? Its log says:"
		grep -h -m3 -i 'skip' "$2/$t.log" 2>/dev/null | sed 's/^/  /'
		bad=1
	done
	return $bad
}

status=0
fail() { echo "fresh-box: FAIL: $*"; status=1; }

if [[ " $boxes " = *" readme "* ]]; then
	step "box 1: unpacking a fresh root, cloning $(git -C "$top" rev-parse --short HEAD)"
	make_box readme important
	log=$work/readme
	step "box 1: tools/demo.sh"
	if in_box 900 tools/demo.sh >"$log-demo.log" 2>&1; then
		sed -n '/^demo: notegwd is up/,/^--- notegw status/p' "$log-demo.log"
		# the 3 MQTT notes and the 'notegw send' one at the simulated hub, and the
		# cloud's note delivered on MQTT
		hub=$(sed -n '/^--- what reached Notehub/,/^---/p' "$log-demo.log")
		[ "$(printf '%s\n' "$hub" | grep -c '"sensors.qo"')" -ge 3 ] ||
			fail "demo: the three MQTT notes did not reach the simulated Notehub"
		printf '%s\n' "$hub" | grep -q '"alerts.qo"' ||
			fail "demo: the note from 'notegw send' did not reach the simulated Notehub"
		grep -q '^notecard/in/data.qi .*setpoint' "$log-demo.log" ||
			fail "demo: the note from the cloud was not delivered on MQTT"
	else
		tail -80 "$log-demo.log"
		fail "tools/demo.sh failed or did not exit by itself"
	fi
	step "box 1: tools/test-all.sh"
	in_box 3600 tools/test-all.sh >"$log-tests.log" 2>&1 || fail "tools/test-all.sh"
	# what test-all.sh said from its first suite on, less the passes
	sed -n '/^=== gcc -Werror: make check/,$p' "$log-tests.log" | grep -v '^PASS: '
	b=$root/srv/fresh/notegw
	check_skips "$b/build-ci/check.out" "$b/build-ci" "gcc -Werror" || fail "unexpected skips (gcc)"
	[ ! -f "$b/build-asan/check.out" ] ||
		check_skips "$b/build-asan/check.out" "$b/build-asan" "ASan+UBSan" || fail "unexpected skips (ASan)"
	grep -q '^tests: [0-9]* passed, 0 failed' "$log-tests.log" || fail "tools/test-all.sh: tests failed"
	teardown "$root" || status=1
fi

if [[ " $boxes " = *" package "* ]]; then
	step "box 2: unpacking a fresh root, cloning $(git -C "$top" rev-parse --short HEAD)"
	make_box package minbase
	log=$work/package
	step "box 2: apt-get build-dep ./ (Build-Depends only)"
	if ! in_box 1800 "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -q \
		--no-install-recommends ./" >"$log-deps.log" 2>&1; then
		tail -30 "$log-deps.log"
		fail "apt-get build-dep"
	else
		step "box 2: dpkg-buildpackage -us -uc -b (tests on, parallel=$jobs)"
		if in_box 3600 "DEB_BUILD_OPTIONS=parallel=$jobs dpkg-buildpackage -us -uc -b" \
			>"$log-build.log" 2>&1; then
			grep -E '^(# [A-Z]+:|dpkg-deb: building)' "$log-build.log"
		else
			grep -E '^(FAIL|ERROR): ' "$log-build.log"
			tail -80 "$log-build.log"
			fail "dpkg-buildpackage"
		fi
		check_skips "$log-build.log" "$root/srv/fresh/notegw" "dpkg-buildpackage" || fail "unexpected skips (package)"
		ls -1 "$root/srv/fresh/"*.deb 2>/dev/null
	fi
	teardown "$root" || status=1
fi

step "done"
[ "$status" = 0 ] && echo "fresh-box: passed" || echo "fresh-box: FAILED (logs in $work when run with --keep)"
exit $status
