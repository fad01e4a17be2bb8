// The field node's ingest store on SQLite files: what each outcome writes, the mesh
// duplicate window, and fail-at-N loops proving that a failed ingest writes nothing.
// The same store against PostgreSQL and MariaDB:
// tests/integration/ingest_store_integration_test.cpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "faulty_connection.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/gateway_message_parser.hpp"
#include "opendms/field/ingest_store.hpp"
#include "store_snapshot.hpp"
#include "opendms/timefmt.hpp"
#include "opendms/uuid.hpp"
#include "test_servers.hpp"

using namespace opendms;
using field::ingest_options;
using field::ingest_outcome;
using field::ingest_store;
using test::fault;
using test::faulty_connection;
using test::temp_dir;
using mode = config::deployment_mode;

namespace {

const std::string hub = "hub/event";
const std::vector<std::string>& tables = test::store_tables();

// A 5.x envelope as a PapaDuck publishes it. `message` must need no JSON escaping.
std::string envelope(const std::string& device, const std::string& message_id,
                     const std::string& message, int hops = 1) {
    return "{\"from\":\"hub\",\"to\":\"controller\",\"RE\":false,\"eventType\":\"status\","
           "\"MessageID\":\"" +
           message_id + "\",\"payload\":{\"hops\":" + std::to_string(hops) +
           ",\"duckType\":2,\"DeviceID\":\"" + device + "\",\"Message\":\"" + message + "\"}}";
}

std::string every_byte() {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
    return bytes;
}

// A migrated SQLite file in its own directory, and a manual clock at 2025-11-25 00:00:00.
struct node {
    temp_dir dir;
    std::unique_ptr<db::connection> conn;
    manual_clock clk{1764028800000};

    node() {
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = dir.file("field.sqlite");
        auto c = db::open(o);
        INFO(c.error().to_string());
        REQUIRE(c);
        conn = std::move(*c);
        db::migrator m(*conn);
        auto r = m.migrate();
        INFO(r.error().to_string());
        REQUIRE(r);
    }

    db::connection& c() { return *conn; }
};

ingest_options options_for(mode m, std::int64_t window_s = 600) {
    ingest_options o;
    o.mode = m;
    o.node_id = "field-node-7";
    o.duplicate_window_s = window_s;
    return o;
}

using test::count;
using test::counts;
using test::dump_all;
using test::query_ok;
using test::snapshot;

std::string integrity(db::connection& c) {
    return query_ok(c, "PRAGMA integrity_check")[0].get_text(0).value_or("");
}

ingest_outcome ingest_ok(ingest_store& s, const std::string& bytes,
                         const std::string& topic = hub) {
    auto r = s.ingest(topic, bytes);
    INFO(r.error().to_string());
    REQUIRE(r);
    return *r;
}

}  // namespace

// ---- records and modes ------------------------------------------------------------------

TEST_CASE("offline and production modes store a record with synced NULL and no outbox entry",
          "[unit]") {
    for (mode m : {mode::offline, mode::production}) {
        DYNAMIC_SECTION(config::mode_name(m)) {
            node n;
            ingest_store s(n.c(), n.clk, options_for(m));
            CHECK(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air naik")) == ingest_outcome::stored);
            auto r = query_ok(n.c(), "select synced, synced_at from cluster_data");
            REQUIRE(r.size() == 1);
            CHECK(r[0].is_null(0));
            CHECK(r[0].is_null(1));
            CHECK(count(n.c(), "outbox") == 0);
        }
    }
}

TEST_CASE("hybrid mode stores a pending record with exactly one outbox entry in lane 0", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid));
    REQUIRE(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air naik")) == ingest_outcome::stored);
    REQUIRE(ingest_ok(s, envelope("KAMPUNG1", "4QZ8", "perlu bot")) == ingest_outcome::stored);
    auto r = query_ok(n.c(),
                      "select c.id, c.synced, o.cluster_data_id, o.lane, o.created_at, "
                      "o.attempts, o.parked_at from cluster_data c join outbox o on "
                      "o.cluster_data_id = c.id order by c.id");
    REQUIRE(r.size() == 2);
    for (const auto& row : r.data) {
        CHECK(row.get_int(1) == 0);  // false: pending
        CHECK(row.get_int(2) == row.get_int(0));
        CHECK(row.get_int(3) == 0);
        CHECK(row.get_text(4) == "2025-11-25 00:00:00");
        CHECK(row.get_int(5) == 0);
        CHECK(row.is_null(6));
    }
    CHECK(count(n.c(), "outbox") == 2);
}

