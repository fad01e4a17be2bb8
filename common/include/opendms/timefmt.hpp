// Time in the formats the databases and the wire use. All UTC, whole seconds.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "opendms/record.hpp"

namespace opendms {

/// "2026-02-27 10:00:00": the SQL text form (Laravel's Y-m-d H:i:s).
std::string format_sql_time(unix_seconds t);
/// "2026-02-27T10:00:00.000000Z": the form Laravel's JSON serialisation emits.
std::string format_iso8601(unix_seconds t);

/// Accepts "YYYY-MM-DD HH:MM:SS", "YYYY-MM-DDTHH:MM:SS" with optional fraction
/// (truncated) and optional "Z" or "+hh:mm"/"-hh:mm" offset (converted to UTC), and
/// "YYYY-MM-DD" (midnight). Rejects out-of-range fields (month 13, Feb 30, hour 24).
std::optional<unix_seconds> parse_time(std::string_view text);

}  // namespace opendms
