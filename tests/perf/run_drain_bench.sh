#!/usr/bin/env bash
# A field node's backlog drained to the central server (PostgreSQL, TLS on 127.0.0.1) by
# `opendms-field push --once`: batches against the seed's single records, measured in the
# same run (tests/perf/drain_bench.cpp says what is measured and how).
#
#   tests/perf/run_drain_bench.sh [--records 1000000] [--single-records 20000] [--repeat 1]
#       [--batch-size B] [--gzip-level G] [--pool P]
#
# Builds opendms-field, opendms-central and drain_bench in Release into BUILD_DIR (default
# ./build-perf; OPENDMS_SKIP_BUILD=1 uses what is there). PostgreSQL: the one named by
# OPENDMS_TEST_PG_* when set, else private servers started by tests/support/servers.sh in
# a temporary directory (fsync=off, synchronous_commit=off: see servers.sh). About 2
# minutes a repetition with the defaults. Prints a Markdown table for docs/performance.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-perf}
if [[ ${OPENDMS_SKIP_BUILD:-0} != 1 ]]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOPENDMS_BUILD_TESTS=ON >/dev/null
    cmake --build "$build" -j "${BUILD_JOBS:-$(nproc)}" --target opendms-field opendms-central drain_bench
fi
work=$(mktemp -d /tmp/opendms-drain.XXXXXX)
chmod 755 "$work"
state=""
cleanup() {
    if [[ -n $state ]]; then "$root/tests/support/servers.sh" stop "$state" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
if [[ -z ${OPENDMS_TEST_PG_HOST:-} ]]; then
    state=$work/servers
    "$root/tests/support/servers.sh" start "$state" >/dev/null
    # shellcheck disable=SC1091
    source "$state/env"
fi
export OPENDMS_TEST_PG_HOST OPENDMS_TEST_PG_PORT OPENDMS_TEST_PG_USER OPENDMS_TEST_PG_PASSWORD \
    OPENDMS_TEST_PG_DATABASE
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ); build: $build"
"$build/tests/perf/drain_bench" --field "$build/field-node/opendms-field" \
    --central "$build/central-server/opendms-central" --dir "$work/run" "$@"
