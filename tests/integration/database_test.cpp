// The database contract against real servers: each case runs on SQLite, PostgreSQL and
// MariaDB (Catch2 GENERATE), each in a fresh scratch database. Needs the servers of
// tests/support/servers.sh (tests/run_all.sh starts them); without them every
// PostgreSQL/MariaDB case fails with a message saying so.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>

#include "opendms/db/database.hpp"
#include "test_servers.hpp"

using namespace opendms;
using opendms::test::scratch_database;

namespace {

// A table with one column of each kind, in each dialect's DDL.
std::string create_table_sql(db::dialect d) {
    switch (d) {
        case db::dialect::sqlite:
            return "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, i BIGINT, "
                   "d DOUBLE PRECISION, s TEXT, b BOOLEAN, ts TIMESTAMP, u VARCHAR(64) UNIQUE)";
        case db::dialect::pgsql:
            return "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, "
                   "s TEXT, b BOOLEAN, ts TIMESTAMP(0), u VARCHAR(64) UNIQUE)";
        case db::dialect::mysql:
            return "CREATE TABLE t (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, i BIGINT, "
                   "d DOUBLE, s LONGTEXT, b TINYINT(1), ts TIMESTAMP NULL, "
                   "u VARCHAR(64) UNIQUE) ENGINE=InnoDB";
    }
    return {};
}

// INSERT that skips a duplicate instead of failing.
std::string insert_ignore_sql(db::dialect d) {
    switch (d) {
        case db::dialect::sqlite:
            return "INSERT OR IGNORE INTO t (u) VALUES (?)";
        case db::dialect::pgsql:
            return "INSERT INTO t (u) VALUES (?) ON CONFLICT DO NOTHING";
        case db::dialect::mysql:
            return "INSERT IGNORE INTO t (u) VALUES (?)";
    }
    return {};
}

// Runs a case on all three dialects; the section name says which one failed.
db::dialect each_dialect() {
    return GENERATE(db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql);
}

db::dialect each_server() {
    return GENERATE(db::dialect::pgsql, db::dialect::mysql);
}

std::unique_ptr<db::connection> connect_with_table(const scratch_database& s) {
    auto c = s.connect();
    status made = c->execute_script(create_table_sql(s.kind()));
    INFO(made.to_string());
    REQUIRE(made);
    return c;
}

db::rows query_ok(db::connection& c, const std::string& sql, const std::vector<db::value>& p = {}) {
    auto r = c.query(sql, p);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r);
    return std::move(*r);
}

std::int64_t count_rows(db::connection& c) {
    return query_ok(c, "SELECT COUNT(*) FROM t")[0].get_int(0).value();
}

// The server-side id of a connection's session, and the statement that ends it.
std::string session_id(db::connection& c) {
    const char* sql =
        c.kind() == db::dialect::pgsql ? "SELECT pg_backend_pid()" : "SELECT CONNECTION_ID()";
    return query_ok(c, sql)[0].get_text(0).value();
}

// Ends the session from another connection and waits until the server no longer lists it.
void kill_session(db::connection& killer, const std::string& id) {
    const bool pg = killer.kind() == db::dialect::pgsql;
    status s = killer.execute_script(pg ? "SELECT pg_terminate_backend(" + id + ")"
                                        : "KILL CONNECTION " + id);
    INFO(s.to_string());
    REQUIRE(s);
    const std::string listed =
        pg ? "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = " + id
           : "SELECT COUNT(*) FROM information_schema.processlist WHERE id = " + id;
    for (int i = 0; i < 500 && query_ok(killer, listed)[0].get_int(0) != 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(query_ok(killer, listed)[0].get_int(0) == 0);
}

std::string session_time_zone(db::connection& c) {
    const char* sql =
        c.kind() == db::dialect::pgsql ? "SHOW TimeZone" : "SELECT @@session.time_zone";
    return query_ok(c, sql)[0].get_text(0).value();
}

std::string utc_name(db::dialect d) {
    return d == db::dialect::pgsql ? "UTC" : "+00:00";
}

// A port on 127.0.0.1 that nothing listens on: bound by us, then released.
int closed_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// A table with one binary column, in each dialect's DDL.
std::string create_blob_table_sql(db::dialect d) {
    switch (d) {
        case db::dialect::sqlite:
            return "CREATE TABLE bin (id INTEGER PRIMARY KEY AUTOINCREMENT, raw BLOB)";
        case db::dialect::pgsql:
            return "CREATE TABLE bin (id BIGSERIAL PRIMARY KEY, raw BYTEA)";
        case db::dialect::mysql:
            return "CREATE TABLE bin (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, raw LONGBLOB) "
                   "ENGINE=InnoDB";
    }
    return {};
}

}  // namespace

