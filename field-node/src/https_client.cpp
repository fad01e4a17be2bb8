// https_client: Beast + OpenSSL, blocking steps with deadlines (contract in the header).
//
// Every step is an asynchronous Beast operation run to completion on the client's own
// io_context (ioc_.run() on the calling thread), because only the asynchronous operations
// honour beast::tcp_stream's deadlines. cancel() posts a close onto that io_context.
#include "opendms/field/https_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>

#include <atomic>
#include <charconv>
#include <mutex>

#include "opendms/field/wire_stats.hpp"
#include "opendms/gzip.hpp"

namespace opendms::field {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using boost::system::error_code;

// ---- endpoints ------------------------------------------------------------------------

namespace {

std::string bracketed(const std::string& host) {
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string seconds_text(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
    return std::to_string(d.count()) + " ms";
}

}  // namespace

std::string http_endpoint::authority() const {
    const bool default_port = (tls && port == 443) || (!tls && port == 80);
    return default_port ? bracketed(host) : bracketed(host) + ":" + std::to_string(port);
}

std::string http_endpoint::url() const {
    return std::string(tls ? "https://" : "http://") + bracketed(host) + ":" +
           std::to_string(port) + base_path;
}

std::string http_proxy::url() const {
    return "http://" + bracketed(host) + ":" + std::to_string(port);
}

result<http_endpoint> parse_endpoint(std::string_view url) {
    http_endpoint e;
    std::size_t sep = url.find("://");
    if (sep == std::string_view::npos) {
        return status(errc::invalid_argument, "'" + std::string(url) + "' is not an absolute URL");
    }
    const std::string scheme = lower(url.substr(0, sep));
    if (scheme == "https") {
        e.tls = true;
        e.port = 443;
    } else if (scheme == "http") {
        e.tls = false;
        e.port = 80;
    } else {
        return status(errc::invalid_argument, "the scheme must be http or https, not " + scheme);
    }
    std::string_view rest = url.substr(sep + 3);
    std::string_view authority = rest.substr(0, rest.find('/'));
    std::string_view path = rest.substr(authority.size());
    if (authority.find('@') != std::string_view::npos) {
        return status(errc::invalid_argument, "the URL must not hold a user name or password");
    }
    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return status(errc::invalid_argument, "unclosed '['");
        e.host = std::string(authority.substr(1, close - 1));
        std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return status(errc::invalid_argument, "text after ']'");
            port_text = after.substr(1);
        }
    } else {
        std::size_t colon = authority.rfind(':');
        e.host = std::string(authority.substr(0, colon));
        if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    }
    if (e.host.empty()) return status(errc::invalid_argument, "the URL has no host");
    if (!port_text.empty()) {
        unsigned value = 0;
        auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
        if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
            value > 65535) {
            return status(errc::invalid_argument, "invalid port '" + std::string(port_text) + "'");
        }
        e.port = static_cast<unsigned short>(value);
    }
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    if (path.find_first_of("?#") != std::string_view::npos) {
        return status(errc::invalid_argument, "the URL must not have a query or fragment");
    }
    e.base_path = std::string(path);
    return e;
}

bool is_loopback_host(std::string_view host) {
    const std::string h = lower(host);
    if (h == "localhost" || h == "::1" || h == "[::1]") return true;
    error_code ec;
    auto address = net::ip::make_address(h, ec);
    return !ec && address.is_loopback();
}

// ---- the client -----------------------------------------------------------------------

// The TLS context (trust store, protocol floor) of one create_pool(), shared by its clients
// and made at the first TLS handshake rather than at start: OpenSSL's set-up and the
// system's trust store cost about 4 MiB of resident memory, which a gateway whose central
// server is unreachable (or reached over http on loopback) need not pay
// (docs/performance.md). With a CA file the context is made at start instead (create_pool),
// so that a file that cannot be used stops start-up, and is handed over ready.
class tls_context_source {
public:
    tls_context_source(std::string ca_file, std::unique_ptr<ssl::context> ready)
        : ca_file_(std::move(ca_file)), context_(std::move(ready)) {}

