// The central store on SQLite files: identity (uuid, derived seed key, legacy rows), mesh
// duplicates, chunking, refused rows, and fail-at-N loops proving that a failed call
// stores nothing and that its retry stores every record exactly once.
// The same contract against PostgreSQL and MariaDB:
// tests/integration/central_store_integration_test.cpp.
#include <catch2/catch.hpp>

#include <cctype>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "faulty_connection.hpp"
#include "opendms/central/central_store.hpp"
#include "opendms/central/pg_array.hpp"
#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/timefmt.hpp"
#include "opendms/uuid.hpp"
#include "store_snapshot.hpp"
#include "test_servers.hpp"

using namespace opendms;
using central::derived_uuid;
using central::generic_plan_memo;
using central::store_options;
using central::store_outcome;
using central::store_records;
using central::store_status;
using test::count;
using test::fault;
using test::faulty_connection;
using test::query_ok;
using test::temp_dir;

namespace {

constexpr unix_seconds t0 = 1772186400;   // 2026-02-27 10:00:00
constexpr unix_seconds now = 1772190000;  // 2026-02-27 11:00:00

// A migrated SQLite file in its own directory.
struct central_db {
    temp_dir dir;
    std::unique_ptr<db::connection> conn;

    central_db() {
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = dir.file("central.sqlite");
        auto c = db::open(o);
        INFO(c.error().to_string());
        REQUIRE(c);
        conn = std::move(*c);
        auto r = db::migrator(*conn).migrate();
        INFO(r.error().to_string());
        REQUIRE(r);
    }

    db::connection& c() { return *conn; }
};

// A record from our field node: a uuid made at `time`.
cluster_data record(const std::string& duck, const std::string& message_id,
                    const std::string& payload, unix_seconds time = t0) {
    cluster_data r;
    r.duck_id = duck;
    r.topic = "status";
    r.message_id = message_id;
    r.payload = payload;
    r.path = duck + ",PAPA0001";
    r.hops = 1;
    r.duck_type = 3;
    r.created_at = time;
    r.uuid = new_uuid_v7(time * 1000);
    r.source_node = "node-a";
    return r;
}

// A record as a seed (Laravel) field node sends it: no uuid, no source node.
cluster_data seed_record(const std::string& duck, const std::string& message_id,
                         const std::string& payload, std::optional<unix_seconds> time = t0) {
    cluster_data r = record(duck, message_id, payload);
    r.uuid.reset();
    r.source_node.reset();
    r.created_at = time;
    return r;
}

// n distinct records, each its own packet.
std::vector<cluster_data> batch(std::size_t n, const std::string& prefix = "D") {
    std::vector<cluster_data> out;
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(record(prefix + std::to_string(i), "M" + std::to_string(i % 10),
                             "payload " + std::to_string(i), t0 + static_cast<unix_seconds>(i)));
    }
    return out;
}

std::vector<store_outcome> store_ok(db::connection& c, const std::vector<cluster_data>& records,
                                    const std::string& node = "node-a",
                                    std::int64_t window_s = 600) {
    store_options o;
    o.mesh_window_s = window_s;
    auto r = store_records(c, records, node, now, o);
    INFO(r.error().to_string());
    REQUIRE(r);
    REQUIRE(r->size() == records.size());
    return *r;
}

std::size_t count_status(const std::vector<store_outcome>& out, store_status s) {
    std::size_t n = 0;
    for (const auto& o : out) n += o.status == s ? 1 : 0;
    return n;
}

std::int64_t rows(db::connection& c) {
    return count(c, "cluster_data");
}

// Every uuid of `records` is in exactly one row.
void require_each_once(db::connection& c, const std::vector<cluster_data>& records) {
    for (const auto& r : records) {
        auto n = query_ok(c, "select count(*) from cluster_data where uuid = ?", {*r.uuid});
        INFO(*r.uuid);
        REQUIRE(n[0].get_int(0) == 1);
    }
}

// A SQLite table that refuses what PostgreSQL's varchar(32) would: an origin too long.
void refuse_long_origins(db::connection& c) {
    REQUIRE(
        c.execute_script("create trigger refuse_long_origin before insert on cluster_data "
                         "when length(new.origin) > 32 begin select raise(abort, "
                         "'value too long for type character varying(32)'); end"));
}

}  // namespace

// ---- names and the derived key -----------------------------------------------------------

