// `opendms-field status`: the counts read from a migrated SQLite file, and their JSON and
// text forms.
#include <rapidjson/document.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/field_status.hpp"
#include "opendms/timefmt.hpp"
#include "test_servers.hpp"

using namespace opendms;
using field::field_status;
using test::temp_dir;

namespace {

const unix_seconds now = 1764028800;  // 2025-11-25 00:00:00

struct migrated {
    temp_dir dir;
    std::unique_ptr<db::connection> conn;

    explicit migrated(bool migrate = true) {
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = dir.file("status.sqlite");
        auto c = db::open(o);
        INFO(c.error().to_string());
        REQUIRE(c);
        conn = std::move(*c);
        if (!migrate) return;
        db::migrator m(*conn);
        auto r = m.migrate();
        INFO(r.error().to_string());
        REQUIRE(r);
    }

    db::connection& c() { return *conn; }

    // A record with this sync state and created_at; its id.
    std::int64_t record(db::value synced, const std::string& created_at) {
        auto id = conn->insert(
            "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
            "payload, synced) values (?, ?, 'DUCK0001', 'status', 'AAAA', 'x', ?)",
            {created_at, created_at, synced});
        INFO(id.error().to_string());
        REQUIRE(id);
        return *id;
    }

    void run(const std::string& sql, const std::vector<db::value>& params = {}) {
        auto r = conn->exec(sql, params);
        INFO(sql << ": " << r.error().to_string());
        REQUIRE(r);
    }
};

field_status read_ok(db::connection& c, unix_seconds at) {
    auto s = field::read_status(c, at);
    INFO(s.error().to_string());
    REQUIRE(s);
    return *s;
}

}  // namespace

TEST_CASE("an empty database reports zeros and no pending age", "[unit]") {
    migrated m;
    const field_status s = read_ok(m.c(), now);
    CHECK(s.not_applicable == 0);
    CHECK(s.pending == 0);
    CHECK(s.synced == 0);
    CHECK(s.outbox_depth == 0);
    CHECK(s.quarantined == 0);
    CHECK(s.duplicates == 0);
    CHECK_FALSE(s.oldest_pending_age_seconds.has_value());
    CHECK(field::to_json(s) ==
          "{\"not_applicable\":0,\"pending\":0,\"synced\":0,\"quarantined\":0,\"duplicates\":0,"
          "\"oldest_pending_age_seconds\":null,\"outbox_depth\":0"
          ",\"parked\":0,\"live\":0,\"backlog\":0,\"protocol\":null,"
          "\"consecutive_failures\":0,\"last_attempt_at\":null,\"last_success_at\":null,"
          "\"last_error\":null,\"next_attempt_at\":null,\"auth_alarm\":false,"
          "\"auth_alarm_since\":null,\"bytes_sent\":0,\"bytes_received\":0,"
          "\"damaged_databases\":[]}");
}

