// link_proxy: the network between a field node and its central, as a TCP relay on
// 127.0.0.1 that a test can cut. Modes:
//   pass       relays both ways
//   refuse     the listening socket is closed (new connections are refused) and open
//              connections are reset: a link that is down and says so
//   blackhole  connections are accepted (and open ones kept) but nothing is relayed and
//              nothing is answered: a link that drops packets, where only timeouts tell
// Switching back to pass listens again on the same port; connections held by the
// blackhole are reset then (their requests were lost). Counts the bytes relayed.
// Threads: one acceptor and one thread per connection; set_mode() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace opendms::test {

class link_proxy {
public:
    enum class mode { pass, refuse, blackhole };

    /// Relays 127.0.0.1:port() to 127.0.0.1:target_port.
    explicit link_proxy(unsigned short target_port);
    ~link_proxy();
    link_proxy(const link_proxy&) = delete;
    link_proxy& operator=(const link_proxy&) = delete;

    unsigned short port() const noexcept { return port_; }
    void set_target(unsigned short target_port) { target_.store(target_port); }
    void set_mode(mode m);
    mode current() const noexcept { return mode_.load(); }
    std::uint64_t bytes_relayed() const noexcept { return bytes_.load(); }

private:
    void open_listener();
    void accept_loop();
    void relay(int client);
    void reset_all();

    unsigned short port_ = 0;
    std::atomic<unsigned short> target_;
    std::atomic<mode> mode_{mode::pass};
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint64_t> bytes_{0};
    std::atomic<std::uint64_t> generation_{0};  // bumped to end every open connection
    std::mutex mutex_;
    int listen_fd_ = -1;
    std::vector<int> open_fds_;
    std::thread acceptor_;
    std::vector<std::thread> workers_;
};

}  // namespace opendms::test
