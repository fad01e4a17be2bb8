// A throw-away PostgreSQL 15 cluster of one test, for tests that stop and start the
// database under a running server. Made as tests/support/servers.sh makes the shared one:
// the binaries in /usr/lib/postgresql/15/bin (PG_BIN overrides), run as the system user
// "opendms-test" through runuser when the test runs as root (PostgreSQL refuses root),
// fsync/synchronous_commit/full_page_writes off. It listens on 127.0.0.1 only, on a port
// picked free at construction and kept across restarts, with its Unix socket in its own
// directory; authentication is `trust` (the cluster lives only as long as the test).
//
// The cluster's superuser is "postgres"; options() connects to database "opendms".
//
// Errors: initdb/start failures throw std::runtime_error with the server's log. The
// destructor stops the server (immediate mode) and removes the directory; it never throws.
// Thread safety: drive it from one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "opendms/db/database.hpp"
#include "test_servers.hpp"

namespace opendms::test {

class private_postgres {
public:
    /// initdb into a fresh temporary directory, start, create database "opendms".
    private_postgres();
    ~private_postgres();
    private_postgres(const private_postgres&) = delete;
    private_postgres& operator=(const private_postgres&) = delete;

    /// Stops with `pg_ctl stop -m fast` (sessions are disconnected) and waits.
    void stop();
    /// Starts again on the same port and data; waits until it accepts connections.
    void start();
    bool running() const noexcept { return running_; }

    int port() const noexcept { return port_; }
    /// Connection options for database "opendms" as the superuser.
    db::connect_options options() const;
    /// The server's log file (for failure messages).
    std::string log() const;

private:
    void run_as_pg(const std::vector<std::string>& argv, const std::string& what);

    std::unique_ptr<temp_dir> dir_;
    std::string data_;
    std::string socket_dir_;
    int port_ = 0;
    bool running_ = false;
};

}  // namespace opendms::test
