// The central store against real PostgreSQL and MariaDB (and a SQLite file), each in a
// fresh scratch database migrated by the migrator: the same contract on every dialect,
// idempotent retries, seed keys, mesh duplicates, refused rows, exact times, and two
// connections storing the same records at once without a duplicate row.
// Needs tests/support/servers.sh (tests/run_all.sh starts it).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "faulty_connection.hpp"
#include "opendms/central/central_store.hpp"
#include "opendms/central/pg_array.hpp"
#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/timefmt.hpp"
#include "opendms/uuid.hpp"
#include "test_servers.hpp"

using namespace opendms;
using central::derived_uuid;
using central::generic_plan_memo;
using central::store_options;
using central::store_outcome;
using central::store_records;
using central::store_status;
using test::scratch_database;

namespace {

constexpr unix_seconds t0 = 1772186400;   // 2026-02-27 10:00:00
constexpr unix_seconds now = 1772190000;  // 2026-02-27 11:00:00

db::dialect each_dialect() {
    return GENERATE(db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql);
}

db::dialect each_server() {
    return GENERATE(db::dialect::pgsql, db::dialect::mysql);
}

std::unique_ptr<db::connection> migrated(const scratch_database& s) {
    auto c = s.connect();
    auto r = db::migrator(*c).migrate();
    INFO(r.error().to_string());
    REQUIRE(r);
    return c;
}

db::rows query_ok(db::connection& c, const std::string& sql, const std::vector<db::value>& p = {}) {
    auto r = c.query(sql, p);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r);
    return std::move(*r);
}

std::int64_t rows(db::connection& c) {
    return query_ok(c, "select count(*) from cluster_data")[0].get_int(0).value();
}

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

cluster_data seed_record(const std::string& duck, const std::string& message_id,
                         const std::string& payload, unix_seconds time) {
    cluster_data r = record(duck, message_id, payload, time);
    r.uuid.reset();
    r.source_node.reset();
    return r;
}

std::vector<cluster_data> batch(std::size_t n, const std::string& prefix = "D") {
    std::vector<cluster_data> out;
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(record(prefix + std::to_string(i), "M" + std::to_string(i % 10),
                             "payload " + std::to_string(i), t0 + static_cast<unix_seconds>(i)));
    }
    return out;
}

std::vector<store_outcome> store_ok(db::connection& c, const std::vector<cluster_data>& records,
                                    const std::string& node = "node-a") {
    auto r = store_records(c, records, node, now, store_options{});
    INFO(r.error().to_string());
    REQUIRE(r);
    REQUIRE(r->size() == records.size());
    return *r;
}

std::size_t count_status(const std::vector<store_outcome>& out, store_status s) {
    return static_cast<std::size_t>(std::count_if(
        out.begin(), out.end(), [&](const store_outcome& o) { return o.status == s; }));
}

void require_each_once(db::connection& c, const std::vector<cluster_data>& records) {
    for (const auto& r : records) {
        auto n = query_ok(c, "select count(*) from cluster_data where uuid = ?", {*r.uuid});
        INFO(*r.uuid);
        REQUIRE(n[0].get_int(0) == 1);
    }
}

// Stores `records` in batches of `size`, retrying a batch while the error is retryable
// (deadlocks, busy SQLite file) as a client would. Records outcomes; thread-safe as long
// as each caller has its own connection.
struct client_run {
    std::vector<store_outcome> outcomes;
    std::string error;  // a non-retryable failure
    int retries = 0;
    std::vector<std::string> retried_for;  // the retryable errors, in order
};

/// Whether any retry of `run` waited out a lock timeout (a deadlock nobody detected).
bool waited_out_a_lock(const client_run& run) {
    for (const std::string& e : run.retried_for) {
        if (e.find("Lock wait timeout") != std::string::npos ||
            e.find("not granted within") != std::string::npos ||
            e.find("lock timeout") != std::string::npos) {
            return true;
        }
    }
    return false;
}

client_run store_in_batches(db::connection& c, const std::vector<cluster_data>& records,
                            std::size_t size, const std::string& node) {
    client_run run;
    for (std::size_t at = 0; at < records.size(); at += size) {
        std::vector<cluster_data> part(
            records.begin() + static_cast<std::ptrdiff_t>(at),
            records.begin() + static_cast<std::ptrdiff_t>(std::min(at + size, records.size())));
        for (;;) {
            auto r = store_records(c, part, node, now, store_options{});
            if (r) {
                run.outcomes.insert(run.outcomes.end(), r->begin(), r->end());
                break;
            }
            if (!r.error().retryable() || ++run.retries > 1000) {
                run.error = r.error().to_string();
                return run;
            }
            run.retried_for.push_back(r.error().to_string());
        }
    }
    return run;
}

// Forwards every call to a real connection; `on_query` runs before each query() and exec()
// with its SQL, so a test can look at the session (on `inner`, inside the store's
// transaction) or act between two statements.
class spy_connection final : public db::connection {
public:
    explicit spy_connection(db::connection& inner) : inner_(inner) {}

    std::function<void(std::string_view sql, const std::vector<db::value>& params)> on_query;

