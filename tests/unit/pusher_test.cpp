// The pusher's loop with a fake clock and a scripted transport (the in-memory twin of
// https_client): the backoff schedule with jitter, every kind of answer, the auth alarm,
// 413 splits, the fall-back to the seed's single-record form, the live lane, pacing.
// The same pusher against real servers: tests/integration/push_*_test.cpp.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <atomic>
#include <deque>
#include <set>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "central_process.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/field/pusher.hpp"
#include "opendms/gzip.hpp"
#include "store_snapshot.hpp"
#include "test_servers.hpp"

using namespace opendms;
using namespace opendms::field;
using std::chrono::milliseconds;

namespace {

/// The in-memory twin of https_client: answers from a script, keeps every request.
/// post() runs on the pusher's request threads (several at once, one per transport), so
/// it uses no Catch2 macro: Catch2 is not thread-safe (TSan reported the race).
class scripted_transport final : public http_transport {
public:
    using responder = std::function<result<http_answer>(const http_post&)>;

    std::deque<responder> script;  // one per request; empty: answer with `otherwise`
    responder otherwise;
    std::vector<http_post> requests;

    result<http_answer> post(const http_post& r) override {
        requests.push_back(r);
        posted.fetch_add(1);
        if (!script.empty()) {
            responder next = std::move(script.front());
            script.pop_front();
            return next(r);
        }
        if (!otherwise) return status(errc::internal, "scripted_transport: nothing scripted");
        return otherwise(r);
    }
    void close() override {}
    void cancel() override {}
    void reset_cancel() override {}
    // From any thread, as http_transport says: the pusher reads it while another of its
    // threads is in post() (TSan reported reading requests.size() here).
    wire_counts counts() const override { return {posted.load() * 100, posted.load() * 50, 1}; }

private:
    std::atomic<std::size_t> posted{0};
};

http_answer answer(unsigned code, std::string body = "{}", std::optional<std::string> retry_after = {}) {
    http_answer a;
    a.status = code;
    a.body = std::move(body);
    a.retry_after = std::move(retry_after);
    return a;
}

/// The records of a request body (batch, gzip or not; or one single record); nullopt when
/// the body does not inflate or parse. No Catch2 macro: responders run on the pusher's
/// request threads.
std::optional<std::vector<std::string>> try_payloads_of(const http_post& p) {
    std::string body = p.body;
    for (const auto& [k, v] : p.headers) {
        if (k == "Content-Encoding" && v == "gzip") {
            std::string out;
            if (gzip_decompress(p.body, out, 1 << 26).error != gunzip_error::none) {
                return std::nullopt;
            }
            body = out;
        }
    }
    rapidjson::Document d;
    d.Parse(body.c_str(), body.size());
    if (d.HasParseError()) return std::nullopt;
    std::vector<std::string> out;
    if (d.HasMember("records")) {
        for (const auto& r : d["records"].GetArray()) out.push_back(r["payload"].GetString());
    } else {
        out.push_back(d["payload"].GetString());
    }
    return out;
}

/// try_payloads_of on the test's own thread: the body must be readable.
std::vector<std::string> payloads_of(const http_post& p) {
    auto payloads = try_payloads_of(p);
    REQUIRE(payloads);
    return std::move(*payloads);
}

std::string header_of(const http_post& p, const std::string& name) {
    for (const auto& [k, v] : p.headers) {
        if (k == name) return v;
    }
    return {};
}

/// Our central's batch answer: every record stored, except those listed as rejected.
/// On the pusher's request threads (no Catch2 macro): an unreadable body gets a 400.
result<http_answer> batch_ok(const http_post& p, const std::set<std::string>& rejected = {}) {
    const auto payloads = try_payloads_of(p);
    if (!payloads) return answer(400, R"({"message":"The body could not be read."})");
    std::string results;
    for (const std::string& payload : *payloads) {
        if (!results.empty()) results += ",";
        results += rejected.count(payload)
                       ? R"({"status":"rejected","message":"The payload field is bad.","errors":{"payload":["The payload field is bad."]}})"
                       : R"({"status":"stored","id":1})";
    }
    return answer(200, R"({"message":"Batch processed","results":[)" + results + "]}");
}

struct rig {
    test::temp_dir dir;
    std::unique_ptr<db::connection> conn;
    manual_clock clk{1764028800000};
    scripted_transport transport;
    push_options options;
    double unit = 0.5;  // the "random" number for the jitter
    std::unique_ptr<pusher> p;

