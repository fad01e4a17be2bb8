// Blob values on SQLite: raw bytes in and out of a BLOB column. The same contract runs on
// PostgreSQL and MariaDB in tests/integration/database_test.cpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "opendms/db/database.hpp"
#include "test_servers.hpp"

using namespace opendms;
using opendms::test::temp_dir;

namespace {

std::string every_byte() {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
    return bytes;
}

std::unique_ptr<db::connection> open_with_table(const temp_dir& dir) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = dir.file("blob.sqlite");
    auto c = db::open(o);
    INFO(c.error().to_string());
    REQUIRE(c);
    REQUIRE((*c)->execute_script("CREATE TABLE b (id INTEGER PRIMARY KEY, raw BLOB, s TEXT)"));
    return std::move(*c);
}

db::rows query_ok(db::connection& c, const std::string& sql, const std::vector<db::value>& p = {}) {
    auto r = c.query(sql, p);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r);
    return std::move(*r);
}

}  // namespace

TEST_CASE("a blob of all 256 byte values comes back byte for byte", "[unit]") {
    temp_dir dir;
    auto c = open_with_table(dir);
    const std::string bytes = every_byte();
    REQUIRE(c->exec("INSERT INTO b (raw) VALUES (?)", {db::blob{bytes}}).value() == 1);

    auto r = query_ok(*c, "SELECT raw, typeof(raw), length(raw) FROM b");
    REQUIRE(r.size() == 1);
    CHECK(r[0].get_text(1) == "blob");  // bound as a BLOB, not as text
    CHECK(r[0].get_int(2) == 256);
    REQUIRE(std::holds_alternative<std::string>(r[0].cells[0]));
    CHECK(std::get<std::string>(r[0].cells[0]) == bytes);
    CHECK(r[0].get_text(0) == bytes);
}

TEST_CASE("an empty blob is stored as zero bytes, not as NULL", "[unit]") {
    temp_dir dir;
    auto c = open_with_table(dir);
    REQUIRE(c->exec("INSERT INTO b (raw) VALUES (?)", {db::blob{}}));
    auto r = query_ok(*c, "SELECT raw IS NULL, typeof(raw), length(raw) FROM b");
    CHECK(r[0].get_int(0) == 0);
    CHECK(r[0].get_text(1) == "blob");
    CHECK(r[0].get_int(2) == 0);
}

TEST_CASE("a blob parameter matches the same bytes in a WHERE clause", "[unit]") {
    temp_dir dir;
    auto c = open_with_table(dir);
    const std::string bytes = every_byte();
    REQUIRE(c->exec("INSERT INTO b (raw) VALUES (?)", {db::blob{bytes}}));
    REQUIRE(c->exec("INSERT INTO b (raw) VALUES (?)", {db::blob{bytes.substr(1)}}));
    CHECK(query_ok(*c, "SELECT id FROM b WHERE raw = ?", {db::blob{bytes}})[0].get_int(0) == 1);
    CHECK(query_ok(*c, "SELECT COUNT(*) FROM b WHERE raw = ?", {db::blob{"x"}})[0].get_int(0) == 0);
}

TEST_CASE("a large blob with NUL bytes survives whole", "[unit]") {
    temp_dir dir;
    auto c = open_with_table(dir);
    std::string big(200 * 1024 + 7, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) % 256);
    REQUIRE(c->exec("INSERT INTO b (raw) VALUES (?)", {db::blob{big}}));
    CHECK(query_ok(*c, "SELECT raw FROM b")[0].get_text(0) == big);
}

TEST_CASE("a text parameter stays text and a blob parameter stays a blob", "[unit]") {
    temp_dir dir;
    auto c = open_with_table(dir);
    REQUIRE(c->exec("INSERT INTO b (raw, s) VALUES (?, ?)", {db::blob{"abc"}, std::string("abc")}));
    auto r = query_ok(*c, "SELECT typeof(raw), typeof(s) FROM b");
    CHECK(r[0].get_text(0) == "blob");
    CHECK(r[0].get_text(1) == "text");
}

TEST_CASE("blob values compare by their bytes and read as text only", "[unit]") {
    CHECK(db::blob{"a\0b"} == db::blob{"a\0b"});
    CHECK(db::blob{std::string("a\0b", 3)} != db::blob{std::string("a\0c", 3)});
    CHECK(db::value(db::blob{"x"}) == db::value(db::blob{"x"}));
    CHECK(db::value(db::blob{"x"}) != db::value(std::string("x")));  // bytes are not text

    const std::string bytes = every_byte();
    db::row r{{db::blob{bytes}, db::blob{"12"}, db::opt(std::optional<db::blob>{})}};
    CHECK(r.get_text(0) == bytes);
    CHECK_FALSE(r.get_int(1).has_value());  // bytes are not a number
    CHECK_FALSE(r.get_double(1).has_value());
    CHECK_FALSE(r.get_bool(1).has_value());
    CHECK(r.is_null(2));
    CHECK_FALSE(r.is_null(0));
}
