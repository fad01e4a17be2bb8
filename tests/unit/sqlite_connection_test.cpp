// The SQLite driver on temporary files and :memory:, and the row getters.
// The contract cases shared with PostgreSQL and MariaDB run again in
// tests/integration/database_test.cpp.
#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

#include "opendms/db/database.hpp"
#include "test_servers.hpp"

using namespace opendms;
using opendms::test::temp_dir;

namespace {

db::connect_options sqlite_at(const std::string& path) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = path;
    return o;
}

std::unique_ptr<db::connection> open_or_fail(const db::connect_options& o) {
    auto c = db::open(o);
    INFO(c.error().to_string());
    REQUIRE(c);
    return std::move(*c);
}

db::value scalar(db::connection& c, const std::string& sql, const std::vector<db::value>& p = {}) {
    auto r = c.query(sql, p);
    INFO(r.error().to_string());
    REQUIRE(r);
    REQUIRE(r->size() == 1);
    return (*r)[0].cells.at(0);
}

std::int64_t count_rows(db::connection& c, const std::string& table) {
    db::row r{{scalar(c, "SELECT COUNT(*) FROM " + table)}};
    return r.get_int(0).value();
}

void make_table(db::connection& c) {
    REQUIRE(c.execute_script("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, i INTEGER, "
                             "d REAL, s TEXT, b BOOLEAN, u TEXT UNIQUE)")
                .is_ok());
}

}  // namespace

TEST_CASE("a new database file is in WAL mode with foreign keys on", "[unit]") {
    temp_dir dir;
    auto c = open_or_fail(sqlite_at(dir.file("a.sqlite")));
    CHECK(std::get<std::string>(scalar(*c, "PRAGMA journal_mode")) == "wal");
    CHECK(std::get<std::int64_t>(scalar(*c, "PRAGMA foreign_keys")) == 1);
    CHECK(std::get<std::int64_t>(scalar(*c, "PRAGMA busy_timeout")) == 5000);
    CHECK(c->kind() == db::dialect::sqlite);
}

TEST_CASE("a burst leaves no WAL larger than 4 MiB after a checkpoint", "[unit]") {
    temp_dir dir;
    auto c = open_or_fail(sqlite_at(dir.file("db.sqlite")));
    CHECK(scalar(*c, "PRAGMA journal_size_limit") == db::value(std::int64_t{4194304}));
    REQUIRE(c->execute_script("create table t (b blob)"));
    // One transaction of ~16 MiB: the WAL must grow past the limit to hold it.
    REQUIRE(c->begin());
    const std::string chunk(64 * 1024, 'x');
    for (int i = 0; i < 256; ++i) REQUIRE(c->exec("insert into t values (?)", {db::blob{chunk}}));
    REQUIRE(c->commit());
    const auto wal = dir.file("db.sqlite-wal");
    auto size_of = [](const std::string& p) {
        std::ifstream f(p, std::ios::binary | std::ios::ate);
        return static_cast<std::int64_t>(f.tellg());
    };
    CHECK(size_of(wal) > 4194304);
    // The commit's automatic checkpoint copied the pages back; the next write starts the
    // WAL over, and that is when it is cut to the limit (without it, it stays ~16 MiB).
    REQUIRE(c->execute_script("PRAGMA wal_checkpoint(PASSIVE)"));
    REQUIRE(c->exec("insert into t values (?)", {db::blob{"y"}}));
    CHECK(size_of(wal) <= 4194304);
}

TEST_CASE("synchronous is FULL by default and NORMAL when asked", "[unit]") {
    temp_dir dir;
    auto o = sqlite_at(dir.file("a.sqlite"));
    auto full = open_or_fail(o);
    CHECK(std::get<std::int64_t>(scalar(*full, "PRAGMA synchronous")) == 2);
    o.sqlite_synchronous = "normal";
    auto normal = open_or_fail(o);
    CHECK(std::get<std::int64_t>(scalar(*normal, "PRAGMA synchronous")) == 1);
}

TEST_CASE("an unknown synchronous level is refused", "[unit]") {
    temp_dir dir;
    auto o = sqlite_at(dir.file("a.sqlite"));
    o.sqlite_synchronous = "FAST";
    auto c = db::open(o);
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == errc::invalid_argument);
    CHECK_THAT(c.error().message(), Catch::Contains("FAST"));
}

TEST_CASE("an in-memory database opens without WAL", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    CHECK(std::get<std::string>(scalar(*c, "PRAGMA journal_mode")) == "memory");
    make_table(*c);
    CHECK(c->table_exists("t").value());
}

