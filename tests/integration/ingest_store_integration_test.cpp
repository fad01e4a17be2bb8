// The ingest store in production mode against real PostgreSQL and MariaDB (and the same
// cases on a SQLite file), each in a fresh scratch database migrated by the migrator:
// records, quarantine with raw bytes, mesh duplicates, the status counts, and a fail-at-N
// loop. Needs tests/support/servers.sh (tests/run_all.sh starts it).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faulty_connection.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/field_status.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/field/ingest_writer.hpp"
#include "opendms/uuid.hpp"
#include "test_servers.hpp"

using namespace opendms;
using field::ingest_options;
using field::ingest_outcome;
using field::ingest_store;
using test::scratch_database;
using mode = config::deployment_mode;

namespace {

const std::string hub = "hub/event";

db::dialect each_dialect() {
    return GENERATE(db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql);
}

std::string envelope(const std::string& device, const std::string& message_id,
                     const std::string& message, int hops = 1) {
    return "{\"from\":\"hub\",\"to\":\"controller\",\"RE\":false,\"eventType\":\"status\","
           "\"MessageID\":\"" +
           message_id + "\",\"payload\":{\"hops\":" + std::to_string(hops) +
           ",\"duckType\":2,\"DeviceID\":\"" + device + "\",\"Message\":\"" + message + "\"}}";
}

std::unique_ptr<db::connection> migrated(const scratch_database& s) {
    auto c = s.connect();
    db::migrator m(*c);
    auto r = m.migrate();
    INFO(r.error().to_string());
    REQUIRE(r);
    return c;
}

ingest_options production(std::int64_t window_s = 600) {
    ingest_options o;
    o.mode = mode::production;
    o.node_id = "central-mqtt-1";
    o.duplicate_window_s = window_s;
    return o;
}

db::rows query_ok(db::connection& c, const std::string& sql, const std::vector<db::value>& p = {}) {
    auto r = c.query(sql, p);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r);
    return std::move(*r);
}

std::int64_t count(db::connection& c, const std::string& table) {
    return query_ok(c, "select count(*) from " + table)[0].get_int(0).value();
}

std::map<std::string, std::int64_t> counts(db::connection& c) {
    std::map<std::string, std::int64_t> out;
    for (const char* t : {"cluster_data", "outbox", "quarantine", "mesh_duplicates"}) {
        out[t] = count(c, t);
    }
    return out;
}

ingest_outcome ingest_ok(ingest_store& s, const std::string& bytes,
                         const std::string& topic = hub) {
    auto r = s.ingest(topic, bytes);
    INFO(r.error().to_string());
    REQUIRE(r);
    return *r;
}

std::string every_byte() {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
    return bytes;
}

}  // namespace

TEST_CASE("production mode stores records with synced NULL, no outbox entry and a uuid",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        manual_clock clk(1772186400500);  // 2026-02-27 10:00:00.500
        ingest_store store(*c, clk, production());
        const std::string malay_and_duck = "Air naik paras lutut \xf0\x9f\xa6\x86 di Kg Pasir";
        REQUIRE(ingest_ok(store, envelope("KAMPUNG1", "4QZ7", malay_and_duck, 2)) ==
                ingest_outcome::stored);
        REQUIRE(ingest_ok(store, envelope("KAMPUNG2", "4QZ7", "perlu bot")) ==
                ingest_outcome::stored);

        auto r = query_ok(*c,
                          "select duck_id, message_id, payload, payload_encoding, hops, "
                          "duck_type, synced, created_at, updated_at, uuid, source_node "
                          "from cluster_data order by id");
        REQUIRE(r.size() == 2);
        CHECK(r[0].get_text(0) == "KAMPUNG1");
        CHECK(r[0].get_text(1) == "4QZ7");
        CHECK(r[0].get_text(2) == malay_and_duck);
        CHECK(r[0].is_null(3));
        CHECK(r[0].get_int(4) == 2);
        CHECK(r[0].get_int(5) == 2);
        CHECK(r[0].is_null(6));
        CHECK(r[0].get_text(7) == "2026-02-27 10:00:00");
        CHECK(r[0].get_text(8) == "2026-02-27 10:00:00");
        CHECK(is_uuid(r[0].get_text(9).value_or("")));
        CHECK(r[0].get_text(9) != r[1].get_text(9));
        CHECK(r[0].get_text(10) == "central-mqtt-1");
        CHECK(count(*c, "outbox") == 0);
    }
}