    result<ssl::context*> get() {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!context_) {
            auto made = make(ca_file_);
            if (!made) return made.error();
            context_ = std::move(*made);
        }
        return context_.get();
    }

    static result<std::unique_ptr<ssl::context>> make(const std::string& ca_file) {
        auto context = std::make_unique<ssl::context>(ssl::context::tls_client);
        SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
        error_code ec;
        if (!ca_file.empty()) {
            context->load_verify_file(ca_file, ec);
            if (ec) {
                return status(errc::invalid_argument,
                              "cannot load the CA file '" + ca_file + "': " + ec.message());
            }
        } else {
            context->set_default_verify_paths(ec);
            if (ec) {
                return status(errc::invalid_argument,
                              "cannot load the system's trusted certificates: " + ec.message());
            }
        }
        context->set_verify_mode(ssl::verify_peer);
        return context;
    }

private:
    std::string ca_file_;
    std::mutex mutex_;
    std::unique_ptr<ssl::context> context_;
};

struct https_client::impl {
    client_options options;
    net::io_context ioc{1};
    std::shared_ptr<tls_context_source> tls_context;
    // The open connection: `plain` for http, `secure` for https (its lowest layer is the
    // tcp_stream). At most one is set.
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;
    std::atomic<bool> cancelled{false};

    // Wire counts: closed connections accumulated; the open one read after every request.
    mutable std::mutex counts_mutex;
    wire_counts closed_totals;
    wire_counts open_connection;

    explicit impl(client_options o) : options(std::move(o)) {}

    bool is_open() const { return plain || secure; }

    beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

    /// Runs queued operations to completion on this thread.
    void drive() {
        ioc.restart();
        ioc.run();
    }

    std::string where() const {
        return options.endpoint.host + ":" + std::to_string(options.endpoint.port);
    }

    void sample_open_connection() {
        if (!is_open()) return;
        tcp_byte_counts b = read_tcp_byte_counts(lowest().socket().native_handle());
        std::lock_guard<std::mutex> lock(counts_mutex);
        open_connection.bytes_sent = b.sent;
        open_connection.bytes_received = b.received;
    }

    void close_connection() {
        if (!is_open()) return;
        sample_open_connection();
        {
            std::lock_guard<std::mutex> lock(counts_mutex);
            closed_totals.bytes_sent += open_connection.bytes_sent;
            closed_totals.bytes_received += open_connection.bytes_received;
            open_connection = {};
        }
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        lowest().socket().close(ignored);
        secure.reset();
        plain.reset();
        buffer.clear();
    }

    status fail(const std::string& step, const error_code& ec) {
        std::string why = ec == beast::error::timeout ? "timed out" : ec.message();
        if (cancelled.load()) why = "cancelled (stopping)";
        close_connection();
        return status(errc::unavailable, step + ": " + why);
    }

    status connect();
    status tunnel(beast::tcp_stream& stream, std::chrono::steady_clock::time_point deadline);
    result<http_answer> exchange(const http_post& request, bool& retry_on_new_connection);
};

