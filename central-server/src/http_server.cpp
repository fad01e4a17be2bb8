#include "opendms/central/http_server.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "opendms/log.hpp"

namespace opendms::central {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;
using plain_stream = beast::tcp_stream;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

// Connections over max_connections are answered 503 by sessions of their own; past this many
// at once they are closed without an answer, so a flood cannot grow them without bound.
constexpr std::size_t max_rejecting = 64;
// After the last reply, how long a closing connection may still send (and be discarded)
// before it is closed: closing with unread input would reset the connection and could
// destroy the reply before the client reads it.
constexpr std::chrono::milliseconds max_linger{2000};
constexpr std::chrono::milliseconds accept_retry_delay{100};
constexpr std::chrono::milliseconds drain_poll{20};
// How often a request deadline that has fired cancels the read again until it has ended
// (session::on_deadline).
constexpr std::chrono::milliseconds deadline_recancel{10};

class session_base {
public:
    virtual ~session_base() = default;
    /// Any thread: asks the session (on its strand) to close if it holds no request.
    virtual void post_stop() = 0;
};

// What the sessions share with the server. Sessions hold a reference: the server outlives
// every session (its io_context, declared last, destroys any left over).
struct server_state {
    server_state(server_options o, request_handler& h, metrics& m)
        : options(std::move(o)), handler(h), stats(m), workers(std::max(1u, options.workers)) {}

    server_options options;
    request_handler& handler;
    metrics& stats;
    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> active{0};     // sessions that may carry requests
    std::atomic<std::size_t> rejecting{0};  // sessions answering 503 (over the limit)
    std::atomic<std::size_t> pending{0};    // requests read whole, not yet answered
    std::mutex registry_mutex;
    std::unordered_map<session_base*, std::weak_ptr<session_base>> registry;
    std::optional<ssl::context> tls;
    asio::io_context ioc{static_cast<int>(std::max(1u, options.threads))};
    // Declared after ioc, so destroyed (joined) first: its jobs post into ioc strands.
    asio::thread_pool workers;

    // Handler calls whose answer may still come. An answer may come from a thread of the
    // handler's own (the store group's), which a forced stop does not wait for; it posts
    // into workers and ioc. Declared last, so destroyed first: the destructor waits for
    // every answer before they go.
    class answer_count {
    public:
        answer_count() = default;
        answer_count(const answer_count&) = delete;
        answer_count& operator=(const answer_count&) = delete;
        ~answer_count() {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [this] { return open_ == 0; });
        }
        void opened() {
            std::lock_guard<std::mutex> lock(mutex_);
            ++open_;
        }
        void closed() {
            std::lock_guard<std::mutex> lock(mutex_);
            if (--open_ == 0) done_.notify_all();  // under the lock: the waiter may destroy us
        }

    private:
        std::mutex mutex_;
        std::condition_variable done_;
        std::size_t open_ = 0;
    } answers;
};

std::string endpoint_text(const tcp::endpoint& ep) {
    const std::string addr = ep.address().to_string();
    const std::string host = ep.address().is_v6() ? "[" + addr + "]" : addr;
    return host + ":" + std::to_string(ep.port());
}

// The target's path for the log: no query string (it may carry anything), no control bytes
// (a forged log line), and bounded.
std::string log_path(beast::string_view target) {
    std::string path(target.substr(0, target.find('?')));
    if (path.size() > 200) path = path.substr(0, 200) + "...";
    for (char& c : path) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '"') c = '?';
    }
    return path.empty() ? "-" : path;
}

bool is_http_parse_error(const error_code& ec) {
    static const boost::system::error_category& category =
        http::make_error_code(http::error::bad_target).category();
    return ec.category() == category;
}

http_reply server_reply(unsigned status, const std::string& text, const std::string& note) {
    http_reply r = json_message(status, text);
    r.route = "other";
    r.close = true;
    r.note = note;
    return r;
}

http_reply server_error() {
    http_reply r = json_message(500, "Server Error");
    r.route = "other";
    r.note = "handler failed";
    return r;
}

/// One connection: reads requests, asks the handler, writes replies, on its own strand.
/// Kept alive by the shared_ptrs its pending operations (and its worker job) hold.
template <typename Stream>
class session final : public session_base, public std::enable_shared_from_this<session<Stream>> {
public:
    static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

