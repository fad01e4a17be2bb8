#!/usr/bin/env bash
# The shipped systemd units (deploy/systemd/*.service) checked with systemd's own tools, on
# a machine where systemd need not be PID 1 (CI, containers):
#   1. systemd-analyze verify: no error and no warning at all (an unknown key, a bad value,
#      a missing ExecStart binary). The units name /usr/bin/...; a copy points ExecStart
#      and friends at this build's binaries, which verify requires to exist.
#   2. systemd-analyze security --offline: the exposure stays at or under 2.0 ("OK").
#   3. the settings issue 6 asks for are present (Type=notify, the watchdog, the user, the
#      env file, the hardening), so that a later edit cannot drop one unnoticed.
#   4. the checker itself catches a warning (a unit with an unknown key must fail step 1).
#
#   systemd_units_test.sh SOURCE_DIR FIELD_BINARY CENTRAL_BINARY
set -euo pipefail
src=$1 field_bin=$2 central_bin=$3
units=$src/deploy/systemd
work=$(mktemp -d /tmp/opendms-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not found (deploy/install-deps.sh test installs systemd)" >&2; exit 1; }

# The units with this build's binaries at the ExecStart paths.
for name in opendms-field opendms-central; do
    [[ -f $units/$name.service ]] || { fail "$units/$name.service is missing"; continue; }
    sed -e "s#/usr/bin/opendms-field#$field_bin#g" -e "s#/usr/bin/opendms-central#$central_bin#g" \
        "$units/$name.service" >"$work/$name.service"
done

# verify prints warnings but exits 0 on some of them: any output is a failure.
verify() {
    local out rc=0
    out=$(SYSTEMD_LOG_LEVEL=info systemd-analyze verify "$@" 2>&1) || rc=$?
    if ((rc != 0)) || [[ -n $out ]]; then
        echo "$out"
        return 1
    fi
}

if out=$(verify "$work/opendms-field.service" "$work/opendms-central.service"); then
    echo "ok: systemd-analyze verify (no errors, no warnings)"
else
    fail "systemd-analyze verify:"$'\n'"$out"
fi

for name in opendms-field opendms-central; do
    if out=$(systemd-analyze security --offline=yes --threshold=20 "$work/$name.service" 2>&1); then
        score=$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' <<<"$out" | awk '{print $NF}')
        if [[ -z $score ]]; then
            fail "$name: no exposure level in:"$'\n'"$out"
        elif awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
            echo "ok: $name exposure $score (at most 2.0)"
        else
            fail "$name: exposure $score is above 2.0:"$'\n'"$(grep '✗' <<<"$out")"
        fi
    else
        fail "systemd-analyze security $name:"$'\n'"$out"
    fi
done

# Settings that must stay (one per line: the exact line in the unit).
require() {
    local unit=$1
    shift
    for line in "$@"; do
        grep -qxF -- "$line" "$units/$unit" || fail "$unit lacks the line: $line"
    done
}
common=("Type=notify" "NotifyAccess=main" "User=opendms" "Group=opendms" "Restart=always"
        "ProtectSystem=strict" "ReadWritePaths=/var/lib/opendms" "NoNewPrivileges=yes"
        "PrivateTmp=yes" "ProtectHome=yes" "ProtectKernelTunables=yes" "ProtectKernelModules=yes"
        "ProtectKernelLogs=yes" "ProtectControlGroups=yes" "CapabilityBoundingSet="
        "SystemCallFilter=@system-service" "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"
        "WantedBy=multi-user.target")
require opendms-field.service "${common[@]}" "WatchdogSec=60" \
    "After=network-online.target mosquitto.service" "Wants=network-online.target mosquitto.service" \
    "ExecStart=/usr/bin/opendms-field --env-file /etc/opendms/field.env run"
require opendms-central.service "${common[@]}" "WatchdogSec=30" "Wants=network-online.target" \
    "ExecStart=/usr/bin/opendms-central --env-file /etc/opendms/central.env serve"
# Only the database directory is writable.
for name in opendms-field opendms-central; do
    n=$(grep -c '^ReadWritePaths=' "$units/$name.service" || true)
    ((n == 1)) || fail "$name.service has $n ReadWritePaths= lines (want exactly one: /var/lib/opendms)"
done
((failures == 0)) && echo "ok: required settings present"

# The checker catches a warning: an unknown key must fail verify.
cp "$work/opendms-field.service" "$work/broken.service"
sed -i 's/^\[Service\]$/[Service]\nNoSuchSetting=1/' "$work/broken.service"
if verify "$work/broken.service" >/dev/null; then
    fail "verify passed a unit with an unknown key: the check cannot see warnings"
else
    echo "ok: a unit with an unknown key is caught"
fi

if ((failures > 0)); then
    echo "$failures failure(s)" >&2
    exit 1
fi
echo "all unit checks passed"