TEST_CASE("every value kind and NULL round-trip", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
        const std::int64_t hi = std::numeric_limits<std::int64_t>::max();
        const std::string utf8 =
            "Gr\xC3\xBC\xC3\x9F"
            "e \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x86";
        const char* sql = "INSERT INTO t (i, d, s, b, ts) VALUES (?, ?, ?, ?, ?)";
        REQUIRE(c->exec(sql, {lo, 0.1, utf8, true, std::string("2026-02-27 10:00:00")}).value() ==
                1);
        REQUIRE(c->exec(sql, {hi, -1e300, std::string(), false, std::string("1999-12-31 23:59:59")})
                    .value() == 1);
        REQUIRE(
            c->exec(sql, {db::null(), db::null(), db::null(), db::null(), db::null()}).value() ==
            1);
        REQUIRE(c->exec("INSERT INTO t (d) VALUES (?)", {3.141592653589793}).value() == 1);

        db::rows r = query_ok(*c, "SELECT i, d, s, b, ts FROM t ORDER BY id");
        REQUIRE(r.size() == 4);
        CHECK(r.columns == std::vector<std::string>{"i", "d", "s", "b", "ts"});
        CHECK(std::get<std::int64_t>(r[0].cells[0]) == lo);
        CHECK(std::get<double>(r[0].cells[1]) == 0.1);
        CHECK(std::get<std::string>(r[0].cells[2]) == utf8);
        CHECK(r[0].get_bool(3) == true);
        CHECK(r[0].get_text(4) == "2026-02-27 10:00:00");
        CHECK(std::get<std::int64_t>(r[1].cells[0]) == hi);
        CHECK(std::get<double>(r[1].cells[1]) == -1e300);
        CHECK(std::get<std::string>(r[1].cells[2]).empty());
        CHECK(r[1].get_bool(3) == false);
        CHECK(r[1].get_text(4) == "1999-12-31 23:59:59");
        for (std::size_t col = 0; col < 5; ++col) CHECK(r[2].is_null(col));
        CHECK(std::get<double>(r[3].cells[1]) == 3.141592653589793);
        if (d == db::dialect::pgsql) CHECK(std::holds_alternative<bool>(r[0].cells[3]));
    }
}

TEST_CASE("a boolean parameter matches in a WHERE clause", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        REQUIRE(c->exec("INSERT INTO t (b) VALUES (?)", {true}));
        REQUIRE(c->exec("INSERT INTO t (b) VALUES (?)", {false}));
        auto r = query_ok(*c, "SELECT COUNT(*) FROM t WHERE b = ?", {true});
        CHECK(r[0].get_int(0) == 1);
    }
}

TEST_CASE("64 KiB of text comes back whole", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        std::string big(64 * 1024 + 3, '\0');
        for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
        REQUIRE(c->exec("INSERT INTO t (s) VALUES (?)", {big}));
        REQUIRE(c->exec("INSERT INTO t (s) VALUES (?)", {std::string("short")}));
        auto r = query_ok(*c, "SELECT s FROM t ORDER BY id");
        CHECK(std::get<std::string>(r[0].cells[0]) == big);
        CHECK(std::get<std::string>(r[1].cells[0]) == "short");
    }
}