    session(server_state& st, tcp::socket socket, bool over_limit)
        : st_(st),
          remote_(remote_of(socket)),
          stream_(make_stream(std::move(socket), st)),
          executor_(stream_.get_executor()),
          deadline_(executor_),
          over_limit_(over_limit) {}

    ~session() override {
        {
            std::lock_guard<std::mutex> lock(st_.registry_mutex);
            st_.registry.erase(this);
        }
        (over_limit_ ? st_.rejecting : st_.active).fetch_sub(1);
        st_.stats.connection_closed();
    }

    void start() {
        {
            std::lock_guard<std::mutex> lock(st_.registry_mutex);
            st_.registry.emplace(this, this->weak_from_this());
        }
        // Called on the acceptor's strand: everything from here on runs on ours.
        asio::dispatch(executor_, [s = self()] { s->begin(); });
    }

    void post_stop() override {
        asio::post(executor_, [s = self()] { s->on_stop(); });
    }

private:
    enum class phase { handshake, idle, reading, handling, writing, closing };

    void begin() {
        started_ = steady::now();
        if constexpr (is_tls) {
            phase_ = phase::handshake;
            lowest().expires_after(st_.options.limits.request_timeout);
            stream_.async_handshake(ssl::stream_base::server,
                                    beast::bind_front_handler(&session::on_handshake, self()));
        } else {
            after_handshake();
        }
    }

    static std::string remote_of(const tcp::socket& socket) {
        error_code ec;
        const tcp::endpoint ep = socket.remote_endpoint(ec);
        return ec ? std::string("-") : endpoint_text(ep);
    }

    static Stream make_stream(tcp::socket socket, server_state& st) {
        if constexpr (is_tls) {
            return Stream(std::move(socket), *st.tls);
        } else {
            return Stream(std::move(socket));
        }
    }

    std::shared_ptr<session> self() { return this->shared_from_this(); }
    beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
    const server_limits& limits() const { return st_.options.limits; }

    void on_handshake(error_code ec) {
        if (ec) {
            OPENDMS_LOG(debug, "http", remote_ << " TLS handshake failed: " << ec.message());
            return do_close();
        }
        after_handshake();
    }

    void after_handshake() {
        if (!over_limit_) return do_wait();
        phase_ = phase::reading;  // the 503 goes out at once, without waiting for a request
        send(server_reply(503, "The server is busy; retry later.", "too many connections"));
    }

    void on_stop() {
        // Only a connection with no request in hand is closed; the others finish theirs and
        // then close (send() and do_wait() look at st_.stopping).
        if (phase_ == phase::idle || phase_ == phase::handshake) lowest().cancel();
    }

    // Waits, under the idle timeout, for the first byte of the next request; the request
    // timeout starts with it.
    void do_wait() {
        if (st_.stopping) return do_close();
        if (buffer_.size() > 0) return do_read_header();  // pipelined
        phase_ = phase::idle;
        lowest().expires_after(limits().idle_timeout);
        stream_.async_read_some(buffer_.prepare(4096),
                                beast::bind_front_handler(&session::on_wait, self()));
    }

    void on_wait(error_code ec, std::size_t n) {
        buffer_.commit(n);
        if (ec) return do_close();  // idle timeout, the client left, or stop()
        do_read_header();
    }