TEST_CASE("a quarantined message keeps every byte value in the binary column", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        manual_clock clk(1772186400000);
        ingest_store store(*c, clk, production());
        const std::string bytes = every_byte();
        std::string long_topic(300, 'q');
        REQUIRE(ingest_ok(store, bytes, long_topic) == ingest_outcome::quarantined);
        // Bytes that are not UTF-8 inside otherwise valid-looking JSON.
        const std::string broken = "{\"DeviceID\":\"\xff\xfe\",\"MessageID\":";
        REQUIRE(ingest_ok(store, broken, "hub/\xc3\xa9v\xff") == ingest_outcome::quarantined);

        auto r = query_ok(*c, "select raw, topic, reason, received_at from quarantine order by id");
        REQUIRE(r.size() == 2);
        CHECK(r[0].get_text(0) == bytes);
        CHECK(r[0].get_text(1) == long_topic.substr(0, 255));
        CHECK_FALSE(r[0].get_text(2).value_or("").empty());
        CHECK(r[0].get_text(3) == "2026-02-27 10:00:00");
        CHECK(r[1].get_text(0) == broken);
        CHECK(r[1].get_text(1) == "hub/\xc3\xa9v?");
        CHECK(count(*c, "cluster_data") == 0);
    }
}

TEST_CASE("mesh duplicates are counted, and only byte-identical data is a duplicate",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        manual_clock clk(1772186400000);
        ingest_store store(*c, clk, production());
        REQUIRE(ingest_ok(store, envelope("KAMPUNG1", "4QZ7", "air naik", 1)) ==
                ingest_outcome::stored);
        clk.advance_s(20);
        CHECK(ingest_ok(store, envelope("KAMPUNG1", "4QZ7", "air naik", 3)) ==
              ingest_outcome::mesh_duplicate);
        // MySQL's utf8mb4_unicode_ci calls these equal; they are other data.
        CHECK(ingest_ok(store, envelope("KAMPUNG1", "4QZ7", "AIR NAIK")) == ingest_outcome::stored);
        CHECK(ingest_ok(store, envelope("KAMPUNG1", "4QZ7", "air naik ")) ==
              ingest_outcome::stored);
        clk.advance_s(600);  // 620 s after the first: a reused MessageID
        CHECK(ingest_ok(store, envelope("KAMPUNG1", "4QZ7", "air naik")) == ingest_outcome::stored);

        CHECK(count(*c, "cluster_data") == 4);
        auto dup = query_ok(*c,
                            "select d.cluster_data_id, d.hops, d.received_at, c.payload from "
                            "mesh_duplicates d join cluster_data c on c.id = d.cluster_data_id");
        REQUIRE(dup.size() == 1);
        CHECK(dup[0].get_int(1) == 3);
        CHECK(dup[0].get_text(2) == "2026-02-27 10:00:20");
        CHECK(dup[0].get_text(3) == "air naik");

        REQUIRE(c->exec("delete from cluster_data where id = ?", {*dup[0].get_int(0)}));
        CHECK(count(*c, "mesh_duplicates") == 0);  // on delete cascade
    }
}

