#!/usr/bin/env bash
# cross-arch.sh: build and test notegw in Debian 12 armhf and arm64 roots under
# qemu-user (binfmt), as it runs on a Raspberry Pi (32-bit and 64-bit OS).
#
# For each architecture: a base root made by mmdebstrap (cached), unpacked afresh;
# tools/deps.txt installed inside it (so a missing dependency shows; later runs reuse
# a root with exactly that list installed, cached under the hash of deps.txt); a git clone of
# this repository's HEAD (commit first: uncommitted changes are not tested) built
# with --enable-werror; then, by mode:
#   full (default): the whole `make check`, the .debs (dpkg-buildpackage, nocheck: the
#        suite just ran), lintian (0 errors, 0 warnings), the .debs installed in the
#        root and `notegwd --check-config` on the packaged config.
#   --ci: armhf: the unit tests and the integration tests in CI_ARMHF_TESTS below;
#         arm64: the build and the unit tests. Sized for CI's time (README, "Tested on").
# Each step prints its time; everything mounted is unmounted on exit, failed or not.
#
# Usage: tools/cross-arch.sh [--ci] [armhf] [arm64]     (default: both)
# Environment (all optional):
#   NOTEGW_ARCH_CACHE  where base roots, roots with the dependencies, downloaded .debs
#                      and the work roots (one per run) live
#                      (default /var/cache/notegw-arch; a few GiB)
#   NOTEGW_ARCH_TESTS  the TESTS= list for make check, instead of the mode's
#   NOTEGW_SCHEMA_DIR  Blues' schema set, copied into the root for the tests that use it
#   NOTEGW_BLUES_HOSTS Blues' note-python and note-c (docs/simulator.md), copied into the
#                      root for the tests that use them
#   NOTEGW_ARCH_KEEP=1 leave the work root in place afterwards (unmounted)
#   NOTEGW_ARCH_FRESH=1 install tools/deps.txt into the base root even when a root
#                      with that list is cached
# Needs root; installs qemu-user-static, binfmt-support and mmdebstrap on this machine.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${NOTEGW_ARCH_CACHE:-/var/cache/notegw-arch}
suite=bookworm
mode=full
arches=()
for a in "$@"; do
	case $a in
	--ci) mode=ci ;;
	armhf | arm64) arches+=("$a") ;;
	*) echo "usage: $0 [--ci] [armhf] [arm64]" >&2; exit 2 ;;
	esac
