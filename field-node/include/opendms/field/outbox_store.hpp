// outbox_store: the pusher's side of the outbox, on the field node's SQLite database
// (hybrid mode is SQLite only; the SQL uses SQLite's json_each for id lists).
//
// Lanes: ingest queues every record in lane 0 (live). demote() moves the rows of lane 0
// older than the live window to lane 1 (backlog). next_batch() takes lane 0 newest first,
// then fills up from lane 1 oldest first: a fresh SOS goes out in the first request after
// the link returns, and the backlog drains in the order it was received. Parked rows
// (parked_at set) are never taken until requeue().
//
// settle() is the one write after an attempt, in ONE transaction:
//   delivered -> cluster_data.synced = true, synced_at = now; the outbox row deleted;
//   parked    -> parked_at = now, parked_reason, attempts + 1, last_attempt_at, last_error;
//                the record stays synced = false;
//   failed    -> attempts + 1, last_attempt_at, last_error, next_attempt_at (kept in order);
//   and the push_state row. A crash before the commit leaves everything as before the
//   attempt, so the records are sent again: the central stores each uuid once.
//
// Memory: next_batch() reads at most `max` rows; nothing else loads more than one row.
// Errors: the driver's status with context ("outbox.settle: sqlite.exec: database is
// locked"); after a failure the transaction is rolled back.
// Thread safety: one outbox_store per thread, each with its own connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/field/push_batch.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

/// The push_state row (migration 2026_11_25_000009): what `status` shows about delivery.
struct push_state_row {
    std::optional<std::string> protocol;  // "batch" | "single", as last detected
    std::int64_t consecutive_failures = 0;
    std::optional<unix_seconds> last_attempt_at;
    std::optional<unix_seconds> last_success_at;
    std::optional<std::string> last_error;
    std::optional<unix_seconds> next_attempt_at;
    std::optional<unix_seconds> auth_alarm_at;  // set while the central refuses our token
    std::int64_t bytes_sent = 0;
    std::int64_t bytes_received = 0;
};

/// The outcome of one attempt, for settle().
struct settlement {
    std::vector<const outbox_item*> delivered;
    std::vector<std::pair<const outbox_item*, std::string>> parked;  // with the reason
    std::vector<const outbox_item*> failed;                          // kept for a later attempt
    std::string error;                          // failed: their last_error
    std::optional<unix_seconds> next_attempt_at;  // failed: their next_attempt_at
    push_state_row state;                       // saved in the same transaction
};

class outbox_store {
public:
    /// `c` (SQLite) and `clk` must outlive the store.
    outbox_store(db::connection& c, const clock& clk);

    /// Queues pending records that have no outbox row (a database the Laravel field node
    /// made, whose queue was its `jobs` table; or records set back to synced = false by
    /// hand) in lane 1. Returns how many were queued.
    result<std::int64_t> adopt_orphans();

    /// Moves unparked lane-0 rows queued before `cutoff` to lane 1; returns how many.
    result<std::int64_t> demote(unix_seconds cutoff);

    /// Up to `max` unparked rows with their records: lane 0 newest first, then lane 1
    /// oldest first; outbox rows listed in `skip` (those already in flight) are passed over.
    result<std::vector<outbox_item>> next_batch(std::size_t max,
                                                const std::vector<std::int64_t>& skip = {});

    /// Writes one attempt's outcome (see the file comment).
    status settle(const settlement& s);

    /// The push_state row; a default row when there is none yet.
    result<push_state_row> load_state();
    /// Saves the push_state row alone (one small transaction).
    status save_state(const push_state_row& state);

    /// Un-parks parked rows (all, or the one of cluster_data id `record_id`): parked_at and
    /// parked_reason cleared, attempts reset, moved to lane 1. Returns how many.
    result<std::int64_t> requeue(std::optional<std::int64_t> record_id);

private:
    status save_state_in_transaction(const push_state_row& state);

    db::connection& c_;
    const clock& clock_;
};

}  // namespace opendms::field
