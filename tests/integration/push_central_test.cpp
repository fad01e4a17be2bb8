// The field node and the central server as real processes: opendms-field (run, push) in
// hybrid mode delivering to opendms-central serve on SQLite and PostgreSQL, over plain HTTP
// on 127.0.0.1, over TLS with a CA the test makes, and through a CONNECT proxy. What must
// hold: every record the field node stored is at the central exactly once, with its uuid
// and its original time; the field node marks it synced; a field daemon killed with
// SIGKILL in the middle of pushes, again and again, loses nothing and duplicates nothing.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "central_process.hpp"
#include "fault_http_server.hpp"
#include "mqtt_test_client.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/ingest_store.hpp"
#include "store_snapshot.hpp"
#include "test_pki.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
using opendms::db::dialect;
namespace t = opendms::test;
namespace db = opendms::db;

const std::string token = "push-test-token-0123456789abcdefghijklmnopqr";

db::connect_options sqlite_at(const std::string& path) {
    db::connect_options o;
    o.kind = dialect::sqlite;
    o.database = path;
    return o;
}

/// A central server on a scratch database of `d`.
struct central {
    t::temp_dir dir;
    t::scratch_database database;
    t::central_server server;

    explicit central(dialect d, std::map<std::string, std::string> extra = {})
        : database(d), server(dir.path(), with(t::central_env(database.options(), token), extra)) {
        server.migrate();
    }
    static std::map<std::string, std::string> with(std::map<std::string, std::string> env,
                                                   const std::map<std::string, std::string>& extra) {
        for (const auto& [k, v] : extra) env[k] = v;
        return env;
    }
    std::unique_ptr<db::connection> connect() { return database.connect(); }
};

/// A field node's SQLite file and .env, for `run` and `push`.
struct field_node {
    t::temp_dir dir;
    std::string env_file = dir.file("field.env");
    std::map<std::string, std::string> env;

    field_node(const std::string& url, std::map<std::string, std::string> extra = {}) {
        env = t::daemon_env(sqlite_at(dir.file("field.sqlite")), t::require_mqtt_broker(),
                            t::unique_name("push/test"), "field-a");
        env["CENTRAL_DMS_URL"] = url;
        env["CENTRAL_DMS_TOKEN"] = token;
        env["CENTRAL_DMS_POLL_INTERVAL"] = "0.2";
        for (const auto& [k, v] : extra) env[k] = v;
        t::write_env_file(env_file, env);
        t::migrate_with_program(env_file);
    }
    void rewrite(const std::map<std::string, std::string>& changes) {
        for (const auto& [k, v] : changes) env[k] = v;
        t::write_env_file(env_file, env);
    }
    std::unique_ptr<db::connection> connect() {
        auto c = db::open(sqlite_at(dir.file("field.sqlite")));
        REQUIRE(c);
        return std::move(*c);
    }
    /// Stores `n` records straight into the database, as ingest would (one transaction).
    void seed(int n, const std::string& tag) {
        auto c = connect();
        opendms::field::ingest_options o;
        o.mode = opendms::config::deployment_mode::hybrid;
        o.node_id = "field-a";
        opendms::field::ingest_store store(*c, opendms::real_clock(), o);
        REQUIRE(c->begin());
        for (int i = 0; i < n; ++i) {
            auto r = store.ingest_in_transaction(
                "hub/event", R"({"eventType":"status","MessageID":")" + std::to_string(1000 + i % 9000) +
                                 R"(","payload":{"hops":2,"duckType":3,"DeviceID":"DUCK0042","Message":")" +
                                 tag + std::to_string(i) + R"("}})");
            REQUIRE(r);
        }
        REQUIRE(c->commit());
    }
    t::program_result push_once(std::chrono::milliseconds timeout = 120s) {
        return t::run_program({t::field_binary(), "--env-file", env_file, "push", "--once"}, {},
                              timeout);
    }
    std::int64_t pending() {
        auto c = connect();
        return t::query_ok(*c, "select count(*) from cluster_data where synced = 0")[0].get_int(0).value();
    }
};