    db::dialect kind() const noexcept override { return inner_.kind(); }
    status execute_script(std::string_view sql) override { return inner_.execute_script(sql); }
    result<std::int64_t> exec(std::string_view sql, const std::vector<db::value>& p) override {
        if (on_query) on_query(sql, p);
        return inner_.exec(sql, p);
    }
    result<db::rows> query(std::string_view sql, const std::vector<db::value>& p) override {
        if (on_query) on_query(sql, p);
        return inner_.query(sql, p);
    }
    result<std::int64_t> insert(std::string_view sql, const std::vector<db::value>& p) override {
        return inner_.insert(sql, p);
    }
    status begin() override { return inner_.begin(); }
    status commit() override { return inner_.commit(); }
    status rollback() override { return inner_.rollback(); }
    result<bool> table_exists(std::string_view t) override { return inner_.table_exists(t); }
    result<bool> column_exists(std::string_view t, std::string_view c) override {
        return inner_.column_exists(t, c);
    }

private:
    db::connection& inner_;
};

// The statements that read the neighbours: the neighbour query, and on PostgreSQL the
// statement that reads them and inserts the new originals together ("with k as ...").
bool is_neighbour_query(std::string_view sql) {
    return (sql.substr(0, 7) == "select " || sql.substr(0, 10) == "with k as ") &&
           sql.find("duplicate_of") != std::string_view::npos;
}

std::string mysql_bucket_lock(std::uint32_t bucket, int wait_s) {
    return "select get_lock(concat('opendms.', left(database(), 40), '.', " +
           std::to_string(bucket) + "), " + std::to_string(wait_s) + ")";
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("a batch is stored with every field and its exact time, and a retry changes nothing",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto records = batch(75);
        const std::string malay_and_duck = "Air naik paras lutut \xf0\x9f\xa6\x86 di Kg Pasir";
        records[0].payload = malay_and_duck;
        records[1].created_at = 951827696;   // 2000-02-29 12:34:56
        records[2].created_at = 2147483647;  // 2038-01-19 03:14:07, MySQL's last TIMESTAMP
        records[3].payload = "'; drop table cluster_data; -- \\ \" ?";
        records[4].origin = "DUCK0001";
        records[4].destination = "PAPA0002";
        records[4].payload.reset();
        records[4].hops.reset();
        auto first = store_ok(*c, records, "node-b");
        CHECK(std::count_if(first.begin(), first.end(), [](const store_outcome& o) {
                  return o.status == store_status::stored;
              }) == 75);
        for (std::size_t i = 0; i < records.size(); ++i) {
            auto x = query_ok(*c,
                              "select id, duck_id, message_id, payload, origin, destination, "
                              "hops, created_at, updated_at, source_node, received_from, "
                              "duplicate_of, synced from cluster_data where uuid = ?",
                              {*records[i].uuid});
            REQUIRE(x.size() == 1);
            const cluster_data& r = records[i];
            CHECK(x[0].get_int(0) == first[i].id);
            CHECK(x[0].get_text(1) == r.duck_id);
            CHECK(x[0].get_text(2) == r.message_id);
            CHECK(x[0].get_text(3) == r.payload);
            CHECK(x[0].get_text(4) == r.origin);
            CHECK(x[0].get_text(5) == r.destination);
            CHECK(x[0].get_int(6) == r.hops);
            CHECK(x[0].get_text(7) == format_sql_time(*r.created_at));
            CHECK(x[0].get_text(8) == "2026-02-27 11:00:00");
            CHECK(x[0].get_text(9) == "node-a");
            CHECK(x[0].get_text(10) == "node-b");
            CHECK(x[0].is_null(11));
            CHECK(x[0].is_null(12));
        }
        auto again = store_ok(*c, records, "node-b");
        for (std::size_t i = 0; i < records.size(); ++i) {
            CHECK(again[i].status == store_status::duplicate);
            CHECK(again[i].id == first[i].id);
        }
        CHECK(rows(*c) == 75);
    }
}

TEST_CASE("seed records: a retry is a duplicate, a reused MessageID at another time is kept",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        const cluster_data a = seed_record("DUCK0001", "A1B2", "ok", t0);
        const cluster_data b = seed_record("DUCK0001", "A1B2", "ok", t0 + 3 * 86400);
        auto first = store_ok(*c, {a}, "default");
        auto second = store_ok(*c, {b}, "default");
        CHECK(first[0].status == store_status::stored);
        CHECK(second[0].status == store_status::stored);
        auto retry = store_ok(*c, {a, b}, "default");
        CHECK(retry[0].status == store_status::duplicate);
        CHECK(retry[0].id == first[0].id);
        CHECK(retry[1].status == store_status::duplicate);
        CHECK(retry[1].id == second[0].id);
        auto u = query_ok(*c, "select uuid, created_at from cluster_data order by id");
        REQUIRE(u.size() == 2);
        CHECK(u[0].get_text(0) == derived_uuid("DUCK0001", "A1B2", t0));
        CHECK(u[0].get_text(1) == "2026-02-27 10:00:00");
        CHECK(u[1].get_text(1) == "2026-03-02 10:00:00");
    }
}

