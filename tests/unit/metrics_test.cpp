#include "opendms/central/metrics.hpp"

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

using opendms::central::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos ||
           text.compare(0, line.size() + 1, line + "\n") == 0;
}

}  // namespace

TEST_CASE("requests are counted by route and status", "[unit]") {
    metrics m;
    m.count_request("/api/ingest", 200, 0.002);
    m.count_request("/api/ingest", 200, 0.003);
    m.count_request("/api/ingest", 401, 0.001);
    CHECK(m.requests("/api/ingest", 200) == 2);
    CHECK(m.requests("/api/ingest", 401) == 1);
    CHECK(m.requests("/api/ingest", 500) == 0);
    const std::string text = m.render();
    CHECK(has_line(text, "opendms_http_requests_total{route=\"/api/ingest\",status=\"200\"} 2"));
    CHECK(has_line(text, "opendms_http_requests_total{route=\"/api/ingest\",status=\"401\"} 1"));
    CHECK(has_line(text, "# TYPE opendms_http_requests_total counter"));
}

TEST_CASE("a route outside the fixed set is counted as other", "[unit]") {
    metrics m;
    m.count_request("/api/ingest/../../etc/passwd", 404, 0.001);
    m.count_request("", 400, 0.001);
    CHECK(m.requests("other", 404) == 1);
    CHECK(m.requests("other", 400) == 1);
    CHECK(m.requests("/api/ingest/../../etc/passwd", 404) == 0);
    CHECK(m.render().find("passwd") == std::string::npos);
}

TEST_CASE("the latency histogram is cumulative with sum and count", "[unit]") {
    metrics m;
    m.count_request("/healthz", 200, 0.0005);  // first bucket
    m.count_request("/healthz", 200, 0.02);    // le=0.025
    m.count_request("/healthz", 200, 0.025);   // le=0.025: bounds are inclusive
    m.count_request("/healthz", 200, 42.0);    // only +Inf
    const std::string text = m.render();
    const std::string b = "opendms_http_request_duration_seconds_bucket{route=\"/healthz\",le=";
    CHECK(has_line(text, b + "\"0.001\"} 1"));
    CHECK(has_line(text, b + "\"0.0025\"} 1"));
    CHECK(has_line(text, b + "\"0.01\"} 1"));
    CHECK(has_line(text, b + "\"0.025\"} 3"));
    CHECK(has_line(text, b + "\"10\"} 3"));
    CHECK(has_line(text, b + "\"+Inf\"} 4"));
    CHECK(has_line(text, "opendms_http_request_duration_seconds_count{route=\"/healthz\"} 4"));
    CHECK(has_line(text, "opendms_http_request_duration_seconds_sum{route=\"/healthz\"} 42.0455"));
    CHECK(has_line(text, "# TYPE opendms_http_request_duration_seconds histogram"));
}

TEST_CASE("record outcomes are counted and always rendered", "[unit]") {
    metrics m;
    std::string text = m.render();
    CHECK(has_line(text, "opendms_records_total{outcome=\"stored\"} 0"));
    CHECK(has_line(text, "opendms_records_total{outcome=\"mesh_duplicate\"} 0"));
    m.count_records(10, 2, 1, 3);
    m.count_records(1, 0, 0, 0);
    CHECK(m.records("stored") == 11);
    CHECK(m.records("duplicate") == 2);
    CHECK(m.records("mesh_duplicate") == 1);
    CHECK(m.records("rejected") == 3);
    CHECK(m.records("bogus") == 0);
    text = m.render();
    CHECK(has_line(text, "opendms_records_total{outcome=\"stored\"} 11"));
    CHECK(has_line(text, "opendms_records_total{outcome=\"duplicate\"} 2"));
    CHECK(has_line(text, "opendms_records_total{outcome=\"mesh_duplicate\"} 1"));
    CHECK(has_line(text, "opendms_records_total{outcome=\"rejected\"} 3"));
}

TEST_CASE("connections, token reloads and the pool are rendered as gauges", "[unit]") {
    metrics m;
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    CHECK(m.connections_open() == 1);
    m.count_token_reload(true);
    m.count_token_reload(false);
    m.count_token_reload(false);
    std::string text = m.render();
    CHECK(has_line(text, "opendms_http_connections_open 1"));
    CHECK(has_line(text, "opendms_tokens_reloads_total{result=\"ok\"} 1"));
    CHECK(has_line(text, "opendms_tokens_reloads_total{result=\"failed\"} 2"));
    CHECK(text.find("opendms_db_pool_size") == std::string::npos);  // no source yet

    m.set_pool_source([] { return std::vector<std::size_t>{3, 5, 8}; });
    text = m.render();
    CHECK(has_line(text, "opendms_db_pool_connections{state=\"in_use\"} 3"));
    CHECK(has_line(text, "opendms_db_pool_connections{state=\"open\"} 5"));
    CHECK(has_line(text, "opendms_db_pool_size 8"));
}

TEST_CASE("a pool source may read the metrics without deadlocking", "[unit]") {
    metrics m;
    m.count_records(4, 0, 0, 0);
    m.set_pool_source([&m] { return std::vector<std::size_t>{m.records("stored"), 0, 1}; });
    CHECK(has_line(m.render(), "opendms_db_pool_connections{state=\"in_use\"} 4"));
}

TEST_CASE("counts from many threads are not lost", "[unit]") {
    metrics m;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&m] {
            for (int i = 0; i < 1000; ++i) {
                m.count_request("/api/ingest", 200, 0.001);
                m.count_records(1, 0, 0, 0);
                m.connection_opened();
                m.connection_closed();
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(m.requests("/api/ingest", 200) == 4000);
    CHECK(m.records("stored") == 4000);
    CHECK(m.connections_open() == 0);
    CHECK(has_line(m.render(),
                   "opendms_http_request_duration_seconds_count{route=\"/api/ingest\"} 4000"));
}

TEST_CASE("the store and pending-request sources are rendered when set", "[unit]") {
    metrics m;
    CHECK(m.render().find("opendms_store_transactions_total") == std::string::npos);
    m.set_store_source([] { return std::vector<std::uint64_t>{3, 12, 40}; });
    m.set_pending_source([] { return std::size_t{5}; });
    const std::string text = m.render();
    CHECK(has_line(text, "# TYPE opendms_store_transactions_total counter"));
    CHECK(has_line(text, "opendms_store_transactions_total 3"));
    CHECK(has_line(text, "opendms_store_requests_total 12"));
    CHECK(has_line(text, "opendms_store_records_total 40"));
    CHECK(has_line(text, "# TYPE opendms_http_requests_pending gauge"));
    CHECK(has_line(text, "opendms_http_requests_pending 5"));
}
