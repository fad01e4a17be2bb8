#!/usr/bin/env bash
# The Debian packages, end to end on this machine (CI: a fresh Debian 12 as root):
#   1. cpack builds opendms-field and opendms-central from this build directory into a
#      temporary directory (nothing is compiled; the build directory only gains CMake's
#      install_manifest_*.txt, as with `cmake --install`);
#   2. their contents, modes, conffiles and Depends are what deploy/packaging.cmake promises;
#   3. `dpkg -i` installs both; --version, and check-config as the opendms user with the
#      installed example env files; the user, /var/lib/opendms (0750) and the env files
#      (0640 root:opendms); the services enabled but not started, and skipped by their
#      ExecCondition while the example is unconfigured; the field node's first start steps
#      (migrate, status) as the service user; a reinstall keeps an edited env file;
#   3b. the operator's path of docs/operations.md: the env files edited for hybrid mode,
#      the installed central behind nginx (the shipped site, TLS with a CA made here) on a
#      fresh database of the test PostgreSQL, the installed field daemon on the test broker:
#      one gateway message arrives at the central through nginx, with its uuid;
#   4. `dpkg -r` keeps the configuration and the data; `dpkg --purge` removes them, and the
#      user once no OpenDMS package is left; afterwards nothing of the packages remains.
#
#   packages_test.sh SOURCE_DIR BUILD_DIR
#
# Needs root (it installs packages) and refuses to run when an OpenDMS package or the
# opendms user is already on the machine (it would remove them). Runs one at a time (a
# lock), and purges what it installed on any failure.
set -euo pipefail
src=$1 build=$2
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
die() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

[[ $(id -u) -eq 0 ]] || die "this test installs packages with dpkg and must run as root (CI does)"
for tool in cpack dpkg-shlibdeps dpkg-deb flock runuser; do
    command -v "$tool" >/dev/null || die "$tool not found (deploy/install-deps.sh test installs it)"
done
exec 9>/tmp/opendms-packages-test.lock
flock -w 600 9 || die "another packages test holds /tmp/opendms-packages-test.lock"

pkgs=(opendms-field opendms-central)
state_of() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true; }
for p in "${pkgs[@]}"; do
    s=$(state_of "$p")
    [[ -z $s || $s == not-installed ]] ||
        die "$p is already on this machine ($s); this test would purge it: remove it first (dpkg --purge $p)"
done
getent passwd opendms >/dev/null &&
    die "the user opendms exists without an OpenDMS package; the test's purge would delete it: remove it first"
for d in /etc/opendms /var/lib/opendms; do
    [[ ! -e $d ]] || die "$d exists without an OpenDMS package; the test's purge would delete it: remove it first"
done

