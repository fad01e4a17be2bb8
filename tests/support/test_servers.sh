# Sourced by the test scripts (run_all.sh, run_sanitizers.sh, system/run_matrix.sh):
# start_test_servers starts PostgreSQL, MariaDB and Mosquitto on 127.0.0.1 in a temporary
# directory (servers.sh), exports their OPENDMS_TEST_* variables into the calling shell,
# and stops them and removes the directory when that shell exits (its EXIT trap).
opendms_support_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

start_test_servers() {
    opendms_servers_state=$(mktemp -d /tmp/opendms-test-servers.XXXXXX)
    chmod 755 "$opendms_servers_state"
    trap stop_test_servers EXIT
    "$opendms_support_dir/servers.sh" start "$opendms_servers_state"
    # shellcheck disable=SC1091
    source "$opendms_servers_state/env"
}

stop_test_servers() {
    "$opendms_support_dir/servers.sh" stop "$opendms_servers_state" || true
    rm -rf "$opendms_servers_state"
}