TEST_CASE("a record holds what the parser read, the clock's time, a UUIDv7 and the node id",
          "[unit]") {
    node n;
    n.clk.set_ms(1772186400123);  // 2026-02-27 10:00:00.123
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid));
    const std::string bytes = envelope("SEKOLAH2", "H0B3", "MSG,URGENCY:2,TEXT:Generator rosak", 3);
    REQUIRE(ingest_ok(s, bytes) == ingest_outcome::stored);

    const field::parse_result expected = field::parse_gateway_message(hub, bytes);
    REQUIRE(expected.ok);
    auto r = query_ok(n.c(),
                      "select duck_id, topic, message_id, payload, payload_encoding, path, "
                      "origin, destination, hops, duck_type, created_at, updated_at, uuid, "
                      "source_node from cluster_data");
    REQUIRE(r.size() == 1);
    const db::row& row = r[0];
    CHECK(row.get_text(0) == expected.record.duck_id);
    CHECK(row.get_text(0) == "SEKOLAH2");
    CHECK(row.get_text(1) == "status");
    CHECK(row.get_text(2) == "H0B3");
    CHECK(row.get_text(3) == expected.record.payload);
    CHECK(row.get_text(3) == "MSG,URGENCY:2,TEXT:Generator rosak");
    CHECK(row.is_null(4));
    CHECK(row.is_null(5));
    CHECK(row.is_null(6));
    CHECK(row.is_null(7));
    CHECK(row.get_int(8) == 3);
    CHECK(row.get_int(9) == 2);
    CHECK(row.get_text(10) == "2026-02-27 10:00:00");
    CHECK(row.get_text(11) == "2026-02-27 10:00:00");
    const std::string uuid = row.get_text(12).value_or("");
    CHECK(is_uuid(uuid));
    CHECK(uuid[14] == '7');
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "%08llx-%04llx",
                  static_cast<unsigned long long>(1772186400123 >> 16),
                  static_cast<unsigned long long>(1772186400123 & 0xffff));
    CHECK(uuid.substr(0, 13) == prefix);  // the UUID's time is the clock's
    CHECK(row.get_text(13) == "field-node-7");
}

TEST_CASE("every record gets its own uuid", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::offline));
    for (int i = 0; i < 50; ++i) {
        REQUIRE(ingest_ok(s, envelope("DUCK0001", "M" + std::to_string(100 + i), "x")) ==
                ingest_outcome::stored);
    }
    auto r = query_ok(n.c(), "select count(distinct uuid), count(uuid) from cluster_data");
    CHECK(r[0].get_int(0) == 50);
    CHECK(r[0].get_int(1) == 50);
}

TEST_CASE("an empty node id leaves source_node NULL rather than empty", "[unit]") {
    node n;
    ingest_options o = options_for(mode::offline);
    o.node_id.clear();
    ingest_store s(n.c(), n.clk, o);
    REQUIRE(ingest_ok(s, envelope("DUCK0001", "AAAA", "x")) == ingest_outcome::stored);
    CHECK(query_ok(n.c(), "select source_node from cluster_data")[0].is_null(0));
}

TEST_CASE("binary data is stored as the gateway's base64 with payload_encoding base64", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid));
    // base64 of the bytes 00 ff 10 80: not text, so the parser keeps the base64.
    const std::string bytes =
        "{\"eventType\":\"gps\",\"MessageID\":\"B64A\",\"payload\":{\"hops\":0,\"duckType\":3,"
        "\"DeviceID\":\"DUCK0009\",\"Message\":\"AP8QgA==\",\"encoding\":\"base64\"}}";
    const field::parse_result parsed = field::parse_gateway_message(hub, bytes);
    REQUIRE(parsed.ok);
    REQUIRE(parsed.record.payload_encoding == std::optional<std::string>("base64"));
    REQUIRE(ingest_ok(s, bytes) == ingest_outcome::stored);
    auto r = query_ok(n.c(), "select payload, payload_encoding from cluster_data");
    CHECK(r[0].get_text(0) == "AP8QgA==");
    CHECK(r[0].get_text(1) == "base64");
    // The same text marked as text is other data: not a duplicate of it.
    REQUIRE(ingest_ok(s, envelope("DUCK0009", "B64A", "AP8QgA==", 0)) == ingest_outcome::stored);
    CHECK(count(n.c(), "cluster_data") == 2);
}

