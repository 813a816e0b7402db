#!/bin/sh
# check-unit-security.sh: fail when a systemd unit's exposure, as scored by
# `systemd-analyze security --offline=true`, is above the limit (default 1.5).
# Usage: tools/check-unit-security.sh [UNIT...]   (default: systemd/notegwd.service.in)
# A *.in template is checked after its @dir@ placeholders are filled with Debian's paths,
# so the gate needs neither a configured tree nor an installed package.
set -eu

limit=${NOTEGW_UNIT_EXPOSURE_MAX:-1.5}
srcdir=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "$srcdir/systemd/notegwd.service.in"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-unit-security: systemd-analyze not found (apt-get install systemd)" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0
for unit in "$@"; do
	name=$(basename "$unit" .in)
	sed -e 's|@sbindir@|/usr/sbin|g' -e 's|@bindir@|/usr/bin|g' \
	    -e 's|@libexecdir@|/usr/libexec|g' -e 's|@sysconfdir@|/etc|g' \
	    -e 's|@localstatedir@|/var|g' \
	    "$unit" >"$tmp/$name"
	# --offline: judge the file itself, not a unit loaded into a running manager
	# (there is none in CI). Run from the temp dir so the unit is found by name.
	if ! out=$(cd "$tmp" && systemd-analyze security --offline=true --no-pager "$name" 2>&1); then
		# systemd-analyze exits non-zero when --threshold is exceeded or the unit is
		# broken; we compare ourselves, so only a missing score is an error below.
		:
	fi
	score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' | tail -n 1)
	if [ -z "$score" ]; then
		printf '%s\n' "$out" >&2
		echo "check-unit-security: $name: no exposure score in systemd-analyze output" >&2
		status=1
		continue
	fi
	if awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s > l) }'; then
		printf '%s\n' "$out" | grep -v '✓' >&2
		echo "check-unit-security: $name: exposure $score is above $limit" >&2
		status=1
	else
		echo "check-unit-security: $name: exposure $score (limit $limit)"
	fi
done
exit $status
