// The schema's migrations up, down and up again on real PostgreSQL and MariaDB servers
// (tests/support/servers.sh) and on a SQLite file.
#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "test_servers.hpp"

namespace db = opendms::db;
using opendms::errc;
using opendms::test::scratch_database;

namespace {

const std::vector<db::dialect> all_dialects = {db::dialect::sqlite, db::dialect::pgsql,
                                               db::dialect::mysql};
const std::string seed_sync = "2026_02_27_000000_add_sync_columns_to_cluster_data_table";
const std::string route_columns = "2026_11_25_000001_add_route_columns_to_cluster_data_table";

using table_dump = std::vector<std::vector<std::optional<std::string>>>;

table_dump dump(db::connection& c, const std::string& sql) {
    auto r = c.query(sql);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r.is_ok());
    table_dump out;
    for (const auto& row : r->data) {
        std::vector<std::optional<std::string>> cells;
        for (std::size_t i = 0; i < row.cells.size(); ++i) cells.push_back(row.get_text(i));
        out.push_back(std::move(cells));
    }
    return out;
}

std::int64_t count(db::connection& c, const std::string& sql) {
    auto r = c.query(sql);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r.is_ok());
    REQUIRE(r->size() == 1);
    return r->data[0].get_int(0).value_or(-1);
}

bool has_table(db::connection& c, const std::string& table) {
    auto r = c.table_exists(table);
    REQUIRE(r.is_ok());
    return *r;
}

bool has_column(db::connection& c, const std::string& table, const std::string& column) {
    auto r = c.column_exists(table, column);
    REQUIRE(r.is_ok());
    return *r;
}

void exec(db::connection& c, const std::string& sql, const std::vector<db::value>& params = {}) {
    auto r = c.exec(sql, params);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r.is_ok());
}

std::vector<std::string> migrate(db::migrator& m) {
    auto r = m.migrate();
    INFO(r.error().to_string());
    REQUIRE(r.is_ok());
    return *r;
}

void insert_records(db::connection& c, int n) {
    for (int i = 0; i < n; ++i) {
        exec(c,
             "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
             "payload, path, hops, duck_type, synced, synced_at) values (?, ?, ?, ?, ?, ?, ?, ?, "
             "?, ?, ?)",
             {std::string("2026-03-01 10:00:0") + std::to_string(i % 10),
              std::string("2026-03-01 10:00:00"), std::string("DUCK000") + std::to_string(i % 3),
              std::string("status"), std::string("AB1") + std::to_string(i % 10),
              std::string("h\xc3\xa9llo \xf0\x9f\xa6\x86 ") + std::to_string(i),
              i % 2 ? db::value(std::string("A,B")) : db::null(), std::int64_t{i % 5},
              std::int64_t{2}, i % 3 == 0 ? db::null() : db::value(i % 3 == 1),
              i % 3 == 1 ? db::value(std::string("2026-03-02 00:00:00")) : db::null()});
    }
}

const char* const kept_columns =
    "select id, created_at, updated_at, duck_id, topic, message_id, payload, path, hops, "
    "duck_type from cluster_data order by id";

}  // namespace

TEST_CASE("the schema migrates up, down and up again on every dialect", "[integration]") {
    for (db::dialect d : all_dialects) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            scratch_database scratch(d);
            auto conn = scratch.connect();
            db::connection& c = *conn;
            db::migrator m(c);
            const auto& catalog = db::schema_catalog(d);

            CHECK(migrate(m).size() == catalog.size());
            CHECK(*m.is_current());
            for (const char* table : {"cluster_data", "outbox", "quarantine", "migrations"}) {
                CHECK(has_table(c, table));
            }
            for (const char* column :
                 {"synced", "synced_at", "origin", "destination", "uuid", "source_node"}) {
                CHECK(has_column(c, "cluster_data", column));
            }
            CHECK(has_column(c, "outbox", "parked_reason"));
            CHECK(has_column(c, "quarantine", "raw"));
            insert_records(c, 10);

            auto down = m.rollback_last_batch();
            INFO(down.error().to_string());
            REQUIRE(down.is_ok());
            CHECK(down->size() == catalog.size());
            for (const char* table : {"cluster_data", "outbox", "quarantine"}) {
                CHECK_FALSE(has_table(c, table));
            }
            CHECK(count(c, "select count(*) from migrations") == 0);
            CHECK_FALSE(*m.is_current());

            CHECK(migrate(m).size() == catalog.size());
            CHECK(*m.is_current());
            CHECK(count(c, "select count(*) from cluster_data") == 0);
            CHECK(count(c, "select max(batch) from migrations") == 1);
            CHECK(migrate(m).empty());
        }
    }
}

TEST_CASE("the seed's sync columns roll back alone and come back, keeping every row",
          "[integration]") {
    for (db::dialect d : all_dialects) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            scratch_database scratch(d);
            auto conn = scratch.connect();
            db::connection& c = *conn;
            db::migrator m(c);
            migrate(m);
            insert_records(c, 30);
            exec(c, "update cluster_data set origin = ?, uuid = ? where id = 1",
                 {std::string("DUCK0009"), std::string("0b7e8c2a-6d4f-4f51-9a0e-2f1c9d6b7a30")});
            const table_dump before = dump(c, kept_columns);

            auto s = m.rollback_one(seed_sync);
            INFO(s.to_string());
            REQUIRE(s.is_ok());
            CHECK_FALSE(has_column(c, "cluster_data", "synced"));
            CHECK_FALSE(has_column(c, "cluster_data", "synced_at"));
            CHECK(has_column(c, "cluster_data", "origin"));
            CHECK(dump(c, kept_columns) == before);
            CHECK(count(c, "select count(*) from cluster_data where uuid is not null") == 1);
            CHECK_FALSE(*m.is_current());

            CHECK(migrate(m) == std::vector<std::string>{seed_sync});
            CHECK(has_column(c, "cluster_data", "synced"));
            CHECK(has_column(c, "cluster_data", "synced_at"));
            CHECK(dump(c, kept_columns) == before);
            CHECK(count(c, "select count(*) from cluster_data where synced is not null") == 0);
            CHECK(*m.is_current());

            // And the column works again.
            exec(c, "update cluster_data set synced = ?, synced_at = ? where id = 2",
                 {true, std::string("2026-03-03 12:00:00")});
            CHECK(count(c, "select count(*) from cluster_data where synced_at is not null") == 1);
        }
    }
}

