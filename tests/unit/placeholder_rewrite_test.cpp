// The PostgreSQL `?` -> `$n` rewriter and the small SQL helpers the drivers share.
#include <catch2/catch.hpp>

#include <limits>
#include <string>

#include "../../common/src/db/drivers.hpp"

using opendms::db::detail::format_double;
using opendms::db::detail::is_blank_sql;
using opendms::db::detail::rewrite_placeholders;
using opendms::db::detail::trim_statement_end;

TEST_CASE("placeholders are numbered in order", "[unit]") {
    auto r = rewrite_placeholders("INSERT INTO t (a, b, c) VALUES (?, ?, ?)");
    CHECK(r.text == "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)");
    CHECK(r.params == 3);
}

TEST_CASE("a statement without placeholders is unchanged", "[unit]") {
    auto r = rewrite_placeholders("SELECT 1");
    CHECK(r.text == "SELECT 1");
    CHECK(r.params == 0);
}

TEST_CASE("a question mark inside a string literal is left alone", "[unit]") {
    auto r = rewrite_placeholders("SELECT '?' , 'a''?''b', ? FROM t WHERE x = 'is it?'");
    CHECK(r.text == "SELECT '?' , 'a''?''b', $1 FROM t WHERE x = 'is it?'");
    CHECK(r.params == 1);
}

TEST_CASE("a backslash-escaped quote in an E string does not end it", "[unit]") {
    auto r = rewrite_placeholders(R"(SELECT E'it\'s ?', ?)");
    CHECK(r.text == R"(SELECT E'it\'s ?', $1)");
    CHECK(r.params == 1);
}

TEST_CASE("a question mark inside a quoted identifier is left alone", "[unit]") {
    auto r = rewrite_placeholders(R"(SELECT "why?", "a""?" FROM t WHERE id = ?)");
    CHECK(r.text == R"(SELECT "why?", "a""?" FROM t WHERE id = $1)");
    CHECK(r.params == 1);
}

TEST_CASE("a question mark inside a line comment is left alone", "[unit]") {
    auto r = rewrite_placeholders("SELECT ? -- what? why?\n, ?");
    CHECK(r.text == "SELECT $1 -- what? why?\n, $2");
    CHECK(r.params == 2);
}

TEST_CASE("a line comment at the end of the text needs no newline", "[unit]") {
    auto r = rewrite_placeholders("SELECT ? -- trailing?");
    CHECK(r.text == "SELECT $1 -- trailing?");
}

TEST_CASE("a question mark inside a nested block comment is left alone", "[unit]") {
    auto r = rewrite_placeholders("SELECT /* a? /* b? */ c? */ ?");
    CHECK(r.text == "SELECT /* a? /* b? */ c? */ $1");
    CHECK(r.params == 1);
}

TEST_CASE("a single minus or slash is not a comment", "[unit]") {
    auto r = rewrite_placeholders("SELECT ? - ?, ? / ?");
    CHECK(r.text == "SELECT $1 - $2, $3 / $4");
}

TEST_CASE("an unterminated literal swallows the rest without running past the end", "[unit]") {
    auto r = rewrite_placeholders("SELECT ?, 'open ?");
    CHECK(r.text == "SELECT $1, 'open ?");
    CHECK(r.params == 1);
    CHECK(rewrite_placeholders(R"(SELECT E'\)").text == R"(SELECT E'\)");
}

TEST_CASE("many placeholders get multi-digit numbers", "[unit]") {
    std::string sql = "VALUES (";
    std::string expected = "VALUES (";
    for (int i = 1; i <= 120; ++i) {
        sql += i == 1 ? "?" : ",?";
        expected += (i == 1 ? "$" : ",$") + std::to_string(i);
    }
    auto r = rewrite_placeholders(sql + ")");
    CHECK(r.text == expected + ")");
    CHECK(r.params == 120);
}

TEST_CASE("trailing semicolons and blanks are trimmed before RETURNING is appended", "[unit]") {
    CHECK(trim_statement_end("INSERT INTO t VALUES (1); \n ;") == "INSERT INTO t VALUES (1)");
    CHECK(trim_statement_end("INSERT INTO t VALUES (1)") == "INSERT INTO t VALUES (1)");
    CHECK(is_blank_sql(" ;\n\t;"));
    CHECK_FALSE(is_blank_sql(" ; x"));
}

TEST_CASE("doubles are written in their shortest exact form", "[unit]") {
    CHECK(format_double(0.1) == "0.1");
    CHECK(format_double(-2.5) == "-2.5");
    CHECK(format_double(1e300) == "1e+300");
    CHECK(std::stod(format_double(0.1 + 0.2)) == 0.1 + 0.2);
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(format_double(inf) == "Infinity");
    CHECK(format_double(-inf) == "-Infinity");
    CHECK(format_double(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}