/// uuid -> created_at of every row.
std::map<std::string, std::string> rows_by_uuid(db::connection& c) {
    std::map<std::string, std::string> out;
    for (const auto& r : t::query_ok(c, "select uuid, created_at from cluster_data").data) {
        out[r.get_text(0).value_or("")] = r.get_text(1).value_or("");
    }
    return out;
}

std::string url_of(t::central_server& s, const std::string& host = "127.0.0.1", bool tls = false) {
    return std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(s.port());
}

/// Central and field hold the same records: every uuid once, with the same created_at.
void check_delivered_once(db::connection& central_db, db::connection& field_db, std::size_t expected) {
    auto at_central = rows_by_uuid(central_db);
    auto at_field = rows_by_uuid(field_db);
    CHECK(at_field.size() == expected);
    CHECK(t::count_rows(central_db, "cluster_data") == static_cast<std::int64_t>(expected));
    CHECK(at_central == at_field);
    CHECK(t::query_ok(field_db, "select count(*) from cluster_data where synced = 1 and synced_at "
                                "is not null")[0].get_int(0) == static_cast<std::int64_t>(expected));
    CHECK(t::count_rows(field_db, "outbox") == 0);
}

}  // namespace

TEST_CASE("the field daemon delivers every message it ingests to the central exactly once",
          "[integration]") {
    for (dialect d : {dialect::sqlite, dialect::pgsql}) {
        DYNAMIC_SECTION(db::dialect_name(d)) {
            central c(d);
            c.server.start();
            field_node f(url_of(c.server));
            t::field_daemon daemon(f.env_file, f.dir.file("field.log"));
            daemon.start();
            daemon.wait_subscribed(1);
            t::mqtt_publisher pub(t::require_mqtt_broker(), t::unique_name("push-pub"));
            pub.connect();
            const auto messages = t::make_gateway_messages(300, 7);
            for (const auto& m : messages) pub.publish(f.env["MQTT_TOPIC"], m.bytes, m.key());
            REQUIRE(pub.wait_acked(60s));
            auto central_db = c.connect();
            const bool all = t::wait_until(
                [&] { return t::count_rows(*central_db, "cluster_data") >= 300 && f.pending() == 0; },
                60s, 100ms);
            INFO(daemon.log());
            REQUIRE(all);
            REQUIRE(daemon.stop() == 0);
            auto field_db = f.connect();
            check_delivered_once(*central_db, *field_db, 300);
            CHECK(t::query_ok(*central_db, "select count(*) from cluster_data where received_from = "
                                           "'default' and source_node = 'field-a'")[0]
                      .get_int(0) == 300);
            t::program_result st = t::run_program({t::field_binary(), "--env-file", f.env_file, "status", "--json"});
            CHECK(st.code == 0);
            CHECK(st.output.find("\"pending\":0") != std::string::npos);
            CHECK(st.output.find("\"synced\":300") != std::string::npos);
            CHECK(st.output.find("\"last_success_at\":\"20") != std::string::npos);
            CHECK(st.output.find("\"protocol\":\"batch\"") != std::string::npos);
        }
    }
}

TEST_CASE("a central that is down at first is retried on the schedule and then receives all",
          "[integration][fault]") {
    central c(dialect::sqlite);
    const int port = t::free_tcp_port();
    c.server.set_env(central::with(c.server.env(), {{"CENTRAL_LISTEN", "127.0.0.1:" + std::to_string(port)}}));
    field_node f("http://127.0.0.1:" + std::to_string(port),
                 {{"CENTRAL_DMS_BACKOFF", "0.5,1"}, {"CENTRAL_DMS_JITTER", "0"}});
    f.seed(500, "outage");
    t::field_daemon daemon(f.env_file, f.dir.file("field.log"));
    daemon.start();
    REQUIRE(t::wait_until([&] { return t::count_occurrences(daemon.log(), "push failed") >= 3; }, 30s, 100ms));
    CHECK(f.pending() == 500);
    c.server.start();
    auto central_db = c.connect();
    const bool all = t::wait_until([&] { return f.pending() == 0; }, 60s, 100ms);
    INFO(daemon.log());
    REQUIRE(all);
    CHECK(daemon.log().find("delivery resumed after") != std::string::npos);
    REQUIRE(daemon.stop() == 0);
    auto field_db = f.connect();
    check_delivered_once(*central_db, *field_db, 500);
}

