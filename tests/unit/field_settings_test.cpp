// The field node's settings: defaults, every validation error (naming its variable and the
// fix), the derived ingest options and describe() with the password masked.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "opendms/field/field_settings.hpp"
#include "test_servers.hpp"

using opendms::config::deployment_mode;
using opendms::config::env_map;
using opendms::config::problem;
using opendms::field::field_settings;
using opendms::log::level;
using env_vars = std::map<std::string, std::string>;

namespace {

field_settings load(const env_vars& vars, std::vector<problem>& problems) {
    env_map env = env_map::from({}, vars);
    std::vector<problem> common_problems;
    opendms::config::settings common = opendms::config::load_settings(env, common_problems);
    REQUIRE(common_problems.empty());
    return opendms::field::load_field_settings(env, common, problems);
}

field_settings load_ok(const env_vars& vars) {
    std::vector<problem> problems;
    field_settings s = load(vars, problems);
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

std::string host_name() {
    char name[HOST_NAME_MAX + 1] = {};
    REQUIRE(::gethostname(name, sizeof name - 1) == 0);
    return name;
}

}  // namespace

TEST_CASE("with nothing set, the field settings are the documented defaults", "[unit]") {
    field_settings s = load_ok({});
    CHECK(s.mqtt.host == "127.0.0.1");
    CHECK(s.mqtt.port == 1883);
    CHECK(s.mqtt.username.empty());
    CHECK(s.mqtt.password.empty());
    CHECK(s.mqtt.tls_ca_file.empty());
    CHECK(s.mqtt.topics == std::vector<std::string>{"hub/event"});
    CHECK(s.mqtt.keepalive_s == 30);
    CHECK(s.mqtt.reconnect_max_s == 30);
    CHECK(s.mqtt.connections == 1);
    CHECK(s.duplicate_window_s == 600);
    CHECK(s.max_message_bytes == 16 * 1024);
    CHECK(s.log_level == level::info);
}

TEST_CASE("the node id defaults to the host name and the client id follows it", "[unit]") {
    field_settings s = load_ok({});
    std::string expected;
    for (char c : host_name()) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        expected += ok ? c : '-';
    }
    if (expected.size() > 64) expected.resize(64);
    CHECK(s.node_id == expected);
    CHECK(s.mqtt.client_id == "opendms-field-" + expected);
}

TEST_CASE("a given node id and client id are taken as written", "[unit]") {
    field_settings s = load_ok({{"FIELD_NODE_ID", "kampung-1.b_2"}});
    CHECK(s.node_id == "kampung-1.b_2");
    CHECK(s.mqtt.client_id == "opendms-field-kampung-1.b_2");
    s = load_ok({{"FIELD_NODE_ID", "n1"}, {"MQTT_CLIENT_ID", "gateway-sink"}});
    CHECK(s.mqtt.client_id == "gateway-sink");
}

TEST_CASE("every MQTT setting is read", "[unit]") {
    opendms::test::temp_dir dir;
    std::string ca = dir.file("ca.pem");
    { std::ofstream(ca) << "-----BEGIN CERTIFICATE-----\n"; }
    field_settings s = load_ok({{"MQTT_HOST", "broker.local"},
                                {"MQTT_PORT", "8883"},
                                {"MQTT_USERNAME", "field"},
                                {"MQTT_PASSWORD", "s3cret"},
                                {"MQTT_TLS_CA_FILE", ca},
                                {"MQTT_TOPIC", "hub/event, iot-2/evt/+/fmt/json ,owl/#"},
                                {"MQTT_KEEPALIVE", "60"},
                                {"MQTT_RECONNECT_MAX", "120"},
                                {"MQTT_CONNECTIONS", "3"},
                                {"MESH_DUPLICATE_WINDOW", "0"},
                                {"MQTT_MAX_MESSAGE_BYTES", "4096"},
                                {"LOG_LEVEL", "Debug"}});
    CHECK(s.mqtt.host == "broker.local");
    CHECK(s.mqtt.port == 8883);
    CHECK(s.mqtt.username == "field");
    CHECK(s.mqtt.password == "s3cret");
    CHECK(s.mqtt.tls_ca_file == ca);
    CHECK(s.mqtt.topics == std::vector<std::string>{"hub/event", "iot-2/evt/+/fmt/json", "owl/#"});
    CHECK(s.mqtt.keepalive_s == 60);
    CHECK(s.mqtt.reconnect_max_s == 120);
    CHECK(s.mqtt.connections == 3);
    CHECK(s.duplicate_window_s == 0);
    CHECK(s.max_message_bytes == 4096);
    CHECK(s.log_level == level::debug);
}

TEST_CASE("the ingest options follow the mode and the field settings", "[unit]") {
    field_settings s = load_ok({{"FIELD_NODE_ID", "node-7"},
                                {"CENTRAL_DMS_URL", "https://central.example.org"},
                                {"CENTRAL_DMS_TOKEN", "tok"},
                                {"MESH_DUPLICATE_WINDOW", "120"},
                                {"MQTT_MAX_MESSAGE_BYTES", "2048"}});
    opendms::field::ingest_options o = s.ingest();
    CHECK(o.mode == deployment_mode::hybrid);
    CHECK(o.node_id == "node-7");
    CHECK(o.duplicate_window_s == 120);
    CHECK(o.limits.max_bytes == 2048);
    CHECK(load_ok({}).ingest().mode == deployment_mode::offline);
}

