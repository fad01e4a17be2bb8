// End to end: the opendms-field binary (`run`) as a child process, the real Mosquitto from
// tests/support/servers.sh (the shipped broker configuration), and the real databases of
// the three modes. Every message the broker acknowledged must be in the database exactly
// once, with its columns; what cannot become a record must be in quarantine.
#include <catch2/catch.hpp>

#include <mosquitto.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mqtt_test_client.hpp"
#include "opendms/db/database.hpp"
#include "opendms/field/mqtt_subscriber.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
using opendms::db::dialect;
namespace t = opendms::test;

/// One test's world: its database, a temp dir for the .env and the logs, a topic of its own.
struct bench {
    t::scratch_database db;
    t::temp_dir dir;
    t::mqtt_broker broker = t::require_mqtt_broker();
    std::string topic = t::unique_name("opendms-test") + "/hub/event";
    std::map<std::string, std::string> env;
    std::string env_file = dir.file("field.env");
    t::field_daemon daemon{env_file, dir.file("daemon.log")};

    explicit bench(dialect d, const std::map<std::string, std::string>& extra = {}) : db(d) {
        env = t::daemon_env(db.options(), broker, topic);
        for (const auto& [k, v] : extra) env[k] = v;
        t::write_env_file(env_file, env);
        t::migrate_with_program(env_file);
    }

    /// Publishes every message at QoS 1 and waits for the broker's acknowledgements.
    void publish(const std::vector<t::gateway_message>& messages) {
        t::mqtt_publisher pub(broker, t::unique_name("opendms-test-pub"));
        pub.connect();
        for (const auto& m : messages) pub.publish(topic, m.bytes, m.key());
        REQUIRE(pub.wait_acked(60s));
        REQUIRE(pub.acked() == messages.size());
    }

    /// Waits until cluster_data holds `n` rows (or the deadline passes); the final count.
    std::int64_t wait_rows(std::int64_t n, std::chrono::milliseconds timeout = 90s) {
        auto c = db.connect();
        std::int64_t rows = 0;
        t::wait_until([&] { return (rows = t::count_rows(*c, "cluster_data")) >= n; }, timeout,
                      100ms);
        return rows;
    }

    t::program_result status_json() {
        return t::run_program({t::field_binary(), "--env-file", env_file, "status", "--json"});
    }
};

std::optional<std::string> text_of(const opendms::db::row& r, std::size_t i) {
    return r.get_text(i);
}

/// Checks each row against the message it came from; every message exactly once.
void check_rows(opendms::db::connection& c, const std::vector<t::gateway_message>& messages,
                std::optional<bool> synced) {
    auto rows = c.query(
        "SELECT duck_id, message_id, topic, payload, hops, duck_type, path, origin, "
        "destination, source_node, synced, uuid, created_at FROM cluster_data");
    REQUIRE(rows);
    REQUIRE(rows->size() == messages.size());
    std::map<std::string, const t::gateway_message*> by_key;
    for (const auto& m : messages) by_key[m.key()] = &m;
    std::map<std::string, int> seen;
    std::set<std::string> uuids;
    int mismatches = 0;
    for (const opendms::db::row& r : rows->data) {
        std::string key = text_of(r, 0).value_or("") + "/" + text_of(r, 1).value_or("");
        ++seen[key];
        auto it = by_key.find(key);
        if (it == by_key.end()) {
            FAIL_CHECK("a row for a message never published: " << key);
            continue;
        }
        const t::gateway_message& m = *it->second;
        bool ok =
            text_of(r, 2) == m.topic && text_of(r, 3) == m.message && r.get_int(4) == m.hops &&
            r.get_int(5) == m.duck_type && text_of(r, 6) == m.path && text_of(r, 7) == m.origin &&
            text_of(r, 8) == m.destination && text_of(r, 9) == "test-node" &&
            r.get_bool(10) == synced && text_of(r, 11).has_value() && text_of(r, 12).has_value();
        if (!ok && ++mismatches <= 5) {
            FAIL_CHECK("row of " << key << " does not match its message " << m.bytes);
        }
        uuids.insert(text_of(r, 11).value_or(""));
    }
    CHECK(mismatches == 0);
    CHECK(uuids.size() == messages.size());
    int not_once = 0;
    for (const auto& m : messages) not_once += seen[m.key()] != 1;
    CHECK(not_once == 0);
}

