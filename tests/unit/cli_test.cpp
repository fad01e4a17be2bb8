// The shared command line: argument parsing, settings loading, exit codes, and the
// migrate* / check-config commands on a SQLite file.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "opendms/central/central_program.hpp"
#include "opendms/field/field_program.hpp"
#include "test_servers.hpp"

namespace {

using opendms::cli::exit_config;
using opendms::cli::exit_ok;
using opendms::cli::exit_usage;

struct outcome {
    int code;
    std::string out;
    std::string err;
};

outcome run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), "opendms-field");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    std::ostringstream out, err;
    // A missing default ./.env is fine; tests never rely on one being present.
    int code = opendms::cli::run_main(opendms::field::field_program(),
                                      static_cast<int>(argv.size()), argv.data(), out, err, env);
    return {code, out.str(), err.str()};
}

std::map<std::string, std::string> sqlite_env(const std::string& path) {
    return {{"DB_CONNECTION", "sqlite"}, {"DB_DATABASE", path}};
}

}  // namespace

TEST_CASE("help lists every common command and exits 0", "[unit][cli]") {
    outcome r = run({"--help"});
    CHECK(r.code == exit_ok);
    for (const char* name : {"migrate", "migrate:status", "migrate:rollback", "check-config"}) {
        CHECK(r.out.find(name) != std::string::npos);
    }
}

TEST_CASE("both programs carry the common commands", "[unit][cli]") {
    for (const auto& p : {opendms::field::field_program(), opendms::central::central_program()}) {
        std::vector<std::string> names;
        for (const auto& c : p.commands) names.push_back(c.name);
        CHECK(std::count(names.begin(), names.end(), "migrate") == 1);
        CHECK(std::count(names.begin(), names.end(), "check-config") == 1);
    }
}

TEST_CASE("no command, an unknown command or an unknown option is a usage error", "[unit][cli]") {
    CHECK(run({}).code == exit_usage);
    outcome unknown = run({"frobnicate"});
    CHECK(unknown.code == exit_usage);
    CHECK(unknown.err.find("frobnicate") != std::string::npos);
    CHECK(run({"--bogus", "migrate"}).code == exit_usage);
    CHECK(run({"--env-file"}).code == exit_usage);
}

TEST_CASE("a missing --env-file stops with a config error naming the file", "[unit][cli]") {
    outcome r = run({"--env-file", "/nonexistent/opendms.env", "migrate"});
    CHECK(r.code == exit_config);
    CHECK(r.err.find("/nonexistent/opendms.env") != std::string::npos);
}

TEST_CASE("an invalid setting stops a command before it touches the database", "[unit][cli]") {
    opendms::test::temp_dir dir;
    std::string db = dir.path() + "/field.sqlite";
    auto env = sqlite_env(db);
    env["CENTRAL_DMS_URL"] = "https://central.example";  // no token: a contradiction
    outcome r = run({"migrate"}, env);
    CHECK(r.code == exit_config);
    CHECK(r.err.find("CENTRAL_DMS_TOKEN") != std::string::npos);
    CHECK_FALSE(std::ifstream(db).good());
}

TEST_CASE("check-config reports the mode, masks the token and does not create the database",
          "[unit][cli]") {
    opendms::test::temp_dir dir;
    std::string db = dir.path() + "/field.sqlite";
    auto env = sqlite_env(db);
    env["CENTRAL_DMS_URL"] = "https://central.example";
    env["CENTRAL_DMS_TOKEN"] = "s3cret-token-value";
    outcome r = run({"check-config"}, env);
    CHECK(r.code == exit_ok);
    CHECK(r.out.find("mode: hybrid") != std::string::npos);
    CHECK(r.out.find("s3cret-token-value") == std::string::npos);
    CHECK(r.err.find("s3cret-token-value") == std::string::npos);
    CHECK_FALSE(std::ifstream(db).good());
}

TEST_CASE("check-config lists every problem and exits with the config code", "[unit][cli]") {
    outcome r = run({"check-config"}, {{"DB_CONNECTION", "oracle"}, {"DB_SYNCHRONOUS", "SOMETIMES"}});
    CHECK(r.code == exit_config);
    CHECK(r.err.find("DB_CONNECTION") != std::string::npos);
    CHECK(r.err.find("DB_SYNCHRONOUS") != std::string::npos);
}

TEST_CASE("migrate, status and rollback of the seed's sync columns alone on SQLite",
          "[unit][cli]") {
    opendms::test::temp_dir dir;
    auto env = sqlite_env(dir.path() + "/field.sqlite");

    outcome first = run({"migrate"}, env);
    REQUIRE(first.code == exit_ok);
    CHECK(first.out.find("Migrated: 2026_02_18_120944_create_cluster_data_table") !=
          std::string::npos);
    CHECK(run({"migrate"}, env).out.find("Nothing to migrate.") != std::string::npos);

    const std::string sync = "2026_02_27_000000_add_sync_columns_to_cluster_data_table";
    outcome back = run({"migrate:rollback", "--migration", sync}, env);
    REQUIRE(back.code == exit_ok);
    outcome st = run({"migrate:status"}, env);
    auto line_of = [&](const std::string& name) {
        auto at = st.out.find(name);
        REQUIRE(at != std::string::npos);
        return st.out.substr(at, st.out.find('\n', at) - at);
    };
    CHECK(line_of(sync).find("Pending") != std::string::npos);
    CHECK(line_of("2026_02_18_120944_create_cluster_data_table").find("Ran") != std::string::npos);

    outcome again = run({"migrate"}, env);
    CHECK(again.code == exit_ok);
    CHECK(again.out.find("Migrated: " + sync) != std::string::npos);
}

TEST_CASE("Laravel's --path form of a rollback names the same migration", "[unit][cli]") {
    opendms::test::temp_dir dir;
    auto env = sqlite_env(dir.path() + "/field.sqlite");
    REQUIRE(run({"migrate"}, env).code == exit_ok);
    outcome r = run({"migrate:rollback",
                     "--path=database/migrations/"
                     "2026_02_27_000000_add_sync_columns_to_cluster_data_table.php"},
                    env);
    CHECK(r.code == exit_ok);
    CHECK(r.out.find("Rolled back: 2026_02_27_000000_add_sync_columns_to_cluster_data_table") !=
          std::string::npos);
}

TEST_CASE("rolling back an unknown migration fails and says which", "[unit][cli]") {
    opendms::test::temp_dir dir;
    auto env = sqlite_env(dir.path() + "/field.sqlite");
    REQUIRE(run({"migrate"}, env).code == exit_ok);
    outcome r = run({"migrate:rollback", "--migration", "2099_01_01_000000_nope"}, env);
    CHECK(r.code != exit_ok);
    CHECK(r.err.find("2099_01_01_000000_nope") != std::string::npos);
}

TEST_CASE("a database directory that does not exist is reported by check-config",
          "[unit][cli]") {
    outcome r = run({"check-config"}, sqlite_env("/nonexistent-dir/field.sqlite"));
    CHECK(r.code == exit_config);
    CHECK(r.err.find("DB_DATABASE") != std::string::npos);
}
