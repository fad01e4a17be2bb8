// Settings: defaults, validation (each problem names its variable), the mode table,
// describe() and the reusable setting_reader.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "opendms/config/settings.hpp"
#include "central_process.hpp"
#include "test_servers.hpp"

using opendms::errc;
using opendms::config::deployment_mode;
using opendms::config::env_map;
using opendms::config::problem;
using opendms::config::setting_reader;
using opendms::config::settings;
using opendms::db::dialect;
using env_vars = std::map<std::string, std::string>;

namespace {

settings load(const env_vars& vars, std::vector<problem>& problems) {
    return opendms::config::load_settings(env_map::from({}, vars), problems);
}

/// Loads settings that must be valid.
settings load_ok(const env_vars& vars) {
    std::vector<problem> problems;
    settings s = load(vars, problems);
    for (const problem& p : problems) UNSCOPED_INFO(format_problem(p));
    REQUIRE(problems.empty());
    return s;
}

/// Loads settings that must have exactly one problem, and returns it.
problem only_problem(const env_vars& vars) {
    std::vector<problem> problems;
    (void)load(vars, problems);
    for (const problem& p : problems) UNSCOPED_INFO(format_problem(p));
    REQUIRE(problems.size() == 1);
    return problems[0];
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

const env_vars hybrid_vars{{"CENTRAL_DMS_URL", "https://central.example.org"},
                           {"CENTRAL_DMS_TOKEN", "tok"}};

env_vars with(env_vars base, const env_vars& more) {
    for (const auto& [k, v] : more) base[k] = v;
    return base;
}

}  // namespace

TEST_CASE("with nothing set, settings are Laravel's sqlite defaults in offline mode", "[unit]") {
    settings s = load_ok({});
    CHECK(s.db.kind == dialect::sqlite);
    CHECK(s.db.database == "database/database.sqlite");
    CHECK(s.db.host == "127.0.0.1");
    CHECK(s.db.port == 0);
    CHECK(s.db.username == "root");
    CHECK(s.db.password.empty());
    CHECK(s.db.socket.empty());
    CHECK(s.db.sqlite_synchronous == "FULL");
    CHECK(s.db.busy_timeout_ms == 5000);
    CHECK(s.queue_connection == "database");
    CHECK_FALSE(s.central_url.has_value());
    CHECK_FALSE(s.central_token.has_value());
    CHECK(s.mode == deployment_mode::offline);
}

TEST_CASE("server drivers default to database laravel on their usual ports", "[unit]") {
    struct row {
        const char* driver;
        dialect kind;
        int port;
    };
    for (const row& r : {row{"pgsql", dialect::pgsql, 5432}, row{"mysql", dialect::mysql, 3306},
                         row{"mariadb", dialect::mysql, 3306}, row{"PGSQL", dialect::pgsql, 5432},
                         row{"MariaDB", dialect::mysql, 3306}}) {
        INFO(r.driver);
        settings s = load_ok({{"DB_CONNECTION", r.driver}});
        CHECK(s.db.kind == r.kind);
        CHECK(s.db.port == r.port);
        CHECK(s.db.database == "laravel");
        CHECK(s.mode == deployment_mode::production);
    }
}

TEST_CASE("explicit database settings are taken as written", "[unit]") {
    settings s = load_ok({{"DB_CONNECTION", "pgsql"},
                          {"DB_DATABASE", "dms"},
                          {"DB_HOST", "db.internal"},
                          {"DB_PORT", "6543"},
                          {"DB_USERNAME", "dms_user"},
                          {"DB_PASSWORD", "p@ss word"},
                          {"DB_SOCKET", "/run/postgresql"}});
    CHECK(s.db.database == "dms");
    CHECK(s.db.host == "db.internal");
    CHECK(s.db.port == 6543);
    CHECK(s.db.username == "dms_user");
    CHECK(s.db.password == "p@ss word");
    CHECK(s.db.socket == "/run/postgresql");
}

TEST_CASE("empty values fall back to defaults, except the user name and password", "[unit]") {
    settings s = load_ok({{"DB_CONNECTION", ""},
                          {"DB_DATABASE", ""},
                          {"DB_HOST", ""},
                          {"DB_PORT", ""},
                          {"DB_USERNAME", ""},
                          {"DB_SYNCHRONOUS", ""},
                          {"DB_BUSY_TIMEOUT", ""},
                          {"QUEUE_CONNECTION", ""},
                          {"CENTRAL_DMS_URL", ""},
                          {"CENTRAL_DMS_TOKEN", ""}});
    CHECK(s.db.kind == dialect::sqlite);
    CHECK(s.db.database == "database/database.sqlite");
    CHECK(s.db.host == "127.0.0.1");
    CHECK(s.db.username.empty());
    CHECK(s.db.sqlite_synchronous == "FULL");
    CHECK(s.db.busy_timeout_ms == 5000);
    CHECK_FALSE(s.central_url.has_value());
    CHECK_FALSE(s.central_token.has_value());
}

TEST_CASE("an unknown DB_CONNECTION names the driver and the accepted ones", "[unit]") {
    problem p = only_problem({{"DB_CONNECTION", "postgres"}});
    CHECK(p.variable == "DB_CONNECTION");
    CHECK(contains(p.message, "'postgres'"));
    CHECK(contains(p.message, "sqlite, pgsql or mysql"));
    CHECK(format_problem(p) ==
          "DB_CONNECTION: unknown driver 'postgres'; use sqlite, pgsql or mysql");
}

TEST_CASE("an unknown DB_CONNECTION adds no guessed mode problem", "[unit]") {
    problem p = only_problem(
        {{"DB_CONNECTION", "oracle"}, {"CENTRAL_DMS_URL", "https://central.example.org"}});
    CHECK(p.variable == "DB_CONNECTION");
}

TEST_CASE("DB_PORT must be a whole number from 1 to 65535", "[unit]") {
    for (const char* bad :
         {"abc", "0", "65536", "-1", "5432x", " ", "54.32", "99999999999999999999999"}) {
        INFO(bad);
        problem p = only_problem({{"DB_CONNECTION", "mysql"}, {"DB_PORT", bad}});
        CHECK(p.variable == "DB_PORT");
        CHECK(contains(p.message, "1 to 65535"));
    }
    CHECK(load_ok({{"DB_PORT", "1"}}).db.port == 1);
    CHECK(load_ok({{"DB_PORT", "65535"}}).db.port == 65535);
}

TEST_CASE("DB_SYNCHRONOUS takes the four SQLite levels in any case, stored upper-case", "[unit]") {
    CHECK(load_ok({{"DB_SYNCHRONOUS", "normal"}}).db.sqlite_synchronous == "NORMAL");
    CHECK(load_ok({{"DB_SYNCHRONOUS", "Off"}}).db.sqlite_synchronous == "OFF");
    CHECK(load_ok({{"DB_SYNCHRONOUS", "EXTRA"}}).db.sqlite_synchronous == "EXTRA");
    problem p = only_problem({{"DB_SYNCHRONOUS", "sometimes"}});
    CHECK(p.variable == "DB_SYNCHRONOUS");
    CHECK(contains(p.message, "OFF, NORMAL, FULL or EXTRA"));
}

TEST_CASE("DB_BUSY_TIMEOUT is seconds, fraction allowed, kept in milliseconds", "[unit]") {
    struct row {
        const char* text;
        int ms;
    };
    for (const row& r :
         {row{"0", 0}, row{"10", 10000}, row{"2.5", 2500}, row{".25", 250}, row{"1.", 1000},
          row{"0.0004", 0}, row{"0.0005", 1}, row{"3600", 3600000}, row{"007", 7000}}) {
        INFO(r.text);
        CHECK(load_ok({{"DB_BUSY_TIMEOUT", r.text}}).db.busy_timeout_ms == r.ms);
    }
    for (const char* bad : {"-1", "5s", "abc", "1e3", "inf", "nan", "3601", ".", "1.2.3", "0x10",
                            "99999999999999999"}) {
        INFO(bad);
        problem p = only_problem({{"DB_BUSY_TIMEOUT", bad}});
        CHECK(p.variable == "DB_BUSY_TIMEOUT");
        CHECK(contains(p.message, "0 to 3600"));
    }
}

TEST_CASE("QUEUE_CONNECTION accepts only database, and says why", "[unit]") {
    CHECK(load_ok({{"QUEUE_CONNECTION", "database"}}).queue_connection == "database");
    CHECK(load_ok({{"QUEUE_CONNECTION", "Database"}}).queue_connection == "database");
    for (const char* bad : {"sync", "redis", "sqs"}) {
        INFO(bad);
        problem p = only_problem({{"QUEUE_CONNECTION", bad}});
        CHECK(p.variable == "QUEUE_CONNECTION");
        CHECK(contains(p.message, bad));
        CHECK(contains(p.message, "QUEUE_CONNECTION=database"));
    }
}

TEST_CASE("CENTRAL_DMS_URL is normalised for the client to append /api/ingest", "[unit]") {
    struct row {
        const char* text;
        const char* expected;
    };
    for (const row& r :
         {row{"https://central.example.org/", "https://central.example.org"},
          row{"https://central.example.org", "https://central.example.org"},
          row{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
          row{"https://x.org/dms/", "https://x.org/dms"}, row{"https://x.org//", "https://x.org"},
          row{"HTTPS://X.org", "https://X.org"},
          row{"https://[::1]:8443/", "https://[::1]:8443"}}) {
        INFO(r.text);
        settings s = load_ok(with(hybrid_vars, {{"CENTRAL_DMS_URL", r.text}}));
        REQUIRE(s.central_url.has_value());
        CHECK(*s.central_url == r.expected);
        CHECK(s.mode == deployment_mode::hybrid);
    }
}

TEST_CASE("an invalid CENTRAL_DMS_URL is a problem that says what is wrong", "[unit]") {
    struct row {
        const char* text;
        const char* fragment;
    };
    for (const row& r :
         {row{"ftp://x.org", "http:// or https://"},
          row{"central.example.org", "http:// or https://"}, row{"https://", "no host"},
          row{"https:///api", "no host"}, row{"https://:8443", "no host"},
          row{"https://x.org/?a=1", "query"}, row{"https://x.org/#top", "fragment"},
          row{"https://user:pw@x.org", "CENTRAL_DMS_TOKEN"}, row{"https://x.org:0", "port"},
          row{"https://x.org:http", "port"}, row{"https://x.org:", "port"},
          row{"https://[::1", "'['"}, row{"https://exa mple.org", "whitespace"}}) {
        INFO(r.text);
        problem p = only_problem(with(hybrid_vars, {{"CENTRAL_DMS_URL", r.text}}));
        CHECK(p.variable == "CENTRAL_DMS_URL");
        CHECK(contains(p.message, r.fragment));
    }
}

TEST_CASE("an invalid URL is kept as written so the mode still reflects it", "[unit]") {
    std::vector<problem> problems;
    settings s = load(with(hybrid_vars, {{"CENTRAL_DMS_URL", "ftp://x.org"}}), problems);
    REQUIRE(s.central_url.has_value());
    CHECK(*s.central_url == "ftp://x.org");
    CHECK(s.mode == deployment_mode::hybrid);
}

TEST_CASE("CENTRAL_DMS_URL set to null or empty counts as unset", "[unit]") {
    for (const char* unset : {"", "null", "(null)"}) {
        INFO(unset);
        settings s = load_ok({{"CENTRAL_DMS_URL", unset}});
        CHECK_FALSE(s.central_url.has_value());
        CHECK(s.mode == deployment_mode::offline);
    }
}

TEST_CASE("a token with whitespace cannot be a Bearer token", "[unit]") {
    problem p = only_problem(with(hybrid_vars, {{"CENTRAL_DMS_TOKEN", "two words"}}));
    CHECK(p.variable == "CENTRAL_DMS_TOKEN");
    CHECK(contains(p.message, "whitespace"));
    CHECK_FALSE(contains(p.message, "two words"));
}

TEST_CASE("resolve_mode follows the seed's table for every valid row", "[unit]") {
    struct row {
        dialect driver;
        bool url;
        bool token;
        deployment_mode mode;
    };
    const row rows[] = {
        {dialect::sqlite, false, false, deployment_mode::offline},
        {dialect::sqlite, false, true, deployment_mode::offline},
        {dialect::sqlite, true, true, deployment_mode::hybrid},
        {dialect::pgsql, false, false, deployment_mode::production},
        {dialect::pgsql, false, true, deployment_mode::production},
        {dialect::mysql, false, false, deployment_mode::production},
        {dialect::mysql, false, true, deployment_mode::production},
    };
    for (const row& r : rows) {
        INFO(static_cast<int>(r.driver) << " url=" << r.url << " token=" << r.token);
        auto mode = opendms::config::resolve_mode(r.driver, r.url, r.token);
        REQUIRE(mode.is_ok());
        CHECK(*mode == r.mode);
    }
}

TEST_CASE("resolve_mode rejects each contradiction, naming the variable to change", "[unit]") {
    struct row {
        dialect driver;
        bool url;
        bool token;
        const char* variable;
        const char* fix;
    };
    const row rows[] = {
        {dialect::sqlite, true, false, "CENTRAL_DMS_TOKEN:", "unset CENTRAL_DMS_URL"},
        {dialect::pgsql, true, true, "CENTRAL_DMS_URL:", "DB_CONNECTION=sqlite"},
        {dialect::pgsql, true, false, "CENTRAL_DMS_URL:", "DB_CONNECTION=sqlite"},
        {dialect::mysql, true, true, "CENTRAL_DMS_URL:", "DB_CONNECTION=sqlite"},
        {dialect::mysql, true, false, "CENTRAL_DMS_URL:", "DB_CONNECTION=sqlite"},
    };
    for (const row& r : rows) {
        INFO(static_cast<int>(r.driver) << " url=" << r.url << " token=" << r.token);
        auto mode = opendms::config::resolve_mode(r.driver, r.url, r.token);
        REQUIRE_FALSE(mode.is_ok());
        CHECK(mode.error().code() == errc::invalid_argument);
        CHECK(mode.error().message().rfind(r.variable, 0) == 0);
        CHECK(contains(mode.error().message(), r.fix));
    }
}

TEST_CASE("load_settings resolves the three modes from the variables", "[unit]") {
    CHECK(load_ok({}).mode == deployment_mode::offline);
    CHECK(load_ok({{"CENTRAL_DMS_TOKEN", "t"}}).mode == deployment_mode::offline);
    CHECK(load_ok(hybrid_vars).mode == deployment_mode::hybrid);
    CHECK(load_ok({{"DB_CONNECTION", "pgsql"}}).mode == deployment_mode::production);
    // A central server checks incoming Bearer tokens against CENTRAL_DMS_TOKEN.
    settings central = load_ok({{"DB_CONNECTION", "mysql"}, {"CENTRAL_DMS_TOKEN", "t"}});
    CHECK(central.mode == deployment_mode::production);
    CHECK(central.central_token == std::optional<std::string>("t"));
}

TEST_CASE("a URL without a token is a CENTRAL_DMS_TOKEN problem with its fix", "[unit]") {
    problem p = only_problem({{"CENTRAL_DMS_URL", "https://central.example.org"}});
    CHECK(p.variable == "CENTRAL_DMS_TOKEN");
    CHECK(contains(p.message, "CENTRAL_DMS_URL is set"));
    CHECK(contains(p.message, "set CENTRAL_DMS_TOKEN"));
}

TEST_CASE("a URL on a server database is a CENTRAL_DMS_URL problem with its fix", "[unit]") {
    for (const char* driver : {"pgsql", "mysql"}) {
        INFO(driver);
        problem p = only_problem(with(hybrid_vars, {{"DB_CONNECTION", driver}}));
        CHECK(p.variable == "CENTRAL_DMS_URL");
        CHECK(contains(p.message, "central one"));
        CHECK(contains(p.message, "unset CENTRAL_DMS_URL"));
        CHECK(contains(p.message, "DB_CONNECTION=sqlite"));
    }
}

TEST_CASE("load_settings collects every problem instead of stopping at the first", "[unit]") {
    std::vector<problem> problems;
    (void)load({{"DB_PORT", "x"},
                {"DB_SYNCHRONOUS", "fast"},
                {"DB_BUSY_TIMEOUT", "-2"},
                {"QUEUE_CONNECTION", "redis"},
                {"CENTRAL_DMS_URL", "https://central.example.org?x"}},
               problems);
    std::vector<std::string> variables;
    for (const problem& p : problems) variables.push_back(p.variable);
    CHECK(variables == std::vector<std::string>{"DB_PORT", "DB_SYNCHRONOUS", "DB_BUSY_TIMEOUT",
                                                "QUEUE_CONNECTION", "CENTRAL_DMS_URL",
                                                "CENTRAL_DMS_TOKEN"});
    for (const problem& p : problems) CHECK_FALSE(p.message.empty());
}

TEST_CASE("mask_secret hides the text and shows only its length", "[unit]") {
    CHECK(opendms::config::mask_secret("") == "(empty)");
    std::string masked = opendms::config::mask_secret("hunter2");
    CHECK(masked.rfind("****", 0) == 0);
    CHECK(contains(masked, "7"));
    CHECK_FALSE(contains(masked, "hunter2"));
}

TEST_CASE("describe lists every setting once with its origin and masks secrets", "[unit]") {
    auto entries = opendms::config::parse_dotenv("DB_PASSWORD=s3cr3t-pass\nDB_PORT=5433\n");
    REQUIRE(entries.is_ok());
    env_map env =
        env_map::from(*entries, {{"DB_CONNECTION", "pgsql"}, {"CENTRAL_DMS_TOKEN", "tok-XYZ-123"}});
    std::vector<problem> problems;
    settings s = opendms::config::load_settings(env, problems);
    REQUIRE(problems.empty());
    std::vector<std::string> lines = opendms::config::describe(s, env);

    std::string all;
    for (const std::string& l : lines) all += l + "\n";
    INFO(all);
    CHECK_FALSE(contains(all, "s3cr3t-pass"));
    CHECK_FALSE(contains(all, "tok-XYZ-123"));
    for (const char* name : {"DB_CONNECTION", "DB_DATABASE", "DB_HOST", "DB_PORT", "DB_USERNAME",
                             "DB_PASSWORD", "DB_SOCKET", "DB_SYNCHRONOUS", "DB_BUSY_TIMEOUT",
                             "QUEUE_CONNECTION", "CENTRAL_DMS_URL", "CENTRAL_DMS_TOKEN"}) {
        int count = 0;
        for (const std::string& l : lines) count += l.rfind(std::string(name) + "=", 0) == 0;
        CHECK(count == 1);
    }
    CHECK(contains(all, "DB_CONNECTION=pgsql (process environment)"));
    CHECK(contains(all, "DB_PORT=5433 (line 2)"));
    CHECK(contains(all, "DB_PASSWORD=**** (11 chars) (line 1)"));
    CHECK(contains(all, "CENTRAL_DMS_TOKEN=****"));
    CHECK(contains(all, "DB_HOST=127.0.0.1 (default)"));
    CHECK(contains(all, "DB_BUSY_TIMEOUT=5 (default)"));
    CHECK(contains(all, "CENTRAL_DMS_URL=(unset) (default)"));
    CHECK(contains(all, "mode=production"));
}

TEST_CASE("describe shows a fractional busy timeout and the hybrid URL", "[unit]") {
    env_map env = env_map::from({}, with(hybrid_vars, {{"DB_BUSY_TIMEOUT", "0.25"}}));
    std::vector<problem> problems;
    settings s = opendms::config::load_settings(env, problems);
    REQUIRE(problems.empty());
    std::string all;
    for (const std::string& l : opendms::config::describe(s, env)) all += l + "\n";
    CHECK(contains(all, "DB_BUSY_TIMEOUT=0.25 (process environment)"));
    CHECK(contains(all, "CENTRAL_DMS_URL=https://central.example.org (process environment)"));
    CHECK(contains(all, "DB_PASSWORD=(empty)"));
    CHECK(contains(all, "mode=hybrid"));
}

TEST_CASE("mode_name spells the three modes", "[unit]") {
    CHECK(std::string(mode_name(deployment_mode::production)) == "production");
    CHECK(std::string(mode_name(deployment_mode::offline)) == "offline");
    CHECK(std::string(mode_name(deployment_mode::hybrid)) == "hybrid");
}

TEST_CASE("setting_reader reads booleans in Laravel's and the shell's spellings", "[unit]") {
    env_vars vars;
    const char* trues[] = {"true", "TRUE", "(true)", "1", "yes", "On"};
    const char* falses[] = {"false", "(FALSE)", "0", "no", "off"};
    for (const char* t : trues) vars[std::string("T_") + t] = t;
    for (const char* f : falses) vars[std::string("F_") + f] = f;
    vars["BAD"] = "maybe";
    env_map env = env_map::from({}, vars);
    std::vector<problem> problems;
    setting_reader r(env, problems);
    for (const char* t : trues) CHECK(r.boolean(std::string("T_") + t, false));
    for (const char* f : falses) CHECK_FALSE(r.boolean(std::string("F_") + f, true));
    CHECK(r.boolean("UNSET", true));
    CHECK(problems.empty());
    CHECK(r.boolean("BAD", true));  // the fallback
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].variable == "BAD");
    CHECK(contains(problems[0].message, "true or false"));
}

