#!/usr/bin/env bash
# deploy/docker/ checked without a container engine (this machine and CI have none):
#   1. `docker-compose config` (Debian's docker-compose) accepts the file; a broken copy
#      (a dependency on a service that does not exist) is refused, so the check can fail;
#   2. the resolved configuration has the services, health checks and start conditions
#      docs/operations.md describes, and everything it refers to exists: bind-mounted
#      files, build contexts, Dockerfiles and every COPY source in them;
#   3. it is true to the native setup: the shipped nginx and Mosquitto files are mounted
#      unchanged where a native install puts them, the programs read /etc/opendms/*.env
#      with --env-file as the systemd units do, and every variable in the compose and
#      package env files is a documented one (docs/configuration.md);
#   4. the compose env files pass check-config with this build's programs (container-only
#      paths and host names replaced through the process environment, which wins);
#   5. the publisher's replay script sends every sample, byte for byte, to a real broker.
#
#   compose_test.sh SOURCE_DIR FIELD_BINARY CENTRAL_BINARY
# Needs the servers of tests/support/servers.sh (PostgreSQL, Mosquitto) for 4 and 5.
set -euo pipefail
src=$1 field_bin=$2 central_bin=$3
docker_dir=$src/deploy/docker
compose=$docker_dir/docker-compose.yml
py=/usr/bin/python3  # Debian's, with python3-yaml (a dependency of docker-compose)
work=$(mktemp -d /tmp/opendms-compose.XXXXXX)
sub_pid=""
cleanup() {
    [[ -n $sub_pid ]] && kill "$sub_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

command -v docker-compose >/dev/null || die "docker-compose not found (deploy/install-deps.sh test installs it)"
[[ -n ${OPENDMS_TEST_PG_HOST:-} && -n ${OPENDMS_TEST_MQTT_HOST:-} ]] ||
    die "OPENDMS_TEST_PG_HOST / OPENDMS_TEST_MQTT_HOST are not set: run the suite with tests/run_all.sh (it starts the servers)"

# ---- 1. docker-compose config ------------------------------------------------------------
docker-compose -f "$compose" config >"$work/config.yml" 2>"$work/config.err" ||
    die "docker-compose config refused $compose:"$'\n'"$(cat "$work/config.err")"
ok "docker-compose config accepts deploy/docker/docker-compose.yml"
cp -r "$docker_dir" "$work/broken"
sed -i 's/condition: service_completed_successfully/condition: service_completed_successfully\n      no-such-service:\n        condition: service_healthy/' "$work/broken/docker-compose.yml"
if docker-compose -f "$work/broken/docker-compose.yml" config -q >/dev/null 2>&1; then
    fail "docker-compose config accepted a dependency on a service that does not exist"
else
    ok "docker-compose config refuses a broken copy"
fi

# ---- 2 and 3. what the resolved configuration says -------------------------------------------
"$py" - "$work/config.yml" "$src" <<'PY' || fail "the compose configuration (above)"
import os, re, sys, yaml

config = yaml.safe_load(open(sys.argv[1]))
src = sys.argv[2]
services = config["services"]
problems = []

def need(cond, text):
    if not cond:
        problems.append(text)

want = {"pki", "postgres", "central-migrate", "central", "nginx", "mosquitto", "field", "publisher"}
need(set(services) == want, "services are %s, want %s" % (sorted(services), sorted(want)))

def health(name, needle):
    test = services.get(name, {}).get("healthcheck", {}).get("test", [])
    text = " ".join(test) if isinstance(test, list) else str(test)
    need(needle in text, "%s: the health check should use %r, has %r" % (name, needle, text))

health("postgres", "pg_isready")
health("central", "http://127.0.0.1:8080/readyz")
health("nginx", "https://central.example.org/healthz")
health("mosquitto", "mosquitto_sub")
health("field", 'opendms_field_mqtt_connections{state="subscribed"} 1')

def depends(name, on, condition):
    got = services.get(name, {}).get("depends_on", {}).get(on, {}).get("condition")
    need(got == condition, "%s should depend on %s with %s, has %s" % (name, on, condition, got))

depends("central-migrate", "postgres", "service_healthy")
depends("central", "central-migrate", "service_completed_successfully")
depends("nginx", "central", "service_healthy")
depends("nginx", "pki", "service_completed_successfully")
depends("field", "mosquitto", "service_healthy")
depends("field", "nginx", "service_healthy")
depends("field", "pki", "service_completed_successfully")
depends("publisher", "field", "service_healthy")
need(services.get("nginx", {}).get("network_mode") == "service:central",
     "nginx must share the central's network namespace (the shipped file proxies to 127.0.0.1:8080)")
for name in ("field", "publisher"):
    need(services.get(name, {}).get("network_mode") == "service:mosquitto",
         "%s must share the broker's network namespace (the shipped broker listens on loopback)" % name)

def mounts(name):
    out = {}
    for v in services.get(name, {}).get("volumes", []):
        parts = v.split(":") if isinstance(v, str) else [v["source"], v["target"]]
        out[parts[1]] = parts[0]
    return out

expected_mounts = {
    ("nginx", "/etc/nginx/sites-enabled/opendms-central.conf"): "deploy/nginx/opendms-central.conf",
    ("mosquitto", "/etc/mosquitto/mosquitto.conf"): "deploy/mosquitto/field-broker.conf",
    ("field", "/etc/opendms/field.env"): "deploy/docker/field.env",
    ("central", "/etc/opendms/central.env"): "deploy/docker/central.env",
    ("central-migrate", "/etc/opendms/central.env"): "deploy/docker/central.env",
}
for (name, target), rel in expected_mounts.items():
    got = mounts(name).get(target)
    need(got == os.path.join(src, rel), "%s: %s should be the shipped %s, is %s" % (name, target, rel, got))
for name in services:
    for target, source in mounts(name).items():
        if source.startswith("/"):
            need(os.path.exists(source), "%s mounts %s, which does not exist" % (name, source))

# Builds: the context, the Dockerfile and every COPY source exist.
for name, s in services.items():
    b = s.get("build")
    if not b:
        continue
    ctx = b["context"]
    dockerfile = os.path.join(ctx, b.get("dockerfile", "Dockerfile"))
    need(os.path.isdir(ctx), "%s: no build context %s" % (name, ctx))
    if not os.path.isfile(dockerfile):
        need(False, "%s: no Dockerfile %s" % (name, dockerfile))
        continue
    text = open(dockerfile).read()
    need(re.search(r"^FROM debian:12", text, re.M) is not None, "%s: %s is not based on Debian 12" % (name, dockerfile))
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        words = [w for w in line.split() if not w.startswith("--")]
        if "--from" in line:
            continue
        for source in words[:-1]:
            need(os.path.exists(os.path.join(ctx, source)), "%s: COPY source %s missing in %s" % (name, source, ctx))

# The programs are started as the systemd units start them.
def cmd_of(name):
    s = services[name]
    if "command" in s:
        return " ".join(s["command"])
    b = s["build"]
    text = open(os.path.join(b["context"], b["dockerfile"])).read()
    return re.findall(r"^CMD (.+)$", text, re.M)[-1]

units = {u: open(os.path.join(src, "deploy/systemd", u + ".service")).read() for u in ("opendms-field", "opendms-central")}
field_start = re.search(r"^ExecStart=/usr/bin/(.+)$", units["opendms-field"], re.M).group(1)
field_pre = re.search(r"^ExecStartPre=/usr/bin/(.+)$", units["opendms-field"], re.M).group(1)
central_start = re.search(r"^ExecStart=/usr/bin/(.+)$", units["opendms-central"], re.M).group(1)
need(field_start in cmd_of("field") and field_pre in cmd_of("field"),
     "field's command %r should run %r and %r as the unit does" % (cmd_of("field"), field_pre, field_start))
need(central_start.replace(" ", '", "') in cmd_of("central") or central_start in cmd_of("central"),
     "central's command %r should be the unit's %r" % (cmd_of("central"), central_start))
need("opendms-central --env-file /etc/opendms/central.env migrate" in cmd_of("central-migrate"),
     "central-migrate should run migrate with the same env file")

for p in problems:
    print("compose: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
((failures == 0)) && ok "services, health checks, start order, mounts, builds, commands"

# Every variable the env files set is documented (a misspelt name would be ignored).
for env in "$docker_dir/field.env" "$docker_dir/central.env" "$src/deploy/debian/field.env" "$src/deploy/debian/central.env"; do
    while read -r name; do
        grep -q "| \`$name\` |" "$src/docs/configuration.md" ||
            fail "$env sets $name, which docs/configuration.md does not document"
    done < <(sed -n 's/^#\{0,1\}\([A-Z][A-Z0-9_]*\)=.*/\1/p' "$env")
done
((failures == 0)) && ok "every variable in the env files is documented"

# ---- 4. check-config with the compose env files ---------------------------------------------
touch "$work/ca.pem"
out=$(env DB_DATABASE="$work/field.sqlite" CENTRAL_DMS_CA_FILE="$work/ca.pem" \
      "$field_bin" --env-file "$docker_dir/field.env" check-config 2>&1) ||
    fail "opendms-field check-config with deploy/docker/field.env:"$'\n'"$out"
grep -q '^mode: hybrid$' <<<"$out" || fail "deploy/docker/field.env is not hybrid mode:"$'\n'"$out"
out=$(env DB_HOST="$OPENDMS_TEST_PG_HOST" DB_PORT="$OPENDMS_TEST_PG_PORT" DB_USERNAME="$OPENDMS_TEST_PG_USER" \
      DB_PASSWORD="$OPENDMS_TEST_PG_PASSWORD" DB_DATABASE="$OPENDMS_TEST_PG_DATABASE" \
      "$central_bin" --env-file "$docker_dir/central.env" check-config 2>&1) ||
    fail "opendms-central check-config with deploy/docker/central.env:"$'\n'"$out"
grep -q '^mode: production$' <<<"$out" || fail "deploy/docker/central.env is not production mode:"$'\n'"$out"
# The field node's token is one the central accepts.
[[ $(sed -n 's/^CENTRAL_DMS_TOKEN=//p' "$docker_dir/field.env") == $(sed -n 's/^CENTRAL_DMS_TOKEN=//p' "$docker_dir/central.env") ]] ||
    fail "deploy/docker/field.env and central.env carry different tokens"
((failures == 0)) && ok "check-config accepts the compose env files"

# ---- 5. the publisher's replay, against a real broker ---------------------------------------------
prefix=opendms-compose-test-$$
expected=$(grep -c . "$src/tests/data/samples.jsonl")
mosquitto_sub -h "$OPENDMS_TEST_MQTT_HOST" -p "$OPENDMS_TEST_MQTT_PORT" -q 1 -t "$prefix/#" -C "$expected" -W 30 \
    -F '%t %l' >"$work/received" 2>"$work/sub.err" &
sub_pid=$!
sleep 0.5  # the subscription is in place before the first message
MQTT_HOST=$OPENDMS_TEST_MQTT_HOST MQTT_PORT=$OPENDMS_TEST_MQTT_PORT REPLAY_INTERVAL=0 REPLAY_TOPIC_PREFIX=$prefix \
    "$py" "$docker_dir/replay-samples.py" "$src/tests/data/samples.jsonl" >"$work/replay.out" 2>&1 ||
    fail "replay-samples.py failed:"$'\n'"$(cat "$work/replay.out")"
wait "$sub_pid" || true
sub_pid=""
# What was sent: each sample's topic and byte length, in order.
"$py" - "$src/tests/data/samples.jsonl" "$prefix" >"$work/expected" <<'PY'
import base64, json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    if line.strip():
        s = json.loads(line)
        data = s["raw"].encode("utf-8") if "raw" in s else base64.b64decode(s["raw_b64"])
        print("%s/%s %d" % (sys.argv[2], s["mqtt_topic"], len(data)))
PY
diff -u "$work/expected" "$work/received" >"$work/diff" ||
    fail "the broker did not receive every sample as sent:"$'\n'"$(cat "$work/diff" "$work/sub.err")"
((failures == 0)) && ok "replay-samples.py published all $expected samples, byte for byte"

if ((failures > 0)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all compose checks passed"
