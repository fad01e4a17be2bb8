// Private to the database layer: the three drivers' entry points and what they share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/status.hpp"

namespace opendms::db::detail {

result<std::unique_ptr<connection>> open_sqlite(const connect_options& options);
// Built into the driver modules (libopendms_db_pgsql.so, libopendms_db_mysql.so), which
// driver_loader.cpp loads with dlopen() the first time DB_CONNECTION asks for them: a
// field node on SQLite never maps libpq or Connector/C and the libraries behind them.
result<std::unique_ptr<connection>> open_pgsql(const connect_options& options);
result<std::unique_ptr<connection>> open_mysql(const connect_options& options);

/// What a driver module hands the loader: its entry point, and what it was built with,
/// so that a module from another build is refused instead of called.
struct driver_entry {
    const char* version;            // OPENDMS_VERSION
    std::size_t options_size;       // sizeof(connect_options)
    std::size_t connection_size;    // sizeof(result<std::unique_ptr<connection>>)
    result<std::unique_ptr<connection>> (*open)(const connect_options& options);
};

/// Loads the driver module `file` and checks that it is the `name` driver ("pgsql",
/// "mysql") of this build. A bare file name is looked for as dlopen() does, then in the
/// program's own search path. The error says which DB_CONNECTION needed it, the file, why
/// it failed and the fix. The module stays loaded until the process exits.
result<const driver_entry*> load_driver_module(const std::string& file, const char* name);

/// Defines a module's one exported symbol, `opendms_db_driver_<name>`, which the loader
/// looks up with dlsym(); everything else in a module is hidden.
#define OPENDMS_DB_DRIVER(name, function)                                               \
    extern "C" __attribute__((visibility("default"))) const ::opendms::db::detail::driver_entry* \
    opendms_db_driver_##name() {                                                        \
        static const ::opendms::db::detail::driver_entry entry = {                      \
            OPENDMS_VERSION, sizeof(::opendms::db::connect_options),                    \
            sizeof(::opendms::result<std::unique_ptr<::opendms::db::connection>>), &function}; \
        return &entry;                                                                  \
    }

struct rewritten_sql {
    std::string text;        // the statement with $1..$n
    std::size_t params = 0;  // how many placeholders were rewritten
};

/// PostgreSQL form of a `?` statement: each `?` becomes `$1`, `$2`, ... in order, except
/// inside '...' literals (including E'..\'..'), "..." identifiers, -- line comments and
/// /* */ block comments (nested as PostgreSQL nests them). Dollar-quoted strings are not
/// recognised: do not put `?` in them.
rewritten_sql rewrite_placeholders(std::string_view sql);

/// The statement without trailing white space and semicolons (to append RETURNING id).
std::string_view trim_statement_end(std::string_view sql);

/// True when the text holds nothing but white space and semicolons.
bool is_blank_sql(std::string_view sql) noexcept;

/// Shortest decimal text that reads back as the same double ("0.1", "1e+300").
/// Infinities and NaN as "Infinity", "-Infinity", "NaN".
std::string format_double(double v);

/// "host:port/database" for error messages.
std::string describe_target(const connect_options& options, int default_port);

/// How many prepared statements a connection keeps; past it the least recently used
/// is released (dynamic SQL must not grow a connection without bound).
inline constexpr std::size_t statement_cache_capacity = 256;

/// Prepared statements of one connection by SQL text, least recently used first out.
/// Handles are plain values; the owner releases what put()/take_all() hand back.
template <typename Handle>
class statement_cache {
public:
    explicit statement_cache(std::size_t capacity) : capacity_(capacity) {}
    statement_cache(const statement_cache&) = delete;
    statement_cache& operator=(const statement_cache&) = delete;

    /// The handle for `sql`, now the most recently used; nullptr when absent.
    Handle* find(std::string_view sql) {
        auto it = index_.find(sql);
        if (it == index_.end()) return nullptr;
        lru_.splice(lru_.begin(), lru_, it->second);
        return &it->second->second;
    }

    /// Caches `h` under `sql` (which must be absent). Returns the handle evicted to make
    /// room, for the caller to release.
    std::optional<Handle> put(std::string sql, Handle h) {
        std::optional<Handle> evicted;
        if (!lru_.empty() && lru_.size() >= capacity_) {
            auto& oldest = lru_.back();
            index_.erase(std::string_view(oldest.first));
            evicted = std::move(oldest.second);
            lru_.pop_back();
        }
        lru_.emplace_front(std::move(sql), std::move(h));
        index_.emplace(std::string_view(lru_.front().first), lru_.begin());
        return evicted;
    }

    /// Removes the entry for `sql` and returns its handle.
    std::optional<Handle> take(std::string_view sql) {
        auto it = index_.find(sql);
        if (it == index_.end()) return std::nullopt;
        Handle h = std::move(it->second->second);
        auto node = it->second;
        index_.erase(it);
        lru_.erase(node);
        return h;
    }

    /// Empties the cache, returning every handle.
    std::vector<Handle> take_all() {
        std::vector<Handle> all;
        all.reserve(lru_.size());
        for (auto& e : lru_) all.push_back(std::move(e.second));
        index_.clear();
        lru_.clear();
        return all;
    }

    std::size_t size() const noexcept { return lru_.size(); }

private:
    using entry = std::pair<std::string, Handle>;
    std::size_t capacity_;
    std::list<entry> lru_;  // front: most recently used
    // Keys view the strings held by lru_'s nodes, which never move.
    std::unordered_map<std::string_view, typename std::list<entry>::iterator> index_;
};

}  // namespace opendms::db::detail