TEST_CASE("text with NUL bytes round-trips or is refused, never truncated", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        const std::string with_nul("a\0b\0\0c", 6);
        auto inserted = c->exec("INSERT INTO t (s) VALUES (?)", {with_nul});
        if (d == db::dialect::pgsql) {
            REQUIRE_FALSE(inserted);
            CHECK(inserted.error().code() == errc::invalid_argument);
            CHECK_THAT(inserted.error().message(), Catch::Contains("NUL"));
            CHECK(count_rows(*c) == 0);
        } else {
            REQUIRE(inserted);
            CHECK(std::get<std::string>(query_ok(*c, "SELECT s FROM t")[0].cells[0]) == with_nul);
        }
    }
}

TEST_CASE("blob parameters of every byte value, empty and large, come back exactly",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = s.connect();
        REQUIRE(c->execute_script(create_blob_table_sql(d)));
        std::string every_byte;
        for (int i = 0; i < 256; ++i) every_byte += static_cast<char>(i);
        // Larger than the MySQL driver's first fetch buffer, so the cell is fetched again.
        std::string large(70 * 1024 + 1, '\0');
        for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(255 - i % 256);
        const char* insert = "INSERT INTO bin (raw) VALUES (?)";
        REQUIRE(c->exec(insert, {db::blob{every_byte}}));
        REQUIRE(c->exec(insert, {db::blob{}}));
        REQUIRE(c->exec(insert, {db::blob{large}}));
        REQUIRE(c->exec(insert, {db::null()}));

        auto r = query_ok(*c, "SELECT raw FROM bin ORDER BY id");
        REQUIRE(r.size() == 4);
        REQUIRE(std::holds_alternative<std::string>(r[0].cells[0]));
        CHECK(r[0].get_text(0) == every_byte);
        CHECK(r[1].get_text(0) == std::string());  // empty, not NULL
        CHECK(r[2].get_text(0) == large);
        CHECK(r[3].is_null(0));

        auto found = query_ok(*c, "SELECT id FROM bin WHERE raw = ?", {db::blob{every_byte}});
        REQUIRE(found.size() == 1);
        CHECK(found[0].get_int(0) == 1);
    }
}

TEST_CASE("a statement is prepared once per connection", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        const std::size_t before = c->cached_statements();
        for (int i = 0; i < 5; ++i) REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {i}));
        CHECK(c->cached_statements() == before + 1);
        CHECK(count_rows(*c) == 5);
        CHECK(c->cached_statements() == before + 2);
    }
}

TEST_CASE("a cached SELECT * survives a new column", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {1}));
        REQUIRE(c->query("SELECT * FROM t", {}));
        REQUIRE(c->execute_script("ALTER TABLE t ADD COLUMN extra VARCHAR(8)"));
        // PostgreSQL refuses a changed result type once, then prepares afresh.
        auto again = c->query("SELECT * FROM t", {});
        if (!again) again = c->query("SELECT * FROM t", {});
        INFO(again.error().to_string());
        REQUIRE(again);
        CHECK(again->columns.back() == "extra");
        CHECK(count_rows(*c) == 1);  // the connection is in step after the re-prepare
    }
}

TEST_CASE("commit keeps rows and rollback discards them", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        REQUIRE(c->begin());
        REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {1}));
        REQUIRE(c->rollback());
        CHECK(count_rows(*c) == 0);
        REQUIRE(c->begin());
        REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {2}));
        REQUIRE(c->commit());
        auto other = s.connect();
        CHECK(count_rows(*other) == 1);
        CHECK(c->rollback());  // no transaction open: still fine
    }
}

TEST_CASE("a failed statement in a transaction then rollback leaves nothing", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        status st = db::in_transaction(*c, [&]() -> status {
            if (auto r = c->exec("INSERT INTO t (u) VALUES (?)", {std::string("x")}); !r) {
                return r.error();
            }
            return c->exec("INSERT INTO t (u) VALUES (?)", {std::string("x")}).error();
        });
        CHECK(st.code() == errc::conflict);
        CHECK(count_rows(*c) == 0);
        // The connection is usable again.
        REQUIRE(c->exec("INSERT INTO t (u) VALUES (?)", {std::string("x")}));
        CHECK(count_rows(*c) == 1);
    }
}