TEST_CASE("setting_reader reads comma lists, trimming and dropping empty items", "[unit]") {
    env_map env = env_map::from({}, {{"TOPICS", " hub/event, ,iot-2/#,, owl "}, {"EMPTY", ""}});
    std::vector<problem> problems;
    setting_reader r(env, problems);
    CHECK(r.list("TOPICS", {}) == std::vector<std::string>{"hub/event", "iot-2/#", "owl"});
    CHECK(r.list("EMPTY", {"d"}) == std::vector<std::string>{"d"});
    CHECK(r.list("UNSET", {"a", "b"}) == std::vector<std::string>{"a", "b"});
    CHECK(problems.empty());
}

TEST_CASE("setting_reader helpers return the fallback and name the variable on bad input",
          "[unit]") {
    env_map env = env_map::from({}, {{"N", "12"},
                                     {"N_BAD", "twelve"},
                                     {"D", "1.5"},
                                     {"D_BAD", "1h"},
                                     {"C", "b"},
                                     {"C_BAD", "z"}});
    std::vector<problem> problems;
    setting_reader r(env, problems);
    CHECK(r.integer("N", 7, 1, 100) == 12);
    CHECK(r.integer("N", 7, 20, 100) == 7);
    CHECK(r.integer("N_BAD", 7, 1, 100) == 7);
    CHECK(r.integer("UNSET", 0, 1, 100) == 0);  // a fallback is not range-checked
    CHECK(r.duration_ms("D", 100, 10000) == 1500);
    CHECK(r.duration_ms("D_BAD", 100, 10000) == 100);
    CHECK(r.choice("C", "a", {"a", "b"}, "mode") == "b");
    CHECK(r.choice("C_BAD", "a", {"a", "b"}, "mode") == "a");
    r.fail("CUSTOM", "custom message");
    std::vector<std::string> variables;
    for (const problem& p : problems) variables.push_back(p.variable);
    CHECK(variables == std::vector<std::string>{"N", "N_BAD", "D_BAD", "C_BAD", "CUSTOM"});
    CHECK(contains(problems[0].message, "20 to 100"));
    CHECK(contains(problems[3].message, "unknown mode 'z'; use a or b"));
}

