// The pusher's side of the outbox on SQLite: lanes (live newest first, then the backlog
// oldest first), settling an attempt in one transaction, parking and requeueing, orphans,
// and a fail-at-N loop proving a failed settle changes nothing.
#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "faulty_connection.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/field/outbox_store.hpp"
#include "store_snapshot.hpp"
#include "test_servers.hpp"

using namespace opendms;
using namespace opendms::field;

namespace {

// A migrated hybrid-mode SQLite file; records go in through the real ingest store.
struct field_db {
    test::temp_dir dir;
    std::unique_ptr<db::connection> conn;
    manual_clock clk{1764028800000};  // 2025-11-25 00:00:00

    field_db() {
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = dir.file("field.sqlite");
        auto c = db::open(o);
        REQUIRE(c);
        conn = std::move(*c);
        db::migrator m(*conn);
        REQUIRE(m.migrate());
    }

    /// Ingests `n` distinct messages, one per second of the clock; returns their record ids.
    std::vector<std::int64_t> ingest(int n, const std::string& tag = "m") {
        ingest_options o;
        o.mode = config::deployment_mode::hybrid;
        o.node_id = "node-1";
        ingest_store store(*conn, clk, o);
        std::vector<std::int64_t> ids;
        for (int i = 0; i < n; ++i) {
            const std::string msg = tag + std::to_string(i);
            auto r = store.ingest("hub/event",
                                  R"({"eventType":"status","MessageID":"X)" + std::to_string(i % 1000) +
                                      R"(","payload":{"hops":1,"duckType":2,"DeviceID":"DUCK0001","Message":")" +
                                      msg + R"("}})");
            REQUIRE(r);
            REQUIRE(*r == ingest_outcome::stored);
            ids.push_back(test::query_ok(*conn, "select max(id) from cluster_data")[0].get_int(0).value());
            clk.advance_s(1);
        }
        return ids;
    }

    std::int64_t scalar(const std::string& sql) {
        return test::query_ok(*conn, sql)[0].get_int(0).value_or(-1);
    }
};

std::vector<std::int64_t> record_ids(const std::vector<outbox_item>& items) {
    std::vector<std::int64_t> out;
    for (const auto& it : items) out.push_back(*it.record.id);
    return out;
}

}  // namespace

TEST_CASE("the live lane goes newest first, then the backlog oldest first", "[unit]") {
    field_db f;
    std::vector<std::int64_t> old_ids = f.ingest(6, "old");
    f.clk.advance_s(3600);  // an hour later: the six are backlog now
    std::vector<std::int64_t> new_ids = f.ingest(3, "new");
    outbox_store outbox(*f.conn, f.clk);
    auto demoted = outbox.demote(f.clk.now() - 60);
    REQUIRE(demoted);
    CHECK(*demoted == 6);
    auto batch = outbox.next_batch(5);
    REQUIRE(batch);
    CHECK(record_ids(*batch) ==
          std::vector<std::int64_t>{new_ids[2], new_ids[1], new_ids[0], old_ids[0], old_ids[1]});
    CHECK((*batch)[0].lane == 0);
    CHECK((*batch)[3].lane == 1);
    // The record is read whole, with its permanent key.
    const cluster_data& r = (*batch)[0].record;
    CHECK(r.payload == std::optional<std::string>("new2"));
    CHECK(r.duck_id == "DUCK0001");
    CHECK(r.uuid.has_value());
    CHECK(r.source_node == std::optional<std::string>("node-1"));
    CHECK(r.synced == sync_state::pending);
    CHECK(r.created_at.has_value());
    auto all = outbox.next_batch(100);
    REQUIRE(all);
    CHECK(all->size() == 9);
}

