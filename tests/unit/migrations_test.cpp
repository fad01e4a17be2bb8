// The migration runner and the schema catalog, on SQLite files in a temporary directory.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "../../common/src/db/embedded_schema.hpp"
#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"

namespace db = opendms::db;
using opendms::errc;

namespace {

const std::vector<std::string> expected_names = {
    "2026_02_18_120944_create_cluster_data_table",
    "2026_02_27_000000_add_sync_columns_to_cluster_data_table",
    "2026_11_25_000001_add_route_columns_to_cluster_data_table",
    "2026_11_25_000002_add_sync_identity_to_cluster_data_table",
    "2026_11_25_000003_add_indexes_to_cluster_data_table",
    "2026_11_25_000004_create_outbox_table",
    "2026_11_25_000005_create_quarantine_table",
    "2026_11_25_000006_add_payload_encoding_to_cluster_data_table",
    "2026_11_25_000007_create_mesh_duplicates_table",
    "2026_11_25_000008_add_central_columns_to_cluster_data_table",
    "2026_11_25_000009_create_push_state_table",
    "2026_12_03_000001_make_duplicate_of_index_partial",
};
const std::string seed_sync = expected_names[1];
const std::string route_columns = expected_names[2];

const std::map<std::string, std::vector<std::string>> expected_columns = {
    {"cluster_data",
     {"id", "created_at", "updated_at", "duck_id", "topic", "message_id", "payload", "path", "hops",
      "duck_type", "synced", "synced_at", "origin", "destination", "uuid", "source_node",
      "payload_encoding", "received_from", "duplicate_of"}},
    {"outbox",
     {"id", "cluster_data_id", "lane", "created_at", "attempts", "next_attempt_at",
      "last_attempt_at", "last_error", "parked_at", "parked_reason"}},
    {"quarantine", {"id", "received_at", "topic", "raw", "reason"}},
    {"mesh_duplicates", {"id", "cluster_data_id", "received_at", "hops"}},
    {"push_state",
     {"id", "protocol", "consecutive_failures", "last_attempt_at", "last_success_at",
      "last_error", "next_attempt_at", "auth_alarm_at", "bytes_sent", "bytes_received",
      "updated_at"}},
    {"migrations", {"id", "migration", "batch"}},
};

// A fresh SQLite file in its own temporary directory, removed with the object.
class temp_sqlite {
public:
    temp_sqlite() {
        std::string tmpl = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp");
        tmpl += "/opendms_migrations_XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        if (!::mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
        dir_ = buf.data();
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = dir_ + "/test.sqlite";
        auto c = db::open(o);
        if (!c) throw std::runtime_error("open: " + c.error().to_string());
        conn_ = std::move(c.value());
    }
    ~temp_sqlite() {
        conn_.reset();
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
            ::unlink((dir_ + "/test.sqlite" + suffix).c_str());
        }
        ::rmdir(dir_.c_str());
    }
    temp_sqlite(const temp_sqlite&) = delete;
    temp_sqlite& operator=(const temp_sqlite&) = delete;

    db::connection& c() { return *conn_; }

private:
    std::string dir_;
    std::unique_ptr<db::connection> conn_;
};

bool table_exists(db::connection& c, const std::string& table) {
    auto r = c.table_exists(table);
    REQUIRE(r.is_ok());
    return *r;
}

bool column_exists(db::connection& c, const std::string& table, const std::string& column) {
    auto r = c.column_exists(table, column);
    REQUIRE(r.is_ok());
    return *r;
}

std::int64_t count(db::connection& c, const std::string& sql) {
    auto r = c.query(sql);
    REQUIRE(r.is_ok());
    REQUIRE(r->size() == 1);
    return r->data[0].get_int(0).value_or(-1);
}

void run(db::connection& c, const std::string& sql) {
    auto s = c.execute_script(sql);
    INFO(s.to_string());
    REQUIRE(s.is_ok());
}