TEST_CASE("store_status names are stable", "[unit]") {
    CHECK(std::string(central::store_status_name(store_status::stored)) == "stored");
    CHECK(std::string(central::store_status_name(store_status::duplicate)) == "duplicate");
    CHECK(std::string(central::store_status_name(store_status::mesh_duplicate)) ==
          "mesh_duplicate");
    CHECK(std::string(central::store_status_name(store_status::refused)) == "refused");
}

TEST_CASE("the derived uuid is SHA-256 of duck_id, message_id and time as a UUIDv8", "[unit]") {
    // Python: hashlib.sha256(b'DUCK0001\0A1B2\x002026-02-27 10:00:00'), first 16 bytes,
    // version and variant bits set.
    const std::string u = derived_uuid("DUCK0001", "A1B2", t0);
    CHECK(u == "6bcec991-f6d3-884a-a7d9-94941254cf98");
    CHECK(is_uuid(u));
    CHECK(u[14] == '8');
    CHECK(std::string("89ab").find(u[19]) != std::string::npos);
    CHECK(derived_uuid("DUCK0001", "A1B2", t0) == u);
}

TEST_CASE("the derived uuid changes with each of its three inputs", "[unit]") {
    const std::string u = derived_uuid("DUCK0001", "A1B2", t0);
    CHECK(derived_uuid("DUCK0002", "A1B2", t0) != u);
    CHECK(derived_uuid("DUCK0001", "A1B3", t0) != u);
    CHECK(derived_uuid("DUCK0001", "A1B2", t0 + 1) != u);
    // The NUL separators keep ("AB", "C") and ("A", "BC") apart.
    CHECK(derived_uuid("AB", "C", t0) != derived_uuid("A", "BC", t0));
}

// ---- PostgreSQL array literals ----------------------------------------------------------

TEST_CASE("array literals quote every text, escape quotes and backslashes, and keep NULL apart",
          "[unit]") {
    central::pg_array a;
    a.add(std::string_view("plain"));
    a.add(std::string_view("with \"quotes\" and \\ backslash"));
    a.add(std::string_view("commas, {braces} and spaces"));
    a.add(std::string_view("NULL"));  // the word, not SQL NULL
    a.add(std::string_view(""));
    a.add_null();
    a.add(std::optional<std::string>());
    a.add(std::optional<std::string>("opt"));
    a.add(std::string_view("Malay dan \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\xa6\x86"));
    CHECK(a.size() == 9);
    CHECK(a.take() ==
          "{\"plain\",\"with \\\"quotes\\\" and \\\\ backslash\",\"commas, {braces} and "
          "spaces\",\"NULL\",\"\",NULL,NULL,\"opt\",\"Malay dan \xe6\x97\xa5\xe6\x9c\xac "
          "\xf0\x9f\xa6\x86\"}");
    CHECK(a.size() == 0);  // take() leaves it empty, ready for the next statement
    CHECK(a.take() == "{}");
}

TEST_CASE("array literals write integers bare, negative ones and NULLs included", "[unit]") {
    central::pg_array a;
    a.add(std::int64_t{0});
    a.add(std::int64_t{-7});
    a.add(std::optional<std::int64_t>());
    a.add(std::optional<std::int64_t>(9223372036854775807LL));
    CHECK(a.take() == "{0,-7,NULL,9223372036854775807}");
}

// ---- packet lock buckets ---------------------------------------------------------------

TEST_CASE("packet lock buckets are fixed values below 1024 that every instance agrees on",
          "[unit]") {
    // FNV-1a 64 of "DUCK0001\0A1B2" modulo 1024 is 547 (computed in Python); pinned, because
    // instances of different versions sharing one database must lock the same buckets.
    CHECK(central::packet_lock_bucket("DUCK0001", "A1B2") ==
          central::packet_lock_bucket("DUCK0001", "A1B2"));
    CHECK(central::packet_lock_bucket("DUCK0001", "A1B2") == 547);
    CHECK(central::packet_lock_bucket("AB", "C") != central::packet_lock_bucket("A", "BC"));
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 5000; ++i) {
        const std::uint32_t b =
            central::packet_lock_bucket("DUCK" + std::to_string(i % 100), std::to_string(i));
        CHECK(b < central::packet_lock_buckets);
        seen.insert(b);
    }
    CHECK(seen.size() > 900);  // spread over the buckets, not a few of them
}