TEST_CASE("a legacy row without uuid is recognised by duck_id, message_id and created_at",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto n = c->exec(
            "insert into cluster_data (created_at, updated_at, duck_id, topic, "
            "message_id, payload, hops, duck_type) values (?, ?, ?, ?, ?, ?, ?, ?)",
            {std::string("2026-02-27 10:00:00"), std::string("2026-02-27 10:00:00"),
             std::string("DUCK0001"), std::string("status"), std::string("A1B2"),
             std::string("hello"), std::int64_t{1}, std::int64_t{3}});
        REQUIRE(n);
        const std::int64_t legacy =
            query_ok(*c, "select id from cluster_data")[0].get_int(0).value();
        auto out = store_ok(*c,
                            {seed_record("DUCK0001", "A1B2", "hello", t0),
                             seed_record("duck0001", "a1b2", "hello", t0)},
                            "default");
        CHECK(out[0].status == store_status::duplicate);
        CHECK(out[0].id == legacy);
        // MySQL's collation calls them equal; the key is compared byte for byte.
        CHECK(out[1].status == store_status::stored);
        CHECK(rows(*c) == 2);
    }
}

TEST_CASE("a copy of a packet sent by a second node is stored and linked with duplicate_of",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto a = store_ok(*c, {record("DUCK0001", "A1B2", "hello", t0)}, "node-a");
        cluster_data copy = record("DUCK0001", "A1B2", "hello", t0 + 45);
        copy.path = "DUCK0001,MAMA0003,PAPA0002";
        copy.source_node = "node-b";
        auto b = store_ok(*c, {copy, record("DUCK0001", "A1B2", "HELLO", t0 + 45)}, "node-b");
        REQUIRE(b[0].status == store_status::mesh_duplicate);
        CHECK(b[0].duplicate_of == a[0].id);
        // Other data (MySQL's collation would call it equal): a new record.
        CHECK(b[1].status == store_status::stored);
        auto x = query_ok(*c,
                          "select duplicate_of, path, received_from from cluster_data "
                          "where id = ?",
                          {b[0].id});
        REQUIRE(x.size() == 1);
        CHECK(x[0].get_int(0) == a[0].id);
        CHECK(x[0].get_text(1) == "DUCK0001,MAMA0003,PAPA0002");
        CHECK(x[0].get_text(2) == "node-b");
        CHECK(rows(*c) == 3);
    }
}

TEST_CASE("a row the server refuses is reported refused and the other nine are stored",
          "[integration][fault]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto records = batch(10);
        records[6].origin = std::string(33, 'o');  // varchar(32)
        auto out = store_ok(*c, records);
        CHECK(count_status(out, store_status::stored) == 9);
        REQUIRE(out[6].status == store_status::refused);
        CHECK(out[6].id == 0);
        CHECK_FALSE(out[6].reason.empty());
        CHECK(rows(*c) == 9);
        // The refused one again, with its value fixed, is stored: nothing of it was kept.
        records[6].origin = "ok";
        auto retry = store_ok(*c, records);
        CHECK(retry[6].status == store_status::stored);
        CHECK(count_status(retry, store_status::duplicate) == 9);
        require_each_once(*c, records);
    }
}

TEST_CASE("PostgreSQL refuses a NUL byte in text: that record alone is refused",
          "[integration][fault]") {
    scratch_database s(db::dialect::pgsql);
    auto c = migrated(s);
    auto records = batch(10);
    records[2].payload = std::string("nul\0inside", 10);
    records[8].duck_id = std::string("D\0", 2);  // fails the lookup too, not only the insert
    auto out = store_ok(*c, records);
    CHECK(out[2].status == store_status::refused);
    CHECK(out[2].reason.find("NUL") != std::string::npos);
    CHECK(out[8].status == store_status::refused);
    CHECK(count_status(out, store_status::stored) == 8);
    CHECK(rows(*c) == 8);
}

TEST_CASE("fail at N on a server: nothing is stored and the retry stores each record once",
          "[integration][fault]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto records = batch(20);
        records[3] = record("COPY0001", "C1C1", "same", t0);
        records[4] = record("COPY0001", "C1C1", "same", t0 + 1);
        records[5] = seed_record("SEED0001", "S1S1", "seed", t0);
        std::uint64_t n = 1;
        for (;; ++n) {
            test::faulty_connection f(*c, test::fault{n, errc::unavailable, "server gone"});
            auto r = store_records(f, records, "node-a", now, store_options{});
            if (!f.fired()) {
                REQUIRE(r);
                break;
            }
            INFO("fault at call " << n);
            REQUIRE_FALSE(r);
            REQUIRE(rows(*c) == 0);
        }
        CHECK(n > (d == db::dialect::pgsql ? 3 : 5));  // went through every statement
        auto again = store_ok(*c, records);
        CHECK(count_status(again, store_status::duplicate) == 20);
        CHECK(rows(*c) == 20);
    }
}

