#!/bin/sh
# `make install` into a scratch prefix gives a notecard-sim that runs from there alone.
set -u
top_builddir=${top_builddir:-.}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
if ! make -C "$top_builddir" -s install-binSCRIPTS install-dist_notecard_simDATA \
	DESTDIR="$dest" >"$dest/make.log" 2>&1; then
	cat "$dest/make.log"
	echo "FAIL: install"
	exit 1
fi
bin=$(find "$dest" -path '*/bin/notecard-sim' | head -n 1)
[ -x "$bin" ] || { echo "FAIL: notecard-sim not installed"; exit 1; }
[ -n "$(find "$dest" -path '*/notegw/sim/notecard_sim/card.py')" ] || {
	echo "FAIL: package not installed"; exit 1; }
# The launcher finds its package relative to itself (bindir/../share) or in the configured datadir.
out=$(cd / && "$bin" --help 2>&1) || { echo "$out"; echo "FAIL: --help"; exit 1; }
echo "$out" | grep -q -- '--transcript' || { echo "FAIL: help text"; exit 1; }
grep -q "notegw/sim" "$bin" || { echo "FAIL: launcher does not name the data directory"; exit 1; }
# and it serves a card from there
sock="$dest/c.sock"
(cd / && exec "$bin" --serial --control "$sock" >"$dest/out" 2>&1) &
pid=$!
i=0
while ! grep -q '^ready' "$dest/out" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 200 ] && { cat "$dest/out"; kill $pid; echo "FAIL: no ready"; exit 1; }
	sleep 0.05
done
grep -q '^serial: /dev/pts/' "$dest/out" || { echo "FAIL: no pty"; kill $pid; exit 1; }
kill $pid
wait $pid
echo "installed notecard-sim works"
exit 0
