#!/usr/bin/env bash
# The central server (`opendms-central serve` on PostgreSQL) against baselines measured in
# the same run: batch ingest against PostgreSQL's own COPY, single-record requests against
# pgbench running the same upsert, and the server's RSS with 256 idle keep-alive connections.
#
#   tests/perf/run_central_bench.sh [--repeat 3] [--records 100000] [--batch-records 500]
#       [--batch-connections 4] [--seconds 10] [--connections 32] [--idle-connections 256]
#       [--pool-sizes 8,32] [--parts batch,single,idle] [--server-env NAME=VALUE]...
#
# Arguments go to build-perf/tests/perf/central_bench (tests/perf/central_bench.cpp says what
# each one measures). Works from a fresh checkout on a machine prepared for tests/run_all.sh
# (Debian 12 with postgresql-15, which brings pgbench):
#   - builds opendms-central and central_bench in Release into BUILD_DIR (default
#     ./build-perf); OPENDMS_SKIP_BUILD=1 uses the binaries already there;
#   - PostgreSQL: when OPENDMS_TEST_PG_HOST is set (e.g. after
#     `set -a; . /tmp/opendms-servers/env; set +a`) that server is used; otherwise
#     tests/support/servers.sh starts private servers in a temporary directory and stops them
#     at the end. Both sides always run on the same server with the same settings (the test
#     servers run with fsync=off, synchronous_commit=off: see servers.sh); the settings are
#     printed first.
# Every database it makes is called opendms_bench_<pid>_<n> and dropped after its run.
# Loopback only. About 1 minute a repetition with the defaults; at most 10 minutes for 3.
# Prints a Markdown table for docs/performance.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-perf}
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}

if [[ ${OPENDMS_SKIP_BUILD:-0} != 1 ]]; then
    cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOPENDMS_BUILD_TESTS=ON \
        >/dev/null
    cmake --build "$build" -j "${BUILD_JOBS:-$(nproc)}" --target opendms-central central_bench
fi

work=$(mktemp -d /tmp/opendms-cbench.XXXXXX)
chmod 755 "$work"
state=""
cleanup() {
    if [[ -n $state ]]; then
        "$root/tests/support/servers.sh" stop "$state" >/dev/null 2>&1 || true
    fi
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

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB;" \
    "$(date -u +%Y-%m-%dT%H:%MZ); build: $build"
"$build/tests/perf/central_bench" --central "$build/central-server/opendms-central" \
    --pgbench "$pg_bin/pgbench" --dir "$work" "$@"