TEST_CASE("a unique violation is a conflict whose message names the operation", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        REQUIRE(c->exec("INSERT INTO t (id, u) VALUES (?, ?)", {5, std::string("a")}));
        auto dup = c->exec("INSERT INTO t (u) VALUES (?)", {std::string("a")});
        REQUIRE_FALSE(dup);
        CHECK(dup.error().code() == errc::conflict);
        CHECK_THAT(dup.error().message(),
                   Catch::StartsWith(std::string(db::dialect_name(d)) + ".exec: "));
        auto dup_key = c->insert("INSERT INTO t (id) VALUES (?)", {5});
        REQUIRE_FALSE(dup_key);
        CHECK(dup_key.error().code() == errc::conflict);
    }
}

TEST_CASE("insert returns ascending ids and not_found when it inserted nothing", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        auto first = c->insert("INSERT INTO t (u) VALUES (?)", {std::string("a")});
        auto second = c->insert("INSERT INTO t (u) VALUES (?);", {std::string("b")});
        INFO(first.error().to_string() << " / " << second.error().to_string());
        REQUIRE(first);
        REQUIRE(second);
        CHECK(*first >= 1);
        CHECK(*second == *first + 1);
        auto skipped = c->insert(insert_ignore_sql(d), {std::string("a")});
        REQUIRE_FALSE(skipped);
        CHECK(skipped.error().code() == errc::not_found);
    }
}

TEST_CASE("exec counts the rows an UPDATE matched", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        for (int i = 0; i < 3; ++i) {
            REQUIRE(c->exec("INSERT INTO t (i, s) VALUES (?, ?)", {i, std::string("same")}));
        }
        // One of the two matched rows already holds the value: it still counts.
        REQUIRE(c->exec("UPDATE t SET s = ? WHERE i = ?", {std::string("new"), 2}));
        CHECK(c->exec("UPDATE t SET s = ? WHERE i >= ?", {std::string("new"), 1}).value() == 2);
        CHECK(c->exec("DELETE FROM t WHERE i = ?", {99}).value() == 0);
        CHECK(c->exec("SELECT i FROM t", {}).value() == 0);  // a SELECT changes nothing
    }
}

TEST_CASE("SQL errors are invalid arguments", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        auto syntax = c->exec("SELEC 1", {});
        REQUIRE_FALSE(syntax);
        CHECK(syntax.error().code() == errc::invalid_argument);
        CHECK_THAT(syntax.error().message(),
                   Catch::StartsWith(std::string(db::dialect_name(d)) + ".exec: "));
        auto missing = c->query("SELECT * FROM nowhere", {});
        REQUIRE_FALSE(missing);
        CHECK(missing.error().code() == errc::invalid_argument);
        auto count = c->exec("INSERT INTO t (i, s) VALUES (?, ?)", {1});
        REQUIRE_FALSE(count);
        CHECK(count.error().code() == errc::invalid_argument);
        CHECK(count_rows(*c) == 0);
    }
}

TEST_CASE("a script runs every statement and stops at the first error", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        REQUIRE(
            c->execute_script("INSERT INTO t (i) VALUES (1);\n"
                              "INSERT INTO t (i) VALUES (2);\n"
                              "SELECT COUNT(*) FROM t;\n-- the end\n"));
        CHECK(count_rows(*c) == 2);
        status bad = c->execute_script(
            "INSERT INTO t (i) VALUES (3); INSERT INTO nowhere VALUES (4);"
            " INSERT INTO t (i) VALUES (5);");
        CHECK(bad.code() == errc::invalid_argument);
        CHECK_THAT(bad.message(),
                   Catch::StartsWith(std::string(db::dialect_name(d)) + ".script: "));
        CHECK_THAT(bad.message(), Catch::Contains("nowhere"));
        // Every result was drained: the connection still works, and nothing ran after the error.
        CHECK(query_ok(*c, "SELECT COUNT(*) FROM t WHERE i = ?", {5})[0].get_int(0) == 0);
        CHECK(c->execute_script("  ;  "));
    }
}