// Every row of a table as text, in id order, to compare before and after.
std::vector<std::vector<std::optional<std::string>>> dump(db::connection& c,
                                                          const std::string& sql) {
    auto r = c.query(sql);
    REQUIRE(r.is_ok());
    std::vector<std::vector<std::optional<std::string>>> out;
    for (const auto& row : r->data) {
        std::vector<std::optional<std::string>> cells;
        for (std::size_t i = 0; i < row.cells.size(); ++i) cells.push_back(row.get_text(i));
        out.push_back(std::move(cells));
    }
    return out;
}

std::vector<std::string> applied_names(db::migrator& m) {
    auto st = m.state();
    REQUIRE(st.is_ok());
    std::vector<std::string> names;
    for (const auto& s : *st) {
        if (s.applied) names.push_back(s.name);
    }
    return names;
}

void migrate_all(db::migrator& m) {
    auto r = m.migrate();
    INFO(r.error().to_string());
    REQUIRE(r.is_ok());
}

void insert_records(db::connection& c, int n) {
    for (int i = 0; i < n; ++i) {
        auto r = c.insert(
            "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
            "payload, path, hops, duck_type, synced, synced_at) values (?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)",
            {std::string("2026-03-01 10:00:0") + std::to_string(i % 10),
             std::string("2026-03-01 10:00:00"), std::string("DUCK000") + std::to_string(i % 3),
             std::string("status"), std::string("AB1") + std::to_string(i % 10),
             std::string("h\xc3\xa9llo ") + std::to_string(i),
             i % 2 ? db::value(std::string("A,B")) : db::null(), std::int64_t{i % 5},
             std::int64_t{2}, i % 3 == 0 ? db::null() : db::value(i % 3 == 1),
             i % 3 == 1 ? db::value(std::string("2026-03-02 00:00:00")) : db::null()});
        REQUIRE(r.is_ok());
    }
}

}  // namespace

// ---- the catalog ------------------------------------------------------------------------

TEST_CASE("every dialect has the same migrations, each with an up and a down", "[unit]") {
    for (db::dialect d : {db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql}) {
        INFO(db::dialect_name(d));
        const auto& catalog = db::schema_catalog(d);
        std::vector<std::string> names;
        for (const auto& m : catalog) {
            names.push_back(m.name);
            CHECK(m.up.find_first_not_of(" \n") != std::string::npos);
            CHECK(m.down.find_first_not_of(" \n") != std::string::npos);
        }
        CHECK(names == expected_names);
    }
}

TEST_CASE("every embedded schema file is named up or down for a known dialect", "[unit]") {
    for (const auto& f : db::detail::embedded_schema()) {
        INFO(f.dialect << "/" << f.name << "." << f.direction);
        CHECK(db::parse_dialect(f.dialect).has_value());
        CHECK((std::string(f.direction) == "up" || std::string(f.direction) == "down"));
    }
    CHECK(db::detail::embedded_schema().size() == 3 * 2 * expected_names.size());
}

TEST_CASE("a migration missing its down in one dialect is refused loudly", "[unit]") {
    std::vector<db::detail::embedded_sql> files;
    for (const char* d : {"sqlite", "pgsql", "mysql"}) {
        files.push_back({d, "2030_01_01_000000_a", "up", "create table a (x int);"});
        files.push_back({d, "2030_01_01_000000_a", "down", "drop table a;"});
    }
    CHECK(db::detail::build_catalog(files, db::dialect::pgsql).size() == 1);

    auto missing_down = files;
    missing_down.pop_back();  // mysql's down
    CHECK_THROWS_WITH(db::detail::build_catalog(missing_down, db::dialect::sqlite),
                      Catch::Contains("mysql/2030_01_01_000000_a.down.sql"));

    auto empty_up = files;
    empty_up[0].sql = "  \n";
    CHECK_THROWS_WITH(db::detail::build_catalog(empty_up, db::dialect::mysql),
                      Catch::Contains("sqlite/2030_01_01_000000_a.up.sql"));

    auto only_in_pg = files;
    only_in_pg.push_back({"pgsql", "2030_02_02_000000_b", "up", "select 1;"});
    only_in_pg.push_back({"pgsql", "2030_02_02_000000_b", "down", "select 1;"});
    CHECK_THROWS_WITH(db::detail::build_catalog(only_in_pg, db::dialect::sqlite),
                      Catch::Contains("2030_02_02_000000_b is not in every dialect"));

    auto unknown_dialect = files;
    unknown_dialect.push_back({"oracle", "2030_01_01_000000_a", "up", "select 1;"});
    CHECK_THROWS_WITH(db::detail::build_catalog(unknown_dialect, db::dialect::sqlite),
                      Catch::Contains("oracle is not a dialect"));
}

