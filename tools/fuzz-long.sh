#!/usr/bin/env bash
# A long fuzzing campaign: every harness (or those named) for HOURS in all, harnesses
# run side by side on all cores (JOBS=N to change), each through fuzz/run so crashes
# land in fuzz/crashes/ the same way. At the end, the inputs that add coverage are
# merged into a copy of the seed corpus (fuzz/corpus-new/<harness>) for review: copy
# what is worth keeping into fuzz/corpus/ and commit it.
# Usage: tools/fuzz-long.sh HOURS [HARNESS...]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
hours=${1:?usage: tools/fuzz-long.sh HOURS [HARNESS...]}
shift
jobs=${JOBS:-$(nproc)}
bdir=${FUZZ_BUILD:-$top/build-fuzz}
export FUZZ_BUILD=$bdir
harnesses=("$@")
if [ ${#harnesses[@]} = 0 ]; then
	for f in "$top"/fuzz/fuzz_*.c; do
		n=$(basename "$f" .c)
		harnesses+=("${n#fuzz_}")
	done
fi
n=${#harnesses[@]}
p=$((jobs < n ? jobs : n))
# each harness gets an equal share of HOURS x cores
secs=$(awk -v h="$hours" -v p="$p" -v n="$n" 'BEGIN { s = int(h * 3600 * p / n); print (s < 1 ? 1 : s) }')
echo "fuzz-long: ${#harnesses[@]} harnesses, $p at a time, ${secs}s each"
# build once (1 s each), so the parallel runs below do not race on make
"$top/fuzz/run" 1 "${harnesses[@]}" >/dev/null
status=0
printf '%s\n' "${harnesses[@]}" | xargs -P"$p" -I{} "$top/fuzz/run" "$secs" {} || status=1
for h in "${harnesses[@]}"; do
	new="$top/fuzz/corpus-new/$h"
	mkdir -p "$new"
	"$bdir/fuzz_$h" -merge=1 "$new" "$top/fuzz/corpus/$h" "$bdir/corpus-$h" >/dev/null 2>&1 || true
	echo "fuzz-long: $h: $(ls "$new" | wc -l) inputs in $new (seeds: $(ls "$top/fuzz/corpus/$h" | wc -l))"
done
[ $status = 0 ] || echo "fuzz-long: crashes in fuzz/crashes/: make each a regression test"
exit $status
