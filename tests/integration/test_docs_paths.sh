#!/bin/bash
# test_docs_paths: every documentation file cited in the tree (a "docs/NAME.md" path in
# code, build files, man pages, README or the docs themselves) exists, so a comment
# never sends a reader to a page that was renamed or never written.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
: "${top_srcdir:?}"
cd "$top_srcdir" || exit 1
self=tests/integration/test_docs_paths.sh

# Where citations live; build output and VCS data are not sources.
files=$(find . \( -name .git -o -name build -o -name 'build-*' -o -name autom4te.cache \
	-o -name _build -o -name corpus \) -prune -o -type f -print |
	sed 's|^\./||' | grep -v -x -e "$self" -e configure -e 'config\..*' -e 'aclocal\.m4' \
	-e '.*\.in' -e 'Makefile' -e 'libtool' -e '.*\.o' -e '.*\.so' | sort)
[ -n "$files" ] || { echo "FAIL: no files found under $top_srcdir"; exit 1; }

# FILE:LINE:docs/PATH for each citation; a path ends before blanks, quotes, brackets
# and sentence punctuation.
cites=$(printf '%s\n' "$files" | xargs -d '\n' grep -IHnoE \
	'(^|[^A-Za-z0-9_./-])docs/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*' 2>/dev/null |
	sed -E 's/^([^:]*:[0-9]+:)[^d]*/\1/; s/[.,:;]+$//')
[ -n "$cites" ] || { echo "FAIL: no docs/ citations found (the scan is broken)"; exit 1; }

fail=0 n=0
while IFS= read -r c; do
	path=${c#*:*:}
	n=$((n + 1))
	[ -e "$path" ] || { echo "FAIL: ${c%%:docs/*} cites $path, which does not exist"; fail=1; }
done <<<"$cites"
echo "$n citations of $(printf '%s\n' "$cites" | sed 's/^[^:]*:[0-9]*://' | sort -u | wc -l) docs files checked"
exit $fail
