// http_server: the Boost.Beast HTTP/1.1 server (plain TCP, or TLS when a certificate is
// given). It owns the sockets and the timing; the request_handler owns the meaning.
//
// Threads: `threads` Asio threads run the sessions (accept, read, write; never blocking);
// a separate pool of `workers` threads runs request_handler::handle_async(), which may
// block on the database. A session reads the request head, asks check_head() (on the Asio
// thread) whether to answer at once (404, 405, 401, 503, 413 by Content-Length, /healthz,
// /readyz, /metrics: then an unread body is not read and the connection is closed after
// the reply), else reads the body and posts handle_async() to the workers; the reply may
// be given on any thread, later (group commit answers requests from the thread that led
// the group), and is written back on the session's strand.
//
// Pending requests (read whole, not yet answered) are bounded by max_pending_requests:
// one more is answered 503 {"message":"The server is busy; retry later."} with
// Retry-After (retry_after_s) at once, without reaching the handler, and the connection
// stays open. This bounds the memory held by request bodies and the time a request
// waits behind others.
//
// Response compression: a JSON reply of 1 KiB or more carries Vary: Accept-Encoding and,
// when the request's Accept-Encoding accepts gzip, is sent gzip-compressed with
// Content-Encoding: gzip (compress_reply in http_types.hpp; compressed on a worker).
//
// Limits (server_limits): the request line and headers over max_header_bytes -> 431;
// a body over max_body_bytes -> 413 (by Content-Length before reading, or while reading a
// chunked body); more than max_connections open -> the new connection gets a 503 and is
// closed; a request that does not fully arrive within request_timeout (a client sending
// one byte a second) -> the connection is closed (a 408 is attempted first); a keep-alive
// connection idle for idle_timeout -> closed. Malformed HTTP -> 400 and close. Every reply
// carries Content-Length and a JSON body; none contains a stack trace or an exception text.
// A handler that throws is a bug: the session answers 500 {"message":"Server Error"},
// logs it, and goes on (the process never dies of one request).
//
// Shutdown (stop(), e.g. on SIGTERM): stop accepting; idle keep-alive connections are
// closed; requests already read are handled and answered (with Connection: close); run()
// returns when every session is gone or shutdown_timeout has passed. After the timeout
// a handler may still be running (stuck on the database): stopped_by_timeout() is then
// true, and the destructor would wait for it; a program that must exit on time ends the
// process instead (central_daemon does).
//
// Access log (when enabled): one line per request at info level, component "http":
//   <remote> "<METHOD> <path>" <status> <bytes> <ms>ms node=<node> <note>
// The path excludes the query string; headers (so the token) are never logged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "opendms/central/central_settings.hpp"
#include "opendms/central/http_types.hpp"
#include "opendms/central/metrics.hpp"
#include "opendms/status.hpp"

namespace opendms::central {

class request_handler {
public:
    virtual ~request_handler() = default;
    /// On an Asio thread, after the head is read (body empty). Must not block. A reply
    /// ends the request without reading its body; nullopt continues to handle().
    virtual std::optional<http_reply> check_head(const http_request& head) = 0;
    /// On a worker thread, with the whole body. May block (database).
    virtual http_reply handle(const http_request& request) = 0;
    /// On a worker thread, with the whole body: answers by calling `done` exactly once, on
    /// this thread or any other, now or later. The default answers handle(request).
    virtual void handle_async(http_request request, std::function<void(http_reply)> done) {
        done(handle(request));
    }
    /// On an Asio thread, with the whole body: true when handle_async() for this request
    /// neither blocks nor takes long (a small body, the storing handed to other threads),
    /// so the server calls it on the Asio thread and saves the hand-off to a worker and
    /// back. Must not block. The default: every request goes to a worker.
    virtual bool runs_inline(const http_request& /*request*/) const { return false; }
};

struct server_options {
    std::string host = "127.0.0.1";
    unsigned short port = 8080;  // 0: any free port (see port())
    unsigned threads = 1;
    unsigned workers = 8;
    server_limits limits;
    std::optional<std::string> tls_cert_file;  // both set: TLS (PEM files)
    std::optional<std::string> tls_key_file;
    bool access_log = true;
    std::int64_t retry_after_s = 5;  // Retry-After of the 503 for too many pending requests
};

class http_server {
public:
    http_server(server_options options, request_handler& handler, metrics& m);
    ~http_server();  // stops and joins if still running
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    /// Binds and listens. errc::unavailable "http.listen: 127.0.0.1:8080: Address already
    /// in use"; errc::invalid_argument for a bad host or unreadable TLS files.
    status start();
    /// The bound port (after start()).
    unsigned short port() const;
    /// Runs the Asio and worker threads; blocks until stop() has finished draining.
    void run();
    /// Starts a graceful shutdown. Thread-safe and async-signal-unsafe (call it from a
    /// thread or an Asio signal handler, not a raw signal handler). Idempotent.
    void stop();
    /// After run(): true when the shutdown timeout cut the drain short, so a handler may
    /// still be running and destroying the server would wait for it.
    bool stopped_by_timeout() const;
    /// Requests read whole and not yet answered.
    std::size_t pending_requests() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace opendms::central
