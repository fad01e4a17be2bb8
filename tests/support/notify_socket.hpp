// notify_socket: the service manager's end of sd_notify for tests — an AF_UNIX datagram
// socket bound at a path, as systemd's NOTIFY_SOCKET. A program started with
// NOTIFY_SOCKET=<path> sends its READY=1 / WATCHDOG=1 / STOPPING=1 datagrams here.
//
// Errors: the constructor throws std::runtime_error when the socket cannot be made.
// Thread safety: one thread receives.
#pragma once

#include <chrono>
#include <string>

namespace opendms::test {

class notify_socket {
public:
    explicit notify_socket(std::string path);
    ~notify_socket();
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    const std::string& path() const noexcept { return path_; }
    /// The next datagram within `timeout`, or "" when none came.
    std::string receive(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace opendms::test
