#!/usr/bin/env bash
# The packages under a real systemd (PID 1), by hand: not part of ctest, because it
# downloads a Debian 12 root file system (debootstrap, about 100 packages, once) and boots
# it with systemd-nspawn, which CI machines may not allow. What ctest cannot see: the
# hardened units actually running the programs (system call filter, read-only system,
# private /tmp and devices), readiness, the watchdog restarting a hung daemon, the journal
# keeping the levels, and ExecCondition skipping an unconfigured service.
#
#   sudo tests/ops/under_systemd.sh BUILD_DIR [ROOTFS_CACHE]
#
# BUILD_DIR: a configured and built tree (cpack runs in it, into a temporary directory).
# ROOTFS_CACHE (default /var/tmp/opendms-bookworm-rootfs): the debootstrapped system, made
# on the first run and copied for each run, so every run starts clean. Needs the Debian
# packages debootstrap and systemd-container, root, and a kernel that lets it make
# namespaces. The container has loopback only (--private-network). Exits non-zero on the
# first failed check, with what it saw.
set -euo pipefail
build=$(cd "$1" && pwd)
cache=${2:-/var/tmp/opendms-bookworm-rootfs}
[[ $(id -u) -eq 0 ]] || { echo "under_systemd.sh: run as root" >&2; exit 1; }
for tool in debootstrap systemd-nspawn nsenter cpack; do
    command -v "$tool" >/dev/null || { echo "under_systemd.sh: $tool not found (apt-get install debootstrap systemd-container)" >&2; exit 1; }
done

if [[ ! -x $cache/usr/bin/systemctl ]]; then
    echo "== debootstrap bookworm into $cache (once)"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,adduser,init-system-helpers,procps,curl,ca-certificates,mosquitto,mosquitto-clients,libmosquitto1,libpq5,libmariadb3,libsqlite3-0,libssl3 \
        bookworm "$cache" http://deb.debian.org/debian >/dev/null
fi