TEST_CASE("a missing directory is an I/O error that names the path", "[unit][fault]") {
    temp_dir dir;
    const std::string path = dir.file("no/such/dir/opendms.sqlite");
    auto c = db::open(sqlite_at(path));
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == errc::io_error);
    CHECK_THAT(c.error().message(), Catch::Contains(path));
}

TEST_CASE("an empty database path is refused", "[unit]") {
    auto c = db::open(sqlite_at(""));
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == errc::invalid_argument);
}

TEST_CASE("a file that is not a database is reported corrupt", "[unit][fault]") {
    temp_dir dir;
    const std::string path = dir.file("junk.sqlite");
    {
        std::ofstream junk(path, std::ios::binary);
        for (int i = 0; i < 512; ++i) junk << "this is not an SQLite database file. ";
    }
    auto c = db::open(sqlite_at(path));
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == errc::corrupt);
    CHECK_THAT(c.error().message(), Catch::Contains(path));
}

TEST_CASE("a directory given as the database file is an I/O error", "[unit][fault]") {
    temp_dir dir;
    auto c = db::open(sqlite_at(dir.path()));
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == errc::io_error);
}

TEST_CASE("every value kind and NULL round-trip through SQLite", "[unit]") {
    temp_dir dir;
    auto c = open_or_fail(sqlite_at(dir.file("a.sqlite")));
    make_table(*c);
    const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
    const std::int64_t hi = std::numeric_limits<std::int64_t>::max();
    const std::string utf8 =
        "Gr\xC3\xBC\xC3\x9F"
        "e \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x86";
    const char* sql = "INSERT INTO t (i, d, s, b) VALUES (?, ?, ?, ?)";
    REQUIRE(c->exec(sql, {lo, 0.1, utf8, true}).value() == 1);
    REQUIRE(c->exec(sql, {hi, -1e300, std::string(), false}).value() == 1);
    REQUIRE(c->exec(sql, {db::null(), db::null(), db::null(), db::null()}).value() == 1);

    auto r = c->query("SELECT i, d, s, b FROM t ORDER BY id", {});
    REQUIRE(r);
    REQUIRE(r->size() == 3);
    CHECK(r->columns == std::vector<std::string>{"i", "d", "s", "b"});
    CHECK(std::get<std::int64_t>((*r)[0].cells[0]) == lo);
    CHECK(std::get<double>((*r)[0].cells[1]) == 0.1);
    CHECK(std::get<std::string>((*r)[0].cells[2]) == utf8);
    CHECK((*r)[0].get_bool(3) == true);
    CHECK(std::get<std::int64_t>((*r)[1].cells[0]) == hi);
    CHECK(std::get<double>((*r)[1].cells[1]) == -1e300);
    CHECK(std::get<std::string>((*r)[1].cells[2]).empty());
    CHECK((*r)[1].get_bool(3) == false);
    for (std::size_t col = 0; col < 4; ++col) CHECK((*r)[2].is_null(col));
}

TEST_CASE("64 KiB of text and text with NUL bytes come back byte for byte", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    std::string big(64 * 1024, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    const std::string with_nul("a\0b\0\0c", 6);
    REQUIRE(c->exec("INSERT INTO t (s) VALUES (?)", {big}));
    REQUIRE(c->exec("INSERT INTO t (s) VALUES (?)", {with_nul}));
    auto r = c->query("SELECT s, length(CAST(s AS BLOB)) FROM t ORDER BY id", {});
    REQUIRE(r);
    CHECK(std::get<std::string>((*r)[0].cells[0]) == big);
    CHECK(std::get<std::string>((*r)[1].cells[0]) == with_nul);
    CHECK((*r)[1].get_int(1) == 6);
}

TEST_CASE("a boolean is stored as 1 or 0 and matches an integer parameter", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    REQUIRE(c->exec("INSERT INTO t (b) VALUES (?)", {true}));
    CHECK(std::get<std::int64_t>(scalar(*c, "SELECT b FROM t")) == 1);
    CHECK(std::get<std::int64_t>(scalar(*c, "SELECT COUNT(*) FROM t WHERE b = ?", {1})) == 1);
}

TEST_CASE("a statement is prepared once and reused from the cache", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    const std::size_t before = c->cached_statements();
    for (int i = 0; i < 5; ++i) REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {i}));
    CHECK(c->cached_statements() == before + 1);
    REQUIRE(c->query("SELECT i FROM t", {}));
    CHECK(c->cached_statements() == before + 2);
    CHECK(count_rows(*c, "t") == 5);
}

TEST_CASE("a cached statement still works after the schema changed", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {1}));
    REQUIRE(c->execute_script("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'x'"));
    auto r = c->query("SELECT * FROM t", {});
    REQUIRE(r);
    CHECK(r->columns.back() == "extra");
    REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {2}));
    CHECK(count_rows(*c, "t") == 2);
}

