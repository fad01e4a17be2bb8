// central_store: stores validated records on the central database, exactly once, in ONE
// transaction per call (a batch of 1..max_batch_records).
//
// Identity (docs/wire-format.md, "The permanent key"):
//   - a record with a uuid (our field node) is stored once per uuid, for ever;
//   - a record without one (a seed field node) and WITH created_at gets a derived key:
//     derived_uuid(duck_id, message_id, created_at), a name-based UUIDv8 (RFC 9562) from
//     SHA-256, so a retried POST maps to the same uuid and the unique index
//     cluster_data_uuid_unique makes it idempotent even across several server instances.
//     Rows stored before our server (uuid NULL, e.g. by the Laravel central) are also
//     matched on (duck_id, message_id, created_at) AND uuid IS NULL.
//   - a seed record without created_at cannot be recognised when retried: it gets a fresh
//     UUIDv7 and created_at = now (documented limitation of the seed's wire form).
//   Never (duck_id, message_id) alone: MessageIDs are reused.
// Mesh duplicates: a NEW record (new uuid) with the same duck_id, message_id, payload and
// payload_encoding as an original (duplicate_of IS NULL) whose created_at is within
// mesh_window_s of its own (either side; edges inside) is stored as a full row with
// duplicate_of = that original's id (the oldest such), so that it is kept (its path and hops
// say which gateway heard it) but not counted twice. mesh_window_s <= 0 disables this.
// Within one call, earlier records of the same call are visible (a copy later in the
// batch is a duplicate of the first). On PostgreSQL, pg_advisory_xact_lock on a hash of
// (duck_id, message_id) (locks taken in sorted order, one statement) serialises concurrent
// instances that store copies of the same packet; on MySQL/SQLite this race is not closed
// (two instances storing two copies of one packet in the same instant may keep both as
// originals; docs/reliability notes).
//
// Columns written: every record column; created_at = the record's (or now); updated_at =
// now; synced = NULL (not applicable on the central); synced_at = NULL; received_from =
// the authenticated node; duplicate_of as above. Migration 2026_11_25_000008 adds
// received_from and duplicate_of.
//
// Speed: rows are inserted with multi-row INSERTs (ON CONFLICT (uuid) DO NOTHING on
// PostgreSQL and SQLite; ON DUPLICATE KEY UPDATE uuid = uuid on MySQL), in chunks of fixed
// sizes (64, 8, 1) so that each connection caches at most a few statement texts; lookups
// use `uuid IN (...)` in the same chunk sizes.
//
// Failures: a record the database refuses as data (errc::invalid_argument on insert: too
// long, not storable) is found by retrying that chunk row by row under SAVEPOINTs, and gets
// outcome `refused` with the database's message; the others are stored. Any other error
// (errc::unavailable: server down, deadlock; io_error) rolls back the whole call and is
// returned: nothing of the batch is stored, the client retries it all.
//
// Thread safety: one call at a time per connection (db_pool hands out connections).
// The connection must not be inside a transaction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/record.hpp"
#include "opendms/status.hpp"

namespace opendms::central {

struct store_options {
    std::int64_t mesh_window_s = 600;
};

enum class store_status {
    stored,          // a new row
    duplicate,       // this uuid (or seed key) was already stored: id is the existing row
    mesh_duplicate,  // stored as a new row linked to an original: id new, duplicate_of set
    refused,         // the database refused the values: reason set, nothing stored
};
/// "stored", "duplicate", "mesh_duplicate", "refused".
const char* store_status_name(store_status s) noexcept;

struct store_outcome {
    store_status status = store_status::stored;
    std::int64_t id = 0;            // the row's id (0 when refused)
    std::int64_t duplicate_of = 0;  // mesh_duplicate only
    std::string reason;             // refused only
};

/// The derived key of a record without uuid: UUIDv8 from SHA-256 of
/// duck_id NUL message_id NUL "YYYY-MM-DD HH:MM:SS"; lower-case 8-4-4-4-12.
std::string derived_uuid(const std::string& duck_id, const std::string& message_id,
                         unix_seconds created_at);

/// Stores `records` (already validated) in one transaction; one outcome per record, in
/// order. `received_from`: the authenticated node name. `now`: the time of the request.
result<std::vector<store_outcome>> store_records(db::connection& c,
                                                 const std::vector<cluster_data>& records,
                                                 const std::string& received_from,
                                                 unix_seconds now, const store_options& options);

}  // namespace opendms::central