TEST_CASE("two connections storing the same 500 records at once leave each exactly once",
          "[integration]") {
    const db::dialect d = each_dialect();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto other = s.connect();
        const auto records = batch(500);
        auto reversed = records;
        std::reverse(reversed.begin(), reversed.end());
        client_run a, b;
        // Different batch sizes and orders: every batch overlaps others of the other thread.
        std::thread ta([&] { a = store_in_batches(*c, records, 100, "instance-1"); });
        std::thread tb([&] { b = store_in_batches(*other, reversed, 64, "instance-2"); });
        ta.join();
        tb.join();
        INFO("a: " << a.error << " retries " << a.retries << "; b: " << b.error << " retries "
                   << b.retries);
        REQUIRE(a.error.empty());
        REQUIRE(b.error.empty());
        // Regression (MySQL): a large call inserted, then waited for the packet locks of
        // one that held them and waited for its rows; InnoDB cannot see GET_LOCK, so the
        // deadlock lasted until innodb_lock_wait_timeout (50 s) and ended in a retry.
        CHECK_FALSE(waited_out_a_lock(a));
        CHECK_FALSE(waited_out_a_lock(b));
        REQUIRE(a.outcomes.size() == 500);
        REQUIRE(b.outcomes.size() == 500);
        CHECK(rows(*c) == 500);
        require_each_once(*c, records);
        std::size_t stored = 0;
        for (std::size_t i = 0; i < 500; ++i) {
            const store_outcome& x = a.outcomes[i];
            const store_outcome& y = b.outcomes[499 - i];
            CHECK(x.id == y.id);  // both instances report the one row
            CHECK(x.status != store_status::mesh_duplicate);
            stored += (x.status == store_status::stored) + (y.status == store_status::stored);
        }
        // Each record is reported stored once (MySQL cannot tell an insert from a row
        // another instance inserted in the same instant: at least once there).
        if (d == db::dialect::mysql) {
            CHECK(stored >= 500);
        } else {
            CHECK(stored == 500);
        }
    }
}

TEST_CASE("two instances storing copies of the same packets at once keep one original",
          "[integration]") {
    // Regression: on MySQL/MariaDB nothing serialised the two instances, so both could
    // store their copy of a packet as an original.
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto other = s.connect();
        const auto mine = batch(200, "P");
        auto theirs = batch(200, "P");  // the same packets, heard by another node: new uuids
        for (auto& r : theirs) r.created_at = *r.created_at + 5;
        client_run a, b;
        std::thread ta([&] { a = store_in_batches(*c, mine, 50, "node-a"); });
        std::thread tb([&] { b = store_in_batches(*other, theirs, 50, "node-b"); });
        ta.join();
        tb.join();
        REQUIRE(a.error.empty());
        REQUIRE(b.error.empty());
        CHECK(rows(*c) == 400);
        auto originals =
            query_ok(*c, "select count(*) from cluster_data where duplicate_of is null");
        CHECK(originals[0].get_int(0) == 200);
        CHECK(count_status(a.outcomes, store_status::mesh_duplicate) +
                  count_status(b.outcomes, store_status::mesh_duplicate) ==
              200);
    }
}

TEST_CASE("array literals carry awkward text and NULLs through PostgreSQL unchanged",
          "[integration]") {
    scratch_database s(db::dialect::pgsql);
    auto c = s.connect();
    const std::vector<std::optional<std::string>> values = {
        std::string("plain"),
        std::string("with \"quotes\" and \\ backslash"),
        std::string("commas, {braces}"),
        std::string("NULL"),
        std::string(""),
        std::nullopt,
        std::string("  leading and trailing spaces  "),
        std::string("tab\tnewline\n"),
        std::string("Malay dan \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\xa6\x86")};
    central::pg_array a;
    for (const auto& v : values) a.add(v);
    auto got = query_ok(*c, "select v from unnest(?::text[]) with ordinality as u(v, n) order by n",
                        {a.take()});
    REQUIRE(got.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        INFO(i);
        CHECK(got[i].get_text(0) == values[i]);
    }
}