    void do_read_header() {
        phase_ = phase::reading;
        started_ = steady::now();
        version_ = 11;
        timed_out_ = false;
        method_ = "-";
        path_ = "-";
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(
            std::min<std::size_t>(limits().max_header_bytes, UINT32_MAX)));
        parser_->body_limit(static_cast<std::uint64_t>(limits().max_body_bytes));
        // Our own deadline, not the stream's: the stream's would close the socket, and a
        // 408 is to be attempted first.
        lowest().expires_never();
        arm_deadline();
        http::async_read_header(stream_, buffer_, *parser_,
                                beast::bind_front_handler(&session::on_header, self()));
    }

    void arm_deadline() { wait_deadline(++request_seq_, limits().request_timeout); }

    void wait_deadline(std::uint64_t seq, std::chrono::milliseconds after) {
        deadline_.expires_after(after);
        deadline_.async_wait([weak = this->weak_from_this(), seq](error_code ec) {
            if (ec) return;
            if (auto s = weak.lock()) s->on_deadline(seq);
        });
    }

    void on_deadline(std::uint64_t seq) {
        if (seq != request_seq_ || phase_ != phase::reading) return;
        timed_out_ = true;
        lowest().cancel();
        // Beast's read is a loop of reads. A cancel that lands between two of them (one
        // done, its handler queued, the next not started) finds nothing to cancel, and the
        // next read waits for the client again: a client that keeps sending would never
        // be cut off. So the cancel repeats until the read has ended (on_read_error and
        // dispatch() cancel this timer).
        wait_deadline(seq, deadline_recancel);
    }

    void remember_head() {
        const auto& head = parser_->get();
        if (!head.method_string().empty()) method_ = std::string(head.method_string());
        if (!head.target().empty()) path_ = log_path(head.target());
        if (head.version() == 10) version_ = 10;
    }

    http_request to_request() {
        const auto& head = parser_->get();
        http_request r;
        r.method = std::string(head.method_string());
        r.target = std::string(head.target());
        r.remote = remote_;
        r.authorization = std::string(head[http::field::authorization]);
        r.content_type = std::string(head[http::field::content_type]);
        r.content_encoding = std::string(head[http::field::content_encoding]);
        r.accept_encoding = std::string(head[http::field::accept_encoding]);
        if (const auto length = parser_->content_length()) {
            r.has_content_length = true;
            r.content_length = static_cast<std::size_t>(*length);
        }
        return r;
    }

    void on_header(error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        remember_head();
        keep_alive_ = parser_->get().keep_alive();
        std::optional<http_reply> early;
        try {
            early = st_.handler.check_head(to_request());
        } catch (const std::exception& e) {
            OPENDMS_LOG(error, "http",
                        "check_head failed on " << method_ << ' ' << path_ << ": " << e.what());
            early = server_error();
        } catch (...) {
            OPENDMS_LOG(error, "http", "check_head failed on " << method_ << ' ' << path_);
            early = server_error();
        }
        if (early) {
            deadline_.cancel();
            if (!parser_->is_done()) early->close = true;  // the body stays unread
            return send(std::move(*early));
        }
        if (parser_->is_done()) return dispatch();
        if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
            continue_.version(11);
            continue_.result(http::status::continue_);
            return http::async_write(stream_, continue_,
                                     beast::bind_front_handler(&session::on_continue, self()));
        }
        read_body();
    }

    void on_continue(error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        read_body();
    }

    void read_body() {
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&session::on_body, self()));
    }

    void on_body(error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        dispatch();
    }

    void on_read_error(error_code ec) {
        deadline_.cancel();
        if (parser_) remember_head();
        if (timed_out_) {
            return send(server_reply(408, "The request did not arrive in time.", "timeout"));
        }
        if (ec == http::error::header_limit) {
            return send(
                server_reply(431, "The request header fields are too large.", "header too large"));
        }
        if (ec == http::error::body_limit) {
            return send(server_reply(413, "The request body is too large.", "body too large"));
        }
        // A client that leaves mid-request, a reset, a stop(): nobody to answer.
        if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
            !is_http_parse_error(ec)) {
            return do_close();
        }
        send(server_reply(400, "The request is not valid HTTP.", "malformed: " + ec.message()));
    }

    // Runs handle_async() on a worker (here, when the handler says it runs inline); the
    // reply, given on whatever thread, is compressed if it should be (on a worker) and
    // comes back to this strand.
    void dispatch() {
        deadline_.cancel();
        phase_ = phase::handling;
        if (st_.pending.fetch_add(1) >= limits().max_pending_requests) {
            st_.pending.fetch_sub(1);
            http_reply busy = json_message(503, "The server is busy; retry later.");
            busy.headers.emplace_back("Retry-After", std::to_string(st_.options.retry_after_s));
            busy.route = "other";
            busy.note = "too many pending requests";
            return send(std::move(busy));
        }
        http_request request = to_request();
        request.body = std::move(parser_->get().body());
        auto work = asio::make_work_guard(st_.ioc);
        if (st_.handler.runs_inline(request)) {
            // The reply comes back through deliver(), posted: never re-entering this
            // strand's handler now.
            return call_handler(std::move(request), std::move(work));
        }
        asio::post(st_.workers,
                   [s = self(), request = std::move(request), work = std::move(work)]() mutable {
                       s->call_handler(std::move(request), std::move(work));
                   });
    }

    // On a worker thread, or on this strand for a request that runs inline.
    void call_handler(http_request request,
                      asio::executor_work_guard<asio::io_context::executor_type> work) {
        // Lives as long as a copy of `done`: until the answer has been handed over (or a
        // handler dropped it unanswered). It lets go of the session and the work before
        // it counts the answer closed: after that the server may be destroyed.
        struct answer_state {
            answer_state(std::shared_ptr<session> s,
                         asio::executor_work_guard<asio::io_context::executor_type> w)
                : st(s->st_), owner(std::move(s)), work(std::move(w)) {
                st.answers.opened();
            }
            ~answer_state() {
                work.reset();
                owner.reset();
                st.answers.closed();
            }
            answer_state(const answer_state&) = delete;
            answer_state& operator=(const answer_state&) = delete;
            server_state& st;
            std::shared_ptr<session> owner;
            std::atomic<bool> given{false};
            asio::executor_work_guard<asio::io_context::executor_type> work;
        };
        auto state = std::make_shared<answer_state>(self(), std::move(work));
        const std::string accept_encoding = request.accept_encoding;
        const std::string method = request.method;
        const std::string target = log_path(request.target);
        auto done = [state, accept_encoding](http_reply reply) {
            if (state->given.exchange(true)) return;  // a handler bug: answered twice
            state->owner->deliver(std::move(reply), accept_encoding);
            state->work.reset();
        };
        try {
            st_.handler.handle_async(std::move(request), done);
            return;
        } catch (const std::exception& e) {
            OPENDMS_LOG(error, "http",
                        "handler failed on " << method << ' ' << target << ": " << e.what());
        } catch (...) {
            OPENDMS_LOG(error, "http", "handler failed on " << method << ' ' << target);
        }
        done(server_error());
    }

    // Any thread: the handler's reply, compressed on a worker when it is worth it, then
    // written on the strand.
    void deliver(http_reply reply, const std::string& accept_encoding) {
        auto to_strand = [s = self()](http_reply r) {
            asio::post(s->executor_, [s, r = std::move(r)]() mutable {
                s->st_.pending.fetch_sub(1);
                s->send(std::move(r));
            });
        };
        if (reply.body.size() < min_compressed_reply || method_ == "HEAD") {
            return to_strand(std::move(reply));
        }
        asio::post(st_.workers, [reply = std::move(reply), accept_encoding, to_strand]() mutable {
            try {
                compress_reply(reply, accept_encoding);
            } catch (const std::exception& e) {
                OPENDMS_LOG(error, "http", "compressing a reply failed: " << e.what());
            }
            to_strand(std::move(reply));
        });
    }

    void build_response(http_reply& reply) {
        response_ = {};
        response_.version(version_);
        response_.result(reply.status);
        response_.set(http::field::server, "opendms-central");
        response_.set(http::field::content_type, reply.content_type);
        for (const auto& [name, value] : reply.headers) response_.set(name, value);
        response_.keep_alive(keep_alive_);
        if (method_ == "HEAD") {
            response_.content_length(reply.body.size());  // the size a GET would have
        } else {
            response_.body() = std::move(reply.body);
            response_.prepare_payload();
        }
    }

    void send(http_reply reply) {
        phase_ = phase::writing;
        if (reply.close || st_.stopping || over_limit_) keep_alive_ = false;
        try {
            build_response(reply);
        } catch (const std::exception& e) {
            // A status Beast refuses (over 999, or a body on a 204): a handler bug.
            OPENDMS_LOG(error, "http",
                        "bad reply to " << method_ << ' ' << path_ << ": " << e.what());
            reply = server_error();
            build_response(reply);
        }
        route_ = reply.route.empty() ? "other" : reply.route;
        node_ = reply.node;
        note_ = reply.note;
        lowest().expires_after(limits().request_timeout);
        http::async_write(stream_, response_,
                          beast::bind_front_handler(&session::on_write, self()));
    }

    void on_write(error_code ec, std::size_t) {
        account(ec);
        if (ec) return do_close();
        if (!keep_alive_) return do_linger_close();
        parser_.reset();
        do_wait();
    }

    void account(error_code ec) {
        const double seconds = std::chrono::duration<double>(steady::now() - started_).count();
        const unsigned status = response_.result_int();
        st_.stats.count_request(route_, status, seconds);
        if (!st_.options.access_log) return;
        OPENDMS_LOG(
            info, "http",
            remote_ << " \"" << method_ << ' ' << path_ << "\" " << status << ' '
                    << response_.body().size() << ' ' << static_cast<long long>(seconds * 1000)
                    << "ms node=" << (node_.empty() ? "-" : node_) << (note_.empty() ? "" : " ")
                    << note_ << (ec ? " write failed: " + ec.message() : ""));
    }

    // The reply is out; tell the client we are done and give it a moment to stop sending.
    void do_linger_close() {
        phase_ = phase::closing;
        lowest().expires_after(std::min(limits().request_timeout, max_linger));
        if constexpr (is_tls) {
            stream_.async_shutdown([s = self()](error_code) { s->do_close(); });
        } else {
            error_code ec;
            lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
            if (ec) return do_close();
            do_discard();
        }
    }

    void do_discard() {
        stream_.async_read_some(asio::buffer(discard_), [s = self()](error_code ec, std::size_t) {
            if (ec) return s->do_close();
            s->do_discard();
        });
    }

    void do_close() {
        phase_ = phase::closing;
        deadline_.cancel();
        error_code ec;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
        lowest().close();
    }

    server_state& st_;
    const std::string remote_;
    Stream stream_;
    const asio::any_io_executor executor_;  // the strand
    asio::steady_timer deadline_;
    const bool over_limit_;
    phase phase_ = phase::idle;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::empty_body> continue_;
    http::response<http::string_body> response_;
    std::array<char, 4096> discard_{};
    std::uint64_t request_seq_ = 0;
    bool timed_out_ = false;
    bool keep_alive_ = false;
    unsigned version_ = 11;
    steady::time_point started_;
    std::string method_ = "-";
    std::string path_ = "-";
    std::string route_;
    std::string node_;
    std::string note_;
};

}  // namespace

