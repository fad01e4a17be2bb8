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
    for dep in adduser init-system-helpers libc6 libstdc++6 libssl3 libsqlite3-0 libsystemd0 libpq5 libmariadb3; do
        grep -qxF "$dep" <<<"$names" || fail "$name: Depends lacks $dep: $depends"
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
