#!/bin/bash
# test_pkg_maintscripts: drive notegw's postinst and postrm against a fake root
# (DPKG_ROOT, as dpkg --root does), without touching this machine: install, a
# second configure as an upgrade does, a new hardware group, remove, purge; and
# notegw-mqtt-broker's, which put mosquitto into notegw-store and take it out.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
: "${top_srcdir:?}"
deb=$top_srcdir/debian
fail=0
bad() { echo "FAIL: $*"; fail=1; }

for tool in systemd-sysusers dpkg-statoverride gpasswd; do
	command -v $tool >/dev/null 2>&1 || { echo "SKIP: $tool not installed"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the scripts chown files in the fake root)"; exit 77; }

r=$(mktemp -d /tmp/notegw-maint.XXXXXX)
trap 'rm -rf "$r"' EXIT
mkdir -p "$r/etc/notegw" "$r/usr/lib/sysusers.d" "$r/var/lib/dpkg"
printf 'root:x:0:0:root:/root:/bin/sh\nmosquitto:x:120:120::/var/lib/mosquitto:/usr/sbin/nologin\n' \
	>"$r/etc/passwd"
printf 'root:x:0:\ndialout:x:20:\nmosquitto:x:120:\n' >"$r/etc/group"
: >"$r/var/lib/dpkg/statoverride"
cp "$deb/notegw.sysusers" "$r/usr/lib/sysusers.d/notegw.conf"
# the configuration as debian/rules ships it: plugin sections commented out
awk -f "$deb/comment-plugin-sections.awk" "$top_srcdir/etc/notegw.conf" >"$r/etc/notegw/notegw.conf"
grep -qE '^\[(mqtt|modbus)' "$r/etc/notegw/notegw.conf" && bad "shipped config has a live plugin section"
chmod 0644 "$r/etc/notegw/notegw.conf"

runp() { # package, script, arguments...
	local p=$1 s=$2
	shift 2
	DPKG_ROOT=$r DPKG_MAINTSCRIPT_PACKAGE=$p sh "$deb/$p.$s" "$@" >"$r/.out" 2>&1 ||
		{ cat "$r/.out"; bad "$p.$s $* failed"; }
}
run() { runp notegw "$@"; }
field() { grep "^$2:" "$r/etc/$1" | cut -d: -f"$3"; }
members() { field group "$1" 4 | tr , '\n' | sort | paste -sd, -; }

# --- first install ------------------------------------------------------------
run postinst configure
uid=$(field passwd notegw 3) gid=$(field group notegw 3)
[ -n "$uid" ] && [ -n "$gid" ] || bad "no notegw user or group"
[ "$(field passwd notegw 6)" = /var/lib/notegw ] || bad "notegw's home is not /var/lib/notegw"
[ "$(field passwd notegw 7)" = /usr/sbin/nologin ] || bad "notegw can log in"
[ "$uid" -lt 1000 ] 2>/dev/null || bad "notegw is not a system user (uid $uid)"
[ -n "$(field group notegw-admin 3)" ] || bad "no notegw-admin group"
[ "$(field group dialout 4)" = notegw ] || bad "notegw not in dialout: $(field group dialout 4)"
grep -qE '^(i2c|gpio):' "$r/etc/group" && bad "postinst created a hardware group"
conf=$r/etc/notegw/notegw.conf
[ "$(stat -c '%u:%g %a' "$conf")" = "0:$gid 640" ] ||
	bad "notegw.conf is $(stat -c '%u:%g %a' "$conf"), want 0:$gid 640"
# (dpkg-statoverride records the group by the host's name for that id, if any)
grep -qE "^root [^ ]+ 0?640 /etc/notegw/notegw.conf$" "$r/var/lib/dpkg/statoverride" ||
	bad "no statoverride for notegw.conf: $(cat "$r/var/lib/dpkg/statoverride")"