TEST_CASE("the statement cache stays bounded under dynamic SQL", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    for (int i = 0; i < 400; ++i) REQUIRE(c->query("SELECT " + std::to_string(i), {}));
    CHECK(c->cached_statements() <= 256);
    CHECK(std::get<std::int64_t>(scalar(*c, "SELECT 7")) == 7);
}

TEST_CASE("a committed transaction keeps its rows and a rolled back one does not", "[unit]") {
    temp_dir dir;
    auto c = open_or_fail(sqlite_at(dir.file("a.sqlite")));
    make_table(*c);
    REQUIRE(c->begin());
    REQUIRE(c->exec("INSERT INTO t (i) VALUES (1)", {}));
    REQUIRE(c->rollback());
    CHECK(count_rows(*c, "t") == 0);
    REQUIRE(c->begin());
    REQUIRE(c->exec("INSERT INTO t (i) VALUES (1)", {}));
    REQUIRE(c->commit());
    CHECK(count_rows(*c, "t") == 1);
    // A second connection sees the committed row.
    auto other = open_or_fail(sqlite_at(dir.file("a.sqlite")));
    CHECK(count_rows(*other, "t") == 1);
}

TEST_CASE("in_transaction rolls back when the work fails", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    status s = db::in_transaction(*c, [&]() -> status {
        if (auto r = c->exec("INSERT INTO t (u) VALUES ('x')", {}); !r) return r.error();
        return c->exec("INSERT INTO t (u) VALUES ('x')", {}).error();
    });
    CHECK(s.code() == errc::conflict);
    CHECK(count_rows(*c, "t") == 0);
    CHECK(c->rollback());  // nothing open: still fine
}

TEST_CASE("a unique or primary key violation is a conflict", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    REQUIRE(c->exec("INSERT INTO t (id, u) VALUES (1, 'a')", {}));
    auto dup_unique = c->exec("INSERT INTO t (u) VALUES ('a')", {});
    REQUIRE_FALSE(dup_unique);
    CHECK(dup_unique.error().code() == errc::conflict);
    CHECK_THAT(dup_unique.error().message(), Catch::StartsWith("sqlite.exec: UNIQUE"));
    auto dup_key = c->insert("INSERT INTO t (id) VALUES (?)", {1});
    REQUIRE_FALSE(dup_key);
    CHECK(dup_key.error().code() == errc::conflict);
}

TEST_CASE("other constraint failures are invalid arguments, not conflicts", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    REQUIRE(
        c->execute_script("CREATE TABLE p (id INTEGER PRIMARY KEY);"
                          "CREATE TABLE k (p_id INTEGER NOT NULL REFERENCES p(id))"));
    auto null_value = c->exec("INSERT INTO k (p_id) VALUES (NULL)", {});
    CHECK(null_value.error().code() == errc::invalid_argument);
    auto missing_parent = c->exec("INSERT INTO k (p_id) VALUES (42)", {});
    CHECK(missing_parent.error().code() == errc::invalid_argument);  // foreign_keys=ON
}

TEST_CASE("insert returns the new row's id and not_found when nothing was inserted", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    auto first = c->insert("INSERT INTO t (u) VALUES (?)", {std::string("a")});
    auto second = c->insert("INSERT INTO t (u) VALUES (?)", {std::string("b")});
    REQUIRE(first);
    REQUIRE(second);
    CHECK(*first == 1);
    CHECK(*second == 2);
    auto skipped = c->insert("INSERT OR IGNORE INTO t (u) VALUES (?)", {std::string("a")});
    REQUIRE_FALSE(skipped);
    CHECK(skipped.error().code() == errc::not_found);
}

TEST_CASE("exec counts changed rows and a later DDL statement counts none", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    for (int i = 0; i < 3; ++i) REQUIRE(c->exec("INSERT INTO t (i) VALUES (?)", {i}));
    CHECK(c->exec("UPDATE t SET s = 'x' WHERE i >= ?", {1}).value() == 2);
    CHECK(c->exec("CREATE INDEX t_i ON t (i)", {}).value() == 0);
    CHECK(c->exec("DELETE FROM t WHERE i = ?", {99}).value() == 0);
}

TEST_CASE("SQL errors are invalid arguments that name the operation", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    auto syntax = c->exec("SELEC 1", {});
    REQUIRE_FALSE(syntax);
    CHECK(syntax.error().code() == errc::invalid_argument);
    CHECK_THAT(syntax.error().message(), Catch::StartsWith("sqlite.exec: "));
    auto missing = c->query("SELECT * FROM nowhere", {});
    CHECK(missing.error().code() == errc::invalid_argument);
    CHECK_THAT(missing.error().message(), Catch::Contains("nowhere"));
}