rapidjson::Document parse_json(const std::string& text) {
    rapidjson::Document d;
    d.Parse(text.c_str());
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d.IsObject());
    return d;
}

}  // namespace

TEST_CASE("500 messages at QoS 1 are stored exactly once with their columns in every mode",
          "[integration][mqtt]") {
    struct mode {
        const char* name;
        dialect d;
        std::map<std::string, std::string> extra;
        std::optional<bool> synced;  // the synced column of new rows
    };
    const std::vector<mode> modes{
        {"offline (sqlite)", dialect::sqlite, {}, std::nullopt},
        {"hybrid (sqlite + central URL)",
         dialect::sqlite,
         {{"CENTRAL_DMS_URL", "http://127.0.0.1:9"}, {"CENTRAL_DMS_TOKEN", "test-token"}},
         false},
        {"production (PostgreSQL)", dialect::pgsql, {}, std::nullopt},
        {"production (MariaDB)", dialect::mysql, {}, std::nullopt},
    };
    const mode& m = modes[static_cast<std::size_t>(GENERATE(0, 1, 2, 3))];
    INFO("mode: " << m.name);
    bench b(m.d, m.extra);
    auto messages = t::make_gateway_messages(500);

    b.daemon.start();
    b.daemon.wait_subscribed(1);
    b.publish(messages);
    CHECK(b.wait_rows(500) == 500);
    CHECK(b.daemon.stop() == 0);
    INFO(b.daemon.log());

    auto c = b.db.connect();
    check_rows(*c, messages, m.synced);
    CHECK(t::count_rows(*c, "quarantine") == 0);
    CHECK(t::count_rows(*c, "outbox") == (m.synced ? 500 : 0));
    CHECK(b.daemon.log().find("stopped: handled 500 message(s)") != std::string::npos);
}

TEST_CASE("malformed messages end in quarantine and status --json counts them",
          "[integration][mqtt]") {
    bench b(dialect::sqlite, {{"MQTT_MAX_MESSAGE_BYTES", "1024"}});
    std::vector<std::string> bad = t::malformed_samples();
    REQUIRE(bad.size() >= 2);
    bad.push_back("not json at all");
    bad.push_back("{\"eventType\":\"status\",\"MessageID\":\"AB");  // cut off
    bad.push_back(std::string("{\"eventType\":\"status\",\"MessageID\":\"ABCD\",\"payload\":"
                              "{\"DeviceID\":\"BIGDUCK1\",\"Message\":\"") +
                  std::string(2000, 'x') + "\"}}");  // over MQTT_MAX_MESSAGE_BYTES
    bad.push_back("");                               // an empty message
    auto good = t::make_gateway_messages(5);

    b.daemon.start();
    b.daemon.wait_subscribed(1);
    t::mqtt_publisher pub(b.broker, t::unique_name("opendms-test-pub"));
    pub.connect();
    for (std::size_t i = 0; i < bad.size(); ++i) {
        pub.publish(b.topic, bad[i], "bad" + std::to_string(i));
    }
    for (const auto& m : good) pub.publish(b.topic, m.bytes, m.key());
    REQUIRE(pub.wait_acked(30s));

    auto c = b.db.connect();
    const auto expected_quarantine = static_cast<std::int64_t>(bad.size());
    t::wait_until(
        [&] {
            return t::count_rows(*c, "quarantine") + t::count_rows(*c, "cluster_data") >=
                   expected_quarantine + 5;
        },
        30s);
    t::program_result st = b.status_json();
    REQUIRE(st.code == 0);
    INFO(st.output);
    rapidjson::Document d = parse_json(st.output);
    CHECK(d["quarantined"].GetInt64() == expected_quarantine);
    CHECK(d["not_applicable"].GetInt64() == 5);
    CHECK(d["pending"].GetInt64() == 0);
    CHECK(d["outbox_depth"].GetInt64() == 0);
    CHECK(d["oldest_pending_age_seconds"].IsNull());

    // Kept byte for byte, under the MQTT topic they came on.
    auto rows = c->query("SELECT topic, raw FROM quarantine ORDER BY id");
    REQUIRE(rows);
    REQUIRE(rows->size() == bad.size());
    for (std::size_t i = 0; i < bad.size(); ++i) {
        CHECK(rows->data[i].get_text(0) == b.topic);
        CHECK(rows->data[i].get_text(1).value_or("<null>") == bad[i]);
    }
    CHECK(b.daemon.stop() == 0);
    CHECK(t::count_occurrences(b.daemon.log(), "quarantined a message on " + b.topic) ==
          bad.size());
}

