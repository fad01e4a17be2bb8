// The two programs as systemd runs them (deploy/systemd/*.service, Type=notify with
// WatchdogSec): the test plays the service manager with a NOTIFY_SOCKET of its own and
// WATCHDOG_USEC, and checks READY=1 once the program does its job, WATCHDOG=1 at least every
// half interval, STOPPING=1 on SIGTERM; and the field node's GET /metrics
// (FIELD_METRICS_LISTEN) against what really happened in a hybrid run.
#include <catch2/catch.hpp>

#include <csignal>
#include <map>
#include <regex>
#include <string>

#include "central_process.hpp"
#include "mqtt_test_client.hpp"
#include "notify_socket.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
namespace t = opendms::test;
namespace db = opendms::db;

const std::string token = "service-manager-test-token-0123456789abcdef";

db::connect_options sqlite_at(const std::string& path) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = path;
    return o;
}

/// The service manager's environment: our socket, a watchdog of `watchdog_ms`.
std::map<std::string, std::string> manager_env(const t::notify_socket& s, int watchdog_ms) {
    return {{"NOTIFY_SOCKET", s.path()}, {"WATCHDOG_USEC", std::to_string(watchdog_ms * 1000)}};
}

/// Waits for a datagram starting with `prefix`, skipping others; "" at the deadline.
std::string wait_for(t::notify_socket& s, const std::string& prefix, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
        std::string d = s.receive(100ms);
        if (d.rfind(prefix, 0) == 0) return d;
    }
    return "";
}

/// WATCHDOG=1 datagrams received during `span`.
int count_pings(t::notify_socket& s, std::chrono::milliseconds span) {
    int n = 0;
    const auto until = std::chrono::steady_clock::now() + span;
    while (std::chrono::steady_clock::now() < until) {
        if (s.receive(50ms) == "WATCHDOG=1") ++n;
    }
    return n;
}

/// The port in the first log line matching `pattern` (one capture group), 0 when none yet.
unsigned short port_in_log(const std::string& log, const std::string& pattern) {
    std::smatch m;
    if (!std::regex_search(log, m, std::regex(pattern))) return 0;
    return static_cast<unsigned short>(std::stoi(m[1].str()));
}

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos ||
           text.compare(0, line.size() + 1, line + "\n") == 0;
}

}  // namespace

TEST_CASE("under systemd the field daemon is READY once subscribed, pings the watchdog, and stops",
          "[integration]") {
    t::temp_dir dir;
    const std::string env_file = dir.file("field.env");
    auto env = t::daemon_env(sqlite_at(dir.file("field.sqlite")), t::require_mqtt_broker(),
                             t::unique_name("sd/test"), "field-sd");
    t::write_env_file(env_file, env);
    t::migrate_with_program(env_file);
    t::notify_socket manager(dir.file("notify"));
    t::child_process daemon({t::field_binary(), "--env-file", env_file, "run"},
                            manager_env(manager, 400), dir.file("field.log"));

    const std::string ready = wait_for(manager, "READY=1", 20s);
    INFO(t::read_text_file(dir.file("field.log")));
    REQUIRE(ready == "READY=1\nSTATUS=receiving on " + env["MQTT_TOPIC"]);
    // READY comes after the subscriber started: messages published now are taken.
    CHECK(t::read_text_file(dir.file("field.log")).find("running: mode offline") != std::string::npos);
    // WatchdogSec 0.4 s: a ping at least every 0.2 s, so about 7 in 1.5 s.
    CHECK(count_pings(manager, 1500ms) >= 4);
    CHECK(daemon.running());

    ::kill(daemon.pid(), SIGTERM);
    CHECK(wait_for(manager, "STOPPING=1", 10s) == "STOPPING=1");
    CHECK(daemon.wait_exit(30s) == std::optional<int>(0));
}

TEST_CASE("under systemd the central server is READY once listening, pings, and says STOPPING",
          "[integration]") {
    t::temp_dir dir;
    t::central_server setup(dir.path(), t::central_env(sqlite_at(dir.file("central.sqlite")), token));
    setup.migrate();
    t::notify_socket manager(dir.file("notify"));
    t::child_process server({t::central_binary(), "--env-file", setup.env_file(), "serve"},
                            manager_env(manager, 400), dir.file("sd.log"));

    const std::string ready = wait_for(manager, "READY=1", 20s);
    const std::string log = t::read_text_file(dir.file("sd.log"));
    INFO(log);
    REQUIRE(ready.rfind("READY=1\nSTATUS=listening on port ", 0) == 0);
    const unsigned short port = port_in_log(log, "listening on http://127\\.0\\.0\\.1:([0-9]+)");
    REQUIRE(port != 0);
    CHECK(ready == "READY=1\nSTATUS=listening on port " + std::to_string(port));
    CHECK(t::get_path(port, "/healthz").status() == 200);
    CHECK(count_pings(manager, 1500ms) >= 4);

    ::kill(server.pid(), SIGTERM);
    CHECK(wait_for(manager, "STOPPING=1", 10s).rfind("STOPPING=1", 0) == 0);
    CHECK(server.wait_exit(40s) == std::optional<int>(0));
}