TEST_CASE("the route-columns rollback refuses rows with NULL payload and changes nothing",
          "[integration]") {
    for (db::dialect d : all_dialects) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            scratch_database scratch(d);
            auto conn = scratch.connect();
            db::connection& c = *conn;
            // Up to the route columns only, so that SQLite's rebuild may run too.
            const auto& full = db::schema_catalog(d);
            db::migrator m(c, std::vector<db::migration>(full.begin(), full.begin() + 3));
            migrate(m);
            insert_records(c, 5);
            exec(c,
                 "insert into cluster_data (duck_id, topic, message_id, origin, destination, "
                 "path) values (?, ?, ?, ?, ?, ?)",
                 {std::string("DUCK0001"), std::string("rreq"), std::string("ZZ01"),
                  std::string("DUCK0001"), std::string("DUCK0002"), std::string("DUCK0001")});
            if (d == db::dialect::mysql) {
                // Outside strict mode MySQL would turn the NULLs into '' and 0: the guard
                // must refuse anyway.
                REQUIRE(c.execute_script("set session sql_mode = ''").is_ok());
            }
            const std::string select_all =
                "select id, created_at, updated_at, duck_id, topic, message_id, payload, path, "
                "hops, duck_type, synced, synced_at, origin, destination from cluster_data "
                "order by id";
            const table_dump before = dump(c, select_all);

            auto s = m.rollback_one(route_columns);
            CHECK_FALSE(s.is_ok());
            CHECK_THAT(s.message(), Catch::StartsWith("rollback " + route_columns + ": "));
            CHECK(dump(c, select_all) == before);
            CHECK(has_column(c, "cluster_data", "origin"));
            CHECK(*m.is_current());

            exec(c, "delete from cluster_data where payload is null");
            auto ok = m.rollback_one(route_columns);
            INFO(ok.to_string());
            REQUIRE(ok.is_ok());
            CHECK_FALSE(has_column(c, "cluster_data", "origin"));
            CHECK(count(c, "select count(*) from cluster_data") == 5);
            CHECK(migrate(m) == std::vector<std::string>{route_columns});
        }
    }
}

TEST_CASE("deleting a record deletes its outbox row, and an orphan outbox row is refused",
          "[integration]") {
    for (db::dialect d : all_dialects) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            scratch_database scratch(d);
            auto conn = scratch.connect();
            db::connection& c = *conn;
            db::migrator m(c);
            migrate(m);
            insert_records(c, 2);
            const char* outbox_insert =
                "insert into outbox (cluster_data_id, created_at) values (?, ?)";
            exec(c, outbox_insert, {std::int64_t{1}, std::string("2026-03-01 10:00:00")});
            exec(c, outbox_insert, {std::int64_t{2}, std::string("2026-03-01 10:00:00")});
            CHECK_FALSE(c.exec(outbox_insert, {std::int64_t{2}, std::string("2026-03-01 10:00:01")})
                            .is_ok());  // one outbox row per record
            CHECK_FALSE(
                c.exec(outbox_insert, {std::int64_t{99}, std::string("2026-03-01 10:00:01")})
                    .is_ok());
            CHECK(count(c, "select lane from outbox where cluster_data_id = 1") == 0);
            CHECK(count(c, "select attempts from outbox where cluster_data_id = 1") == 0);
            exec(c, "delete from cluster_data where id = 1");
            CHECK(count(c, "select count(*) from outbox") == 1);

            auto dup = c.exec(
                "insert into cluster_data (duck_id, topic, message_id, uuid) "
                "values ('D', 't', 'M', 'u-1'), ('D', 't', 'M', 'u-1')");
            CHECK_FALSE(dup.is_ok());
            CHECK(dup.error().code() == errc::conflict);
        }
    }
}

TEST_CASE("two migrators starting at once on a server apply each migration once", "[integration]") {
    for (db::dialect d : {db::dialect::pgsql, db::dialect::mysql}) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            scratch_database scratch(d);
            auto c1 = scratch.connect();
            auto c2 = scratch.connect();
            std::optional<opendms::result<std::vector<std::string>>> r1, r2;
            std::thread other([&] {
                db::migrator m(*c2);
                r2.emplace(m.migrate());
            });
            {
                db::migrator m(*c1);
                r1.emplace(m.migrate());
            }
            other.join();
            INFO(r1->error().to_string() << " / " << r2->error().to_string());
            REQUIRE(r1->is_ok());
            REQUIRE(r2->is_ok());
            CHECK((*r1)->size() + (*r2)->size() == db::schema_catalog(d).size());
            CHECK(count(*c1, "select count(*) from migrations") ==
                  static_cast<std::int64_t>(db::schema_catalog(d).size()));
        }
    }
}