TEST_CASE("a 10,000-message burst at full speed is stored completely", "[integration][mqtt]") {
    const int connections = GENERATE(1, 2);
    INFO(connections << " MQTT connection(s)");
    bench b(dialect::sqlite, {{"MQTT_CONNECTIONS", std::to_string(connections)}});
    auto messages = t::make_gateway_messages(10000, connections);

    b.daemon.start();
    b.daemon.wait_subscribed(static_cast<std::size_t>(connections));
    b.publish(messages);
    CHECK(b.wait_rows(10000, 100s) == 10000);
    CHECK(b.daemon.stop() == 0);

    auto c = b.db.connect();
    auto keys = t::stored_keys(*c);
    int not_once = 0;
    for (const auto& m : messages) not_once += keys[m.key()] != 1;
    CHECK(not_once == 0);
    CHECK(keys.size() == messages.size());
    CHECK(t::count_rows(*c, "quarantine") == 0);
}

TEST_CASE("QoS 0 messages sent while the daemon is down are kept for it by the broker",
          "[integration][mqtt]") {
    bench b(dialect::sqlite);
    b.daemon.start();
    b.daemon.wait_subscribed(1);  // creates the kept session
    REQUIRE(b.daemon.stop() == 0);

    auto messages = t::make_gateway_messages(51);
    t::mqtt_publisher pub(b.broker, t::unique_name("opendms-test-pub"));
    pub.connect();
    for (std::size_t i = 0; i + 1 < messages.size(); ++i) {
        pub.publish(b.topic, messages[i].bytes, messages[i].key(), 0);
    }
    // One connection delivers in order: once this QoS 1 message is acknowledged, the
    // broker has handled the QoS 0 ones before it.
    pub.publish(b.topic, messages.back().bytes, messages.back().key(), 1);
    REQUIRE(pub.wait_acked(30s));

    b.daemon.start();
    b.daemon.wait_subscribed(2);
    CHECK(b.wait_rows(51, 30s) == 51);
    CHECK(b.daemon.stop() == 0);
    auto c = b.db.connect();
    auto keys = t::stored_keys(*c);
    for (const auto& m : messages) {
        if (keys[m.key()] != 1) FAIL_CHECK(m.key() << " stored " << keys[m.key()] << " times");
    }
}

TEST_CASE("the daemon refuses a database that is not migrated, with the fix",
          "[integration][mqtt]") {
    t::temp_dir dir;
    opendms::db::connect_options o;
    o.kind = dialect::sqlite;
    o.database = dir.file("field.sqlite");
    std::string env_file = dir.file("field.env");
    t::write_env_file(env_file, t::daemon_env(o, t::require_mqtt_broker(), "x/hub/event"));

    t::program_result missing = t::run_program({t::field_binary(), "--env-file", env_file, "run"});
    CHECK(missing.code == 78);
    CHECK(missing.output.find("run `opendms-field migrate`") != std::string::npos);

    {
        auto c = opendms::db::open(o);  // an empty database: exists, not migrated
        REQUIRE(c);
    }
    t::program_result empty = t::run_program({t::field_binary(), "--env-file", env_file, "run"});
    CHECK(empty.code == 78);
    CHECK(empty.output.find("pending migrations; run `opendms-field migrate` first") !=
          std::string::npos);

    t::program_result st =
        t::run_program({t::field_binary(), "--env-file", env_file, "status", "--json"});
    CHECK(st.code == 1);
    CHECK(st.output.find("migrate") != std::string::npos);
}

