// clock_watch: notices the wall clock jumping (a gateway without a real-time clock that
// starts in 1970 and is set by NTP later, an operator's `date -s`, a drifting RTC
// corrected). Records take the wall clock as their time (created_at), so a jump shows in
// their times; their order stays their local id (ingest order), and this makes the jump
// visible in the log. Pure: the caller passes both clocks' readings.
//
// A jump is the difference between how far the wall clock moved and how far the
// monotonic clock moved since the last observation, when it exceeds the tolerance.
// Threads: one watcher per thread, or the caller serialises.
#pragma once

#include <cstdint>
#include <optional>

namespace opendms::field {

class clock_watch {
public:
    explicit clock_watch(std::int64_t tolerance_ms = 2000) : tolerance_ms_(tolerance_ms) {}

    /// The jump since the last call (positive: forward, negative: back), or nullopt.
    std::optional<std::int64_t> observe(std::int64_t wall_ms, std::int64_t steady_ms);

private:
    std::int64_t tolerance_ms_;
    bool started_ = false;
    std::int64_t wall_ms_ = 0;
    std::int64_t steady_ms_ = 0;
};

}  // namespace opendms::field