TEST_CASE("the wrong number of parameters is refused before running", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    auto r = c->exec("INSERT INTO t (i, s) VALUES (?, ?)", {1});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::invalid_argument);
    CHECK_THAT(r.error().message(), Catch::Contains("1 parameters given"));
    CHECK(count_rows(*c, "t") == 0);
}

TEST_CASE("two statements in exec are refused but execute_script runs them all", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    auto two = c->exec("INSERT INTO t (i) VALUES (1); INSERT INTO t (i) VALUES (2)", {});
    REQUIRE_FALSE(two);
    CHECK(two.error().code() == errc::invalid_argument);
    CHECK(count_rows(*c, "t") == 0);
    CHECK(c->exec("INSERT INTO t (i) VALUES (1); -- just a comment", {}).value() == 1);
    REQUIRE(c->execute_script("INSERT INTO t (i) VALUES (2); INSERT INTO t (i) VALUES (3);"));
    CHECK(count_rows(*c, "t") == 3);
    status bad = c->execute_script("INSERT INTO t (i) VALUES (4); INSERT INTO nowhere VALUES (5);");
    CHECK(bad.code() == errc::invalid_argument);
    CHECK_THAT(bad.message(), Catch::StartsWith("sqlite.script: "));
}

TEST_CASE("table_exists and column_exists look at the schema", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    CHECK(c->table_exists("t").value());
    CHECK_FALSE(c->table_exists("nope").value());
    CHECK(c->column_exists("t", "u").value());
    CHECK_FALSE(c->column_exists("t", "nope").value());
    CHECK_FALSE(c->column_exists("nope", "u").value());
}

TEST_CASE("a writer that cannot get the lock in time gets unavailable", "[unit][fault]") {
    temp_dir dir;
    auto o = sqlite_at(dir.file("a.sqlite"));
    auto holder = open_or_fail(o);
    make_table(*holder);
    o.busy_timeout_ms = 0;
    auto waiter = open_or_fail(o);
    REQUIRE(holder->begin());
    status s = waiter->begin();
    CHECK(s.code() == errc::unavailable);
    CHECK(s.retryable());
    CHECK(waiter->rollback());
    REQUIRE(holder->commit());
    CHECK(waiter->begin());
    CHECK(waiter->commit());
}

TEST_CASE("rollback after a failed statement leaves nothing behind", "[unit]") {
    auto c = open_or_fail(sqlite_at(":memory:"));
    make_table(*c);
    REQUIRE(c->begin());
    REQUIRE(c->exec("INSERT INTO t (u) VALUES ('a')", {}));
    REQUIRE_FALSE(c->exec("INSERT INTO t (u) VALUES ('a')", {}));
    CHECK(c->rollback());
    CHECK(count_rows(*c, "t") == 0);
}

TEST_CASE("the row getters convert between value kinds", "[unit]") {
    db::row r{{db::null(), std::int64_t{42}, 2.5, std::string("17"), true, std::string("f"),
               std::string("abc"), 3.0, std::string("15.0")}};
    CHECK(r.is_null(0));
    CHECK_FALSE(r.get_int(0));
    CHECK_FALSE(r.get_text(0));
    CHECK_FALSE(r.get_bool(0));
    CHECK(r.get_int(1) == 42);
    CHECK(r.get_double(1) == 42.0);
    CHECK(r.get_text(1) == "42");
    CHECK(r.get_bool(1) == true);
    CHECK_FALSE(r.get_int(2));  // 2.5 is not a whole number
    CHECK(r.get_text(2) == "2.5");
    CHECK(r.get_int(3) == 17);
    CHECK(r.get_double(3) == 17.0);
    CHECK(r.get_int(4) == 1);
    CHECK(r.get_text(4) == "1");
    CHECK(r.get_bool(5) == false);
    CHECK_FALSE(r.get_int(6));
    CHECK_FALSE(r.get_double(6));
    CHECK_FALSE(r.get_bool(6));
    CHECK(r.get_int(7) == 3);
    CHECK(r.get_int(8) == 15);
    CHECK_THROWS(r.get_int(9));
}

TEST_CASE("dialect names parse back, mariadb as mysql", "[unit]") {
    for (auto d : {db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql}) {
        CHECK(db::parse_dialect(db::dialect_name(d)) == d);
    }
    CHECK(db::parse_dialect("mariadb") == db::dialect::mysql);
    CHECK_FALSE(db::parse_dialect("oracle"));
}
