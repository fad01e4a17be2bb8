// http_server on 127.0.0.1 (any free port) with a scripted request_handler: keep-alive,
// the limits, timeouts against slow and idle clients, the connection cap, handler failures,
// graceful stop and TLS. The client is raw POSIX sockets, so a test can send any bytes.
#include "opendms/central/http_server.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "opendms/central/http_types.hpp"
#include "opendms/central/metrics.hpp"
#include "opendms/gzip.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
using opendms::errc;
using opendms::central::http_reply;
using opendms::central::http_request;
using opendms::central::http_server;
using opendms::central::metrics;
using opendms::central::request_handler;
using opendms::central::server_options;

std::string path_of(const std::string& target) {
    return target.substr(0, target.find('?'));
}

// Answers by path: /slow sleeps 500 ms, /throw throws, /early is answered from check_head,
// /big answers 4 KiB of JSON, /async answers 50 ms later from a thread of its own,
// /inline/... runs inline (runs_inline()): /inline/async answers 300 ms later from a thread
// of its own, other /inline/ paths at once; anything else echoes the body size.
class fake_handler final : public request_handler {
public:
    ~fake_handler() override {
        for (auto& t : late) t.join();
    }

    void handle_async(http_request request, std::function<void(http_reply)> done) override {
        const std::string path = path_of(request.target);
        if (path != "/async" && path != "/inline/async") return done(handle(request));
        handled.fetch_add(1);
        const auto delay = path == "/async" ? 50ms : 300ms;
        std::lock_guard<std::mutex> lock(late_mutex);
        late.emplace_back([this, delay, done = std::move(done)] {
            std::this_thread::sleep_for(delay);
            http_reply r;
            r.body = R"({"late":true})";
            done(std::move(r));
            late_answers.fetch_add(1);
        });
    }

    bool runs_inline(const http_request& request) const override {
        return path_of(request.target).rfind("/inline/", 0) == 0;
    }

    std::optional<http_reply> check_head(const http_request& head) override {
        if (path_of(head.target) == "/early") {
            http_reply r = opendms::central::json_message(401, "Unauthenticated.");
            r.route = "/api/ingest";
            return r;
        }
        return std::nullopt;
    }

    http_reply handle(const http_request& request) override {
        handled.fetch_add(1);
        const std::string path = path_of(request.target);
        if (path == "/throw") throw std::runtime_error("internal detail 42");
        if (path == "/slow") {
            slow_started = true;
            std::this_thread::sleep_for(500ms);
        }
        http_reply r;
        r.body = "{\"bytes\":" + std::to_string(request.body.size()) + "}";
        if (path == "/big") {
            r.body = "{\"results\":[";
            for (int i = 0; i < 200; ++i)
                r.body += (i ? "," : "") + std::string(R"({"status":"stored","id":)") +
                          std::to_string(1000 + i) + "}";
            r.body += "]}";
        }
        r.route = "/api/ingest";
        r.node = "node-a";
        return r;
    }

    std::atomic<int> handled{0};
    std::atomic<int> late_answers{0};  // answers given from a thread of its own, done
    std::atomic<bool> slow_started{false};
    std::mutex late_mutex;
    std::vector<std::thread> late;
};

server_options test_options() {
    server_options o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 2;
    o.workers = 2;
    o.access_log = false;
    return o;
}

// A started server running on its own thread; stopped and joined by the destructor.
struct test_server {
    explicit test_server(server_options o = test_options()) : server(std::move(o), handler, stats) {
        const opendms::status s = server.start();
        INFO(s.to_string());
        REQUIRE(s.is_ok());
        runner = std::async(std::launch::async, [this] { server.run(); });
    }
    ~test_server() {
        server.stop();
        runner.wait();
    }
    /// Stops and reports whether run() returned within a (generous) minute.
    bool stop_and_wait() {
        server.stop();
        return runner.wait_for(60s) == std::future_status::ready;
    }
    unsigned short port() const { return server.port(); }

    fake_handler handler;
    metrics stats;
    http_server server;
    std::future<void> runner;
};

