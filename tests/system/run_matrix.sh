#!/usr/bin/env bash
# The correctness matrix, and docs/reliability.md regenerated from it.
#
#   tests/system/run_matrix.sh           the long version (OPENDMS_MATRIX=long: 50 kills,
#                                        200,000-message outage, ...; about an hour)
#   OPENDMS_MATRIX=bounded tests/system/run_matrix.sh
#                                        the bounded version CI runs (a few minutes)
#
# Builds (BUILD_DIR, default ./build), starts the shared test servers like
# tests/run_all.sh (the matrix starts its own PostgreSQL and Mosquitto besides), runs the
# ctest label "system" and writes the table between the markers of docs/reliability.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$root/build}
export OPENDMS_MATRIX=${OPENDMS_MATRIX:-long}
[[ "${OPENDMS_SKIP_INSTALL:-0}" == 1 ]] || "$root/deploy/install-deps.sh" test
"$root/deploy/build.sh" -DOPENDMS_BUILD_TESTS=ON
results=$BUILD_DIR/reliability/results.jsonl
rm -f "$results"
export OPENDMS_RELIABILITY_OUT=$results
# shellcheck source=../support/test_servers.sh
source "$root/tests/support/test_servers.sh"
start_test_servers
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 7200 -L system) || status=$?
python3 "$root/tests/system/reliability_table.py" "$results" --into "$root/docs/reliability.md"
exit $status
