// system_rig: the whole pipeline as real processes, for the correctness matrix
// (tests/system, docs/reliability.md):
//
//   publisher ─MQTT QoS 1─► Mosquitto (shipped config) ─► opendms-field run (SQLite)
//        └─ logs every message the broker acknowledged     │ HTTP, through a link_proxy
//                                                          ▼   the test can cut
//                                      opendms-central serve ─► PostgreSQL (private, restartable)
//
// The verdict compares the publisher's log of acknowledged messages with the central's
// table: every acknowledged message must be there exactly once (each message carries a
// unique DeviceID/MessageID pair from make_gateway_messages). A row of the matrix
// (matrix_row) is appended to the results file that tests/system/reliability_table.py
// turns into docs/reliability.md.
//
// Scale: OPENDMS_MATRIX=long runs the documented long version; anything else the bounded
// one CI runs (scaled(bounded, long_count) picks).
// Errors: set-up failures throw std::runtime_error; checks are the test's (Catch2).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "central_process.hpp"
#include "link_proxy.hpp"
#include "mqtt_test_client.hpp"
#include "private_postgres.hpp"
#include "test_servers.hpp"

namespace opendms::test {

/// One row of the correctness table.
struct matrix_row {
    std::string scenario;  // "field daemon killed (kill -9) during ingest and push"
    std::string injected;  // what was done, with how: "kill -9 at random moments"
    int times = 0;         // how many times it was injected
    std::size_t published = 0;   // messages the broker acknowledged to the publisher
    std::size_t stored = 0;      // records in the field node's database
    std::size_t delivered = 0;   // acknowledged messages found at the central
    std::size_t duplicated = 0;  // of those, found more than once
    std::size_t lost = 0;        // acknowledged messages not found at the central
    std::string note;
};

/// True when OPENDMS_MATRIX=long.
bool long_matrix();
/// `bounded` in CI, `long_count` with OPENDMS_MATRIX=long.
int scaled(int bounded, int long_count);

/// Appends `row` as one JSON line to $OPENDMS_RELIABILITY_OUT (default
/// OPENDMS_BINARY_DIR/reliability/results.jsonl).
void record_row(const matrix_row& row);

/// The pipeline. Everything runs from `dir`; the destructor stops all of it.
class pipeline {
public:
    /// Starts PostgreSQL, Mosquitto and the central server, migrates both databases and
    /// writes the field node's .env (not started). `field_extra` adds or overrides field
    /// settings (CENTRAL_DMS_BACKOFF is 0.2,0.5,1 unless given).
    explicit pipeline(std::map<std::string, std::string> field_extra = {},
                      std::map<std::string, std::string> central_extra = {});
    ~pipeline();
    pipeline(const pipeline&) = delete;
    pipeline& operator=(const pipeline&) = delete;

    temp_dir& dir() { return *dir_; }
    private_postgres& postgres() { return *pg_; }
    private_broker& broker() { return *broker_; }
    central_server& central() { return *central_; }
    field_daemon& field() { return *field_; }
    link_proxy& link() { return *link_; }
    const std::string& field_db_path() const { return field_db_; }
    const std::string& field_env_file() const { return field_env_; }
    const std::string& topic() const { return topic_; }

    /// Publishes messages [from, from + count) of one series at QoS 1; returns after the
    /// broker acknowledged them all (throws after 120 s).
    void publish(std::size_t count, std::chrono::microseconds gap = std::chrono::microseconds(0));
    /// Published so far (and acknowledged).
    std::size_t published() const { return publisher_->acked(); }

    /// Waits until the central holds every acknowledged message and the field has nothing
    /// pending; false after `timeout`.
    bool wait_delivered(std::chrono::milliseconds timeout);

    /// Counts for a matrix row: published, stored (field), delivered, duplicated, lost.
    matrix_row verdict(const std::string& scenario, const std::string& injected, int times);

    /// Restarts the central server on the same port (the link keeps pointing at it).
    void restart_central();
    std::int64_t field_pending();
    std::int64_t central_rows();
    /// Everything the field daemon logged.
    std::string field_log() const { return field_->log(); }

private:
    std::unique_ptr<temp_dir> dir_;
    std::unique_ptr<private_postgres> pg_;
    std::unique_ptr<private_broker> broker_;
    std::unique_ptr<central_server> central_;
    std::unique_ptr<link_proxy> link_;
    std::unique_ptr<field_daemon> field_;
    std::unique_ptr<mqtt_publisher> publisher_;
    std::vector<gateway_message> messages_;
    std::string field_db_;
    std::string field_env_;
    std::string topic_;
    std::size_t next_ = 0;
    int central_port_ = 0;
};

}  // namespace opendms::test