    rig() {
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
        options.client.endpoint = *parse_endpoint("https://central.example.org");
    }

    pusher& make() {
        p = std::make_unique<pusher>(options, *conn, clk, transport, [this] { return unit; });
        REQUIRE(p->open());
        return *p;
    }

    void ingest(int n, const std::string& tag) {
        ingest_options o;
        o.mode = config::deployment_mode::hybrid;
        o.node_id = "node-1";
        ingest_store store(*conn, clk, o);
        for (int i = 0; i < n; ++i) {
            auto r = store.ingest("hub/event",
                                  R"({"eventType":"sos","MessageID":"Z)" + std::to_string(i) +
                                      R"(","payload":{"hops":1,"duckType":2,"DeviceID":"DUCK0001","Message":")" +
                                      tag + std::to_string(i) + R"("}})");
            REQUIRE(r);
        }
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
};

}  // namespace

TEST_CASE("a batch the central stores is synced, leaves the outbox, and resets failures",
          "[unit]") {
    rig t;
    t.ingest(5, "r");
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    t.make();
    step_result r = t.step();
    CHECK(r.kind == step_result::sent);
    CHECK(t.synced() == 5);
    CHECK(t.scalar("select count(*) from outbox") == 0);
    REQUIRE(t.transport.requests.size() == 1);
    const http_post& req = t.transport.requests[0];
    CHECK(req.path == "/api/ingest");
    CHECK(header_of(req, "Authorization") == "Bearer tok");
    CHECK(header_of(req, "Content-Encoding") == "gzip");
    CHECK(header_of(req, "Accept-Encoding") == "gzip");
    CHECK(payloads_of(req).size() == 5);
    CHECK(t.step().kind == step_result::idle);
    CHECK(t.transport.requests.size() == 1);  // nothing left: no request
    CHECK(t.p->state().last_success_at == t.clk.now());
    CHECK(t.p->state().protocol == std::optional<std::string>("batch"));
    CHECK(t.scalar("select bytes_sent from push_state") == 100);
}

