#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is missing, builds with
# warnings as errors, starts Mosquitto, PostgreSQL and MariaDB on 127.0.0.1 in a temporary
# directory, runs every test through ctest, and stops the servers (also on failure).
#
#   tests/run_all.sh                 everything
#   tests/run_all.sh -L unit         extra arguments go to ctest (here: the fast subset)
#
# Environment: BUILD_DIR (default ./build), OPENDMS_SKIP_INSTALL=1 to skip apt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$root/build}

[[ "${OPENDMS_SKIP_INSTALL:-0}" == 1 ]] || "$root/deploy/install-deps.sh" test
"$root/deploy/build.sh" -DOPENDMS_BUILD_TESTS=ON -DOPENDMS_WERROR=ON

state=$(mktemp -d /tmp/opendms-test-servers.XXXXXX)
chmod 755 "$state"
stop() { "$root/tests/support/servers.sh" stop "$state" || true; rm -rf "$state"; }
trap stop EXIT
"$root/tests/support/servers.sh" start "$state"
# shellcheck disable=SC1091
source "$state/env"

cd "$BUILD_DIR"
ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@"