TEST_CASE("the plan memo keeps an answer for its age, then has none", "[unit]") {
    using namespace std::chrono_literals;
    const generic_plan_memo::clock::time_point t0{1000h};
    generic_plan_memo memo(60s);
    CHECK_FALSE(memo.get(t0).has_value());  // never asked
    memo.put(true, t0);
    CHECK(memo.get(t0) == std::optional<bool>(true));
    CHECK(memo.get(t0 + 59999ms) == std::optional<bool>(true));
    CHECK_FALSE(memo.get(t0 + 60s).has_value());
    memo.put(false, t0 + 60s);  // the newer answer replaces it, whatever it says
    CHECK(memo.get(t0 + 61s) == std::optional<bool>(false));
    generic_plan_memo never(0ms);  // age 0: every call asks
    never.put(true, t0);
    CHECK_FALSE(never.get(t0).has_value());
}

// ---- what a row holds ------------------------------------------------------------------

TEST_CASE("a stored record keeps every field, its own time and the sending node", "[unit]") {
    central_db d;
    cluster_data r = record("SEKOLAH2", "H0B3", "MSG,URGENCY:2");
    r.origin = "DUCK0001";
    r.destination = "PAPA0001";
    r.payload_encoding = "base64";
    auto out = store_ok(d.c(), {r}, "node-b");
    REQUIRE(out[0].status == store_status::stored);
    CHECK(out[0].id > 0);
    CHECK(out[0].duplicate_of == 0);
    auto row = query_ok(d.c(),
                        "select id, duck_id, topic, message_id, payload, payload_encoding, path, "
                        "origin, destination, hops, duck_type, created_at, updated_at, synced, "
                        "synced_at, uuid, source_node, received_from, duplicate_of "
                        "from cluster_data");
    REQUIRE(row.size() == 1);
    const db::row& x = row[0];
    CHECK(x.get_int(0) == out[0].id);
    CHECK(x.get_text(1) == "SEKOLAH2");
    CHECK(x.get_text(2) == "status");
    CHECK(x.get_text(3) == "H0B3");
    CHECK(x.get_text(4) == "MSG,URGENCY:2");
    CHECK(x.get_text(5) == "base64");
    CHECK(x.get_text(6) == "SEKOLAH2,PAPA0001");
    CHECK(x.get_text(7) == "DUCK0001");
    CHECK(x.get_text(8) == "PAPA0001");
    CHECK(x.get_int(9) == 1);
    CHECK(x.get_int(10) == 3);
    CHECK(x.get_text(11) == "2026-02-27 10:00:00");
    CHECK(x.get_text(12) == "2026-02-27 11:00:00");
    CHECK(x.is_null(13));
    CHECK(x.is_null(14));
    CHECK(x.get_text(15) == r.uuid);
    CHECK(x.get_text(16) == "node-a");
    CHECK(x.get_text(17) == "node-b");
    CHECK(x.is_null(18));
}

TEST_CASE("NULL fields stay NULL and an empty node name is stored as NULL", "[unit]") {
    central_db d;
    cluster_data r = record("DUCK0001", "A1B2", "x");
    r.payload.reset();
    r.path.reset();
    r.hops.reset();
    r.duck_type.reset();
    r.source_node.reset();
    store_ok(d.c(), {r}, "");
    auto x = query_ok(d.c(),
                      "select payload, path, hops, duck_type, source_node, received_from "
                      "from cluster_data");
    REQUIRE(x.size() == 1);
    for (std::size_t i = 0; i < 6; ++i) CHECK(x[0].is_null(i));
}

TEST_CASE("an empty call stores nothing and succeeds", "[unit]") {
    central_db d;
    CHECK(store_ok(d.c(), {}).empty());
    CHECK(rows(d.c()) == 0);
}

// ---- identity --------------------------------------------------------------------------

TEST_CASE("the same batch sent twice is stored once and the retry reports the same ids", "[unit]") {
    central_db d;
    const auto records = batch(75);
    auto first = store_ok(d.c(), records);
    CHECK(count_status(first, store_status::stored) == 75);
    auto second = store_ok(d.c(), records);
    CHECK(count_status(second, store_status::duplicate) == 75);
    for (std::size_t i = 0; i < records.size(); ++i) CHECK(second[i].id == first[i].id);
    CHECK(rows(d.c()) == 75);
    require_each_once(d.c(), records);
}