TEST_CASE("the subscriber retries a failing handler and hands each message over once",
          "[integration][mqtt]") {
    const int connections = GENERATE(1, 2);
    INFO(connections << " connection(s)");
    t::mqtt_broker broker = t::require_mqtt_broker();
    opendms::field::mqtt_options o;
    o.host = broker.host;
    o.port = broker.port;
    o.topics = {t::unique_name("opendms-test") + "/hub/event"};
    o.client_id = t::unique_name("opendms-test-sub");
    o.connections = connections;
    o.share_group = t::unique_name("g");

    std::mutex m;
    std::map<std::string, int> calls;  // payload -> handler calls
    std::set<int> indexes;
    int wrong_topics = 0;  // Catch2 assertions are not thread-safe: checked at the end
    int failures_left = 3;
    opendms::field::mqtt_subscriber sub(
        o, [&](int index, std::string_view topic, std::string_view payload) {
            std::lock_guard<std::mutex> lock(m);
            wrong_topics += topic != o.topics[0];
            indexes.insert(index);
            ++calls[std::string(payload)];
            if (payload == "message 0" && failures_left > 0) {
                --failures_left;
                return opendms::status(opendms::errc::io_error, "test: disk full");
            }
            return opendms::status::ok();
        });
    REQUIRE(sub.start());
    REQUIRE(t::wait_until([&] { return sub.connected() == connections; }, 20s));

    t::mqtt_publisher pub(broker, t::unique_name("opendms-test-pub"));
    pub.connect();
    for (int i = 0; i < 100; ++i) {
        pub.publish(o.topics[0], "message " + std::to_string(i), std::to_string(i));
    }
    REQUIRE(pub.wait_acked(30s));
    CHECK(t::wait_until([&] { return sub.handled() == 100; }, 30s));
    sub.stop();
    CHECK(sub.connected() == 0);
    CHECK(sub.handled() == 100);

    std::lock_guard<std::mutex> lock(m);
    CHECK(calls.size() == 100);
    CHECK(calls["message 0"] == 4);  // three failures, then stored
    int others_once = 0;
    for (int i = 1; i < 100; ++i) others_once += calls["message " + std::to_string(i)] == 1;
    CHECK(others_once == 99);
    CHECK(wrong_topics == 0);
    for (int index : indexes) CHECK((index >= 0 && index < connections));
}

namespace {

/// Subscriber options for a private topic and client id on the test broker.
opendms::field::mqtt_options subscriber_options(const t::mqtt_broker& broker) {
    opendms::field::mqtt_options o;
    o.host = broker.host;
    o.port = broker.port;
    o.topics = {t::unique_name("opendms-test") + "/hub/event"};
    o.client_id = t::unique_name("opendms-test-sub");
    return o;
}

/// A batch handler that records each batch and then holds it until release(): while it
/// holds one, no PUBACK of that batch may leave and the next messages pile up.
struct holding_handler {
    std::mutex m;
    std::condition_variable cv;
    bool released = false;
    std::vector<std::string> seen;  // payloads in the order handed over
    std::vector<std::size_t> sizes;

    opendms::field::batch_handler handler() {
        return [this](int, const std::vector<opendms::field::mqtt_message>& batch) {
            std::unique_lock<std::mutex> lock(m);
            for (const auto& msg : batch) seen.push_back(msg.payload);
            sizes.push_back(batch.size());
            cv.wait(lock, [&] { return released; });
            return std::vector<opendms::status>(batch.size(), opendms::status::ok());
        };
    }
    bool any_seen() {
        std::lock_guard<std::mutex> lock(m);
        return !seen.empty();
    }
    void release() {
        {
            std::lock_guard<std::mutex> lock(m);
            released = true;
        }
        cv.notify_all();
    }
};

}  // namespace