# The state directory can be passed, not read, by others; the queue inside is
# shared through notegw-store (setgid, so the store's files take that group).
sgid=$(field group notegw-store 3)
[ -n "$sgid" ] || bad "no notegw-store group"
[ "$(field group notegw-store 4)" = notegw ] || bad "notegw-store members: $(field group notegw-store 4)"
[ "$(stat -c '%u:%g %a' "$r/var/lib/notegw")" = "$uid:$gid 711" ] ||
	bad "state dir is $(stat -c '%u:%g %a' "$r/var/lib/notegw")"
[ "$(stat -c '%u:%g %a' "$r/var/lib/notegw/queue")" = "$uid:$sgid 2770" ] ||
	bad "queue dir is $(stat -c '%u:%g %a' "$r/var/lib/notegw/queue"), want $uid:$sgid 2770"

# --- upgrade: configure again; the store, the ids and a site's choices stay ----
echo queued >"$r/var/lib/notegw/store.db"
dpkg-statoverride --root="$r" --remove /etc/notegw/notegw.conf
dpkg-statoverride --root="$r" --update --add root "#$gid" 0600 /etc/notegw/notegw.conf
run postinst configure 0.1.0
[ "$(field passwd notegw 3)" = "$uid" ] || bad "upgrade changed notegw's uid"
[ "$(grep -c '^notegw:' "$r/etc/passwd")" = 1 ] || bad "upgrade duplicated the user"
[ "$(field group dialout 4)" = notegw ] || bad "upgrade changed dialout: $(field group dialout 4)"
[ "$(cat "$r/var/lib/notegw/store.db")" = queued ] || bad "upgrade touched the store"
grep -qE "^root [^ ]+ 0?600 /etc/notegw/notegw.conf$" "$r/var/lib/dpkg/statoverride" ||
	bad "upgrade overrode the site's mode: $(cat "$r/var/lib/dpkg/statoverride")"

# --- a hardware group that appears later is joined at the next configure -------
printf 'i2c:x:%s:\n' "$((gid + 100))" >>"$r/etc/group"
run postinst configure 0.1.0
[ "$(field group i2c 4)" = notegw ] || bad "notegw not in i2c after it appeared"

# --- the broker plugin's package: mosquitto joins notegw-store, and only it -----
runp notegw-mqtt-broker postinst configure
[ "$(members notegw-store)" = mosquitto,notegw ] ||
	bad "after notegw-mqtt-broker: notegw-store members $(members notegw-store)"
[ -z "$(field group notegw 4)" ] || bad "someone joined the notegw group: $(field group notegw 4)"
runp notegw-mqtt-broker postinst configure 0.1.0
[ "$(members notegw-store)" = mosquitto,notegw ] ||
	bad "a second configure changed notegw-store: $(members notegw-store)"
runp notegw-mqtt-broker postrm remove
[ "$(members notegw-store)" = notegw ] ||
	bad "remove left mosquitto in notegw-store: $(members notegw-store)"
runp notegw-mqtt-broker postrm purge

# --- remove keeps the state; purge removes it, the statoverride too; user stays -
run postrm remove
[ -f "$r/var/lib/notegw/store.db" ] || bad "remove deleted the store"
run postrm purge
[ -e "$r/var/lib/notegw" ] && bad "purge left /var/lib/notegw"
grep -q notegw.conf "$r/var/lib/dpkg/statoverride" && bad "purge left the statoverride"
[ -n "$(field passwd notegw 3)" ] || bad "purge removed the notegw user (policy: system users stay)"

# --- unknown actions are refused, as policy asks --------------------------------
DPKG_ROOT=$r sh "$deb/notegw.postinst" bogus >/dev/null 2>&1 && bad "postinst accepted 'bogus'"
DPKG_ROOT=$r sh "$deb/notegw.postrm" bogus >/dev/null 2>&1 && bad "postrm accepted 'bogus'"

[ $fail = 0 ] && echo "PASS: postinst/postrm on a fake root: install, upgrade, new group, broker plugin, remove, purge"
exit $fail