TEST_CASE("each invalid field setting is one problem naming its variable", "[unit]") {
    struct bad {
        env_vars vars;
        std::string variable;
        std::string hint;  // part of the fix
    };
    const std::vector<bad> cases{
        {{{"MQTT_PORT", "0"}}, "MQTT_PORT", "from 1 to 65535"},
        {{{"MQTT_PORT", "18a"}}, "MQTT_PORT", "not a whole number"},
        {{{"MQTT_HOST", "\"broker local\""}}, "MQTT_HOST", "whitespace"},
        {{{"MQTT_PASSWORD", "x"}}, "MQTT_USERNAME", "set MQTT_USERNAME"},
        {{{"MQTT_TOPIC", ","}}, "MQTT_TOPIC", "e.g. hub/event"},
        {{{"MQTT_TOPIC", "hub/#/event"}}, "MQTT_TOPIC", "not a valid topic filter"},
        {{{"MQTT_TOPIC", "hub/ev+nt"}}, "MQTT_TOPIC", "not a valid topic filter"},
        {{{"MQTT_TOPIC", "$share/g/hub/event"}}, "MQTT_TOPIC", "MQTT_CONNECTIONS"},
        {{{"MQTT_CLIENT_ID", std::string(201, 'c')}}, "MQTT_CLIENT_ID", "up to 200"},
        {{{"MQTT_KEEPALIVE", "2"}}, "MQTT_KEEPALIVE", "from 5 to 65535"},
        {{{"MQTT_RECONNECT_MAX", "0"}}, "MQTT_RECONNECT_MAX", "from 1 to 3600"},
        {{{"MQTT_CONNECTIONS", "17"}}, "MQTT_CONNECTIONS", "from 1 to 16"},
        {{{"FIELD_NODE_ID", "node/1"}}, "FIELD_NODE_ID", "A-Z, a-z, 0-9"},
        {{{"FIELD_NODE_ID", std::string(65, 'n')}}, "FIELD_NODE_ID", "1 to 64"},
        {{{"MESH_DUPLICATE_WINDOW", "-1"}}, "MESH_DUPLICATE_WINDOW", "from 0 to 86400"},
        {{{"MQTT_MAX_MESSAGE_BYTES", "2000000"}}, "MQTT_MAX_MESSAGE_BYTES", "to 1048576"},
        {{{"LOG_LEVEL", "verbose"}}, "LOG_LEVEL", "debug, info, notice, warning or error"},
    };
    for (const bad& c : cases) {
        INFO(c.variable << " with " << c.vars.begin()->second);
        problem p = only_problem(c.vars);
        CHECK(p.variable == c.variable);
        CHECK(contains(p.message, c.hint));
    }
}

TEST_CASE("a TLS CA file that does not exist is refused with the fix", "[unit]") {
    problem p = only_problem({{"MQTT_TLS_CA_FILE", "/nonexistent/ca.pem"}});
    CHECK(p.variable == "MQTT_TLS_CA_FILE");
    CHECK(contains(p.message, "/nonexistent/ca.pem"));
    CHECK(contains(p.message, "No such file"));
    CHECK(contains(p.message, "PEM file"));
}

TEST_CASE("a TLS CA file that is a directory is refused", "[unit]") {
    opendms::test::temp_dir dir;
    problem p = only_problem({{"MQTT_TLS_CA_FILE", dir.path()}});
    CHECK(p.variable == "MQTT_TLS_CA_FILE");
    CHECK(contains(p.message, "not a readable file"));
}

TEST_CASE("every problem is reported in one pass", "[unit]") {
    std::vector<problem> problems;
    (void)load({{"MQTT_PORT", "x"}, {"LOG_LEVEL", "loud"}, {"FIELD_NODE_ID", "a b"}}, problems);
    REQUIRE(problems.size() == 3);
    std::vector<std::string> names;
    for (const problem& p : problems) names.push_back(p.variable);
    CHECK(std::find(names.begin(), names.end(), "MQTT_PORT") != names.end());
    CHECK(std::find(names.begin(), names.end(), "LOG_LEVEL") != names.end());
    CHECK(std::find(names.begin(), names.end(), "FIELD_NODE_ID") != names.end());
}

TEST_CASE("describe lists every field setting with its origin and masks the password", "[unit]") {
    env_map env = env_map::from({{"MQTT_PASSWORD", "hunter22", false, 4}},
                                {{"MQTT_USERNAME", "field"}, {"FIELD_NODE_ID", "n1"}});
    std::vector<problem> problems;
    opendms::config::settings common = opendms::config::load_settings(env, problems);
    field_settings s = opendms::field::load_field_settings(env, common, problems);
    REQUIRE(problems.empty());
    std::vector<std::string> lines = opendms::field::describe(s, env);
    std::string all;
    for (const std::string& l : lines) all += l + "\n";
    for (const char* name :
         {"MQTT_HOST=", "MQTT_PORT=", "MQTT_USERNAME=", "MQTT_PASSWORD=", "MQTT_TLS_CA_FILE=",
          "MQTT_TOPIC=", "MQTT_CLIENT_ID=", "MQTT_KEEPALIVE=", "MQTT_RECONNECT_MAX=",
          "MQTT_CONNECTIONS=", "FIELD_NODE_ID=", "MESH_DUPLICATE_WINDOW=",
          "MQTT_MAX_MESSAGE_BYTES=", "LOG_LEVEL="}) {
        CHECK(contains(all, name));
    }
    CHECK_FALSE(contains(all, "hunter22"));
    CHECK(contains(all, "MQTT_PASSWORD=**** (8 chars)"));
    CHECK(contains(all, "MQTT_USERNAME=field (process environment)"));
    CHECK(contains(all, "FIELD_NODE_ID=n1 (process environment)"));
    CHECK(contains(all, "MQTT_PORT=1883 (default)"));
    CHECK(contains(all, "MQTT_CLIENT_ID=opendms-field-n1 (default)"));
}
