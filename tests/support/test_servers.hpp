// Test fixtures for real databases: temporary directories, the test servers started by
// tests/support/servers.sh, and throw-away databases on them.
//
// The servers are found through the variables servers.sh writes to STATE_DIR/env:
// OPENDMS_TEST_{PG,MYSQL}_{HOST,PORT,USER,PASSWORD,DATABASE}. Without them an
// integration test fails (it never passes silently): the helpers below throw
// std::runtime_error("OPENDMS_TEST_PG_HOST is not set: run the suite with
// tests/run_all.sh (it starts the servers)"), which Catch2 reports as the failure.
//
// Exceptions: set-up failures throw std::runtime_error (a test cannot go on without its
// database); destructors never throw and report clean-up failures on stderr.
// Thread safety: create and destroy on one thread; names are unique per process.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "opendms/db/database.hpp"

namespace opendms::test {

/// A fresh empty directory under $TMPDIR (default /tmp), removed with everything in it
/// by the destructor.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    /// The directory's absolute path, without a trailing slash.
    const std::string& path() const noexcept { return path_; }
    /// path() + "/" + name (the file need not exist).
    std::string file(std::string_view name) const;

private:
    std::string path_;
};

/// The environment variable prefix of a server dialect: "OPENDMS_TEST_PG_" or
/// "OPENDMS_TEST_MYSQL_".
std::string server_env_prefix(db::dialect d);

/// Connection options for the test server of `d`, from the OPENDMS_TEST_* variables.
/// nullopt when OPENDMS_TEST_<X>_HOST is not set, and always for sqlite (no server).
/// connect_timeout_s is 5.
std::optional<db::connect_options> server_options(db::dialect d);

/// server_options(d), or throws the "... is not set: run the suite with
/// tests/run_all.sh" error when the variables are missing.
db::connect_options require_server_options(db::dialect d);

/// A new, empty, uniquely named database for one test, dropped by the destructor.
///   pgsql/mysql: CREATE DATABASE opendms_t_<pid>_<counter> on the test server (a
///                leftover of the same name from a crashed run is dropped first);
///   sqlite:      <temp dir>/test.sqlite in a fresh temp_dir.
/// Close every connection to it before the destructor runs (declare it first); on
/// PostgreSQL the drop forces stray sessions out anyway.
class scratch_database {
public:
    explicit scratch_database(db::dialect d);
    ~scratch_database();
    scratch_database(const scratch_database&) = delete;
    scratch_database& operator=(const scratch_database&) = delete;

    db::dialect kind() const noexcept { return options_.kind; }
    /// The database's name (sqlite: the file path).
    const std::string& name() const noexcept { return options_.database; }
    /// Options that connect to this database.
    const db::connect_options& options() const noexcept { return options_; }
    /// Opens a new connection to it; throws std::runtime_error on failure.
    std::unique_ptr<db::connection> connect() const;

private:
    db::connect_options options_;
    std::unique_ptr<temp_dir> dir_;  // sqlite only
};

}  // namespace opendms::test
