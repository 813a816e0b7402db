#!/bin/bash
# unit-under-systemd.sh: run the packaged notegwd.service under a real systemd
# (PID 1 of a systemd-nspawn container) and check it end to end: notify, reload,
# watchdog, stop; the sandbox as systemd applies it (and that the container
# enforces device and IP policies at all); the control socket's group; a restart
# on the same serial device; the store moved into the shared queue directory; and
# the broker plugin in the packaged mosquitto.service. Run by tools/ci-pkg.sh.
# The test suite cannot do this: no systemd runs as PID 1 on these machines.
#
# Usage: unit-under-systemd.sh [PKGDIR]      (default: $NOTEGW_PKGDIR)
# Needs: root, systemd-container (apt-get install -y --no-install-recommends
#        systemd-container; without --no-install-recommends apt also pulls
#        libnss-mymachines, which edits the host's /etc/nsswitch.conf).
#
# Isolation from the host:
#  * the whole script runs in a private mount namespace (unshare -m); every
#    mount it makes (tmpfs, overlay, the tmpfs over /run/systemd that keeps
#    nspawn's lock/propagate dirs off the host) dies with the namespace, even
#    on SIGKILL;
#  * the container root is an overlay: lower = host / (read-only use), upper =
#    a tmpfs; host /etc, /var are never written; the host's own enabled
#    services (mosquitto, postgresql, timers) are masked in the overlay;
#  * --private-network: the container has loopback only;
#  * --register=no --keep-unit: no machined / no host systemd needed;
#  * --link-journal=no: the container's journal stays in the overlay.
set -euo pipefail

PKGDIR=${1:-${NOTEGW_PKGDIR:-}}
[ -n "$PKGDIR" ] && [ -d "$PKGDIR" ] || { echo "usage: $0 PKGDIR" >&2; exit 2; }
PKGDIR=$(cd "$PKGDIR" && pwd)
[ "$(id -u)" = 0 ] || { echo "$0: must run as root" >&2; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "$0: systemd-nspawn missing (apt-get install -y --no-install-recommends systemd-container)" >&2; exit 2; }

# Re-exec in a private mount namespace: nothing mounted here leaks to the host.
if [ -z "${_NOTEGW_PRIVATE_NS:-}" ]; then
	export _NOTEGW_PRIVATE_NS=1
	exec unshare --mount --propagation private -- "$0" "$PKGDIR"
fi

T0=$(date +%s.%N)
stage() { printf "\n=== [%6.1fs] %s\n" "$(awk -v a="$(date +%s.%N)" -v b="$T0" "BEGIN{print a-b}")" "$*"; }
fail() { echo "FAIL: $*" >&2; FAILED=1; }
FAILED=0

WORK=$(mktemp -d /tmp/notegw-nspawn.XXXXXX)
ROOT=$WORK/root
NSPAWN_PID=
LEADER=