TEST_CASE("ingest_outcome names are stable", "[unit]") {
    CHECK(std::string(field::ingest_outcome_name(ingest_outcome::stored)) == "stored");
    CHECK(std::string(field::ingest_outcome_name(ingest_outcome::mesh_duplicate)) ==
          "mesh_duplicate");
    CHECK(std::string(field::ingest_outcome_name(ingest_outcome::quarantined)) == "quarantined");
}

// ---- quarantine -------------------------------------------------------------------------

TEST_CASE("a message that is not a record is quarantined with its exact bytes, topic and reason",
          "[unit]") {
    node n;
    n.clk.set_ms(1772186405999);
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid));
    const std::string bytes = every_byte();
    const field::parse_result parsed = field::parse_gateway_message("owl/device/x", bytes);
    REQUIRE_FALSE(parsed.ok);
    REQUIRE(ingest_ok(s, bytes, "owl/device/x") == ingest_outcome::quarantined);

    auto r = query_ok(n.c(), "select received_at, topic, raw, reason, typeof(raw) from quarantine");
    REQUIRE(r.size() == 1);
    CHECK(r[0].get_text(0) == "2026-02-27 10:00:05");
    CHECK(r[0].get_text(1) == "owl/device/x");
    CHECK(r[0].get_text(2) == bytes);
    CHECK(r[0].get_text(3) == parsed.reason);
    CHECK_FALSE(parsed.reason.empty());
    CHECK(r[0].get_text(4) == "blob");
    CHECK(count(n.c(), "cluster_data") == 0);
    CHECK(count(n.c(), "outbox") == 0);
}

TEST_CASE("an empty message and an oversized one are quarantined whole", "[unit]") {
    node n;
    ingest_options o = options_for(mode::offline);
    o.limits.max_bytes = 64;
    ingest_store s(n.c(), n.clk, o);
    const std::string big = envelope("DUCK0001", "BIG1", std::string(200, 'a'));
    REQUIRE(ingest_ok(s, "") == ingest_outcome::quarantined);
    REQUIRE(ingest_ok(s, big) == ingest_outcome::quarantined);
    auto r = query_ok(n.c(), "select raw from quarantine order by id");
    REQUIRE(r.size() == 2);
    CHECK(r[0].get_text(0) == std::string());
    CHECK(r[1].get_text(0) == big);
    CHECK(count(n.c(), "cluster_data") == 0);
}

TEST_CASE("a long topic is cut to 255 bytes on a character boundary", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::offline));
    const auto stored_topic = [&] {
        return query_ok(n.c(), "select topic from quarantine order by id desc")[0]
            .get_text(0)
            .value();
    };
    std::string two_byte_chars;
    for (int i = 0; i < 200; ++i) two_byte_chars += "\xc3\xa9";

    // "a" then 2-byte characters: the 255th byte ends a character, so 255 bytes are kept.
    const std::string even = "a" + two_byte_chars;
    REQUIRE(ingest_ok(s, "not json", even) == ingest_outcome::quarantined);
    CHECK(stored_topic() == even.substr(0, 255));

    // "ab" then 2-byte characters: the 255th byte starts one, so it is left out with it.
    const std::string odd = "ab" + two_byte_chars;
    REQUIRE(ingest_ok(s, "not json", odd) == ingest_outcome::quarantined);
    CHECK(stored_topic() == odd.substr(0, 254));

    const std::string exactly(255, 't');
    REQUIRE(ingest_ok(s, "not json", exactly) == ingest_outcome::quarantined);
    CHECK(stored_topic() == exactly);
}

TEST_CASE("a topic with bytes no text column can hold is stored with '?' for them", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::offline));
    const std::string topic("hub/\xff\xfe/\0x/\xc3\xa9", 12);
    REQUIRE(ingest_ok(s, "not json", topic) == ingest_outcome::quarantined);
    CHECK(query_ok(n.c(), "select topic from quarantine")[0].get_text(0) ==
          "hub/?"
          "?/?x/\xc3\xa9");
}

