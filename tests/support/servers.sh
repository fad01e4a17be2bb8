#!/usr/bin/env bash
# Starts and stops the real servers the integration tests talk to: PostgreSQL 15,
# MariaDB and Mosquitto, each private to STATE_DIR and listening only on 127.0.0.1.
#
#   servers.sh start STATE_DIR   start all three on free ports (restarting any that run
#                                from STATE_DIR already); writes STATE_DIR/env
#   servers.sh stop STATE_DIR    stop all three; safe to repeat or after a failed start
#   servers.sh status STATE_DIR  which servers are running
#   servers.sh mosquitto-conf DIR PORT
#                                write DIR/mosquitto.conf: the shipped broker configuration
#                                (deploy/mosquitto/field-broker.conf) for a private broker on
#                                127.0.0.1:PORT with its data and log under DIR (tests that
#                                stop and start a broker of their own use it)
#
# STATE_DIR/env holds `export` lines for the tests (source it):
#   OPENDMS_TEST_{PG,MYSQL}_{HOST,PORT,USER,PASSWORD,DATABASE}, OPENDMS_TEST_MQTT_{HOST,PORT}
# The user "opendms" (random password, kept in STATE_DIR/password) owns the database
# "opendms_test" and may create databases (PostgreSQL: CREATEDB; MariaDB: any database
# whose name starts with "opendms_"), so tests make their own.
#
# Mosquitto runs from the shipped deploy/mosquitto/field-broker.conf with only its port,
# persistence directory and logging replaced, so the tests exercise the broker settings that
# ship (persistence, no queue cap, ...).
#
# Data directories are created on the first start and reused by later starts (ports are
# picked afresh each time); delete STATE_DIR after `stop` for a clean slate.
# Needs the Debian 12 packages postgresql-15, mariadb-server, mosquitto and
# mosquitto-clients; never uses their system services. As root, PostgreSQL runs as the
# system user "opendms-test" (created if missing) because it refuses to run as root.
# A failed start stops whatever it had started and exits non-zero with the log's tail.
set -euo pipefail

readonly PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
readonly PG_OS_USER=opendms-test
readonly DB_USER=opendms
readonly DB_NAME=opendms_test
readonly READY_TIMEOUT_S=60

die() {
    echo "servers.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status STATE_DIR" >&2
    echo "       $0 mosquitto-conf DIR PORT" >&2
    exit 2
}

# Prints the last lines of a log file, for a server that failed to come up.
show_log() {
    local log=$1
    if [[ -f $log ]]; then
        echo "---- last lines of $log ----" >&2
        tail -n 30 "$log" >&2
        echo "----" >&2
    fi
}

is_root() { [[ $(id -u) -eq 0 ]]; }

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

# The pid in the first line of a pid file; empty when there is no file.
read_pid() {
    if [[ -f $1 ]]; then
        head -n 1 "$1" | tr -dc 0-9
    fi
}

# True when something listens on 127.0.0.1:$1.
port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        ss -Htln "sport = :$port" 2>/dev/null | grep -q .
    else
        timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
    fi
}

# Prints the first free port from $1 upwards, skipping those listed in the other args.
free_port() {
    local port=$1
    shift
    local limit=$((port + 500))
    while ((port < limit)); do
        if [[ " $* " != *" $port "* ]] && ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
        port=$((port + 1))
    done
    die "no free port on 127.0.0.1 in $1..$limit"
}