TEST_CASE("an injected catalog with a duplicate name is a bug", "[unit]") {
    temp_sqlite t;
    std::vector<db::migration> dup = {{"2030_a", "select 1;", "select 1;"},
                                      {"2030_a", "select 2;", "select 2;"}};
    CHECK_THROWS_AS(db::migrator(t.c(), dup), std::logic_error);
}

// ---- migrate and state ------------------------------------------------------------------

TEST_CASE("migrate on an empty database creates every table and column", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    auto r = m.migrate();
    REQUIRE(r.is_ok());
    CHECK(*r == expected_names);
    for (const auto& [table, columns] : expected_columns) {
        INFO(table);
        CHECK(table_exists(t.c(), table));
        for (const auto& column : columns) {
            INFO(column);
            CHECK(column_exists(t.c(), table, column));
        }
    }
    CHECK_FALSE(column_exists(t.c(), "cluster_data", "no_such_column"));
    CHECK(count(t.c(), "select count(*) from migrations where batch = 1") ==
          static_cast<std::int64_t>(expected_names.size()));
}

TEST_CASE("state lists every migration and is_current says whether all are applied", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    auto before = m.state();
    REQUIRE(before.is_ok());
    REQUIRE(before->size() == expected_names.size());
    for (const auto& s : *before) {
        CHECK_FALSE(s.applied);
        CHECK(s.batch == 0);
    }
    CHECK(*m.is_current() == false);
    CHECK_FALSE(table_exists(t.c(), "migrations"));  // reading the state changes nothing

    migrate_all(m);
    auto after = m.state();
    REQUIRE(after.is_ok());
    for (std::size_t i = 0; i < after->size(); ++i) {
        CHECK((*after)[i].name == expected_names[i]);
        CHECK((*after)[i].applied);
        CHECK((*after)[i].batch == 1);
    }
    CHECK(*m.is_current() == true);
}

TEST_CASE("state lists applied migrations the catalog does not know, in name order", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    run(t.c(),
        "insert into migrations (migration, batch) values "
        "('0001_01_01_000000_create_users_table', 1), ('2027_01_01_000000_later', 9)");
    auto st = m.state();
    REQUIRE(st.is_ok());
    REQUIRE(st->size() == expected_names.size() + 2);
    CHECK(st->front().name == "0001_01_01_000000_create_users_table");
    CHECK(st->front().applied);
    CHECK(st->back().name == "2027_01_01_000000_later");
    CHECK(st->back().batch == 9);
    CHECK(*m.is_current());
}

TEST_CASE("migrating twice is a no-op and opens no new batch", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    auto again = m.migrate();
    REQUIRE(again.is_ok());
    CHECK(again->empty());
    CHECK(count(t.c(), "select count(*) from migrations") ==
          static_cast<std::int64_t>(expected_names.size()));
    CHECK(count(t.c(), "select max(batch) from migrations") == 1);
}