struct response {
    unsigned status = 0;
    std::string head;
    std::string body;

    std::string header(const std::string& name) const {
        std::istringstream lines(head);
        std::string line;
        while (std::getline(lines, line)) {
            const auto colon = line.find(':');
            if (colon == std::string::npos || colon != name.size()) continue;
            if (strncasecmp(line.c_str(), name.c_str(), name.size()) != 0) continue;
            std::string value = line.substr(colon + 1);
            while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
            while (!value.empty() && (value.back() == '\r' || value.back() == ' '))
                value.pop_back();
            return value;
        }
        return "";
    }
};

// A blocking TCP client with a receive timeout, so a broken server fails a test instead of
// hanging it.
class raw_client {
public:
    explicit raw_client(unsigned short port) { REQUIRE(open(port)); }
    /// For threads other than the test's own, where Catch's assertions must not run:
    /// connects without asserting; nullptr when it could not.
    static std::unique_ptr<raw_client> connect_quietly(unsigned short port) {
        std::unique_ptr<raw_client> c(new raw_client());
        if (!c->open(port)) return nullptr;
        return c;
    }
    ~raw_client() {
        if (fd_ >= 0) ::close(fd_);
    }
    raw_client(const raw_client&) = delete;
    raw_client& operator=(const raw_client&) = delete;

    bool send(const std::string& data) {
        std::size_t sent = 0;
        while (sent < data.size()) {
            const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    /// One response (Content-Length framed), or nullopt when the connection ends first.
    std::optional<response> read_response() {
        std::size_t head_end;
        while ((head_end = pending_.find("\r\n\r\n")) == std::string::npos) {
            if (!fill()) return std::nullopt;
        }
        response r;
        r.head = pending_.substr(0, head_end + 2);
        if (r.head.compare(0, 9, "HTTP/1.1 ") != 0 && r.head.compare(0, 9, "HTTP/1.0 ") != 0) {
            return std::nullopt;
        }
        r.status = static_cast<unsigned>(std::stoul(r.head.substr(9, 3)));
        const std::string length = r.header("Content-Length");
        const std::size_t body_length = length.empty() ? 0 : std::stoul(length);
        while (pending_.size() < head_end + 4 + body_length) {
            if (!fill()) return std::nullopt;
        }
        r.body = pending_.substr(head_end + 4, body_length);
        pending_.erase(0, head_end + 4 + body_length);
        return r;
    }

    /// True when the server closes (or resets) the connection within the receive timeout.
    bool closed_by_server() {
        for (;;) {
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n == 0) return true;
            if (n < 0) return errno == ECONNRESET;
            pending_.append(buf, static_cast<std::size_t>(n));
        }
    }

    /// Whether bytes (or an end of stream) can be read right now.
    bool readable_now() {
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 0) > 0;
    }

    const std::string& pending() const { return pending_; }

private:
    raw_client() = default;

    bool open(unsigned short port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) return false;
        timeval tv{10, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }

    bool fill() {
        char buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return false;
        pending_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int fd_ = -1;
    std::string pending_;
};

std::string get(const std::string& target, const std::string& extra = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

std::string post(const std::string& target, const std::string& body) {
    return "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::optional<response> round_trip(raw_client& c, const std::string& request) {
    if (!c.send(request)) return std::nullopt;
    return c.read_response();
}

// Polls a condition the server reaches asynchronously; false after a generous minute.
template <typename Condition>
bool eventually(Condition done) {
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (!done()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

}  // namespace

TEST_CASE("a keep-alive connection serves three requests", "[integration]") {
    test_server s;
    raw_client c(s.port());
    for (int i = 0; i < 3; ++i) {
        auto r = round_trip(c, post("/echo", "{\"n\":" + std::to_string(i) + "}"));
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "{\"bytes\":7}");
        CHECK(r->header("Server") == "opendms-central");
        CHECK(r->header("Content-Type") == "application/json");
        CHECK(r->header("Content-Length") == "11");
        CHECK(r->header("Connection") != "close");
    }
    CHECK(s.handler.handled == 3);
    // Counted once the write completes, which may be just after the client has read it.
    CHECK(eventually([&] { return s.stats.requests("/api/ingest", 200) == 3; }));
    CHECK(s.stats.connections_open() == 1);
}

TEST_CASE("an HTTP/1.0 request without keep-alive is answered and closed", "[integration]") {
    test_server s;
    raw_client c(s.port());
    auto r = round_trip(c, "GET /echo HTTP/1.0\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->head.compare(0, 8, "HTTP/1.0") == 0);
    CHECK(c.closed_by_server());
}

TEST_CASE("a client asking Connection: close gets its answer and the connection closes",
          "[integration]") {
    test_server s;
    raw_client c(s.port());
    auto r = round_trip(c, get("/echo", "Connection: close\r\n"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Connection") == "close");
    CHECK(c.closed_by_server());
}

TEST_CASE("a 20 KiB header is answered 431 and the connection closed", "[integration]") {
    test_server s;
    raw_client c(s.port());
    auto r = round_trip(c, get("/echo", "X-Filler: " + std::string(20 * 1024, 'a') + "\r\n"));
    REQUIRE(r);
    CHECK(r->status == 431);
    CHECK(r->header("Content-Type") == "application/json");
    CHECK(r->body.find("\"message\"") != std::string::npos);
    CHECK(c.closed_by_server());
    CHECK(s.handler.handled == 0);
    CHECK(s.stats.requests("other", 431) == 1);
}

TEST_CASE("a body announced over the limit is answered 413 without being read", "[integration]") {
    server_options o = test_options();
    o.limits.max_body_bytes = 1024;
    test_server s(o);
    raw_client c(s.port());
    // Only the head is sent: a server that waited for the body would never answer 413.
    auto r = round_trip(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(r->body.find("\"message\"") != std::string::npos);
    CHECK(c.closed_by_server());
    CHECK(s.handler.handled == 0);
}

TEST_CASE("a chunked body over the limit is answered 413", "[integration]") {
    server_options o = test_options();
    o.limits.max_body_bytes = 1024;
    test_server s(o);
    raw_client c(s.port());
    std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) request += "3e8\r\n" + std::string(1000, 'x') + "\r\n";
    request += "0\r\n\r\n";
    auto r = round_trip(c, request);
    REQUIRE(r);
    CHECK(r->status == 413);
    CHECK(c.closed_by_server());
    CHECK(s.handler.handled == 0);
}

TEST_CASE("a chunked body within the limit reaches the handler whole", "[integration]") {
    server_options o = test_options();
    o.limits.max_body_bytes = 4096;
    test_server s(o);
    raw_client c(s.port());
    std::string request = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) request += "3e8\r\n" + std::string(1000, 'x') + "\r\n";
    request += "0\r\n\r\n";
    auto r = round_trip(c, request);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "{\"bytes\":3000}");
}

TEST_CASE("an Expect: 100-continue request gets its interim answer and is served",
          "[integration]") {
    test_server s;
    raw_client c(s.port());
    REQUIRE(
        c.send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
               "Content-Length: 5\r\n\r\n"));
    auto interim = c.read_response();
    REQUIRE(interim);
    CHECK(interim->status == 100);
    auto r = round_trip(c, "hello");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "{\"bytes\":5}");
}

TEST_CASE("a reply from check_head leaves the body unread and closes", "[integration]") {
    test_server s;
    raw_client c(s.port());
    auto r = round_trip(c, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 50000\r\n\r\n");
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(r->body == "{\"message\":\"Unauthenticated.\"}");
    CHECK(r->header("Connection") == "close");
    CHECK(c.closed_by_server());
    CHECK(s.handler.handled == 0);
    CHECK(s.stats.requests("/api/ingest", 401) == 1);
}

TEST_CASE("a client sending one byte per 200 ms is cut off while others are served",
          "[integration]") {
    server_options o = test_options();
    o.limits.request_timeout = 1000ms;
    test_server s(o);
    const std::string request = post("/echo", std::string(40, 'x'));  // ~130 bytes: 26 s
    std::atomic<std::size_t> sent{0};
    std::string answer;
    bool cut_off = false;
    std::thread slow([&] {
        raw_client c(s.port());
        for (std::size_t i = 0; i < request.size(); ++i) {
            if (c.readable_now()) {
                cut_off = true;
                break;
            }
            if (!c.send(request.substr(i, 1))) {
                cut_off = true;
                break;
            }
            sent = i + 1;
            std::this_thread::sleep_for(200ms);
        }
        c.closed_by_server();
        answer = c.pending();
    });
    REQUIRE(eventually([&] { return sent >= 2; }));
    {
        raw_client other(s.port());
        auto r = round_trip(other, get("/echo"));
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    slow.join();
    CHECK(cut_off);
    CHECK(sent < request.size());
    CHECK(answer.compare(0, 12, "HTTP/1.1 408") == 0);
    CHECK(s.handler.handled == 1);  // only the other client's request
}

TEST_CASE("clients that keep trickling bytes are all cut off at the request timeout",
          "[integration]") {
    // The deadline cancels the pending read. A cancel that lands between two reads of
    // Beast's composed read (one read done, the next not yet started) finds nothing to
    // cancel; the deadline must repeat it, or such a client is never cut off. Bytes that
    // arrive every millisecond on 16 connections at once make that gap frequent.
    server_options o = test_options();
    o.limits.request_timeout = 200ms;
    test_server s(o);
    const std::string head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             "Content-Length: 1000000\r\n\r\n";
    constexpr int clients = 16;
    constexpr int rounds = 6;
    std::atomic<int> cut_off{0};
    std::atomic<int> answered_408{0};
    std::atomic<int> escaped{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&] {
            for (int r = 0; r < rounds; ++r) {
                auto client = raw_client::connect_quietly(s.port());
                if (!client || !client->send(head)) continue;
                const auto give_up = std::chrono::steady_clock::now() + 3s;
                bool cut = false;
                while (std::chrono::steady_clock::now() < give_up) {
                    if (client->readable_now() || !client->send("x")) {
                        cut = true;
                        break;
                    }
                    std::this_thread::sleep_for(1ms);
                }
                if (!cut) {
                    ++escaped;
                    continue;
                }
                ++cut_off;
                client->closed_by_server();
                if (client->pending().compare(0, 12, "HTTP/1.1 408") == 0) ++answered_408;
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(escaped == 0);
    CHECK(cut_off == clients * rounds);
    CHECK(answered_408 == clients * rounds);
    CHECK(s.handler.handled == 0);
}

TEST_CASE("an idle keep-alive connection is closed after the idle timeout", "[integration]") {
    server_options o = test_options();
    o.limits.idle_timeout = 300ms;
    test_server s(o);
    raw_client c(s.port());
    auto r = round_trip(c, get("/echo"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(c.closed_by_server());
    CHECK(c.pending().empty());
    CHECK(eventually([&] { return s.stats.connections_open() == 0; }));
}

TEST_CASE("the connection over max_connections gets a 503 and is closed", "[integration]") {
    server_options o = test_options();
    o.limits.max_connections = 2;
    test_server s(o);
    auto first = std::make_unique<raw_client>(s.port());
    raw_client second(s.port());
    // Both are served, so both are sessions before the third connects.
    REQUIRE(round_trip(*first, get("/echo")));
    REQUIRE(round_trip(second, get("/echo")));
    {
        raw_client third(s.port());
        auto r = round_trip(third, get("/echo"));
        REQUIRE(r);
        CHECK(r->status == 503);
        CHECK(r->header("Content-Type") == "application/json");
        CHECK(r->body.find("\"message\"") != std::string::npos);
        CHECK(third.closed_by_server());
    }
    CHECK(s.handler.handled == 2);
    CHECK(s.stats.requests("other", 503) == 1);
    first.reset();  // a place frees up
    REQUIRE(eventually([&] { return s.stats.connections_open() <= 1; }));
    raw_client fourth(s.port());
    auto r = round_trip(fourth, get("/echo"));
    REQUIRE(r);
    CHECK(r->status == 200);
}

TEST_CASE("malformed HTTP is answered 400 and the connection closed", "[integration]") {
    test_server s;
    const std::vector<std::string> bad = {
        "THIS IS NOT HTTP\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "GET /echo HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (const std::string& request : bad) {
        INFO(request);
        raw_client c(s.port());
        auto r = round_trip(c, request);
        REQUIRE(r);
        CHECK(r->status == 400);
        CHECK(r->body.find("\"message\"") != std::string::npos);
        CHECK(c.closed_by_server());
    }
    CHECK(s.handler.handled == 0);
    raw_client good(s.port());
    auto r = round_trip(good, get("/echo"));
    REQUIRE(r);
    CHECK(r->status == 200);
}

TEST_CASE("a throwing handler gives 500 and the connection goes on", "[integration]") {
    test_server s;
    raw_client c(s.port());
    auto r = round_trip(c, post("/throw", "{}"));
    REQUIRE(r);
    CHECK(r->status == 500);
    CHECK(r->body == "{\"message\":\"Server Error\"}");
    CHECK(r->head.find("internal detail") == std::string::npos);
    auto next = round_trip(c, post("/echo", "{}"));
    REQUIRE(next);
    CHECK(next->status == 200);
    CHECK(s.stats.requests("other", 500) == 1);
}

TEST_CASE("stop() lets an in-flight request finish and closes idle connections", "[integration]") {
    test_server s;
    raw_client idle(s.port());
    REQUIRE(round_trip(idle, get("/echo")));
    raw_client busy(s.port());
    REQUIRE(busy.send(post("/slow", "{}")));
    REQUIRE(eventually([&] { return s.handler.slow_started.load(); }));
    CHECK(s.stop_and_wait());
    auto r = busy.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Connection") == "close");
    CHECK(busy.closed_by_server());
    CHECK(idle.closed_by_server());
    CHECK(s.stats.connections_open() == 0);
}

TEST_CASE("stop() gives up on a handler after the shutdown timeout", "[integration]") {
    server_options o = test_options();
    o.limits.shutdown_timeout = 100ms;  // shorter than /slow's 500 ms
    test_server s(o);
    raw_client busy(s.port());
    REQUIRE(busy.send(post("/slow", "{}")));
    REQUIRE(eventually([&] { return s.handler.slow_started.load(); }));
    CHECK(s.stop_and_wait());
}

// A server with one worker thread, kept busy by a /slow request on `busy`.
struct one_busy_worker {
    explicit one_busy_worker(server_options o) : s(with_one_worker(std::move(o))), busy(s.port()) {
        REQUIRE(busy.send(post("/slow", "{}")));
        REQUIRE(eventually([&] { return s.handler.slow_started.load(); }));
    }
    static server_options with_one_worker(server_options o) {
        o.workers = 1;
        return o;
    }
    test_server s;
    raw_client busy;
};

TEST_CASE("a request the handler runs inline is answered while every worker is busy",
          "[integration]") {
    one_busy_worker w(test_options());
    test_server& s = w.s;
    raw_client& busy = w.busy;
    raw_client other(s.port());
    const auto start = std::chrono::steady_clock::now();
    auto r = round_trip(other, post("/inline/echo", "{\"a\":1}"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"bytes":7})");
    CHECK(std::chrono::steady_clock::now() - start < 400ms);  // not queued behind /slow
    auto later = round_trip(other, post("/inline/async", "{}"));  // answered from elsewhere
    REQUIRE(later);
    CHECK(later->body == R"({"late":true})");
    auto slow = busy.read_response();
    REQUIRE(slow);
    CHECK(slow->status == 200);
    CHECK(s.server.pending_requests() == 0);
}

TEST_CASE("after a forced stop the server waits for an answer due from the handler's thread",
          "[integration]") {
    // An inline request handed to a thread of the handler's own (the store group's) is
    // answered after the shutdown timeout; the answer posts into the server, so the
    // server must outlive it (ASan would see the use after free).
    fake_handler handler;
    metrics stats;
    {
        server_options o = test_options();
        o.limits.shutdown_timeout = 50ms;  // shorter than /inline/async's 300 ms
        http_server server(o, handler, stats);
        REQUIRE(server.start().is_ok());
        auto runner = std::async(std::launch::async, [&server] { server.run(); });
        raw_client c(server.port());
        REQUIRE(c.send(post("/inline/async", "{}")));
        REQUIRE(eventually([&] { return handler.handled.load() == 1; }));
        server.stop();
        CHECK(runner.wait_for(60s) == std::future_status::ready);
        CHECK(handler.late_answers.load() == 0);  // run() returned before the answer
    }  // ~http_server
    CHECK(handler.late_answers.load() == 1);  // the destructor waited for it
}

TEST_CASE("start() reports a port in use", "[integration]") {
    test_server first;
    fake_handler handler;
    metrics stats;
    server_options o = test_options();
    o.port = first.port();
    http_server second(o, handler, stats);
    const opendms::status st = second.start();
    CHECK(st.code() == errc::unavailable);
    CHECK(st.message().find("http.listen: 127.0.0.1:" + std::to_string(first.port())) == 0);
}

TEST_CASE("start() reports an unreadable TLS file", "[integration]") {
    fake_handler handler;
    metrics stats;
    server_options o = test_options();
    o.tls_cert_file = "/nonexistent/cert.pem";
    o.tls_key_file = "/nonexistent/key.pem";
    http_server server(o, handler, stats);
    const opendms::status st = server.start();
    CHECK(st.code() == errc::invalid_argument);
    CHECK(st.message().find("/nonexistent/cert.pem") != std::string::npos);
}

// Sends this process's stderr to a file until destroyed.
class stderr_capture {
public:
    explicit stderr_capture(const std::string& file) {
        std::fflush(stderr);
        saved_ = ::dup(2);
        const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        REQUIRE(fd >= 0);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~stderr_capture() {
        ::dup2(saved_, 2);
        ::close(saved_);
    }
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;

private:
    int saved_ = -1;
};

TEST_CASE("the access log names the request but neither its headers nor its query",
          "[integration]") {
    opendms::test::temp_dir dir;
    const std::string log_file = dir.file("stderr.log");
    server_options o = test_options();
    o.access_log = true;
    unsigned status = 0;
    {
        stderr_capture capture(log_file);
        test_server s(o);  // stopped and joined before the capture ends: the line is out
        raw_client c(s.port());
        auto r = round_trip(
            c, get("/echo?token=query-secret", "Authorization: Bearer header-secret\r\n"));
        if (r) status = r->status;
    }
    CHECK(status == 200);
    std::ifstream in(log_file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(text);
    CHECK(text.find("\"GET /echo\" 200 11 ") != std::string::npos);
    CHECK(text.find("node=node-a") != std::string::npos);
    CHECK(text.find("header-secret") == std::string::npos);
    CHECK(text.find("query-secret") == std::string::npos);
}

TEST_CASE("256 idle connections do not keep a new request from being answered", "[integration]") {
    test_server s;
    std::vector<std::unique_ptr<raw_client>> idle;
    for (int i = 0; i < 256; ++i) idle.push_back(std::make_unique<raw_client>(s.port()));
    REQUIRE(eventually([&] { return s.stats.connections_open() >= 256; }));
    raw_client c(s.port());
    auto r = round_trip(c, get("/echo"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(s.stats.connections_open() == 257);
}

// ---- TLS ----

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

struct certificate {
    opendms::test::temp_dir dir;
    std::string cert = dir.file("cert.pem");
    std::string key = dir.file("key.pem");

    certificate() {
        const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout '" + key +
                                "' -out '" + cert +
                                "' -subj /CN=127.0.0.1 -addext "
                                "subjectAltName=IP:127.0.0.1 -days 1 >/dev/null 2>&1";
        REQUIRE(std::system(cmd.c_str()) == 0);
    }
};

// One HTTPS GET, verifying the server's certificate against `ca_file` and the name
// 127.0.0.1. Throws boost::system::system_error on any failure.
unsigned https_get(unsigned short port, const std::string& ca_file) {
    asio::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_verify_mode(ssl::verify_peer);
    if (!ca_file.empty()) ctx.load_verify_file(ca_file);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    stream.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    auto& tcp = beast::get_lowest_layer(stream);
    tcp.connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval tv{10, 0};
    ::setsockopt(tcp.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    stream.handshake(ssl::stream_base::client);
    http::request<http::empty_body> req{http::verb::get, "/echo", 11};
    req.set(http::field::host, "127.0.0.1");
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return res.result_int();
}

}  // namespace

TEST_CASE("TLS: a verified HTTPS request is served and plain HTTP fails cleanly", "[integration]") {
    certificate c;
    server_options o = test_options();
    o.tls_cert_file = c.cert;
    o.tls_key_file = c.key;
    test_server s(o);

    CHECK(https_get(s.port(), c.cert) == 200);

    {
        raw_client plain(s.port());
        REQUIRE(plain.send(get("/echo")));
        CHECK(plain.closed_by_server());
        CHECK(plain.pending().find("HTTP/1.1 200") == std::string::npos);
    }
    // A client that does not trust the certificate refuses it: verification is real.
    CHECK_THROWS_AS(https_get(s.port(), ""), boost::system::system_error);

    CHECK(https_get(s.port(), c.cert) == 200);
    CHECK(s.handler.handled == 2);
}

TEST_CASE("a reply given later from another thread reaches its connection", "[integration]") {
    test_server s;
    raw_client c(s.port());
    auto r = round_trip(c, get("/async"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"late":true})");
    auto next = round_trip(c, get("/echo"));  // the connection goes on
    REQUIRE(next);
    CHECK(next->status == 200);
    CHECK(s.server.pending_requests() == 0);
}

TEST_CASE("a JSON reply over 1 KiB is gzipped for a client that accepts gzip", "[integration]") {
    test_server s;
    raw_client c(s.port());
    auto plain = round_trip(c, get("/big"));
    REQUIRE(plain);
    CHECK(plain->status == 200);
    CHECK(plain->header("Content-Encoding").empty());
    CHECK(plain->header("Vary") == "Accept-Encoding");
    REQUIRE(plain->body.size() > 1024);
    auto zipped = round_trip(c, get("/big", "Accept-Encoding: gzip, deflate\r\n"));
    REQUIRE(zipped);
    CHECK(zipped->status == 200);
    CHECK(zipped->header("Content-Encoding") == "gzip");
    CHECK(zipped->header("Vary") == "Accept-Encoding");
    CHECK(zipped->header("Content-Type") == "application/json");
    CHECK(zipped->body.size() < plain->body.size() / 4);
    std::string inflated;
    REQUIRE(opendms::gzip_decompress(zipped->body, inflated, 1 << 20).error ==
            opendms::gunzip_error::none);
    CHECK(inflated == plain->body);
    // Small replies stay as they are, whatever the client accepts.
    auto small = round_trip(c, get("/echo", "Accept-Encoding: gzip\r\n"));
    REQUIRE(small);
    CHECK(small->header("Content-Encoding").empty());
    CHECK(small->header("Vary").empty());
    CHECK(small->body == R"({"bytes":0})");
}

TEST_CASE("a request past max_pending_requests gets 503 with Retry-After at once",
          "[integration]") {
    server_options o = test_options();
    o.limits.max_pending_requests = 1;
    o.retry_after_s = 9;
    one_busy_worker w(o);
    test_server& s = w.s;
    raw_client& busy = w.busy;
    raw_client other(s.port());
    const auto start = std::chrono::steady_clock::now();
    auto r = round_trip(other, post("/echo", "{}"));
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(r->header("Retry-After") == "9");
    CHECK(r->body == R"({"message":"The server is busy; retry later."})");
    CHECK(std::chrono::steady_clock::now() - start < 400ms);  // not queued behind /slow
    auto slow = busy.read_response();
    REQUIRE(slow);
    CHECK(slow->status == 200);
    auto again = round_trip(other, post("/echo", "{}"));  // the same connection, served now
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(s.handler.handled.load() == 2);
}