struct http_server::impl {
    impl(server_options o, request_handler& h, metrics& m) : st(std::move(o), h, m) {}

    ~impl() {
        stop();
        std::unique_lock<std::mutex> lock(run_mutex);
        run_done.wait(lock, [this] { return !running; });
    }

    status start();
    status load_tls();
    status open_acceptor(const tcp::endpoint& ep);
    void run();
    void stop();
    void do_accept();
    void on_accept(error_code ec, tcp::socket socket);
    void start_session(tcp::socket socket);
    void wait_for_drain();

    server_state st;
    tcp::acceptor acceptor{asio::make_strand(st.ioc)};
    asio::steady_timer accept_retry{acceptor.get_executor()};
    asio::steady_timer drain_timer{st.ioc};
    steady::time_point drain_deadline;
    bool started = false;
    unsigned short bound_port = 0;
    std::atomic<bool> forced{false};  // the shutdown timeout cut the drain short
    std::mutex run_mutex;
    std::condition_variable run_done;
    bool running = false;
};

status http_server::impl::load_tls() {
    const auto& o = st.options;
    if (!o.tls_cert_file && !o.tls_key_file) return status::ok();
    if (!o.tls_cert_file || !o.tls_key_file) {
        return {errc::invalid_argument, "http.tls: both a certificate and a key file are needed"};
    }
    st.tls.emplace(ssl::context::tls_server);
    st.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                        ssl::context::single_dh_use);
    error_code ec;
    st.tls->use_certificate_chain_file(*o.tls_cert_file, ec);
    if (ec) {
        st.tls.reset();
        return {errc::invalid_argument, "http.tls: " + *o.tls_cert_file + ": " + ec.message()};
    }
    st.tls->use_private_key_file(*o.tls_key_file, ssl::context::pem, ec);
    if (ec) {
        st.tls.reset();
        return {errc::invalid_argument, "http.tls: " + *o.tls_key_file + ": " + ec.message()};
    }
    return status::ok();
}