TEST_CASE("a burst reaches the handler in batches, in the broker's order, each message once",
          "[integration][mqtt]") {
    t::mqtt_broker broker = t::require_mqtt_broker();
    opendms::field::mqtt_options o = subscriber_options(broker);
    holding_handler h;  // the first batch waits: meanwhile the burst piles up on the socket
    opendms::field::mqtt_subscriber sub(o, h.handler());
    REQUIRE(sub.start());
    REQUIRE(t::wait_until([&] { return sub.connected() == 1; }, 20s));

    t::mqtt_publisher pub(broker, t::unique_name("opendms-test-pub"));
    pub.connect();
    const int n = 2000;
    for (int i = 0; i < n; ++i) pub.publish(o.topics[0], "message " + std::to_string(i), "");
    REQUIRE(pub.wait_acked(30s));
    REQUIRE(t::wait_until([&] { return h.any_seen(); }, 20s));
    std::this_thread::sleep_for(500ms);  // the broker has sent the rest meanwhile
    CHECK(sub.handled() == 0);  // nothing counts as stored before the handler returns
    h.release();
    CHECK(t::wait_until([&] { return sub.handled() == n; }, 30s));
    sub.stop();

    std::lock_guard<std::mutex> lock(h.m);
    const std::vector<std::string>& seen = h.seen;
    const std::vector<std::size_t>& sizes = h.sizes;
    REQUIRE(seen.size() == static_cast<std::size_t>(n));
    int out_of_order = 0;
    for (int i = 0; i < n; ++i) out_of_order += seen[i] != "message " + std::to_string(i);
    CHECK(out_of_order == 0);
    const std::size_t largest = *std::max_element(sizes.begin(), sizes.end());
    INFO("batches: " << sizes.size() << ", largest " << largest);
    CHECK(largest > 1);  // what had piled up came in batches...
    CHECK(largest <= opendms::field::max_batch_messages);  // ...of bounded size
    CHECK(sizes.size() < static_cast<std::size_t>(n));
}

TEST_CASE("a message its batch could not store is offered again alone; the others only once",
          "[integration][mqtt]") {
    t::mqtt_broker broker = t::require_mqtt_broker();
    opendms::field::mqtt_options o = subscriber_options(broker);
    std::mutex m;
    std::map<std::string, int> calls;
    std::vector<std::size_t> retry_sizes;  // sizes of the calls that offered "message 7"
    int failures_left = 2;
    opendms::field::mqtt_subscriber sub(
        o, opendms::field::batch_handler(
               [&](int, const std::vector<opendms::field::mqtt_message>& batch) {
                   std::lock_guard<std::mutex> lock(m);
                   std::vector<opendms::status> out;
                   for (const auto& msg : batch) {
                       ++calls[msg.payload];
                       if (msg.payload == "message 7") retry_sizes.push_back(batch.size());
                       if (msg.payload == "message 7" && failures_left > 0) {
                           --failures_left;
                           out.emplace_back(opendms::errc::io_error, "test: disk full");
                       } else {
                           out.push_back(opendms::status::ok());
                       }
                   }
                   return out;
               }));
    REQUIRE(sub.start());
    REQUIRE(t::wait_until([&] { return sub.connected() == 1; }, 20s));
    t::mqtt_publisher pub(broker, t::unique_name("opendms-test-pub"));
    pub.connect();
    for (int i = 0; i < 50; ++i) pub.publish(o.topics[0], "message " + std::to_string(i), "");
    REQUIRE(pub.wait_acked(30s));
    CHECK(t::wait_until([&] { return sub.handled() == 50; }, 30s));
    sub.stop();

    std::lock_guard<std::mutex> lock(m);
    CHECK(calls.size() == 50);
    CHECK(calls["message 7"] == 3);  // failed in its batch, failed alone, then stored
    int others_once = 0;
    for (int i = 0; i < 50; ++i) {
        if (i != 7) others_once += calls["message " + std::to_string(i)] == 1;
    }
    CHECK(others_once == 49);
    REQUIRE(retry_sizes.size() == 3);
    CHECK(retry_sizes[1] == 1);  // the retries offer it alone
    CHECK(retry_sizes[2] == 1);
}

