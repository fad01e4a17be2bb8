#include "link_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace opendms::test {
namespace {

void reset(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::shutdown(fd, SHUT_RDWR);
}

bool send_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

}  // namespace

link_proxy::link_proxy(unsigned short target_port) : target_(target_port) {
    open_listener();
    acceptor_ = std::thread([this] { accept_loop(); });
}

link_proxy::~link_proxy() {
    stopping_.store(true);
    if (acceptor_.joinable()) acceptor_.join();
    reset_all();
    for (auto& t : workers_) {
        if (t.joinable()) t.join();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

void link_proxy::open_listener() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
        ::close(fd);
        throw std::runtime_error("link_proxy: bind/listen: " + std::string(std::strerror(errno)));
    }
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    std::lock_guard<std::mutex> lock(mutex_);
    listen_fd_ = fd;
}

void link_proxy::reset_all() {
    generation_.fetch_add(1);
    std::lock_guard<std::mutex> lock(mutex_);
    for (int fd : open_fds_) reset(fd);
}

void link_proxy::set_mode(mode m) {
    const mode old = mode_.exchange(m);
    if (old == m) return;
    if (m == mode::refuse) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (listen_fd_ >= 0) {
            ::close(listen_fd_);
            listen_fd_ = -1;
        }
    }
    if (m == mode::refuse || old == mode::blackhole) reset_all();
    if (m != mode::refuse && old == mode::refuse) open_listener();
}

void link_proxy::accept_loop() {
    while (!stopping_.load()) {
        int fd;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            fd = listen_fd_;
        }
        if (fd < 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int client = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        std::lock_guard<std::mutex> lock(mutex_);
        open_fds_.push_back(client);
        workers_.emplace_back([this, client] { relay(client); });
    }
}

void link_proxy::relay(int client) {
    const std::uint64_t generation = generation_.load();
    int upstream = -1;
    char buf[65536];
    auto alive = [&] { return !stopping_.load() && generation_.load() == generation; };
    while (alive() && mode_.load() == mode::blackhole) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // holds it, says nothing
    }
    if (alive() && mode_.load() == mode::pass) {
        upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(target_.load());
        if (::connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            reset(client);  // the target is down: the peer sees a reset
        } else {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                open_fds_.push_back(upstream);
            }
            while (alive()) {
                if (mode_.load() == mode::blackhole) {  // stop relaying mid-stream
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    continue;
                }
                pollfd p[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
                if (::poll(p, 2, 50) <= 0) continue;
                bool closed = false;
                for (int i = 0; i < 2 && !closed; ++i) {
                    if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                    ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
                    if (n <= 0 || !send_all(i == 0 ? upstream : client, buf, static_cast<std::size_t>(n))) {
                        closed = true;
                    } else {
                        bytes_.fetch_add(static_cast<std::uint64_t>(n));
                    }
                }
                if (closed) break;
            }
        }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    for (int fd : {client, upstream}) {
        if (fd < 0) continue;
        open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
        ::close(fd);
    }
}

}  // namespace opendms::test
