// push_policy: answers, backoff, Retry-After and pacing (see the header).
#include "opendms/field/push_policy.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "opendms/timefmt.hpp"

namespace opendms::field {

using std::chrono::milliseconds;

answer_kind classify_answer(unsigned status, bool batch) noexcept {
    if (status >= 200 && status < 300) return answer_kind::accepted;
    if (status == 401 || status == 403) return answer_kind::auth_refused;
    if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
        return answer_kind::retry_later;
    }
    if (status == 413) return answer_kind::too_large;
    if (status == 400 || status == 422 || (batch && status == 415)) {
        return batch ? answer_kind::batch_unsupported : answer_kind::record_rejected;
    }
    return answer_kind::misdirected;
}

const char* answer_kind_name(answer_kind k) noexcept {
    switch (k) {
        case answer_kind::accepted:
            return "accepted";
        case answer_kind::retry_later:
            return "retry_later";
        case answer_kind::auth_refused:
            return "auth_refused";
        case answer_kind::too_large:
            return "too_large";
        case answer_kind::record_rejected:
            return "record_rejected";
        case answer_kind::batch_unsupported:
            return "batch_unsupported";
        case answer_kind::misdirected:
            return "misdirected";
    }
    return "unknown";
}

milliseconds backoff_schedule::delay(int failures, double unit) const {
    if (steps.empty()) return milliseconds(1000);
    const std::size_t i = static_cast<std::size_t>(std::max(failures, 1) - 1);
    const double base = static_cast<double>(steps[std::min(i, steps.size() - 1)].count());
    const double u = std::clamp(unit, 0.0, 1.0);
    const double scaled = base * (1.0 + std::clamp(jitter, 0.0, 1.0) * (2.0 * u - 1.0));
    return milliseconds(std::max<std::int64_t>(1, std::llround(scaled)));
}

namespace {

constexpr std::int64_t max_retry_after_ms = 24LL * 3600 * 1000;

int month_number(std::string_view m) {
    static const char* const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i) {
        if (m == names[i]) return i + 1;
    }
    return 0;
}

/// IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".
std::optional<std::int64_t> parse_http_date(std::string_view v) {
    if (v.size() != 29 || v.substr(3, 2) != ", " || v.substr(25) != " GMT") return std::nullopt;
    const int month = month_number(v.substr(8, 3));
    if (month == 0) return std::nullopt;
    char sql[32];
    std::snprintf(sql, sizeof sql, "%.4s-%02d-%.2s %.8s", v.data() + 12, month, v.data() + 5,
                  v.data() + 17);
    return parse_time(sql);
}

}  // namespace

std::optional<milliseconds> parse_retry_after(std::string_view value, std::int64_t now_s) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    std::int64_t seconds = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc() && end == value.data() + value.size()) {
        if (seconds < 0) return std::nullopt;
        return milliseconds(std::min(seconds, max_retry_after_ms / 1000) * 1000);
    }
    if (ec == std::errc::result_out_of_range) return milliseconds(max_retry_after_ms);
    auto when = parse_http_date(value);
    if (!when) return std::nullopt;
    return milliseconds(std::clamp<std::int64_t>((*when - now_s) * 1000, 0, max_retry_after_ms));
}

milliseconds retry_delay(const backoff_schedule& schedule, int failures,
                         std::optional<milliseconds> retry_after, double unit) {
    if (!retry_after) return schedule.delay(failures, unit);
    const double extra = static_cast<double>(retry_after->count()) *
                         std::clamp(schedule.jitter, 0.0, 1.0) * std::clamp(unit, 0.0, 1.0);
    return std::max(milliseconds(1), *retry_after + milliseconds(std::llround(extra)));
}

double pacer::available(std::int64_t now_ms) const {
    if (tokens_ < 0) return rate_;
    const double refill = static_cast<double>(std::max<std::int64_t>(0, now_ms - at_ms_)) * rate_ / 1000.0;
    return std::min(rate_, tokens_ + refill);
}

std::int64_t pacer::wait_ms(std::int64_t now_ms, std::size_t n) const {
    if (rate_ <= 0) return 0;
    const double need = std::min(static_cast<double>(n), rate_);  // a batch never waits for more than a second's worth
    const double have = available(now_ms);
    if (have >= need) return 0;
    return static_cast<std::int64_t>(std::ceil((need - have) * 1000.0 / rate_));
}

void pacer::sent(std::int64_t now_ms, std::size_t n) {
    if (rate_ <= 0) return;
    tokens_ = available(now_ms) - static_cast<double>(n);
    at_ms_ = now_ms;
}

std::size_t pacer::max_batch(std::size_t wanted) const {
    if (rate_ <= 0) return wanted;
    return std::max<std::size_t>(1, std::min<std::size_t>(wanted, static_cast<std::size_t>(rate_)));
}

}  // namespace opendms::field
