// Dialect names, the row getters, open() and the helpers the drivers share.
#include "opendms/db/database.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "drivers.hpp"

namespace opendms::db {

const char* dialect_name(dialect d) noexcept {
    switch (d) {
        case dialect::sqlite:
            return "sqlite";
        case dialect::pgsql:
            return "pgsql";
        case dialect::mysql:
            return "mysql";
    }
    return "unknown";
}

std::optional<dialect> parse_dialect(std::string_view name) noexcept {
    if (name == "sqlite") return dialect::sqlite;
    if (name == "pgsql") return dialect::pgsql;
    if (name == "mysql" || name == "mariadb") return dialect::mysql;
    return std::nullopt;
}

namespace {

std::optional<std::int64_t> parse_int(std::string_view text) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec == std::errc() && end == text.data() + text.size() && !text.empty()) return v;
    return std::nullopt;
}

std::optional<double> parse_double(std::string_view text) {
    // strtod needs a terminated string and accepts "Infinity"/"NaN" as PostgreSQL
    // writes them; leading blanks are not numbers here.
    std::string s(text);
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return std::nullopt;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size()) return std::nullopt;
    return v;
}

// The double as an int64 when it is a whole number in range.
std::optional<std::int64_t> whole(double d) {
    // 2^63 is exactly representable; anything at or above it overflows int64.
    constexpr double limit = 9223372036854775808.0;
    if (!std::isfinite(d) || d != std::trunc(d) || d >= limit || d < -limit) return std::nullopt;
    return static_cast<std::int64_t>(d);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::optional<std::int64_t> row::get_int(std::size_t i) const {
    const value& v = cells.at(i);
    if (auto p = std::get_if<std::int64_t>(&v)) return *p;
    if (auto p = std::get_if<bool>(&v)) return *p ? 1 : 0;
    if (auto p = std::get_if<double>(&v)) return whole(*p);
    if (auto p = std::get_if<std::string>(&v)) {
        if (auto n = parse_int(*p)) return n;
        if (auto d = parse_double(*p)) return whole(*d);  // "15.0" from a numeric column
    }
    return std::nullopt;
}

std::optional<double> row::get_double(std::size_t i) const {
    const value& v = cells.at(i);
    if (auto p = std::get_if<double>(&v)) return *p;
    if (auto p = std::get_if<std::int64_t>(&v)) return static_cast<double>(*p);
    if (auto p = std::get_if<bool>(&v)) return *p ? 1.0 : 0.0;
    if (auto p = std::get_if<std::string>(&v)) return parse_double(*p);
    return std::nullopt;
}

std::optional<std::string> row::get_text(std::size_t i) const {
    const value& v = cells.at(i);
    if (auto p = std::get_if<std::string>(&v)) return *p;
    if (auto p = std::get_if<std::int64_t>(&v)) return std::to_string(*p);
    if (auto p = std::get_if<double>(&v)) return detail::format_double(*p);
    if (auto p = std::get_if<bool>(&v)) return std::string(*p ? "1" : "0");
    if (auto p = std::get_if<blob>(&v)) return p->bytes;
    return std::nullopt;
}

std::optional<bool> row::get_bool(std::size_t i) const {
    const value& v = cells.at(i);
    if (auto p = std::get_if<bool>(&v)) return *p;
    if (auto p = std::get_if<std::int64_t>(&v)) return *p != 0;
    if (auto p = std::get_if<double>(&v)) return *p != 0.0;
    if (auto p = std::get_if<std::string>(&v)) {
        std::string t = lower(*p);
        if (t == "t" || t == "true" || t == "1") return true;
        if (t == "f" || t == "false" || t == "0") return false;
    }
    return std::nullopt;
}

namespace detail {

rewritten_sql rewrite_placeholders(std::string_view sql) {
    rewritten_sql out;
    out.text.reserve(sql.size() + 16);
    const std::size_t n = sql.size();
    std::size_t i = 0;
    auto copy_until = [&](std::size_t end) {
        out.text.append(sql.substr(i, end - i));
        i = end;
    };
    while (i < n) {
        const char c = sql[i];
        if (c == '?') {
            out.text += '$';
            out.text += std::to_string(++out.params);
            ++i;
        } else if (c == '\'' || c == '"') {
            // E'..' strings escape with a backslash; standard strings double the quote,
            // which this loop sees as two adjacent literals.
            const bool escapes = c == '\'' && i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e');
            std::size_t j = i + 1;
            while (j < n && sql[j] != c) j += (escapes && sql[j] == '\\') ? 2 : 1;
            copy_until(std::min(j + 1, n));
        } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
            std::size_t j = sql.find('\n', i);
            copy_until(j == std::string_view::npos ? n : j);
        } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
            std::size_t j = i + 2;
            int depth = 1;
            while (j < n && depth > 0) {
                if (sql[j] == '/' && j + 1 < n && sql[j + 1] == '*') {
                    ++depth;
                    j += 2;
                } else if (sql[j] == '*' && j + 1 < n && sql[j + 1] == '/') {
                    --depth;
                    j += 2;
                } else {
                    ++j;
                }
            }
            copy_until(j);
        } else {
            out.text += c;
            ++i;
        }
    }
    return out;
}

std::string_view trim_statement_end(std::string_view sql) {
    while (!sql.empty() &&
           (sql.back() == ';' || std::isspace(static_cast<unsigned char>(sql.back())))) {
        sql.remove_suffix(1);
    }
    return sql;
}

bool is_blank_sql(std::string_view sql) noexcept {
    return trim_statement_end(sql).empty();
}

std::string format_double(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
    char buf[40];
    for (int precision = 15; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

std::string describe_target(const connect_options& options, int default_port) {
    std::string where = options.socket.empty() ? options.host : options.socket;
    if (options.socket.empty()) {
        where += ':' + std::to_string(options.port != 0 ? options.port : default_port);
    }
    return where + '/' + options.database;
}

}  // namespace detail
}  // namespace opendms::db