TEST_CASE("an upper-case uuid is stored lower-case and matches its lower-case retry", "[unit]") {
    central_db d;
    cluster_data r = record("DUCK0001", "A1B2", "x");
    const std::string lower = *r.uuid;
    std::string upper = lower;
    for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    r.uuid = upper;
    auto first = store_ok(d.c(), {r});
    CHECK(first[0].status == store_status::stored);
    CHECK(query_ok(d.c(), "select uuid from cluster_data")[0].get_text(0) == lower);
    r.uuid = lower;  // the same UUID (RFC 9562: case does not matter), sent again
    auto second = store_ok(d.c(), {r});
    CHECK(second[0].status == store_status::duplicate);
    CHECK(second[0].id == first[0].id);
    r.uuid = upper;
    CHECK(store_ok(d.c(), {r})[0].status == store_status::duplicate);
    CHECK(rows(d.c()) == 1);
}

TEST_CASE("records of several nodes stored in one call keep each its own received_from", "[unit]") {
    central_db d;
    const auto records = batch(3);
    const std::string a = "node-a", b = "node-b", none;
    std::vector<central::store_input> inputs = {
        {&records[0], &a}, {&records[1], &b}, {&records[2], &none}};
    auto out = store_records(d.c(), inputs, now, store_options{});
    REQUIRE(out);
    REQUIRE(out->size() == 3);
    auto got = query_ok(d.c(), "select received_from from cluster_data order by id");
    REQUIRE(got.size() == 3);
    CHECK(got[0].get_text(0) == "node-a");
    CHECK(got[1].get_text(0) == "node-b");
    CHECK(got[2].is_null(0));
}

TEST_CASE("a uuid already stored under another time is still a duplicate", "[unit]") {
    central_db d;
    cluster_data r = record("DUCK0001", "A1B2", "x");
    auto first = store_ok(d.c(), {r});
    r.created_at = t0 + 86400;  // a buggy sender: same key, other time
    r.payload = "y";
    auto second = store_ok(d.c(), {r});
    CHECK(second[0].status == store_status::duplicate);
    CHECK(second[0].id == first[0].id);
    CHECK(rows(d.c()) == 1);
}

TEST_CASE("the same uuid twice in one call is one row, the second a duplicate of the first",
          "[unit]") {
    central_db d;
    auto records = batch(70);
    records.push_back(records[3]);   // at 70: a later chunk than the first copy
    records.push_back(records[66]);  // at 71: the same chunk of 8 as the first copy
    auto out = store_ok(d.c(), records);
    CHECK(out[70].status == store_status::duplicate);
    CHECK(out[70].id == out[3].id);
    CHECK(out[71].status == store_status::duplicate);
    CHECK(out[71].id == out[66].id);
    CHECK(rows(d.c()) == 70);
}

TEST_CASE("outcomes come in the records' order with distinct ids for every chunk size", "[unit]") {
    for (std::size_t n : {1, 7, 8, 9, 63, 64, 65, 75, 200}) {
        DYNAMIC_SECTION("batch of " << n) {
            central_db d;
            const auto records = batch(n);
            auto out = store_ok(d.c(), records);
            std::set<std::int64_t> ids;
            for (std::size_t i = 0; i < n; ++i) {
                REQUIRE(out[i].status == store_status::stored);
                auto id = query_ok(d.c(), "select id from cluster_data where uuid = ?",
                                   {*records[i].uuid});
                REQUIRE(id.size() == 1);
                CHECK(id[0].get_int(0) == out[i].id);
                ids.insert(out[i].id);
            }
            CHECK(ids.size() == n);
            CHECK(rows(d.c()) == static_cast<std::int64_t>(n));
        }
    }
}

TEST_CASE("a seed record is stored under its derived uuid and its retry is a duplicate", "[unit]") {
    central_db d;
    const cluster_data r = seed_record("DUCK0001", "A1B2", "hello");
    auto first = store_ok(d.c(), {r}, "default");
    REQUIRE(first[0].status == store_status::stored);
    auto u = query_ok(d.c(), "select uuid, source_node, created_at from cluster_data");
    CHECK(u[0].get_text(0) == derived_uuid("DUCK0001", "A1B2", t0));
    CHECK(u[0].is_null(1));
    CHECK(u[0].get_text(2) == "2026-02-27 10:00:00");
    auto second = store_ok(d.c(), {r}, "default");
    CHECK(second[0].status == store_status::duplicate);
    CHECK(second[0].id == first[0].id);
    CHECK(rows(d.c()) == 1);
}