TEST_CASE("settling marks delivered records synced, parks rejected ones, counts failed ones",
          "[unit]") {
    field_db f;
    f.ingest(6);
    outbox_store outbox(*f.conn, f.clk);
    auto batch = outbox.next_batch(6);
    REQUIRE(batch);
    REQUIRE(batch->size() == 6);
    settlement s;
    s.delivered = {&(*batch)[0], &(*batch)[1], &(*batch)[2]};
    s.parked = {{&(*batch)[3], "HTTP 422: The hops field must be an integer."}};
    s.failed = {&(*batch)[4], &(*batch)[5]};
    s.error = "HTTP 503";
    s.next_attempt_at = f.clk.now() + 30;
    s.state.consecutive_failures = 2;
    s.state.last_error = "HTTP 503";
    s.state.protocol = "batch";
    REQUIRE(outbox.settle(s));

    CHECK(f.scalar("select count(*) from cluster_data where synced = 1 and synced_at is not null") == 3);
    CHECK(f.scalar("select count(*) from cluster_data where synced = 0") == 3);
    CHECK(f.scalar("select count(*) from outbox") == 3);
    CHECK(f.scalar("select count(*) from outbox where parked_at is not null and parked_reason like "
                   "'HTTP 422%' and attempts = 1") == 1);
    CHECK(f.scalar("select count(*) from outbox where parked_at is null and attempts = 1 and "
                   "last_error = 'HTTP 503' and next_attempt_at is not null") == 2);
    // A parked record is not taken again; the failed ones are.
    auto next = outbox.next_batch(10);
    REQUIRE(next);
    CHECK(next->size() == 2);
    auto st = outbox.load_state();
    REQUIRE(st);
    CHECK(st->consecutive_failures == 2);
    CHECK(st->protocol == std::optional<std::string>("batch"));
    CHECK(st->last_error == std::optional<std::string>("HTTP 503"));
}

TEST_CASE("requeue un-parks all parked records, or one by its record id", "[unit]") {
    field_db f;
    std::vector<std::int64_t> ids = f.ingest(3);
    outbox_store outbox(*f.conn, f.clk);
    auto batch = outbox.next_batch(3);
    REQUIRE(batch);
    settlement s;
    for (auto& it : *batch) s.parked.emplace_back(&it, "rejected");
    REQUIRE(outbox.settle(s));
    CHECK(outbox.next_batch(3)->empty());
    auto one = outbox.requeue(ids[1]);
    REQUIRE(one);
    CHECK(*one == 1);
    CHECK(record_ids(*outbox.next_batch(3)) == std::vector<std::int64_t>{ids[1]});
    auto rest = outbox.requeue(std::nullopt);
    REQUIRE(rest);
    CHECK(*rest == 2);
    CHECK(outbox.next_batch(3)->size() == 3);
    CHECK(f.scalar("select count(*) from outbox where attempts = 0 and lane = 1") == 3);
}

TEST_CASE("pending records without an outbox row are adopted into the backlog once", "[unit]") {
    field_db f;
    f.ingest(2);
    // A record as the Laravel field node leaves it: pending, no outbox row, no uuid.
    test::query_ok(*f.conn,
                   "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
                   "payload, hops, duck_type, synced) values ('2026-01-01 00:00:00', "
                   "'2026-01-01 00:00:00', 'D1', 'status', 'AB12', 'from laravel', 1, 2, 0)");
    test::query_ok(*f.conn, "update cluster_data set synced = 1 where id = 1");
    test::query_ok(*f.conn, "delete from outbox where cluster_data_id = 1");  // delivered
    outbox_store outbox(*f.conn, f.clk);
    auto n = outbox.adopt_orphans();
    REQUIRE(n);
    CHECK(*n == 1);
    CHECK(*outbox.adopt_orphans() == 0);
    CHECK(f.scalar("select count(*) from outbox o join cluster_data c on c.id = o.cluster_data_id "
                   "where c.payload = 'from laravel' and o.lane = 1") == 1);
}

TEST_CASE("fail at N: a settle that fails at any statement changes nothing", "[unit][fault]") {
    for (std::uint64_t n = 1;; ++n) {
        field_db f;
        f.ingest(4);
        outbox_store reader(*f.conn, f.clk);
        auto batch = reader.next_batch(4);
        REQUIRE(batch);
        settlement s;
        s.delivered = {&(*batch)[0]};
        s.parked = {{&(*batch)[1], "no"}};
        s.failed = {&(*batch)[2], &(*batch)[3]};
        s.error = "HTTP 500";
        s.state.consecutive_failures = 1;
        const test::snapshot before = test::dump_all(*f.conn);
        test::faulty_connection faulty(*f.conn, test::fault{n});
        outbox_store outbox(faulty, f.clk);
        status st = outbox.settle(s);
        INFO("failing call " << n << ": " << st.to_string());
        if (!faulty.fired()) {
            REQUIRE(st);
            CHECK(n > 6);  // begin, synced, delete, park, failed, state, commit
            CHECK(f.scalar("select count(*) from outbox") == 3);
            CHECK(f.scalar("select consecutive_failures from push_state") == 1);
            break;
        }
        REQUIRE_FALSE(st);
        CHECK(test::dump_all(*f.conn) == before);
    }
}
