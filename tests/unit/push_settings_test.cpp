// The CENTRAL_DMS_* delivery settings: defaults, each variable, and the problems.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "central_process.hpp"
#include "opendms/field/field_settings.hpp"
#include "test_servers.hpp"

using namespace opendms;
using namespace opendms::field;
using std::chrono::milliseconds;
using env_vars = std::map<std::string, std::string>;

namespace {

const env_vars hybrid = {{"CENTRAL_DMS_URL", "https://central.example.org/dms/"},
                         {"CENTRAL_DMS_TOKEN", "tok-1"}};

env_vars with(env_vars base, const env_vars& more) {
    for (const auto& [k, v] : more) base[k] = v;
    return base;
}

field_settings load(const env_vars& vars, std::vector<config::problem>& problems) {
    auto env = config::env_map::from({}, vars);
    config::settings common = config::load_settings(env, problems);
    return load_field_settings(env, common, problems);
}

push_options load_ok(const env_vars& vars) {
    std::vector<config::problem> problems;
    field_settings s = load(vars, problems);
    for (const auto& p : problems) UNSCOPED_INFO(config::format_problem(p));
    REQUIRE(problems.empty());
    return s.push;
}

config::problem only_problem(const env_vars& vars) {
    std::vector<config::problem> problems;
    (void)load(vars, problems);
    for (const auto& p : problems) UNSCOPED_INFO(config::format_problem(p));
    REQUIRE(problems.size() == 1);
    return problems[0];
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("in hybrid mode delivery is on with the documented defaults", "[unit]") {
    push_options o = load_ok(hybrid);
    CHECK(o.enabled);
    CHECK(o.client.endpoint.tls);
    CHECK(o.client.endpoint.host == "central.example.org");
    CHECK(o.client.endpoint.port == 443);
    CHECK(o.client.endpoint.base_path == "/dms");
    CHECK(o.token == "tok-1");
    CHECK(o.client.connect_timeout == milliseconds(10'000));
    CHECK(o.client.request_timeout == milliseconds(30'000));
    CHECK(o.backoff == std::vector<milliseconds>{milliseconds(30'000), milliseconds(60'000),
                                                 milliseconds(120'000), milliseconds(300'000),
                                                 milliseconds(600'000)});
    CHECK(o.jitter == Approx(0.2));
    CHECK(o.batch_size == 500);
    CHECK(o.concurrency == 2);
    CHECK(o.max_rate == 0);
    CHECK(o.protocol == push_protocol::automatic);
    CHECK(o.live_window_s == 60);
    CHECK(o.poll_interval == milliseconds(2000));
    CHECK(o.gzip_level == 6);
    CHECK_FALSE(o.client.proxy);
    CHECK(o.client.ca_file.empty());
    CHECK_FALSE(o.insecure_http);
}

TEST_CASE("offline and production modes do not deliver", "[unit]") {
    CHECK_FALSE(load_ok({}).enabled);
    CHECK_FALSE(load_ok({{"DB_CONNECTION", "pgsql"}}).enabled);
}

TEST_CASE("every delivery setting is read", "[unit]") {
    opendms::test::temp_dir dir;
    const std::string ca = dir.file("ca.pem");
    opendms::test::write_text_file(ca, "-----BEGIN CERTIFICATE-----\n");
    push_options o = load_ok(with(hybrid, {{"CENTRAL_DMS_CA_FILE", ca},
                                           {"CENTRAL_DMS_CONNECT_TIMEOUT", "2.5"},
                                           {"CENTRAL_DMS_TIMEOUT", "90"},
                                           {"CENTRAL_DMS_BACKOFF", "1, 2,0.5"},
                                           {"CENTRAL_DMS_JITTER", "0"},
                                           {"CENTRAL_DMS_BATCH_SIZE", "1000"},
                                           {"CENTRAL_DMS_CONCURRENCY", "4"},
                                           {"CENTRAL_DMS_MAX_RATE", "250.5"},
                                           {"CENTRAL_DMS_PROTOCOL", "Single"},
                                           {"CENTRAL_DMS_LIVE_WINDOW", "0"},
                                           {"CENTRAL_DMS_POLL_INTERVAL", "0.25"},
                                           {"CENTRAL_DMS_GZIP_LEVEL", "0"}}));
    CHECK(o.client.ca_file == ca);
    CHECK(o.client.connect_timeout == milliseconds(2500));
    CHECK(o.client.request_timeout == milliseconds(90'000));
    CHECK(o.backoff == std::vector<milliseconds>{milliseconds(1000), milliseconds(2000), milliseconds(500)});
    CHECK(o.jitter == 0);
    CHECK(o.batch_size == 1000);
    CHECK(o.concurrency == 4);
    CHECK(o.max_rate == Approx(250.5));
    CHECK(o.protocol == push_protocol::single);
    CHECK(o.live_window_s == 0);
    CHECK(o.poll_interval == milliseconds(250));
    CHECK(o.gzip_level == 0);
}

TEST_CASE("each bad delivery setting is one problem naming its variable", "[unit]") {
    struct row {
        const char* variable;
        const char* value;
        const char* says;
    };
    for (const row& r : {row{"CENTRAL_DMS_BACKOFF", "30,soon", "'soon'"},
                         row{"CENTRAL_DMS_BACKOFF", "0,30", "more than 0"},
                         row{"CENTRAL_DMS_BACKOFF", ",", "lists no duration"},
                         row{"CENTRAL_DMS_JITTER", "1.5", "from 0 to 1"},
                         row{"CENTRAL_DMS_JITTER", "-0.1", "not a number"},
                         row{"CENTRAL_DMS_BATCH_SIZE", "0", "from 1 to 10000"},
                         row{"CENTRAL_DMS_CONCURRENCY", "9", "from 1 to 8"},
                         row{"CENTRAL_DMS_MAX_RATE", "fast", "not a number"},
                         row{"CENTRAL_DMS_PROTOCOL", "grpc", "grpc"},
                         row{"CENTRAL_DMS_TIMEOUT", "1h", "not a number of seconds"},
                         row{"CENTRAL_DMS_GZIP_LEVEL", "10", "from 0 to 9"},
                         row{"CENTRAL_DMS_CA_FILE", "/nonexistent/ca.pem", "cannot read"},
                         row{"CENTRAL_DMS_ALLOW_HTTP", "maybe", "maybe"}}) {
        INFO(r.variable << "=" << r.value);
        config::problem p = only_problem(with(hybrid, {{r.variable, r.value}}));
        CHECK(p.variable == r.variable);
        CHECK(contains(p.message, r.says));
    }
}

TEST_CASE("plain http is refused for a remote central unless CENTRAL_DMS_ALLOW_HTTP", "[unit]") {
    const env_vars remote = with(hybrid, {{"CENTRAL_DMS_URL", "http://central.example.org"}});
    config::problem p = only_problem(remote);
    CHECK(p.variable == "CENTRAL_DMS_URL");
    CHECK(contains(p.message, "unencrypted"));
    CHECK(contains(p.message, "CENTRAL_DMS_ALLOW_HTTP=true"));
    push_options allowed = load_ok(with(remote, {{"CENTRAL_DMS_ALLOW_HTTP", "true"}}));
    CHECK(allowed.insecure_http);
    CHECK(allowed.client.endpoint.port == 80);
    for (const char* loopback : {"http://127.0.0.1:8080", "http://localhost:8080",
                                 "http://[::1]:8080", "http://127.8.9.10"}) {
        INFO(loopback);
        push_options o = load_ok(with(hybrid, {{"CENTRAL_DMS_URL", loopback}}));
        CHECK_FALSE(o.insecure_http);
        CHECK_FALSE(o.client.endpoint.tls);
    }
}

TEST_CASE("HTTPS_PROXY is used unless NO_PROXY names the central", "[unit]") {
    push_options o = load_ok(with(hybrid, {{"HTTPS_PROXY", "http://user:pw@proxy.lan:3128/"}}));
    REQUIRE(o.client.proxy);
    CHECK(o.client.proxy->host == "proxy.lan");
    CHECK(o.client.proxy->port == 3128);
    CHECK(o.client.proxy->authorization == "Basic dXNlcjpwdw==");
    CHECK(o.client.proxy->url() == "http://proxy.lan:3128");

    push_options lower = load_ok(with(hybrid, {{"https_proxy", "proxy.lan"}}));
    REQUIRE(lower.client.proxy);
    CHECK(lower.client.proxy->port == 1080);
    CHECK(lower.client.proxy->authorization.empty());

    for (const char* no : {"example.org", ".example.org", "central.example.org", "*",
                           "foo, central.example.org"}) {
        INFO("NO_PROXY=" << no);
        CHECK_FALSE(load_ok(with(hybrid, {{"HTTPS_PROXY", "http://proxy.lan:3128"}, {"NO_PROXY", no}}))
                        .client.proxy);
    }
    CHECK(load_ok(with(hybrid, {{"HTTPS_PROXY", "http://proxy.lan:3128"}, {"NO_PROXY", "ample.org"}}))
              .client.proxy);
    CHECK_FALSE(load_ok(with(hybrid, {{"CENTRAL_DMS_URL", "https://127.0.0.1:8443"},
                                      {"HTTPS_PROXY", "http://proxy.lan:3128"},
                                      {"no_proxy", "localhost,127.0.0.1"}}))
                    .client.proxy);
    config::problem p = only_problem(with(hybrid, {{"HTTPS_PROXY", "socks5://proxy.lan:1080"}}));
    CHECK(p.variable == "HTTPS_PROXY");
    CHECK(contains(p.message, "not supported"));
}

TEST_CASE("check-config lists the delivery settings", "[unit]") {
    std::vector<config::problem> problems;
    auto env = config::env_map::from({}, hybrid);
    config::settings common = config::load_settings(env, problems);
    field_settings s = load_field_settings(env, common, problems);
    std::string all;
    for (const std::string& line : describe(s, env)) all += line + "\n";
    for (const char* name : {"CENTRAL_DMS_BACKOFF=30,60,120,300,600 (default)",
                             "CENTRAL_DMS_BATCH_SIZE=500", "CENTRAL_DMS_PROTOCOL=auto",
                             "CENTRAL_DMS_LIVE_WINDOW=60", "HTTPS_PROXY=(none)"}) {
        INFO(name);
        CHECK(contains(all, name));
    }
}
