#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is missing, builds with
# warnings as errors, starts Mosquitto, PostgreSQL and MariaDB on 127.0.0.1 in a temporary
# directory, runs every test through ctest, then the sanitizer stages (unit and integration
# tests under ASan+UBSan and under TSan: tests/run_sanitizers.sh) and the bounded fuzz run
# (tests/fuzz/run_fuzz.sh), and stops the servers (also on failure). Prints how long each
# stage took; fails when any stage failed.
#
#   tests/run_all.sh                 everything
#   tests/run_all.sh -L unit         extra arguments go to ctest (here: the fast subset);
#                                    the sanitizer and fuzz stages are then skipped
#
# Environment: BUILD_DIR (default ./build), OPENDMS_SKIP_INSTALL=1 to skip apt,
# OPENDMS_SANITIZERS=0|1 and OPENDMS_FUZZ=0|1 to skip or force those stages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$root/build}
extra=1
(($# == 0)) || extra=0
sanitizers=${OPENDMS_SANITIZERS:-$extra}
fuzz=${OPENDMS_FUZZ:-$extra}

summary=()
failed=0
# stage NAME COMMAND...: runs it, times it, remembers the outcome.
stage() {
    local name=$1 start=$SECONDS rc=0
    shift
    echo "==== run_all: $name"
    "$@" || rc=$?
    summary+=("$(printf '%-28s %6d s  %s' "$name" $((SECONDS - start)) "$([[ $rc == 0 ]] && echo ok || echo "FAILED ($rc)")")")
    ((rc == 0)) || failed=1
    return 0
}
report() {
    echo "==== run_all: stages"
    printf '  %s\n' "${summary[@]}"
}

[[ "${OPENDMS_SKIP_INSTALL:-0}" == 1 ]] || "$root/deploy/install-deps.sh" test
# Line tables only (-g1) instead of full debug info: a quarter less compile time, and
# every backtrace and sanitizer report still has its file and line.
stage "build" "$root/deploy/build.sh" -DOPENDMS_BUILD_TESTS=ON -DOPENDMS_WERROR=ON \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
if ((failed)); then
    report
    exit 1
fi

# shellcheck source=support/test_servers.sh
source "$root/tests/support/test_servers.sh"
start_test_servers

run_ctest() { (cd "$BUILD_DIR" && ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@"); }
stage "tests" run_ctest "$@"
((sanitizers == 0)) || stage "sanitizers: asan+ubsan" "$root/tests/run_sanitizers.sh" asan
((sanitizers == 0)) || stage "sanitizers: tsan" "$root/tests/run_sanitizers.sh" tsan
((fuzz == 0)) || stage "fuzz (bounded)" "$root/tests/fuzz/run_fuzz.sh"
report
exit "$failed"