TEST_CASE("a PostgreSQL store plans with its actual values unless it is small and the table "
          "analysed, always under the timeouts",
          "[integration]") {
    // Regression: the cached generic plan of the neighbour query, made while the table was
    // small, was a sequential scan that every later batch repeated. Small calls (grouped
    // single records) reuse a generic plan, made with sequential scans off, but only once
    // the table has statistics (the next test cases show those plans).
    scratch_database s(db::dialect::pgsql);
    auto c = migrated(s);
    spy_connection spy(*c);
    std::vector<std::string> seen;
    spy.on_query = [&](std::string_view sql, const std::vector<db::value>&) {
        if (!is_neighbour_query(sql)) return;
        for (const char* name :
             {"plan_cache_mode", "enable_seqscan", "statement_timeout", "lock_timeout"}) {
            seen.push_back(query_ok(*c, std::string("show ") + name)[0].get_text(0).value());
        }
    };
    store_options o;
    o.statement_timeout = std::chrono::milliseconds(7000);
    o.lock_timeout = std::chrono::milliseconds(3000);
    // Small calls (locks first: one neighbour query) and a large one (a second, under the
    // locks, after the insert); 64 records is the largest small call.
    auto store_calls = [&](const std::string& prefix) {
        seen.clear();
        for (std::size_t n : {10, 100, 64}) {
            auto r = store_records(spy, batch(n, prefix + std::to_string(n)), "node-a", now, o);
            INFO(r.error().to_string());
            REQUIRE(r);
        }
    };
    const std::vector<std::string> large = {"force_custom_plan", "on", "7s", "3s"};
    SECTION("a table never analysed: every call plans with its values") {
        store_calls("T");
        std::vector<std::string> expected;
        for (int i = 0; i < 4; ++i) expected.insert(expected.end(), large.begin(), large.end());
        CHECK(seen == expected);
    }
    SECTION("an analysed table of 174 rows: every call plans with its values") {
        store_calls("T");
        REQUIRE(c->execute_script("analyze cluster_data"));  // the generic plan would be
        store_calls("U");                                     // wrong (see below)
        std::vector<std::string> expected;
        for (int i = 0; i < 4; ++i) expected.insert(expected.end(), large.begin(), large.end());
        CHECK(seen == expected);
    }
    SECTION("an analysed table of 1000 rows: small calls reuse the generic plan") {
        REQUIRE(c->execute_script(
            "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
            "payload, uuid) select timestamp '2026-02-20 10:00:00', timestamp '2026-02-20 "
            "10:00:00', 'A' || (g % 100), 'status', to_hex(g), 'p', gen_random_uuid()::text "
            "from generate_series(1, 1000) g"));
        REQUIRE(c->execute_script("analyze cluster_data"));
        store_calls("U");
        const std::vector<std::string> small = {"force_generic_plan", "off", "7s", "3s"};
        std::vector<std::string> expected = small;                // 10 records
        expected.insert(expected.end(), large.begin(), large.end());  // 100: the first query
        expected.insert(expected.end(), large.begin(), large.end());  // 100: under the locks
        expected.insert(expected.end(), small.begin(), small.end());  // 64
        CHECK(seen == expected);
    }
    // SET LOCAL: the session itself keeps its defaults.
    CHECK(query_ok(*c, "show plan_cache_mode")[0].get_text(0) == "auto");
    CHECK(query_ok(*c, "show enable_seqscan")[0].get_text(0) == "on");
}

TEST_CASE("small PostgreSQL calls ask about cluster_data's statistics once per memo age",
          "[integration]") {
    // Asking in every transaction cost PostgreSQL more than the rest of BEGIN (see
    // begin_pgsql). The memo keeps the answer; a table emptied meanwhile keeps the generic
    // plans until the answer is max_age old.
    scratch_database s(db::dialect::pgsql);
    auto c = migrated(s);
    REQUIRE(c->execute_script(
        "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
        "payload, uuid) select timestamp '2026-02-20 10:00:00', timestamp '2026-02-20 "
        "10:00:00', 'A' || (g % 100), 'status', to_hex(g), 'p', gen_random_uuid()::text "
        "from generate_series(1, 1000) g; analyze cluster_data"));
    spy_connection spy(*c);
    store_options o;
    int asked = 0;
    std::vector<std::string> modes;
    spy.on_query = [&](std::string_view sql, const std::vector<db::value>&) {
        if (sql.find("reltuples") != std::string_view::npos) ++asked;
        if (is_neighbour_query(sql)) {
            modes.push_back(query_ok(*c, "show plan_cache_mode")[0].get_text(0).value());
        }
    };
    auto store_small_calls = [&](const std::string& prefix) {
        for (int i = 0; i < 3; ++i) {
            auto r = store_records(spy, batch(4, prefix + std::to_string(i)), "node-a", now, o);
            INFO(r.error().to_string());
            REQUIRE(r);
        }
    };
    const std::vector<std::string> generic(3, "force_generic_plan");
    const std::vector<std::string> custom(3, "force_custom_plan");
    // Three small calls, the table emptied and analysed, three more.
    auto around_emptying = [&](int asked_first, int asked_then,
                               const std::vector<std::string>& modes_then) {
        store_small_calls("M");
        CHECK(asked == asked_first);
        CHECK(modes == generic);
        REQUIRE(c->execute_script("delete from cluster_data; analyze cluster_data"));
        modes.clear();
        store_small_calls("N");
        CHECK(asked == asked_then);
        CHECK(modes == modes_then);
    };
    SECTION("an hour's memo asks once, and keeps its answer when the table is emptied") {
        o.plans = std::make_shared<generic_plan_memo>(std::chrono::hours(1));
        around_emptying(1, 1, generic);
    }
    SECTION("without a memo every small call asks, and follows the table at once") {
        around_emptying(3, 6, custom);
    }
}

