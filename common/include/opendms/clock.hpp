// Time as a dependency: the core asks a clock, so tests control time (backoff, windows,
// timestamps) and never sleep.
#pragma once

#include <atomic>
#include <cstdint>

#include "opendms/record.hpp"

namespace opendms {

class clock {
public:
    virtual ~clock() = default;
    /// Wall-clock time, UTC, whole seconds (record times).
    virtual unix_seconds now() const = 0;
    /// Wall-clock time in milliseconds (UUIDv7, latencies).
    virtual std::int64_t now_ms() const = 0;
};

/// The system's real-time clock. Thread-safe.
class system_clock_source final : public clock {
public:
    unix_seconds now() const override;
    std::int64_t now_ms() const override;
};

/// The process-wide real clock.
clock& real_clock();

/// A clock that moves only when told to. Thread-safe.
class manual_clock final : public clock {
public:
    explicit manual_clock(std::int64_t start_ms = 1764028800000) : ms_(start_ms) {}
    unix_seconds now() const override { return ms_.load() / 1000; }
    std::int64_t now_ms() const override { return ms_.load(); }
    void set_ms(std::int64_t ms) { ms_.store(ms); }
    void advance_ms(std::int64_t d) { ms_.fetch_add(d); }
    void advance_s(std::int64_t s) { ms_.fetch_add(s * 1000); }

private:
    std::atomic<std::int64_t> ms_;
};

}  // namespace opendms
