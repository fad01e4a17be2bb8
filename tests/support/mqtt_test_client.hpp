// What the end-to-end tests need around a real Mosquitto and a real opendms-field process:
// a QoS 1 publisher that records what the broker acknowledged, child processes (the daemon,
// a private broker) that can be killed and restarted, and polling with a deadline.
//
// The shared broker is the one tests/support/servers.sh starts (from the shipped
// deploy/mosquitto/field-broker.conf), found through OPENDMS_TEST_MQTT_HOST/PORT; without
// them require_mqtt_broker() throws ("... run the suite with tests/run_all.sh"), so a test
// fails rather than passing silently.
//
// Errors: set-up failures throw std::runtime_error; destructors never throw, and kill and
// reap any child still running. Thread safety: each object is used from one test thread;
// mqtt_publisher's counters may be read while its network thread acknowledges.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "opendms/db/database.hpp"

struct mosquitto;

namespace opendms::test {

using namespace std::chrono_literals;

struct mqtt_broker {
    std::string host;
    int port = 0;
};

/// The shared test broker, from OPENDMS_TEST_MQTT_HOST/PORT; throws when they are unset.
mqtt_broker require_mqtt_broker();

/// "<prefix>-<pid>-<n>": unique per process and call (client ids, topics, databases).
std::string unique_name(const std::string& prefix);

/// Calls `condition` every `poll` until it returns true or `timeout` has passed; returns
/// its last answer.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = 50ms);

/// The whole file ("" when it cannot be read).
std::string read_text_file(const std::string& path);
/// How often `needle` occurs in `text`.
std::size_t count_occurrences(const std::string& text, const std::string& needle);

/// A TCP port on 127.0.0.1 that was free a moment ago.
int free_tcp_port();

/// The opendms-field binary of this build (OPENDMS_BINARY_DIR/field-node/opendms-field).
std::string field_binary();

/// Writes a .env file with KEY='value' lines (values must not contain a single quote).
void write_env_file(const std::string& path, const std::map<std::string, std::string>& vars);

struct program_result {
    int code = -1;       // exit code; 128 + signal when killed
    std::string output;  // stdout and stderr together
};

/// Runs a program to completion with exactly `env` as its environment (PATH is added when
/// missing); kills it after `timeout` (the result is then code -1).
program_result run_program(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env = {},
                           std::chrono::milliseconds timeout = 120s);

/// A child process whose stdout and stderr are appended to a log file.
class child_process {
public:
    /// Starts argv[0] (a path) with exactly `env` (PATH added when missing); throws when
    /// the fork fails. An exec failure shows as exit code 127 and a line in the log.
    child_process(const std::vector<std::string>& argv, std::map<std::string, std::string> env,
                  const std::string& log_path);
    ~child_process();
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    pid_t pid() const noexcept { return pid_; }
    /// True while the process has not exited (reaps it when it has).
    bool running();
    /// The exit code once exited (128 + signal when killed by one).
    std::optional<int> exit_code() const noexcept { return code_; }
    /// Waits up to `timeout` for the exit; the exit code, or nullopt while still running.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    /// SIGKILL, then reaps.
    void kill_hard();
    /// SIGTERM; after `grace` SIGKILL. Returns the exit code.
    int terminate(std::chrono::milliseconds grace = 30s);

private:
    pid_t pid_ = -1;
    std::optional<int> code_;
};

/// `opendms-field --env-file ENV run`, restartable; every run appends to one log file.
class field_daemon {
public:
    field_daemon(std::string env_file, std::string log_path);

    /// Starts a new process; the previous one must have exited.
    void start();
    /// Waits until the log shows `total` subscriptions since the first start (each
    /// connection of each start logs one); throws when the process exits or at the deadline.
    void wait_subscribed(std::size_t total, std::chrono::milliseconds timeout = 30s);
    bool running();
    void kill_hard();
    /// SIGTERM and wait; the exit code.
    int stop(std::chrono::milliseconds grace = 30s);
    /// Everything the daemon runs have logged.
    std::string log() const { return read_text_file(log_path_); }
    const std::string& log_path() const noexcept { return log_path_; }

private:
    std::string env_file_;
    std::string log_path_;
    std::unique_ptr<child_process> process_;
};

/// A Mosquitto of the test's own, from the shipped configuration (servers.sh
/// mosquitto-conf) on a free port, with its data in `dir`: stopped and started again on
/// the same port by tests that need a broker restart.
class private_broker {
public:
    explicit private_broker(std::string dir);
    ~private_broker();

