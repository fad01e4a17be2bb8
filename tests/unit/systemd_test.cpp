// systemd: what the wrapper sends on NOTIFY_SOCKET (a datagram socket the test binds, as
// systemd does), how it reads WATCHDOG_USEC/WATCHDOG_PID, and that outside systemd every
// call is a harmless no-op.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "opendms/systemd.hpp"
#include "notify_socket.hpp"
#include "test_servers.hpp"

namespace {

namespace sd = opendms::systemd;
using namespace std::chrono_literals;
using opendms::test::notify_socket;

/// Sets (or unsets, with nullptr) an environment variable for the scope, then restores it.
class scoped_env {
public:
    scoped_env(std::string name, const char* value) : name_(std::move(name)) {
        if (const char* old = std::getenv(name_.c_str())) old_ = old;
        had_ = std::getenv(name_.c_str()) != nullptr;
        if (value != nullptr) {
            ::setenv(name_.c_str(), value, 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }
    ~scoped_env() {
        if (had_) {
            ::setenv(name_.c_str(), old_.c_str(), 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    std::string name_;
    std::string old_;
    bool had_ = false;
};

}  // namespace

TEST_CASE("outside systemd every notification is a no-op that reports false", "[unit]") {
    scoped_env socket("NOTIFY_SOCKET", nullptr);
    scoped_env usec("WATCHDOG_USEC", nullptr);
    CHECK_FALSE(sd::notify_ready("up"));
    CHECK_FALSE(sd::notify_watchdog());
    CHECK_FALSE(sd::notify_stopping());
    CHECK(sd::watchdog_interval().count() == 0);
    CHECK(sd::ping_period(60000ms) == 60000ms);
    sd::heartbeat h;
    CHECK_FALSE(h.active());
}

TEST_CASE("READY, WATCHDOG and STOPPING arrive on NOTIFY_SOCKET as systemd expects them", "[unit]") {
    opendms::test::temp_dir dir;
    notify_socket manager(dir.file("notify"));
    scoped_env socket("NOTIFY_SOCKET", dir.file("notify").c_str());
    CHECK(sd::notify_ready("listening on port 8080"));
    CHECK(manager.receive() == "READY=1\nSTATUS=listening on port 8080");
    CHECK(sd::notify_watchdog());
    CHECK(manager.receive() == "WATCHDOG=1");
    CHECK(sd::notify_stopping());
    CHECK(manager.receive() == "STOPPING=1");
    // The environment is kept, so later calls (other threads) still reach the manager.
    CHECK(std::getenv("NOTIFY_SOCKET") != nullptr);
}

TEST_CASE("an abstract NOTIFY_SOCKET (@name) is reached without a file; a bad one is refused", "[unit]") {
    // systemd names an abstract socket with a leading '@' (a NUL in sun_path).
    const std::string name = "opendms-notify-test-" + std::to_string(::getpid());
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path + 1, name.data(), name.size());
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&address),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
    {
        scoped_env socket("NOTIFY_SOCKET", ("@" + name).c_str());
        CHECK(sd::notify_ready());
        char buffer[64] = {};
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        CHECK(std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0) == "READY=1");
    }
    ::close(fd);
    {
        // Neither a path nor an abstract name; and a path that nobody listens on.
        scoped_env socket("NOTIFY_SOCKET", "relative/notify");
        CHECK_FALSE(sd::notify_ready());
    }
    {
        opendms::test::temp_dir dir;
        scoped_env socket("NOTIFY_SOCKET", dir.file("nobody").c_str());
        CHECK_FALSE(sd::notify_ready());
    }
}

TEST_CASE("the watchdog interval is WATCHDOG_USEC, for this process only", "[unit]") {
    scoped_env usec("WATCHDOG_USEC", "3000000");
    {
        scoped_env pid("WATCHDOG_PID", nullptr);
        CHECK(sd::watchdog_interval() == std::chrono::microseconds(3000000));
        CHECK(sd::ping_period(60000ms) == 1500ms);
    }
    {
        scoped_env pid("WATCHDOG_PID", std::to_string(::getpid()).c_str());
        CHECK(sd::watchdog_interval() == std::chrono::microseconds(3000000));
    }
    {
        // Meant for another process (a parent that exec'd us without clearing it).
        scoped_env pid("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str());
        CHECK(sd::watchdog_interval().count() == 0);
    }
    {
        scoped_env pid("WATCHDOG_PID", nullptr);
        scoped_env bad("WATCHDOG_USEC", "3s");  // not a number of microseconds: no watchdog
        CHECK(sd::watchdog_interval().count() == 0);
    }
}

TEST_CASE("a heartbeat pings every half interval while healthy, and not while unhealthy", "[unit]") {
    opendms::test::temp_dir dir;
    notify_socket manager(dir.file("notify"));
    scoped_env socket("NOTIFY_SOCKET", dir.file("notify").c_str());
    scoped_env usec("WATCHDOG_USEC", "100000");  // 100 ms: a ping every 50 ms
    scoped_env pid("WATCHDOG_PID", nullptr);
    {
        sd::heartbeat h;
        REQUIRE(h.active());
        int pings = 0;
        const auto until = std::chrono::steady_clock::now() + 600ms;
        while (std::chrono::steady_clock::now() < until) {
            if (manager.receive(100ms) == "WATCHDOG=1") ++pings;
        }
        CHECK(pings >= 5);  // 12 expected; slack for a loaded machine
    }
    while (!manager.receive(100ms).empty()) {
    }
    {
        std::atomic<bool> healthy{false};
        sd::heartbeat h([&] { return healthy.load(); });
        CHECK(manager.receive(300ms).empty());
        CHECK(h.pings() == 0);
        healthy = true;
        CHECK(manager.receive(500ms) == "WATCHDOG=1");
    }
}
