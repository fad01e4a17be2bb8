// One narrow interface over SQLite, PostgreSQL (libpq) and MySQL/MariaDB (Connector/C).
//
// SQL is written once with `?` placeholders; each driver maps them to its own form
// (PostgreSQL's `$1..$n`; a `?` inside a quoted literal is left alone). Statements given
// to exec()/query() are prepared once per connection and cached by their text.
//
// Values are typed: std::monostate is SQL NULL. Booleans are sent as the dialect's
// boolean (SQLite and MySQL: 0/1; PostgreSQL: boolean) and read back as bool when the
// column is boolean-typed, as an integer otherwise (SQLite/MySQL store 0/1).
// Timestamps travel as text "YYYY-MM-DD HH:MM:SS" in UTC (see opendms/timefmt.hpp).
// Raw bytes (any byte, NUL included) are sent as a `blob` parameter, for blob/bytea/
// longblob columns: SQLite binds a BLOB, PostgreSQL sends a binary-format parameter
// (bytea), MySQL a MYSQL_TYPE_BLOB. Read back, binary columns come as std::string cells
// holding the exact bytes (PostgreSQL's bytea is decoded from its text form), so
// get_text() returns them; a result never holds a `blob` cell.
//
// Thread safety: a connection is used by one thread at a time. Open one per thread.
// Failure: every call returns a status; errc::unavailable means the server went away
// or is busy (retry may help), errc::conflict a unique-key violation, errc::io_error a
// local disk failure (SQLITE_FULL, SQLITE_IOERR), errc::corrupt a damaged database file.
// After a failed statement inside a transaction, the caller must rollback().
//
// Details of the drivers (common/src/db/):
// - Connecting: any failure to reach or log in to a server (refused, timed out, bad
//   password, unknown database) is errc::unavailable: it may clear up on the server side.
// - Lost connection (PostgreSQL, MySQL): the call that notices the loss fails with
//   errc::unavailable and is never retried by the driver (it may have been applied).
//   The next call outside a transaction reconnects once, transparently (statements are
//   prepared again). Inside a transaction every call fails with errc::unavailable until
//   rollback(), which then returns ok: the server has already discarded the transaction.
// - Error codes besides the above: only errors about the data or the statement itself are
//   errc::invalid_argument (retrying the same input cannot help): PostgreSQL SQLSTATE
//   classes 22 (data exception), 23 (integrity, except 23505 unique: errc::conflict), 42
//   (syntax or access rule) and 0A000; MySQL's data errors (1048 null, 1264 out of range,
//   1265/1292/1366 bad value, 1406 too long, ...) and statement errors. Everything about
//   the server's state is errc::unavailable, so the whole transaction may be retried:
//   connection loss, serialization failures and deadlocks, lock and statement timeouts,
//   resources (disk full, too many connections), shutdown, a read-only server (see
//   pg_connection.cpp and mysql_connection.cpp for the exact lists).
// - Text: SQLite and MySQL keep any bytes, NUL included. PostgreSQL text cannot hold a
//   NUL byte: a parameter containing one fails with errc::invalid_argument (it is never
//   truncated). A `blob` parameter holds any bytes on every dialect.
// - Types read back: integers as int64 (MySQL TINYINT(1) too: use get_bool), floating
//   point as double, PostgreSQL numeric and MySQL DECIMAL as text (exact), PostgreSQL
//   boolean as bool, timestamps/datetimes as "YYYY-MM-DD HH:MM:SS" (fraction and the
//   "+00" offset dropped; sessions run in UTC), binary columns (blob, bytea, longblob)
//   as std::string with their exact bytes, everything else as text.
// - Row counts: MySQL connects with CLIENT_FOUND_ROWS, so an UPDATE counts the rows it
//   matched, as SQLite and PostgreSQL do.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "opendms/status.hpp"

namespace opendms::db {

enum class dialect { sqlite, pgsql, mysql };

/// "sqlite", "pgsql", "mysql" (the DB_CONNECTION names).
const char* dialect_name(dialect d) noexcept;
/// Parses a DB_CONNECTION value; "mariadb" is accepted as mysql.
std::optional<dialect> parse_dialect(std::string_view name) noexcept;

/// Raw bytes for a binary column (SQLite blob, PostgreSQL bytea, MySQL longblob). A
/// std::string parameter is text: PostgreSQL refuses invalid UTF-8 and NUL bytes in it.
struct blob {
    std::string bytes;

    bool operator==(const blob& o) const { return bytes == o.bytes; }
    bool operator!=(const blob& o) const { return !(*this == o); }
};

using value = std::variant<std::monostate, std::int64_t, double, std::string, bool, blob>;

inline value null() { return std::monostate{}; }
/// NULL when empty, else the value: for nullable columns.
template <typename T>
value opt(const std::optional<T>& v) {
    if (!v) return std::monostate{};
    return value(*v);
}

struct row {
    std::vector<value> cells;

