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
# (BUILD/sanitizer-logs/); a stage fails when a test fails or when any report was written,
# and prints the reports. Suppressions: tests/sanitizers/*.supp (each entry says why).
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
    state=$(mktemp -d /tmp/opendms-test-servers.XXXXXX)
    chmod 755 "$state"
    stop() { "$root/tests/support/servers.sh" stop "$state" || true; rm -rf "$state"; }
    trap stop EXIT
    "$root/tests/support/servers.sh" start "$state"
    # shellcheck disable=SC1091
    source "$state/env"
fi

# Builds the unit and integration tests (and the daemons the latter start) into $1 with
# the sanitizer $2. -O1 with line tables: what the sanitizers recommend, and about half
# the build time of the default -O2 -g.
build() {
    local dir=$1 sanitizer=$2
    cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1" "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
        -DOPENDMS_SANITIZE="$sanitizer" -DOPENDMS_WERROR=ON >/dev/null
    cmake --build "$dir" -j "$jobs" --target opendms_unit_tests opendms_integration_tests
}

# Runs ctest in $1 with the remaining arguments; then fails if any report was written.
run_ctest() {
    local dir=$1
    shift
    local rc=0
    (cd "$dir" && ctest --output-on-failure --timeout 900 "$@") || rc=$?
    local reports
    reports=$(find "$dir/sanitizer-logs" -type f -size +0 | sort)
    if [[ -n $reports ]]; then
        echo "run_sanitizers: sanitizer reports in $dir/sanitizer-logs:" >&2
        while read -r f; do
            echo "==== $f" >&2
            cat "$f" >&2
        done <<<"$reports"
        rc=1
    fi
    return "$rc"
}

fresh_logs() {
    rm -rf "$1/sanitizer-logs"
    mkdir -p "$1/sanitizer-logs"
}

asan_stage() {
    local dir=${ASAN_BUILD_DIR:-$root/build-asan}
    build "$dir" address
    fresh_logs "$dir"
    local logs=$dir/sanitizer-logs
    export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:strict_init_order=1:detect_stack_use_after_return=1:log_path=$logs/asan"
    export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan:suppressions=$supp/ubsan.supp"
    local rc=0
    run_ctest "$dir" -L unit -j "$(nproc)" || rc=1
    run_ctest "$dir" -L integration || rc=1
    unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
    return "$rc"
}

tsan_stage() {
    local dir=${TSAN_BUILD_DIR:-$root/build-tsan}
    build "$dir" thread
    fresh_logs "$dir"
    local logs=$dir/sanitizer-logs
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:log_path=$logs/tsan:suppressions=$supp/tsan.supp"
    local rc=0
    run_ctest "$dir" -L unit -j "$(nproc)" || rc=1
    local only=()
    [[ -z ${TSAN_INTEGRATION:-} ]] || only=(-R "$TSAN_INTEGRATION")
    run_ctest "$dir" -L integration "${only[@]}" || rc=1
    unset TSAN_OPTIONS
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
