// The built programs, run as an operator runs them: an .env file, a real PostgreSQL or
// MariaDB server, and the migrate* / check-config commands.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "opendms/db/migrations.hpp"
#include "test_servers.hpp"

namespace {

using opendms::db::dialect;

struct outcome {
    int code = -1;
    std::string output;  // stdout and stderr together
};

std::string binary(const std::string& program) {
    std::string dir = program == "opendms-field" ? "field-node" : "central-server";
    return std::string(OPENDMS_BINARY_DIR) + "/" + dir + "/" + program;
}

outcome run(const std::string& program, const std::string& env_file, const std::string& args) {
    // An empty environment apart from PATH, so that only the .env file speaks.
    std::string cmd = "env -i PATH=/usr/bin:/bin " + binary(program) + " --env-file '" +
                      env_file + "' " + args + " 2>&1";
    outcome r;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::array<char, 4096> buf{};
    std::size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
    int st = ::pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

std::string write_env(const opendms::test::temp_dir& dir, const opendms::db::connect_options& o,
                      const std::string& extra = "") {
    std::string path = dir.file("opendms.env");
    std::ofstream f(path);
    f << "# written by programs_test\n"
      << "DB_CONNECTION=" << opendms::db::dialect_name(o.kind) << "\n"
      << "DB_HOST=" << o.host << "\nDB_PORT=" << o.port << "\n"
      << "DB_DATABASE=" << o.database << "\nDB_USERNAME=" << o.username << "\n"
      << "DB_PASSWORD='" << o.password << "'\n"
      << "CENTRAL_DMS_TOKEN=\"central-secret-token\"\n"
      << extra;
    return path;
}

}  // namespace

TEST_CASE("both programs migrate a server database and report it current", "[integration][cli]") {
    dialect d = GENERATE(dialect::pgsql, dialect::mysql);
    const std::string program = GENERATE(std::string("opendms-central"),
                                         std::string("opendms-field"));
    INFO(opendms::db::dialect_name(d) << " via " << program);
    opendms::test::scratch_database db(d);
    opendms::test::temp_dir dir;
    std::string env = write_env(dir, db.options());

    outcome before = run(program, env, "check-config");
    CHECK(before.code == 0);
    CHECK(before.output.find("mode: production") != std::string::npos);
    const auto& catalog = opendms::db::schema_catalog(d);
    CHECK(before.output.find(std::to_string(catalog.size()) + " migration(s) pending") !=
          std::string::npos);
    CHECK(before.output.find("central-secret-token") == std::string::npos);

    outcome m = run(program, env, "migrate");
    REQUIRE(m.code == 0);
    for (const auto& mig : catalog) {
        CHECK(m.output.find("Migrated: " + mig.name) != std::string::npos);
    }

    outcome after = run(program, env, "check-config");
    CHECK(after.code == 0);
    CHECK(after.output.find("0 migration(s) pending") != std::string::npos);

    outcome st = run(program, env, "migrate:status");
    CHECK(st.code == 0);
    CHECK(st.output.find("Pending") == std::string::npos);
}

TEST_CASE("the seed's sync columns roll back alone and come back, keeping rows",
          "[integration][cli]") {
    dialect d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(opendms::db::dialect_name(d));
    opendms::test::scratch_database db(d);
    opendms::test::temp_dir dir;
    std::string env = write_env(dir, db.options());
    REQUIRE(run("opendms-central", env, "migrate").code == 0);
    {
        auto c = db.connect();
        auto id = c->insert(
            "INSERT INTO cluster_data (duck_id, topic, message_id, payload, hops, duck_type, "
            "created_at, updated_at, synced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {std::string("KAMPUNG1"), std::string("alert"), std::string("R2D7"),
             std::string("SOS,SRC:DEVICE"), std::int64_t{0}, std::int64_t{2},
             std::string("2026-11-25 01:02:03"), std::string("2026-11-25 01:02:03"), true});
        REQUIRE(id);
    }
    const std::string sync = "2026_02_27_000000_add_sync_columns_to_cluster_data_table";
    outcome back = run("opendms-central", env, "migrate:rollback --migration " + sync);
    REQUIRE(back.code == 0);
    {
        auto c = db.connect();
        CHECK_FALSE(*c->column_exists("cluster_data", "synced"));
        CHECK_FALSE(*c->column_exists("cluster_data", "synced_at"));
        auto rows = c->query("SELECT duck_id, created_at FROM cluster_data");
        REQUIRE(rows);
        REQUIRE(rows->size() == 1);
        CHECK(rows->data[0].get_text(1).value_or("") == "2026-11-25 01:02:03");
    }
    REQUIRE(run("opendms-central", env, "migrate").code == 0);
    auto c = db.connect();
    CHECK(*c->column_exists("cluster_data", "synced"));
    auto rows = c->query("SELECT COUNT(*) FROM cluster_data WHERE synced IS NULL");
    REQUIRE(rows);
    CHECK(rows->data[0].get_int(0).value_or(-1) == 1);
}

TEST_CASE("a wrong database password stops check-config with the variables to fix",
          "[integration][cli]") {
    dialect d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(opendms::db::dialect_name(d));
    auto o = opendms::test::require_server_options(d);
    o.password = "definitely-wrong";
    opendms::test::temp_dir dir;
    outcome r = run("opendms-central", write_env(dir, o), "check-config");
    CHECK(r.code == 78);
    CHECK(r.output.find("DB_PASSWORD") != std::string::npos);
    CHECK(r.output.find("definitely-wrong") == std::string::npos);
}

TEST_CASE("a hybrid URL on a server database is refused before anything runs",
          "[integration][cli]") {
    auto o = opendms::test::require_server_options(dialect::pgsql);
    opendms::test::temp_dir dir;
    outcome r = run("opendms-field", write_env(dir, o, "CENTRAL_DMS_URL=https://central.example\n"),
                    "migrate");
    CHECK(r.code == 78);
    CHECK(r.output.find("CENTRAL_DMS_URL") != std::string::npos);
}