TEST_CASE("table_exists and column_exists see only this database", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        CHECK(c->table_exists("t").value());
        CHECK_FALSE(c->table_exists("nope").value());
        CHECK(c->column_exists("t", "ts").value());
        CHECK_FALSE(c->column_exists("t", "nope").value());
        CHECK_FALSE(c->column_exists("nope", "ts").value());
        if (d != db::dialect::sqlite) {
            scratch_database other(d);
            auto c2 = other.connect();
            CHECK_FALSE(c2->table_exists("t").value());
        }
    }
}

TEST_CASE("server sessions run in UTC", "[integration]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = s.connect();
        CHECK(session_time_zone(*c) == utc_name(d));
        if (d == db::dialect::pgsql) {
            auto tz = query_ok(*c, "SELECT TIMESTAMPTZ '2026-02-27 12:00:00+02'");
            CHECK(tz[0].get_text(0) == "2026-02-27 10:00:00");
        } else {
            CHECK_THAT(query_ok(*c, "SELECT @@session.sql_mode")[0].get_text(0).value(),
                       Catch::Contains("STRICT_TRANS_TABLES"));
        }
    }
}

TEST_CASE("connecting to a closed port is unavailable", "[integration][fault]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        db::connect_options o = test::require_server_options(d);
        o.port = closed_port();
        o.connect_timeout_s = 3;
        auto c = db::open(o);
        REQUIRE_FALSE(c);
        CHECK(c.error().code() == errc::unavailable);
        CHECK_THAT(c.error().message(), Catch::Contains(std::to_string(o.port)));
    }
}

TEST_CASE("a wrong password is unavailable and names the server", "[integration][fault]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        db::connect_options o = test::require_server_options(d);
        o.password += "-wrong";
        auto c = db::open(o);
        REQUIRE_FALSE(c);
        CHECK(c.error().code() == errc::unavailable);
        CHECK_THAT(c.error().message(), Catch::Contains(o.host));
    }
}

TEST_CASE("a killed session reports unavailable, then reconnects outside a transaction",
          "[integration][fault]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        auto killer = s.connect();
        REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {1}));
        kill_session(*killer, session_id(*c));
        auto lost = c->exec("INSERT INTO t (i) VALUES (?)", {2});
        REQUIRE_FALSE(lost);
        CHECK(lost.error().code() == errc::unavailable);
        // The next call reconnects and prepares its statement again.
        auto again = c->exec("INSERT INTO t (i) VALUES (?)", {3});
        INFO(again.error().to_string());
        REQUIRE(again);
        CHECK(count_rows(*c) == 2);
        CHECK(session_time_zone(*c) == utc_name(d));  // the new session is set up too
    }
}

TEST_CASE("a session killed inside a transaction stays unavailable until rollback",
          "[integration][fault]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = connect_with_table(s);
        auto killer = s.connect();
        REQUIRE(c->begin());
        REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {1}));
        kill_session(*killer, session_id(*c));
        CHECK(c->exec("INSERT INTO t (i) VALUES (?)", {2}).error().code() == errc::unavailable);
        // No silent reconnect: the rest of the transaction would run in autocommit.
        CHECK(c->exec("INSERT INTO t (i) VALUES (?)", {3}).error().code() == errc::unavailable);
        CHECK(c->commit().code() == errc::unavailable);
        CHECK(c->rollback());
        CHECK(count_rows(*c) == 0);
        CHECK(count_rows(*killer) == 0);
    }
}

TEST_CASE("a missing test server fails the test with how to start it", "[integration]") {
    const char* saved = std::getenv("OPENDMS_TEST_PG_HOST");
    const std::string value = saved ? saved : "";
    ::unsetenv("OPENDMS_TEST_PG_HOST");
    CHECK_THROWS_WITH(
        scratch_database(db::dialect::pgsql),
        Catch::Contains("OPENDMS_TEST_PG_HOST is not set") && Catch::Contains("tests/run_all.sh"));
    CHECK_FALSE(test::server_options(db::dialect::pgsql));
    if (saved) ::setenv("OPENDMS_TEST_PG_HOST", value.c_str(), 1);
}