work=$(mktemp -d /tmp/opendms-packages.XXXXXX)
installed=no
cleanup() {
    if [[ $installed == yes ]]; then
        dpkg --purge "${pkgs[@]}" >/dev/null 2>&1 || echo "cleanup: dpkg --purge failed" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Everything of ours that could be left on the machine, before and after.
footprint() {
    {
        find /etc /lib/systemd /usr/lib/systemd /usr/bin /usr/share /var/lib -name '*opendms*' 2>/dev/null
        getent passwd opendms || true
        getent group opendms || true
    } | sort
}
footprint >"$work/before"

# ---- 1. build --------------------------------------------------------------------------
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[[ -n $version ]] || die "no CPACK_PACKAGE_VERSION in $build/CPackConfig.cmake (configure the build first)"
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1 ||
    die "cpack failed:"$'\n'"$(cat "$work/cpack.log")"
arch=$(dpkg --print-architecture)
field_deb=$work/pkg/opendms-field_${version}_${arch}.deb
central_deb=$work/pkg/opendms-central_${version}_${arch}.deb
[[ -f $field_deb && -f $central_deb ]] || die "cpack did not make both packages:"$'\n'"$(ls -l "$work/pkg")"
ok "cpack built $(basename "$field_deb") and $(basename "$central_deb")"

# ---- 2. contents -----------------------------------------------------------------------
check_deb() {
    local deb=$1 name=$2 component=$3 shipped=$4
    local listing control
    listing=$(dpkg-deb -c "$deb")
    control=$(dpkg-deb -f "$deb")
    for entry in "-rwxr-xr-x root/root .* ./usr/bin/$name" \
                 "-rw-r--r-- root/root .* ./lib/systemd/system/$name.service" \
                 "-rw-r----- root/root .* ./etc/opendms/$component.env" \
                 "-rw-r--r-- root/root .* ./usr/share/opendms/$shipped" \
                 "-rw-r--r-- root/root .* ./usr/share/doc/$name/operations.md"; do
        grep -qE -- "^$entry\$" <<<"$listing" || fail "$name: no entry like '$entry' in:"$'\n'"$listing"
    done
    [[ $(dpkg-deb -I "$deb" conffiles) == "/etc/opendms/$component.env" ]] ||
        fail "$name: conffiles is not exactly /etc/opendms/$component.env"
    grep -q "^Package: $name$" <<<"$control" || fail "$name: Package field"
    grep -q "^Version: $version$" <<<"$control" || fail "$name: Version field"
    local depends names
    depends=$(sed -n 's/^Depends: //p' <<<"$control")
    names=$(tr ',' '\n' <<<"$depends" | awk '{print $1}')  # package names, one a line
    for dep in adduser init-system-helpers libc6 libstdc++6 libssl3 libsqlite3-0 libpq5 libmariadb3; do
        grep -qxF "$dep" <<<"$names" || fail "$name: Depends lacks $dep: $depends"
    done
    # The database drivers (dlopen()ed when DB_CONNECTION names them) beside the program.
    local contents
    contents=$(dpkg-deb -c "$deb")
    for driver in pgsql mysql; do
        grep -q " \./usr/lib/$name/libopendms_db_$driver\.so$" <<<"$contents" ||
            fail "$name: does not ship /usr/lib/$name/libopendms_db_$driver.so"
    done
    for script in postinst prerm postrm; do
        dpkg-deb -I "$deb" "$script" | head -1 | grep -q '^#!/bin/sh' || fail "$name: no $script script"
    done
}
check_deb "$field_deb" opendms-field field mosquitto/field-broker.conf
check_deb "$central_deb" opendms-central central nginx/opendms-central.conf
tr ',' '\n' <<<"$(dpkg-deb -f "$field_deb" Depends)" | awk '{print $1}' | grep -qxF libmosquitto1 ||
    fail "opendms-field: Depends lacks libmosquitto1"
((failures == 0)) && ok "contents, modes, conffiles and Depends"

# ---- 3. install ------------------------------------------------------------------------
installed=yes
DEBIAN_FRONTEND=noninteractive dpkg -i "$field_deb" "$central_deb" </dev/null >"$work/install.log" 2>&1 ||
    die "dpkg -i failed:"$'\n'"$(cat "$work/install.log")"
grep -q "edit /etc/opendms/field.env and delete its OPENDMS_UNCONFIGURED line" "$work/install.log" ||
    fail "postinst did not tell how to configure opendms-field:"$'\n'"$(cat "$work/install.log")"
ok "dpkg -i"

[[ $(/usr/bin/opendms-field --version) == "opendms-field $version" ]] || fail "opendms-field --version: $(/usr/bin/opendms-field --version)"
[[ $(/usr/bin/opendms-central --version) == "opendms-central $version" ]] || fail "opendms-central --version: $(/usr/bin/opendms-central --version)"

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd opendms) || die "no user opendms after install"
((uid < 1000)) || fail "opendms is not a system user (uid $uid)"
[[ $home == /var/lib/opendms ]] || fail "opendms's home is $home"
[[ $shell == /usr/sbin/nologin ]] || fail "opendms's shell is $shell"
getent group opendms >/dev/null || fail "no group opendms"
[[ $(stat -c '%a %U %G' /var/lib/opendms) == "750 opendms opendms" ]] || fail "/var/lib/opendms is $(stat -c '%a %U %G' /var/lib/opendms)"
for f in /etc/opendms/field.env /etc/opendms/central.env; do
    [[ $(stat -c '%a %U %G' "$f") == "640 root opendms" ]] || fail "$f is $(stat -c '%a %U %G' "$f")"
