// systemd: sd_notify and the watchdog (contract in systemd.hpp).
#include "opendms/systemd.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace opendms::systemd {

// The notification protocol is written out here instead of calling libsystemd's
// sd_notify(): libsystemd and the five libraries it loads (libgcrypt, liblz4, libzstd,
// liblzma, libcap) cost a field node almost 1 MiB of resident memory, for one datagram.
// systemd documents the protocol as stable and meant to be implemented this way
// (sd_notify(3), "Notes"; systemd's docs/PORTABILITY_AND_STABILITY.md): one datagram of
// newline-separated assignments to the AF_UNIX socket named by $NOTIFY_SOCKET, a path, or
// an abstract name when it starts with '@'.
bool notify(const std::string& state) {
    // Not under systemd (or a unit without Type=notify): nothing to do. A failed send
    // does not stop the program either: the manager then acts on its own timeouts.
    const char* where = std::getenv("NOTIFY_SOCKET");
    if (where == nullptr || where[0] == '\0') return false;
    const std::string_view name(where);
    if (name[0] != '/' && name[0] != '@') return false;
    sockaddr_un address{};
    if (name.size() >= sizeof(address.sun_path)) return false;
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, name.data(), name.size());
    if (name[0] == '@') address.sun_path[0] = '\0';  // abstract: no file, no trailing NUL
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
                                               (name[0] == '@' ? 0 : 1));
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    ssize_t sent;
    do {
        sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                        reinterpret_cast<const sockaddr*>(&address), length);
    } while (sent < 0 && errno == EINTR);
    ::close(fd);
    return sent == static_cast<ssize_t>(state.size());
}

bool notify_ready(const std::string& status) {
    return notify(status.empty() ? "READY=1" : "READY=1\nSTATUS=" + status);
}

bool notify_watchdog() { return notify("WATCHDOG=1"); }

bool notify_stopping(const std::string& status) {
    return notify(status.empty() ? "STOPPING=1" : "STOPPING=1\nSTATUS=" + status);
}

// As sd_watchdog_enabled(3): WATCHDOG_USEC set by the manager, and WATCHDOG_PID, when
// set, naming this process (a child that inherited the environment must not ping).
std::chrono::microseconds watchdog_interval() {
    auto number = [](const char* text, std::uint64_t& out) {
        if (text == nullptr || text[0] == '\0') return false;
        const char* end = text + std::strlen(text);
        auto [p, ec] = std::from_chars(text, end, out);
        return ec == std::errc() && p == end;
    };
    std::uint64_t usec = 0;
    if (!number(std::getenv("WATCHDOG_USEC"), usec) || usec == 0) {
        return std::chrono::microseconds(0);
    }
    if (const char* pid_text = std::getenv("WATCHDOG_PID"); pid_text != nullptr) {
        std::uint64_t pid = 0;
        if (!number(pid_text, pid) || pid != static_cast<std::uint64_t>(::getpid())) {
            return std::chrono::microseconds(0);
        }
    }
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