status https_client::impl::connect() {
    const auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
    const std::string& host = options.proxy ? options.proxy->host : options.endpoint.host;
    const unsigned short port = options.proxy ? options.proxy->port : options.endpoint.port;
    const std::string hop = bracketed(host) + ":" + std::to_string(port);

    // Resolve, with the connect timeout (the resolver has no deadline of its own).
    tcp::resolver resolver(ioc);
    net::steady_timer timer(ioc);
    timer.expires_at(deadline);
    bool timed_out = false;
    timer.async_wait([&](const error_code& ec) {
        if (!ec) {
            timed_out = true;
            resolver.cancel();
        }
    });
    error_code resolve_error;
    tcp::resolver::results_type addresses;
    resolver.async_resolve(host, std::to_string(port),
                           [&](const error_code& ec, tcp::resolver::results_type r) {
                               resolve_error = ec;
                               addresses = std::move(r);
                               timer.cancel();
                           });
    drive();
    if (cancelled.load()) return status(errc::unavailable, "resolve " + hop + ": cancelled (stopping)");
    if (timed_out) return status(errc::unavailable, "resolve " + hop + ": timed out");
    if (resolve_error) return status(errc::unavailable, "resolve " + hop + ": " + resolve_error.message());

    auto stream = std::make_unique<beast::tcp_stream>(ioc);
    stream->expires_at(deadline);
    error_code ec;
    stream->async_connect(addresses, [&](const error_code& e, const tcp::endpoint&) { ec = e; });
    plain = std::move(stream);  // so that cancel() and fail() can close it
    drive();
    if (ec || cancelled.load()) return fail("connect " + hop, ec);
    plain->socket().set_option(tcp::no_delay(true), ec);
    {
        std::lock_guard<std::mutex> lock(counts_mutex);
        ++closed_totals.connections;
    }
    if (options.proxy) {
        if (status s = tunnel(*plain, deadline); !s) return s;
    }
    if (!options.endpoint.tls) {
        plain->expires_never();
        return status::ok();
    }

    auto context = tls_context->get();
    if (!context) {
        close_connection();
        return context.error();
    }
    secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*plain), **context);
    plain.reset();
    const std::string& name = options.endpoint.host;
    error_code not_ip;
    (void)net::ip::make_address(name, not_ip);
    // SSL_set_tlsext_host_name is a macro with a C cast; this is what it expands to.
    if (not_ip && SSL_ctrl(secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                           TLSEXT_NAMETYPE_host_name, const_cast<char*>(name.c_str())) != 1) {
        close_connection();
        return status(errc::unavailable, "TLS: cannot set the server name " + name);
    }
    secure->set_verify_mode(ssl::verify_peer);
    secure->set_verify_callback(ssl::host_name_verification(name));
    beast::get_lowest_layer(*secure).expires_at(deadline);
    secure->async_handshake(ssl::stream_base::client, [&](const error_code& e) { ec = e; });
    drive();
    if (ec || cancelled.load()) {
        std::string why = ec.message();
        if (long v = SSL_get_verify_result(secure->native_handle()); v != X509_V_OK) {
            why += " (" + std::string(X509_verify_cert_error_string(v)) + ")";
        }
        if (ec == beast::error::timeout) why = "timed out";
        if (cancelled.load()) why = "cancelled (stopping)";
        close_connection();
        return status(errc::unavailable, "TLS handshake with " + where() + ": " + why);
    }
    beast::get_lowest_layer(*secure).expires_never();
    return status::ok();
}

status https_client::impl::tunnel(beast::tcp_stream& stream,
                                  std::chrono::steady_clock::time_point deadline) {
    const std::string target =
        bracketed(options.endpoint.host) + ":" + std::to_string(options.endpoint.port);
    http::request<http::empty_body> req{http::verb::connect, target, 11};
    req.set(http::field::host, target);
    req.set(http::field::user_agent, options.user_agent);
    if (!options.proxy->authorization.empty()) {
        req.set(http::field::proxy_authorization, options.proxy->authorization);
    }
    stream.expires_at(deadline);
    error_code ec;
    http::async_write(stream, req, [&](const error_code& e, std::size_t) { ec = e; });
    drive();
    if (ec) return fail("CONNECT through proxy " + options.proxy->url(), ec);
    http::response_parser<http::empty_body> parser;
    parser.skip(true);  // a 2xx to CONNECT has no body: the tunnel starts after the head
    http::async_read_header(stream, buffer, parser, [&](const error_code& e, std::size_t) { ec = e; });
    drive();
    if (ec) return fail("CONNECT through proxy " + options.proxy->url(), ec);
    const unsigned code = parser.get().result_int();
    if (code / 100 != 2) {
        close_connection();
        return status(errc::unavailable, "proxy " + options.proxy->url() + " refused CONNECT " +
                                             target + ": " + std::to_string(code) + " " +
                                             std::string(parser.get().reason()));
    }
    if (buffer.size() != 0) {
        close_connection();
        return status(errc::unavailable, "proxy " + options.proxy->url() +
                                             " sent bytes after its CONNECT answer");
    }
    return status::ok();
}

