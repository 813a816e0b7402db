#!/usr/bin/env bash
# List every shared library the installed notegw binaries and plugins link, with
# the Debian package and version that provides it, and check them against the
# versions Debian has fixed known CVEs in: with debsecan when it can reach its data
# (DEBSECAN_SOURCE may name a local copy of the security tracker's feed), else it
# prints the list and the manual procedure (docs/security.md).
# Usage: tools/check-deps.sh [BINARY...]   (default: the build tree's programs)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bins=("$@")
if [ ${#bins[@]} = 0 ]; then
	for b in build-ci/notegwd build-ci/notegw build-ci/plugins/*/.libs/*.so; do
		[ -e "$top/$b" ] && bins+=("$top/$b")
	done
fi
[ ${#bins[@]} -gt 0 ] || { echo "check-deps: no binaries (build first)" >&2; exit 2; }
declare -A seen
printf '%-28s %-34s %s\n' "library" "package" "version"
for b in "${bins[@]}"; do
	while read -r lib; do
		[ -n "$lib" ] || continue
		real=$(readlink -f "$lib")
		pkg=$(dpkg -S "$real" 2>/dev/null | head -1 | cut -d: -f1)
		[ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1)
		[ -n "$pkg" ] || continue
		[ -n "${seen[$pkg]:-}" ] && continue
		seen[$pkg]=1
		ver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)
		printf '%-28s %-34s %s\n' "$(basename "$lib")" "$pkg" "$ver"
	done < <(ldd "$b" 2>/dev/null | awk '/=>/ {print $3}')
done
pkgs="${!seen[*]}"
if command -v debsecan >/dev/null 2>&1; then
	echo "== debsecan (suite bookworm)"
	# shellcheck disable=SC2086
	if out=$(debsecan --suite bookworm --format packages ${DEBSECAN_SOURCE:+--source "$DEBSECAN_SOURCE"} 2>&1); then
		hits=$(echo "$out" | grep -xF -f <(echo "$pkgs" | tr ' ' '\n') || true)
		if [ -n "$hits" ]; then
			echo "packages with known unfixed or fixable vulnerabilities:"
			echo "$hits"
			exit 1
		fi
		echo "no known vulnerabilities in the linked packages"
		exit 0
	fi
	echo "debsecan could not fetch its data (offline?): $out" | head -3
fi
echo "check-deps: no vulnerability data reachable here; procedure: docs/security.md"
exit 0