TEST_CASE("two seed messages sharing duck_id and message_id at different times are both kept",
          "[unit]") {
    central_db d;
    // A reused MessageID days later, with the same text: not the same message.
    auto out = store_ok(d.c(), {seed_record("DUCK0001", "A1B2", "ok", t0),
                                seed_record("DUCK0001", "A1B2", "ok", t0 + 5 * 86400)});
    CHECK(out[0].status == store_status::stored);
    CHECK(out[1].status == store_status::stored);
    CHECK(out[0].id != out[1].id);
    CHECK(rows(d.c()) == 2);
}

TEST_CASE("a seed record matches a legacy row without uuid on duck_id, message_id and time",
          "[unit]") {
    central_db d;
    // A row the Laravel central stored before ours: no uuid.
    REQUIRE(
        d.c().exec("insert into cluster_data (created_at, updated_at, duck_id, topic, "
                   "message_id, payload, hops, duck_type) values "
                   "('2026-02-27 10:00:00', '2026-02-27 10:00:00', 'DUCK0001', 'status', "
                   "'A1B2', 'hello', 1, 3)",
                   {}));
    const std::int64_t legacy =
        query_ok(d.c(), "select id from cluster_data")[0].get_int(0).value();
    auto out = store_ok(
        d.c(),
        {seed_record("DUCK0001", "A1B2", "hello"), seed_record("DUCK0001", "A1B2", "hello", t0 + 1),
         seed_record("duck0001", "A1B2", "hello")},
        "default", 0);
    CHECK(out[0].status == store_status::duplicate);
    CHECK(out[0].id == legacy);
    CHECK(out[1].status == store_status::stored);  // another time: another message
    CHECK(out[2].status == store_status::stored);  // duck_id compared byte for byte
    CHECK(rows(d.c()) == 3);
}

TEST_CASE("a record with its own uuid is never matched to a legacy row by key", "[unit]") {
    central_db d;
    REQUIRE(
        d.c().exec("insert into cluster_data (created_at, updated_at, duck_id, topic, "
                   "message_id, payload, hops, duck_type) values "
                   "('2026-02-27 10:00:00', '2026-02-27 10:00:00', 'DUCK0001', 'status', "
                   "'A1B2', 'hello', 1, 3)",
                   {}));
    auto out = store_ok(d.c(), {record("DUCK0001", "A1B2", "other text")});
    CHECK(out[0].status == store_status::stored);
    CHECK(rows(d.c()) == 2);
}

TEST_CASE("a seed record without created_at gets the request time and a fresh UUIDv7", "[unit]") {
    central_db d;
    const cluster_data r = seed_record("DUCK0001", "A1B2", "hello", std::nullopt);
    auto out = store_ok(d.c(), {r, r}, "default", 0);
    // Not recognisable when retried (the documented limit of the seed's wire form).
    CHECK(out[0].status == store_status::stored);
    CHECK(out[1].status == store_status::stored);
    auto x = query_ok(d.c(), "select created_at, uuid from cluster_data order by id");
    REQUIRE(x.size() == 2);
    CHECK(x[0].get_text(0) == "2026-02-27 11:00:00");
    const std::string u = x[0].get_text(1).value_or("");
    CHECK(is_uuid(u));
    CHECK(u[14] == '7');
    CHECK(x[0].get_text(1) != x[1].get_text(1));
}

// ---- mesh duplicates -------------------------------------------------------------------

TEST_CASE("a copy of a packet from a second node is stored and linked to the original", "[unit]") {
    central_db d;
    auto a = store_ok(d.c(), {record("DUCK0001", "A1B2", "hello", t0)}, "node-a");
    cluster_data copy = record("DUCK0001", "A1B2", "hello", t0 + 30);
    copy.path = "DUCK0001,MAMA0009,PAPA0002";
    copy.hops = 2;
    copy.source_node = "node-b";
    auto b = store_ok(d.c(), {copy}, "node-b");
    REQUIRE(b[0].status == store_status::mesh_duplicate);
    CHECK(b[0].duplicate_of == a[0].id);
    CHECK(b[0].id != a[0].id);
    auto x = query_ok(d.c(),
                      "select duplicate_of, path, hops, received_from from cluster_data "
                      "where id = ?",
                      {b[0].id});
    CHECK(x[0].get_int(0) == a[0].id);
    CHECK(x[0].get_text(1) == "DUCK0001,MAMA0009,PAPA0002");
    CHECK(x[0].get_int(2) == 2);
    CHECK(x[0].get_text(3) == "node-b");
    // Sent again, the copy is a plain duplicate of its own row.
    auto again = store_ok(d.c(), {copy}, "node-b");
    CHECK(again[0].status == store_status::duplicate);
    CHECK(again[0].id == b[0].id);
    CHECK(rows(d.c()) == 2);
}