work=$(mktemp -d /var/tmp/opendms-under-systemd.XXXXXX)
nspawn_pid=""
cleanup() {
    if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill "$nspawn_pid" 2>/dev/null || true  # nspawn shuts the container down cleanly
        for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

root=$work/root
cp -a "$cache" "$root"
echo opsbox >"$root/etc/hostname"
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/pkg" >/dev/null
cp "$work"/pkg/*.deb "$root/root/"
cp "$(dirname "$0")/../../deploy/mosquitto/field-broker.conf" "$root/root/"

systemd-nspawn -D "$root" -b --register=no --keep-unit --private-network -M opsbox >"$work/console.log" 2>&1 &
nspawn_pid=$!
init=""
for _ in $(seq 100); do
    init=$(pgrep -P "$nspawn_pid" | head -1 || true)
    [[ -n $init ]] && [[ $(cat "/proc/$init/comm" 2>/dev/null) == systemd ]] && break
    sleep 0.2
done
[[ -n $init ]] || fail "the container did not boot:"$'\n'"$(tail -20 "$work/console.log")"
in_box() { nsenter -t "$init" -a /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c "$1"; }
for _ in $(seq 100); do
    state=$(in_box 'systemctl is-system-running 2>/dev/null' || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.3
done
ok "systemd is PID 1 in the container ($state)"

in_box 'dpkg -i /root/opendms-field_*.deb /root/opendms-central_*.deb' >"$work/dpkg.log" 2>&1 ||
    fail "dpkg -i:"$'\n'"$(cat "$work/dpkg.log")"
in_box 'systemctl start opendms-field; systemctl show -p ActiveState -p ConditionResult --value opendms-field' >"$work/skip" 2>&1
[[ $(head -1 "$work/skip") == inactive ]] || fail "the unconfigured service is not skipped: $(cat "$work/skip")"
in_box 'journalctl -u opendms-field -o cat' | grep -q "Skipped due to 'exec-condition'" ||
    fail "no 'Skipped due to exec-condition' in the journal"
ok "installed; the unconfigured service is skipped by its ExecCondition"

in_box '
install -m 644 /root/field-broker.conf /etc/mosquitto/mosquitto.conf && systemctl restart mosquitto
cat >/etc/opendms/central.env <<EOF
DB_CONNECTION=sqlite
DB_DATABASE=/var/lib/opendms/central.sqlite
CENTRAL_LISTEN=127.0.0.1:8080
CENTRAL_DMS_TOKEN=under-systemd-token-0123456789
EOF
runuser -u opendms -- opendms-central --env-file /etc/opendms/central.env migrate >/dev/null
sed -i "/^# OPENDMS_UNCONFIGURED/d; s#^CENTRAL_DMS_URL=.*#CENTRAL_DMS_URL=http://127.0.0.1:8080#;
        s#^CENTRAL_DMS_TOKEN=.*#CENTRAL_DMS_TOKEN=under-systemd-token-0123456789#;
        s/^#FIELD_METRICS_LISTEN/FIELD_METRICS_LISTEN/" /etc/opendms/field.env
systemctl start opendms-central opendms-field' || fail "configuring and starting the services"
for unit in opendms-central opendms-field; do
    [[ $(in_box "systemctl show -p ActiveState --value $unit") == active ]] ||
        fail "$unit is not active:"$'\n'"$(in_box "systemctl status --no-pager $unit; journalctl -u $unit -o cat --no-pager | tail -20")"
done
[[ $(in_box 'systemctl show -p StatusText --value opendms-central') == "listening on port 8080" ]] || fail "the central's READY status"
[[ $(in_box 'systemctl show -p StatusText --value opendms-field') == "receiving on hub/event" ]] || fail "the field node's READY status"
ok "both services active (Type=notify READY) under the hardened units"

in_box 'for i in 1 2 3 4 5; do
          mosquitto_pub -h 127.0.0.1 -q 1 -t hub/event -m "{\"eventType\":\"status\",\"MessageID\":\"US0$i\",\"payload\":{\"hops\":1,\"duckType\":2,\"DeviceID\":\"BOXDUCK1\",\"Message\":\"hello $i\"}}"
        done
        mosquitto_pub -h 127.0.0.1 -q 1 -t hub/event -m "not json"' || fail "publishing"
delivered=no
for _ in $(seq 50); do
    if in_box 'curl -s http://127.0.0.1:9101/metrics' | grep -qx 'opendms_field_records{sync="synced"} 5'; then delivered=yes; break; fi
    sleep 0.2
done
[[ $delivered == yes ]] || fail "the records were not delivered:"$'\n'"$(in_box 'curl -s http://127.0.0.1:9101/metrics; journalctl -u opendms-field -o cat --no-pager | tail')"
in_box 'runuser -u opendms -- opendms-central --env-file /etc/opendms/central.env status' | grep -q '^records: 5$' ||
    fail "the central does not have the 5 records"
in_box 'journalctl -u opendms-field -p warning -o cat --no-pager' | grep -q 'quarantined a message' ||
    fail "the quarantine warning is not in the journal at priority warning"
in_box 'journalctl -u opendms-field -p warning -o cat --no-pager' | grep -q 'running: mode' &&
    fail "an info line shows up at priority warning: the levels are lost"
ok "5 records delivered, 1 quarantined; the journal keeps the levels"

in_box 'mkdir -p /etc/systemd/system/opendms-field.service.d
        printf "[Service]\nWatchdogSec=3\n" >/etc/systemd/system/opendms-field.service.d/watchdog.conf
        systemctl daemon-reload && systemctl restart opendms-field && sleep 1
        kill -STOP $(systemctl show -p MainPID --value opendms-field)'
restarted=no
for _ in $(seq 50); do
    if [[ $(in_box 'systemctl show -p NRestarts --value opendms-field') -ge 1 ]]; then restarted=yes; break; fi
    sleep 0.3
done
[[ $restarted == yes ]] || fail "a hung field daemon was not restarted by the watchdog"
in_box 'journalctl -u opendms-field -o cat --no-pager' | grep -q 'Watchdog timeout' || fail "no watchdog timeout in the journal"
ok "a hung daemon (SIGSTOP) is killed by the watchdog and restarted"

in_box 'rm -r /etc/systemd/system/opendms-field.service.d && systemctl daemon-reload && systemctl restart opendms-field && sleep 1
        systemctl stop opendms-field opendms-central'
for unit in opendms-field opendms-central; do
    [[ $(in_box "systemctl show -p Result --value $unit") == success ]] || fail "$unit did not stop cleanly"
done
ok "both stop cleanly on SIGTERM"
echo "all checks under systemd passed"