done
for unit in opendms-field opendms-central; do
    [[ -f /lib/systemd/system/$unit.service ]] || fail "no /lib/systemd/system/$unit.service"
    [[ -L /etc/systemd/system/multi-user.target.wants/$unit.service ]] || fail "$unit.service is not enabled"
done
for bin in /usr/bin/opendms-field /usr/bin/opendms-central; do
    for exe in /proc/[0-9]*/exe; do
        [[ $(readlink "$exe" 2>/dev/null) != "$bin" ]] || fail "$bin is running after install: ${exe%/exe}"
    done
done
((failures == 0)) && ok "user, modes, units enabled, nothing started"

# check-config with the example files, as the services run.
out=$(runuser -u opendms -- /usr/bin/opendms-field --env-file /etc/opendms/field.env check-config 2>&1) ||
    fail "opendms-field check-config with the example file failed:"$'\n'"$out"
grep -q '^mode: hybrid$' <<<"$out" || fail "the field example is not hybrid mode:"$'\n'"$out"
# The central's check-config connects to its database: the test's PostgreSQL stands in for
# the example's 127.0.0.1:5432 (the process environment wins over the file).
[[ -n ${OPENDMS_TEST_PG_HOST:-} ]] || die "OPENDMS_TEST_PG_HOST is not set: run the suite with tests/run_all.sh (it starts the servers)"
out=$(runuser -u opendms -- env DB_HOST="$OPENDMS_TEST_PG_HOST" DB_PORT="$OPENDMS_TEST_PG_PORT" \
      DB_USERNAME="$OPENDMS_TEST_PG_USER" DB_PASSWORD="$OPENDMS_TEST_PG_PASSWORD" DB_DATABASE="$OPENDMS_TEST_PG_DATABASE" \
      /usr/bin/opendms-central --env-file /etc/opendms/central.env check-config 2>&1) ||
    fail "opendms-central check-config with the example file failed:"$'\n'"$out"
grep -q '^mode: production$' <<<"$out" || fail "the central example is not production mode:"$'\n'"$out"
grep -q '^database: reachable' <<<"$out" || fail "the central's check-config did not reach the database:"$'\n'"$out"

# The unit's ExecCondition skips the service while the example is unconfigured.
for component in field central; do
    cond=$(sed -n 's/^ExecCondition=//p' "/lib/systemd/system/opendms-$component.service")
    [[ -n $cond ]] || { fail "opendms-$component.service has no ExecCondition"; continue; }
    if eval "$cond"; then fail "opendms-$component: ExecCondition passes on the unconfigured example"; fi
    sed -i '/^# OPENDMS_UNCONFIGURED/d' "/etc/opendms/$component.env"
    eval "$cond" || fail "opendms-$component: ExecCondition fails once configured"
done
((failures == 0)) && ok "check-config with the examples; ExecCondition"

# The field service's first start, as its user: migrate (ExecStartPre) creates the database.
runuser -u opendms -- /usr/bin/opendms-field --env-file /etc/opendms/field.env migrate >"$work/migrate.log" 2>&1 ||
    fail "migrate as opendms failed:"$'\n'"$(cat "$work/migrate.log")"
[[ $(stat -c '%U' /var/lib/opendms/field.sqlite 2>/dev/null) == opendms ]] || fail "no /var/lib/opendms/field.sqlite owned by opendms"
runuser -u opendms -- /usr/bin/opendms-field --env-file /etc/opendms/field.env status >/dev/null 2>&1 ||
    fail "status as opendms failed"

