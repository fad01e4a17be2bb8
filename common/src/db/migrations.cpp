#include "opendms/db/migrations.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <stdexcept>
#include <utility>

#include "embedded_schema.hpp"

namespace opendms::db {

// ---- the catalog ------------------------------------------------------------------------

namespace detail {
namespace {

constexpr std::array<dialect, 3> all_dialects{dialect::sqlite, dialect::pgsql, dialect::mysql};

struct scripts {
    std::string up;
    std::string down;
    bool has_up = false;
    bool has_down = false;
};

using dialect_files = std::map<std::string, std::map<std::string, scripts>>;  // dialect, name

dialect_files group_files(const std::vector<embedded_sql>& files, std::string& problems) {
    dialect_files grouped;
    for (const embedded_sql& f : files) {
        scripts& s = grouped[f.dialect][f.name];
        const bool up = std::strcmp(f.direction, "up") == 0;
        if (!up && std::strcmp(f.direction, "down") != 0) {
            problems += std::string(" ") + f.dialect + "/" + f.name + "." + f.direction +
                        ".sql (direction must be up or down);";
            continue;
        }
        (up ? s.up : s.down) = f.sql;
        (up ? s.has_up : s.has_down) = true;
    }
    return grouped;
}

bool blank(const std::string& sql) {
    return sql.find_first_not_of(" \t\r\n") == std::string::npos;
}

void check_complete(const dialect_files& grouped, std::string& problems) {
    for (const auto& entry : grouped) {
        if (!parse_dialect(entry.first)) problems += " " + entry.first + " is not a dialect;";
    }
    std::map<std::string, int> dialects_having;  // name -> how many dialects have it
    for (dialect d : all_dialects) {
        auto it = grouped.find(dialect_name(d));
        if (it == grouped.end()) continue;
        for (const auto& [name, s] : it->second) {
            ++dialects_having[name];
            const std::string where = std::string(" ") + dialect_name(d) + "/" + name;
            if (!s.has_up || blank(s.up)) problems += where + ".up.sql is missing or empty;";
            if (!s.has_down || blank(s.down)) problems += where + ".down.sql is missing or empty;";
        }
    }
    for (const auto& [name, count] : dialects_having) {
        if (count != static_cast<int>(all_dialects.size())) {
            problems += " " + name + " is not in every dialect;";
        }
    }
}

}  // namespace

std::vector<migration> build_catalog(const std::vector<embedded_sql>& files, dialect d) {
    std::string problems;
    const dialect_files grouped = group_files(files, problems);
    check_complete(grouped, problems);
    if (!problems.empty()) throw std::logic_error("schema catalog:" + problems);

    std::vector<migration> catalog;
    auto it = grouped.find(dialect_name(d));
    if (it == grouped.end()) return catalog;
    for (const auto& [name, s] : it->second) catalog.push_back({name, s.up, s.down});
    return catalog;  // std::map iteration: already in name order
}

}  // namespace detail

const std::vector<migration>& schema_catalog(dialect d) {
    static const std::array<std::vector<migration>, 3> catalogs{
        detail::build_catalog(detail::embedded_schema(), dialect::sqlite),
        detail::build_catalog(detail::embedded_schema(), dialect::pgsql),
        detail::build_catalog(detail::embedded_schema(), dialect::mysql)};
    switch (d) {
        case dialect::sqlite:
            return catalogs[0];
        case dialect::pgsql:
            return catalogs[1];
        case dialect::mysql:
            return catalogs[2];
    }
    throw std::logic_error("schema_catalog: unknown dialect");
}

// ---- the runner -------------------------------------------------------------------------

namespace {

using applied_map = std::map<std::string, std::int64_t>;  // migration name -> batch

// Laravel's own `migrations` table, column for column, so that either program reads it.
const char* create_migrations_table_sql(dialect d) {
    switch (d) {
        case dialect::sqlite:
            return R"(create table "migrations" ("id" integer primary key autoincrement not null, )"
                   R"("migration" varchar not null, "batch" integer not null))";
        case dialect::pgsql:
            return R"(create table "migrations" ("id" serial not null primary key, )"
                   R"("migration" varchar(255) not null, "batch" integer not null))";
        case dialect::mysql:
            return "create table `migrations` (`id` int unsigned not null auto_increment primary "
                   "key, `migration` varchar(255) not null, `batch` int not null) default "
                   "character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB";
    }
    return "";
}

status hand_made_error() {
    return {errc::conflict,
            "cluster_data exists but the migrations table does not: this database was not "
            "made by OpenDMS (or Laravel) migrations, so which of them it holds is unknown; "
            "refusing to guess. Create the database anew, or add the migrations table and the "
            "rows of the migrations it already has by hand"};
}

/// The applied migrations. A database without the `migrations` table has none, unless
/// it holds cluster_data, which is refused (hand_made_error).
result<applied_map> read_applied(connection& c) {
    auto has_table = c.table_exists("migrations");
    if (!has_table) return has_table.error();
    if (!*has_table) {
        auto has_data = c.table_exists("cluster_data");
        if (!has_data) return has_data.error();
        if (*has_data) return hand_made_error();
        return applied_map{};
    }
    auto rows = c.query("select migration, batch from migrations");
    if (!rows) return rows.error();
    applied_map applied;
    for (const row& r : rows->data) {
        auto name = r.get_text(0);
        auto batch = r.get_int(1);
        if (!name || !batch) return status(errc::corrupt, "migrations table has a NULL row");
        applied[*name] = *batch;
    }
    return applied;
}

status check_foreign_keys(connection& c) {
    auto violations = c.query("PRAGMA foreign_key_check");
    if (!violations) return violations.error().context("foreign_key_check");
    if (violations->empty()) return status::ok();
    const row& first = (*violations)[0];
    return {errc::conflict,
            "foreign_key_check: " + std::to_string(violations->size()) +
                " row(s) would break a foreign key (first: " + first.get_text(0).value_or("?") +
                " rowid " + first.get_text(1).value_or("?") + " -> " +
                first.get_text(2).value_or("?") + ")"};
}

/// Runs one migration's script and writes (or deletes) its row in `migrations`.
status run_script_and_record(connection& c, const migration& m, bool up, std::int64_t batch) {
    if (status s = c.execute_script(up ? m.up : m.down); !s) return s;
    if (up) {
        auto n = c.exec("insert into migrations (migration, batch) values (?, ?)", {m.name, batch});
        return n ? status::ok() : n.error();
    }
    auto n = c.exec("delete from migrations where migration = ?", {m.name});
    if (!n) return n.error();
    if (*n == 0) return {errc::conflict, "its migrations row vanished while rolling back"};
    return status::ok();
}

// SQLite: a table rebuild (create new, copy, drop, rename) must run with foreign keys
// off, or the DROP TABLE deletes every referencing outbox row. The pragma is a no-op
// inside a transaction, so it is switched around the transaction, and the result is
// checked with foreign_key_check before the commit, as SQLite's documentation asks.
status run_sqlite_step(connection& c, const migration& m, bool up, std::int64_t batch) {
    auto fk = c.query("PRAGMA foreign_keys");
    if (!fk) return fk.error();
    const bool fk_on = !fk->empty() && (*fk)[0].get_int(0).value_or(0) != 0;
    if (fk_on) {
        if (status s = c.execute_script("PRAGMA foreign_keys = OFF"); !s) return s;
        auto now = c.query("PRAGMA foreign_keys");
        if (!now) return now.error();
        if (!now->empty() && (*now)[0].get_int(0).value_or(0) != 0) {
            return {errc::internal,
                    "cannot turn foreign keys off (is the connection inside a transaction?)"};
        }
    }
    status s = in_transaction(c, [&]() -> status {
        if (status r = run_script_and_record(c, m, up, batch); !r) return r;
        return fk_on ? check_foreign_keys(c) : status::ok();
    });
    if (fk_on) {
        status restore = c.execute_script("PRAGMA foreign_keys = ON");
        if (s && !restore) return restore;
    }
    return s;
}

status run_step(connection& c, const migration& m, bool up, std::int64_t batch) {
    switch (c.kind()) {
        case dialect::sqlite:
            return run_sqlite_step(c, m, up, batch);
        case dialect::pgsql:
            return in_transaction(c, [&] { return run_script_and_record(c, m, up, batch); });
        case dialect::mysql:
            // DDL commits implicitly: the row follows the DDL that succeeded.
            return run_script_and_record(c, m, up, batch);
    }
    return {errc::internal, "unknown dialect"};
}

/// Serialises migrators across processes on the servers (several central instances may
/// start at once). SQLite needs none: each step is one write transaction, and a second
/// migrator fails on the first step the other already did, leaving nothing behind.
class migration_lock {
public:
    explicit migration_lock(connection& c) : c_(c) {}
    migration_lock(const migration_lock&) = delete;
    migration_lock& operator=(const migration_lock&) = delete;
    ~migration_lock() {
        if (!held_) return;
        if (c_.kind() == dialect::pgsql) {
            (void)c_.query("select pg_advisory_unlock(31354143665645927)");
        } else {
            (void)c_.query("select release_lock(concat('opendms_migrations:', database()))");
        }
    }

