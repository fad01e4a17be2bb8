// field_metrics: FIELD_METRICS_LISTEN (loopback only), the Prometheus text, the latency
// histogram, and the listener over a real loopback socket with a fixed sampler.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "central_process.hpp"
#include "http_test_client.hpp"
#include "opendms/field/field_metrics.hpp"
#include "opendms/field/field_settings.hpp"

using namespace opendms;
using field::latency_histogram;
using field::metrics_options;
using field::metrics_sample;
using field::metrics_server;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos ||
           text.compare(0, line.size() + 1, line + "\n") == 0;
}

metrics_options load(const std::string& value, std::vector<config::problem>& problems) {
    config::env_map env = config::env_map::from({}, {{"FIELD_METRICS_LISTEN", value}});
    config::setting_reader r(env, problems);
    return field::load_metrics_options(r);
}

}  // namespace

TEST_CASE("FIELD_METRICS_LISTEN: off by default, loopback addresses only", "[unit]") {
    std::vector<config::problem> problems;
    {
        config::env_map env = config::env_map::from({}, {});
        config::setting_reader r(env, problems);
        CHECK_FALSE(field::load_metrics_options(r).enabled());
    }
    CHECK_FALSE(load("", problems).enabled());
    REQUIRE(problems.empty());

    const std::map<std::string, std::pair<std::string, unsigned short>> good = {
        {"127.0.0.1:9101", {"127.0.0.1", 9101}},
        {"127.0.0.2:1", {"127.0.0.2", 1}},
        {"localhost:9101", {"127.0.0.1", 9101}},
        {"[::1]:9101", {"::1", 9101}},
        {"127.0.0.1:0", {"127.0.0.1", 0}},
    };
    for (const auto& [text, want] : good) {
        INFO(text);
        metrics_options o = load(text, problems);
        CHECK(problems.empty());
        CHECK(o.enabled());
        CHECK(o.host == want.first);
        CHECK(o.port == want.second);
    }
    const std::map<std::string, std::string> bad = {
        {"0.0.0.0:9101", "not a loopback address"},
        {"192.168.1.10:9101", "not a loopback address"},
        {"[::]:9101", "not a loopback address"},
        {"gateway.local:9101", "not an IP address"},
        {"127.0.0.1", "not an address and port"},
        {"127.0.0.1:65536", "not an address and port"},
        {"127.0.0.1:http", "not an address and port"},
        {"::1:9101", "not an address and port"},
    };
    for (const auto& [text, why] : bad) {
        INFO(text);
        problems.clear();
        metrics_options o = load(text, problems);
        CHECK_FALSE(o.enabled());
        REQUIRE(problems.size() == 1);
        CHECK(problems[0].variable == "FIELD_METRICS_LISTEN");
        CHECK(problems[0].message.find(why) != std::string::npos);
    }
}

TEST_CASE("check-config shows FIELD_METRICS_LISTEN", "[unit]") {
    config::env_map env = config::env_map::from({}, {{"FIELD_METRICS_LISTEN", "[::1]:9101"}});
    std::vector<config::problem> problems;
    config::settings common = config::load_settings(env, problems);
    field::field_settings s = field::load_field_settings(env, common, problems);
    REQUIRE(problems.empty());
    const auto lines = field::describe(s, env);
    CHECK(std::find(lines.begin(), lines.end(), "FIELD_METRICS_LISTEN=[::1]:9101 (process environment)") !=
          lines.end());
}

TEST_CASE("the latency histogram puts each duration in its bucket and keeps sum and count", "[unit]") {
    latency_histogram h;
    h.observe(0.004);  // <= 0.005
    h.observe(0.005);  // <= 0.005 (bounds are inclusive, as Prometheus's le)
    h.observe(0.3);    // <= 0.5
    h.observe(100);    // only +Inf
    h.observe(-1);     // a clock step: 0
    const auto s = h.snapshot();
    CHECK(s.buckets[0] == 3);
    CHECK(s.buckets[6] == 1);
    CHECK(s.count == 5);
    CHECK(s.sum == Approx(100.309));
    std::uint64_t in_buckets = 0;
    for (auto b : s.buckets) in_buckets += b;
    CHECK(in_buckets == 4);
}

TEST_CASE("the latency histogram counts every observation from several threads", "[unit]") {
    latency_histogram h;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&h] {
            for (int i = 0; i < 10000; ++i) h.observe(0.02);
        });
    }
    for (auto& t : threads) t.join();
    const auto s = h.snapshot();
    CHECK(s.count == 40000);
    CHECK(s.buckets[2] == 40000);
    CHECK(s.sum == Approx(800.0));
}