namespace {

// `value` as an SQL literal (text, integers, booleans and NULL: what the store passes).
std::string sql_literal(const db::value& v) {
    if (std::holds_alternative<std::monostate>(v)) return "NULL";
    if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    const std::string& text = std::get<std::string>(v);  // anything else is a test bug
    std::string out = "'";
    for (char ch : text) out += ch == '\'' ? std::string("''") : std::string(1, ch);
    return out + "'";
}

// `rows` rows inside every test record's mesh window (100 devices): an index on the time
// would have to read them all.
void fill_window(db::connection& c, int rows) {
    REQUIRE(c.execute_script(
        "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
        "payload, uuid) select timestamp '2026-02-27 10:00:00' + (g % 600) * interval '1 "
        "second', timestamp '2026-02-27 10:00:00', 'D' || (g % 100), 'status', to_hex(g), "
        "'p', gen_random_uuid()::text from generate_series(1, " +
        std::to_string(rows) + ") g"));
}

struct captured_query {
    std::string sql;
    std::vector<db::value> params;
};

// The first neighbour query of a store_records() call of `n` records on `c`.
captured_query first_neighbour_query(db::connection& c, std::size_t n) {
    spy_connection spy(c);
    captured_query q;
    spy.on_query = [&](std::string_view sql, const std::vector<db::value>& p) {
        if (is_neighbour_query(sql) && q.sql.empty()) {
            q.sql = std::string(sql);
            q.params = p;
        }
    };
    REQUIRE(store_records(spy, batch(n), "node-a", now, store_options{}));
    REQUIRE_FALSE(q.sql.empty());
    return q;
}

// The generic plan PostgreSQL caches for `sql` (with ? placeholders) under the small
// calls' settings, shown for `params`: PREPARE, then EXPLAIN EXECUTE.
std::string generic_plan(db::connection& c, std::string sql, const std::vector<db::value>& params) {
    std::size_t n = 0;
    for (std::size_t at = sql.find('?'); at != std::string::npos; at = sql.find('?', at)) {
        const std::string number = "$" + std::to_string(++n);
        sql.replace(at, 1, number);
        at += number.size();
    }
    REQUIRE(n == params.size());
    std::string args;
    for (const db::value& v : params) args += (args.empty() ? "" : ", ") + sql_literal(v);
    REQUIRE(c.execute_script("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL "
                             "enable_seqscan = off; PREPARE opendms_plan_probe AS " +
                             sql));
    std::string plan;
    for (const db::row& r : query_ok(c, "explain execute opendms_plan_probe(" + args + ")").data) {
        plan += r.get_text(0).value_or("") + "\n";
    }
    REQUIRE(c.execute_script("ROLLBACK; DEALLOCATE opendms_plan_probe"));
    return plan;
}

}  // namespace

TEST_CASE("a small call's generic plan on an analysed table probes the index per packet",
          "[integration]") {
    // A generic plan is made once per connection (again after each ANALYZE) and then
    // serves every small call, on a table that may grow to millions of rows: it must
    // neither scan the table nor read every row of a device (the duck_id index).
    // The generic plan is used from 1000 rows on; at 60 (analysed) it probed duck_id.
    const int rows = GENERATE(1000, 50000);
    SECTION(std::to_string(rows) + " rows, analysed") {
        scratch_database s(db::dialect::pgsql);
        auto c = migrated(s);
        fill_window(*c, rows);
        REQUIRE(c->execute_script("analyze cluster_data"));
        const captured_query q = first_neighbour_query(*c, 8);
        const std::string plan = generic_plan(*c, q.sql, q.params);
        INFO(plan);
        CHECK(plan.find("Seq Scan on cluster_data") == std::string::npos);
        CHECK(plan.find("cluster_data_created_at_index") == std::string::npos);
        CHECK(plan.find("using cluster_data_duck_id_index") == std::string::npos);
        CHECK(plan.find("Index Scan using cluster_data_duck_id_message_id_created_at_index") !=
              std::string::npos);
    }
}

TEST_CASE("the neighbour query probes an index per packet, never scans the table or the window",
          "[integration]") {
    // Regressions: as a plain join of unnest() with cluster_data, the planner chose a hash
    // join over a sequential scan of the whole table for every batch of 500 until the table
    // held a few hundred thousand rows (benchmark: most of PostgreSQL's CPU); with the time
    // range among the subquery's conditions it chose the created_at index on a young,
    // never analysed table and read every row of the window for each key (0.5 s a batch).
    const bool young = GENERATE(true, false);
    SECTION(young ? "a young table, never analysed" : "50000 rows, analysed") {
        scratch_database s(db::dialect::pgsql);
        auto c = migrated(s);
        if (young) {
            REQUIRE(c->execute_script("alter table cluster_data set (autovacuum_enabled = false)"));
        }
        fill_window(*c, young ? 2500 : 50000);
        if (!young) REQUIRE(c->execute_script("analyze cluster_data"));
        const captured_query q = first_neighbour_query(*c, 500);
        const std::string& sql = q.sql;
        const std::vector<db::value>& params = q.params;
        std::string plan;
        for (const db::row& r : query_ok(*c, "explain " + sql, params).data) {
            plan += r.get_text(0).value_or("") + "\n";
        }
        INFO(plan);
        CHECK(plan.find("Seq Scan on cluster_data") == std::string::npos);
        CHECK(plan.find("Hash Join") == std::string::npos);  // of the keys with the table
        CHECK(plan.find("cluster_data_created_at_index") == std::string::npos);
        if (!young) {
            CHECK(plan.find("Index Scan using cluster_data_duck_id_message_id_created_at_index") !=
                  std::string::npos);
        }
    }
}

