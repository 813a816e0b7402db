#!/usr/bin/env bash
# The daemon under valgrind memcheck through a representative flow (see
# tests/memcheck/valgrind_flow.py): exits non-zero on any memory error or definite
# leak. Needs a plain (non-sanitizer) build with the plugins and `make check`'s
# helpers built. Usage: tools/valgrind-suite.sh [BUILD_DIR]   (default build-ci)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bdir=$(cd "${1:-$top/build-ci}" && pwd)
export top_srcdir=$top top_builddir=$bdir
export NOTEGW_SCHEMA_DIR=${NOTEGW_SCHEMA_DIR:-$top/../shared/notecard-schema}
exec /usr/bin/python3 "$top/tests/memcheck/valgrind_flow.py"