status http_server::impl::open_acceptor(const tcp::endpoint& ep) {
    const std::string where = "http.listen: " + endpoint_text(ep) + ": ";
    error_code ec;
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        error_code ignored;
        acceptor.close(ignored);
        return {errc::unavailable, where + ec.message()};
    }
    bound_port = acceptor.local_endpoint(ec).port();
    return status::ok();
}

status http_server::impl::start() {
    if (started) return {errc::internal, "http.start: already started"};
    const auto& o = st.options;
    error_code ec;
    asio::ip::address address = asio::ip::make_address(o.host, ec);
    if (ec) {
        tcp::resolver resolver(st.ioc);
        const auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
        if (ec || results.empty()) {
            return {errc::invalid_argument,
                    "http.listen: bad host '" + o.host + "': " + ec.message()};
        }
        address = results.begin()->endpoint().address();
    }
    if (status s = load_tls(); !s) return s;
    if (status s = open_acceptor(tcp::endpoint(address, o.port)); !s) return s;
    started = true;
    asio::post(acceptor.get_executor(), [this] { do_accept(); });
    return status::ok();
}

void http_server::impl::do_accept() {
    acceptor.async_accept(asio::make_strand(st.ioc), [this](error_code ec, tcp::socket socket) {
        on_accept(ec, std::move(socket));
    });
}