    bool is_null(std::size_t i) const { return std::holds_alternative<std::monostate>(cells.at(i)); }
    /// Integer value of cell i (bool as 0/1, numeric text parsed); nullopt for NULL.
    /// Also nullopt for a value that is not a whole number ("abc", 2.5).
    std::optional<std::int64_t> get_int(std::size_t i) const;
    /// Number of cell i (bool as 0/1, numeric text parsed); nullopt for NULL or non-numbers.
    std::optional<double> get_double(std::size_t i) const;
    /// Text of cell i (numbers formatted, shortest exact form; bool as "1"/"0"; a blob's
    /// bytes); nullopt for NULL.
    std::optional<std::string> get_text(std::size_t i) const;
    /// Boolean of cell i (integers: non-zero is true; text "t"/"true"/"1"); nullopt for NULL.
    std::optional<bool> get_bool(std::size_t i) const;
};

struct rows {
    std::vector<std::string> columns;
    std::vector<row> data;

    std::size_t size() const { return data.size(); }
    bool empty() const { return data.empty(); }
    const row& operator[](std::size_t i) const { return data[i]; }
};

/// Connection settings, taken from the DB_* variables.
struct connect_options {
    dialect kind = dialect::sqlite;
    std::string database;  // SQLite: file path (":memory:" allowed); others: database name
    std::string host = "127.0.0.1";
    int port = 0;          // 0: the dialect's default (5432, 3306)
    std::string username;
    std::string password;
    std::string socket;    // optional Unix socket path (MySQL) or directory (PostgreSQL)

    // SQLite only.
    std::string sqlite_synchronous = "FULL";  // OFF | NORMAL | FULL | EXTRA
    int busy_timeout_ms = 5000;
    int connect_timeout_s = 10;  // PostgreSQL / MySQL
    // MySQL only: a reply slower than this fails the call with errc::unavailable (a dead
    // server is noticed). Long enough for a migration on a large table. 0: no limit.
    // PostgreSQL relies on TCP keepalives (idle 30 s, then 3 probes 10 s apart) instead.
    int read_timeout_s = 600;
};

class connection {
public:
    virtual ~connection() = default;
    connection() = default;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    virtual dialect kind() const noexcept = 0;

    /// Runs a script of one or more statements with no parameters and no result
    /// (migrations, pragmas). Not prepared, not cached.
    virtual status execute_script(std::string_view sql) = 0;

    /// Runs one statement; returns the number of rows it changed.
    virtual result<std::int64_t> exec(std::string_view sql, const std::vector<value>& params = {}) = 0;

    /// Runs one statement and returns all of its rows. For large scans, page with LIMIT.
    virtual result<rows> query(std::string_view sql, const std::vector<value>& params = {}) = 0;

    /// Runs one INSERT and returns the new row's auto-increment id. On PostgreSQL the
    /// statement must not end in RETURNING; the driver appends `RETURNING id`.
    /// errc::not_found when it inserted no row (e.g. a conflict clause skipped it). Meant
    /// for plain inserts: an upsert that updates reports a reliable id only on PostgreSQL.
    virtual result<std::int64_t> insert(std::string_view sql, const std::vector<value>& params) = 0;

    virtual status begin() = 0;
    virtual status commit() = 0;
    /// Safe to call after any failure; never throws.
    virtual status rollback() = 0;

    /// True when a table of that name exists in the current database/schema.
    virtual result<bool> table_exists(std::string_view table) = 0;
    /// True when the table has a column of that name.
    virtual result<bool> column_exists(std::string_view table, std::string_view column) = 0;

    /// How many prepared statements this connection holds in its cache (for tests and
    /// diagnostics; 0 for implementations without a cache).
    virtual std::size_t cached_statements() const noexcept { return 0; }
};

/// Opens a connection. SQLite: creates the file if missing, sets journal_mode=WAL,
/// synchronous, busy_timeout, foreign_keys=ON and journal_size_limit=4 MiB (a WAL grown by a
/// burst is cut back at the next checkpoint). errc::io_error naming the path when
/// the file's directory does not exist or WAL cannot be enabled; errc::corrupt when the
/// file is not a database; errc::invalid_argument for a bad sqlite_synchronous.
/// PostgreSQL: session TimeZone UTC, DateStyle ISO. MySQL: time_zone '+00:00', strict
/// sql_mode (Laravel's), names utf8mb4.
result<std::unique_ptr<connection>> open(const connect_options& options);

/// Runs fn inside begin()/commit(); rolls back when fn or commit fails.
template <typename Fn>
status in_transaction(connection& c, Fn&& fn) {
    if (status s = c.begin(); !s) return s;
    status s = fn();
    if (!s) {
        (void)c.rollback();
        return s;
    }
    s = c.commit();
    if (!s) (void)c.rollback();
    return s;
}

}  // namespace opendms::db
