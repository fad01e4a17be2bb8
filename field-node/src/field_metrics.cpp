// field_metrics: GET /metrics on FIELD_METRICS_LISTEN (contract in field_metrics.hpp).
#include "opendms/field/field_metrics.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <cstdio>
#include <exception>
#include <sstream>
#include <thread>
#include <utility>

#include "opendms/clock.hpp"
#include "opendms/field/pusher.hpp"
#include "opendms/log.hpp"

namespace opendms::field {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

constexpr const char* component = "metrics";
constexpr const char* variable = "FIELD_METRICS_LISTEN";
constexpr int max_sessions = 8;
constexpr std::chrono::seconds idle_timeout{10};
constexpr std::uint32_t max_header_bytes = 8192;
constexpr std::chrono::milliseconds accept_retry_delay{200};

// ---- FIELD_METRICS_LISTEN ---------------------------------------------------------------

/// "HOST:PORT" or "[V6]:PORT" -> host (without brackets) and port text.
bool split_listen(const std::string& text, std::string& host, std::string& port) {
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find("]:");
        if (close == std::string::npos) return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon) return false;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    return !host.empty() && !port.empty();
}

bool parse_port(const std::string& text, unsigned short& out) {
    if (text.empty() || text.size() > 5) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    if (value > 65535) return false;
    out = static_cast<unsigned short>(value);
    return true;
}

enum class address_kind { invalid, loopback, other };

address_kind classify(const std::string& host) {
    in_addr v4{};
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24) == 127 ? address_kind::loopback : address_kind::other;
    }
    in6_addr v6{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&v6) ? address_kind::loopback : address_kind::other;
    }
    return address_kind::invalid;
}

// ---- the text exposition -------------------------------------------------------------------

std::string number(double v) {
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
        return std::to_string(static_cast<long long>(v));
    }
    char text[32];
    std::snprintf(text, sizeof text, "%.9g", v);
    return text;
}

class exposition {
public:
    void family(const char* name, const char* type, const char* help) {
        out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    }
    void sample(const std::string& series, double value) { out_ << series << ' ' << number(value) << '\n'; }
    std::string text() const { return out_.str(); }

private:
    std::ostringstream out_;
};

void render_daemon(exposition& x, const daemon_counts& d) {
    x.family("opendms_field_messages_total", "counter",
             "MQTT messages handled since the daemon started, by outcome.");
    x.sample("opendms_field_messages_total{outcome=\"stored\"}", static_cast<double>(d.stored));
    x.sample("opendms_field_messages_total{outcome=\"mesh_duplicate\"}",
             static_cast<double>(d.mesh_duplicates));
    x.sample("opendms_field_messages_total{outcome=\"quarantined\"}", static_cast<double>(d.quarantined));
    x.family("opendms_field_mqtt_connections", "gauge",
             "MQTT connections subscribed now, and configured (MQTT_CONNECTIONS).");
    x.sample("opendms_field_mqtt_connections{state=\"subscribed\"}", d.connections_up);
    x.sample("opendms_field_mqtt_connections{state=\"configured\"}", d.connections);
}