TEST_CASE("the status counts records, quarantine, duplicates and the oldest pending age",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        manual_clock clk(1772186400000);  // 2026-02-27 10:00:00
        ingest_store store(*c, clk, production());
        REQUIRE(ingest_ok(store, envelope("KAMPUNG1", "AAA1", "satu")) == ingest_outcome::stored);
        REQUIRE(ingest_ok(store, envelope("KAMPUNG1", "AAA1", "satu")) ==
                ingest_outcome::mesh_duplicate);
        REQUIRE(ingest_ok(store, "garbage") == ingest_outcome::quarantined);
        // Rows a field node pushed: one pending and one delivered (the server's own
        // records are never pending; these exercise the boolean column on each dialect).
        const char* insert =
            "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
            "payload, synced) values (?, ?, 'DUCK0002', 'status', 'BBB1', 'x', ?)";
        REQUIRE(c->exec(insert, {std::string("2026-02-27 09:00:00"),
                                 std::string("2026-02-27 09:00:00"), false}));
        REQUIRE(c->exec(insert, {std::string("2026-02-27 08:00:00"),
                                 std::string("2026-02-27 08:00:00"), true}));

        auto st = field::read_status(*c, clk.now());
        INFO(st.error().to_string());
        REQUIRE(st);
        CHECK(st->not_applicable == 1);
        CHECK(st->pending == 1);
        CHECK(st->synced == 1);
        CHECK(st->quarantined == 1);
        CHECK(st->duplicates == 1);
        CHECK(st->outbox_depth == 0);
        CHECK(st->oldest_pending_age_seconds == 3600);
        // The ingest counts come first, in this order, on every dialect (the delivery
        // state follows: see field_status_test).
        CHECK_THAT(field::to_json(*st),
                   Catch::StartsWith(
                       "{\"not_applicable\":1,\"pending\":1,\"synced\":1,\"quarantined\":1,"
                       "\"duplicates\":1,\"oldest_pending_age_seconds\":3600,\"outbox_depth\":0,"
                       "\"parked\":0,\"live\":0,\"backlog\":0,\"protocol\":null,"));
    }
}

TEST_CASE("a record the server refuses is rolled back and quarantined", "[integration][fault]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        manual_clock clk(1772186400000);
        test::faulty_connection f(*c);
        // begin, lookup, insert record: the insert runs, then is reported refused.
        f.arm(test::fault{3, errc::invalid_argument, "value too long", test::fault_timing::after});
        ingest_store store(f, clk, production());
        const std::string bytes = envelope("KAMPUNG1", "4QZ7", "air naik");
        REQUIRE(ingest_ok(store, bytes) == ingest_outcome::quarantined);
        REQUIRE(f.fired());
        CHECK(count(*c, "cluster_data") == 0);  // the inserted row was rolled back
        auto r = query_ok(*c, "select raw, reason from quarantine");
        REQUIRE(r.size() == 1);
        CHECK(r[0].get_text(0) == bytes);
        CHECK_THAT(r[0].get_text(1).value_or(""),
                   Catch::StartsWith("the database refused the record: "));
    }
}

TEST_CASE("fail at N on a server: a failed ingest changes nothing and the retry stores it once",
          "[integration][fault]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        manual_clock clk(1772186400000);
        test::faulty_connection f(*c);
        ingest_store store(f, clk, production());
        REQUIRE(ingest_ok(store, envelope("KAMPUNG1", "4QZ7", "air naik")) ==
                ingest_outcome::stored);
        const std::vector<std::string> messages = {
            envelope("KAMPUNG1", "4QZ7", "air naik", 5),  // a mesh duplicate
            envelope("KAMPUNG1", "ZZ01", "baru"),         // a new record
            "\x01\x02 not json",                          // quarantine
        };
        // Back to the one first record, so that every N starts from the same state.
        const auto reset = [&] {
            for (const char* sql : {"delete from mesh_duplicates", "delete from quarantine",
                                    "delete from cluster_data where message_id = 'ZZ01'"}) {
                REQUIRE(c->execute_script(sql));
            }
        };
        for (const std::string& bytes : messages) {
            std::uint64_t n = 1;
            for (;; ++n) {
                INFO("message " << bytes.substr(0, 40) << ", failing call " << n);
                const auto before = counts(*c);
                f.arm(test::fault{n, errc::unavailable, "server went away"});
                auto r = store.ingest(hub, bytes);
                if (!f.fired()) {
                    INFO(r.error().to_string());
                    REQUIRE(r);
                    reset();
                    break;
                }
                REQUIRE_FALSE(r);
                CHECK(r.error().code() == errc::unavailable);
                CHECK_THAT(r.error().message(), Catch::Contains("server went away"));
                CHECK(counts(*c) == before);

                f.disarm();
                auto retry = store.ingest(hub, bytes);
                INFO(retry.error().to_string());
                REQUIRE(retry);
                std::int64_t added = 0;
                for (const auto& [table, rows] : counts(*c)) added += rows - before.at(table);
                CHECK(added == 1);
                reset();
            }
            CHECK(n >= 4);
        }
    }
}