TEST_CASE("kill -9 of the field daemon in the middle of pushes, 20 times: nothing lost or twice",
          "[integration][crash]") {
    central c(dialect::pgsql);
    c.server.start();
    field_node f(url_of(c.server), {{"CENTRAL_DMS_BATCH_SIZE", "50"}, {"CENTRAL_DMS_BACKOFF", "0.2"},
                                    {"CENTRAL_DMS_GZIP_LEVEL", "1"}});
    const int total = 20000;
    f.seed(total, "crash");
    t::field_daemon daemon(f.env_file, f.dir.file("field.log"));
    std::mt19937 rng(20261203);
    std::uniform_int_distribution<int> pause_ms(30, 400);
    auto central_db = c.connect();
    int kills = 0;
    std::int64_t last_pending = total;
    for (; kills < 20; ++kills) {
        daemon.start();
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
        daemon.kill_hard();
        last_pending = f.pending();
        if (last_pending == 0) break;
    }
    INFO("killed " << kills << " times; " << last_pending << " still pending before the last run");
    CHECK(kills >= 10);  // the kills did land in the middle of the drain
    // Up before it may be stopped: when the kills already drained everything, the wait
    // below returns at once, and a SIGTERM sent before the daemon has blocked it (or even
    // before exec) ends it with 143 instead of a clean stop.
    const std::size_t subscribed = t::count_occurrences(daemon.log(), " subscribed to ");
    daemon.start();
    daemon.wait_subscribed(subscribed + 1);
    const bool all = t::wait_until([&] { return f.pending() == 0; }, 120s, 100ms);
    REQUIRE(all);
    REQUIRE(daemon.stop() == 0);
    auto field_db = f.connect();
    check_delivered_once(*central_db, *field_db, total);
    CHECK(t::query_ok(*central_db, "select count(distinct payload) from cluster_data")[0].get_int(0) == total);
    // The central answered some resends as duplicates: they were delivered before the kill.
    t::central_server& s = c.server;
    auto metrics = t::get_path(s.port(), "/metrics");
    INFO(metrics.describe());
    CHECK(t::metric_value(metrics.response.body, "opendms_records_total{outcome=\"stored\"}") == total);
}

TEST_CASE("TLS: the right host name with the test's CA is accepted; a wrong name or CA is refused",
          "[integration][fault]") {
    t::temp_dir pki_dir;
    t::test_pki pki(pki_dir.file("good"), "DNS:localhost");
    t::test_pki other(pki_dir.file("other"), "DNS:localhost");
    central c(dialect::sqlite, {{"CENTRAL_TLS_CERT", pki.cert_pem()}, {"CENTRAL_TLS_KEY", pki.key_pem()}});
    c.server.start();

    SECTION("the right name and CA") {
        field_node f(url_of(c.server, "localhost", true), {{"CENTRAL_DMS_CA_FILE", pki.ca_pem()}});
        f.seed(40, "tls");
        t::program_result r = f.push_once();
        INFO(r.output);
        CHECK(r.code == 0);
        CHECK(f.pending() == 0);
        auto central_db = c.connect();
        CHECK(t::count_rows(*central_db, "cluster_data") == 40);
    }
    SECTION("a name the certificate does not carry") {
        field_node f(url_of(c.server, "127.0.0.1", true), {{"CENTRAL_DMS_CA_FILE", pki.ca_pem()}});
        f.seed(5, "tls");
        t::program_result r = f.push_once();
        INFO(r.output);
        CHECK(r.code == 75);
        CHECK(r.output.find("certificate verify failed") != std::string::npos);
        CHECK(f.pending() == 5);
    }
    SECTION("a CA that did not sign it") {
        field_node f(url_of(c.server, "localhost", true), {{"CENTRAL_DMS_CA_FILE", other.ca_pem()}});
        f.seed(5, "tls");
        t::program_result r = f.push_once();
        INFO(r.output);
        CHECK(r.code == 75);
        CHECK(r.output.find("certificate verify failed") != std::string::npos);
        CHECK(f.pending() == 5);
    }
    SECTION("no CA file: the system's store does not know the test's CA") {
        field_node f(url_of(c.server, "localhost", true));
        f.seed(5, "tls");
        t::program_result r = f.push_once();
        INFO(r.output);
        CHECK(r.code == 75);
        CHECK(f.pending() == 5);
    }
    auto central_db = c.connect();
    CHECK(t::count_rows(*central_db, "cluster_data") <= 40);
}