void render_database(exposition& x, const field_status& s) {
    x.family("opendms_field_records", "gauge",
             "Records in cluster_data by sync state (not_applicable: offline mode).");
    x.sample("opendms_field_records{sync=\"pending\"}", static_cast<double>(s.pending));
    x.sample("opendms_field_records{sync=\"synced\"}", static_cast<double>(s.synced));
    x.sample("opendms_field_records{sync=\"not_applicable\"}", static_cast<double>(s.not_applicable));
    x.family("opendms_field_outbox_records", "gauge",
             "Outbox entries: live and backlog lanes, and parked (rejected by the central).");
    x.sample("opendms_field_outbox_records{lane=\"live\"}", static_cast<double>(s.live));
    x.sample("opendms_field_outbox_records{lane=\"backlog\"}", static_cast<double>(s.backlog));
    x.sample("opendms_field_outbox_records{lane=\"parked\"}", static_cast<double>(s.parked));
    x.family("opendms_field_quarantine_records", "gauge",
             "Messages kept in quarantine (not a record), all time.");
    x.sample("opendms_field_quarantine_records", static_cast<double>(s.quarantined));
    x.family("opendms_field_mesh_duplicate_records", "gauge", "Mesh duplicates recorded, all time.");
    x.sample("opendms_field_mesh_duplicate_records", static_cast<double>(s.duplicates));
    x.family("opendms_field_oldest_pending_age_seconds", "gauge",
             "Age of the oldest record not yet delivered; 0 when nothing is pending.");
    x.sample("opendms_field_oldest_pending_age_seconds",
             static_cast<double>(s.oldest_pending_age_seconds.value_or(0)));
    x.family("opendms_field_push_last_success_timestamp_seconds", "gauge",
             "Unix time of the last successful delivery; 0 when never.");
    x.sample("opendms_field_push_last_success_timestamp_seconds",
             static_cast<double>(s.last_success_at.value_or(0)));
    x.family("opendms_field_push_consecutive_failures", "gauge",
             "Delivery attempts failed in a row (0 after a success).");
    x.sample("opendms_field_push_consecutive_failures", static_cast<double>(s.consecutive_failures));
    x.family("opendms_field_push_auth_alarm", "gauge", "1 while the central refuses the token (401/403).");
    x.sample("opendms_field_push_auth_alarm", s.auth_alarm_since ? 1 : 0);
}

void render_push(exposition& x, const metrics_sample& m) {
    x.family("opendms_field_push_requests_total", "counter", "HTTP requests sent since start.");
    x.sample("opendms_field_push_requests_total", static_cast<double>(m.push_requests));
    x.family("opendms_field_push_delivered_total", "counter", "Records delivered since start.");
    x.sample("opendms_field_push_delivered_total", static_cast<double>(m.push_delivered));
    x.family("opendms_field_push_parked_total", "counter", "Records parked since start.");
    x.sample("opendms_field_push_parked_total", static_cast<double>(m.push_parked));
    x.family("opendms_field_push_failed_attempts_total", "counter",
             "Delivery rounds that ended in a retry since start.");
    x.sample("opendms_field_push_failed_attempts_total", static_cast<double>(m.push_failed));
    x.family("opendms_field_push_request_duration_seconds", "histogram",
             "Time of each HTTP request to the central, answered or not.");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < latency_histogram::bounds.size(); ++i) {
        cumulative += m.latency.buckets[i];
        x.sample("opendms_field_push_request_duration_seconds_bucket{le=\"" +
                     number(latency_histogram::bounds[i]) + "\"}",
                 static_cast<double>(cumulative));
    }
    x.sample("opendms_field_push_request_duration_seconds_bucket{le=\"+Inf\"}",
             static_cast<double>(m.latency.count));
    x.sample("opendms_field_push_request_duration_seconds_sum", m.latency.sum);
    x.sample("opendms_field_push_request_duration_seconds_count", static_cast<double>(m.latency.count));
}

// ---- the listener ----------------------------------------------------------------------------

http::response<http::string_body> answer(const http::request<http::empty_body>& req,
                                         const metrics_server::sampler& sample) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "opendms-field");
    const beast::string_view target = req.target();
    const beast::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics") {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "not found: the only path is /metrics\n";
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET, HEAD");
        res.set(http::field::content_type, "text/plain; charset=utf-8");
        res.body() = "method not allowed\n";
    } else {
        try {
            res.body() = render_metrics(sample());
            res.result(http::status::ok);
            res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        } catch (const std::exception& e) {
            OPENDMS_LOG(error, component, "a scrape failed: " << e.what());
            res.result(http::status::internal_server_error);
            res.set(http::field::content_type, "text/plain; charset=utf-8");
            res.body() = "metrics unavailable\n";
        }
        if (req.method() == http::verb::head) {
            res.prepare_payload();
            res.body().clear();
            return res;
        }
    }
    res.prepare_payload();
    return res;
}

