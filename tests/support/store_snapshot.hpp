// Helpers for tests that check what the ingest store wrote: queries that fail the test
// on error, row counts, and a full dump of the store's tables (SQLite) to compare a
// database before and after a failed operation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "opendms/db/database.hpp"

namespace opendms::test {

/// The tables the ingest store and the pusher write.
const std::vector<std::string>& store_tables();

/// Runs a query; a failure fails the test (Catch2 REQUIRE) with the SQL and the error.
db::rows query_ok(db::connection& c, const std::string& sql,
                  const std::vector<db::value>& params = {});

std::int64_t count(db::connection& c, const std::string& table);
/// count() of every store table.
std::map<std::string, std::int64_t> counts(db::connection& c);

/// Every row of every store table, and SQLite's AUTOINCREMENT high-water marks.
using snapshot = std::vector<std::vector<std::optional<std::string>>>;
snapshot dump_all(db::connection& c);

}  // namespace opendms::test
