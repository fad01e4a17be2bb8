// The central server's settings: defaults, every value read, each validation error
// (naming its variable and the fix), the TLS pair, the tokens file, CENTRAL_DMS_URL refused,
// and describe() with the token masked.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "opendms/central/central_settings.hpp"
#include "opendms/central/token_store.hpp"
#include "test_servers.hpp"

using opendms::central::central_settings;
using opendms::config::env_map;
using opendms::config::problem;
using opendms::log::level;
using env_vars = std::map<std::string, std::string>;
using std::chrono::milliseconds;

namespace {

central_settings load(const env_vars& vars, std::vector<problem>& problems) {
    env_map env = env_map::from({}, vars);
    opendms::config::settings common = opendms::config::load_settings(env, problems);
    return opendms::central::load_central_settings(env, common, problems);
}

central_settings load_ok(const env_vars& vars) {
    std::vector<problem> problems;
    central_settings s = load(vars, problems);
    for (const problem& p : problems) UNSCOPED_INFO(opendms::config::format_problem(p));
    REQUIRE(problems.empty());
    return s;
}

problem only_problem(const env_vars& vars) {
    std::vector<problem> problems;
    (void)load(vars, problems);
    for (const problem& p : problems) UNSCOPED_INFO(opendms::config::format_problem(p));
    REQUIRE(problems.size() == 1);
    return problems[0];
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("with nothing set, the central settings are the documented defaults", "[unit]") {
    central_settings s = load_ok({});
    CHECK(s.listen_host == "127.0.0.1");
    CHECK(s.listen_port == 8080);
    CHECK(s.threads == 0);
    CHECK(s.db_pool_size == 8);
    CHECK_FALSE(s.tls_cert_file);
    CHECK_FALSE(s.tls_key_file);
    CHECK_FALSE(s.tokens_file);
    CHECK(s.limits.max_body_bytes == 8 * 1024 * 1024);
    CHECK(s.limits.max_header_bytes == 8 * 1024);
    CHECK(s.limits.max_connections == 1024);
    CHECK(s.limits.request_timeout == milliseconds(30'000));
    CHECK(s.limits.idle_timeout == milliseconds(60'000));
    CHECK(s.limits.shutdown_timeout == milliseconds(30'000));
    CHECK(s.max_batch_records == 1000);
    CHECK(s.retry_after_s == 5);
    CHECK(s.access_log);
    CHECK(s.duplicate_window_s == 600);
    CHECK(s.log_level == level::info);
}

TEST_CASE("zero threads means one per core, and at least one", "[unit]") {
    central_settings s = load_ok({});
    unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    CHECK(s.effective_threads() == cores);
    CHECK(load_ok({{"CENTRAL_THREADS", "3"}}).effective_threads() == 3);
}

TEST_CASE("every central setting is read", "[unit]") {
    opendms::test::temp_dir dir;
    std::string cert = dir.file("cert.pem");
    std::string key = dir.file("key.pem");
    std::string tokens = dir.file("tokens");
    std::ofstream(cert) << "-----BEGIN CERTIFICATE-----\n";
    std::ofstream(key) << "-----BEGIN PRIVATE KEY-----\n";
    std::ofstream(tokens) << "n1 " << opendms::central::token_hash("t1") << "\n";
    central_settings s = load_ok({{"CENTRAL_LISTEN", "0.0.0.0:9443"},
                                  {"CENTRAL_THREADS", "2"},
                                  {"CENTRAL_DB_POOL_SIZE", "16"},
                                  {"CENTRAL_TLS_CERT", cert},
                                  {"CENTRAL_TLS_KEY", key},
                                  {"CENTRAL_DMS_TOKENS_FILE", tokens},
                                  {"CENTRAL_MAX_BODY_BYTES", "65536"},
                                  {"CENTRAL_MAX_BATCH_RECORDS", "500"},
                                  {"CENTRAL_MAX_HEADER_BYTES", "4096"},
                                  {"CENTRAL_MAX_CONNECTIONS", "256"},
                                  {"CENTRAL_REQUEST_TIMEOUT", "2.5"},
                                  {"CENTRAL_IDLE_TIMEOUT", "10"},
                                  {"CENTRAL_RETRY_AFTER", "30"},
                                  {"CENTRAL_SHUTDOWN_TIMEOUT", "0"},
                                  {"CENTRAL_ACCESS_LOG", "off"},
                                  {"MESH_DUPLICATE_WINDOW", "0"},
                                  {"LOG_LEVEL", "Notice"}});
    CHECK(s.listen_host == "0.0.0.0");
    CHECK(s.listen_port == 9443);
    CHECK(s.threads == 2);
    CHECK(s.db_pool_size == 16);
    CHECK(s.tls_cert_file == cert);
    CHECK(s.tls_key_file == key);
    CHECK(s.tokens_file == tokens);
    CHECK(s.limits.max_body_bytes == 65536);
    CHECK(s.max_batch_records == 500);
    CHECK(s.limits.max_header_bytes == 4096);
    CHECK(s.limits.max_connections == 256);
    CHECK(s.limits.request_timeout == milliseconds(2500));
    CHECK(s.limits.idle_timeout == milliseconds(10'000));
    CHECK(s.retry_after_s == 30);
    CHECK(s.limits.shutdown_timeout == milliseconds(0));
    CHECK_FALSE(s.access_log);
    CHECK(s.duplicate_window_s == 0);
    CHECK(s.log_level == level::notice);
}

TEST_CASE("CENTRAL_LISTEN takes IPv4, bracketed IPv6, localhost and port 0", "[unit]") {
    central_settings v6 = load_ok({{"CENTRAL_LISTEN", "[::1]:8443"}});
    CHECK(v6.listen_host == "::1");
    CHECK(v6.listen_port == 8443);
    central_settings any = load_ok({{"CENTRAL_LISTEN", "127.0.0.1:0"}});
    CHECK(any.listen_port == 0);
    central_settings local = load_ok({{"CENTRAL_LISTEN", "localhost:8081"}});
    CHECK(local.listen_host == "127.0.0.1");
    CHECK(local.listen_port == 8081);
}

TEST_CASE("each invalid central setting is one problem naming its variable", "[unit]") {
    struct bad {
        env_vars vars;
        std::string variable;
        std::string hint;  // part of the fix
    };
    const std::vector<bad> cases{
        {{{"CENTRAL_LISTEN", "8080"}}, "CENTRAL_LISTEN", "127.0.0.1:8080"},
        {{{"CENTRAL_LISTEN", "127.0.0.1:"}}, "CENTRAL_LISTEN", "IPv4:PORT"},
        {{{"CENTRAL_LISTEN", "127.0.0.1:65536"}}, "CENTRAL_LISTEN", "IPv4:PORT"},
        {{{"CENTRAL_LISTEN", "127.0.0.1:80a"}}, "CENTRAL_LISTEN", "IPv4:PORT"},
        {{{"CENTRAL_LISTEN", "::1:8080"}}, "CENTRAL_LISTEN", "[IPv6]:PORT"},
        {{{"CENTRAL_LISTEN", "[::1]8080"}}, "CENTRAL_LISTEN", "[IPv6]:PORT"},
        {{{"CENTRAL_LISTEN", "central.example.org:8080"}}, "CENTRAL_LISTEN", "0.0.0.0:8080"},
        {{{"CENTRAL_LISTEN", "300.1.1.1:8080"}}, "CENTRAL_LISTEN", "IPv4:PORT"},
        {{{"CENTRAL_THREADS", "-1"}}, "CENTRAL_THREADS", "from 0 to 256"},
        {{{"CENTRAL_DB_POOL_SIZE", "0"}}, "CENTRAL_DB_POOL_SIZE", "from 1 to 1024"},
        {{{"CENTRAL_MAX_BODY_BYTES", "100"}}, "CENTRAL_MAX_BODY_BYTES", "from 1024"},
        {{{"CENTRAL_MAX_BATCH_RECORDS", "0"}}, "CENTRAL_MAX_BATCH_RECORDS", "from 1"},
        {{{"CENTRAL_MAX_HEADER_BYTES", "10"}}, "CENTRAL_MAX_HEADER_BYTES", "from 1024"},
        {{{"CENTRAL_MAX_CONNECTIONS", "0"}}, "CENTRAL_MAX_CONNECTIONS", "from 1"},
        {{{"CENTRAL_REQUEST_TIMEOUT", "0"}}, "CENTRAL_REQUEST_TIMEOUT", "more than 0"},
        {{{"CENTRAL_REQUEST_TIMEOUT", "5s"}}, "CENTRAL_REQUEST_TIMEOUT", "plain number"},
        {{{"CENTRAL_IDLE_TIMEOUT", "0"}}, "CENTRAL_IDLE_TIMEOUT", "more than 0"},
        {{{"CENTRAL_SHUTDOWN_TIMEOUT", "99999"}}, "CENTRAL_SHUTDOWN_TIMEOUT", "too long"},
        {{{"CENTRAL_RETRY_AFTER", "0"}}, "CENTRAL_RETRY_AFTER", "from 1 to 3600"},
        {{{"CENTRAL_ACCESS_LOG", "sometimes"}}, "CENTRAL_ACCESS_LOG", "true"},
        {{{"MESH_DUPLICATE_WINDOW", "-1"}}, "MESH_DUPLICATE_WINDOW", "from 0 to 86400"},
        {{{"LOG_LEVEL", "verbose"}}, "LOG_LEVEL", "debug, info, notice, warning or error"},
    };
    for (const bad& c : cases) {
        INFO(c.variable << " with " << c.vars.begin()->second);
        problem p = only_problem(c.vars);
        CHECK(p.variable == c.variable);
        CHECK(contains(p.message, c.hint));
    }
}

TEST_CASE("a certificate without its key, or a key without its certificate, is refused", "[unit]") {
    opendms::test::temp_dir dir;
    std::string pem = dir.file("x.pem");
    std::ofstream(pem) << "pem\n";
    problem no_key = only_problem({{"CENTRAL_TLS_CERT", pem}});
    CHECK(no_key.variable == "CENTRAL_TLS_KEY");
    CHECK(contains(no_key.message, "both"));
    problem no_cert = only_problem({{"CENTRAL_TLS_KEY", pem}});
    CHECK(no_cert.variable == "CENTRAL_TLS_CERT");
}

TEST_CASE("TLS files that cannot be read are refused, each naming its variable", "[unit]") {
    opendms::test::temp_dir dir;
    std::string cert = dir.file("cert.pem");
    std::ofstream(cert) << "pem\n";
    problem missing =
        only_problem({{"CENTRAL_TLS_CERT", cert}, {"CENTRAL_TLS_KEY", "/nonexistent/key.pem"}});
    CHECK(missing.variable == "CENTRAL_TLS_KEY");
    CHECK(contains(missing.message, "/nonexistent/key.pem"));
    CHECK(contains(missing.message, "No such file"));
    problem directory = only_problem({{"CENTRAL_TLS_CERT", dir.path()}, {"CENTRAL_TLS_KEY", cert}});
    CHECK(directory.variable == "CENTRAL_TLS_CERT");
    CHECK(contains(directory.message, "not a regular file"));
}

TEST_CASE("a tokens file that is missing or malformed is refused with the line", "[unit]") {
    problem missing = only_problem({{"CENTRAL_DMS_TOKENS_FILE", "/nonexistent/tokens"}});
    CHECK(missing.variable == "CENTRAL_DMS_TOKENS_FILE");
    CHECK(contains(missing.message, "No such file"));
    CHECK(contains(missing.message, "token:new"));

    opendms::test::temp_dir dir;
    std::string path = dir.file("tokens");
    std::ofstream(path) << "# nodes\nn1 " << opendms::central::token_hash("a") << "\nn2 plain\n";
    problem bad = only_problem({{"CENTRAL_DMS_TOKENS_FILE", path}});
    CHECK(bad.variable == "CENTRAL_DMS_TOKENS_FILE");
    CHECK(contains(bad.message, path));
    CHECK(contains(bad.message, "line 3"));
}

TEST_CASE("CENTRAL_DMS_URL is refused on the central server, once", "[unit]") {
    // On SQLite the shared settings accept it (a hybrid field node): the central refuses.
    problem p = only_problem(
        {{"CENTRAL_DMS_URL", "https://other.example.org"}, {"CENTRAL_DMS_TOKEN", "tok"}});
    CHECK(p.variable == "CENTRAL_DMS_URL");
    CHECK(contains(p.message, "unset CENTRAL_DMS_URL"));
    // On a server database the shared settings already refuse it: not reported twice.
    std::vector<problem> problems;
    (void)load({{"DB_CONNECTION", "pgsql"},
                {"CENTRAL_DMS_URL", "https://other.example.org"},
                {"CENTRAL_DMS_TOKEN", "tok"}},
               problems);
    CHECK(std::count_if(problems.begin(), problems.end(),
                        [](const problem& q) { return q.variable == "CENTRAL_DMS_URL"; }) == 1);
}

TEST_CASE("every central problem is reported in one pass", "[unit]") {
    std::vector<problem> problems;
    (void)load({{"CENTRAL_LISTEN", "x"}, {"CENTRAL_DB_POOL_SIZE", "0"}, {"LOG_LEVEL", "loud"}},
               problems);
    REQUIRE(problems.size() == 3);
    CHECK(problems[0].variable == "CENTRAL_LISTEN");
    CHECK(problems[1].variable == "CENTRAL_DB_POOL_SIZE");
    CHECK(problems[2].variable == "LOG_LEVEL");
}

TEST_CASE("describe lists every central setting with its origin", "[unit]") {
    env_map env = env_map::from({{"CENTRAL_LISTEN", "[::1]:0", false, 3}},
                                {{"CENTRAL_DB_POOL_SIZE", "4"}, {"CENTRAL_DMS_TOKEN", "tok-123"}});
    std::vector<problem> problems;
    opendms::config::settings common = opendms::config::load_settings(env, problems);
    central_settings s = opendms::central::load_central_settings(env, common, problems);
    REQUIRE(problems.empty());
    std::string all;
    for (const std::string& l : opendms::central::describe(s, env)) all += l + "\n";
    for (const char* name :
         {"CENTRAL_LISTEN=", "CENTRAL_THREADS=", "CENTRAL_DB_POOL_SIZE=", "CENTRAL_TLS_CERT=",
          "CENTRAL_TLS_KEY=", "CENTRAL_DMS_TOKENS_FILE=", "CENTRAL_MAX_BODY_BYTES=",
          "CENTRAL_MAX_BATCH_RECORDS=", "CENTRAL_MAX_HEADER_BYTES=", "CENTRAL_MAX_CONNECTIONS=",
          "CENTRAL_REQUEST_TIMEOUT=", "CENTRAL_IDLE_TIMEOUT=", "CENTRAL_RETRY_AFTER=",
          "CENTRAL_SHUTDOWN_TIMEOUT=", "CENTRAL_ACCESS_LOG=", "MESH_DUPLICATE_WINDOW=",
          "LOG_LEVEL="}) {
        CHECK(contains(all, name));
    }
    CHECK(contains(all, "CENTRAL_LISTEN=[::1]:0 (line 3)"));
    CHECK(contains(all, "CENTRAL_DB_POOL_SIZE=4 (process environment)"));
    CHECK(contains(all, "CENTRAL_REQUEST_TIMEOUT=30 (default)"));
    CHECK(contains(all, "CENTRAL_TLS_CERT=(none: plain HTTP) (default)"));
    CHECK_FALSE(contains(all, "tok-123"));
}
