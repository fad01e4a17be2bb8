// database_guard: a damaged field database never stops a gateway. At start-up the SQLite
// file is opened and checked (PRAGMA quick_check); when it is not a database, is
// truncated, or fails the check, it is renamed "<file>.damaged-<UTC time>" (with its -wal
// and -shm), a fresh database is created and migrated, and the alarm is logged. The kept
// file holds whatever was pending; an operator can salvage it (`sqlite3 FILE .recover`).
// `status` lists kept files (list_set_aside) as the lasting alarm.
//
// Cost: quick_check reads every page once (about 1 s per 100 MB on an SD card).
// Errors: the driver's status when the fresh database cannot be made (a full disk, a
// read-only directory): then the daemon stops with that error rather than loop.
// Threads: start-up only, before any other connection to the file is open.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

struct guard_report {
    std::optional<std::string> set_aside;  // the damaged file's new name, when it was moved
    std::string reason;                    // why it was judged damaged
};

/// Checks the SQLite file of `o` (which must exist); sets a damaged one aside and makes a
/// fresh, migrated database in its place. Not for server databases (returns an empty
/// report).
result<guard_report> guard_database(const db::connect_options& o, const clock& clk);

/// The files set aside next to the database of `o`, oldest first (names only).
std::vector<std::string> list_set_aside(const db::connect_options& o);

}  // namespace opendms::field
