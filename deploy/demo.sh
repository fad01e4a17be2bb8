#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing, builds, and runs a field
# node and a central server on SQLite with a Mosquitto broker started here on 127.0.0.1,
# all in a temporary directory that is removed at the end (DEMO_KEEP=1 keeps it).
#
# What it shows: configuration checks, migrations of both databases (SQLite, WAL), the
# central server (`opendms-central serve`), the field daemon (`opendms-field run`) storing
# the sample gateway messages published on the broker and delivering them to the central,
# then an outage: the central is stopped, more messages arrive and wait in the outbox, the
# central comes back and the field node delivers them by itself.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$root/build}
[[ "${OPENDMS_SKIP_INSTALL:-0}" == 1 ]] || "$root/deploy/install-deps.sh" build
"$root/deploy/build.sh" -DOPENDMS_BUILD_TESTS=OFF
field="$BUILD_DIR/field-node/opendms-field"
central="$BUILD_DIR/central-server/opendms-central"

demo=$(mktemp -d /tmp/opendms-demo.XXXXXX)
broker_pid=""
field_pid=""
central_pid=""
cleanup() {
    [[ -n "$field_pid" ]] && kill "$field_pid" 2>/dev/null || true
    [[ -n "$central_pid" ]] && kill "$central_pid" 2>/dev/null || true
    [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null || true
    if [[ "${DEMO_KEEP:-0}" == 1 ]]; then echo "demo files kept in $demo"; else rm -rf "$demo"; fi
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt_port=$(free_port)
central_port=$(free_port)
samples="$root/tests/data/samples.jsonl"

step "Mosquitto on 127.0.0.1:$mqtt_port"
cat > "$demo/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence true
persistence_location $demo/
max_queued_messages 0
CONF
mosquitto -c "$demo/mosquitto.conf" > "$demo/mosquitto.log" 2>&1 &
broker_pid=$!
for _ in $(seq 50); do
    mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -t demo/ping -m x -q 1 2>/dev/null && break
    sleep 0.1
done

step "Settings (.env files, the seed's variable names)"
cat > "$demo/field.env" <<ENV
# Field node, hybrid mode: SQLite + a central server to sync to.
DB_CONNECTION=sqlite
DB_DATABASE=$demo/field.sqlite
CENTRAL_DMS_URL=http://127.0.0.1:$central_port
CENTRAL_DMS_TOKEN=demo-token-change-me
# Short retries for the demo (the default is 30,60,120,300,600 seconds).
CENTRAL_DMS_BACKOFF=1,2
ENV
cat > "$demo/central.env" <<ENV
# Central server on the embedded default (SQLite); production uses pgsql or mysql.
DB_CONNECTION=sqlite
DB_DATABASE=$demo/central.sqlite
CENTRAL_DMS_TOKEN=demo-token-change-me
CENTRAL_LISTEN=127.0.0.1:$central_port
ENV
"$field" --env-file "$demo/field.env" check-config
"$central" --env-file "$demo/central.env" check-config

step "Migrations (field and central databases)"
"$field" --env-file "$demo/field.env" migrate
"$central" --env-file "$demo/central.env" migrate
"$field" --env-file "$demo/field.env" migrate:status
sqlite3 "$demo/field.sqlite" 'PRAGMA journal_mode;' | sed 's/^/field database journal_mode: /'

start_central() {
    "$central" --env-file "$demo/central.env" serve 2>> "$demo/central.log" &
    central_pid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$demo/central.log" && return 0
        sleep 0.1
    done
    cat "$demo/central.log" >&2
    echo "demo: the central server did not start" >&2
    exit 1
}

step "Central server: opendms-central serve on 127.0.0.1:$central_port (SQLite)"
start_central
grep "listening on" "$demo/central.log"

step "Field node: opendms-field run in the background (MQTT -> SQLite -> central)"
# The broker's address comes from the environment, which overrides the .env file.
export MQTT_PORT=$mqtt_port FIELD_NODE_ID=demo-field
"$field" --env-file "$demo/field.env" run 2> "$demo/field-run.log" &
field_pid=$!
for _ in $(seq 100); do
    grep -q " subscribed to " "$demo/field-run.log" && break
    sleep 0.1
done
if ! grep -q " subscribed to " "$demo/field-run.log"; then
    cat "$demo/field-run.log" >&2
    echo "demo: the field daemon did not subscribe" >&2
    exit 1
fi
cat "$demo/field-run.log"

step "Gateway messages published on hub/event"
python3 - "$samples" > "$demo/messages.txt" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    s = json.loads(line)
    if "raw" in s:
        print(s["raw"])
PY
publish_samples() {
    local n=0 msg
    while IFS= read -r msg; do
        mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t hub/event -m "$msg"
        n=$((n + 1))
    done < "$demo/messages.txt"
    echo "published $n sample messages at QoS 1"
}
publish_samples
n=$(wc -l < "$demo/messages.txt")

field_status() { "$field" --env-file "$demo/field.env" status --json; }
status_value() { field_status | python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
# Every message ends as a record, a mesh duplicate or a quarantine row.
handled() {
    field_status | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["not_applicable"] + s["pending"] + s["synced"] + s["duplicates"] + s["quarantined"])'
}
wait_for() {  # wait_for DESCRIPTION 'shell condition': evaluated again until true, up to 30 s
    local what=$1 condition=$2
    for _ in $(seq 300); do
        eval "$condition" && return 0
        sleep 0.1
    done
    echo "demo: timed out waiting for $what" >&2
    tail -n 20 "$demo/field-run.log" >&2
    exit 1
}
wait_for "the field daemon to handle every message" '[[ $(handled) -ge $n ]]'
wait_for "delivery" '[[ $(status_value pending) -eq 0 ]]'
echo "handled by the field daemon: $(handled) of $n; pending delivery: $(status_value pending)"

step "opendms-field status"
"$field" --env-file "$demo/field.env" status

step "Field rows (sqlite3 $demo/field.sqlite)"
sqlite3 -header -column "$demo/field.sqlite" \
    "SELECT id, duck_id, topic, message_id, hops, synced, synced_at,
            substr(payload, 1, 30) AS payload FROM cluster_data ORDER BY id;"
echo
sqlite3 -header -column "$demo/field.sqlite" \
    "SELECT id, topic, length(raw) AS bytes, substr(reason, 1, 60) AS reason
       FROM quarantine ORDER BY id;"

step "Central rows (sqlite3 $demo/central.sqlite): the same records, the same times and uuids"
sqlite3 -header -column "$demo/central.sqlite" \
    "SELECT id, duck_id, topic, message_id, created_at, received_from, substr(uuid, 1, 13) AS uuid
       FROM cluster_data ORDER BY id;"
"$central" --env-file "$demo/central.env" status

step "An outage: the central server stops; new messages wait in the outbox"
kill -TERM "$central_pid"
wait "$central_pid" || true
central_pid=""
sed -i 's/"Message":"/"Message":"after the outage: /' "$demo/messages.txt"
publish_samples
wait_for "the failed attempts" '[[ $(status_value consecutive_failures) -ge 1 ]]'
echo "pending: $(status_value pending); consecutive failures: $(status_value consecutive_failures);" \
    "last error: $(status_value last_error)"

step "The central server comes back: the field node delivers by itself"
start_central
wait_for "delivery after the outage" '[[ $(status_value pending) -eq 0 ]]'
echo "pending: $(status_value pending); synced: $(status_value synced); central rows:" \
    "$(sqlite3 "$demo/central.sqlite" 'SELECT COUNT(*) FROM cluster_data;')"
grep -h "delivery resumed" "$demo/field-run.log" || true

step "Stopping both (SIGTERM)"
kill -TERM "$field_pid"
wait "$field_pid" && echo "opendms-field run exited with 0"
field_pid=""
kill -TERM "$central_pid"
wait "$central_pid" && echo "opendms-central serve exited with 0"
central_pid=""
tail -n 2 "$demo/field-run.log"
echo
echo "demo: ok"
