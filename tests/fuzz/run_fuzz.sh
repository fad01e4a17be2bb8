#!/usr/bin/env bash
# The bounded fuzz run: builds the libFuzzer targets of tests/fuzz with clang, ASan and
# UBSan into their own build directory, then runs each for FUZZ_SECONDS through ctest
# (label "fuzz"). Exits non-zero when a target finds a crash, a leak, a timeout or an
# out-of-memory input; the input is kept in BUILD/fuzz-artifacts/<target>/ and listed
# with the command that reproduces it.
#
#   tests/fuzz/run_fuzz.sh              build-fuzz, 40 s per target
#   FUZZ_SECONDS=600 tests/fuzz/run_fuzz.sh
#
# Environment: FUZZ_BUILD_DIR (default ./build-fuzz), FUZZ_SECONDS (default 40),
# BUILD_JOBS (default: all cores). Needs clang, libclang-rt-14-dev and llvm
# (llvm-symbolizer): deploy/install-deps.sh test.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-40}
jobs=${BUILD_JOBS:-$(nproc)}

# -O1 with line tables: the usual level for fuzzing under ASan; full debug info would
# double the build for nothing a report needs.
cmake -S "$root" -B "$build" -G Ninja \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
    -DOPENDMS_SANITIZE=address -DOPENDMS_WERROR=ON \
    -DOPENDMS_FUZZ=ON -DOPENDMS_FUZZ_SECONDS="$seconds" >/dev/null
cmake --build "$build" -j "$jobs" --target opendms_fuzz_targets

# tests/fuzz/CMakeLists.txt compiles the network front ends without instrumentation,
# because no target links them: this keeps that true (no function they define is in a
# target).
plain=$(find "$build" -name 'http_server.cpp.o' -o -name 'https_client.cpp.o' \
             -o -name 'field_metrics.cpp.o' | grep -v '/tests/')
if (($(wc -w <<<"$plain") != 3)); then
    echo "run_fuzz: expected the 3 plain objects of tests/fuzz/CMakeLists.txt, found: $plain" >&2
    exit 1
fi
plain_symbols=$(for o in $plain; do nm --defined-only "$o" | awk '$2 == "T" {print $3}'; done | sort -u)
for target in "$build"/tests/fuzz/fuzz_*; do
    [[ -f $target && -x $target ]] || continue
    linked=$(comm -12 <(echo "$plain_symbols") \
                      <(nm --defined-only "$target" | awk '{print $3}' | sort -u) | head -3)
    if [[ -n $linked ]]; then
        echo "run_fuzz: $target links code compiled without instrumentation (tests/fuzz/" \
             "CMakeLists.txt: take its file off the plain list):" $linked >&2
        exit 1
    fi
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$root/tests/sanitizers/ubsan.supp}
stamp=$(mktemp /tmp/opendms-fuzz-stamp.XXXXXX)
trap 'rm -f "$stamp"' EXIT
rc=0
ctest --test-dir "$build" -L fuzz -j "$(nproc)" --output-on-failure \
      --timeout $((seconds * 3 + 120)) || rc=$?

found=$(find "$build/fuzz-artifacts" -type f -newer "$stamp" | sort)
if [[ -n $found ]]; then
    echo "run_fuzz: inputs found (kept; reproduce each with the command shown):" >&2
    while read -r f; do
        target=$(basename "$(dirname "$f")")
        echo "  $build/tests/fuzz/fuzz_$target $f" >&2
    done <<<"$found"
    rc=1
fi
exit "$rc"