result<http_answer> https_client::impl::exchange(const http_post& request,
                                                 bool& retry_on_new_connection) {
    retry_on_new_connection = false;
    const bool reused = is_open();
    if (!reused) {
        if (status s = connect(); !s) return s;
    }
    http::request<http::string_body> req{http::verb::post, options.endpoint.base_path + request.path,
                                         11};
    req.set(http::field::host, options.endpoint.authority());
    req.set(http::field::user_agent, options.user_agent);
    for (const auto& [name, value] : request.headers) req.set(name, value);
    req.body() = request.body;
    req.prepare_payload();

    lowest().expires_after(options.request_timeout);
    error_code ec;
    auto on_write = [&](const error_code& e, std::size_t) { ec = e; };
    if (secure) {
        http::async_write(*secure, req, on_write);
    } else {
        http::async_write(*plain, req, on_write);
    }
    drive();
    if (ec) {
        retry_on_new_connection = reused && !cancelled.load() && ec != beast::error::timeout;
        return fail("send request to " + where(), ec);
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(options.max_response_bytes);
    auto on_read = [&](const error_code& e, std::size_t) { ec = e; };
    if (secure) {
        http::async_read(*secure, buffer, parser, on_read);
    } else {
        http::async_read(*plain, buffer, parser, on_read);
    }
    drive();
    if (ec) {
        retry_on_new_connection = reused && !parser.got_some() && !cancelled.load() &&
                                  ec != beast::error::timeout;
        std::string step = "read response from " + where();
        if (ec == beast::error::timeout) {
            step += " (no whole answer within " + seconds_text(options.request_timeout) + ")";
        }
        return fail(step, ec);
    }
    lowest().expires_never();
    http::response<http::string_body> res = parser.release();
    http_answer answer;
    answer.status = res.result_int();
    answer.connection_reused = reused;
    answer.content_type = std::string(res[http::field::content_type]);
    if (auto it = res.find(http::field::retry_after); it != res.end()) {
        answer.retry_after = std::string(it->value());
    }
    const beast::string_view coding = res[http::field::content_encoding];
    const std::string encoding = lower(std::string_view(coding.data(), coding.size()));
    if (encoding == "gzip" || encoding == "x-gzip") {
        gunzip_result g = gzip_decompress(res.body(), answer.body, options.max_response_bytes);
        if (g.error != gunzip_error::none) {
            close_connection();
            return status(errc::unavailable, "response from " + where() + ": gzip body cannot be inflated");
        }
    } else {
        answer.body = std::move(res.body());
    }
    sample_open_connection();
    if (!res.keep_alive()) close_connection();
    return answer;
}

https_client::https_client(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

https_client::~https_client() {
    if (impl_) impl_->close_connection();
}

result<std::vector<std::unique_ptr<https_client>>> https_client::create_pool(
    const client_options& options, std::size_t count) {
    // A CA file that cannot be used is a setting to fix before start, not a delivery
    // failure found hours later: with one, the context is made here, once.
    std::unique_ptr<ssl::context> ready;
    if (options.endpoint.tls && !options.ca_file.empty()) {
        auto made = tls_context_source::make(options.ca_file);
        if (!made) return made.error();
        ready = std::move(*made);
    }
    auto context = std::make_shared<tls_context_source>(options.ca_file, std::move(ready));
    std::vector<std::unique_ptr<https_client>> clients;
    for (std::size_t i = 0; i < std::max<std::size_t>(1, count); ++i) {
        auto p = std::make_unique<impl>(options);
        p->tls_context = context;
        clients.push_back(std::unique_ptr<https_client>(new https_client(std::move(p))));
    }
    return clients;
}

result<std::unique_ptr<https_client>> https_client::create(client_options options) {
    auto pool = create_pool(options, 1);
    if (!pool) return pool.error();
    return std::move(pool->front());
}

result<http_answer> https_client::post(const http_post& request) {
    if (impl_->cancelled.load()) return status(errc::unavailable, "cancelled (stopping)");
    bool retry = false;
    auto answer = impl_->exchange(request, retry);
    if (!answer && retry) answer = impl_->exchange(request, retry);  // the server had closed it
    return answer;
}

void https_client::close() { impl_->close_connection(); }

void https_client::cancel() {
    impl_->cancelled.store(true);
    // Runs inside ioc_.run() if a post() is in progress; otherwise at the next run, where
    // it finds nothing open or an idle connection, which it closes.
    net::post(impl_->ioc, [p = impl_.get()] {
        error_code ignored;
        if (p->is_open()) p->lowest().socket().cancel(ignored);
    });
}

void https_client::reset_cancel() {
    // A cancel() posted while no post() was running is still queued: run it now, so that it
    // cannot abort the next request.
    impl_->ioc.restart();
    impl_->ioc.poll();
    impl_->cancelled.store(false);
}

wire_counts https_client::counts() const {
    std::lock_guard<std::mutex> lock(impl_->counts_mutex);
    wire_counts c = impl_->closed_totals;
    c.bytes_sent += impl_->open_connection.bytes_sent;
    c.bytes_received += impl_->open_connection.bytes_received;
    return c;
}

const client_options& https_client::options() const { return impl_->options; }

}  // namespace opendms::field