TEST_CASE("pending migrations run in one new batch after the existing ones", "[unit]") {
    temp_sqlite t;
    std::vector<db::migration> first(db::schema_catalog(db::dialect::sqlite).begin(),
                                     db::schema_catalog(db::dialect::sqlite).begin() + 2);
    db::migrator seed(t.c(), first);
    migrate_all(seed);
    db::migrator m(t.c());
    auto r = m.migrate();
    REQUIRE(r.is_ok());
    CHECK(r->size() == expected_names.size() - 2);
    CHECK(count(t.c(), "select count(*) from migrations where batch = 2") ==
          static_cast<std::int64_t>(expected_names.size() - 2));
    CHECK(count(t.c(), "select count(*) from migrations where batch = 1") == 2);
}

TEST_CASE("foreign keys are on again after migrating: deleting a record deletes its outbox row",
          "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    CHECK(count(t.c(), "PRAGMA foreign_keys") == 1);
    insert_records(t.c(), 1);
    run(t.c(),
        "insert into outbox (cluster_data_id, created_at) values (1, '2026-03-01 10:00:00')");
    run(t.c(), "delete from cluster_data where id = 1");
    CHECK(count(t.c(), "select count(*) from outbox") == 0);
    auto orphan = t.c().exec(
        "insert into outbox (cluster_data_id, created_at) values (42, '2026-03-01 10:00:00')");
    CHECK_FALSE(orphan.is_ok());
}

// ---- rollback ---------------------------------------------------------------------------

TEST_CASE("rolling back the last batch drops everything, newest first", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    auto r = m.rollback_last_batch();
    REQUIRE(r.is_ok());
    std::vector<std::string> reversed(expected_names.rbegin(), expected_names.rend());
    CHECK(*r == reversed);
    for (const char* table : {"cluster_data", "outbox", "quarantine", "mesh_duplicates"}) {
        CHECK_FALSE(table_exists(t.c(), table));
    }
    CHECK(table_exists(t.c(), "migrations"));
    CHECK(count(t.c(), "select count(*) from migrations") == 0);
    CHECK(*m.is_current() == false);

    auto nothing = m.rollback_last_batch();
    REQUIRE(nothing.is_ok());
    CHECK(nothing->empty());

    migrate_all(m);  // and up again
    CHECK(*m.is_current());
}

TEST_CASE("rolling back only the seed's sync columns keeps every row and re-migrating re-adds them",
          "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    insert_records(t.c(), 20);
    const char* keep =
        "select id, created_at, updated_at, duck_id, topic, message_id, payload, path, hops, "
        "duck_type, origin, destination, uuid, source_node from cluster_data order by id";
    auto before = dump(t.c(), keep);

    auto s = m.rollback_one(seed_sync);
    INFO(s.to_string());
    REQUIRE(s.is_ok());
    CHECK_FALSE(column_exists(t.c(), "cluster_data", "synced"));
    CHECK_FALSE(column_exists(t.c(), "cluster_data", "synced_at"));
    CHECK(column_exists(t.c(), "cluster_data", "uuid"));
    CHECK(dump(t.c(), keep) == before);
    auto applied = applied_names(m);
    CHECK(applied.size() == expected_names.size() - 1);
    CHECK(std::find(applied.begin(), applied.end(), seed_sync) == applied.end());
    CHECK(*m.is_current() == false);

    auto again = m.migrate();
    REQUIRE(again.is_ok());
    CHECK(*again == std::vector<std::string>{seed_sync});
    CHECK(column_exists(t.c(), "cluster_data", "synced"));
    CHECK(column_exists(t.c(), "cluster_data", "synced_at"));
    CHECK(count(t.c(), "select count(*) from cluster_data where synced is not null") == 0);
    CHECK(dump(t.c(), keep) == before);
    CHECK(count(t.c(), "select batch from migrations where migration = '" + seed_sync + "'") == 2);
}