/// One connection, on the listener's only thread (so no strand): read a request within the
/// idle timeout, answer it, and again while the client keeps the connection alive.
class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket socket, const metrics_server::sampler& sample, std::atomic<int>& count)
        : stream_(std::move(socket)), sample_(sample), count_(count) {
        count_.fetch_add(1);
    }
    ~session() { count_.fetch_sub(1); }
    session(const session&) = delete;
    session& operator=(const session&) = delete;

    void do_read() {
        parser_.emplace();
        parser_->header_limit(max_header_bytes);
        stream_.expires_after(idle_timeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
    }

private:
    void on_read(error_code ec) {
        if (ec) return close();  // closed, timed out, malformed or with a body: just close
        response_ = answer(parser_->get(), sample_);
        stream_.expires_after(idle_timeout);
        http::async_write(stream_, response_, [self = shared_from_this()](error_code wec, std::size_t) {
            self->on_write(wec);
        });
    }
    void on_write(error_code ec) {
        if (ec || !response_.keep_alive()) return close();
        do_read();
    }
    void close() {
        error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream_.socket().close(ignored);
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::empty_body>> parser_;
    http::response<http::string_body> response_;
    const metrics_server::sampler& sample_;
    std::atomic<int>& count_;
};

}  // namespace

// ---- settings ------------------------------------------------------------------------------

metrics_options load_metrics_options(config::setting_reader& r) {
    metrics_options o;
    const std::optional<std::string> text = r.optional_text(variable);
    if (!text) return o;
    std::string host;
    std::string port_text;
    unsigned short port = 0;
    if (!split_listen(*text, host, port_text) || !parse_port(port_text, port)) {
        r.fail(variable, "'" + *text +
                             "' is not an address and port; write 127.0.0.1:PORT or [::1]:PORT, "
                             "e.g. 127.0.0.1:9101, or remove it to turn the metrics off");
        return o;
    }
    if (host == "localhost") host = "127.0.0.1";
    const address_kind kind = classify(host);
    if (kind == address_kind::invalid) {
        r.fail(variable, "'" + host +
                             "' is not an IP address; write 127.0.0.1:PORT or [::1]:PORT (host "
                             "names other than localhost are not resolved)");
        return o;
    }
    if (kind == address_kind::other) {
        r.fail(variable, "'" + host +
                             "' is not a loopback address; the metrics listener has no "
                             "authentication, so it listens on 127.0.0.1 or ::1 only: scrape it "
                             "from this machine (a local Prometheus agent) or through an SSH "
                             "tunnel");
        return o;
    }
    o.host = host;
    o.port = port;
    return o;
}

void describe_metrics(const metrics_options& o, const config::env_map& env,
                      std::vector<std::string>& lines) {
    std::string value = "(off)";
    if (o.enabled()) {
        value = (o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host) + ":" +
                std::to_string(o.port);
    }
    lines.push_back(std::string(variable) + "=" + value + " (" + env.origin(variable) + ")");
}

// ---- latency_histogram -----------------------------------------------------------------------