TEST_CASE("the mesh window includes its edges on either side and nothing beyond", "[unit]") {
    central_db d;
    auto a = store_ok(d.c(), {record("DUCK0001", "A1B2", "hello", t0)});
    auto out = store_ok(d.c(), {record("DUCK0001", "A1B2", "hello", t0 + 600),
                                record("DUCK0001", "A1B2", "hello", t0 - 600),
                                record("DUCK0001", "A1B2", "hello", t0 + 601 + 600 + 600)});
    CHECK(out[0].status == store_status::mesh_duplicate);
    CHECK(out[0].duplicate_of == a[0].id);
    CHECK(out[1].status == store_status::mesh_duplicate);
    CHECK(out[1].duplicate_of == a[0].id);
    CHECK(out[2].status == store_status::stored);
}

TEST_CASE("a reused MessageID with other data is a new record, compared byte for byte", "[unit]") {
    central_db d;
    store_ok(d.c(), {record("DUCK0001", "A1B2", "hello")});
    cluster_data null_payload = record("DUCK0001", "A1B2", "");
    null_payload.payload.reset();
    cluster_data base64 = record("DUCK0001", "A1B2", "hello");
    base64.payload_encoding = "base64";
    auto out =
        store_ok(d.c(), {record("DUCK0001", "A1B2", "HELLO"), record("DUCK0001", "A1B2", "hello "),
                         record("DUCK0001", "A1B2", ""), null_payload, base64,
                         record("DUCK0002", "A1B2", "hello")});
    for (const auto& o : out) CHECK(o.status == store_status::stored);
    // ... and equal copies of the NULL-payload one are recognised.
    cluster_data null_copy = null_payload;
    null_copy.uuid = new_uuid_v7(t0 * 1000 + 5);
    auto again = store_ok(d.c(), {null_copy});
    CHECK(again[0].status == store_status::mesh_duplicate);
    CHECK(again[0].duplicate_of == out[3].id);
}

TEST_CASE("every further copy links to the oldest original, never to another copy", "[unit]") {
    central_db d;
    auto first = store_ok(d.c(), {record("DUCK0001", "A1B2", "hello", t0 + 10)});
    auto second = store_ok(d.c(), {record("DUCK0001", "A1B2", "hello", t0 + 20)});
    REQUIRE(second[0].status == store_status::mesh_duplicate);
    auto third = store_ok(d.c(), {record("DUCK0001", "A1B2", "hello", t0 + 30)});
    CHECK(third[0].status == store_status::mesh_duplicate);
    CHECK(third[0].duplicate_of == first[0].id);
}

TEST_CASE("copies inside one call link to the first copy, in one chunk or across chunks",
          "[unit]") {
    central_db d;
    auto records = batch(80);
    records[5] = record("DUCKX", "Z9Z9", "same packet", t0);
    records[6] = record("DUCKX", "Z9Z9", "same packet", t0 + 3);   // same chunk of 64
    records[70] = record("DUCKX", "Z9Z9", "same packet", t0 + 7);  // a later chunk
    records[72] = record("DUCKY", "Z9Z9", "other packet", t0);
    records[73] = record("DUCKY", "Z9Z9", "other packet", t0 + 1);  // same chunk of 8
    auto out = store_ok(d.c(), records);
    CHECK(out[5].status == store_status::stored);
    CHECK(out[6].status == store_status::mesh_duplicate);
    CHECK(out[6].duplicate_of == out[5].id);
    CHECK(out[70].status == store_status::mesh_duplicate);
    CHECK(out[70].duplicate_of == out[5].id);
    CHECK(out[72].status == store_status::stored);
    CHECK(out[73].status == store_status::mesh_duplicate);
    CHECK(out[73].duplicate_of == out[72].id);
    auto x = query_ok(d.c(), "select duplicate_of from cluster_data where id = ?", {out[6].id});
    CHECK(x[0].get_int(0) == out[5].id);
    CHECK(rows(d.c()) == 80);
    CHECK(count_status(out, store_status::stored) == 77);
}

