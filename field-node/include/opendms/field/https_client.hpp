// https_client: the field node's HTTP/1.1 client for the central server, on Boost.Beast and
// OpenSSL. One connection, kept alive between requests; blocking calls with deadlines, so
// the pusher thread reads like a sequence of steps.
//
//   TLS        certificate AND host-name verification always on for https (RFC 6125 via
//              X509_check_host / X509_check_ip_asc), SNI for host names, TLS 1.2 or later;
//              trust: `ca_file` when given (a private CA), else the system's store.
//   plain      http:// is the caller's decision (push_settings refuses it for hosts that
//              are not loopback unless CENTRAL_DMS_ALLOW_HTTP is set).
//   proxy      with `proxy` set, every connection is a CONNECT tunnel through it
//              (HTTPS_PROXY); TLS then runs inside the tunnel, end to end.
//   deadlines  connect_timeout covers resolve + connect + CONNECT + TLS handshake;
//              request_timeout covers writing the request and reading the whole response.
//              A server that accepts and never answers costs request_timeout, no more.
//   keep-alive a response without "Connection: close" leaves the connection open for the
//              next post(). When a reused connection turns out to be closed by the server
//              (it timed the idle connection out) before any byte of the response arrived,
//              the request is sent again once on a new connection: our requests are
//              idempotent (every record carries its permanent key).
//   gzip       a response with Content-Encoding: gzip is inflated (under the body limit).
//
// Errors: post() never throws; every failure is errc::unavailable with what failed and
// where ("connect 127.0.0.1:8443: Connection refused", "TLS handshake with c.example.org:
// certificate verify failed", "read response: timed out after 30 s"). After a failure the
// connection is closed; the next post() opens a new one.
//
// Wire counts: bytes of TCP payload sent and received (HTTP and TLS records included, TCP/IP
// headers not), read from the kernel (TCP_INFO) for every connection this client opened.
//
// Threads: post() and close() from one thread at a time (the pusher's). cancel() and
// counts() from any thread: cancel() makes a post() in progress fail at once, and every
// later post() too, until reset_cancel().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "opendms/status.hpp"

namespace opendms::field {

/// Where the central server is: CENTRAL_DMS_URL taken apart.
struct http_endpoint {
    bool tls = true;
    std::string host;        // a name or an address, without IPv6 brackets
    unsigned short port = 443;
    std::string base_path;   // "" or "/opendms" (never a trailing '/')

    /// "host", "host:port" or "[::1]:port": the Host header (port omitted when default).
    std::string authority() const;
    /// "https://host:port/base" for logs (no credentials ever appear in it).
    std::string url() const;
};

/// Parses an absolute http:// or https:// base URL (as CENTRAL_DMS_URL is normalised by the
/// common settings). errc::invalid_argument with what is wrong.
result<http_endpoint> parse_endpoint(std::string_view url);

/// True for "localhost", 127.0.0.0/8 and ::1.
bool is_loopback_host(std::string_view host);

/// An HTTP proxy reached with CONNECT.
struct http_proxy {
    std::string host;
    unsigned short port = 1080;
    std::string authorization;  // "Basic ..." when the proxy URL held user:password

    std::string url() const;  // "http://host:port" (no credentials)
};

struct client_options {
    http_endpoint endpoint;
    std::optional<http_proxy> proxy;
    std::string ca_file;  // PEM; empty: the system's trust store
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds request_timeout{30'000};
    std::size_t max_response_bytes = 16 * 1024 * 1024;
    std::string user_agent = "opendms-field";
};

struct http_post {
    std::string path;  // appended to the endpoint's base path: "/api/ingest"
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

struct http_answer {
    unsigned status = 0;
    std::string body;                        // inflated when it came gzip-encoded
    std::optional<std::string> retry_after;  // the Retry-After header as sent
    std::string content_type;
    bool connection_reused = false;          // the request went out on a kept-alive connection
};

struct wire_counts {
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t connections = 0;  // connections opened (TLS handshakes, for https)
};

/// What the pusher needs of a client: https_client, or an in-memory twin in tests.
class http_transport {
public:
    virtual ~http_transport() = default;
    virtual result<http_answer> post(const http_post& request) = 0;
    virtual void close() = 0;
    virtual void cancel() = 0;
    virtual void reset_cancel() = 0;
    virtual wire_counts counts() const = 0;
};

class https_client final : public http_transport {
public:
    /// Loads the CA file (or the system's trust store). errc::invalid_argument when the CA
    /// file cannot be used: create() reports it at start-up, not at the first push.
    static result<std::unique_ptr<https_client>> create(client_options options);
    /// `count` clients (at least one), each with its own connection, sharing one TLS
    /// context: the trust store is loaded once.
    static result<std::vector<std::unique_ptr<https_client>>> create_pool(const client_options& options,
                                                                         std::size_t count);
    ~https_client() override;
    https_client(const https_client&) = delete;
    https_client& operator=(const https_client&) = delete;

    /// Sends one POST and reads its whole response (see the file comment).
    result<http_answer> post(const http_post& request) override;

    /// Closes the connection (the next post() opens a new one).
    void close() override;

    /// Thread-safe: aborts a post() in progress and refuses later ones until reset_cancel().
    void cancel() override;
    void reset_cancel() override;

    /// Thread-safe: bytes on the wire so far, the open connection included.
    wire_counts counts() const override;

    const client_options& options() const;

private:
    struct impl;
    explicit https_client(std::unique_ptr<impl> p);
    std::unique_ptr<impl> impl_;
};

}  // namespace opendms::field
