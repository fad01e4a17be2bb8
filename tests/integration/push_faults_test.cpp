// The pusher with its real HTTPS client (over plain HTTP on 127.0.0.1) against a scripted
// fault server: every way a central or a network can fail, and what must become of the
// records each time. The clock is a fake one, so backoff is checked exactly; the network is
// real, so timeouts, resets and keep-alive are the client's own.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "central_process.hpp"
#include "fault_http_server.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/https_client.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/field/pusher.hpp"
#include "store_snapshot.hpp"
#include "test_servers.hpp"

using namespace opendms;
using namespace opendms::field;
using namespace std::chrono_literals;
using test::fault_action;
using test::fault_http_server;
using test::recorded_request;

namespace {

struct rig {
    test::temp_dir dir;
    std::unique_ptr<db::connection> conn;
    manual_clock clk{1764028800000};
    push_options options;
    std::unique_ptr<https_client> client;
    std::unique_ptr<pusher> p;

    explicit rig(const std::string& url) {
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = dir.file("field.sqlite");
        auto c = db::open(o);
        REQUIRE(c);
        conn = std::move(*c);
        db::migrator m(*conn);
        REQUIRE(m.migrate());
        options.enabled = true;
        options.token = "tok";
        options.jitter = 0;
        options.client.endpoint = *parse_endpoint(url);
        options.client.request_timeout = 1500ms;
        options.client.connect_timeout = 1500ms;
    }

    pusher& make() {
        auto c = https_client::create(options.client);
        REQUIRE(c);
        client = std::move(*c);
        p = std::make_unique<pusher>(options, *conn, clk, *client, [] { return 0.5; });
        REQUIRE(p->open());
        return *p;
    }

    void ingest(int n, const std::string& tag = "r") {
        ingest_options io;
        io.mode = config::deployment_mode::hybrid;
        io.node_id = "node-1";
        ingest_store store(*conn, clk, io);
        REQUIRE(conn->begin());
        for (int i = 0; i < n; ++i) {
            auto r = store.ingest_in_transaction(
                "hub/event", R"({"eventType":"status","MessageID":"Q)" + std::to_string(i % 10000) +
                                 R"(","payload":{"hops":1,"duckType":2,"DeviceID":"DUCK0001","Message":")" +
                                 tag + std::to_string(i) + R"("}})");
            REQUIRE(r);
        }
        REQUIRE(conn->commit());
    }

    std::int64_t scalar(const std::string& sql) {
        return test::query_ok(*conn, sql)[0].get_int(0).value_or(-1);
    }
    std::int64_t synced() { return scalar("select count(*) from cluster_data where synced = 1"); }
    std::int64_t pending() { return scalar("select count(*) from cluster_data where synced = 0"); }

    step_result step() {
        auto r = p->step();
        INFO(r.error().to_string());
        REQUIRE(r);
        return *r;
    }
    /// Steps (advancing the fake clock to each due time) until nothing is left or `max` steps.
    void drain(int max = 100) {
        for (int i = 0; i < max; ++i) {
            step_result r = step();
            if (r.kind == step_result::idle) return;
            if (r.due_ms > clk.now_ms()) clk.set_ms(r.due_ms);
        }
        FAIL("the outbox did not drain in " << max << " steps");
    }
};

}  // namespace

TEST_CASE("200: batches are delivered over one kept-alive connection", "[integration]") {
    fault_http_server server([](const recorded_request& r, std::size_t) { return test::batch_answer(r); });
    rig t(server.url());
    t.options.batch_size = 10;
    t.ingest(35);
    t.make();
    t.drain();
    CHECK(t.synced() == 35);
    CHECK(server.request_count() == 4);
    CHECK(server.connections() == 1);
    const auto reqs = server.requests();
    CHECK(reqs[0].target == "/api/ingest");
    CHECK(reqs[0].header("Authorization") == "Bearer tok");
    CHECK(reqs[0].header("Content-Encoding") == "gzip");
    CHECK(reqs[0].wire_body_bytes < reqs[0].body.size() / 2);  // compressed on the wire
    CHECK(t.scalar("select bytes_sent from push_state") > 0);
}