# A reinstall (an upgrade's path through the scripts) keeps the edited env file and its mode.
DEBIAN_FRONTEND=noninteractive timeout 120 dpkg -i "$field_deb" </dev/null >"$work/reinstall.log" 2>&1 ||
    fail "reinstall failed:"$'\n'"$(cat "$work/reinstall.log")"
grep -q '^# OPENDMS_UNCONFIGURED' /etc/opendms/field.env && fail "the reinstall replaced the edited field.env"
[[ $(stat -c '%a %U %G' /etc/opendms/field.env) == "640 root opendms" ]] || fail "field.env after reinstall: $(stat -c '%a %U %G' /etc/opendms/field.env)"
cmp -s /usr/share/opendms/mosquitto/field-broker.conf "$src/deploy/mosquitto/field-broker.conf" || fail "the shipped broker configuration differs"
cmp -s /usr/share/opendms/nginx/opendms-central.conf "$src/deploy/nginx/opendms-central.conf" || fail "the shipped nginx configuration differs"
((failures == 0)) && ok "first start as opendms; reinstall keeps the configuration"

# ---- 3b. the operator's path: hybrid field node -> nginx (TLS) -> central -------------
# What docs/operations.md tells a new user to do, with the installed programs and files:
# edit the two env files, migrate, start the central behind nginx with the shipped site
# configuration (only ports and certificate paths swapped in; a CA and a certificate for
# "localhost" made here), start the field daemon in hybrid mode with certificate checks on,
# publish one gateway message, and see it arrive at the central with its original identity.
e2e=$work/e2e
mkdir -p "$e2e"
chmod 755 "$work" "$e2e"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
set_env() { # FILE KEY=VALUE...: replaces each KEY's line, or appends it
    local file=$1 pair key
    shift
    for pair in "$@"; do
        key=${pair%%=*}
        if grep -q "^$key=" "$file"; then sed -i "s|^$key=.*|$pair|" "$file"; else echo "$pair" >>"$file"; fi
    done
}
e2e_pids=()
e2e_stop() {
    local p
    for p in "${e2e_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${e2e_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    e2e_pids=()
}
trap 'e2e_stop; cleanup' EXIT
e2e_db=opendms_pkg_e2e_$$
psql_test() { PGPASSWORD=$OPENDMS_TEST_PG_PASSWORD psql -X -q -t -A -h "$OPENDMS_TEST_PG_HOST" -p "$OPENDMS_TEST_PG_PORT" -U "$OPENDMS_TEST_PG_USER" "$@"; }
psql_test -d "$OPENDMS_TEST_PG_DATABASE" -c "CREATE DATABASE $e2e_db" || die "cannot create the database $e2e_db"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$e2e/ca.key" -out "$e2e/ca.pem" -days 2 \
    -subj /CN=opendms-packages-test-ca >/dev/null 2>&1 || die "openssl: the test CA"
openssl req -newkey rsa:2048 -nodes -keyout "$e2e/site.key" -out "$e2e/site.csr" -subj /CN=localhost \
    >/dev/null 2>&1 || die "openssl: the site key"
printf 'subjectAltName=DNS:localhost\n' >"$e2e/san.ext"
openssl x509 -req -in "$e2e/site.csr" -CA "$e2e/ca.pem" -CAkey "$e2e/ca.key" -CAcreateserial \
    -out "$e2e/site.pem" -days 2 -extfile "$e2e/san.ext" >/dev/null 2>&1 || die "openssl: the site certificate"
chmod 644 "$e2e/ca.pem"
central_port=$(free_port) tls_port=$(free_port) plain_port=$(free_port)
token=packages-e2e-$(openssl rand -hex 16)

set_env /etc/opendms/central.env \
    "DB_HOST=$OPENDMS_TEST_PG_HOST" \
    "DB_PORT=$OPENDMS_TEST_PG_PORT" \
    "DB_DATABASE=$e2e_db" \
    "DB_USERNAME=$OPENDMS_TEST_PG_USER" \
    "DB_PASSWORD=$OPENDMS_TEST_PG_PASSWORD" \
    "CENTRAL_LISTEN=127.0.0.1:$central_port" \
    "CENTRAL_DMS_TOKEN=$token"
