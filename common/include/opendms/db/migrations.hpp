// Versioned migrations, tracked in Laravel's `migrations` table (id, migration, batch).
//
// Each migration is a name (Laravel's "YYYY_MM_DD_HHMMSS_what") with an up and a down
// script per dialect, kept in schema/<dialect>/<name>.up.sql and .down.sql and compiled
// into the binaries (schema_catalog). A database created by the Laravel OpenDMS already
// has the seed's rows in `migrations`, so its migrations are recognised as applied and
// only ours run. Names are applied in lexical order, which is date order.
//
// Transactions: on SQLite and PostgreSQL each migration and its `migrations` row commit
// together. MySQL commits DDL implicitly, so there a failed migration can leave part
// of its DDL behind (as with Laravel); the row is written only after the DDL succeeded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/status.hpp"

namespace opendms::db {

struct migration {
    std::string name;
    std::string up;
    std::string down;
};

/// The compiled-in migrations for a dialect, sorted by name.
const std::vector<migration>& schema_catalog(dialect d);

struct migration_state {
    std::string name;
    bool applied = false;
    std::int64_t batch = 0;  // 0 when not applied
};

class migrator {
public:
    /// `c` must outlive the migrator. `catalog` defaults to schema_catalog(c.kind()).
    explicit migrator(connection& c);
    migrator(connection& c, std::vector<migration> catalog);

    /// Applies every pending migration in one new batch. Returns the names applied.
    result<std::vector<std::string>> migrate();

    /// Rolls back the last batch, newest first. Returns the names rolled back.
    result<std::vector<std::string>> rollback_last_batch();

    /// Rolls back one applied migration by name (e.g. the seed's sync columns alone).
    /// errc::not_found when it is not applied or not known.
    status rollback_one(const std::string& name);

    /// Every known migration with its state, plus applied ones that are not in the
    /// catalog (e.g. Laravel's users/cache/jobs tables), in name order.
    result<std::vector<migration_state>> state();

    /// True when every catalog migration is applied.
    result<bool> is_current();

private:
    status ensure_table();
    connection& c_;
    std::vector<migration> catalog_;
};

}  // namespace opendms::db
