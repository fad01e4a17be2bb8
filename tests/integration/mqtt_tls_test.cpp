// The field daemon over MQTT with TLS (MQTT_TLS_CA_FILE), against a real Mosquitto with a
// TLS listener whose certificate the test makes (openssl, a private CA). The publisher uses
// a second, plain listener of the same broker: what is under test is the daemon's side.
// The promises: with the right CA the daemon subscribes over TLS and stores every message;
// with a certificate it must not trust (another CA, or issued for another host name) it
// never subscribes, says why in its log, and keeps trying.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "mqtt_test_client.hpp"
#include "test_pki.hpp"
#include "opendms/db/database.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
namespace t = opendms::test;

using t::run_or_throw;
using t::test_pki;

/// Mosquitto with a plain listener (for the publisher) and a TLS one (for the daemon).
struct tls_broker {
    int plain_port = t::free_tcp_port();
    int tls_port = t::free_tcp_port();
    std::unique_ptr<t::child_process> process;
    std::string log_path;

    tls_broker(const t::temp_dir& dir, const test_pki& pki) : log_path(dir.file("broker.log")) {
        // Run as root, Mosquitto drops to its own user, which must reach the PEM files.
        run_or_throw("chmod 0755 " + dir.path());
        const std::string conf = dir.file("broker.conf");
        std::ofstream(conf) << "per_listener_settings false\n"
                            << "allow_anonymous true\n"
                            << "persistence false\n"
                            << "max_queued_messages 0\n"
                            << "log_dest stderr\n"
                            << "listener " << plain_port << " 127.0.0.1\n"
                            << "listener " << tls_port << " 127.0.0.1\n"
                            << "cafile " << pki.ca_pem() << "\n"
                            << "certfile " << pki.cert_pem() << "\n"
                            << "keyfile " << pki.key_pem() << "\n";
        process = std::make_unique<t::child_process>(
            std::vector<std::string>{"mosquitto", "-c", conf}, std::map<std::string, std::string>{},
            log_path);
        t::mqtt_publisher probe(plain(), t::unique_name("opendms-tls-probe"));
        bool up = t::wait_until(
            [&] {
                try {
                    probe.connect(2s);
                    return true;
                } catch (const std::exception&) {
                    return !process->running();
                }
            },
            20s, 200ms);
        if (!up || !process->running()) {
            throw std::runtime_error("tls_broker: did not start: " + t::read_text_file(log_path));
        }
        probe.disconnect();
    }
    ~tls_broker() { process->terminate(10s); }

    t::mqtt_broker plain() const { return {"127.0.0.1", plain_port}; }
    t::mqtt_broker tls() const { return {"127.0.0.1", tls_port}; }
};

opendms::db::connect_options sqlite_at(const std::string& path) {
    opendms::db::connect_options o;
    o.kind = opendms::db::dialect::sqlite;
    o.database = path;
    return o;
}

std::int64_t rows_in(const opendms::db::connect_options& db) {
    auto c = opendms::db::open(db);
    REQUIRE(c);
    return t::count_rows(**c, "cluster_data");
}

/// A gateway message with MessageID T<i>, e.g. T007 (distinct messages, not mesh duplicates).
std::string sample(int i) {
    char id[16];
    std::snprintf(id, sizeof id, "T%03d", i);
    return std::string(R"({"DeviceID":"DUCK0001","MessageID":")") + id +
           R"(","Payload":"over tls","path":"DUCK0001,PAPA0001",)"
           R"("hops":1,"duckType":3,"eventType":"status"})";
}

}  // namespace

TEST_CASE("the daemon subscribes over TLS with MQTT_TLS_CA_FILE and stores every message",
          "[integration]") {
    t::temp_dir dir;
    test_pki pki(dir.file("pki"), "IP:127.0.0.1,DNS:localhost");
    tls_broker broker(dir, pki);
    const auto db = sqlite_at(dir.file("field.sqlite"));
    const std::string topic = t::unique_name("opendms-tls") + "/hub/event";
    auto env = t::daemon_env(db, broker.tls(), topic);
    env["MQTT_TLS_CA_FILE"] = pki.ca_pem();
    const std::string env_file = dir.file("field.env");
    t::write_env_file(env_file, env);
    t::migrate_with_program(env_file);

    t::field_daemon daemon(env_file, dir.file("daemon.log"));
    daemon.start();
    daemon.wait_subscribed(1);
    CHECK(daemon.log().find("over TLS") != std::string::npos);

    t::mqtt_publisher pub(broker.plain(), t::unique_name("opendms-tls-pub"));
    pub.connect();
    for (int i = 0; i < 50; ++i) pub.publish(topic, sample(i), std::to_string(i));
    REQUIRE(pub.wait_acked(30s));
    std::int64_t stored = 0;
    CHECK(t::wait_until([&] { return (stored = rows_in(db)) >= 50; }, 60s, 100ms));
    CHECK(stored == 50);
    auto c = opendms::db::open(db);
    REQUIRE(c);
    CHECK(t::count_rows(**c, "mesh_duplicates") == 0);
    CHECK(daemon.stop() == 0);
}

TEST_CASE("the daemon refuses a broker certificate its CA file does not vouch for",
          "[integration][fault]") {
    t::temp_dir dir;
    test_pki broker_pki(dir.file("pki"), "IP:127.0.0.1,DNS:localhost");
    SECTION("signed by another CA") {
        test_pki other(dir.file("other"), "IP:127.0.0.1,DNS:localhost");
        tls_broker broker(dir, broker_pki);
        const auto db = sqlite_at(dir.file("field.sqlite"));
        auto env = t::daemon_env(db, broker.tls(), t::unique_name("opendms-tls") + "/hub/event");
        env["MQTT_TLS_CA_FILE"] = other.ca_pem();
        env["MQTT_RECONNECT_MAX"] = "1";
        t::write_env_file(dir.file("field.env"), env);
        t::migrate_with_program(dir.file("field.env"));
        t::field_daemon daemon(dir.file("field.env"), dir.file("daemon.log"));
        daemon.start();
        // It keeps trying (several failed attempts logged) and never subscribes.
        bool retried = t::wait_until(
            [&] { return t::count_occurrences(daemon.log(), "certificate verify failed") >= 2; },
            30s, 200ms);
        INFO(daemon.log());
        CHECK(retried);
        CHECK(t::count_occurrences(daemon.log(), " subscribed to ") == 0);
        CHECK(daemon.running());
        CHECK(daemon.stop() == 0);
    }
    SECTION("issued for another host name") {
        test_pki wrong_name(dir.file("wrong"), "DNS:broker.example.invalid");
        tls_broker broker(dir, wrong_name);
        const auto db = sqlite_at(dir.file("field.sqlite"));
        auto env = t::daemon_env(db, broker.tls(), t::unique_name("opendms-tls") + "/hub/event");
        env["MQTT_TLS_CA_FILE"] = wrong_name.ca_pem();
        env["MQTT_RECONNECT_MAX"] = "1";
        t::write_env_file(dir.file("field.env"), env);
        t::migrate_with_program(dir.file("field.env"));
        t::field_daemon daemon(dir.file("field.env"), dir.file("daemon.log"));
        daemon.start();
        bool retried = t::wait_until(
            [&] { return t::count_occurrences(daemon.log(), "certificate verify failed") >= 2; },
            30s, 200ms);
        INFO(daemon.log());
        CHECK(retried);
        CHECK(t::count_occurrences(daemon.log(), " subscribed to ") == 0);
        CHECK(daemon.stop() == 0);
    }
}