as_opendms() { setpriv --reuid=opendms --regid=opendms --init-groups -- "$@"; }
as_opendms /usr/bin/opendms-central --env-file /etc/opendms/central.env migrate >"$e2e/central-migrate.log" 2>&1 ||
    die "central migrate failed:"$'\n'"$(cat "$e2e/central-migrate.log")"
# setpriv itself in the background, not through as_opendms: a function runs in a subshell,
# and killing the subshell's pid would leave the program running.
setpriv --reuid=opendms --regid=opendms --init-groups -- \
    /usr/bin/opendms-central --env-file /etc/opendms/central.env serve >"$e2e/central.log" 2>&1 &
e2e_pids+=($!)

sed -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$central_port;|" \
    -e "s|listen 443 ssl http2;|listen 127.0.0.1:$tls_port ssl http2;|" \
    -e "s|listen \[::\]:443 ssl http2;||" \
    -e "s|listen 80;|listen 127.0.0.1:$plain_port;|" \
    -e "s|listen \[::\]:80;||" \
    -e "s|/etc/letsencrypt/live/central.example.org/fullchain.pem|$e2e/site.pem|" \
    -e "s|/etc/letsencrypt/live/central.example.org/privkey.pem|$e2e/site.key|" \
    /usr/share/opendms/nginx/opendms-central.conf >"$e2e/site.conf"
grep -q "listen 127.0.0.1:$tls_port ssl" "$e2e/site.conf" || die "the shipped nginx site changed: no 'listen 443 ssl http2;' to swap"
cat >"$e2e/nginx.conf" <<NGINX
user root;
worker_processes 1;
pid $e2e/nginx.pid;
error_log $e2e/nginx-error.log info;
events { worker_connections 64; }
http {
  access_log $e2e/nginx-access.log;
  client_body_temp_path $e2e/client_body;
  proxy_temp_path $e2e/proxy;
  fastcgi_temp_path $e2e/fastcgi;
  uwsgi_temp_path $e2e/uwsgi;
  scgi_temp_path $e2e/scgi;
  include $e2e/site.conf;
}
NGINX
/usr/sbin/nginx -p "$e2e" -c "$e2e/nginx.conf" -e "$e2e/nginx-error.log" -g 'daemon off;' &
e2e_pids+=($!)

topic=opendms-pkg-e2e/$$
set_env /etc/opendms/field.env \
    "CENTRAL_DMS_URL=https://localhost:$tls_port" \
    "CENTRAL_DMS_TOKEN=$token" \
    "CENTRAL_DMS_CA_FILE=$e2e/ca.pem" \
    "MQTT_HOST=$OPENDMS_TEST_MQTT_HOST" \
    "MQTT_PORT=$OPENDMS_TEST_MQTT_PORT" \
    "MQTT_TOPIC=$topic" \
    "MQTT_CLIENT_ID=opendms-pkg-e2e-$$" \
    "FIELD_NODE_ID=pkg-e2e"
setpriv --reuid=opendms --regid=opendms --init-groups -- \
    /usr/bin/opendms-field --env-file /etc/opendms/field.env run >"$e2e/field.log" 2>&1 &
e2e_pids+=($!)

# Published once the daemon has subscribed (its log says so at the info level).
for _ in $(seq 50); do grep -q "subscribed" "$e2e/field.log" && break; sleep 0.2; done
message='{"eventType":"sos","MessageID":"P7K2","payload":{"hops":2,"duckType":2,"DeviceID":"PKGDUCK1","Message":"SOS: roof, 4 people"}}'
mosquitto_pub -h "$OPENDMS_TEST_MQTT_HOST" -p "$OPENDMS_TEST_MQTT_PORT" -q 1 -t "$topic" -m "$message" ||
    fail "mosquitto_pub to the test broker failed"
