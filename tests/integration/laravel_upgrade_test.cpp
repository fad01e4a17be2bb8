// A database made by the Laravel OpenDMS (the seed we replace) is recognised and upgraded
// in place: its migrations are not re-run, every row survives column by column, and
// Laravel's own tables and migration rows are left alone. On SQLite, PostgreSQL and MariaDB.
//
// The Laravel database is built here from Laravel 11's own DDL (written out below, not
// taken from schema/), so that a drift in our copy of the seed's migrations shows up.
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/timefmt.hpp"
#include "test_servers.hpp"

namespace db = opendms::db;
using opendms::test::scratch_database;

namespace {

const std::vector<std::string> laravel_rows = {
    "0001_01_01_000000_create_users_table",
    "0001_01_01_000001_create_cache_table",
    "0001_01_01_000002_create_jobs_table",
    "2026_02_18_120944_create_cluster_data_table",
    "2026_02_27_000000_add_sync_columns_to_cluster_data_table",
};

const std::vector<std::string> our_migrations = {
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

// What `php artisan migrate` (Laravel 11) ran for the seed, statement by statement.
std::vector<std::string> laravel_ddl(db::dialect d) {
    switch (d) {
        case db::dialect::sqlite:
            return {
                R"(create table "migrations" ("id" integer primary key autoincrement not null, )"
                R"("migration" varchar not null, "batch" integer not null))",
                R"(create table "jobs" ("id" integer primary key autoincrement not null, )"
                R"("queue" varchar not null, "payload" text not null, )"
                R"("attempts" integer not null, "reserved_at" integer, )"
                R"("available_at" integer not null, "created_at" integer not null))",
                R"(create index "jobs_queue_index" on "jobs" ("queue"))",
                R"(create table "cluster_data" ("id" integer primary key autoincrement not null, )"
                R"("created_at" datetime, "updated_at" datetime, "duck_id" varchar not null, )"
                R"("topic" varchar not null, "message_id" varchar not null, )"
                R"("payload" text not null, "path" text, "hops" integer not null, )"
                R"("duck_type" integer not null))",
                R"(alter table "cluster_data" add column "synced" tinyint(1))",
                R"(alter table "cluster_data" add column "synced_at" datetime)",
                R"(create index "cluster_data_synced_index" on "cluster_data" ("synced"))",
            };
        case db::dialect::pgsql:
            return {
                R"(create table "migrations" ("id" serial not null primary key, )"
                R"("migration" varchar(255) not null, "batch" integer not null))",
                R"(create table "jobs" ("id" bigserial not null primary key, )"
                R"("queue" varchar(255) not null, "payload" text not null, )"
                R"("attempts" smallint not null, "reserved_at" integer null, )"
                R"("available_at" integer not null, "created_at" integer not null))",
                R"(create index "jobs_queue_index" on "jobs" ("queue"))",
                R"(create table "cluster_data" ("id" bigserial not null primary key, )"
                R"("created_at" timestamp(0) without time zone null, )"
                R"("updated_at" timestamp(0) without time zone null, )"
                R"("duck_id" varchar(255) not null, "topic" varchar(255) not null, )"
                R"("message_id" varchar(255) not null, "payload" text not null, "path" text null, )"
                R"("hops" integer not null, "duck_type" integer not null))",
                R"(alter table "cluster_data" add column "synced" boolean null, )"
                R"(add column "synced_at" timestamp(0) without time zone null)",
                R"(create index "cluster_data_synced_index" on "cluster_data" ("synced"))",
            };
        case db::dialect::mysql:
            return {
                "create table `migrations` (`id` int unsigned not null auto_increment primary key, "
                "`migration` varchar(255) not null, `batch` int not null) default character set "
                "utf8mb4 collate 'utf8mb4_unicode_ci'",
                "create table `jobs` (`id` bigint unsigned not null auto_increment primary key, "
                "`queue` varchar(255) not null, `payload` longtext not null, `attempts` tinyint "
                "unsigned not null, `reserved_at` int unsigned null, `available_at` int unsigned "
                "not null, `created_at` int unsigned not null) default character set utf8mb4 "
                "collate 'utf8mb4_unicode_ci'",
                "alter table `jobs` add index `jobs_queue_index`(`queue`)",
                "create table `cluster_data` (`id` bigint unsigned not null auto_increment primary "
                "key, `created_at` timestamp null, `updated_at` timestamp null, `duck_id` "
                "varchar(255) not null, `topic` varchar(255) not null, `message_id` varchar(255) "
                "not null, `payload` text not null, `path` text null, `hops` int not null, "
                "`duck_type` int not null) default character set utf8mb4 collate "
                "'utf8mb4_unicode_ci'",
                "alter table `cluster_data` add `synced` tinyint(1) null after `duck_type`, add "
                "`synced_at` timestamp null after `synced`",
                "alter table `cluster_data` add index `cluster_data_synced_index`(`synced`)",
            };
    }
    return {};
}

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

void exec(db::connection& c, const std::string& sql, const std::vector<db::value>& params = {}) {
    auto r = c.exec(sql, params);
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r.is_ok());
}

const std::vector<std::string> payloads = {
    "h\xc3\xa9llo",                   // héllo
    "\xf0\x9f\xa6\x86 duck",          // an emoji (4-byte UTF-8)
    "\xe6\xb8\xa9\xe5\xba\xa6 23.5",  // CJK
    "{\"lat\":14.6,\"lon\":-90.5}",
    "",
    "it's \"quoted\" \\ back?slash",
};

const int record_count = 300;

// Rows as the seed stored them: synced NULL (not applicable), false (pending) and true
// (delivered, with synced_at), times spread over days, some without a path.
void insert_laravel_rows(db::connection& c) {
    const opendms::unix_seconds base = 1771545600;  // 2026-02-20 00:00:00 UTC
    for (int i = 0; i < record_count; ++i) {
        const opendms::unix_seconds created = base + i * 3607;
        const int kind = i % 3;
        exec(c,
             "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
             "payload, path, hops, duck_type, synced, synced_at) values (?, ?, ?, ?, ?, ?, ?, ?, "
             "?, ?, ?)",
             {opendms::format_sql_time(created), opendms::format_sql_time(created + i % 2),
              std::string("DUCK000") + std::to_string(i % 7),
              std::string(i % 4 == 0   ? "status"
                          : i % 4 == 1 ? "alert"
                                       : "gps"),
              std::string("M") + std::to_string(1000 + i % 997),
              payloads[static_cast<std::size_t>(i) % payloads.size()] + " #" + std::to_string(i),
              i % 5 == 0 ? db::null() : db::value(std::string("DUCK0001,DUCK0002")),
              std::int64_t{i % 6}, std::int64_t{i % 5},
              kind == 0 ? db::null() : db::value(kind == 2),
              kind == 2 ? db::value(opendms::format_sql_time(created + 60)) : db::null()});
    }
}

void build_laravel_database(db::connection& c) {
    for (const std::string& sql : laravel_ddl(c.kind())) {
        auto s = c.execute_script(sql);
        INFO(sql << ": " << s.to_string());
        REQUIRE(s.is_ok());
    }
    for (std::size_t i = 0; i < laravel_rows.size(); ++i) {
        exec(c, "insert into migrations (migration, batch) values (?, ?)",
             {laravel_rows[i], std::int64_t{i == 4 ? 2 : 1}});
    }
    for (int i = 0; i < 3; ++i) {
        exec(c,
             "insert into jobs (queue, payload, attempts, reserved_at, available_at, "
             "created_at) values (?, ?, ?, ?, ?, ?)",
             {std::string("default"),
              std::string("{\"job\":\"SyncClusterData\",\"n\":") + std::to_string(i) + "}",
              std::int64_t{i}, i == 0 ? db::null() : db::value(std::int64_t{1771545600 + i}),
              std::int64_t{1771545600}, std::int64_t{1771545600}});
    }
    insert_laravel_rows(c);
    // The newest rows were deleted: new ids must still continue after the highest ever.
    exec(c, "delete from cluster_data where id > ?", {std::int64_t{record_count - 5}});
}

const char* const seed_columns =
    "select id, created_at, updated_at, duck_id, topic, message_id, payload, path, hops, "
    "duck_type, synced, synced_at from cluster_data order by id";
const char* const migration_rows = "select id, migration, batch from migrations order by id";
const char* const job_rows =
    "select id, queue, payload, attempts, reserved_at, available_at, created_at from jobs "
    "order by id";

}  // namespace

