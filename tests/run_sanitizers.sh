#!/usr/bin/env bash
# The sanitizer stages: the unit and integration tests built with GCC and warnings as
# errors, under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan) and under
# ThreadSanitizer (build-tsan), each run through ctest. docs/reliability.md, "Fuzzing and
# sanitizers", says what each stage covers and why.
#
#   tests/run_sanitizers.sh              both stages
#   tests/run_sanitizers.sh asan         one of them (asan | tsan)
#
# Test servers: the ones the environment names (OPENDMS_TEST_*: tests/run_all.sh starts
# them and exports it), else its own, started and stopped here (tests/support/servers.sh).
# Every report, from a test or from a daemon a test started, goes to a file
# (BUILD/sanitizer-logs/unit|integration/); a stage fails when a test fails or when any
# report was written, and prints the reports. Suppressions: tests/sanitizers/*.supp (each entry says why).
#
# Environment: ASAN_BUILD_DIR (default ./build-asan), TSAN_BUILD_DIR (./build-tsan),
# BUILD_JOBS (default: all cores), TSAN_INTEGRATION (a ctest -R regex on test names to run
# only some integration tests under TSan, by hand; default: all of them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=${BUILD_JOBS:-$(nproc)}
supp=$root/tests/sanitizers
stages=("$@")
((${#stages[@]})) || stages=(asan tsan)

if [[ -z ${OPENDMS_TEST_PG_HOST:-} ]]; then
    # shellcheck source=support/test_servers.sh
    source "$root/tests/support/test_servers.sh"
    start_test_servers
fi

# Builds the unit and integration tests (and the daemons the latter start) into $1 with
# the sanitizer $2 and the product code at optimisation level $3, with line tables (a
# third less compile time than full debug info). ASan+UBSan: -O0, 20 % less build time
# than -O1 (405 s against 508 s cold on 2 cores) for the same test times (unit 87 s
# against 89 s, integration 264 s against 242 s), and at -O0 every access in the source
# is checked (optimisation can only remove some). TSan: -O1, what TSan needs to run at a usable speed. The tests' own code
# is always -O0, a third of the time of -O1 under the sanitizers (tests/CMakeLists.txt,
# OPENDMS_TEST_COMPILE_OPTIONS).
build() {
    local dir=$1 sanitizer=$2 opt=$3
    cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_C_FLAGS_RELWITHDEBINFO=$opt -g1" "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$opt -g1" \
        -DOPENDMS_TEST_COMPILE_OPTIONS=-O0 \
        -DOPENDMS_SANITIZE="$sanitizer" -DOPENDMS_WERROR=ON >/dev/null || return 1
    cmake --build "$dir" -j "$jobs" --target opendms_unit_tests opendms_integration_tests
}

# run_ctest DIR SANITIZER NAME CTEST_ARGS...: runs ctest in DIR with the sanitizer's
# options, its reports going to DIR/sanitizer-logs/NAME/ (emptied first); fails when a
# test fails or any report was written, and prints the reports.
run_ctest() {
    local dir=$1 sanitizer=$2 name=$3
    shift 3
    local logs=$dir/sanitizer-logs/$name
    rm -rf "$logs"
    mkdir -p "$logs"
    local env=()
    if [[ $sanitizer == address ]]; then
        env=("ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_init_order=1:detect_stack_use_after_return=1:log_path=$logs/asan"
             "LSAN_OPTIONS=suppressions=$supp/lsan.supp:print_suppressions=0"
             "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan:suppressions=$supp/ubsan.supp")
    else
        env=("TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:log_path=$logs/tsan:suppressions=$supp/tsan.supp")
    fi
    local rc=0
    (cd "$dir" && env "${env[@]}" ctest --output-on-failure --timeout 900 "$@") || rc=$?
    local reports
    reports=$(find "$logs" -type f -size +0 | sort)
    if [[ -n $reports ]]; then
        echo "run_sanitizers: sanitizer reports in $logs:" >&2
        while read -r f; do
            echo "==== $f" >&2
            cat "$f" >&2
        done <<<"$reports"
        rc=1
    fi
    return "$rc"
}

asan_stage() {
    local dir=${ASAN_BUILD_DIR:-$root/build-asan}
    # `|| return`: set -e does not reach into a function called as `asan_stage || ...`,
    # and a test that failed to build must fail the stage, not go missing from it.
    build "$dir" address -O0 || { echo "run_sanitizers: the asan build failed" >&2; return 1; }
    local rc=0
    run_ctest "$dir" address unit -L unit -j "$(nproc)" || rc=1
    run_ctest "$dir" address integration -L integration || rc=1
    return "$rc"
}

tsan_stage() {
    local dir=${TSAN_BUILD_DIR:-$root/build-tsan}
    build "$dir" thread -O1 || { echo "run_sanitizers: the tsan build failed" >&2; return 1; }
    local only=()
    [[ -z ${TSAN_INTEGRATION:-} ]] || only=(-R "$TSAN_INTEGRATION")
    local rc=0
    run_ctest "$dir" thread unit -L unit -j "$(nproc)" || rc=1
    run_ctest "$dir" thread integration -L integration "${only[@]}" || rc=1
    return "$rc"
}

rc=0
for s in "${stages[@]}"; do
    case $s in
        asan | tsan)
            start=$SECONDS
            echo "run_sanitizers: $s stage"
            "${s}_stage" || rc=1
            echo "run_sanitizers: $s stage took $((SECONDS - start)) s"
            ;;
        *)
            echo "usage: $0 [asan] [tsan]" >&2
            exit 2
            ;;
    esac
done
exit "$rc"