    /// Starts it and waits until it accepts connections; throws on failure.
    void start();
    /// SIGTERM (the broker saves its state) and wait.
    void stop();
    /// SIGKILL: what was not yet saved (autosave_interval) is lost.
    void kill_hard();
    mqtt_broker address() const { return {"127.0.0.1", port_}; }
    std::string log() const { return read_text_file(dir_ + "/mosquitto.log"); }

private:
    std::string dir_;
    std::string conf_;
    int port_ = 0;
    std::unique_ptr<child_process> process_;
};

/// A libmosquitto publisher (threaded loop, clean session). It records each message the
/// broker ACKNOWLEDGED, by the tag given to publish(): for QoS 1 when the PUBACK arrives
/// (on_publish). Those are the messages the broker has taken responsibility for, which the
/// tests then look for in the database. With `ack_log` set, each acknowledged tag is also
/// appended to that file, one per line, as it arrives.
class mqtt_publisher {
public:
    mqtt_publisher(mqtt_broker broker, std::string client_id, std::string ack_log = {});
    ~mqtt_publisher();
    mqtt_publisher(const mqtt_publisher&) = delete;
    mqtt_publisher& operator=(const mqtt_publisher&) = delete;

    /// Connects and waits for the CONNACK; throws on failure or after `timeout`.
    void connect(std::chrono::milliseconds timeout = 10s);
    /// Publishes one message. At QoS 1 blocks while `window` messages await their PUBACK
    /// (so message ids never wrap around an unacknowledged one). Throws on a library error
    /// or when no PUBACK arrives for 60 s.
    void publish(const std::string& topic, const std::string& payload, const std::string& tag,
                 int qos = 1);
    /// Waits until every QoS 1 message published so far is acknowledged.
    bool wait_acked(std::chrono::milliseconds timeout);
    /// Disconnects cleanly (what is queued is sent first). Idempotent.
    void disconnect();

    std::size_t published() const;  // QoS 1 messages published
    std::size_t acked() const;
    std::vector<std::string> acked_tags() const;

    static constexpr std::size_t window = 1000;

private:
    static void on_connect(mosquitto*, void* self, int rc);
    static void on_publish(mosquitto*, void* self, int mid);
    void record_ack(int mid);
    void acked_locked(std::string tag);  // mutex_ held

    mqtt_broker broker_;
    std::string client_id_;
    mosquitto* mosq_ = nullptr;
    FILE* log_ = nullptr;
    bool loop_started_ = false;

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    int connack_ = -1;
    std::size_t published_ = 0;
    std::unordered_map<int, std::string> in_flight_;  // mid -> tag
    std::set<int> early_;                             // PUBACK seen before the mid was known
    std::vector<std::string> acked_;
};

// ---- gateway messages and what the database must hold ---------------------------------

/// One unique gateway message for end-to-end tests: a sample from tests/data/samples.jsonl
/// that becomes a record (a 5.x envelope), with DeviceID and MessageID replaced, and the
/// columns it must be stored with.
struct gateway_message {
    std::string device_id;               // 8 characters: "T", the series, 6 base-36 digits
    std::string message_id;              // 4 characters from 0-9A-Z
    std::string bytes;                   // what is published
    std::string topic;                   // cluster_data.topic (the eventType)
    std::optional<std::string> message;  // cluster_data.payload
    std::optional<std::int64_t> hops;
    std::optional<std::int64_t> duck_type;
    std::optional<std::string> path;
    std::optional<std::string> origin;
    std::optional<std::string> destination;

    /// "device_id/message_id": how the tests match a message with its row.
    std::string key() const { return device_id + "/" + message_id; }
};

/// `count` (at most 36^4) messages made from the samples in turn, each with its own
/// DeviceID and MessageID; `series` (0-35) keeps the ids of different batches apart.
std::vector<gateway_message> make_gateway_messages(std::size_t count, int series = 0);

/// The raw bytes of the samples that must end in quarantine (expect.stored false).
std::vector<std::string> malformed_samples();

/// The .env variables for `opendms-field run` on database `db` and broker `b`, reading
/// `topic`, with a client id of its own and FIELD_NODE_ID `node_id`.
std::map<std::string, std::string> daemon_env(const db::connect_options& db, const mqtt_broker& b,
                                              const std::string& topic,
                                              const std::string& node_id = "test-node");

/// `opendms-field --env-file ENV migrate`; throws with its output when it fails.
void migrate_with_program(const std::string& env_file);

/// How many cluster_data rows each "duck_id/message_id" has.
std::map<std::string, int> stored_keys(db::connection& c);
/// SELECT COUNT(*) FROM `table` (throws on error).
std::int64_t count_rows(db::connection& c, const std::string& table);

}  // namespace opendms::test
