// ingest_store: makes one gateway message durable, in ONE transaction:
//   - parsed ok, new            -> a cluster_data row (+ its outbox entry in hybrid mode)
//   - parsed ok, mesh duplicate -> a mesh_duplicates row linked to the first copy
//   - not parseable             -> a quarantine row (raw bytes, MQTT topic, time, reason)
// When ingest() returns ok the transaction is committed (with synchronous=FULL: synced to
// disk), so the caller may acknowledge the message to the broker. On error nothing of the
// message was written and the caller must NOT acknowledge it.
//
// Records: created_at = updated_at = the receive time (clock); uuid = a new UUIDv7;
// source_node = the node id; synced = NULL in production/offline, false in hybrid.
// Mesh duplicate: same duck_id, message_id, payload (and payload_encoding) as a record
// stored within `duplicate_window_s` before now (compared with updated_at, the time the
// record was stored). A reused MessageID with other data, or older, is a new record.
//
// Thread safety: one ingest_store per thread, each with its own connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "opendms/clock.hpp"
#include "opendms/config/settings.hpp"
#include "opendms/db/database.hpp"
#include "opendms/field/gateway_message_parser.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

struct ingest_options {
    config::deployment_mode mode = config::deployment_mode::offline;
    std::string node_id;                    // source_node of new records
    std::int64_t duplicate_window_s = 600;  // 0 disables mesh-duplicate detection
    parse_limits limits;
};

enum class ingest_outcome { stored, mesh_duplicate, quarantined };
const char* ingest_outcome_name(ingest_outcome o) noexcept;

class ingest_store {
public:
    /// `c` and `clk` must outlive the store.
    ingest_store(db::connection& c, const clock& clk, ingest_options options);

    /// Parses and stores one message; see the file comment for what is committed.
    result<ingest_outcome> ingest(std::string_view mqtt_topic, std::string_view bytes);

private:
    db::connection& c_;
    const clock& clock_;
    ingest_options options_;
};

}  // namespace opendms::field