TEST_CASE("CENTRAL_DMS_TOKEN_FILE gives the token from a file and counts as the token",
          "[unit]") {
    opendms::test::temp_dir dir;
    const std::string path = dir.file("token");
    opendms::test::write_text_file(path, "  s3cret-token_42\n");
    settings s = load_ok({{"CENTRAL_DMS_URL", "https://central.example.org"},
                          {"CENTRAL_DMS_TOKEN_FILE", path}});
    CHECK(s.mode == deployment_mode::hybrid);
    CHECK(s.central_token == std::optional<std::string>("s3cret-token_42"));
    CHECK(s.central_token_file == std::optional<std::string>(path));
    std::vector<std::string> lines = describe(s, env_map::from({}, {{"CENTRAL_DMS_TOKEN_FILE", path}}));
    std::string all;
    for (const std::string& l : lines) all += l + "\n";
    CHECK(contains(all, "CENTRAL_DMS_TOKEN_FILE=" + path));
    CHECK_FALSE(contains(all, "s3cret"));
}

TEST_CASE("a token file that is missing, empty, two words, or beside a token is one problem",
          "[unit]") {
    opendms::test::temp_dir dir;
    const std::string empty = dir.file("empty");
    const std::string two = dir.file("two");
    opendms::test::write_text_file(empty, "\n \n");
    opendms::test::write_text_file(two, "one two\n");
    struct row {
        env_vars vars;
        std::string says;
    };
    const std::string url = "https://central.example.org";
    for (const row& r : {row{{{"CENTRAL_DMS_TOKEN_FILE", dir.file("absent")}}, "cannot read"},
                         row{{{"CENTRAL_DMS_TOKEN_FILE", empty}}, "is empty"},
                         row{{{"CENTRAL_DMS_TOKEN_FILE", two}}, "more than one word"},
                         row{{{"CENTRAL_DMS_TOKEN_FILE", two}, {"CENTRAL_DMS_TOKEN", "t"}},
                             "keep only one"}}) {
        problem p = only_problem(with(r.vars, {{"CENTRAL_DMS_URL", url}}));
        INFO(format_problem(p));
        CHECK(p.variable == "CENTRAL_DMS_TOKEN_FILE");
        CHECK(contains(p.message, r.says));
    }
}