TEST_CASE("a record the database refuses as data is quarantined with the database's reason",
          "[unit][fault]") {
    node n;
    faulty_connection f(n.c());
    // Calls: begin, find duplicate, insert record: the third is refused as bad data.
    f.arm(fault{3, errc::invalid_argument, "value too long for type character varying(255)"});
    ingest_store s(f, n.clk, options_for(mode::hybrid));
    const std::string bytes = envelope("DUCK0001", "AAAA", "hello");
    REQUIRE(ingest_ok(s, bytes) == ingest_outcome::quarantined);
    REQUIRE(f.fired());
    CHECK(f.log()[2].operation == "insert");
    auto r = query_ok(n.c(), "select raw, reason from quarantine");
    REQUIRE(r.size() == 1);
    CHECK(r[0].get_text(0) == bytes);
    CHECK_THAT(r[0].get_text(1).value(),
               Catch::StartsWith("the database refused the record: ingest.store: insert record: "
                                 "faulty.insert: value too long"));
    CHECK(count(n.c(), "cluster_data") == 0);
    CHECK(count(n.c(), "outbox") == 0);
}

// ---- mesh duplicates --------------------------------------------------------------------

TEST_CASE("a mesh duplicate inside the window is counted and stores no second record", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid));
    REQUIRE(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air naik", 1)) == ingest_outcome::stored);
    n.clk.advance_s(30);
    // Another path through the mesh: more hops, same message.
    REQUIRE(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air naik", 3)) ==
            ingest_outcome::mesh_duplicate);
    n.clk.advance_s(1);
    REQUIRE(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air naik", 2)) ==
            ingest_outcome::mesh_duplicate);

    CHECK(count(n.c(), "cluster_data") == 1);
    CHECK(count(n.c(), "outbox") == 1);
    auto r = query_ok(n.c(),
                      "select d.cluster_data_id, d.received_at, d.hops, c.id, c.hops from "
                      "mesh_duplicates d join cluster_data c on c.id = d.cluster_data_id "
                      "order by d.id");
    REQUIRE(r.size() == 2);
    CHECK(r[0].get_text(1) == "2025-11-25 00:00:30");
    CHECK(r[0].get_int(2) == 3);
    CHECK(r[1].get_text(1) == "2025-11-25 00:00:31");
    CHECK(r[1].get_int(2) == 2);
    CHECK(r[0].get_int(4) == 1);  // the record keeps the first copy's hops
}

TEST_CASE("the same DeviceID and MessageID with other data is a new record", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid));
    REQUIRE(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air naik")) == ingest_outcome::stored);
    n.clk.advance_s(5);
    CHECK(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air surut")) == ingest_outcome::stored);
    CHECK(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "AIR NAIK")) == ingest_outcome::stored);
    CHECK(ingest_ok(s, envelope("KAMPUNG2", "4QZ7", "air naik")) == ingest_outcome::stored);
    CHECK(ingest_ok(s, envelope("KAMPUNG1", "4QZ8", "air naik")) == ingest_outcome::stored);
    CHECK(count(n.c(), "cluster_data") == 5);
    CHECK(count(n.c(), "outbox") == 5);
    CHECK(count(n.c(), "mesh_duplicates") == 0);
}

TEST_CASE("the window ends duplicate_window_s after the record was stored", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid, 600));
    const std::string bytes = envelope("KAMPUNG1", "4QZ7", "air naik");
    REQUIRE(ingest_ok(s, bytes) == ingest_outcome::stored);
    n.clk.advance_s(600);  // exactly at the edge: still inside
    CHECK(ingest_ok(s, bytes) == ingest_outcome::mesh_duplicate);
    n.clk.advance_s(1);  // 601 s after the record: a new message that reused the MessageID
    CHECK(ingest_ok(s, bytes) == ingest_outcome::stored);
    CHECK(count(n.c(), "cluster_data") == 2);
    CHECK(count(n.c(), "outbox") == 2);
    n.clk.advance_s(10);  // later copies belong to the newest record
    CHECK(ingest_ok(s, bytes) == ingest_outcome::mesh_duplicate);
    CHECK(
        query_ok(n.c(), "select cluster_data_id from mesh_duplicates order by id desc")[0].get_int(
            0) == 2);
}

TEST_CASE("the window compares updated_at, the time the record was stored", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::offline));
    const std::string bytes = envelope("KAMPUNG1", "4QZ7", "air naik");
    REQUIRE(ingest_ok(s, bytes) == ingest_outcome::stored);
    // A record whose created_at is old but which was stored (updated) just now matches.
    REQUIRE(n.c().exec("update cluster_data set created_at = '2020-01-01 00:00:00'"));
    n.clk.advance_s(10);
    CHECK(ingest_ok(s, bytes) == ingest_outcome::mesh_duplicate);
    // And one with a recent created_at but an old updated_at does not.
    REQUIRE(
        n.c().exec("update cluster_data set created_at = '2025-11-25 00:00:00', updated_at = "
                   "'2025-11-24 00:00:00'"));
    CHECK(ingest_ok(s, bytes) == ingest_outcome::stored);
}