TEST_CASE("HTTPS_PROXY: records go through a CONNECT tunnel with TLS end to end",
          "[integration]") {
    t::temp_dir pki_dir;
    t::test_pki pki(pki_dir.file("pki"), "DNS:localhost");
    central c(dialect::sqlite, {{"CENTRAL_TLS_CERT", pki.cert_pem()}, {"CENTRAL_TLS_KEY", pki.key_pem()}});
    c.server.start();
    t::connect_proxy proxy;
    field_node f(url_of(c.server, "localhost", true),
                 {{"CENTRAL_DMS_CA_FILE", pki.ca_pem()},
                  {"HTTPS_PROXY", "http://gw:s3cret@127.0.0.1:" + std::to_string(proxy.port())}});
    f.seed(25, "proxy");
    t::program_result r = f.push_once();
    INFO(r.output);
    CHECK(r.code == 0);
    CHECK(f.pending() == 0);
    const auto targets = proxy.targets();
    REQUIRE_FALSE(targets.empty());
    CHECK(targets[0] == "localhost:" + std::to_string(c.server.port()));
    CHECK(proxy.authorizations()[0] == "Basic Z3c6czNjcmV0");
    auto central_db = c.connect();
    CHECK(t::count_rows(*central_db, "cluster_data") == 25);
}

TEST_CASE("the central's 401 raises the auth alarm in status; requeue resends parked records",
          "[integration][fault]") {
    central c(dialect::sqlite);
    c.server.start();
    field_node f(url_of(c.server), {{"CENTRAL_DMS_TOKEN", "not-the-token"}});
    f.seed(3, "auth");
    t::program_result r = f.push_once();
    CHECK(r.code == 75);
    CHECK(r.output.find("AUTH ALARM") != std::string::npos);
    t::program_result st = t::run_program({t::field_binary(), "--env-file", f.env_file, "status", "--json"});
    CHECK(st.output.find("\"auth_alarm\":true") != std::string::npos);
    CHECK(st.output.find("\"last_error\":\"HTTP 401: Unauthenticated.\"") != std::string::npos);
    CHECK(f.pending() == 3);
    f.rewrite({{"CENTRAL_DMS_TOKEN", token}});
    r = f.push_once();
    CHECK(r.code == 0);
    st = t::run_program({t::field_binary(), "--env-file", f.env_file, "status", "--json"});
    CHECK(st.output.find("\"auth_alarm\":false") != std::string::npos);
    CHECK(f.pending() == 0);

    // A record the central rejects is parked, and requeue sends it again.
    {
        auto c2 = f.connect();
        f.seed(1, "bad");
        // A topic longer than the central's limit (255): the central rejects it.
        t::query_ok(*c2, "update cluster_data set topic = printf('%.300c', 'x') where payload = 'bad0'");
    }
    r = f.push_once();
    CHECK(r.code == 0);
    st = t::run_program({t::field_binary(), "--env-file", f.env_file, "status", "--json"});
    CHECK(st.output.find("\"parked\":1") != std::string::npos);
    t::program_result rq = t::run_program({t::field_binary(), "--env-file", f.env_file, "requeue"});
    CHECK(rq.code == 0);
    CHECK(rq.output.find("requeued 1 parked record(s)") != std::string::npos);
    st = t::run_program({t::field_binary(), "--env-file", f.env_file, "status", "--json"});
    CHECK(st.output.find("\"parked\":0") != std::string::npos);
}