TEST_CASE("a Laravel OpenDMS database is upgraded in place without losing a row", "[integration]") {
    for (db::dialect d : {db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql}) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            scratch_database scratch(d);
            auto conn = scratch.connect();
            db::connection& c = *conn;
            build_laravel_database(c);
            const table_dump records = dump(c, seed_columns);
            const table_dump migrations_before = dump(c, migration_rows);
            const table_dump jobs = dump(c, job_rows);
            REQUIRE(records.size() == static_cast<std::size_t>(record_count - 5));
            REQUIRE(jobs.size() == 3);

            db::migrator m(c);
            auto applied = m.migrate();
            INFO(applied.error().to_string());
            REQUIRE(applied.is_ok());
            // Only ours ran: the seed's two were recognised as applied.
            CHECK(*applied == our_migrations);
            CHECK(*m.is_current());

            // Laravel's migration rows untouched; ours in one new batch after them.
            const table_dump migrations_after = dump(c, migration_rows);
            REQUIRE(migrations_after.size() == laravel_rows.size() + our_migrations.size());
            for (std::size_t i = 0; i < laravel_rows.size(); ++i) {
                CHECK(migrations_after[i] == migrations_before[i]);
            }
            for (std::size_t i = 0; i < our_migrations.size(); ++i) {
                CHECK(migrations_after[laravel_rows.size() + i][1] == our_migrations[i]);
                CHECK(migrations_after[laravel_rows.size() + i][2] == std::string("3"));
            }

            // Every row unchanged, column by column; the new columns empty.
            CHECK(dump(c, seed_columns) == records);
            CHECK(count(c,
                        "select count(*) from cluster_data where origin is not null or "
                        "destination is not null or uuid is not null or source_node is not null") ==
                  0);
            CHECK(count(c, "select count(*) from cluster_data where synced is null") == 99);
            CHECK(count(c, "select count(*) from cluster_data where synced_at is not null") == 98);

            // New ids continue after the highest ever given (300, since deleted).
            auto id = c.insert(
                "insert into cluster_data (duck_id, topic, message_id, origin, destination) "
                "values (?, ?, ?, ?, ?)",
                {std::string("DUCK0001"), std::string("rrep"), std::string("QZ09"),
                 std::string("DUCK0001"), std::string("DUCK0003")});
            INFO(id.error().to_string());
            REQUIRE(id.is_ok());
            CHECK(*id > record_count);

            // Laravel's other tables untouched.
            CHECK(dump(c, job_rows) == jobs);
            auto state = m.state();
            REQUIRE(state.is_ok());
            CHECK(state->front().name == laravel_rows[0]);
            CHECK(state->front().applied);
            CHECK(state->front().batch == 1);

            // Rolling our batch back returns the seed's exact shape and rows.
            exec(c, "delete from cluster_data where id = ?", {*id});
            auto back = m.rollback_last_batch();
            INFO(back.error().to_string());
            REQUIRE(back.is_ok());
            CHECK(back->size() == our_migrations.size());
            CHECK(dump(c, seed_columns) == records);
            CHECK(dump(c, migration_rows) == migrations_before);
            auto origin = c.column_exists("cluster_data", "origin");
            REQUIRE(origin.is_ok());
            CHECK_FALSE(*origin);
            CHECK(dump(c, job_rows) == jobs);
        }
    }
}

TEST_CASE("rolling back past our batch stops at Laravel's own migrations", "[integration]") {
    for (db::dialect d : {db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql}) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            scratch_database scratch(d);
            auto conn = scratch.connect();
            db::connection& c = *conn;
            build_laravel_database(c);
            const table_dump records = dump(c, seed_columns);
            db::migrator m(c);
            REQUIRE(m.migrate().is_ok());
            REQUIRE(m.rollback_last_batch().is_ok());  // ours (batch 3)

            auto sync = m.rollback_last_batch();  // the seed's sync columns (batch 2)
            INFO(sync.error().to_string());
            REQUIRE(sync.is_ok());
            CHECK(*sync == std::vector<std::string>{laravel_rows[4]});

            // Batch 1 holds Laravel's users/cache/jobs migrations: refused, nothing changed.
            auto refused = m.rollback_last_batch();
            REQUIRE_FALSE(refused.is_ok());
            CHECK(refused.error().code() == opendms::errc::not_found);
            CHECK_THAT(refused.error().message(), Catch::Contains("0001_01_01_00000"));
            CHECK(count(c, "select count(*) from migrations") == 4);
            CHECK(count(c, "select count(*) from cluster_data") == record_count - 5);
        }
    }
}
