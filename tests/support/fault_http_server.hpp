// fault_http_server: a scripted HTTP/1.1 server on 127.0.0.1 for the pusher's fault tests
// (Mosquitto's tests run clients against a scripted peer the same way). Each request is
// handed to a handler that decides what the server does: answer (any status, headers and
// body), answer and close, accept and never answer, write half an answer and reset the
// connection, or close without a word. Every request is recorded (gzip bodies inflated).
//
// Also: answers in our central's batch form, computed from the request (batch_answer).
//
// Plain POSIX sockets and one thread per connection; requests need Content-Length (our
// client always sends it). The destructor stops everything, also a connection held by
// never_answer. Errors setting up the socket throw std::runtime_error.
// Thread safety: the handler runs on connection threads (one at a time per connection);
// requests() and connections() may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace opendms::test {

struct recorded_request {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;              // inflated when Content-Encoding was gzip
    std::size_t wire_body_bytes = 0;

    /// The first header of that name (case-insensitive); "" when absent.
    std::string header(const std::string& name) const;
    /// The "payload" of every record in the body (a batch, or one record).
    std::vector<std::string> payloads() const;
    bool is_batch() const;
};

struct fault_action {
    enum kind_t {
        respond,             // write the answer (then close if close_after)
        never_answer,        // read nothing more, write nothing, hold the connection open
        reset_mid_response,  // write the head and half the body, then reset (RST)
        close_silently,      // close without answering
    } kind = respond;
    unsigned status = 200;
    std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/Length
    std::string body = "{}";
    bool close_after = false;  // answer, then close the connection (without saying so)
};

/// Our central's batch answer for `r`: every record "stored" with ids from `first_id`,
/// except those whose payload is in `rejected`.
fault_action batch_answer(const recorded_request& r, const std::set<std::string>& rejected = {},
                          long first_id = 1);
/// The seed's single-record answer: 200 {"message":"Record ingested","id":id}.
fault_action single_answer(long id = 1);
fault_action status_answer(unsigned status, const std::string& body = "{}");

class fault_http_server {
public:
    /// `index` counts requests from 0 across all connections.
    using handler = std::function<fault_action(const recorded_request&, std::size_t index)>;

    explicit fault_http_server(handler h);
    ~fault_http_server();
    fault_http_server(const fault_http_server&) = delete;
    fault_http_server& operator=(const fault_http_server&) = delete;

    unsigned short port() const noexcept { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// Replaces the handler (for requests that arrive from now on).
    void set_handler(handler h);

    std::vector<recorded_request> requests() const;
    std::size_t request_count() const;
    std::size_t connections() const noexcept { return connections_.load(); }

private:
    void accept_loop();
    void serve(int fd);

    int listen_fd_ = -1;
    unsigned short port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> connections_{0};
    mutable std::mutex mutex_;
    handler handler_;
    std::vector<recorded_request> requests_;
    std::vector<int> open_fds_;
    std::thread acceptor_;
    std::vector<std::thread> workers_;
};

/// A CONNECT proxy on 127.0.0.1 for the HTTPS_PROXY tests: tunnels to 127.0.0.1 targets
/// only (anything else gets 403), records every CONNECT target.
class connect_proxy {
public:
    connect_proxy();
    ~connect_proxy();
    connect_proxy(const connect_proxy&) = delete;
    connect_proxy& operator=(const connect_proxy&) = delete;

    unsigned short port() const noexcept { return port_; }
    std::vector<std::string> targets() const;
    /// The Proxy-Authorization values seen ("" when absent).
    std::vector<std::string> authorizations() const;

private:
    void accept_loop();
    void tunnel(int client);

    int listen_fd_ = -1;
    unsigned short port_ = 0;
    std::atomic<bool> stopping_{false};
    mutable std::mutex mutex_;
    std::vector<std::string> targets_;
    std::vector<std::string> authorizations_;
    std::vector<int> open_fds_;
    std::thread acceptor_;
    std::vector<std::thread> workers_;
};

}  // namespace opendms::test