void http_server::impl::on_accept(error_code ec, tcp::socket socket) {
    if (st.stopping || !acceptor.is_open()) return;
    if (ec) {
        // EMFILE and the like: retrying at once would spin; the condition may clear.
        OPENDMS_LOG(warning, "http", "accept: " << ec.message());
        accept_retry.expires_after(accept_retry_delay);
        accept_retry.async_wait([this](error_code wait_ec) {
            if (!wait_ec && !st.stopping) do_accept();
        });
        return;
    }
    start_session(std::move(socket));
    do_accept();
}

void http_server::impl::start_session(tcp::socket socket) {
    const bool over = st.active.load() >= st.options.limits.max_connections;
    if (over && st.rejecting.load() >= max_rejecting) {
        error_code ignored;
        socket.close(ignored);
        return;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    (over ? st.rejecting : st.active).fetch_add(1);
    st.stats.connection_opened();
    if (st.tls) {
        std::make_shared<session<tls_stream>>(st, std::move(socket), over)->start();
    } else {
        std::make_shared<session<plain_stream>>(st, std::move(socket), over)->start();
    }
}

void http_server::impl::stop() {
    if (st.stopping.exchange(true)) return;
    asio::post(acceptor.get_executor(), [this] {
        error_code ignored;
        acceptor.close(ignored);
        accept_retry.cancel();
    });
    std::vector<std::shared_ptr<session_base>> sessions;
    {
        std::lock_guard<std::mutex> lock(st.registry_mutex);
        for (auto& entry : st.registry) {
            if (auto s = entry.second.lock()) sessions.push_back(std::move(s));
        }
    }
    for (auto& s : sessions) s->post_stop();
    asio::post(st.ioc, [this] {
        drain_deadline = steady::now() + st.options.limits.shutdown_timeout;
        wait_for_drain();
    });
}

// Polls until every session is gone (then the io_context runs out of work and run()
// returns) or the shutdown timeout has passed (then it is stopped outright).
void http_server::impl::wait_for_drain() {
    const std::size_t open = st.active.load() + st.rejecting.load();
    if (open == 0) return;
    if (steady::now() >= drain_deadline) {
        OPENDMS_LOG(warning, "http", "shutdown timeout: closing " << open << " connection(s)");
        forced = true;
        st.ioc.stop();
        return;
    }
    drain_timer.expires_after(drain_poll);
    drain_timer.async_wait([this](error_code ec) {
        if (!ec) wait_for_drain();
    });
}

void http_server::impl::run() {
    if (!started) return;
    {
        std::lock_guard<std::mutex> lock(run_mutex);
        running = true;
    }
    std::vector<std::thread> extra;
    for (unsigned i = 1; i < std::max(1u, st.options.threads); ++i) {
        extra.emplace_back([this] { st.ioc.run(); });
    }
    st.ioc.run();
    for (auto& t : extra) t.join();
    // After a forced stop a handler may still be blocked (on the database); the destructor
    // waits for it instead, so that run() returns within the shutdown timeout.
    if (!forced) st.workers.join();
    {
        std::lock_guard<std::mutex> lock(run_mutex);
        running = false;
    }
    run_done.notify_all();
}

http_server::http_server(server_options options, request_handler& handler, metrics& m)
    : impl_(std::make_unique<impl>(std::move(options), handler, m)) {}

http_server::~http_server() = default;

status http_server::start() {
    return impl_->start();
}

unsigned short http_server::port() const {
    return impl_->bound_port;
}

void http_server::run() {
    impl_->run();
}

void http_server::stop() {
    impl_->stop();
}

bool http_server::stopped_by_timeout() const {
    return impl_->forced.load();
}

std::size_t http_server::pending_requests() const {
    return impl_->st.pending.load();
}

}  // namespace opendms::central