TEST_CASE("rollback_one refuses a migration that is not applied or not known", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    CHECK(m.rollback_one(seed_sync).code() == errc::not_found);
    migrate_all(m);
    auto unknown = m.rollback_one("2030_01_01_000000_unknown");
    CHECK(unknown.code() == errc::not_found);
    CHECK_THAT(unknown.message(), Catch::Contains("2030_01_01_000000_unknown"));

    run(t.c(),
        "insert into migrations (migration, batch) values "
        "('0001_01_01_000000_create_users_table', 1)");
    auto laravel = m.rollback_one("0001_01_01_000000_create_users_table");
    CHECK(laravel.code() == errc::not_found);
    CHECK(count(t.c(), "select count(*) from migrations") ==
          static_cast<std::int64_t>(expected_names.size() + 1));
}

TEST_CASE("rolling back a batch that holds a migration this program does not know changes nothing",
          "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    run(t.c(),
        "insert into migrations (migration, batch) values "
        "('0001_01_01_000000_create_users_table', 1)");
    auto r = m.rollback_last_batch();
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.error().code() == errc::not_found);
    CHECK_THAT(r.error().message(), Catch::Contains("0001_01_01_000000_create_users_table"));
    CHECK(table_exists(t.c(), "outbox"));
    CHECK(count(t.c(), "select count(*) from migrations") ==
          static_cast<std::int64_t>(expected_names.size() + 1));
}

TEST_CASE("the route-columns rollback refuses rows it cannot hold and changes nothing", "[unit]") {
    temp_sqlite t;
    std::vector<db::migration> upto_route(db::schema_catalog(db::dialect::sqlite).begin(),
                                          db::schema_catalog(db::dialect::sqlite).begin() + 3);
    db::migrator m(t.c(), upto_route);
    migrate_all(m);
    insert_records(t.c(), 5);
    run(t.c(),
        "insert into cluster_data (duck_id, topic, message_id, origin) values "
        "('DUCK0001', 'rreq', 'ZZ01', 'DUCK0002')");
    auto before = dump(t.c(), "select * from cluster_data order by id");

    auto s = m.rollback_one(route_columns);
    CHECK_FALSE(s.is_ok());
    CHECK_THAT(s.message(), Catch::Contains("rollback " + route_columns));
    CHECK_THAT(s.message(), Catch::Contains("NULL payload, hops or duck_type"));
    CHECK(dump(t.c(), "select * from cluster_data order by id") == before);
    CHECK(column_exists(t.c(), "cluster_data", "origin"));
    CHECK(count(t.c(), "select count(*) from migrations") == 3);
    CHECK(count(t.c(), "PRAGMA foreign_keys") == 1);

    run(t.c(), "delete from cluster_data where payload is null");
    auto ok = m.rollback_one(route_columns);
    INFO(ok.to_string());
    REQUIRE(ok.is_ok());
    CHECK_FALSE(column_exists(t.c(), "cluster_data", "origin"));
    CHECK(count(t.c(), "select count(*) from cluster_data") == 5);
    auto not_null = t.c().exec(
        "insert into cluster_data (duck_id, topic, message_id) values ('D', 'status', 'X')");
    CHECK_FALSE(not_null.is_ok());  // payload is NOT NULL again
}

TEST_CASE("the route-columns rebuild refuses to run over columns it does not know", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    insert_records(t.c(), 3);
    auto before = dump(t.c(), "select * from cluster_data order by id");
    // uuid and source_node (a later migration) would be lost by the rebuild's copy.
    auto s = m.rollback_one(route_columns);
    CHECK_FALSE(s.is_ok());
    CHECK_THAT(s.message(), Catch::Contains("roll back the later migrations"));
    CHECK(dump(t.c(), "select * from cluster_data order by id") == before);
    CHECK(*m.is_current());
}