arrived=""
for _ in $(seq 100); do
    arrived=$(psql_test -d "$e2e_db" -c "SELECT duck_id || '|' || message_id || '|' || topic || '|' || source_node FROM cluster_data" 2>/dev/null || true)
    [[ -n $arrived ]] && break
    sleep 0.2
done
if [[ $arrived == "PKGDUCK1|P7K2|sos|pkg-e2e" ]]; then
    ok "a gateway message went field (hybrid) -> nginx over TLS -> central, with the installed packages"
else
    fail "the message did not arrive at the central (got '$arrived'); field log:"$'\n'"$(tail -20 "$e2e/field.log")"$'\n'"central log:"$'\n'"$(tail -20 "$e2e/central.log")"$'\n'"nginx:"$'\n'"$(tail -20 "$e2e/nginx-error.log")"
fi
field_uuid=$(sqlite3 /var/lib/opendms/field.sqlite "SELECT uuid FROM cluster_data WHERE duck_id='PKGDUCK1'" 2>/dev/null || true)
central_uuid=$(psql_test -d "$e2e_db" -c "SELECT uuid FROM cluster_data WHERE duck_id='PKGDUCK1'" 2>/dev/null || true)
[[ -n $field_uuid && $field_uuid == "$central_uuid" ]] || fail "the record's uuid differs: field '$field_uuid', central '$central_uuid'"
grep -q "PKGDUCK1\|/api/ingest" "$e2e/nginx-access.log" || fail "nginx did not log the ingest request: the push did not go through it"
e2e_stop
left=$(ps -u opendms -o pid=,cmd= || true)
[[ -z $left ]] || fail "processes of opendms still running after the stop:"$'\n'"$left"
trap cleanup EXIT
psql_test -d "$OPENDMS_TEST_PG_DATABASE" -c "DROP DATABASE IF EXISTS $e2e_db" >/dev/null 2>&1 || true

# ---- 4. remove and purge -----------------------------------------------------------------
dpkg -r opendms-field >"$work/remove.log" 2>&1 || fail "dpkg -r opendms-field:"$'\n'"$(cat "$work/remove.log")"
[[ ! -e /usr/bin/opendms-field ]] || fail "/usr/bin/opendms-field left after dpkg -r"
[[ -f /etc/opendms/field.env ]] || fail "dpkg -r removed the configuration"
[[ -f /var/lib/opendms/field.sqlite ]] || fail "dpkg -r removed the field database"
dpkg --purge opendms-field >"$work/purge.log" 2>&1 || fail "dpkg --purge opendms-field:"$'\n'"$(cat "$work/purge.log")"
[[ ! -e /etc/opendms/field.env ]] || fail "purge left /etc/opendms/field.env"
[[ ! -e /var/lib/opendms/field.sqlite ]] || fail "purge left the field database"
getent passwd opendms >/dev/null || fail "purging opendms-field removed the user while opendms-central is installed"
[[ -f /etc/opendms/central.env ]] || fail "purging opendms-field removed central.env"
dpkg --purge opendms-central >>"$work/purge.log" 2>&1 || fail "dpkg --purge opendms-central:"$'\n'"$(cat "$work/purge.log")"
installed=no
for gone in /etc/opendms /var/lib/opendms /usr/share/opendms /lib/systemd/system/opendms-field.service \
            /etc/systemd/system/multi-user.target.wants/opendms-central.service; do
    [[ ! -e $gone && ! -L $gone ]] || fail "purge left $gone"
done
getent passwd opendms >/dev/null && fail "purge left the user opendms"
getent group opendms >/dev/null && fail "purge left the group opendms"
footprint >"$work/after"
diff -u "$work/before" "$work/after" >"$work/diff" || fail "left behind after purge:"$'\n'"$(cat "$work/diff")"
((failures == 0)) && ok "dpkg -r keeps configuration and data; dpkg --purge leaves nothing"

if ((failures > 0)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all package checks passed"