    status acquire() {
        if (c_.kind() == dialect::sqlite) return status::ok();
        if (c_.kind() == dialect::pgsql) {
            // A fixed key ("odmsmig" in ASCII); advisory locks are per database.
            auto r = c_.query("select pg_advisory_lock(31354143665645927)");
            if (!r) return r.error().context("migration lock");
            held_ = true;
            return status::ok();
        }
        auto r = c_.query("select get_lock(concat('opendms_migrations:', database()), 3600)");
        if (!r) return r.error().context("migration lock");
        if (r->empty() || r->data[0].get_int(0).value_or(0) != 1) {
            return {errc::unavailable, "migration lock: another migrator held it for an hour"};
        }
        held_ = true;
        return status::ok();
    }

private:
    connection& c_;
    bool held_ = false;
};

std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

}  // namespace

migrator::migrator(connection& c) : c_(c), catalog_(schema_catalog(c.kind())) {}

migrator::migrator(connection& c, std::vector<migration> catalog)
    : c_(c), catalog_(std::move(catalog)) {
    std::sort(catalog_.begin(), catalog_.end(),
              [](const migration& a, const migration& b) { return a.name < b.name; });
    auto dup =
        std::adjacent_find(catalog_.begin(), catalog_.end(),
                           [](const migration& a, const migration& b) { return a.name == b.name; });
    if (dup != catalog_.end()) throw std::logic_error("migrator: duplicate migration " + dup->name);
}

status migrator::ensure_table() {
    auto has_table = c_.table_exists("migrations");
    if (!has_table) return has_table.error();
    if (*has_table) return status::ok();
    auto has_data = c_.table_exists("cluster_data");
    if (!has_data) return has_data.error();
    if (*has_data) return hand_made_error();
    return c_.execute_script(create_migrations_table_sql(c_.kind()));
}

result<std::vector<std::string>> migrator::migrate() {
    migration_lock lock(c_);
    if (status s = lock.acquire(); !s) return s.context("migrate");
    if (status s = ensure_table(); !s) return s.context("migrate");
    auto applied = read_applied(c_);
    if (!applied) return applied.error().context("migrate");

    std::int64_t batch = 0;
    for (const auto& entry : *applied) batch = std::max(batch, entry.second);
    ++batch;

    std::vector<std::string> done;
    for (const migration& m : catalog_) {
        if (applied->count(m.name)) continue;
        if (status s = run_step(c_, m, true, batch); !s) {
            status e = s.context("migrate " + m.name);
            if (done.empty()) return e;
            return status(e.code(), e.message() + " (applied before it, in batch " +
                                        std::to_string(batch) + ": " + join(done) + ")");
        }
        done.push_back(m.name);
    }
    return done;
}

result<std::vector<std::string>> migrator::rollback_last_batch() {
    migration_lock lock(c_);
    if (status s = lock.acquire(); !s) return s.context("rollback");
    auto applied = read_applied(c_);
    if (!applied) return applied.error().context("rollback");
    if (applied->empty()) return std::vector<std::string>{};

    std::int64_t batch = 0;
    for (const auto& entry : *applied) batch = std::max(batch, entry.second);
    std::vector<const migration*> steps;  // newest first
    for (auto it = applied->rbegin(); it != applied->rend(); ++it) {
        if (it->second != batch) continue;
        auto known = std::find_if(catalog_.begin(), catalog_.end(),
                                  [&](const migration& m) { return m.name == it->first; });
        if (known == catalog_.end()) {
            return status(errc::not_found,
                          "rollback: batch " + std::to_string(batch) + " holds " + it->first +
                              ", which this program does not know (a Laravel migration?): "
                              "nothing rolled back");
        }
        steps.push_back(&*known);
    }

    std::vector<std::string> done;
    for (const migration* m : steps) {
        if (status s = run_step(c_, *m, false, batch); !s) {
            status e = s.context("rollback " + m->name);
            if (done.empty()) return e;
            return status(e.code(), e.message() + " (rolled back before it: " + join(done) + ")");
        }
        done.push_back(m->name);
    }
    return done;
}

status migrator::rollback_one(const std::string& name) {
    migration_lock lock(c_);
    if (status s = lock.acquire(); !s) return s.context("rollback " + name);
    auto applied = read_applied(c_);
    if (!applied) return applied.error().context("rollback " + name);
    auto row = applied->find(name);
    if (row == applied->end()) return {errc::not_found, "rollback " + name + ": not applied"};
    auto known = std::find_if(catalog_.begin(), catalog_.end(),
                              [&](const migration& m) { return m.name == name; });
    if (known == catalog_.end()) {
        return {errc::not_found, "rollback " + name + ": not a migration this program knows"};
    }
    return run_step(c_, *known, false, row->second).context("rollback " + name);
}

result<std::vector<migration_state>> migrator::state() {
    auto applied = read_applied(c_);
    if (!applied) return applied.error().context("migration state");
    std::map<std::string, migration_state> all;
    for (const migration& m : catalog_) all[m.name] = {m.name, false, 0};
    for (const auto& [name, batch] : *applied) all[name] = {name, true, batch};
    std::vector<migration_state> out;
    out.reserve(all.size());
    for (auto& entry : all) out.push_back(std::move(entry.second));
    return out;
}

result<bool> migrator::is_current() {
    auto applied = read_applied(c_);
    if (!applied) return applied.error().context("migration state");
    for (const migration& m : catalog_) {
        if (!applied->count(m.name)) return false;
    }
    return true;
}

}  // namespace opendms::db