TEST_CASE("no PUBACK leaves while the handler holds its batch: the broker redelivers it",
          "[integration][mqtt]") {
    // The handler blocks on its first batch. A second client then takes over the session
    // (same client id, clean_session=false); the broker resends every message it has not
    // seen acknowledged, so that client must get all of the blocked batch again. A PUBACK
    // written before the handler returned would make the broker drop those messages.
    t::mqtt_broker broker = t::require_mqtt_broker();
    opendms::field::mqtt_options o = subscriber_options(broker);
    o.reconnect_min_s = 30;  // the taken-over subscriber stays away while the test runs
    o.reconnect_max_s = 30;
    holding_handler h;
    opendms::field::mqtt_subscriber sub(o, h.handler());
    REQUIRE(sub.start());
    REQUIRE(t::wait_until([&] { return sub.connected() == 1; }, 20s));
    t::mqtt_publisher pub(broker, t::unique_name("opendms-test-pub"));
    pub.connect();
    for (int i = 0; i < 20; ++i) pub.publish(o.topics[0], "message " + std::to_string(i), "");
    REQUIRE(pub.wait_acked(30s));
    REQUIRE(t::wait_until([&] { return h.any_seen(); }, 20s));
    std::this_thread::sleep_for(300ms);  // any early PUBACK would have left by now

    struct taker_state {
        std::mutex m;
        std::set<std::string> got;
    } taker_got;
    mosquitto* taker = mosquitto_new(o.client_id.c_str(), false, &taker_got);
    REQUIRE(taker != nullptr);
    mosquitto_message_callback_set(taker, [](mosquitto*, void* u, const mosquitto_message* msg) {
        auto* st = static_cast<taker_state*>(u);
        std::lock_guard<std::mutex> lock(st->m);
        st->got.emplace(static_cast<const char*>(msg->payload),
                        static_cast<std::size_t>(msg->payloadlen));
    });
    REQUIRE(mosquitto_connect(taker, broker.host.c_str(), broker.port, 30) == MOSQ_ERR_SUCCESS);
    REQUIRE(mosquitto_loop_start(taker) == MOSQ_ERR_SUCCESS);
    std::set<std::string> expected;
    {
        std::lock_guard<std::mutex> lock(h.m);
        expected.insert(h.seen.begin(), h.seen.end());
    }
    bool all = t::wait_until(
        [&] {
            std::lock_guard<std::mutex> lock(taker_got.m);
            return std::includes(taker_got.got.begin(), taker_got.got.end(), expected.begin(),
                                 expected.end());
        },
        20s);
    CHECK(all);
    mosquitto_disconnect(taker);
    mosquitto_loop_stop(taker, false);
    mosquitto_destroy(taker);
    h.release();
    sub.stop();
    INFO("held by the handler: " << expected.size());
    CHECK(!expected.empty());
}

TEST_CASE("the subscriber keeps trying an absent broker and stops when asked",
          "[integration][mqtt]") {
    opendms::field::mqtt_options o;
    o.port = t::free_tcp_port();  // nothing listens there
    o.client_id = t::unique_name("opendms-test-sub");
    int calls = 0;
    opendms::field::mqtt_subscriber sub(o, [&](int, std::string_view, std::string_view) {
        ++calls;
        return opendms::status::ok();
    });
    REQUIRE(sub.start());
    CHECK_FALSE(sub.start());  // only once
    std::this_thread::sleep_for(1500ms);
    CHECK(sub.connected() == 0);
    sub.stop();
    sub.stop();  // idempotent
    CHECK(sub.handled() == 0);
    CHECK(calls == 0);
}

TEST_CASE("the subscriber refuses to start with a TLS CA file it cannot read",
          "[integration][mqtt]") {
    opendms::field::mqtt_options o;
    o.port = t::free_tcp_port();
    o.client_id = t::unique_name("opendms-test-sub");
    o.tls_ca_file = "/nonexistent/ca.pem";
    opendms::field::mqtt_subscriber sub(
        o, [](int, std::string_view, std::string_view) { return opendms::status::ok(); });
    opendms::status s = sub.start();
    CHECK(s.code() == opendms::errc::invalid_argument);
    CHECK(s.message().find("MQTT_TLS_CA_FILE '/nonexistent/ca.pem'") != std::string::npos);
    CHECK(sub.connected() == 0);
}
