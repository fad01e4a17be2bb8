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
// batch is a duplicate of the first).
//
// Concurrent instances storing copies of one packet: each call classifies and inserts its
// records without locks, then locks the packet buckets of the records it inserted as
// originals (packet_lock_bucket: FNV-1a of duck_id NUL message_id, modulo
// packet_lock_buckets = 1024; deduplicated, taken in ascending order, and no lock holder
// ever waits for a row, so no deadlock),
// reads their neighbours again and, where another instance has committed an original of
// the same packet meanwhile, turns its own into that one's mesh duplicate (with every copy
// of it in the call) before committing. The locks order these checks, so of two instances
// the second always sees the first's commit; the first committed keeps the original. Only
// the check holds the locks, so concurrent calls insert side by side. A call of at most 64
// records (grouped single-record requests) takes its locks first instead (with BEGIN on
// PostgreSQL: no extra round trip, and no check); the two kinds order each other the same
// way, since a lock is always taken before the read that must see the other's commit.
//   - PostgreSQL: pg_advisory_xact_lock(pg_packet_lock_class, bucket), released by the
//     commit or rollback. A bucket is held by one transaction at a time, so at most 1024
//     such locks are held per database (plus one awaited per waiting call) however large
//     and many the batches: the server's shared lock table (max_locks_per_transaction x
//     max_connections entries) cannot run out ("out of shared memory");
//   - MySQL/MariaDB: GET_LOCK('opendms.<database>.<bucket>'), session locks released with
//     RELEASE_ALL_LOCKS() in the same round trip as the COMMIT (after a failure: after the
//     ROLLBACK). A lock not granted within lock_timeout (default 50 s) fails the call with
//     errc::unavailable;
//   - SQLite has one writer at a time: nothing to lock or check.
// mesh_window_s <= 0 takes no locks.
//
// Keys are stored lower-case: an upper-case uuid ("019C...") is the same UUID (RFC 9562)
// and is stored, and matched against stored rows, as its lower-case form on every dialect.
//
// Columns written: every record column; created_at = the record's (or now); updated_at =
// now; synced = NULL (not applicable on the central); synced_at = NULL; received_from =
// the node that delivered the record (NULL when empty); duplicate_of as above. Migration
// 2026_11_25_000008 adds received_from and duplicate_of.
//
// Speed: PostgreSQL stores a whole call with a fixed number of statements whatever its
// size: one BEGIN script (the plan settings and the timeouts, as SET LOCAL); one neighbour
// query over unnest() of array parameters (pg_array.hpp), one index probe of cluster_data
// per (duck_id, message_id) (a LATERAL subquery behind OFFSET 0, so the planner cannot
// turn it into a scan of the table); one `INSERT ... SELECT FROM unnest(...) ON CONFLICT
// (uuid) DO NOTHING RETURNING id, uuid` (a second one for copies of a packet first seen in
// the same call; an index lookup per uuid that someone else stored); the packet locks (one
// SELECT) and the neighbour query again for the originals; COMMIT. A large call (over 64
// records) runs with force_custom_plan: every execution is planned with its actual arrays,
// so no generic plan made while the table was small is reused. A small call (grouped
// single records) reuses the connection's generic plans once cluster_data's statistics
// count 1000 rows or more (enable_seqscan off): planning the combined statement anew cost
// several times its execution. Whether they do is asked before BEGIN, at most once a
// minute per database (generic_plan_memo). See begin_pgsql(). MySQL and SQLite use
// multi-row INSERTs (ON DUPLICATE KEY UPDATE uuid = uuid on MySQL) and `uuid IN (...)`
// lookups in chunks of fixed sizes (64, 8, 1) so that each connection caches at most a few
// statement texts.
//
// Deadlines: statement_timeout and lock_timeout bound each statement on PostgreSQL
// (SET LOCAL) and MariaDB (max_statement_time; innodb_lock_wait_timeout and the GET_LOCK
// timeout on MySQL and MariaDB); a statement cut off by them fails with errc::unavailable,
// the call is rolled back and may be retried.
//
// Failures: a record the database refuses as data (errc::invalid_argument on insert: too
// long, not storable) is found by retrying the call in chunks (64, 8, 1) under SAVEPOINTs,
// and gets outcome `refused` with the database's message (for the log: it is not meant for
// the sender); the others are stored. Before that, a plain probe record must be storable,
// or the fault is the database's (a missing table or column) and the call fails. Any other
// error (errc::unavailable: server down, deadlock, timeout; io_error) rolls back the whole
// call and is returned: nothing of the batch is stored, the client retries it all.
//
// Thread safety: one call at a time per connection (db_pool hands out connections).
// The connection must not be inside a transaction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/record.hpp"
#include "opendms/status.hpp"

namespace opendms::central {

/// PostgreSQL: whether cluster_data's statistics (pg_class.reltuples) counted 1000 rows or
/// more when last asked; small calls reuse generic plans only then (see begin_pgsql() in
/// central_store.cpp). The answer is kept for `max_age`, so that a small call does not ask
/// (or plan the question) in every transaction: the table grows, it rarely shrinks, and a
/// late answer costs only some slower plans meanwhile. One per database, shared by the
/// calls on it; thread-safe.
class generic_plan_memo {
public:
    using clock = std::chrono::steady_clock;
    explicit generic_plan_memo(std::chrono::milliseconds max_age) : max_age_(max_age) {}

    /// The answer kept, unless none was given or it is max_age old or older.
    std::optional<bool> get(clock::time_point now) const noexcept;
    void put(bool generic, clock::time_point now) noexcept;

private:
    static std::int64_t ms(clock::time_point t) noexcept;

    const std::chrono::milliseconds max_age_;
    std::atomic<std::int64_t> said_{-1};  // -1: nothing yet; else (ms(asked) << 1) | generic
};

struct store_options {
    /// See generic_plan_memo. Null: a small PostgreSQL call asks before every transaction.
    std::shared_ptr<generic_plan_memo> plans;
    std::int64_t mesh_window_s = 600;
    /// Longest any one statement may run (0: the server's default, normally none).
    std::chrono::milliseconds statement_timeout{0};
    /// Longest a statement may wait for a lock: a row, a packet bucket (0: the server's
    /// default; 50 s for MySQL's packet buckets).
    std::chrono::milliseconds lock_timeout{0};
};

/// The packet lock buckets (see above). Every instance sharing a database must agree on
/// both, so they are part of the contract and never change.
constexpr std::uint32_t packet_lock_buckets = 1024;
constexpr std::int32_t pg_packet_lock_class = 0x6f646d73;  // "odms"
/// FNV-1a (64 bit) of duck_id NUL message_id, modulo packet_lock_buckets.
std::uint32_t packet_lock_bucket(std::string_view duck_id, std::string_view message_id) noexcept;

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

/// One record to store and the node that delivered it; both borrowed for the call.
struct store_input {
    const cluster_data* record = nullptr;
    const std::string* received_from = nullptr;
};

/// Stores `records` (already validated) in one transaction; one outcome per record, in
/// order. `received_from`: the authenticated node name. `now`: the time of the request.
result<std::vector<store_outcome>> store_records(db::connection& c,
                                                 const std::vector<cluster_data>& records,
                                                 const std::string& received_from, unix_seconds now,
                                                 const store_options& options);

/// The same for records delivered by several nodes (requests stored together, see
/// store_group.hpp): each row's received_from is its input's.
result<std::vector<store_outcome>> store_records(db::connection& c,
                                                 const std::vector<store_input>& inputs,
                                                 unix_seconds now, const store_options& options);

}  // namespace opendms::central
