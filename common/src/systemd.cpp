// systemd: sd_notify and the watchdog (contract in systemd.hpp).
#include "opendms/systemd.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdint>

namespace opendms::systemd {

bool notify(const std::string& state) {
    // 0: NOTIFY_SOCKET unset (not under systemd); < 0: the send failed. Neither stops the
    // program: the manager then sees no readiness and acts on its own timeout.
    return sd_notify(0, state.c_str()) > 0;
}

bool notify_ready(const std::string& status) {
    return notify(status.empty() ? "READY=1" : "READY=1\nSTATUS=" + status);
}

bool notify_watchdog() { return notify("WATCHDOG=1"); }

bool notify_stopping(const std::string& status) {
    return notify(status.empty() ? "STOPPING=1" : "STOPPING=1\nSTATUS=" + status);
}

std::chrono::microseconds watchdog_interval() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0) return std::chrono::microseconds(0);
    return std::chrono::microseconds(static_cast<std::int64_t>(usec));
}

std::chrono::milliseconds ping_period(std::chrono::milliseconds fallback) {
    const auto interval = watchdog_interval();
    if (interval.count() == 0) return fallback;
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(interval / 2));
}

heartbeat::heartbeat(std::function<bool()> healthy) : healthy_(std::move(healthy)) {
    if (watchdog_interval().count() == 0) return;
    const auto period = ping_period(std::chrono::milliseconds(0));
    thread_ = std::thread([this, period] { loop(period); });
}

heartbeat::~heartbeat() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

void heartbeat::loop(std::chrono::milliseconds period) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
        // An unhealthy program stops pinging; systemd then restarts it after WatchdogSec.
        if (healthy_() && notify_watchdog()) pings_.fetch_add(1);
        wake_.wait_for(lock, period, [this] { return stopping_; });
    }
}

}  // namespace opendms::systemd