TEST_CASE("a 20000-record call holds at most 1024 packet locks and is stored", "[integration]") {
    // Regression: one advisory lock per distinct (duck_id, message_id) filled PostgreSQL's
    // shared lock table ("out of shared memory") with large or concurrent batches.
    scratch_database s(db::dialect::pgsql);
    auto c = migrated(s);
    spy_connection spy(*c);
    std::int64_t held = 0;  // the most at any neighbour query (the second runs under them)
    spy.on_query = [&](std::string_view sql, const std::vector<db::value>&) {
        if (!is_neighbour_query(sql)) return;
        held = std::max(held, query_ok(*c,
                                       "select count(*) from pg_locks where locktype = "
                                       "'advisory' and pid = pg_backend_pid()")[0]
                                  .get_int(0)
                                  .value());
    };
    std::vector<cluster_data> records;
    for (int i = 0; i < 20000; ++i) {
        records.push_back(record("BIG" + std::to_string(i % 500), "M" + std::to_string(i),
                                 "p" + std::to_string(i), t0 + i % 3600));
    }
    auto r = store_records(spy, records, "node-a", now, store_options{});
    INFO(r.error().to_string());
    REQUIRE(r);
    CHECK(count_status(*r, store_status::stored) == 20000);
    CHECK(held > 900);
    CHECK(held <= static_cast<std::int64_t>(central::packet_lock_buckets));
    CHECK(rows(*c) == 20000);
}

TEST_CASE("a lock timeout is retryable and never makes a record refused", "[integration][fault]") {
    // Regression: PostgreSQL's 55P03 (lock_timeout) was classified as a data error, so a
    // record waiting for a lock was answered "rejected" and its sender never retried it.
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto other = s.connect();
        const auto records = batch(5);
        // Another transaction holds the uuid of record 3 without committing: our INSERT
        // must wait for it.
        REQUIRE(other->begin());
        REQUIRE(
            other->exec("insert into cluster_data (created_at, duck_id, topic, message_id, "
                        "uuid) values (?, ?, ?, ?, ?)",
                        {format_sql_time(t0), std::string("HOLD"), std::string("status"),
                         std::string("H1H1"), *records[3].uuid}));
        store_options o;
        o.mesh_window_s = 0;
        o.lock_timeout = std::chrono::milliseconds(1000);
        o.statement_timeout = std::chrono::milliseconds(5000);
        const auto t0_wait = std::chrono::steady_clock::now();
        auto r = store_records(*c, records, "node-a", now, o);
        const double waited = seconds_since(t0_wait);
        REQUIRE_FALSE(r);
        INFO(r.error().to_string());
        CHECK(r.error().code() == errc::unavailable);
        CHECK(waited < 4.5);
        REQUIRE(other->rollback());
        CHECK(rows(*c) == 0);
        auto retry = store_ok(*c, records);
        CHECK(count_status(retry, store_status::stored) == 5);
    }
}

TEST_CASE("a read-only database is retryable and never makes a record refused",
          "[integration][fault]") {
    // Regression: 25006 (PostgreSQL) and 1792 (MariaDB) read-only errors, as on a standby
    // after a failover, were data errors that made every record "rejected".
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        REQUIRE(c->execute_script(d == db::dialect::pgsql
                                      ? "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"
                                      : "SET SESSION TRANSACTION READ ONLY"));
        auto r = store_records(*c, batch(3), "node-a", now, store_options{});
        REQUIRE_FALSE(r);
        INFO(r.error().to_string());
        CHECK(r.error().code() == errc::unavailable);
        auto other = s.connect();
        CHECK(rows(*other) == 0);
    }
}

TEST_CASE("MySQL packet locks are released after a commit and after a failure",
          "[integration][fault]") {
    scratch_database s(db::dialect::mysql);
    auto c = migrated(s);
    auto other = s.connect();
    const cluster_data r = record("LOCK0001", "L1L1", "x");
    const std::uint32_t bucket = central::packet_lock_bucket(r.duck_id, r.message_id);
    auto other_gets_bucket = [&] {
        const bool got = query_ok(*other, mysql_bucket_lock(bucket, 0))[0].get_int(0) == 1;
        query_ok(*other, "select release_all_locks()");
        return got;
    };
    store_ok(*c, {r});
    CHECK(other_gets_bucket());
    // A failure at every step after the locks: each call leaves them released.
    for (std::uint64_t n = 2;; ++n) {
        INFO("fault at call " << n);
        test::faulty_connection f(*c, test::fault{n, errc::unavailable, "server gone"});
        auto out = store_records(f, {record("LOCK0001", "L1L1", "y", t0 + 1)}, "node-a", now,
                                 store_options{});
        CHECK(other_gets_bucket());
        if (!f.fired()) {
            REQUIRE(out);
            break;
        }
        REQUIRE_FALSE(out);
    }
}

