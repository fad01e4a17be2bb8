// Time formatting and parsing: UTC only, whole seconds, years 1970..9999.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "opendms/timefmt.hpp"

using namespace opendms;

namespace {

constexpr unix_seconds t_2026_02_27_10_00 = 1772186400;
constexpr unix_seconds t_9999_end = 253402300799;

}  // namespace

TEST_CASE("times format as SQL text and as Laravel's JSON form", "[unit]") {
    struct row {
        unix_seconds t;
        const char* sql;
    };
    const row rows[] = {
        {0, "1970-01-01 00:00:00"},
        {59, "1970-01-01 00:00:59"},
        {86399, "1970-01-01 23:59:59"},
        {951782400, "2000-02-29 00:00:00"},
        {t_2026_02_27_10_00, "2026-02-27 10:00:00"},
        {4107542399, "2100-02-28 23:59:59"},
        {4107542400, "2100-03-01 00:00:00"},
        {t_9999_end, "9999-12-31 23:59:59"},
    };
    for (const auto& r : rows) {
        INFO(r.sql);
        CHECK(format_sql_time(r.t) == r.sql);
        std::string iso = r.sql;
        iso[10] = 'T';
        CHECK(format_iso8601(r.t) == iso + ".000000Z");
    }
}

TEST_CASE("formatting is total: times before 1970 still give the right calendar", "[unit]") {
    CHECK(format_sql_time(-1) == "1969-12-31 23:59:59");
    CHECK(format_sql_time(-86400) == "1969-12-31 00:00:00");
}

TEST_CASE("every accepted form parses to the same instant", "[unit]") {
    const char* forms[] = {
        "2026-02-27 10:00:00",
        "2026-02-27T10:00:00",
        "2026-02-27T10:00:00Z",
        "2026-02-27T10:00:00.000000Z",  // Carbon's toJSON
        "2026-02-27T10:00:00.999999999Z",  // fraction truncated, not rounded
        "2026-02-27T10:00:00.5",
        "2026-02-27 10:00:00.123456",  // MySQL DATETIME(6) text
        "2026-02-27T10:00:00+00:00",
        "2026-02-27T10:00:00-00:00",
        "2026-02-27T18:00:00+08:00",  // Kuala Lumpur
        "2026-02-27T18:00:00+0800",
        "2026-02-27 18:00:00+08",  // PostgreSQL's timestamptz text
        "2026-02-27T05:00:00-05:00",
        "2026-02-27T15:30:00.25+05:30",
        "2026-02-28T00:00:00+14:00",
        "2026-02-26T20:00:00-14:00",
    };
    for (const char* f : forms) {
        INFO(f);
        CHECK(parse_time(f) == t_2026_02_27_10_00);
    }
}

TEST_CASE("a bare date means midnight UTC", "[unit]") {
    CHECK(parse_time("2026-02-27") == t_2026_02_27_10_00 - 10 * 3600);
    CHECK(parse_time("1970-01-01") == 0);
}

TEST_CASE("parse and format round-trip at the boundaries of the range", "[unit]") {
    for (unix_seconds t : {unix_seconds{0}, unix_seconds{1}, unix_seconds{951782400},
                           unix_seconds{951868799}, t_2026_02_27_10_00, t_9999_end}) {
        INFO(t);
        CHECK(parse_time(format_sql_time(t)) == t);
        CHECK(parse_time(format_iso8601(t)) == t);
    }
}

TEST_CASE("parse_time agrees with the calendar for every day over four centuries", "[unit]") {
    // Walk day by day from 1970 to 2400 and compare with an independent count.
    unix_seconds t = 0;
    int year = 1970, month = 1, day = 1;
    const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    while (year < 2400) {
        char text[48];
        std::snprintf(text, sizeof text, "%04d-%02d-%02d", year, month, day);
        REQUIRE(parse_time(text) == t);
        REQUIRE(format_sql_time(t).substr(0, 10) == text);
        const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const int last = month == 2 && leap ? 29 : month_days[month - 1];
        t += 86400;
        if (++day > last) {
            day = 1;
            if (++month > 12) {
                month = 1;
                ++year;
            }
        }
    }
}