namespace {

// Makes the database itself refuse a DeviceID longer than 4 characters (the parser accepts
// 32), so that the refusal is the server's own: PostgreSQL aborts the transaction on it.
void refuse_long_duck_ids(db::connection& c) {
    const char* sql = nullptr;
    switch (c.kind()) {
        case db::dialect::pgsql:
            sql = "alter table cluster_data alter column duck_id type varchar(4)";
            break;
        case db::dialect::mysql:
            sql = "alter table cluster_data modify duck_id varchar(4) not null";
            break;
        case db::dialect::sqlite:
            sql =
                "create trigger short_duck_ids before insert on cluster_data "
                "when length(new.duck_id) > 4 begin select raise(abort, 'too long'); end";
            break;
    }
    INFO(sql);
    REQUIRE(c.execute_script(sql));
}

}  // namespace

TEST_CASE("in one transaction a refused record rolls back to its savepoint and the others commit",
          "[integration][fault]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        refuse_long_duck_ids(*c);
        manual_clock clk(1772186400000);
        ingest_store store(*c, clk, production());
        const std::string refused = envelope("KAMPUNG1", "4QZ7", "air naik");
        REQUIRE(c->begin());
        auto a = store.ingest_in_transaction(hub, envelope("DK01", "AAAA", "a"));
        auto b = store.ingest_in_transaction(hub, refused);
        auto a2 = store.ingest_in_transaction(hub, envelope("DK01", "AAAA", "a", 3));
        auto q = store.ingest_in_transaction(hub, "not json");
        for (const auto* r : {&a, &b, &a2, &q}) {
            INFO(r->error().to_string());
            REQUIRE(*r);
        }
        REQUIRE(c->commit());
        CHECK(*a == ingest_outcome::stored);
        CHECK(*b == ingest_outcome::quarantined);
        CHECK(*a2 == ingest_outcome::mesh_duplicate);  // sees the uncommitted first copy
        CHECK(*q == ingest_outcome::quarantined);
        CHECK(count(*c, "cluster_data") == 1);
        CHECK(count(*c, "mesh_duplicates") == 1);
        auto r = query_ok(*c, "select raw, reason from quarantine order by id");
        REQUIRE(r.size() == 2);
        CHECK(r[0].get_text(0) == refused);
        CHECK_THAT(r[0].get_text(1).value_or(""),
                   Catch::StartsWith("the database refused the record: "));
    }
}

TEST_CASE("the writer stores concurrent submissions once each on every dialect", "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto check = migrated(s);
        manual_clock clk(1772186400000);
        field::ingest_writer w(s.connect(), clk, production());
        w.start();
        constexpr int threads = 4, per_thread = 100;
        std::vector<std::future<int>> futures;
        for (int t = 0; t < threads; ++t) {
            futures.push_back(std::async(std::launch::async, [&w, t] {
                int ok = 0;
                for (int i = 0; i < per_thread; ++i) {
                    const std::string id = std::to_string(t) + "-" + std::to_string(i);
                    // Every message twice: the second copy is a mesh duplicate.
                    for (int copy = 0; copy < 2; ++copy) {
                        if (w.submit(hub, envelope("DUCK" + std::to_string(t), id, "m"))) ++ok;
                    }
                }
                return ok;
            }));
        }
        int ok = 0;
        for (auto& f : futures) {
            REQUIRE(f.wait_for(std::chrono::seconds(120)) == std::future_status::ready);
            ok += f.get();
        }
        w.stop();
        CHECK(ok == 2 * threads * per_thread);
        CHECK(count(*check, "cluster_data") == threads * per_thread);
        CHECK(count(*check, "mesh_duplicates") == threads * per_thread);
        CHECK(w.stats().commits < static_cast<std::uint64_t>(2 * threads * per_thread));
    }
}