cleanup() {
	local rc=$?
	set +e
	stage "cleanup"
	if [ -n "$LEADER" ] && [ -d "/proc/$LEADER" ]; then
		# Orderly shutdown of the container (SIGRTMIN+3 = halt for systemd).
		kill -RTMIN+3 "$LEADER" 2>/dev/null
		for _ in $(seq 1 30); do [ -d "/proc/$LEADER" ] || break; sleep 0.5; done
	fi
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		kill -TERM "$NSPAWN_PID" 2>/dev/null
		for _ in $(seq 1 20); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$NSPAWN_PID" 2>/dev/null
	fi
	for j in $(jobs -p); do kill "$j" 2>/dev/null; done # e.g. an interrupted sleep
	wait 2>/dev/null
	umount -R "$ROOT" 2>/dev/null
	umount "$WORK" 2>/dev/null
	umount /run/systemd 2>/dev/null
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cexec() { nsenter --target "$LEADER" --all -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# --- 1. root for the container --------------------------------------------------
stage "prepare overlay root"
mount -t tmpfs -o size=2G,mode=0700 tmpfs "$WORK"
mkdir "$WORK/upper" "$WORK/work" "$ROOT"
mount -t overlay overlay -o "lowerdir=/,upperdir=$WORK/upper,workdir=$WORK/work" "$ROOT"
# nspawn keeps /run/systemd/nspawn/{locks,propagate}; on this host /run is on
# disk, and nspawn refuses to rm -rf a non-tmpfs dir on exit. Private tmpfs.
mount -t tmpfs -o mode=0755 tmpfs /run/systemd

systemd-id128 new >"$ROOT/etc/machine-id"
# The host's own enabled units would boot in the container too: mask them.
# mosquitto is not masked but kept from starting at boot (the broker part below
# starts it once the plugin is configured).
rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/mosquitto.service"
for u in postgresql.service apt-daily.timer apt-daily-upgrade.timer \
	man-db.timer e2scrub_all.timer e2scrub_reap.service dpkg-db-backup.timer \
	fstrim.timer getty@tty1.service systemd-timesyncd.service systemd-pstore.service \
	console-getty.service; do
	ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done
# The lower layer is the LIVE host root: if the host has notegw installed (a
# parallel package test does dpkg -i there), its enabled units and config would
# boot in the container. Drop them here (whiteouts in the upper layer); the
# packages themselves are purged inside the container before the install.
rm -f "$ROOT"/etc/systemd/system/*.wants/notegw*
rm -f "$ROOT/etc/systemd/system/default.target"
ln -s /lib/systemd/system/multi-user.target "$ROOT/etc/systemd/system/default.target"
mkdir -p "$ROOT/root/debs"
for f in "$PKGDIR"/*.deb; do
	case $f in *-dbgsym_*) continue ;; esac
	cp "$f" "$ROOT/root/debs/"
done
# Keep dpkg from starting notegwd with the stock config (deb-systemd-invoke
# honours policy-rc.d); the test starts it once it is configured.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"

# --- boot --------------------------------------------------------------------------
stage "boot container"
# Unified cgroup hierarchy in the container. This host is hybrid (v1 + cgroup2
# at /sys/fs/cgroup/unified); nspawn would pick legacy v1 for the container,
# where systemd cannot enforce DevicePolicy=/DeviceAllow= (no devices
# controller delegated) and the stock unit opens a pty it should not.
export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=${SYSTEMD_NSPAWN_UNIFIED_HIERARCHY:-1}
# --system-call-filter=bpf: nspawn's seccomp filter refuses bpf() with EPERM, and
# without it systemd in the container logs (debug level only!) "Can't load
# kernel CGROUP DEVICE BPF program, BPF device control is not supported:
# Operation not permitted" and silently ignores DevicePolicy=, DeviceAllow=,
# IPAddressDeny=, IPAddressAllow= of every unit.
systemd-nspawn --quiet -D "$ROOT" --boot --private-network --machine=notegwtest \
	--system-call-filter=bpf \
	--link-journal=no --register=no --keep-unit --console=read-only \
	${NOTEGW_NSPAWN_INIT_ARGS:-} \
	</dev/null >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
for _ in $(seq 1 100); do
	for p in $(pgrep -P "$NSPAWN_PID" 2>/dev/null); do
		if [ "$(cat /proc/$p/comm 2>/dev/null)" = systemd ]; then LEADER=$p; fi
	done
	[ -n "$LEADER" ] && break
	kill -0 "$NSPAWN_PID" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$LEADER" ]; then
	cat "$WORK/console.log" >&2
	echo "FAIL: container did not start" >&2
	exit 1
fi
echo "nspawn pid $NSPAWN_PID, container PID 1 = host pid $LEADER"
# systemctl needs PID 1's private socket; it appears a moment after exec.
for _ in $(seq 1 300); do
	[ -S "/proc/$LEADER/root/run/systemd/private" ] && break
	sleep 0.1
done
state=$(cexec timeout 90 systemctl is-system-running --wait 2>&1 || true)
echo "system state: $state"
if [ "$state" != running ]; then
	cexec systemctl --no-pager --failed || true
fi
echo "container cgroup fs: $(cexec stat -fc %T /sys/fs/cgroup) (cgroup2fs = unified)"
cexec systemd-analyze --no-pager time || true
# BPF device/IP filtering is what DevicePolicy= and IPAddressDeny= need on cgroup2.
cexec journalctl --no-pager -b _PID=1 | grep -i -E 'bpf|firewall|device control|cgroup' || echo "(no BPF/cgroup warnings from PID 1)"

# --- 2. install --------------------------------------------------------------------
stage "install packages"
leaked=$(cexec dpkg-query -W -f '${Package} ${db:Status-Abbrev}\n' 'notegw*' 2>/dev/null | awk '$2 ~ /^[ih]/ {print $1}' || true)
if [ -n "$leaked" ]; then
	echo "host's notegw packages seen through the overlay: $(echo $leaked); purging them in the container"
	cexec dpkg --purge $leaked >"$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "purge"; exit 1; }
fi
cexec rm -rf /etc/notegw /var/lib/notegw /etc/systemd/system/notegwd.service.d
cexec sh -c 'cd /root/debs && dpkg -i notegw_*.deb notegw-mqtt_*.deb notegw-modbus_*.deb notegw-mqtt-broker_*.deb notegw-dev_*.deb' >"$WORK/dpkg.log" 2>&1 ||
	{ cat "$WORK/dpkg.log"; fail "dpkg -i"; exit 1; }
tail -3 "$WORK/dpkg.log"
rm -f "$ROOT/usr/sbin/policy-rc.d"
cexec id notegw
cexec systemctl is-enabled notegwd.service || true

if [ -n "${NOTEGW_NSPAWN_PAUSE:-}" ]; then # debugging: poke at the container
	echo "$LEADER" >"$NOTEGW_NSPAWN_PAUSE.leader"
	echo "paused: nsenter -t $LEADER -a ...; rm $NOTEGW_NSPAWN_PAUSE.leader to go on"
	while [ -e "$NOTEGW_NSPAWN_PAUSE.leader" ]; do sleep 1; done
fi

# --- 3. simulator and configuration --------------------------------------------------
stage "start simulator"
cexec install -d -o notegw -g notegw -m 0755 /srv/sim /srv/sim/state
# Run as notegw: the pty slave then belongs to notegw (a root-owned pty is 0620
# root:tty and the daemon, not in group tty, could not open it).
cexec systemd-run --unit=notecard-sim --property=User=notegw --property=Group=notegw \
	/usr/bin/notecard-sim --serial --hub /srv/sim/hub.jsonl --info /srv/sim/info.json \
	--state /srv/sim/state
PTY=
for _ in $(seq 1 100); do
	PTY=$(cexec python3 -c 'import json;print(json.load(open("/srv/sim/info.json"))["serial"])' 2>/dev/null || true)
	[ -n "$PTY" ] && break
	sleep 0.1
done
[ -n "$PTY" ] || { cexec journalctl --no-pager -u notecard-sim; fail "simulator gave no pty"; exit 1; }
echo "simulator pty: $PTY"
cexec ls -l "$PTY"

cexec sh -c "mkdir -p /etc/notegw/conf.d && cat >/etc/notegw/conf.d/90-test.conf" <<EOF
[notecard]
transport = serial
device = $PTY
poll_interval = 1s
timing_scale = 5
[hub]
mode = continuous
[update]
enabled = false
EOF
cexec systemctl daemon-reload

# No test drop-in is needed for the pty: systemd's DevicePolicy=closed always
# adds /dev/null, zero, full, random, urandom, tty, ptmx AND "char-pts rw" to
# the unit's DeviceAllow= list (src/core/cgroup.c, "PTS devices may not be
# duplicated, but accessed"). What this test must prove instead is that the
# container enforces device and IP policies at all (BPF in cgroup2):
stage "BPF policy enforcement probes"
out=$(cexec systemd-run --wait --pipe -q -p DevicePolicy=closed python3 -c 'import os
try: os.open("/dev/net/tun", os.O_RDWR); print("OPENED")
except OSError as e: print(e.strerror)' 2>&1 || true)
case $out in *"not permitted"*) echo "ok: DevicePolicy=closed: open /dev/net/tun: $out";; *) fail "DevicePolicy=closed not enforced: open /dev/net/tun: $out";; esac
out=$(cexec systemd-run --wait --pipe -q -p IPAddressDeny=any python3 -c 'import socket
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try: s.sendto(b"x", ("127.0.0.1", 9)); print("SENT")
except OSError as e: print(e.strerror)' 2>&1 || true)
case $out in *"not permitted"*) echo "ok: IPAddressDeny=any: sendto 127.0.0.1: $out";; *) fail "IPAddressDeny=any not enforced: sendto 127.0.0.1: $out";; esac


# --- 4. checks -------------------------------------------------------------------------
show() { cexec systemctl show notegwd -p "$1" --value; }
expect() { # property expected
	local v; v=$(show "$1")
	if [ "$v" = "$2" ]; then echo "ok: $1=$v"; else fail "$1=$v (expected $2)"; fi
}

stage "systemctl start notegwd"
if ! cexec timeout 60 systemctl start notegwd; then
	fail "systemctl start notegwd"
	cexec systemctl --no-pager status notegwd || true
	cexec journalctl --no-pager -u notegwd -n 50 || true
	exit 1
fi
expect ActiveState active
expect SubState running
echo "status text: $(show StatusText)"

stage "notegw status"
cexec notegw status || fail "notegw status"

stage "systemctl reload notegwd"
cexec timeout 30 systemctl reload notegwd || fail "reload"
sleep 2
expect ActiveState active
expect NRestarts 0

stage "notegw send"
cexec notegw send test.qo '{"k":1}' || fail "notegw send"
found=
for _ in $(seq 1 60); do
	if cexec grep -q '"test.qo"' /srv/sim/hub.jsonl 2>/dev/null; then found=1; break; fi
	sleep 0.5
done
if [ -n "$found" ]; then echo "ok: note in hub.jsonl:"; cexec grep '"test.qo"' /srv/sim/hub.jsonl; else fail "note not in hub.jsonl"; fi

stage "sandbox"
for p in User ProtectSystem ProtectHome PrivateTmp NoNewPrivileges CapabilityBoundingSet \
	DevicePolicy DeviceAllow RestrictNamespaces MemoryDenyWriteExecute IPAddressDeny \
	SystemCallFilter ProtectProc ProcSubset WatchdogUSec; do
	printf '%s=%s\n' "$p" "$(show "$p" | cut -c1-200)"
done
MAINPID=$(show MainPID)
echo "MainPID (container ns) = $MAINPID"
cexec cat /proc/$MAINPID/status | grep -E '^(Uid|Gid|Groups|CapEff|CapBnd|NoNewPrivs|Seccomp):'
if cexec nsenter -t "$MAINPID" -m -- sh -c 'touch /etc/notegw-ro-test' 2>/dev/null; then
	fail "/etc writable in the service's namespace"; cexec rm -f /etc/notegw-ro-test
else echo "ok: /etc read-only in the service's mount namespace"; fi
cexec nsenter -t "$MAINPID" -m -- sh -c 'grep -E " /(etc|home|usr|tmp|var/lib/notegw|run/notegw) " /proc/self/mountinfo' || true
if cexec nsenter -t "$MAINPID" -m -- ls /home >/dev/null 2>&1 && [ -n "$(cexec nsenter -t "$MAINPID" -m -- ls -A /home)" ]; then
	fail "/home visible in the service's namespace"
else echo "ok: /home empty/inaccessible in the service's mount namespace"; fi
cexec nsenter -t "$MAINPID" -m -- ls -la /home || true

stage "control socket"
cexec ls -ld /run/notegw /run/notegw/control.sock
cexec journalctl --no-pager -u notegwd -o cat | grep -i chown || true
cexec systemd-analyze --no-pager security notegwd | tail -n 1

stage "watchdog: 40 s"
WD0=$(show WatchdogTimestampMonotonic)
sleep 40 & wait $!   # interruptible: a TERM runs the cleanup trap at once
expect ActiveState active
expect NRestarts 0
expect Result success
WD1=$(show WatchdogTimestampMonotonic)
if [ "$WD1" != "$WD0" ]; then echo "ok: keep-alives arrive (WatchdogTimestampMonotonic $WD0 -> $WD1)"; else fail "no WATCHDOG=1 seen in 40 s"; fi
if cexec journalctl --no-pager -u notegwd | grep -i watchdog; then fail "watchdog message in journal"; else echo "ok: no watchdog messages"; fi

stage "systemctl stop notegwd"
cexec timeout 60 systemctl stop notegwd || fail "stop"
expect ActiveState inactive
expect Result success
expect ExecMainStatus 0

stage "journal"
cexec journalctl --no-pager -u notegwd -o short-monotonic | tail -40
n=$(cexec journalctl --no-pager -u notegwd -o cat _COMM=notegwd | wc -l)
if [ "$n" -gt 0 ]; then echo "ok: $n log lines from notegwd"; else fail "no notegwd lines in journal"; fi

# --- 5. what only a real systemd shows ---------------------------------------------------
card_state() { cexec notegw status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); s=s.get("status", s); print(s["notecard"]["state"])'; }
wait_ready() { # what
	local st=
	for _ in $(seq 1 60); do
		st=$(card_state 2>/dev/null || true)
		[ "$st" = ready ] && break
		sleep 0.5
	done
	if [ "$st" = ready ]; then echo "ok: card ready ($1)"; else fail "card $st, not ready ($1)"; cexec notegw status || true; fi
}

stage "restart on the same serial device"
cexec timeout 60 systemctl restart notegwd || fail "restart"
wait_ready "after a restart on the same pty"

stage "[control] group = dialout: the socket takes it (needs @chown)"
cexec sh -c 'printf "[control]\ngroup = dialout\n" >/etc/notegw/conf.d/91-group.conf'
cexec timeout 60 systemctl restart notegwd || fail "restart with [control] group"
g=$(cexec stat -c %G /run/notegw/control.sock)
if [ "$g" = dialout ]; then echo "ok: control.sock group dialout"; else fail "control.sock group $g, not dialout"; fi
if cexec journalctl --no-pager -u notegwd -o cat | grep -i 'chown\|cannot give'; then fail "chown refused under the unit"; fi
cexec rm -f /etc/notegw/conf.d/91-group.conf

stage "the store in the shared queue directory"
cexec ls -ld /var/lib/notegw /var/lib/notegw/queue /var/lib/notegw/queue/store.db
m=$(cexec stat -c '%a %U:%G' /var/lib/notegw/queue/store.db)
[ "$m" = "660 notegw:notegw-store" ] && echo "ok: store.db $m" || fail "store.db is $m, not 660 notegw:notegw-store"
# An earlier release's store (at /var/lib/notegw/store.db, private): the daemon
# moves it in and gives it the queue's group, under the unit's filters.
cexec timeout 60 systemctl stop notegwd || fail "stop before the move"
cexec sh -c 'mv /var/lib/notegw/queue/store.db /var/lib/notegw/store.db &&
	chown notegw:notegw /var/lib/notegw/store.db && chmod 600 /var/lib/notegw/store.db'
cexec timeout 60 systemctl start notegwd || fail "start with a store at the old path"
m=$(cexec stat -c '%a %U:%G' /var/lib/notegw/queue/store.db 2>&1)
[ "$m" = "660 notegw:notegw-store" ] && echo "ok: moved store.db $m" || fail "moved store.db is $m"
cexec test ! -e /var/lib/notegw/store.db || fail "the old store is still at /var/lib/notegw/store.db"
cexec journalctl --no-pager -u notegwd -o cat | grep 'store: moved' || fail "no 'store: moved' in the journal"

stage "broker plugin in the packaged mosquitto.service"
cexec cp /usr/share/doc/notegw-mqtt-broker/examples/notegw.conf /etc/mosquitto/conf.d/notegw.conf
cexec sh -c 'printf "[mqtt]\ningest = broker\n" >/etc/notegw/conf.d/92-broker.conf'
cexec timeout 60 systemctl restart mosquitto || { fail "mosquitto did not start"; cexec journalctl --no-pager -u mosquitto -n 30 || true; }
cexec timeout 30 systemctl reload notegwd || fail "reload for ingest = broker"
for i in 1 2 3; do
	cexec mosquitto_pub -h localhost -q 1 -t notecard/out/broker.qo -m "{\"b\":$i}" || fail "mosquitto_pub $i"
done
n=0
for _ in $(seq 1 60); do
	n=$(cexec grep -c '"broker.qo"' /srv/sim/hub.jsonl 2>/dev/null || true)
	[ "${n:-0}" -ge 3 ] && break
	sleep 0.5
done
if [ "${n:-0}" -ge 3 ]; then echo "ok: 3 messages through mosquitto (as user mosquitto) at the hub"; else
	fail "$n of 3 broker messages at the hub"; cexec tail -20 /var/log/mosquitto/mosquitto.log || true; fi
bp=$(cexec notegw status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); s=s.get("status", s); print(s["plugins"]["mqtt"].get("broker_plugin"))' 2>&1)
[ "$bp" = True ] && echo "ok: the client plugin heard the broker plugin" || fail "broker_plugin: $bp"
# notegwd's [notefile.*] reach the plugin through notefiles.conf beside the store,
# written under the unit and readable by mosquitto through notegw-store only.
cexec sh -c 'printf "[notefile.sat.qo]\ntemplate = auto\nntn = true\n" >/etc/notegw/conf.d/93-sat.conf'
cexec timeout 30 systemctl reload notegwd || fail "reload for [notefile.sat.qo]"
m=$(cexec stat -c '%a %U:%G' /var/lib/notegw/queue/notefiles.conf 2>&1)
[ "$m" = "640 notegw:notegw-store" ] && echo "ok: notefiles.conf $m" || fail "notefiles.conf is $m"
cexec grep -q 'notefile.sat.qo' /var/lib/notegw/queue/notefiles.conf || fail "the reload did not export [notefile.sat.qo]"
big=$(python3 -c 'import json; print(json.dumps({"x": "a" * 300}))')
cexec mosquitto_pub -h localhost -q 1 -t notecard/out/sat.qo -m "$big" || fail "mosquitto_pub sat.qo"
sleep 1
if cexec grep -q 'refused notecard/out/sat.qo.*satellite' /var/log/mosquitto/mosquitto.log ||
	cexec journalctl --no-pager -u mosquitto -o cat | grep -q 'refused notecard/out/sat.qo.*satellite'; then
	echo "ok: the broker plugin refused an oversize satellite body under mosquitto.service"
else
	fail "no satellite refusal in mosquitto's log"; cexec tail -20 /var/log/mosquitto/mosquitto.log || true
fi
cexec rm -f /etc/notegw/conf.d/93-sat.conf
cexec ps -o user=,group=,supgrp=,comm= -C mosquitto
cexec timeout 60 systemctl stop notegwd mosquitto || fail "stop notegwd and mosquitto"
expect Result success
expect ExecMainStatus 0

stage "done"
if [ "$FAILED" = 0 ]; then echo "ALL CHECKS PASSED"; else echo "SOME CHECKS FAILED"; exit 1; fi