TEST_CASE("a mesh window of 0 disables mesh duplicates but not identity", "[unit]") {
    central_db d;
    const cluster_data r = record("DUCK0001", "A1B2", "hello");
    store_ok(d.c(), {r}, "node-a", 0);
    auto out = store_ok(d.c(), {record("DUCK0001", "A1B2", "hello"), r}, "node-b", 0);
    CHECK(out[0].status == store_status::stored);
    CHECK(out[1].status == store_status::duplicate);
    CHECK(rows(d.c()) == 2);
}

// ---- refused rows ------------------------------------------------------------------------

TEST_CASE("a record the database refuses is reported with its reason and the others stored",
          "[unit]") {
    central_db d;
    refuse_long_origins(d.c());
    auto records = batch(10);
    records[4].origin = std::string(40, 'o');
    auto out = store_ok(d.c(), records);
    CHECK(count_status(out, store_status::stored) == 9);
    REQUIRE(out[4].status == store_status::refused);
    CHECK(out[4].id == 0);
    CHECK(out[4].reason.find("value too long") != std::string::npos);
    CHECK(rows(d.c()) == 9);
    auto gone =
        query_ok(d.c(), "select count(*) from cluster_data where uuid = ?", {*records[4].uuid});
    CHECK(gone[0].get_int(0) == 0);
    // The others are each stored once, with the ids reported.
    for (std::size_t i = 0; i < records.size(); ++i) {
        if (i == 4) continue;
        auto id = query_ok(d.c(), "select id from cluster_data where uuid = ?", {*records[i].uuid});
        REQUIRE(id.size() == 1);
        CHECK(id[0].get_int(0) == out[i].id);
    }
}

TEST_CASE("refused records in several chunks leave the rest of a large batch stored", "[unit]") {
    central_db d;
    refuse_long_origins(d.c());
    auto records = batch(150);
    for (std::size_t i : {0, 63, 64, 140, 149}) records[i].origin = std::string(33, 'o');
    records[100] = records[0];  // a duplicate of a refused record is refused too
    auto out = store_ok(d.c(), records);
    CHECK(count_status(out, store_status::refused) == 6);
    CHECK(count_status(out, store_status::stored) == 144);
    CHECK(rows(d.c()) == 144);
}

// ---- round trips -----------------------------------------------------------------------

TEST_CASE("a batch costs a few statements per chunk and none per record", "[unit]") {
    central_db d;
    faulty_connection f(d.c(), fault{});  // never fails: counts and logs the calls
    store_options o;
    const auto records = batch(640);
    auto r = store_records(f, records, "node-a", now, o);
    REQUIRE(r);
    // begin, per chunk of 64 a neighbour query and one INSERT ... RETURNING, commit.
    CHECK(f.calls() == 2 + 2 * 10);
    f.arm(fault{});
    REQUIRE(store_records(f, records, "node-a", now, o));  // all duplicates: no INSERT
    CHECK(f.calls() == 2 + 10);
    CHECK(d.c().cached_statements() <= 16);
}

// ---- failures ----------------------------------------------------------------------------

namespace {

// A call mixing every kind of outcome: new records, a duplicate of a stored one, a seed
// record, mesh copies inside one chunk and against a stored row, a refused record.
std::vector<cluster_data> mixed_batch(const cluster_data& stored) {
    auto records = batch(75, "F");
    records[1] = stored;                                      // duplicate
    records[2] = seed_record("SEED0001", "S1S1", "seed");     // derived key
    records[3] = record("COPY0001", "C1C1", "copy", t0);      // original
    records[4] = record("COPY0001", "C1C1", "copy", t0 + 2);  // copy, same chunk
    records[70] = record(stored.duck_id, stored.message_id, *stored.payload, t0 + 9);  // copy
    records[72] = records[3];  // same uuid again
    return records;
}

}  // namespace

