// systemd: the service manager's readiness and watchdog protocol (sd_notify), for units with
// Type=notify and WatchdogSec= (deploy/systemd/). A thin wrapper over libsystemd.
//
// Outside systemd (NOTIFY_SOCKET unset: a shell, a test, a container) every call is a
// no-op that returns false, so the programs behave the same with or without it.
//
//   READY=1      once the program does its job (the field daemon: subscribed and, in
//                hybrid mode, pushing; the central: listening). systemctl start returns
//                then, and units ordered After= it start only then.
//   WATCHDOG=1   at least every watchdog_interval()/2 while healthy; when the pings stop for
//                WatchdogSec, systemd kills the process (SIGABRT) and Restart= restarts it.
//   STOPPING=1   when a stop signal was taken, so systemctl shows "deactivating".
//   STATUS=...   a free-text line shown by `systemctl status`.
//
// The environment is never unset (unset_environment = 0), so any thread may notify at any
// time. Thread-safe: each call is one datagram on a fresh socket (libsystemd).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace opendms::systemd {

/// Sends `state` ("READY=1", "WATCHDOG=1\nSTATUS=...", ...) to the service manager. True when
/// it was sent; false when not under systemd (NOTIFY_SOCKET unset) or the send failed.
bool notify(const std::string& state);

/// READY=1, with STATUS=`status` when not empty.
bool notify_ready(const std::string& status = {});
/// WATCHDOG=1.
bool notify_watchdog();
/// STOPPING=1, with STATUS=`status` when not empty.
bool notify_stopping(const std::string& status = {});

/// The interval the manager expects pings within (WatchdogSec=, from WATCHDOG_USEC when
/// WATCHDOG_PID is unset or this process), or zero when the watchdog is off.
std::chrono::microseconds watchdog_interval();

/// How long a main loop may sleep between pings: half the watchdog interval (systemd's
/// advice), or `fallback` when the watchdog is off.
std::chrono::milliseconds ping_period(std::chrono::milliseconds fallback);

/// A thread that sends WATCHDOG=1 every half interval while `healthy()` says so (a program
/// whose main thread blocks elsewhere: the central server's). Does nothing, and starts no
/// thread, when the watchdog is off. The destructor stops and joins it.
/// `healthy` runs on the heartbeat's thread; it must be thread-safe and must not block long.
class heartbeat {
public:
    explicit heartbeat(std::function<bool()> healthy = [] { return true; });
    ~heartbeat();
    heartbeat(const heartbeat&) = delete;
    heartbeat& operator=(const heartbeat&) = delete;

    /// True when a thread is pinging (the watchdog is on).
    bool active() const noexcept { return thread_.joinable(); }
    /// Pings sent so far (for tests).
    std::uint64_t pings() const noexcept { return pings_.load(); }

private:
    void loop(std::chrono::milliseconds period);

    std::function<bool()> healthy_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::atomic<std::uint64_t> pings_{0};
    std::thread thread_;
};

}  // namespace opendms::systemd