TEST_CASE("failures back off on the seed's schedule with jitter and keep every record",
          "[unit][fault]") {
    rig t;
    t.ingest(3, "r");
    t.unit = 0.75;  // jitter 0.2 -> every wait is +10 %
    t.transport.otherwise = [](const http_post&) { return answer(503, R"({"message":"down"})"); };
    t.make();
    const std::int64_t expected_s[] = {33, 66, 132, 330, 660, 660, 660};
    for (std::int64_t wait_s : expected_s) {
        const std::int64_t before = t.clk.now_ms();
        step_result r = t.step();
        CHECK(r.kind == step_result::sent);
        CHECK(r.due_ms - before == wait_s * 1000);
        // Until then, no request goes out.
        t.clk.advance_ms(wait_s * 1000 - 1);
        const std::size_t sent = t.transport.requests.size();
        CHECK(t.step().kind == step_result::waiting);
        CHECK(t.transport.requests.size() == sent);
        t.clk.advance_ms(1);
    }
    CHECK(t.pending() == 3);
    CHECK(t.scalar("select min(attempts) from outbox") == 7);
    CHECK(t.scalar("select consecutive_failures from push_state") == 7);
    CHECK(t.scalar("select count(*) from push_state where last_error = 'HTTP 503: down'") == 1);
    // The link comes back: everything goes, and the count starts again.
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    t.step();
    CHECK(t.synced() == 3);
    CHECK(t.p->state().consecutive_failures == 0);
    t.ingest(1, "later");
    t.transport.otherwise = [](const http_post&) { return answer(500); };
    const std::int64_t before = t.clk.now_ms();
    CHECK(t.step().due_ms - before == 33'000);
}

TEST_CASE("network errors, 408 and 429 are retried like 5xx", "[unit][fault]") {
    for (int variant = 0; variant < 3; ++variant) {
        rig t;
        t.ingest(2, "r");
        t.transport.script.push_back([variant](const http_post&) -> result<http_answer> {
            if (variant == 0) return status(errc::unavailable, "connect 10.0.0.1:443: timed out");
            return answer(variant == 1 ? 408 : 429);
        });
        t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
        t.options.jitter = 0;
        t.make();
        const std::int64_t start = t.clk.now_ms();
        CHECK(t.step().due_ms == start + 30'000);
        CHECK(t.pending() == 2);
        t.clk.advance_s(30);
        t.step();
        CHECK(t.synced() == 2);
    }
}

TEST_CASE("Retry-After is honoured instead of the schedule", "[unit][fault]") {
    rig t;
    t.ingest(1, "r");
    t.options.jitter = 0;
    t.transport.script.push_back([](const http_post&) { return answer(503, "{}", "7"); });
    t.transport.script.push_back(
        [](const http_post&) { return answer(429, "{}", "Tue, 25 Nov 2025 00:05:00 GMT"); });
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    t.make();
    std::int64_t start = t.clk.now_ms();
    CHECK(t.step().due_ms == start + 7'000);
    t.clk.advance_s(7);
    start = t.clk.now_ms();  // 00:00:07; the date says 00:05:00
    CHECK(t.step().due_ms == start + 293'000);
}

TEST_CASE("401 raises the auth alarm, keeps the records, and a new token clears it", "[unit][fault]") {
    rig t;
    t.ingest(2, "r");
    const std::string token_file = t.dir.file("token");
    test::write_text_file(token_file, "old-token\n");
    t.options.token = "old-token";
    t.options.token_file = token_file;
    t.options.jitter = 0;
    t.transport.otherwise = [](const http_post& p) -> result<http_answer> {
        if (header_of(p, "Authorization") != "Bearer new-token") {
            return answer(401, R"({"message":"Unauthenticated."})");
        }
        return batch_ok(p);
    };
    t.make();
    t.step();
    CHECK(t.pending() == 2);
    CHECK(t.p->state().auth_alarm_at == t.clk.now());
    CHECK(t.scalar("select count(*) from push_state where auth_alarm_at is not null") == 1);
    CHECK(t.scalar("select count(*) from push_state where last_error = 'HTTP 401: Unauthenticated.'") == 1);
    t.clk.advance_s(30);
    t.step();  // 403 or 401 again: still alarmed, the schedule goes on
    CHECK(t.p->state().consecutive_failures == 2);
    test::write_text_file(token_file, "new-token\n");  // the operator fixes it
    t.clk.advance_s(60);
    t.step();
    CHECK(t.synced() == 2);
    CHECK_FALSE(t.p->state().auth_alarm_at);
    CHECK(t.scalar("select count(*) from push_state where auth_alarm_at is null") == 1);
}

TEST_CASE("a rejected record in a batch is parked with the reason; the others are synced",
          "[unit][fault]") {
    rig t;
    t.ingest(4, "r");
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p, {"r2"}); };
    t.make();
    t.step();
    CHECK(t.synced() == 3);
    CHECK(t.pending() == 1);
    CHECK(t.scalar("select count(*) from outbox o join cluster_data c on c.id = o.cluster_data_id "
                   "where c.payload = 'r2' and o.parked_at is not null and "
                   "o.parked_reason = 'The payload field is bad.'") == 1);
    CHECK(t.step().kind == step_result::idle);  // the parked record is not resent
    CHECK(t.p->state().consecutive_failures == 0);
}

TEST_CASE("413 halves the batch until it fits; a record too large alone is parked",
          "[unit][fault]") {
    rig t;
    t.ingest(10, "r");
    t.options.batch_size = 8;
    t.transport.otherwise = [](const http_post& p) -> result<http_answer> {
        auto records = payloads_of(p);
        for (const std::string& r : records) {
            if (r == "r0" || records.size() > 2) return answer(413, R"({"message":"too big"})");
        }
        return batch_ok(p);
    };
    t.make();
    for (int i = 0; i < 20 && t.step().kind != step_result::idle; ++i) {
    }
    CHECK(t.synced() == 9);
    CHECK(t.scalar("select count(*) from outbox where parked_at is not null and parked_reason like "
                   "'HTTP 413%'") == 1);
    CHECK(t.p->stats().splits == 3);  // 8 -> 4 -> 2 -> 1 (r0 was among the two)
    CHECK(t.p->state().consecutive_failures == 0);
    // r0 was the cause: once it is parked, batches are full size again.
    t.ingest(12, "more");
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    t.step();
    CHECK(payloads_of(t.transport.requests.back()).size() == 8);
}

TEST_CASE("a seed central (422 to a batch) gets single records, and batches again later",
          "[unit]") {
    rig t;
    t.ingest(3, "r");
    // The Laravel central: a batch has no duck_id; one record is ingested with its id.
    t.transport.otherwise = [](const http_post& p) -> result<http_answer> {
        if (header_of(p, "Content-Encoding") == "gzip") {
            return answer(422, R"({"message":"The duck id field is required.","errors":{"duck_id":["The duck id field is required."]}})");
        }
        return answer(200, R"({"message":"Record ingested","id":1})");
    };
    t.make();
    CHECK(t.p->current_protocol() == push_protocol::batch);
    t.step();  // the batch is refused: nothing settled, the protocol switches
    CHECK(t.pending() == 3);
    CHECK(t.p->current_protocol() == push_protocol::single);
    CHECK(t.scalar("select count(*) from push_state where protocol = 'single'") == 1);
    t.step();
    CHECK(t.synced() == 3);
    REQUIRE(t.transport.requests.size() == 4);
    for (std::size_t i = 1; i < 4; ++i) {
        CHECK(header_of(t.transport.requests[i], "Content-Encoding").empty());
        CHECK(payloads_of(t.transport.requests[i]).size() == 1);
    }
    // A restarted pusher remembers the protocol; after an hour it tries batches again.
    t.make();
    CHECK(t.p->current_protocol() == push_protocol::single);
    t.ingest(1, "later");
    t.step();
    t.clk.advance_s(3601);
    CHECK(t.p->current_protocol() == push_protocol::batch);
}

TEST_CASE("with CENTRAL_DMS_PROTOCOL=batch a seed central is a failure, not a fall-back",
          "[unit][fault]") {
    rig t;
    t.ingest(1, "r");
    t.options.protocol = push_protocol::batch;
    t.transport.otherwise = [](const http_post&) { return answer(422, R"({"message":"no"})"); };
    t.make();
    CHECK(t.step().kind == step_result::sent);
    CHECK(t.p->state().consecutive_failures == 1);
    CHECK(t.p->current_protocol() == push_protocol::batch);
    CHECK(t.pending() == 1);
}

TEST_CASE("single records: 422 parks the record, a 5xx stops the round and keeps the rest",
          "[unit][fault]") {
    rig t;
    t.ingest(4, "r");
    t.options.protocol = push_protocol::single;
    t.options.jitter = 0;
    t.transport.script.push_back([](const http_post&) { return answer(201); });
    t.transport.script.push_back([](const http_post&) {
        return answer(422, R"({"message":"The hops field must be an integer.","errors":{"hops":["The hops field must be an integer."]}})");
    });
    t.transport.script.push_back([](const http_post&) { return answer(502, "<html>bad gateway</html>"); });
    t.transport.otherwise = [](const http_post&) { return answer(200); };
    t.make();
    const std::int64_t start = t.clk.now_ms();
    CHECK(t.step().due_ms == start + 30'000);
    CHECK(t.synced() == 1);
    CHECK(t.scalar("select count(*) from outbox where parked_at is not null and parked_reason = "
                   "'HTTP 422: The hops field must be an integer.'") == 1);
    CHECK(t.scalar("select count(*) from outbox where parked_at is null and attempts = 1") == 2);
    t.clk.advance_s(30);
    t.step();
    CHECK(t.synced() == 3);
}

TEST_CASE("404 and redirects are retried on the schedule, never dropped", "[unit][fault]") {
    rig t;
    t.ingest(2, "r");
    t.transport.otherwise = [](const http_post&) { return answer(404, R"({"message":"Not Found"})"); };
    t.make();
    for (int i = 0; i < 4; ++i) {
        t.step();
        t.clk.advance_s(700);
    }
    CHECK(t.pending() == 2);
    CHECK(t.scalar("select count(*) from outbox where parked_at is null and attempts = 4") == 2);
}

TEST_CASE("the newest record goes out first, ahead of a backlog, then the backlog in order",
          "[unit]") {
    rig t;
    t.options.batch_size = 4;
    t.ingest(10, "backlog");
    t.clk.advance_s(3 * 24 * 3600);  // three days of outage
    t.ingest(1, "SOS");
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    t.make();
    t.step();
    REQUIRE(t.transport.requests.size() == 1);
    CHECK(payloads_of(t.transport.requests[0]) ==
          std::vector<std::string>{"SOS0", "backlog0", "backlog1", "backlog2"});
    t.step();
    CHECK(payloads_of(t.transport.requests[1]) ==
          std::vector<std::string>{"backlog3", "backlog4", "backlog5", "backlog6"});
}

TEST_CASE("CENTRAL_DMS_MAX_RATE paces the drain", "[unit]") {
    rig t;
    t.ingest(50, "r");
    t.options.max_rate = 10;  // records per second
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    t.make();
    const std::int64_t start = t.clk.now_ms();
    int requests = 0;
    while (t.pending() > 0) {
        step_result r = t.step();
        if (r.kind == step_result::waiting) {
            t.clk.set_ms(r.due_ms);
        } else {
            ++requests;
        }
        REQUIRE(t.clk.now_ms() - start < 60'000);
    }
    CHECK(requests == 5);  // 10 a request
    CHECK(t.clk.now_ms() - start >= 4'000);
}

TEST_CASE("a database that cannot be written is an error of step(); nothing is lost",
          "[unit][fault]") {
    rig t;
    t.ingest(2, "r");
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    t.make();
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = t.dir.file("field.sqlite");
    o.busy_timeout_ms = 50;
    auto mine = db::open(o);
    REQUIRE(mine);
    pusher p(t.options, **mine, t.clk, t.transport, [] { return 0.5; });
    REQUIRE(p.open());
    // Another connection holds the write lock: the pusher cannot write.
    auto other = db::open(o);
    REQUIRE(other);
    REQUIRE((*other)->begin());
    REQUIRE((*other)->exec("update outbox set lane = lane"));
    auto r = p.step();
    CHECK_FALSE(r);
    REQUIRE((*other)->rollback());
    CHECK(t.pending() == 2);  // sent, but not marked: they go again, the central dedupes
    auto again = p.step();
    REQUIRE(again);
    CHECK(t.synced() == 2);
}

TEST_CASE("two requests in flight carry disjoint batches and settle in the order sent",
          "[unit]") {
    rig t;
    t.options.batch_size = 10;
    t.ingest(95, "r");
    scripted_transport second;
    t.transport.otherwise = [](const http_post& p) { return batch_ok(p); };
    second.otherwise = [](const http_post& p) { return batch_ok(p); };
    pusher p(t.options, *t.conn, t.clk, std::vector<http_transport*>{&t.transport, &second},
             [] { return 0.5; });
    REQUIRE(p.open());
    for (int i = 0; i < 30; ++i) {
        auto r = p.step();
        REQUIRE(r);
        if (r->kind == step_result::idle) break;
    }
    CHECK(t.synced() == 95);
    std::multiset<std::string> sent;
    for (const auto* tr : {&t.transport, &second}) {
        for (const http_post& req : tr->requests) {
            for (const std::string& payload : payloads_of(req)) sent.insert(payload);
        }
    }
    CHECK(sent.size() == 95);  // each record exactly once
    CHECK(std::set<std::string>(sent.begin(), sent.end()).size() == 95);
    CHECK_FALSE(second.requests.empty());  // both connections were used
}

TEST_CASE("requests in flight that fail together count as one failed attempt", "[unit][fault]") {
    rig t;
    t.options.batch_size = 5;
    t.options.jitter = 0;
    t.ingest(20, "r");
    scripted_transport second;
    t.transport.otherwise = [](const http_post&) { return answer(503); };
    second.otherwise = [](const http_post&) { return answer(503); };
    pusher p(t.options, *t.conn, t.clk, std::vector<http_transport*>{&t.transport, &second},
             [] { return 0.5; });
    REQUIRE(p.open());
    const std::int64_t start = t.clk.now_ms();
    auto first = p.step();
    REQUIRE(first);
    CHECK(first->due_ms == start + 30'000);
    auto again = p.step();  // the other request's answer: same attempt
    REQUIRE(again);
    CHECK(p.state().consecutive_failures == 1);
    CHECK(t.scalar("select count(*) from outbox where attempts = 1") == 10);
    CHECK(p.step()->kind == step_result::waiting);  // nothing more goes out before the wait
    CHECK(t.transport.requests.size() + second.requests.size() == 2);
    t.clk.advance_s(30);
    t.transport.otherwise = [](const http_post& req) { return batch_ok(req); };
    second.otherwise = [](const http_post& req) { return batch_ok(req); };
    for (int i = 0; i < 20 && t.pending() > 0; ++i) REQUIRE(p.step());
    CHECK(t.synced() == 20);
    CHECK(p.state().consecutive_failures == 0);
}