# Runs a command as the PostgreSQL OS user (root cannot run PostgreSQL).
as_pg() {
    if is_root; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

new_password() {
    local pw=""
    while ((${#pw} < 24)); do
        pw+=$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
    done
    echo "${pw:0:24}"
}

# Waits until "$@" succeeds; fails when the pid dies or after READY_TIMEOUT_S.
wait_ready() {
    local what=$1 pid_file=$2 log=$3
    shift 3
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    while ! "$@" >/dev/null 2>&1; do
        if [[ -n $pid_file ]] && [[ -f $pid_file ]] && ! pid_alive "$(read_pid "$pid_file")"; then
            show_log "$log"
            die "$what exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$log"
            die "$what did not become ready within ${READY_TIMEOUT_S}s"
        fi
        sleep 0.2
    done
}

# Waits for a pid to exit; sends SIGKILL after $2 seconds.
wait_exit() {
    local pid=$1 grace=$2
    local deadline=$((SECONDS + grace))
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            return 0
        fi
        sleep 0.1
    done
}

# ---------------------------------------------------------------- PostgreSQL

pg_init() {
    local dir=$STATE/pg
    if [[ -f $dir/initialized ]]; then
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir/run"
    if is_root; then
        if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$PG_OS_USER" ||
                die "cannot create the system user $PG_OS_USER"
        fi
        chown -R "$PG_OS_USER:" "$dir"
        as_pg test -w "$dir" ||
            die "$PG_OS_USER cannot write $dir: make the parents of STATE_DIR" \
                "searchable (chmod o+x)"
    fi
    local pwfile=$dir/superuser.pw
    (umask 077 && new_password >"$pwfile")
    if is_root; then
        chown "$PG_OS_USER:" "$pwfile"
    fi
    as_pg "$PG_BIN/initdb" -D "$dir/data" --username=postgres --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --no-locale \
        >"$dir/initdb.log" 2>&1 || {
        show_log "$dir/initdb.log"
        die "PostgreSQL initdb failed"
    }
}

pg_start() {
    local dir=$STATE/pg
    pg_init
    PG_PORT=$(free_port 55432)
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w -t "$READY_TIMEOUT_S" \
        -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$dir/run" \
        -o "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >"$dir/pg_ctl.log" 2>&1 || {
        show_log "$dir/pg_ctl.log"
        show_log "$dir/postgresql.log"
        die "PostgreSQL did not start"
    }
    wait_ready PostgreSQL "$dir/data/postmaster.pid" "$dir/postgresql.log" \
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
    if [[ ! -f $dir/initialized ]]; then
        local sql
        sql="CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$PASSWORD';"
        as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p "$PG_PORT" -U postgres \
            -d postgres -c "$sql" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER;" ||
            die "cannot create the PostgreSQL user and database"
        touch "$dir/initialized"
    fi
}

pg_stop() {
    local dir=$STATE/pg
    local pid
    pid=$(read_pid "$dir/data/postmaster.pid")
    pid_alive "$pid" || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    wait_exit "$pid" 10
}

# ------------------------------------------------------------------- MariaDB

my_admin_user() { id -un; }

# The MariaDB client, as the OS user over the private socket (unix_socket auth).
my_client() {
    mariadb --no-defaults --socket="$STATE/mysql/mysqld.sock" --user="$(my_admin_user)" "$@"
}

my_init() {
    local dir=$STATE/mysql
    if [[ -f $dir/initialized ]]; then
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir/data" "$dir/tmp"
    local user_arg=()
    if is_root; then
        user_arg=(--user=root)
    fi
    mariadb-install-db --no-defaults "${user_arg[@]}" --datadir="$dir/data" --skip-test-db \
        --auth-root-authentication-method=socket --auth-root-socket-user="$(my_admin_user)" \
        >"$dir/install.log" 2>&1 || {
        show_log "$dir/install.log"
        die "mariadb-install-db failed"
    }
}

my_start() {
    local dir=$STATE/mysql
    my_init
    MY_PORT=$(free_port 53306 "$PG_PORT")
    local user_arg=()
    if is_root; then
        user_arg=(--user=root)
    fi
    rm -f "$dir/mysqld.pid"
    setsid mariadbd --no-defaults "${user_arg[@]}" --datadir="$dir/data" --tmpdir="$dir/tmp" \
        --bind-address=127.0.0.1 --port="$MY_PORT" --socket="$dir/mysqld.sock" \
        --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --skip-name-resolve \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
        --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=128M \
        </dev/null >>"$dir/error.log" 2>&1 &
    local launched=$!
    echo "$launched" >"$dir/launched.pid"
    wait_ready MariaDB "$dir/launched.pid" "$dir/error.log" \
        mariadb-admin --no-defaults --socket="$dir/mysqld.sock" --user="$(my_admin_user)" \
        --connect-timeout=2 ping
    if [[ ! -f $dir/initialized ]]; then
        my_client -e "
            CREATE USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
            CREATE USER '$DB_USER'@'localhost' IDENTIFIED BY '$PASSWORD';
            GRANT ALL PRIVILEGES ON \`opendms\\_%\`.* TO '$DB_USER'@'127.0.0.1';
            GRANT ALL PRIVILEGES ON \`opendms\\_%\`.* TO '$DB_USER'@'localhost';
            CREATE DATABASE $DB_NAME CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;" ||
            die "cannot create the MariaDB user and database"
        touch "$dir/initialized"
    fi
}

my_stop() {
    local dir=$STATE/mysql
    local pid
    pid=$(read_pid "$dir/mysqld.pid")
    pid_alive "$pid" || pid=$(read_pid "$dir/launched.pid")
    pid_alive "$pid" || return 0
    mariadb-admin --no-defaults --socket="$dir/mysqld.sock" --user="$(my_admin_user)" \
        --connect-timeout=2 shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 30
    rm -f "$dir/launched.pid"
}

# ----------------------------------------------------------------- Mosquitto

SOURCE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly SHIPPED_MQ_CONF=$SOURCE_ROOT/deploy/mosquitto/field-broker.conf

# Writes $3: the shipped broker configuration with its port, persistence directory and
# logging replaced for a private broker on 127.0.0.1:$1 with its files under $2. Fails when
# the shipped file no longer has the lines it replaces (the tests would test something else).
mq_write_conf() {
    local port=$1 dir=$2 conf=$3
    [[ -r $SHIPPED_MQ_CONF ]] || die "missing $SHIPPED_MQ_CONF"
    local line
    for line in '^listener 1883 127.0.0.1$' '^persistence_location ' '^log_dest '; do
        grep -q "$line" "$SHIPPED_MQ_CONF" || die "$SHIPPED_MQ_CONF has no line matching $line"
    done
    mkdir -p "$dir/data"
    {
        echo "# Written by tests/support/servers.sh from $SHIPPED_MQ_CONF;"
        echo "# port, persistence directory and logging replaced. Rewritten on every start."
        sed -e "s|^listener 1883 127.0.0.1\$|listener $port 127.0.0.1|" \
            -e "s|^persistence_location .*|persistence_location $dir/data/|" \
            -e "s|^log_dest .*|log_dest file $dir/mosquitto.log|" "$SHIPPED_MQ_CONF"
        echo "pid_file $dir/mosquitto.pid"
        # As root, stay root rather than switching to the "mosquitto" user, which could
        # not write the test directory.
        if is_root; then
            echo "user root"
        fi
    } >"$conf"
}

mq_start() {
    local dir=$STATE/mosquitto
    MQ_PORT=$(free_port 51883 "$PG_PORT" "$MY_PORT")
    local conf=$dir/mosquitto.conf
    mq_write_conf "$MQ_PORT" "$dir" "$conf"
    rm -f "$dir/mosquitto.pid"
    mosquitto -c "$conf" -d >>"$dir/mosquitto.log" 2>&1 || {
        show_log "$dir/mosquitto.log"
        die "Mosquitto did not start"
    }
    wait_ready Mosquitto "$dir/mosquitto.pid" "$dir/mosquitto.log" mq_probe "$MQ_PORT"
}

# Connects and reads the retained $SYS version topic: proves the broker serves clients.
mq_probe() {
    # shellcheck disable=SC2016 # a literal topic name, not an expansion
    mosquitto_sub -h 127.0.0.1 -p "$1" -t '$SYS/broker/version' -C 1 -W 2
}

mq_stop() {
    local dir=$STATE/mosquitto
    local pid
    pid=$(read_pid "$dir/mosquitto.pid")
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 10
}

# --------------------------------------------------------------------- main

write_env() {
    local env=$STATE/env
    {
        echo "# Written by tests/support/servers.sh start; removed by stop."
        printf 'export OPENDMS_TEST_PG_HOST=127.0.0.1\n'
        printf 'export OPENDMS_TEST_PG_PORT=%s\n' "$PG_PORT"
        printf 'export OPENDMS_TEST_PG_USER=%s\n' "$DB_USER"
        printf 'export OPENDMS_TEST_PG_PASSWORD=%s\n' "$PASSWORD"
        printf 'export OPENDMS_TEST_PG_DATABASE=%s\n' "$DB_NAME"
        printf 'export OPENDMS_TEST_MYSQL_HOST=127.0.0.1\n'
        printf 'export OPENDMS_TEST_MYSQL_PORT=%s\n' "$MY_PORT"
        printf 'export OPENDMS_TEST_MYSQL_USER=%s\n' "$DB_USER"
        printf 'export OPENDMS_TEST_MYSQL_PASSWORD=%s\n' "$PASSWORD"
        printf 'export OPENDMS_TEST_MYSQL_DATABASE=%s\n' "$DB_NAME"
        printf 'export OPENDMS_TEST_MQTT_HOST=127.0.0.1\n'
        printf 'export OPENDMS_TEST_MQTT_PORT=%s\n' "$MQ_PORT"
    } >"$env.tmp"
    chmod 600 "$env.tmp"  # it holds the password
    mv "$env.tmp" "$env"
}

check_tools() {
    local tool
    for tool in "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pg_isready" "$PG_BIN/psql" \
        mariadb-install-db mariadbd mariadb-admin mariadb mosquitto mosquitto_sub setsid; do
        command -v "$tool" >/dev/null 2>&1 || [[ -x $tool ]] ||
            die "$tool not found: install postgresql-15, mariadb-server, mosquitto," \
                "mosquitto-clients"
    done
}

do_stop() {
    rm -f "$STATE/env"
    mq_stop
    my_stop
    pg_stop
}

do_start() {
    check_tools
    # Unix socket paths are limited to 107 bytes.
    ((${#STATE} <= 80)) || die "STATE_DIR path is too long for Unix sockets: $STATE"
    do_stop
    if [[ ! -f $STATE/password ]]; then
        (umask 077 && new_password >"$STATE/password")
    fi
    PASSWORD=$(cat "$STATE/password")
    PG_PORT="" MY_PORT="" MQ_PORT=""
    # On any failure, stop what was started before exiting.
    trap 'status=$?; if ((status != 0)); then do_stop >/dev/null 2>&1 || true; fi' EXIT
    pg_start
    my_start
    mq_start
    write_env
    trap - EXIT
    echo "servers.sh: PostgreSQL on 127.0.0.1:$PG_PORT, MariaDB on 127.0.0.1:$MY_PORT," \
        "Mosquitto on 127.0.0.1:$MQ_PORT; source $STATE/env"
}

# Prints one server's state; false when it is not running.
report() {
    local name=$1 pid
    pid=$(read_pid "$2")
    if pid_alive "$pid"; then
        echo "$name: running (pid $pid)"
    else
        echo "$name: stopped"
        return 1
    fi
}

do_status() {
    local rc=0
    report postgresql "$STATE/pg/data/postmaster.pid" || rc=1
    report mariadb "$STATE/mysql/mysqld.pid" || rc=1
    report mosquitto "$STATE/mosquitto/mosquitto.pid" || rc=1
    return $rc
}

if [[ ${1:-} == mosquitto-conf ]]; then
    [[ $# -eq 3 && $3 =~ ^[0-9]+$ ]] || usage
    mkdir -p "$2"
    dir=$(cd "$2" && pwd -P)
    mq_write_conf "$3" "$dir" "$dir/mosquitto.conf"
    echo "$dir/mosquitto.conf"
    exit 0
fi

[[ $# -eq 2 ]] || usage
command=$1
mkdir -p "$2"
STATE=$(cd "$2" && pwd -P)
readonly STATE
# PostgreSQL's OS user must be able to reach its directory.
chmod a+x "$STATE"

case $command in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) usage ;;
esac
