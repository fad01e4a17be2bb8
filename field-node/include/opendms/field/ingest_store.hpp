// ingest_store: makes one gateway message durable, in ONE transaction:
//   - parsed ok, new            -> a cluster_data row (+ its outbox entry in hybrid mode)
//   - parsed ok, mesh duplicate -> a mesh_duplicates row linked to the first copy
//   - not parseable             -> a quarantine row (raw bytes, MQTT topic, time, reason)
// When ingest() returns ok the transaction is committed (with synchronous=FULL: synced to
// disk), so the caller may acknowledge the message to the broker. On error nothing of the
// message was written and the caller must NOT acknowledge it.
//
// Records: created_at = updated_at = the receive time (clock); uuid = a new UUIDv7;
// source_node = the node id (NULL when empty); synced = NULL in production/offline, false
// in hybrid; the outbox entry (hybrid only) has lane 0 and created_at = the receive time.
// Mesh duplicate: same duck_id, message_id, payload (and payload_encoding) as a record
// stored within `duplicate_window_s` before now (compared with updated_at, the time the
// record was stored; the edge itself, updated_at = now - window, is inside; payloads are
// compared byte for byte on every dialect). A reused MessageID with other data, or older,
// is a new record. The mesh_duplicates row links the oldest such record, with the copy's
// receive time and hops. The window also makes redelivery idempotent: a message whose
// commit succeeded but whose ingest() reported an error (a server connection lost during
// COMMIT) comes back from the broker as a mesh duplicate, not a second record.
// Quarantine: the raw bytes exactly (a blob); the MQTT topic and the reason as storable
// text (invalid UTF-8 and NUL bytes become '?'; the topic cut to 255 bytes, never inside
// a character); received_at = the receive time. A parsed record that the database refuses
// as data (errc::invalid_argument from its INSERT: a value too long for its column, bytes
// its text type cannot hold) is rolled back and quarantined instead, with reason "the
// database refused the record: <error>": retrying cannot help, and an error would make
// the broker redeliver it forever.
//
// Errors: the driver's status with context ("ingest.store: insert record: sqlite.insert:
// database or disk is full"); errc::io_error / unavailable are retryable (disk full, server
// down). After any failure the transaction is rolled back, so nothing of the message is
// in the database (except an error from COMMIT on a server connection, where the commit
// may have happened: see the duplicate window above). The parser runs before BEGIN, so the
// write lock is held only for the SQL. Production mode (pgsql/mysql) runs the same code.
//
// Batches (ingest_writer): ingest_in_transaction() adds one message to a transaction the
// caller has begun and will commit, so that many messages share one commit. The same rows
// are written as by ingest(). The message runs under a SAVEPOINT: a record the database
// refuses is rolled back to it and quarantined, leaving the transaction's other messages
// alone. Any other error leaves the transaction unusable (SQLite rolls back by itself on a
// full disk, PostgreSQL refuses every statement after an error, a lost server connection
// discards it): the caller must roll back the whole transaction, so nothing of this
// message, or of the others added since begin(), is stored. The duplicate lookup runs on
// the same connection, so it sees the transaction's own uncommitted records: a second copy
// inside one batch is a mesh duplicate of the first.
//
// Thread safety: one ingest_store per thread, each with its own connection; the connection
// must not be inside a transaction when ingest() is called. prepare() is const and reads
// only the options and the clock: any thread may call it concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/clock.hpp"
#include "opendms/config/settings.hpp"
#include "opendms/db/database.hpp"
#include "opendms/field/gateway_message_parser.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

struct ingest_options {
    config::deployment_mode mode = config::deployment_mode::offline;
    std::string node_id;                    // source_node of new records
    std::int64_t duplicate_window_s = 600;  // 0 (or less) disables mesh-duplicate detection
    parse_limits limits;
};

enum class ingest_outcome { stored, mesh_duplicate, quarantined };
const char* ingest_outcome_name(ingest_outcome o) noexcept;

/// A message parsed and stamped with its receive time, ready for ingest_in_transaction().
/// Borrows nothing: the topic and bytes are passed again when it is stored.
struct prepared_message {
    parse_result parsed;
    std::int64_t received_ms = 0;  // the clock's now_ms() when prepared
};

/// One message of ingest_batch(): borrowed topic and bytes, the prepared message, and the
/// outcome, which ingest_batch() sets.
struct batch_entry {
    std::string_view topic;
    std::string_view bytes;
    prepared_message message;
    std::optional<result<ingest_outcome>> outcome;
};

/// What one ingest_batch() call did to the database.
struct batch_counts {
    std::uint64_t commits = 0;    // 0 or 1
    std::uint64_t rollbacks = 0;  // transactions rolled back (one per rerun, and a failure)
};

class ingest_store {
public:
    /// `c` and `clk` must outlive the store.
    ingest_store(db::connection& c, const clock& clk, ingest_options options);

    /// Parses and stores one message; see the file comment for what is committed.
    result<ingest_outcome> ingest(std::string_view mqtt_topic, std::string_view bytes);

    /// Parses the message and reads the clock; touches no database. Thread-safe.
    prepared_message prepare(std::string_view mqtt_topic, std::string_view bytes) const;
    /// A batch entry for ingest_batch(): `mqtt_topic` and `bytes` (borrowed: they must
    /// outlive it), prepared. Thread-safe.
    batch_entry entry(std::string_view mqtt_topic, std::string_view bytes) const;

    /// Adds one message to the caller's open transaction (see "Batches" above); nothing is
    /// committed. On error the caller must rollback() the whole transaction.
    result<ingest_outcome> ingest_in_transaction(std::string_view mqtt_topic,
                                                 std::string_view bytes,
                                                 const prepared_message& message);
    /// The same, preparing the message itself.
    result<ingest_outcome> ingest_in_transaction(std::string_view mqtt_topic,
                                                 std::string_view bytes);

    /// Stores the entries (prepared) in ONE transaction, in order, and sets each one's
    /// outcome: ok once the COMMIT succeeded. A message whose own statements fail gets its
    /// error, and the transaction is rolled back and run again without it, so one bad
    /// message never fails the others; a failed BEGIN or COMMIT fails every message still
    /// in the batch (nothing of them stored), with `context` before the error ("<context>:
    /// commit: ..."). The connection must not be in a transaction.
    batch_counts ingest_batch(const std::vector<batch_entry*>& entries,
                              const std::string& context = "ingest.batch");

private:
    db::connection& c_;
    const clock& clock_;
    ingest_options options_;
};

}  // namespace opendms::field
