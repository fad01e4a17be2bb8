#!/usr/bin/env bash
# Sustained MQTT ingest of opendms-field against baselines measured in the same run.
#   tests/perf/run_ingest_bench.sh [--messages N] [--repeat R] [--connections 1,2,4]
# Builds (Release), starts Mosquitto with the shipped deploy/mosquitto/field-broker.conf
# on a free loopback port in a temporary directory, runs build-perf/tests/perf/ingest_bench,
# and stops the broker. Prints a Markdown table for docs/performance.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$root/build-perf}
"$root/deploy/build.sh" -DCMAKE_BUILD_TYPE=Release -DOPENDMS_BUILD_TESTS=ON >/dev/null

work=$(mktemp -d /tmp/opendms-bench.XXXXXX)
broker_pid=""
cleanup() { [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s/^listener .*/listener $port 127.0.0.1/" \
    -e "s|^persistence_location .*|persistence_location $work/|" \
    -e "/^log_dest/d" \
    "$root/deploy/mosquitto/field-broker.conf" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 50); do
    mosquitto_pub -h 127.0.0.1 -p "$port" -t bench/ping -m x -q 1 2>/dev/null && break
    sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ)"
"$BUILD_DIR/tests/perf/ingest_bench" --field "$BUILD_DIR/field-node/opendms-field" \
    --mqtt-port "$port" --dir "$work" "$@"
