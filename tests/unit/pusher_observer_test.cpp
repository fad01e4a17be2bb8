// The pusher's request observer (set_request_observer, the field node's push latency
// histogram): called once per HTTP request, answered or not, in both wire forms, with the
// request's duration.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/field/pusher.hpp"
#include "test_servers.hpp"

using namespace opendms;
using namespace opendms::field;

namespace {

/// Answers after `delay`: 200 with `body`, or a network error when `fail`.
class slow_transport final : public http_transport {
public:
    std::chrono::milliseconds delay{30};
    std::string body = "{}";
    bool fail = false;
    int requests = 0;

    result<http_answer> post(const http_post&) override {
        ++requests;
        std::this_thread::sleep_for(delay);
        if (fail) return result<http_answer>(errc::unavailable, "https: connection refused");
        http_answer a;
        a.status = 200;
        a.body = body;
        return a;
    }
    void close() override {}
    void cancel() override {}
    void reset_cancel() override {}
    wire_counts counts() const override { return {}; }
};

struct observed {
    std::mutex mutex;
    std::vector<double> seconds;
    void operator()(double s) {
        std::lock_guard<std::mutex> lock(mutex);
        seconds.push_back(s);
    }
};

std::unique_ptr<db::connection> migrated(const test::temp_dir& dir, int records) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = dir.file("field.sqlite");
    auto c = db::open(o);
    REQUIRE(c);
    db::migrator m(**c);
    REQUIRE(m.migrate());
    ingest_options io;
    io.mode = config::deployment_mode::hybrid;
    io.node_id = "node-1";
    ingest_store store(**c, real_clock(), io);
    for (int i = 0; i < records; ++i) {
        REQUIRE(store.ingest("hub/event", R"({"eventType":"sos","MessageID":"Q)" + std::to_string(i) +
                                              R"(","payload":{"hops":1,"duckType":2,"DeviceID":"DUCK0001","Message":"m)" +
                                              std::to_string(i) + R"("}})"));
    }
    return std::move(*c);
}

push_options options_for(push_protocol protocol) {
    push_options o;
    o.enabled = true;
    o.token = "tok";
    o.protocol = protocol;
    o.client.endpoint = *parse_endpoint("https://central.example.org");
    return o;
}

}  // namespace

TEST_CASE("the request observer sees every single-record request with its duration", "[unit]") {
    test::temp_dir dir;
    auto c = migrated(dir, 3);
    manual_clock clk;
    slow_transport transport;
    pusher p(options_for(push_protocol::single), *c, clk, transport, [] { return 0.5; });
    observed seen;
    p.set_request_observer([&seen](double s) { seen(s); });
    REQUIRE(p.open());
    REQUIRE(p.step());
    CHECK(transport.requests == 3);
    REQUIRE(seen.seconds.size() == 3);
    for (double s : seen.seconds) {
        CHECK(s >= 0.029);
        CHECK(s < 5);
    }
}

TEST_CASE("the request observer sees batch requests and failed ones", "[unit]") {
    test::temp_dir dir;
    auto c = migrated(dir, 2);
    manual_clock clk;
    slow_transport transport;
    transport.fail = true;
    pusher p(options_for(push_protocol::batch), *c, clk, transport, [] { return 0.5; });
    observed seen;
    p.set_request_observer([&seen](double s) { seen(s); });
    REQUIRE(p.open());
    REQUIRE(p.step());
    CHECK(transport.requests == 1);
    REQUIRE(seen.seconds.size() == 1);  // a request without an answer is timed too
    CHECK(seen.seconds[0] >= 0.029);

    transport.fail = false;
    transport.body = R"({"message":"Batch processed","results":[{"status":"stored","id":1},{"status":"stored","id":2}]})";
    clk.advance_s(3600);  // past the backoff
    REQUIRE(p.step());
    CHECK(transport.requests == 2);
    CHECK(seen.seconds.size() == 2);
    CHECK(p.stats().delivered == 2);
}

TEST_CASE("without an observer the pusher works as before", "[unit]") {
    test::temp_dir dir;
    auto c = migrated(dir, 1);
    manual_clock clk;
    slow_transport transport;
    transport.delay = std::chrono::milliseconds(0);
    pusher p(options_for(push_protocol::single), *c, clk, transport, [] { return 0.5; });
    REQUIRE(p.open());
    REQUIRE(p.step());
    CHECK(p.stats().delivered == 1);
}