TEST_CASE("500 keeps every record and the next attempt after the backoff delivers them",
          "[integration][fault]") {
    fault_http_server server([](const recorded_request& r, std::size_t i) {
        return i < 2 ? test::status_answer(500, R"({"message":"Server Error"})") : test::batch_answer(r);
    });
    rig t(server.url());
    t.ingest(5);
    t.make();
    const std::int64_t start = t.clk.now_ms();
    CHECK(t.step().due_ms == start + 30'000);
    CHECK(t.pending() == 5);
    t.clk.advance_s(30);
    CHECK(t.step().due_ms == t.clk.now_ms() + 60'000);
    t.clk.advance_s(60);
    t.step();
    CHECK(t.synced() == 5);
}

TEST_CASE("a server that accepts and never answers costs one request timeout, no record",
          "[integration][fault]") {
    fault_http_server server([](const recorded_request& r, std::size_t i) {
        if (i == 0) {
            fault_action a;
            a.kind = fault_action::never_answer;
            return a;
        }
        return test::batch_answer(r);
    });
    rig t(server.url());
    t.ingest(3);
    t.make();
    const auto before = std::chrono::steady_clock::now();
    t.step();
    const auto took = std::chrono::steady_clock::now() - before;
    CHECK(took >= 1400ms);
    CHECK(took < 5s);
    CHECK(t.pending() == 3);
    CHECK(t.scalar("select count(*) from push_state where last_error like '%timed out%'") == 1);
    t.clk.advance_s(30);
    t.step();
    CHECK(t.synced() == 3);
}

TEST_CASE("a connection reset in the middle of the answer is retried, nothing is marked",
          "[integration][fault]") {
    fault_http_server server([](const recorded_request& r, std::size_t i) {
        fault_action a = test::batch_answer(r);
        if (i == 0) a.kind = fault_action::reset_mid_response;
        return a;
    });
    rig t(server.url());
    t.ingest(4);
    t.make();
    t.step();
    CHECK(t.pending() == 4);  // the central may have stored them: it dedupes the resend by uuid
    CHECK(t.p->state().consecutive_failures == 1);
    t.clk.advance_s(30);
    t.step();
    CHECK(t.synced() == 4);
    // The resend carried the same permanent keys.
    const auto reqs = server.requests();
    REQUIRE(reqs.size() == 2);
    CHECK(reqs[0].body == reqs[1].body);
}

TEST_CASE("a kept-alive connection the server closed is reopened without a failure",
          "[integration][fault]") {
    fault_http_server server([](const recorded_request& r, std::size_t) {
        fault_action a = test::batch_answer(r);
        a.close_after = true;  // closes without saying Connection: close
        return a;
    });
    rig t(server.url());
    t.options.batch_size = 2;
    t.ingest(6);
    t.make();
    t.drain();
    CHECK(t.synced() == 6);
    CHECK(t.p->state().consecutive_failures == 0);
    CHECK(t.p->stats().failed_attempts == 0);
    CHECK(server.connections() == 3);
}

TEST_CASE("401 with a wrong token, then the corrected token file delivers", "[integration][fault]") {
    fault_http_server server([](const recorded_request& r, std::size_t) {
        if (r.header("Authorization") != "Bearer good") {
            return test::status_answer(401, R"({"message":"Unauthenticated."})");
        }
        return test::batch_answer(r);
    });
    rig t(server.url());
    const std::string token_file = t.dir.file("token");
    test::write_text_file(token_file, "bad\n");
    t.options.token = "bad";
    t.options.token_file = token_file;
    t.ingest(3);
    t.make();
    t.step();
    CHECK(t.pending() == 3);
    CHECK(t.p->state().auth_alarm_at.has_value());
    test::write_text_file(token_file, "good\n");
    t.clk.advance_s(30);
    t.step();
    CHECK(t.synced() == 3);
    CHECK_FALSE(t.p->state().auth_alarm_at.has_value());
}

TEST_CASE("422 for one record inside a batch parks it and delivers the others",
          "[integration][fault]") {
    fault_http_server server(
        [](const recorded_request& r, std::size_t) { return test::batch_answer(r, {"r3"}); });
    rig t(server.url());
    t.ingest(6);
    t.make();
    t.drain();
    CHECK(t.synced() == 5);
    CHECK(t.scalar("select count(*) from outbox o join cluster_data c on c.id = o.cluster_data_id "
                   "where c.payload = 'r3' and o.parked_at is not null and o.parked_reason = "
                   "'The payload field is not allowed here.'") == 1);
    CHECK(t.scalar("select count(*) from cluster_data where payload = 'r3' and synced = 0") == 1);
}

TEST_CASE("413 splits the batch until the central takes it", "[integration][fault]") {
    fault_http_server server([](const recorded_request& r, std::size_t) {
        if (r.payloads().size() > 3) return test::status_answer(413, R"({"message":"Too large"})");
        return test::batch_answer(r);
    });
    rig t(server.url());
    t.options.batch_size = 16;
    t.ingest(20);
    t.make();
    t.drain();
    CHECK(t.synced() == 20);
    CHECK(t.p->stats().splits == 3);  // 16 -> 8 -> 4 -> 2
    CHECK(t.scalar("select count(*) from outbox") == 0);
}

TEST_CASE("Retry-After sets the next attempt", "[integration][fault]") {
    fault_http_server server([](const recorded_request& r, std::size_t i) {
        if (i == 0) {
            fault_action a = test::status_answer(503, R"({"message":"The database is unavailable; retry later."})");
            a.headers.emplace_back("Retry-After", "5");
            return a;
        }
        return test::batch_answer(r);
    });
    rig t(server.url());
    t.ingest(2);
    t.make();
    const std::int64_t start = t.clk.now_ms();
    CHECK(t.step().due_ms == start + 5'000);
    t.clk.advance_s(4);
    CHECK(t.step().kind == step_result::waiting);
    CHECK(server.request_count() == 1);
    t.clk.advance_s(1);
    t.step();
    CHECK(t.synced() == 2);
}

TEST_CASE("a server that only speaks the seed's single-record form gets single records",
          "[integration]") {
    fault_http_server server([](const recorded_request& r, std::size_t i) {
        if (r.is_batch() || !r.header("Content-Encoding").empty()) {
            // What Laravel does with a body it cannot read as one record.
            return test::status_answer(
                422, R"x({"message":"The duck id field is required. (and 2 more errors)","errors":{"duck_id":["The duck id field is required."]}})x");
        }
        return test::single_answer(static_cast<long>(i));
    });
    rig t(server.url());
    t.ingest(7);
    t.make();
    t.drain();
    CHECK(t.synced() == 7);
    CHECK(t.p->current_protocol() == push_protocol::single);
    const auto reqs = server.requests();
    REQUIRE(reqs.size() == 8);  // one refused batch, then seven records
    for (std::size_t i = 1; i < reqs.size(); ++i) {
        CHECK_FALSE(reqs[i].is_batch());
        CHECK(reqs[i].header("Content-Type") == "application/json");
        CHECK(reqs[i].body.find("\"uuid\":\"") != std::string::npos);  // the permanent key travels
    }
    CHECK(server.connections() == 1);
}

TEST_CASE("connection refused: retried for ever on the schedule, then delivered",
          "[integration][fault]") {
    const int port = test::free_tcp_port();
    rig t("http://127.0.0.1:" + std::to_string(port));
    t.ingest(3);
    t.make();
    for (int i = 0; i < 8; ++i) {
        step_result r = t.step();
        t.clk.set_ms(r.due_ms);
    }
    CHECK(t.p->state().consecutive_failures == 8);
    CHECK(t.scalar("select count(*) from push_state where last_error like 'connect 127.0.0.1:%'") == 1);
    CHECK(t.pending() == 3);
}

TEST_CASE("stop() cancels a request in flight at once", "[integration][fault]") {
    fault_http_server server([](const recorded_request&, std::size_t) {
        fault_action a;
        a.kind = fault_action::never_answer;
        return a;
    });
    rig t(server.url());
    t.options.client.request_timeout = 60s;
    t.ingest(1);
    t.make();
    std::thread runner([&] { t.p->run(); });
    REQUIRE(test::wait_until([&] { return server.request_count() == 1; }, 10s, 20ms));
    const auto before = std::chrono::steady_clock::now();
    t.p->stop();
    runner.join();
    CHECK(std::chrono::steady_clock::now() - before < 5s);
    CHECK(t.pending() == 1);
}