TEST_CASE("the exposition has every series the operator's guide lists, with their values", "[unit]") {
    metrics_sample m;
    m.daemon = {120, 7, 3, 1, 2};
    field::field_status st;
    st.pending = 42;
    st.synced = 1000;
    st.not_applicable = 0;
    st.live = 2;
    st.backlog = 40;
    st.parked = 1;
    st.quarantined = 5;
    st.duplicates = 9;
    st.oldest_pending_age_seconds = 3600;
    st.last_success_at = 1764028800;
    st.consecutive_failures = 4;
    st.auth_alarm_since = 1764028000;
    m.database = st;
    m.hybrid = true;
    m.push_requests = 11;
    m.push_delivered = 1000;
    m.push_parked = 1;
    m.push_failed = 4;
    latency_histogram h;
    h.observe(0.02);
    h.observe(0.2);
    h.observe(45);
    m.latency = h.snapshot();

    const std::string text = field::render_metrics(m);
    INFO(text);
    for (const char* line : {
             "opendms_field_messages_total{outcome=\"stored\"} 120",
             "opendms_field_messages_total{outcome=\"mesh_duplicate\"} 7",
             "opendms_field_messages_total{outcome=\"quarantined\"} 3",
             "opendms_field_mqtt_connections{state=\"subscribed\"} 1",
             "opendms_field_mqtt_connections{state=\"configured\"} 2",
             "opendms_field_database_up 1",
             "opendms_field_records{sync=\"pending\"} 42",
             "opendms_field_records{sync=\"synced\"} 1000",
             "opendms_field_outbox_records{lane=\"live\"} 2",
             "opendms_field_outbox_records{lane=\"backlog\"} 40",
             "opendms_field_outbox_records{lane=\"parked\"} 1",
             "opendms_field_quarantine_records 5",
             "opendms_field_mesh_duplicate_records 9",
             "opendms_field_oldest_pending_age_seconds 3600",
             "opendms_field_push_last_success_timestamp_seconds 1764028800",
             "opendms_field_push_consecutive_failures 4",
             "opendms_field_push_auth_alarm 1",
             "opendms_field_push_requests_total 11",
             "opendms_field_push_delivered_total 1000",
             "opendms_field_push_parked_total 1",
             "opendms_field_push_failed_attempts_total 4",
             "opendms_field_push_request_duration_seconds_bucket{le=\"0.005\"} 0",
             "opendms_field_push_request_duration_seconds_bucket{le=\"0.025\"} 1",
             "opendms_field_push_request_duration_seconds_bucket{le=\"0.25\"} 2",
             "opendms_field_push_request_duration_seconds_bucket{le=\"30\"} 2",
             "opendms_field_push_request_duration_seconds_bucket{le=\"+Inf\"} 3",
             "opendms_field_push_request_duration_seconds_count 3",
             "opendms_field_push_request_duration_seconds_sum 45.22",
             "# TYPE opendms_field_push_request_duration_seconds histogram",
             "# TYPE opendms_field_messages_total counter",
             "# TYPE opendms_field_oldest_pending_age_seconds gauge",
         }) {
        CHECK(has_line(text, line));
    }
    // Every sample line is "name{labels} value" or "name value"; one TYPE per family.
    std::size_t types = 0;
    std::size_t pos = 0;
    while ((pos = text.find("# TYPE ", pos)) != std::string::npos) {
        ++types;
        ++pos;
    }
    CHECK(types == 16);
}

TEST_CASE("without a database read or in offline mode, the dependent series are left out", "[unit]") {
    metrics_sample m;
    m.daemon = {1, 0, 0, 1, 1};
    const std::string text = field::render_metrics(m);
    CHECK(has_line(text, "opendms_field_database_up 0"));
    CHECK(has_line(text, "opendms_field_messages_total{outcome=\"stored\"} 1"));
    CHECK(text.find("opendms_field_records") == std::string::npos);
    CHECK(text.find("opendms_field_push_") == std::string::npos);
    m.database = field::field_status{};
    const std::string offline = field::render_metrics(m);
    CHECK(has_line(offline, "opendms_field_oldest_pending_age_seconds 0"));
    CHECK(has_line(offline, "opendms_field_push_last_success_timestamp_seconds 0"));
    CHECK(offline.find("opendms_field_push_requests_total") == std::string::npos);
}

TEST_CASE("the listener answers GET /metrics, 404 elsewhere, 405 to other methods, keeps alive",
          "[unit]") {
    metrics_options o;
    o.host = "127.0.0.1";
    o.port = 0;
    std::atomic<int> scrapes{0};
    metrics_server server(o, [&] {
        metrics_sample m;
        m.daemon.stored = static_cast<std::uint64_t>(++scrapes);
        return m;
    });
    REQUIRE(server.start());
    REQUIRE(server.port() != 0);

    auto r = test::http_request_once(server.port(), "GET", "/metrics", {}, "", std::chrono::seconds(5));
    INFO(r.describe());
    REQUIRE(r.ok());
    CHECK(r.status() == 200);
    CHECK(r.response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(has_line(r.response.body, "opendms_field_messages_total{outcome=\"stored\"} 1"));

    CHECK(test::http_request_once(server.port(), "GET", "/", {}, "").status() == 404);
    CHECK(test::http_request_once(server.port(), "GET", "/metricsx", {}, "").status() == 404);
    auto post = test::http_request_once(server.port(), "POST", "/metrics", {}, "");
    CHECK(post.status() == 405);
    CHECK(post.response.header("Allow") == "GET, HEAD");

    // Keep-alive: two scrapes on one connection, each sampled afresh.
    test::http_connection c(server.port(), std::chrono::seconds(5));
    auto a = c.request("GET", "/metrics?x=1", {}, "");
    auto b = c.request("GET", "/metrics", {}, "");
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a.response.body != b.response.body);
    CHECK(scrapes.load() == 3);

    // A request with a body (GET /metrics never has one) is not answered.
    auto with_body = test::http_request_once(server.port(), "POST", "/metrics", {}, "x=1");
    CHECK(with_body.status() != 200);

    server.stop();
    CHECK(test::http_request_once(server.port(), "GET", "/metrics", {}, "").outcome ==
          test::http_outcome::closed);
}

TEST_CASE("a port already taken fails start() with the address in the message", "[unit]") {
    metrics_options o;
    o.host = "127.0.0.1";
    o.port = 0;
    metrics_server first(o, [] { return metrics_sample{}; });
    REQUIRE(first.start());
    o.port = first.port();
    metrics_server second(o, [] { return metrics_sample{}; });
    status st = second.start();
    REQUIRE_FALSE(st);
    CHECK(st.code() == errc::unavailable);
    CHECK(st.message().find("metrics.listen: 127.0.0.1:" + std::to_string(o.port)) == 0);
}