TEST_CASE("the route-columns rebuild keeps ids and the AUTOINCREMENT high-water mark", "[unit]") {
    temp_sqlite t;
    std::vector<db::migration> seed(db::schema_catalog(db::dialect::sqlite).begin(),
                                    db::schema_catalog(db::dialect::sqlite).begin() + 2);
    db::migrator s(t.c(), seed);
    migrate_all(s);
    insert_records(t.c(), 10);
    run(t.c(), "delete from cluster_data where id in (3, 9, 10)");
    auto before = dump(t.c(), "select * from cluster_data order by id");

    db::migrator m(t.c());
    migrate_all(m);
    CHECK(dump(t.c(),
               "select id, created_at, updated_at, duck_id, topic, message_id, payload, path, "
               "hops, duck_type, synced, synced_at from cluster_data order by id") == before);
    auto id = t.c().insert(
        "insert into cluster_data (duck_id, topic, message_id) values ('D', 'rreq', 'X')", {});
    REQUIRE(id.is_ok());
    CHECK(*id == 11);
    CHECK(count(t.c(), "select count(*) from sqlite_master where name = 'cluster_data_new'") == 0);
}

TEST_CASE("rebuilding cluster_data keeps the outbox rows that reference it", "[unit]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    insert_records(t.c(), 4);
    run(t.c(),
        "insert into outbox (cluster_data_id, created_at) values (1, '2026-03-01 10:00:00'), "
        "(3, '2026-03-01 10:00:01')");
    run(t.c(),
        "insert into mesh_duplicates (cluster_data_id, received_at, hops) values "
        "(3, '2026-03-01 10:00:02', 4)");
    const char* outbox_rows = "select * from outbox order by id";
    const char* duplicate_rows = "select * from mesh_duplicates order by id";
    auto before = dump(t.c(), outbox_rows);
    auto duplicates_before = dump(t.c(), duplicate_rows);

    // The rebuild can only run with the later cluster_data changes rolled back first.
    for (const std::string& name :
         {expected_names[9], expected_names[7], expected_names[4], expected_names[3],
          route_columns}) {
        auto s = m.rollback_one(name);
        INFO(s.to_string());
        REQUIRE(s.is_ok());
    }
    CHECK_FALSE(column_exists(t.c(), "cluster_data", "origin"));
    CHECK(dump(t.c(), outbox_rows) == before);
    CHECK(dump(t.c(), duplicate_rows) == duplicates_before);
    auto again = m.migrate();
    REQUIRE(again.is_ok());
    CHECK(again->size() == 5);
    CHECK(dump(t.c(), outbox_rows) == before);
    CHECK(dump(t.c(), duplicate_rows) == duplicates_before);
    CHECK(count(t.c(), "PRAGMA foreign_keys") == 1);
    run(t.c(), "delete from cluster_data where id = 3");  // the cascade still works
    CHECK(count(t.c(), "select count(*) from outbox") == 1);
    CHECK(count(t.c(), "select count(*) from mesh_duplicates") == 0);
}

TEST_CASE("a migration that breaks a foreign key is rolled back on SQLite", "[unit][fault]") {
    temp_sqlite t;
    db::migrator m(t.c());
    migrate_all(m);
    insert_records(t.c(), 1);
    run(t.c(), "insert into outbox (cluster_data_id, created_at) values (1, '2026-03-01')");
    std::vector<db::migration> catalog = db::schema_catalog(db::dialect::sqlite);
    catalog.push_back({"2030_01_01_000000_orphan_the_outbox",
                       "delete from cluster_data; create table t (x integer);", "drop table t;"});
    db::migrator bad(t.c(), catalog);
    auto r = bad.migrate();
    REQUIRE_FALSE(r.is_ok());
    CHECK_THAT(r.error().message(),
               Catch::StartsWith("migrate 2030_01_01_000000_orphan_the_outbox: foreign_key_check"));
    CHECK(count(t.c(), "select count(*) from cluster_data") == 1);
    CHECK(count(t.c(), "select count(*) from outbox") == 1);
    CHECK_FALSE(table_exists(t.c(), "t"));
    CHECK(count(t.c(), "PRAGMA foreign_keys") == 1);
}

// ---- failures ---------------------------------------------------------------------------

