// push_policy: the pusher's decisions as pure functions (no clock, no randomness of their
// own, no I/O), so that the schedule, the jitter and every answer's meaning are tested
// exactly, with a fake clock and chosen random numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace opendms::field {

/// What one HTTP answer means for the records it carried (docs/wire-format.md).
enum class answer_kind {
    accepted,           // 2xx: single form: the record is delivered; batch form: read the results
    retry_later,        // 408, 429, 5xx (and network errors): keep everything, back off
    auth_refused,       // 401, 403: keep everything, back off, raise the auth alarm
    too_large,          // 413: split the batch; one record alone is parked
    record_rejected,    // single form 400/422: the central will never take this record: park it
    batch_unsupported,  // batch form 400/415/422: a seed central (no batch form): send singly
    misdirected,        // 1xx/3xx, 404, 405 and other 4xx: wrong URL or a proxy; keep, back off
};
answer_kind classify_answer(unsigned status, bool batch) noexcept;
/// "accepted", "retry_later", ... for logs.
const char* answer_kind_name(answer_kind k) noexcept;

/// CENTRAL_DMS_BACKOFF with CENTRAL_DMS_JITTER.
struct backoff_schedule {
    std::vector<std::chrono::milliseconds> steps;  // the n-th failure waits steps[n-1]; the last repeats
    double jitter = 0.2;                           // 0..1

    /// The wait after `failures` consecutive failures (>= 1; 0 is taken as 1): the step
    /// scaled by 1 + jitter * (2 * unit - 1), so uniformly within +/- jitter of it when
    /// `unit` is uniform in [0, 1). At least 1 ms.
    std::chrono::milliseconds delay(int failures, double unit) const;
};

/// Retry-After as seconds ("120") or an HTTP-date ("Wed, 21 Oct 2026 07:28:00 GMT"),
/// relative to `now_s`; clamped to [0, 24 h]. nullopt when it is neither.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::int64_t now_s);

/// The wait before the next attempt after a failure: the server's Retry-After when it gave
/// one (honoured: never earlier; plus up to `jitter` of it at random, so that gateways told
/// the same time do not return in the same second), else the schedule's.
std::chrono::milliseconds retry_delay(const backoff_schedule& schedule, int failures,
                                      std::optional<std::chrono::milliseconds> retry_after,
                                      double unit);

/// CENTRAL_DMS_MAX_RATE: a token bucket of one second's worth of records. Pure: the caller
/// passes the time.
class pacer {
public:
    explicit pacer(double records_per_second) : rate_(records_per_second) {}
    /// Milliseconds to wait at `now_ms` before `n` more records may go; 0 without a cap.
    std::int64_t wait_ms(std::int64_t now_ms, std::size_t n) const;
    /// Records that `n` records went at `now_ms`.
    void sent(std::int64_t now_ms, std::size_t n);
    bool capped() const { return rate_ > 0; }
    /// The largest batch that fits the cap (at least 1).
    std::size_t max_batch(std::size_t wanted) const;

private:
    double available(std::int64_t now_ms) const;
    double rate_;
    double tokens_ = -1;  // < 0: full (never used)
    std::int64_t at_ms_ = 0;
};

}  // namespace opendms::field