TEST_CASE("without NOTIFY_SOCKET the programs run as before (no systemd needed)", "[integration]") {
    t::temp_dir dir;
    const std::string env_file = dir.file("field.env");
    t::write_env_file(env_file, t::daemon_env(sqlite_at(dir.file("field.sqlite")), t::require_mqtt_broker(),
                                              t::unique_name("sd/none"), "field-plain"));
    t::migrate_with_program(env_file);
    t::field_daemon daemon(env_file, dir.file("field.log"));
    daemon.start();
    daemon.wait_subscribed(1);
    CHECK(daemon.stop() == 0);
}

TEST_CASE("GET /metrics on the field node shows what a hybrid run did", "[integration]") {
    t::temp_dir dir;
    t::central_server central(dir.path(), t::central_env(sqlite_at(dir.file("central.sqlite")), token));
    central.migrate();
    central.start();

    const std::string env_file = dir.file("field.env");
    auto env = t::daemon_env(sqlite_at(dir.file("field.sqlite")), t::require_mqtt_broker(),
                             t::unique_name("metrics/test"), "field-m");
    env["CENTRAL_DMS_URL"] = "http://127.0.0.1:" + std::to_string(central.port());
    env["CENTRAL_DMS_TOKEN"] = token;
    env["CENTRAL_DMS_POLL_INTERVAL"] = "0.2";
    env["FIELD_METRICS_LISTEN"] = "127.0.0.1:0";
    t::write_env_file(env_file, env);
    t::migrate_with_program(env_file);
    t::field_daemon daemon(env_file, dir.file("field.log"));
    daemon.start();
    daemon.wait_subscribed(1);
    // The metrics listener may log its port after the subscription (slow under TSan).
    unsigned short port = 0;
    t::wait_until(
        [&] {
            port = port_in_log(daemon.log(),
                               "serving Prometheus metrics on http://127\\.0\\.0\\.1:([0-9]+)/metrics");
            return port != 0;
        },
        10s);
    INFO(daemon.log());
    REQUIRE(port != 0);

    t::mqtt_publisher pub(t::require_mqtt_broker(), t::unique_name("metrics-pub"));
    pub.connect();
    const auto messages = t::make_gateway_messages(30, 11);
    for (const auto& m : messages) pub.publish(env["MQTT_TOPIC"], m.bytes, m.key());
    pub.publish(env["MQTT_TOPIC"], messages[0].bytes, "again");  // a mesh duplicate
    pub.publish(env["MQTT_TOPIC"], "{not json", "bad");          // quarantined
    REQUIRE(pub.wait_acked(30s));

    std::string text;
    const bool settled = t::wait_until(
        [&] {
            text = t::get_path(port, "/metrics").response.body;
            return has_line(text, "opendms_field_records{sync=\"synced\"} 30") &&
                   has_line(text, "opendms_field_messages_total{outcome=\"quarantined\"} 1") &&
                   has_line(text, "opendms_field_messages_total{outcome=\"mesh_duplicate\"} 1");
        },
        60s, 200ms);
    INFO(text);
    REQUIRE(settled);
    CHECK(has_line(text, "opendms_field_messages_total{outcome=\"stored\"} 30"));
    CHECK(has_line(text, "opendms_field_records{sync=\"pending\"} 0"));
    CHECK(has_line(text, "opendms_field_quarantine_records 1"));
    CHECK(has_line(text, "opendms_field_mesh_duplicate_records 1"));
    CHECK(has_line(text, "opendms_field_oldest_pending_age_seconds 0"));
    CHECK(has_line(text, "opendms_field_push_consecutive_failures 0"));
    CHECK(has_line(text, "opendms_field_push_delivered_total 30"));
    CHECK(has_line(text, "opendms_field_mqtt_connections{state=\"subscribed\"} 1"));
    CHECK(has_line(text, "opendms_field_database_up 1"));
    CHECK(t::metric_value(text, "opendms_field_push_last_success_timestamp_seconds") > 1.7e9);
    const double requests = t::metric_value(text, "opendms_field_push_requests_total");
    CHECK(requests >= 1);
    // Every request was timed.
    CHECK(t::metric_value(text, "opendms_field_push_request_duration_seconds_count") == requests);

    // The central is stopped: records wait, and the gauges say so.
    REQUIRE(central.stop() == 0);
    pub.publish(env["MQTT_TOPIC"], t::make_gateway_messages(1, 12)[0].bytes, "late");
    REQUIRE(pub.wait_acked(30s));
    const bool waiting = t::wait_until(
        [&] {
            text = t::get_path(port, "/metrics").response.body;
            return has_line(text, "opendms_field_records{sync=\"pending\"} 1") &&
                   t::metric_value(text, "opendms_field_push_consecutive_failures") >= 1;
        },
        30s, 200ms);
    INFO(text);
    CHECK(waiting);
    CHECK(daemon.stop() == 0);
}
