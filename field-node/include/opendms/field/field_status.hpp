// field_status: what `opendms-field status` reports, read from the database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/record.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

struct field_status {
    std::int64_t not_applicable = 0;  // cluster_data.synced IS NULL
    std::int64_t pending = 0;         // synced = false
    std::int64_t synced = 0;          // synced = true
    std::int64_t outbox_depth = 0;    // rows in outbox
    std::int64_t quarantined = 0;     // rows in quarantine
    std::int64_t duplicates = 0;      // rows in mesh_duplicates
    std::optional<std::int64_t> oldest_pending_age_seconds;  // now - oldest pending created_at
    // Delivery (hybrid mode): the outbox by lane, and the pusher's push_state row.
    std::int64_t parked = 0;   // outbox rows parked (the central rejected them)
    std::int64_t live = 0;     // unparked rows in lane 0
    std::int64_t backlog = 0;  // unparked rows in lane 1
    std::optional<std::string> protocol;          // "batch" | "single", as last detected
    std::int64_t consecutive_failures = 0;
    std::optional<unix_seconds> last_attempt_at;
    std::optional<unix_seconds> last_success_at;
    std::optional<std::string> last_error;
    std::optional<unix_seconds> next_attempt_at;
    std::optional<unix_seconds> auth_alarm_since;  // set: the central refuses our token
    std::int64_t bytes_sent = 0;
    std::int64_t bytes_received = 0;
    // Damaged databases kept aside at start-up (database_guard.hpp): the lasting alarm.
    std::vector<std::string> damaged_databases;
};

/// Reads the counts in one read transaction (a consistent snapshot): a single SELECT of
/// scalar subqueries, which every dialect answers from one snapshot, so no lock is taken
/// (the driver's begin() is SQLite's BEGIN IMMEDIATE, which would stall the ingest thread).
/// oldest_pending_age_seconds = now - min(created_at) over synced = false rows, 0 when that
/// created_at is in the future (clock set back), empty when nothing is pending (or every
/// pending row lacks created_at). Works on every dialect once migrated; a missing table
/// (not migrated) fails with the driver's error. errc::corrupt when the oldest created_at
/// is not a time. The push_state row is read by a second statement (it changes only when
/// an attempt ends). Any thread with its own connection; reads only.
result<field_status> read_status(db::connection& c, unix_seconds now);

/// One JSON object with the keys not_applicable, pending, synced, quarantined, duplicates,
/// oldest_pending_age_seconds (null when nothing is pending), outbox_depth, then parked,
/// live, backlog, protocol, consecutive_failures, last_attempt_at, last_success_at,
/// last_error, next_attempt_at, auth_alarm (true/false), auth_alarm_since, bytes_sent,
/// bytes_received (times as "YYYY-MM-DD HH:MM:SS" UTC, or null), damaged_databases (an
/// array of file names; filled by the caller). Written in that order,
/// on one line, without a trailing newline.
std::string to_json(const field_status& s);
/// Human-readable lines, one per count, each ending in a newline ("records pending: 3").
std::string to_text(const field_status& s);

}  // namespace opendms::field