TEST_CASE("each count reads its own rows and the age is that of the oldest pending record",
          "[unit]") {
    migrated m;
    m.record(db::null(), "2025-11-01 00:00:00");  // not applicable, older than any pending
    m.record(db::null(), "2025-11-02 00:00:00");
    const std::int64_t p1 = m.record(false, "2025-11-24 23:00:00");
    const std::int64_t p2 = m.record(false, "2025-11-24 22:58:20");  // the oldest pending
    m.record(false, "2025-11-24 23:59:59");
    m.record(true, "2025-11-01 00:00:00");  // synced: older, but not pending
    const std::int64_t s1 = m.record(true, "2025-11-20 00:00:00");
    for (std::int64_t id : {p1, p2}) {
        m.run("insert into outbox (cluster_data_id, created_at) values (?, ?)",
              {id, std::string("2025-11-24 23:00:00")});
    }
    for (int i = 0; i < 4; ++i) {
        m.run(
            "insert into quarantine (received_at, topic, raw, reason) values (?, 'hub/event', ?, "
            "'invalid JSON')",
            {std::string("2025-11-24 12:00:00"), db::blob{std::string(1, static_cast<char>(i))}});
    }
    for (int i = 0; i < 5; ++i) {
        m.run("insert into mesh_duplicates (cluster_data_id, received_at, hops) values (?, ?, ?)",
              {s1, std::string("2025-11-20 00:00:10"), std::int64_t{i}});
    }

    const field_status s = read_ok(m.c(), now);
    CHECK(s.not_applicable == 2);
    CHECK(s.pending == 3);
    CHECK(s.synced == 2);
    CHECK(s.outbox_depth == 2);
    CHECK(s.quarantined == 4);
    CHECK(s.duplicates == 5);
    REQUIRE(s.oldest_pending_age_seconds.has_value());
    CHECK(*s.oldest_pending_age_seconds == 3700);  // 22:58:20 to 00:00:00

    const std::string json = field::to_json(s);
    CHECK(json ==
          "{\"not_applicable\":2,\"pending\":3,\"synced\":2,\"quarantined\":4,\"duplicates\":5,"
          "\"oldest_pending_age_seconds\":3700,\"outbox_depth\":2"
          ",\"parked\":0,\"live\":2,\"backlog\":0,\"protocol\":null,"
          "\"consecutive_failures\":0,\"last_attempt_at\":null,\"last_success_at\":null,"
          "\"last_error\":null,\"next_attempt_at\":null,\"auth_alarm\":false,"
          "\"auth_alarm_since\":null,\"bytes_sent\":0,\"bytes_received\":0,"
          "\"damaged_databases\":[]}");
    rapidjson::Document doc;
    doc.Parse(json.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    REQUIRE(doc.IsObject());
    for (const char* key : {"not_applicable", "pending", "synced", "quarantined", "duplicates",
                            "oldest_pending_age_seconds", "outbox_depth"}) {
        INFO(key);
        REQUIRE(doc.HasMember(key));
        CHECK(doc[key].IsInt64());
    }
    CHECK(doc["pending"].GetInt64() == 3);
    CHECK(doc["oldest_pending_age_seconds"].GetInt64() == 3700);

    const std::string text = field::to_text(s);
    CHECK_THAT(text, Catch::Contains("records pending: 3\n"));
    CHECK_THAT(text, Catch::Contains("records synced: 2\n"));
    CHECK_THAT(text, Catch::Contains("records, sync not applicable: 2\n"));
    CHECK_THAT(text, Catch::Contains("outbox depth: 2\n"));
    CHECK_THAT(text, Catch::Contains("quarantined messages: 4\n"));
    CHECK_THAT(text, Catch::Contains("mesh duplicates: 5\n"));
    CHECK_THAT(text, Catch::Contains("oldest pending age: 3700 s\n"));
}

TEST_CASE("the pending age grows with now and is null once nothing is pending", "[unit]") {
    migrated m;
    const std::int64_t id = m.record(false, format_sql_time(now - 60));
    CHECK(read_ok(m.c(), now).oldest_pending_age_seconds == 60);
    CHECK(read_ok(m.c(), now + 3600).oldest_pending_age_seconds == 3660);

    m.run("update cluster_data set synced = ? where id = ?", {true, id});
    const field_status s = read_ok(m.c(), now);
    CHECK(s.pending == 0);
    CHECK(s.synced == 1);
    CHECK_FALSE(s.oldest_pending_age_seconds.has_value());
    CHECK_THAT(field::to_json(s), Catch::Contains("\"oldest_pending_age_seconds\":null"));
    CHECK_THAT(field::to_text(s), Catch::Contains("oldest pending age: none\n"));
}

TEST_CASE("a pending record stamped in the future has age 0, not a negative one", "[unit]") {
    migrated m;
    m.record(false, format_sql_time(now + 500));
    CHECK(read_ok(m.c(), now).oldest_pending_age_seconds == 0);
}

TEST_CASE("a pending created_at that is not a time is reported as corrupt", "[unit][fault]") {
    migrated m;
    m.record(false, "yesterday");
    auto s = field::read_status(m.c(), now);
    REQUIRE_FALSE(s);
    CHECK(s.error().code() == errc::corrupt);
    CHECK_THAT(s.error().message(), Catch::StartsWith("field.status: "));
    CHECK_THAT(s.error().message(), Catch::Contains("'yesterday'"));
}

TEST_CASE("a database that is not migrated is an error naming field.status", "[unit][fault]") {
    migrated m(false);
    auto s = field::read_status(m.c(), now);
    REQUIRE_FALSE(s);
    CHECK_THAT(s.error().message(), Catch::StartsWith("field.status: sqlite.query: no such table"));
}

TEST_CASE("reading the status takes no write lock", "[unit]") {
    migrated m;
    m.record(false, format_sql_time(now - 1));
    // Another connection holds the write lock (as the ingest thread does mid-transaction).
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = m.dir.file("status.sqlite");
    o.busy_timeout_ms = 0;
    auto writer = db::open(o);
    REQUIRE(writer);
    REQUIRE((*writer)->begin());
    REQUIRE(
        (*writer)->exec("insert into quarantine (received_at, topic, raw, reason) values "
                        "('2025-11-25 00:00:00', 't', x'00', 'r')",
                        {}));
    auto reader = db::open(o);
    REQUIRE(reader);
    auto s = field::read_status(**reader, now);
    INFO(s.error().to_string());
    REQUIRE(s);
    CHECK(s->pending == 1);
    CHECK(s->quarantined == 0);  // the snapshot does not see the uncommitted row
    REQUIRE((*writer)->rollback());
}

TEST_CASE("the delivery state comes from push_state and the outbox lanes", "[unit]") {
    migrated m;
    const std::int64_t a = m.record(false, "2025-11-24 23:00:00");
    const std::int64_t b = m.record(false, "2025-11-24 23:00:01");
    const std::int64_t c = m.record(false, "2025-11-24 23:00:02");
    m.run("insert into outbox (cluster_data_id, lane, created_at) values (?, 0, ?)",
          {a, std::string("2025-11-24 23:00:00")});
    m.run("insert into outbox (cluster_data_id, lane, created_at) values (?, 1, ?)",
          {b, std::string("2025-11-24 23:00:01")});
    m.run("insert into outbox (cluster_data_id, lane, created_at, parked_at, parked_reason) "
          "values (?, 1, ?, ?, 'HTTP 422')",
          {c, std::string("2025-11-24 23:00:02"), std::string("2025-11-24 23:10:00")});
    m.run("insert into push_state (id, protocol, consecutive_failures, last_attempt_at, "
          "last_success_at, last_error, next_attempt_at, auth_alarm_at, bytes_sent, "
          "bytes_received) values (1, 'batch', 3, '2025-11-24 23:30:00', '2025-11-24 22:00:00', "
          "'HTTP 401: Unauthenticated.', '2025-11-24 23:32:00', '2025-11-24 23:00:00', 1234, 567)",
          {});
    const field_status s = read_ok(m.c(), now);
    CHECK(s.live == 1);
    CHECK(s.backlog == 1);
    CHECK(s.parked == 1);
    CHECK(s.protocol == std::optional<std::string>("batch"));
    CHECK(s.consecutive_failures == 3);
    CHECK(s.last_error == std::optional<std::string>("HTTP 401: Unauthenticated."));
    CHECK(s.auth_alarm_since.has_value());
    CHECK(s.bytes_sent == 1234);
    rapidjson::Document doc;
    const std::string json = field::to_json(s);
    doc.Parse(json.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(doc["auth_alarm"].GetBool());
    CHECK(std::string(doc["last_success_at"].GetString()) == "2025-11-24 22:00:00");
    CHECK(std::string(doc["next_attempt_at"].GetString()) == "2025-11-24 23:32:00");
    CHECK(doc["parked"].GetInt() == 1);
    const std::string text = field::to_text(s);
    CHECK(text.find("AUTH ALARM") != std::string::npos);
    CHECK(text.find("last error: HTTP 401: Unauthenticated.") != std::string::npos);
}
