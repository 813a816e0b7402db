#!/usr/bin/env bash
# Bring notegw up on the simulator so a newcomer sees notes flow:
# notecard-sim (serial, on a pty) + mosquitto (a free loopback port) + notegwd with
# the MQTT plugin. Publishes a few notes over MQTT, syncs, shows what reached the
# simulated Notehub, then delivers a note from "the cloud" to an MQTT subscriber.
# Usage: tools/demo.sh [--stay]   (--stay: keep everything running until Ctrl-C)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
stay=0
[ "${1:-}" = --stay ] && stay=1
py=/usr/bin/python3

need_install=0
for t in mosquitto mosquitto_pub mosquitto_sub autoreconf pkg-config; do
	command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || need_install=1
done
pkg-config --exists jansson libsystemd sqlite3 libcrypto libmosquitto libmodbus libgpiod \
	2>/dev/null || need_install=1
[ -x "$py" ] || need_install=1
if [ $need_install = 1 ]; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "demo: installing build and run dependencies (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q
	# shellcheck disable=SC2046
	$sudo apt-get install -y -q --no-install-recommends $(grep -v '^#' tools/deps.txt)
fi

b=build-demo
if [ ! -x $b/notegwd ]; then
	echo "demo: building (in $b/)"
	[ -x configure ] || autoreconf -fi >/dev/null
	mkdir -p $b
	(cd $b && ../configure >/dev/null)
fi
make -C $b -j"$(nproc)" >/dev/null
make -C $b -j"$(nproc)" tests/lib/libi2cshim.la >/dev/null 2>&1 || true

d=$(mktemp -d /tmp/notegw-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "demo: stopped; files kept in $d"
}
trap cleanup EXIT INT TERM

port=$($py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$d/mosquitto.conf"
"$mosq" -c "$d/mosquitto.conf" >"$d/mosquitto.log" 2>&1 &
pids+=($!)

$py sim/notecard-sim --serial --control "$d/sim.sock" --info "$d/sim.json" --hub "$d/hub.jsonl" \
	--state "$d/card" --log "$d/card.log" --product com.example.demo:gateway >"$d/sim.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$d/sim.json" ] && break; sleep 0.1; done
pty=$($py -c 'import json,sys; print(json.load(open(sys.argv[1]))["serial"])' "$d/sim.json")

mkdir -p "$d/plugins"
ln -s "$top/$b/plugins/mqtt/.libs/mqtt.so" "$d/plugins/mqtt.so"
cat >"$d/notegw.conf" <<CONF
[daemon]
plugin_dir = $d/plugins
state_dir = $d

[notecard]
transport = serial
device = $pty
poll_interval = 1s

[hub]
product = com.example.demo:gateway
mode = continuous

[store]
path = $d/store.db

[control]
socket = $d/control.sock

[update]
enabled = false

[mqtt]
enabled = true
host = 127.0.0.1
port = $port
prefix = notecard
CONF
$b/notegwd -f -c "$d/notegw.conf" >"$d/notegwd.log" 2>&1 &
pids+=($!)
cli() { $b/notegw -s "$d/control.sock" "$@"; }
for _ in $(seq 100); do cli status >/dev/null 2>&1 && break; sleep 0.1; done

echo "demo: notegwd is up (log: $d/notegwd.log); mosquitto on 127.0.0.1:$port; card on $pty"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'notecard/in/#' -v -C 1 -W 30 >"$d/inbound.txt" 2>&1 &
subpid=$!
for i in 1 2 3; do
	mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t notecard/out/sensors.qo \
		-m "{\"temp\":2$i.5,\"humidity\":4$i}"
	echo "demo: published {\"temp\":2$i.5,\"humidity\":4$i} to notecard/out/sensors.qo"
done
cli send alerts.qo '{"door":"open"}' && echo "demo: queued one note with 'notegw send'"
echo "demo: waiting for the notes to reach the simulated Notehub"
for _ in $(seq 150); do
	[ -f "$d/hub.jsonl" ] && [ "$(wc -l <"$d/hub.jsonl")" -ge 4 ] && break
	cli sync >/dev/null 2>&1 || true
	sleep 0.2
done
echo "--- what reached Notehub ($d/hub.jsonl):"
cat "$d/hub.jsonl" 2>/dev/null || echo "(nothing yet: see $d/notegwd.log)"
echo "--- a note from the cloud to the gateway (data.qi), delivered on MQTT:"
$py - "$d/sim.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(json.dumps({"cmd": "inject", "file": "data.qi", "body": {"setpoint": 21}, "now": True}).encode() + b"\n")
s.recv(4096)
PY
wait $subpid 2>/dev/null || true
cat "$d/inbound.txt"
echo "--- notegw status:"
cli status || true
if [ $stay = 1 ]; then
	echo "demo: running; publish with: mosquitto_pub -h 127.0.0.1 -p $port -t notecard/out/data.qo -m '{\"x\":1}'"
	echo "demo: Ctrl-C to stop"
	wait
fi
