#include "opendms/timefmt.hpp"

#include <cstdint>
#include <cstdio>

// Pure calendar arithmetic (Howard Hinnant's days_from_civil / civil_from_days, proleptic
// Gregorian): no timegm, no TZ, no locale, so every function here is thread-safe.

namespace opendms {

namespace {

constexpr std::int64_t seconds_per_day = 86400;
constexpr int min_year = 1970;
constexpr int max_year = 9999;
constexpr unix_seconds max_time = 253402300799;  // 9999-12-31 23:59:59 UTC
constexpr int max_offset_minutes = 14 * 60;

struct civil_date {
    std::int64_t year;
    unsigned month;  // 1..12
    unsigned day;    // 1..31
};

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);                 // [0, 399]
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            // [0, 146096]
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

civil_date civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);                    // [0, 146096]
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
    const unsigned mp = (5 * doy + 2) / 153;                                     // [0, 11]
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
    return {y, m, d};
}

bool is_leap(std::int64_t y) noexcept {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
    static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

struct broken_down {
    civil_date date;
    unsigned hour, minute, second;
};

broken_down split(unix_seconds t) noexcept {
    std::int64_t days = t / seconds_per_day;
    std::int64_t rem = t % seconds_per_day;
    if (rem < 0) {  // floor division for times before 1970
        rem += seconds_per_day;
        --days;
    }
    const auto secs = static_cast<unsigned>(rem);
    return {civil_from_days(days), secs / 3600, secs / 60 % 60, secs % 60};
}

std::string format_with(unix_seconds t, const char* pattern) {
    const broken_down b = split(t);
    char buf[64];
    const int n = std::snprintf(buf, sizeof buf, pattern, static_cast<long long>(b.date.year),
                                b.date.month, b.date.day, b.hour, b.minute, b.second);
    return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

// A cursor over the text; every reader returns false without consuming on a mismatch.
class scanner {
public:
    explicit scanner(std::string_view text) : text_(text) {}

    bool done() const noexcept { return pos_ == text_.size(); }
    bool peek_is(char c) const noexcept { return pos_ < text_.size() && text_[pos_] == c; }

    bool take(char c) noexcept {
        if (!peek_is(c)) return false;
        ++pos_;
        return true;
    }

    // Exactly `width` decimal digits.
    bool digits(std::size_t width, unsigned& out) noexcept {
        if (text_.size() - pos_ < width) return false;
        unsigned v = 0;
        for (std::size_t i = 0; i < width; ++i) {
            const char c = text_[pos_ + i];
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<unsigned>(c - '0');
        }
        pos_ += width;
        out = v;
        return true;
    }

    // One or more digits, value ignored (a fraction of a second, truncated).
    bool skip_digits() noexcept {
        const std::size_t start = pos_;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
        return pos_ > start;
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
};

// "Z", "+hh:mm", "+hhmm" or "+hh" (PostgreSQL's form); absent means UTC. Minutes east of UTC.
bool parse_offset(scanner& s, int& minutes_east) noexcept {
    minutes_east = 0;
    if (s.done() || s.take('Z')) return true;
    int sign = 0;
    if (s.take('+'))
        sign = 1;
    else if (s.take('-'))
        sign = -1;
    else
        return false;
    unsigned hh = 0, mm = 0;
    if (!s.digits(2, hh)) return false;
    if (!s.done()) {
        s.take(':');
        if (!s.digits(2, mm)) return false;
    }
    const auto total = static_cast<int>(hh * 60 + mm);
    if (mm > 59 || total > max_offset_minutes) return false;
    minutes_east = sign * total;
    return true;
}

bool parse_clock(scanner& s, unsigned& h, unsigned& mi, unsigned& sec) noexcept {
    if (!(s.digits(2, h) && s.take(':') && s.digits(2, mi) && s.take(':') && s.digits(2, sec)))
        return false;
    if (s.take('.') && !s.skip_digits()) return false;
    return h <= 23 && mi <= 59 && sec <= 59;  // a leap second (60) is not representable
}

}  // namespace

std::string format_sql_time(unix_seconds t) {
    return format_with(t, "%04lld-%02u-%02u %02u:%02u:%02u");
}

std::string format_iso8601(unix_seconds t) {
    return format_with(t, "%04lld-%02u-%02uT%02u:%02u:%02u.000000Z");
}

std::optional<unix_seconds> parse_time(std::string_view text) {
    scanner s(text);
    unsigned y = 0, mo = 0, d = 0;
    if (!(s.digits(4, y) && s.take('-') && s.digits(2, mo) && s.take('-') && s.digits(2, d)))
        return std::nullopt;
    if (y < min_year || y > max_year || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return std::nullopt;
    unsigned h = 0, mi = 0, sec = 0;
    int offset = 0;
    if (!s.done()) {
        if (!(s.take('T') || s.take(' '))) return std::nullopt;
        if (!parse_clock(s, h, mi, sec) || !parse_offset(s, offset)) return std::nullopt;
    }
    if (!s.done()) return std::nullopt;
    const unix_seconds t = days_from_civil(y, mo, d) * seconds_per_day + h * 3600 + mi * 60 + sec -
                           static_cast<unix_seconds>(offset) * 60;
    if (t < 0 || t > max_time) return std::nullopt;
    return t;
}

}  // namespace opendms
