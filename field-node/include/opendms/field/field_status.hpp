// field_status: what `opendms-field status` reports, read from the database.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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
};

/// Reads the counts in one read transaction (a consistent snapshot).
result<field_status> read_status(db::connection& c, unix_seconds now);

/// One JSON object with at least the keys not_applicable, pending, synced, quarantined,
/// duplicates, oldest_pending_age_seconds (null when nothing is pending), outbox_depth.
std::string to_json(const field_status& s);
/// Human-readable lines.
std::string to_text(const field_status& s);

}  // namespace opendms::field
