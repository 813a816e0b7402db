#!/bin/sh
# test_pkg_unit: the notegwd unit built for this tree keeps the properties the
# daemon relies on (notify, watchdog, its directories, its user) and its sandbox:
# the exposure gate passes on it, and fails on the same unit with the sandbox cut.
set -u
: "${top_srcdir:?}" "${top_builddir:?}"
unit=$top_builddir/systemd/notegwd.service
gate=$top_srcdir/tools/check-unit-security.sh
fail=0
bad() { echo "FAIL: $*"; fail=1; }

[ -f "$unit" ] || { echo "FAIL: $unit not built"; exit 1; }

# Directives whose loss would break the daemon or open the sandbox.
for want in 'Type=notify' 'NotifyAccess=main' 'WatchdogSec=30s' 'Restart=on-failure' \
	'User=notegw' 'Group=notegw' 'StateDirectory=notegw' 'StateDirectoryMode=0711' \
	'RuntimeDirectory=notegw' 'ConfigurationDirectory=notegw' 'UMask=0077' \
	'NoNewPrivileges=yes' 'CapabilityBoundingSet=' 'AmbientCapabilities=' \
	'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'DevicePolicy=closed' \
	'DeviceAllow=char-i2c rw' 'DeviceAllow=char-gpiochip rw' 'DeviceAllow=char-ttyACM rw' \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'SystemCallFilter=@system-service' \
	'SystemCallFilter=~@privileged @resources' 'SystemCallFilter=@chown' \
	'SystemCallArchitectures=native' \
	'MemoryDenyWriteExecute=yes' 'IPAddressDeny=any'; do
	grep -qxF "$want" "$unit" || bad "unit lacks '$want'"
done
# No placeholder left, and the daemon is started by absolute path, in the foreground
# (no --foreground needed: notegwd does not fork).
grep -q '@[a-z]*dir@' "$unit" && bad "unit has unsubstituted placeholders"
grep -qE '^ExecStart=/[^ ]*/notegwd$' "$unit" || bad "ExecStart is not an absolute notegwd"
grep -qE '^ExecStartPre=/[^ ]*/notegwd --check-config$' "$unit" ||
	bad "no configuration check before start"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not installed (package systemd); directives checked only"
	[ $fail = 0 ] && exit 77 || exit 1
fi

# The gate passes on the real unit...
"$gate" "$unit" || bad "security gate fails on notegwd.service"

# ...and really gates: the same unit without its file-system and privilege
# sandboxing must score above the limit.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -vE '^(Protect|Private|NoNewPrivileges|CapabilityBoundingSet|SystemCall|Restrict)' "$unit" \
	>"$tmp/notegwd.service"
if "$gate" "$tmp/notegwd.service" >"$tmp/out" 2>&1; then
	cat "$tmp/out"
	bad "security gate passes a unit without its sandbox"
fi
grep -q 'is above 1.5' "$tmp/out" || { cat "$tmp/out"; bad "gate did not report the score"; }

# systemd ignores an unknown or misspelt directive with a mere warning: verify every
# unit we ship (the programs replaced by /bin/true: they are not installed here).
mkdir -p "$tmp/v"
for u in notegwd.service notegw-update.service notegw-update.path; do
	[ -f "$top_builddir/systemd/$u" ] || { bad "$u not built"; continue; }
	sed -E 's#^(Exec[A-Za-z]*=)[^ ]+#\1/bin/true#' "$top_builddir/systemd/$u" >"$tmp/v/$u"
done
out=$(cd "$tmp/v" && systemd-analyze verify --man=no ./notegwd.service ./notegw-update.service \
	./notegw-update.path 2>&1 | grep -E 'notegw[-a-z]*\.(service|path)' || true)
[ -z "$out" ] || bad "systemd-analyze verify: $out"

[ $fail = 0 ] && echo "PASS: unit directives, systemd-analyze verify and exposure gate"
exit $fail