done
[ ${#arches[@]} -gt 0 ] || arches=(armhf arm64)

# The integration tests CI runs on armhf: the ones that read directories (plugins,
# conf.d, keys: readdir and large files), the chrony sample, the store and its
# formats, the MQTT plugin, all through the simulated card. The rest runs in full
# mode (about 30 minutes for armhf on two busy cores, with the dependencies cached).
CI_ARMHF_TESTS="tests/integration/test_daemon.py tests/integration/cli.py
tests/integration/test_ops.py tests/integration/test_update.py
tests/integration/test_store_layout.py tests/integration/test_mqtt_daemon.py"

t_start=$SECONDS
step() { echo "=== arch ${arch:-}: $* (+$((SECONDS - t_start))s)"; }
die() { echo "arch: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mounts, chroot)"

# ---- this machine: qemu-user, binfmt, mmdebstrap -----------------------------------
host_tools() {
	local need="" p
	for p in qemu-user-static binfmt-support mmdebstrap; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need="$need $p"
	done
	if [ -n "$need" ]; then
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
			--no-install-recommends $need || die "cannot install$need"
	fi
	[ -e /proc/sys/fs/binfmt_misc/status ] ||
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc"
	update-binfmts --enable qemu-arm >/dev/null 2>&1 || true
	update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
}

qemu_of() { case $1 in armhf) echo qemu-arm ;; arm64) echo qemu-aarch64 ;; esac; }

# ---- the root ------------------------------------------------------------------------
root=""
deps_tar=""
mounts=()
cleanup() {
	local i pid
	[ -n "$root" ] || return 0
	# Processes left inside the root (a test's server after a failure): this script
	# started them, by pid.
	for pid in /proc/[0-9]*; do
		[ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ] && kill -9 "${pid#/proc/}" 2>/dev/null
	done
	for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
		umount -R "${mounts[$i]}" 2>/dev/null || umount -R -l "${mounts[$i]}" 2>/dev/null
	done
	mounts=()
	[ "${NOTEGW_ARCH_KEEP:-}" = 1 ] || rm -rf --one-file-system "$root"
	root=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bind() { # what where [options]
	mkdir -p "$2"
	mount --bind "$1" "$2" || die "cannot bind $1"
	mounts+=("$2")
	[ -z "${3:-}" ] || mount -o "remount,bind,$3" "$2"
}

make_root() {
	local base="$cache/base-$arch.tar" key
	key=$( (echo "$suite $arch" && cat "$top/tools/deps.txt") | sha256sum | cut -c1-12)
	deps_tar="$cache/deps-$arch-$key.tar"
	mkdir -p "$cache/apt-$arch"
	# A root of its own per run: two runs at once must not share one.
	root=$(mktemp -d "$cache/root-$arch.XXXXXX") || die "cannot make a root under $cache"
	if [ "${NOTEGW_ARCH_FRESH:-}" != 1 ] && [ -s "$deps_tar" ]; then
		step "unpacking the cached root with tools/deps.txt ($key) at $root"
		tar -C "$root" -xf "$deps_tar" || die "cannot unpack $deps_tar"
		mount_root
		return
	fi
	if [ ! -s "$base" ]; then
		step "mmdebstrap $suite $arch (once; cached as $base)"
		nice -n 5 mmdebstrap --arch="$arch" --variant=buildd --include=ca-certificates \
			--format=tar "$suite" "$base.part" >"$cache/mmdebstrap-$arch.log" 2>&1 ||
			{ tail -30 "$cache/mmdebstrap-$arch.log"; die "mmdebstrap $arch"; }
		mv "$base.part" "$base"
	fi
	step "unpacking a fresh root at $root"
	tar -C "$root" -xf "$base" || die "cannot unpack $base"
	mount_root
	install_deps
}

mount_root() {
	mkdir -p "$root/proc" && mount -t proc proc "$root/proc" && mounts+=("$root/proc")
	bind /dev "$root/dev"
	bind /dev/pts "$root/dev/pts"
	mkdir -p "$root/dev/shm" && mount -t tmpfs -o mode=1777 shm "$root/dev/shm" && mounts+=("$root/dev/shm")
	bind /sys "$root/sys" ro
	bind "$cache/apt-$arch" "$root/var/cache/apt/archives"
	# Name resolution: localhost from /etc/hosts (the tests use it), the mirror
	# through this machine's resolver.
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
	cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	echo "notegw-$arch" >"$root/etc/hostname"
}

# The root with exactly tools/deps.txt installed, kept for --ci runs under a name
# that hashes deps.txt: a change to the list installs afresh, and nothing else is
# in it, so a dependency missing from the list still fails the run.
save_deps_root() {
	step "caching the root with tools/deps.txt as $deps_tar"
	rm -f "$cache"/deps-"$arch"-*.tar
	tar -C "$root" --one-file-system --exclude=./proc --exclude=./sys --exclude=./dev \
		--exclude=./var/cache/apt/archives -cf "$deps_tar.part" . && mv "$deps_tar.part" "$deps_tar"
}

in_root() { # command line, run by bash inside the root
	nice -n 5 chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive ${NOTEGW_SCHEMA_DIR:+NOTEGW_SCHEMA_DIR=/notecard-schema} \
		${NOTEGW_BLUES_HOSTS:+NOTEGW_BLUES_HOSTS=/blues-hosts} \
		/bin/bash -c "set -eo pipefail; $1"
}

install_deps() {
	step "apt-get install tools/deps.txt"
	local pkgs
	pkgs=$(grep -v '^#' "$top/tools/deps.txt" | tr '\n' ' ')
	in_root "apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $pkgs \
		>/var/log/notegw-deps.log 2>&1 || { tail -40 /var/log/notegw-deps.log; exit 1; }" ||
		die "installing tools/deps.txt in the $arch root"
	save_deps_root
}

copy_clone() {
	step "git clone of HEAD ($(git -C "$top" rev-parse --short HEAD))"
	git clone -q --no-local "$top" "$root/src/notegw" || die "git clone"
	if [ -n "${NOTEGW_SCHEMA_DIR:-}" ]; then
		cp -r "$NOTEGW_SCHEMA_DIR" "$root/notecard-schema" || die "cannot copy $NOTEGW_SCHEMA_DIR"
	fi
	if [ -n "${NOTEGW_BLUES_HOSTS:-}" ]; then
		cp -r "$NOTEGW_BLUES_HOSTS" "$root/blues-hosts" || die "cannot copy $NOTEGW_BLUES_HOSTS"
	fi
}

build() {
	# --ci saves compiler time under emulation: no debug information, and -O1 on arm64
	# (armhf keeps -O2: its warnings are the 32-bit proof; -O0 would trip _FORTIFY_SOURCE).
	local cflags=""
	[ "$mode" = ci ] && cflags="CFLAGS='$([ "$arch" = armhf ] && echo -O2 || echo -O1) -g0'"
	step "configure --enable-werror $cflags && make"
	in_root "cd /src/notegw && autoreconf -fi >/dev/null 2>&1 && mkdir -p build && cd build &&
		../configure --enable-werror $cflags >configure.out 2>&1 || { tail -40 config.log; exit 1; }
		sed -n '/^configure:\$/,\$p' configure.out
		make -j2 >make.out 2>&1 || { grep -E 'error|warning' make.out | head -40; tail -40 make.out; exit 1; }" ||
		die "build on $arch"
}

check() { # TESTS list, or empty for all
	local tests what=${1:+a subset}
	# shellcheck disable=SC2086,SC2116 # the words of the list on one line; empty: the whole suite
	tests=$(echo $1)
	step "make check ${what:-(all)}"
	in_root "cd /src/notegw/build && make -j2 check ${tests:+TESTS=\"$tests\"} >check.out 2>&1" ||
		true
	in_root "cd /src/notegw/build && grep -E '^(PASS|FAIL|ERROR|XPASS|XFAIL|SKIP): |^# ' check.out;
		for f in \$(grep -lE '^:test-result: (FAIL|ERROR)' \$(find . -name '*.trs')); do
			echo \"--- \${f%.trs}.log\"; tail -40 \"\${f%.trs}.log\"; done" || true
	in_root "cd /src/notegw/build && grep -q '^# FAIL:  0\$' check.out && grep -q '^# ERROR: 0\$' check.out &&
		! grep -q '^# TOTAL: 0\$' check.out" ||
		{ echo "arch: FAIL: make check on $arch"; status=1; }
}

unit_tests() { # the cmocka programs the Makefile lists, as configured in the root
	# shellcheck disable=SC2016 # make's $(...), not the shell's
	printf 'print-units:\n\t@echo $(filter tests/unit/test_%%,$(TESTS))\n' >"$root/tmp/units.mk"
	in_root "make -s -C /src/notegw/build -f Makefile -f /tmp/units.mk print-units"
}

package() {
	step "dpkg-buildpackage -us -uc -b (nocheck: the suite ran above)"
	git clone -q --no-local "$top" "$root/src/pkg/notegw" || die "git clone"
	in_root "cd /src/pkg/notegw &&
		DEB_BUILD_OPTIONS='nocheck parallel=2' dpkg-buildpackage -us -uc -b -Pnocheck \
		>../build.log 2>&1 || { tail -60 ../build.log; exit 1; }; ls -1 ../*.deb" ||
		{ echo "arch: FAIL: dpkg-buildpackage on $arch"; status=1; return; }
	step "lintian"
	if in_root "cd /src/pkg && lintian --info --display-level '>=warning' notegw_*.changes >lintian.out 2>&1;
		cat lintian.out; ! grep -qE '^[EW]: ' lintian.out"; then
		echo "lintian ($arch): 0 errors, 0 warnings"
	else
		echo "arch: FAIL: lintian on $arch"
		status=1
	fi
	step "install the .debs; notegwd --check-config on the packaged config"
	in_root "cd /src/pkg && apt-get install -y -q --no-install-recommends \$(ls ./*.deb | grep -v dbgsym) \
		>install.log 2>&1 || { tail -30 install.log; exit 1; }
		notegwd --check-config" ||
		{ echo "arch: FAIL: installing or checking the packaged config on $arch"; status=1; }
}

status=0
arch=""
host_tools
mkdir -p "$cache"
for arch in "${arches[@]}"; do
	t_arch=$SECONDS
	make_root
	in_root "echo \"root: \$(dpkg --print-architecture), \$(uname -m) under qemu-user\"" ||
		die "cannot run $arch programs: is binfmt for $(qemu_of "$arch") enabled?"
	copy_clone
	build
	if [ -n "${NOTEGW_ARCH_TESTS:-}" ]; then
		check "$NOTEGW_ARCH_TESTS"
	elif [ "$mode" = full ]; then
		check ""
		package
	elif [ "$arch" = armhf ]; then
		check "$(unit_tests) $CI_ARMHF_TESTS"
	else
		check "$(unit_tests)"
	fi
	step "done in $((SECONDS - t_arch))s"
	cleanup
done
arch=""
step "all: $([ $status = 0 ] && echo passed || echo FAILED) in $((SECONDS - t_start))s"
exit $status