TEST_CASE("a window of 0 disables duplicate detection", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid, 0));
    const std::string bytes = envelope("KAMPUNG1", "4QZ7", "air naik");
    for (int i = 0; i < 3; ++i) CHECK(ingest_ok(s, bytes) == ingest_outcome::stored);
    CHECK(count(n.c(), "cluster_data") == 3);
    CHECK(count(n.c(), "outbox") == 3);
    CHECK(count(n.c(), "mesh_duplicates") == 0);
}

TEST_CASE("deleting a record deletes its mesh duplicates", "[unit]") {
    node n;
    ingest_store s(n.c(), n.clk, options_for(mode::hybrid));
    const std::string bytes = envelope("KAMPUNG1", "4QZ7", "air naik");
    REQUIRE(ingest_ok(s, bytes) == ingest_outcome::stored);
    REQUIRE(ingest_ok(s, bytes) == ingest_outcome::mesh_duplicate);
    REQUIRE(n.c().exec("delete from cluster_data"));
    CHECK(count(n.c(), "mesh_duplicates") == 0);
    CHECK(count(n.c(), "outbox") == 0);
}

TEST_CASE("the duplicate lookup seeks the (duck_id, message_id, created_at) index", "[unit]") {
    node n;
    faulty_connection f(n.c());
    ingest_store s(f, n.clk, options_for(mode::offline));
    REQUIRE(ingest_ok(s, envelope("KAMPUNG1", "4QZ7", "air naik")) == ingest_outcome::stored);
    std::string lookup;
    for (const auto& call : f.log()) {
        if (call.operation == "query") lookup = call.sql;
    }
    REQUIRE_THAT(lookup, Catch::Contains("from cluster_data"));
    std::string plan;
    for (const auto& row : query_ok(n.c(), "EXPLAIN QUERY PLAN " + lookup,
                                    {std::string("KAMPUNG1"), std::string("4QZ7"),
                                     std::string("2025-11-24 23:50:00"), std::string("air naik")})
                               .data) {
        plan += row.get_text(3).value_or("") + "\n";
    }
    INFO(plan);
    CHECK_THAT(plan, Catch::Contains("USING INDEX cluster_data_duck_id_message_id_created_at_index "
                                     "(duck_id=? AND message_id=?)"));
}

// ---- failures ---------------------------------------------------------------------------

TEST_CASE("the faulty connection fails exactly the Nth counted call and passes the rest",
          "[unit][fault]") {
    node n;
    faulty_connection f(n.c(), fault{2});
    CHECK(f.begin());
    auto failed = f.exec(
        "insert into quarantine (received_at, topic, raw, reason) values "
        "('2025-11-25 00:00:00', 't', x'00', 'r')",
        {});
    REQUIRE_FALSE(failed);
    CHECK(failed.error().code() == errc::io_error);
    CHECK(failed.error().message() == "faulty.exec: disk full (injected at call 2)");
    CHECK(f.rollback());  // never counted, never failed
    CHECK(f.query("select 1", {}));
    CHECK(f.calls() == 3);
    CHECK(f.failures() == 1);
    CHECK(count(n.c(), "quarantine") == 0);  // the failed call never ran

    f.arm(fault{1, errc::unavailable, "busy", test::fault_timing::after, true});
    auto ran = f.exec(
        "insert into quarantine (received_at, topic, raw, reason) values "
        "('2025-11-25 00:00:00', 't', x'00', 'r')",
        {});
    CHECK_FALSE(ran);
    CHECK(count(n.c(), "quarantine") == 1);  // timing after: it ran, then "failed"
    CHECK_FALSE(f.query("select 1", {}));    // sticky
    f.disarm();
    CHECK(f.query("select 1", {}));
}

namespace {

struct scenario {
    const char* name;
    mode m;
    std::string prior;  // ingested first, without faults ("" = nothing)
    std::string bytes;
    ingest_outcome outcome;
    std::map<std::string, std::int64_t> added;  // rows the successful ingest adds
};

std::vector<scenario> scenarios() {
    const std::string message = envelope("KAMPUNG1", "4QZ7", "air naik");
    return {
        {"a new record in hybrid mode",
         mode::hybrid,
         "",
         message,
         ingest_outcome::stored,
         {{"cluster_data", 1}, {"outbox", 1}}},
        {"a new record in offline mode",
         mode::offline,
         "",
         message,
         ingest_outcome::stored,
         {{"cluster_data", 1}}},
        {"a mesh duplicate",
         mode::hybrid,
         message,
         envelope("KAMPUNG1", "4QZ7", "air naik", 4),
         ingest_outcome::mesh_duplicate,
         {{"mesh_duplicates", 1}}},
        {"a quarantined message",
         mode::hybrid,
         message,
         every_byte(),
         ingest_outcome::quarantined,
         {{"quarantine", 1}}},
    };
}

}  // namespace