TEST_CASE("leap days are accepted only in leap years", "[unit]") {
    CHECK(parse_time("2024-02-29 00:00:00"));
    CHECK(parse_time("2000-02-29"));  // divisible by 400
    CHECK(parse_time("2400-02-29"));
    CHECK_FALSE(parse_time("2026-02-29 00:00:00"));
    CHECK_FALSE(parse_time("2100-02-29"));  // divisible by 100, not 400
    CHECK_FALSE(parse_time("1900-02-29"));
    CHECK_FALSE(parse_time("2024-02-30"));
}

TEST_CASE("out-of-range or malformed times are rejected", "[unit]") {
    const char* bad[] = {
        "",
        "2026",
        "2026-02",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "2026-01-32",
        "2026-04-31",
        "2026-02-27 24:00:00",
        "2026-02-27 23:60:00",
        "2026-02-27 23:59:60",  // leap second
        "2026-02-27 10:00",
        "2026-02-27 10:00:00.",  // a dot with no digits
        "2026-02-27 10:00:00 ",
        " 2026-02-27 10:00:00",
        "2026-02-27  10:00:00",
        "2026-02-27X10:00:00",
        "2026-02-27t10:00:00",
        "2026-2-27 10:00:00",
        "26-02-27 10:00:00",
        "+2026-02-27",
        "2026-02-27 1:00:00",
        "2026-02-27T10:00:00z",
        "2026-02-27T10:00:00ZZ",
        "2026-02-27T10:00:00+14:01",  // beyond the widest real offset
        "2026-02-27T10:00:00-15:00",
        "2026-02-27T10:00:00+05:60",
        "2026-02-27T10:00:00+5:00",
        "2026-02-27T10:00:00+05:",
        "2026-02-27T10:00:00+05:3",
        "2026-02-27T10:00:00+05:30:00",
        "2026-02-27T10:00:00 +05:30",
        "1969-12-31 23:59:59",  // before the range
        "0000-01-01",
        "10000-01-01",
        "1970-01-01T00:00:00+00:01",  // the local fields are in range, the instant is not
        "9999-12-31T23:59:59-00:01",
        "1772186400",  // a Unix timestamp is not a date here
        "２０２６-02-27",  // full-width digits
        "2026-02-27\n",
    };
    for (const char* b : bad) {
        INFO("'" << b << "'");
        CHECK_FALSE(parse_time(b));
    }
    CHECK_FALSE(parse_time(std::string("2026-02-27\0", 11)));
    CHECK_FALSE(parse_time(std::string("2026-02-27 10:00:00\0", 20)));
}

TEST_CASE("parsing reads only the view, not past its end", "[unit]") {
    const std::string text = "2026-02-27 10:00:00+08:00";
    CHECK(parse_time(std::string_view(text).substr(0, 19)) == t_2026_02_27_10_00);
    CHECK(parse_time(std::string_view(text).substr(0, 10)) == t_2026_02_27_10_00 - 36000);
    CHECK(parse_time(std::string_view(text).substr(0, 22)) == t_2026_02_27_10_00 - 8 * 3600);
    CHECK_FALSE(parse_time(std::string_view(text).substr(0, 23)));  // "+08:" cut short
}

TEST_CASE("parsing does not depend on the process time zone", "[unit]") {
    const char* old = std::getenv("TZ");
    const std::string saved = old ? old : "";
    ::setenv("TZ", "Asia/Kuala_Lumpur", 1);
    ::tzset();
    const auto parsed = parse_time("2026-02-27 10:00:00");
    const std::string formatted = format_sql_time(t_2026_02_27_10_00);
    if (old) ::setenv("TZ", saved.c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
    CHECK(parsed == t_2026_02_27_10_00);
    CHECK(formatted == "2026-02-27 10:00:00");
}