TEST_CASE("a failing migration at any position leaves only the ones before it applied",
          "[unit][fault]") {
    const int n = 4;
    for (int fail_at = 0; fail_at < n; ++fail_at) {
        DYNAMIC_SECTION("failure in migration " << fail_at) {
            temp_sqlite t;
            std::vector<db::migration> catalog;
            for (int i = 0; i < n; ++i) {
                const std::string table = "t" + std::to_string(i);
                std::string up = "create table " + table + " (x integer not null);\n" +
                                 "insert into " + table + " values (" + std::to_string(i) + ");\n";
                if (i == fail_at) up += "this is not sql;\n";
                catalog.push_back({"2030_01_01_00000" + std::to_string(i) + "_create_" + table, up,
                                   "drop table " + table + ";"});
            }
            db::migrator m(t.c(), catalog);
            auto r = m.migrate();
            REQUIRE_FALSE(r.is_ok());
            CHECK_THAT(r.error().message(),
                       Catch::StartsWith("migrate " + catalog[fail_at].name + ": "));
            CHECK(count(t.c(), "select count(*) from migrations") == fail_at);
            for (int i = 0; i < n; ++i) {
                INFO("table t" << i);
                CHECK(table_exists(t.c(), "t" + std::to_string(i)) == (i < fail_at));
            }
            CHECK(count(t.c(), "PRAGMA foreign_keys") == 1);

            // Fixed, the rest applies in a new batch.
            catalog[fail_at].up = "create table t" + std::to_string(fail_at) + " (x integer);";
            db::migrator fixed(t.c(), catalog);
            auto again = fixed.migrate();
            REQUIRE(again.is_ok());
            CHECK(again->size() == static_cast<std::size_t>(n - fail_at));
            CHECK(count(t.c(), "select count(*) from migrations") == n);
        }
    }
}

TEST_CASE("a failing rollback at any position keeps the failed one and those after it applied",
          "[unit][fault]") {
    const int n = 4;
    for (int fail_at = 0; fail_at < n; ++fail_at) {
        DYNAMIC_SECTION("failure in rollback of migration " << fail_at) {
            temp_sqlite t;
            std::vector<db::migration> catalog;
            for (int i = 0; i < n; ++i) {
                const std::string table = "t" + std::to_string(i);
                std::string down = "drop table " + table + ";\n";
                if (i == fail_at) down += "this is not sql;\n";
                catalog.push_back({"2030_01_01_00000" + std::to_string(i) + "_create_" + table,
                                   "create table " + table + " (x integer);", down});
            }
            db::migrator m(t.c(), catalog);
            migrate_all(m);
            auto r = m.rollback_last_batch();
            REQUIRE_FALSE(r.is_ok());
            CHECK_THAT(r.error().message(),
                       Catch::StartsWith("rollback " + catalog[fail_at].name + ": "));
            // Newest first: those above fail_at are gone, the rest (and their rows) stay.
            CHECK(count(t.c(), "select count(*) from migrations") == fail_at + 1);
            for (int i = 0; i < n; ++i) {
                INFO("table t" << i);
                CHECK(table_exists(t.c(), "t" + std::to_string(i)) == (i <= fail_at));
            }
        }
    }
}

TEST_CASE("a hand-made cluster_data without a migrations table is refused", "[unit]") {
    temp_sqlite t;
    run(t.c(),
        "create table cluster_data (id integer primary key, duck_id varchar, topic varchar)");
    db::migrator m(t.c());
    auto r = m.migrate();
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.error().code() == errc::conflict);
    CHECK_THAT(r.error().message(), Catch::StartsWith("migrate: "));
    CHECK_THAT(r.error().message(), Catch::Contains("migrations table does not"));
    CHECK_FALSE(table_exists(t.c(), "migrations"));
    CHECK_FALSE(column_exists(t.c(), "cluster_data", "synced"));
    CHECK(m.state().error().code() == errc::conflict);
    CHECK(m.is_current().error().code() == errc::conflict);
    CHECK(m.rollback_last_batch().error().code() == errc::conflict);
}