TEST_CASE("a failure at any step stores nothing and the retry stores everything exactly once",
          "[unit][fault]") {
    for (errc code : {errc::io_error, errc::unavailable}) {
        DYNAMIC_SECTION(errc_name(code)) {
            central_db d;
            const cluster_data stored = record("OLD00001", "O1O1", "old");
            store_ok(d.c(), {stored});
            const auto records = mixed_batch(stored);
            const test::snapshot before = test::dump_all(d.c());
            faulty_connection f(d.c());
            std::uint64_t n = 1;
            for (;; ++n) {
                f.arm(fault{n, code, "injected"});
                auto r = store_records(f, records, "node-a", now, store_options{});
                if (!f.fired()) {
                    INFO(r.error().to_string());
                    REQUIRE(r);
                    break;
                }
                INFO("fault at call " << n);
                REQUIRE_FALSE(r);
                CHECK(r.error().code() == code);
                CHECK(r.error().retryable());
                REQUIRE(test::dump_all(d.c()) == before);
            }
            CHECK(n > 4);                         // the loop went through every step
            auto out = store_ok(d.c(), records);  // the loop's last call stored it all
            CHECK(count_status(out, store_status::duplicate) == 75);
            CHECK(rows(d.c()) == 1 + 75 - 2);  // minus the duplicate and the repeated uuid
        }
    }
}

TEST_CASE("a call that fails after any step's effect is retried into exactly one row each",
          "[unit][fault]") {
    const cluster_data stored = record("OLD00001", "O1O1", "old");
    const std::vector<cluster_data> sent = mixed_batch(stored);
    std::vector<cluster_data> records = sent;
    records[2].uuid = derived_uuid("SEED0001", "S1S1", t0);  // to count it below
    for (std::uint64_t n = 1;; ++n) {
        INFO("fault after call " << n);
        central_db d;
        store_ok(d.c(), {stored});
        // The call is made, then reported failed: an answer lost after the effect.
        faulty_connection f(d.c(), fault{n, errc::unavailable, "lost", test::fault_timing::after});
        auto failed = store_records(f, sent, "node-a", now, store_options{});
        const bool fired = f.fired();
        CHECK(failed.is_ok() == !fired);
        auto out = store_ok(d.c(), sent);  // the client's retry
        CHECK(count_status(out, store_status::refused) == 0);
        CHECK(rows(d.c()) == 74);
        require_each_once(d.c(), records);
        if (!fired) {
            CHECK(count_status(out, store_status::duplicate) == 75);
            break;
        }
    }
}

TEST_CASE("a commit that reached the disk but reported failure makes the retry all duplicates",
          "[unit][fault]") {
    central_db d;
    const auto records = batch(75);
    faulty_connection f(d.c());
    // Calls: begin, 3 chunks (64, 8, 1+1+1) x (neighbours, insert) = 10, commit = 12.
    f.arm(fault{12, errc::io_error, "disk full", test::fault_timing::after});
    auto r = store_records(f, records, "node-a", now, store_options{});
    REQUIRE(f.fired());
    REQUIRE(f.log().back().operation == "commit");
    REQUIRE_FALSE(r);
    auto out = store_ok(d.c(), records);
    CHECK(count_status(out, store_status::duplicate) == 75);
    CHECK(rows(d.c()) == 75);
    require_each_once(d.c(), records);
}

TEST_CASE("a failure while finding refused records rolls back the whole call", "[unit][fault]") {
    central_db d;
    refuse_long_origins(d.c());
    auto records = batch(20);
    records[9].origin = std::string(40, 'o');
    const test::snapshot before = test::dump_all(d.c());
    faulty_connection f(d.c());
    std::uint64_t n = 1;
    for (;; ++n) {
        f.arm(fault{n, errc::unavailable, "server closed the connection"});
        auto r = store_records(f, records, "node-a", now, store_options{});
        if (!f.fired()) {
            REQUIRE(r);
            CHECK(count_status(*r, store_status::refused) == 1);
            CHECK(count_status(*r, store_status::stored) == 19);
            break;
        }
        INFO("fault at call " << n);
        REQUIRE_FALSE(r);
        REQUIRE(test::dump_all(d.c()) == before);
    }
    // The careful pass (savepoints, row by row in the failing chunk) was walked through.
    CHECK(n > 20);
    CHECK(rows(d.c()) == 19);
}

TEST_CASE("a database that is not migrated fails the call and names the step", "[unit][fault]") {
    temp_dir dir;
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = dir.file("empty.sqlite");
    auto c = db::open(o);
    REQUIRE(c);
    auto r = store_records(**c, batch(3), "node-a", now, store_options{});
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("central.store: find neighbours") != std::string::npos);
}