TEST_CASE(
    "fail at N: a failed ingest leaves the database exactly as it was and a retry stores "
    "the message once",
    "[unit][fault]") {
    for (const scenario& sc : scenarios()) {
        DYNAMIC_SECTION(sc.name) {
            std::uint64_t n_fault = 1;
            for (;; ++n_fault) {
                INFO("failing call " << n_fault);
                node n;
                faulty_connection f(n.c());
                ingest_store s(f, n.clk, options_for(sc.m));
                if (!sc.prior.empty()) REQUIRE(ingest_ok(s, sc.prior) == ingest_outcome::stored);
                n.clk.advance_s(5);
                const snapshot before = dump_all(n.c());
                const auto counts_before = counts(n.c());

                f.arm(fault{n_fault});
                auto r = s.ingest(hub, sc.bytes);
                if (!f.fired()) {
                    // Past the last call: the ingest ran whole.
                    INFO(r.error().to_string());
                    REQUIRE(r);
                    CHECK(*r == sc.outcome);
                    break;
                }
                INFO("failed " << f.log().back().operation);
                REQUIRE_FALSE(r);
                CHECK(r.error().code() == errc::io_error);
                CHECK_THAT(r.error().message(), Catch::StartsWith("ingest.store: "));
                CHECK_THAT(r.error().message(), Catch::Contains("disk full"));
                CHECK(dump_all(n.c()) == before);
                CHECK(counts(n.c()) == counts_before);
                CHECK(integrity(n.c()) == "ok");

                // The broker redelivers: with the fault gone it is stored exactly once.
                f.disarm();
                auto retry = s.ingest(hub, sc.bytes);
                INFO(retry.error().to_string());
                REQUIRE(retry);
                CHECK(*retry == sc.outcome);
                auto expected = counts_before;
                for (const auto& [table, added] : sc.added) expected[table] += added;
                CHECK(counts(n.c()) == expected);
                CHECK(integrity(n.c()) == "ok");
            }
            // begin, the lookup or the quarantine insert, ..., commit: every one was failed.
            CHECK(n_fault >= 4);
        }
    }
}

TEST_CASE("a commit that reached the disk but reported failure makes the redelivery a duplicate",
          "[unit][fault]") {
    node n;
    faulty_connection f(n.c());
    ingest_store s(f, n.clk, options_for(mode::hybrid));
    const std::string bytes = envelope("KAMPUNG1", "4QZ7", "air naik");
    // begin, lookup, insert record, insert outbox entry, commit (5): runs, then "fails".
    f.arm(fault{5, errc::io_error, "disk full", test::fault_timing::after});
    auto r = s.ingest(hub, bytes);
    REQUIRE(f.fired());
    REQUIRE(f.log().back().operation == "commit");
    REQUIRE_FALSE(r);  // so the caller does not acknowledge; the broker sends it again
    f.disarm();
    n.clk.advance_s(2);
    CHECK(ingest_ok(s, bytes) == ingest_outcome::mesh_duplicate);
    CHECK(count(n.c(), "cluster_data") == 1);
    CHECK(count(n.c(), "outbox") == 1);
}

TEST_CASE("a database that is not migrated fails the ingest and names the step", "[unit][fault]") {
    temp_dir dir;
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = dir.file("empty.sqlite");
    auto c = db::open(o);
    REQUIRE(c);
    manual_clock clk;
    ingest_store s(**c, clk, options_for(mode::hybrid));
    auto r = s.ingest(hub, envelope("KAMPUNG1", "4QZ7", "air naik"));
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::StartsWith("ingest.store: find duplicate: "));
    auto q = s.ingest(hub, "not json");
    REQUIRE_FALSE(q);
    CHECK_THAT(q.error().message(), Catch::StartsWith("ingest.store: insert quarantine: "));
    // Nothing was left open: a new transaction can start.
    CHECK((*c)->begin());
    CHECK((*c)->rollback());
}