TEST_CASE("a packet bucket held by another instance past the lock timeout is retryable",
          "[integration][fault]") {
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto other = s.connect();
        const cluster_data r = record("LOCK0002", "L2L2", "x");
        const std::uint32_t bucket = central::packet_lock_bucket(r.duck_id, r.message_id);
        if (d == db::dialect::pgsql) {
            REQUIRE(other->begin());
            query_ok(*other, "select pg_advisory_xact_lock(" +
                                 std::to_string(central::pg_packet_lock_class) + ", " +
                                 std::to_string(bucket) + ")");
        } else {
            REQUIRE(query_ok(*other, mysql_bucket_lock(bucket, 0))[0].get_int(0) == 1);
        }
        store_options o;
        o.lock_timeout = std::chrono::milliseconds(1000);
        const auto start = std::chrono::steady_clock::now();
        auto out = store_records(*c, {r}, "node-a", now, o);
        REQUIRE_FALSE(out);
        INFO(out.error().to_string());
        CHECK(out.error().code() == errc::unavailable);
        CHECK(seconds_since(start) < 4.5);
        if (d == db::dialect::pgsql) {
            REQUIRE(other->rollback());
        } else {
            query_ok(*other, "select release_all_locks()");
        }
        CHECK(store_ok(*c, {r})[0].status == store_status::stored);
    }
}

TEST_CASE("a copy committed by another instance between our read and our insert wins",
          "[integration]") {
    // The race the packet locks close, made to happen: the other instance commits its copy
    // after this call has read the neighbours and before it inserts, so this call inserts
    // its copies as originals and must find the other's when it checks under the locks.
    // (A call of more than 64 records: those insert first and check afterwards, on
    // PostgreSQL only. MySQL takes the packet locks before any row, whatever the size, so
    // there the other instance waits for this call instead: the next test.)
    const db::dialect d = db::dialect::pgsql;
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto other = s.connect();
        const cluster_data theirs = record("RACE0001", "R1R1", "same", t0 + 30);
        std::vector<cluster_data> mine = batch(100, "X");
        mine[1] = record("RACE0001", "R1R1", "same", t0);       // our copy: an original...
        mine[70] = record("RACE0001", "R1R1", "same", t0 + 5);  // ...and a copy of ours
        spy_connection spy(*c);
        std::int64_t their_id = 0;
        // PostgreSQL inserts our original with its first statement (which also reads): the
        // other commits before our next one, the INSERT of our copy. MySQL: before our
        // first INSERT, after our read.
        spy.on_query = [&](std::string_view sql, const std::vector<db::value>&) {
            if (their_id != 0 || sql.substr(0, 12) != "insert into ") return;
            auto r = store_records(*other, {theirs}, "node-b", now, store_options{});
            REQUIRE(r);
            REQUIRE((*r)[0].status == store_status::stored);
            their_id = (*r)[0].id;
        };
        auto out = store_records(spy, mine, "node-a", now, store_options{});
        INFO(out.error().to_string());
        REQUIRE(out);
        REQUIRE(their_id != 0);
        CHECK((*out)[0].status == store_status::stored);
        CHECK((*out)[1].status == store_status::mesh_duplicate);
        CHECK((*out)[1].duplicate_of == their_id);
        CHECK((*out)[70].status == store_status::mesh_duplicate);
        CHECK((*out)[70].duplicate_of == their_id);  // repointed from our former original
        CHECK(count_status(*out, store_status::stored) == 98);
        auto originals = query_ok(*c,
                                  "select id from cluster_data where duck_id = 'RACE0001' and "
                                  "duplicate_of is null");
        REQUIRE(originals.size() == 1);
        CHECK(originals[0].get_int(0) == their_id);
        auto copies = query_ok(*c,
                               "select count(*) from cluster_data where duck_id = 'RACE0001' "
                               "and duplicate_of = ?",
                               {their_id});
        CHECK(copies[0].get_int(0) == 2);
    }
}

TEST_CASE("a call that locks first holds its packet locks from the start: a copy sent meanwhile waits",
          "[integration]") {
    // Calls of at most 64 records (grouped single-record requests), and on MySQL every
    // call, lock first: another instance storing a copy of one of their packets waits for
    // the commit, then finds the original. On MySQL the call here has 100 records.
    const db::dialect d = each_server();
    SECTION(db::dialect_name(d)) {
        scratch_database s(d);
        auto c = migrated(s);
        auto other = s.connect();
        const cluster_data theirs = record("RACE0002", "R2R2", "same", t0 + 30);
        std::vector<cluster_data> mine = batch(d == db::dialect::mysql ? 100 : 3, "Y");
        mine[1] = record("RACE0002", "R2R2", "same", t0);
        spy_connection spy(*c);
        std::thread racer;
        result<std::vector<store_outcome>> their_out = status(errc::internal, "not run");
        spy.on_query = [&](std::string_view sql, const std::vector<db::value>&) {
            const bool writes =
                sql.substr(0, 12) == "insert into " || sql.substr(0, 10) == "with k as ";
            if (racer.joinable() || !writes) return;
            racer = std::thread([&] {
                their_out = store_records(*other, {theirs}, "node-b", now, store_options{});
            });
            std::this_thread::sleep_for(std::chrono::milliseconds(300));  // it waits for us
        };
        auto out = store_records(spy, mine, "node-a", now, store_options{});
        REQUIRE(racer.joinable());
        racer.join();
        REQUIRE(out);
        INFO(their_out.error().to_string());
        REQUIRE(their_out);
        CHECK((*out)[1].status == store_status::stored);
        CHECK((*their_out)[0].status == store_status::mesh_duplicate);
        CHECK((*their_out)[0].duplicate_of == (*out)[1].id);
    }
}