void latency_histogram::observe(double seconds) {
    if (!(seconds >= 0)) seconds = 0;  // NaN and negatives (a clock step) count as 0
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (seconds <= bounds[i]) {
            buckets_[i].fetch_add(1, std::memory_order_relaxed);
            break;
        }
    }
    sum_us_.fetch_add(static_cast<std::uint64_t>(std::llround(seconds * 1e6)), std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

latency_histogram::snapshot_t latency_histogram::snapshot() const {
    snapshot_t s;
    for (std::size_t i = 0; i < bounds.size(); ++i) s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    s.sum = static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
    s.count = count_.load(std::memory_order_relaxed);
    // Taken one counter at a time: an observation in between may show in the total only.
    std::uint64_t in_buckets = 0;
    for (std::uint64_t b : s.buckets) in_buckets += b;
    s.count = std::max(s.count, in_buckets);
    return s;
}

// ---- render ------------------------------------------------------------------------------------

std::string render_metrics(const metrics_sample& m) {
    exposition x;
    render_daemon(x, m.daemon);
    x.family("opendms_field_database_up", "gauge",
             "1 when the database could be read for this scrape (the gauges below come from it).");
    x.sample("opendms_field_database_up", m.database ? 1 : 0);
    if (m.database) render_database(x, *m.database);
    if (m.hybrid) render_push(x, m);
    return x.text();
}

// ---- metrics_server --------------------------------------------------------------------------

struct metrics_server::impl {
    metrics_options options;
    sampler sample;
    std::atomic<int> sessions{0};
    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
    asio::steady_timer retry{ioc};
    std::thread thread;
    unsigned short port = 0;

    void do_accept() {
        acceptor.async_accept([this](error_code ec, tcp::socket socket) {
            if (ec == asio::error::operation_aborted) return;
            if (ec) {
                // Out of descriptors, say: try again shortly rather than spin or give up.
                OPENDMS_LOG(warning, component, "accept: " << ec.message());
                retry.expires_after(accept_retry_delay);
                retry.async_wait([this](error_code wec) {
                    if (!wec) do_accept();
                });
                return;
            }
            if (sessions.load() < max_sessions) {
                std::make_shared<session>(std::move(socket), sample, sessions)->do_read();
            }  // else the socket closes here: a scraper needs one connection
            do_accept();
        });
    }
};

metrics_server::metrics_server(metrics_options o, sampler sample) : impl_(std::make_unique<impl>()) {
    impl_->options = std::move(o);
    impl_->sample = std::move(sample);
}

metrics_server::~metrics_server() { stop(); }

status metrics_server::start() {
    impl& st = *impl_;
    const std::string where = (st.options.host.find(':') != std::string::npos ? "[" + st.options.host + "]"
                                                                              : st.options.host) +
                              ":" + std::to_string(st.options.port);
    error_code ec;
    const auto address = asio::ip::make_address(st.options.host, ec);
    if (ec) return status(errc::invalid_argument, "metrics.listen: " + where + ": " + ec.message());
    const tcp::endpoint endpoint(address, st.options.port);
    st.acceptor.open(endpoint.protocol(), ec);
    if (!ec) st.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) st.acceptor.bind(endpoint, ec);
    if (!ec) st.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        error_code ignored;
        st.acceptor.close(ignored);
        return status(errc::unavailable, "metrics.listen: " + where + ": " + ec.message());
    }
    st.port = st.acceptor.local_endpoint(ec).port();
    st.do_accept();
    st.thread = std::thread([&st] { st.ioc.run(); });
    const std::string host = address.is_v6() ? "[" + st.options.host + "]" : st.options.host;
    OPENDMS_LOG(info, component, "serving Prometheus metrics on http://" << host << ":" << st.port << "/metrics");
    return status::ok();
}

unsigned short metrics_server::port() const { return impl_->port; }

void metrics_server::stop() {
    impl& st = *impl_;
    if (!st.thread.joinable()) return;
    // Sessions still open are destroyed with the io_context's pending handlers.
    st.ioc.stop();
    st.thread.join();
    error_code ignored;
    st.acceptor.close(ignored);
}

// ---- the daemon's sampler --------------------------------------------------------------------

metrics_server::sampler make_sampler(metrics_sources sources) {
    struct state {
        metrics_sources sources;
        std::unique_ptr<db::connection> connection;
        bool failing = false;
    };
    auto st = std::make_shared<state>();
    st->sources = std::move(sources);
    return [st] {
        metrics_sample m;
        m.now = real_clock().now();
        if (st->sources.daemon) m.daemon = st->sources.daemon();
        std::string error;
        if (!st->connection) {
            auto c = db::open(st->sources.database);
            if (c) {
                st->connection = std::move(*c);
            } else {
                error = c.error().message();
            }
        }
        if (st->connection) {
            auto s = read_status(*st->connection, m.now);
            if (s) {
                m.database = std::move(*s);
            } else {
                error = s.error().message();
                st->connection.reset();  // opened afresh at the next scrape
            }
        }
        if (!m.database && !st->failing) {
            OPENDMS_LOG(warning, component, "cannot read the database for metrics: " << error);
        } else if (m.database && st->failing) {
            OPENDMS_LOG(info, component, "the database can be read for metrics again");
        }
        st->failing = !m.database;
        if (st->sources.push != nullptr) {
            m.hybrid = true;
            const pusher_stats p = st->sources.push->stats();
            m.push_requests = p.requests;
            m.push_delivered = p.delivered;
            m.push_parked = p.parked;
            m.push_failed = p.failed_attempts;
        }
        if (st->sources.latency != nullptr) m.latency = st->sources.latency->snapshot();
        return m;
    };
}

}  // namespace opendms::field
