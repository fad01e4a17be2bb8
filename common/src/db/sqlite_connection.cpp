// The SQLite driver: one sqlite3 handle, statements cached by text (sqlite3_prepare_v3).
#include <sqlite3.h>

#include <cctype>
#include <filesystem>
#include <string>
#include <system_error>

#include "drivers.hpp"

namespace opendms::db::detail {
namespace {

errc classify(int extended) {
    if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return errc::conflict;
    }
    switch (extended & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            return errc::unavailable;
        case SQLITE_FULL:
        case SQLITE_IOERR:
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_PERM:
            return errc::io_error;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
            return errc::corrupt;
        case SQLITE_ERROR:
        case SQLITE_CONSTRAINT:
        case SQLITE_MISMATCH:
        case SQLITE_RANGE:
        case SQLITE_TOOBIG:
            return errc::invalid_argument;
        default:
            return errc::internal;
    }
}

// The synchronous level in upper case; empty when it is not one of SQLite's names.
std::string synchronous_level(const std::string& s) {
    std::string up;
    for (char c : s) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (up == "OFF" || up == "NORMAL" || up == "FULL" || up == "EXTRA") return up;
    return {};
}

value read_cell(sqlite3_stmt* stmt, int col) {
    switch (sqlite3_column_type(stmt, col)) {
        case SQLITE_INTEGER:
            return std::int64_t{sqlite3_column_int64(stmt, col)};
        case SQLITE_FLOAT:
            return sqlite3_column_double(stmt, col);
        case SQLITE_TEXT: {
            auto text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
            int bytes = sqlite3_column_bytes(stmt, col);
            return text ? std::string(text, static_cast<std::size_t>(bytes)) : std::string();
        }
        case SQLITE_BLOB: {
            auto blob = static_cast<const char*>(sqlite3_column_blob(stmt, col));
            int bytes = sqlite3_column_bytes(stmt, col);
            return blob ? std::string(blob, static_cast<std::size_t>(bytes)) : std::string();
        }
        default:
            return std::monostate{};
    }
}

// Resets a statement for its next use however the current one ends.
struct reset_on_exit {
    sqlite3_stmt* stmt;
    ~reset_on_exit() {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
};

class sqlite_connection final : public connection {
public:
    sqlite_connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
    ~sqlite_connection() override {
        for (sqlite3_stmt* s : cache_.take_all()) sqlite3_finalize(s);
        sqlite3_close_v2(db_);
    }

    dialect kind() const noexcept override { return dialect::sqlite; }
    std::size_t cached_statements() const noexcept override { return cache_.size(); }

    status configure(const connect_options& o);
    status fail(const std::string& what) const;

    status execute_script(std::string_view sql) override {
        return exec_plain(std::string(sql), "sqlite.script");
    }

    result<std::int64_t> exec(std::string_view sql, const std::vector<value>& params) override {
        return run(sql, params, nullptr, "sqlite.exec");
    }

    result<rows> query(std::string_view sql, const std::vector<value>& params) override {
        rows out;
        auto changed = run(sql, params, &out, "sqlite.query");
        if (!changed) return changed.error();
        return out;
    }

    result<std::int64_t> insert(std::string_view sql, const std::vector<value>& params) override {
        auto changed = run(sql, params, nullptr, "sqlite.insert");
        if (!changed) return changed.error();
        if (*changed == 0) return status(errc::not_found, "sqlite.insert: no row was inserted");
        return std::int64_t{sqlite3_last_insert_rowid(db_)};
    }

    // IMMEDIATE: a writer takes the write lock up front, so it waits (busy_timeout) at
    // BEGIN instead of failing with SQLITE_BUSY half-way through its work.
    status begin() override { return exec_plain("BEGIN IMMEDIATE", "sqlite.begin"); }
    status commit() override { return exec_plain("COMMIT", "sqlite.commit"); }
    status rollback() override {
        // SQLite itself rolls back on some errors (SQLITE_FULL, SQLITE_IOERR, ...).
        if (sqlite3_get_autocommit(db_)) return status::ok();
        return exec_plain("ROLLBACK", "sqlite.rollback");
    }

    result<bool> table_exists(std::string_view table) override {
        return any_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                       {std::string(table)}, "sqlite.table_exists");
    }
    result<bool> column_exists(std::string_view table, std::string_view column) override {
        return any_row("SELECT 1 FROM pragma_table_info(?) WHERE name = ?",
                       {std::string(table), std::string(column)}, "sqlite.column_exists");
    }

private:
    result<sqlite3_stmt*> prepare(std::string_view sql, const char* what);
    status bind(sqlite3_stmt* stmt, const std::vector<value>& params, const char* what);
    result<std::int64_t> run(std::string_view sql, const std::vector<value>& params, rows* out,
                             const char* what);
    status exec_plain(const std::string& sql, const char* what);

    result<bool> any_row(std::string_view sql, const std::vector<value>& params, const char* what) {
        auto r = query(sql, params);
        if (!r) return r.error().context(what);
        return !r->empty();
    }

    sqlite3* db_;
    std::string path_;
    statement_cache<sqlite3_stmt*> cache_{statement_cache_capacity};
};

status sqlite_connection::fail(const std::string& what) const {
    int code = sqlite3_extended_errcode(db_);
    return status(classify(code), what + ": " + sqlite3_errmsg(db_));
}

status sqlite_connection::exec_plain(const std::string& sql, const char* what) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) return fail(what);
    return status::ok();
}

result<sqlite3_stmt*> sqlite_connection::prepare(std::string_view sql, const char* what) {
    if (sqlite3_stmt** cached = cache_.find(sql)) return *cached;
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
    if (rc != SQLITE_OK) return fail(what);
    if (stmt == nullptr)
        return status(errc::invalid_argument, std::string(what) + ": empty statement");
    // A second statement would be silently ignored: refuse it (execute_script runs many).
    std::string_view rest(tail, static_cast<std::size_t>(sql.data() + sql.size() - tail));
    if (!is_blank_sql(rest)) {
        sqlite3_stmt* next = nullptr;
        sqlite3_prepare_v2(db_, rest.data(), static_cast<int>(rest.size()), &next, nullptr);
        bool more = next != nullptr;
        sqlite3_finalize(next);
        if (more) {
            sqlite3_finalize(stmt);
            return status(errc::invalid_argument,
                          std::string(what) + ": more than one statement (use execute_script)");
        }
    }
    if (auto evicted = cache_.put(std::string(sql), stmt)) sqlite3_finalize(*evicted);
    return stmt;
}

status sqlite_connection::bind(sqlite3_stmt* stmt, const std::vector<value>& params,
                               const char* what) {
    const int expected = sqlite3_bind_parameter_count(stmt);
    if (static_cast<std::size_t>(expected) != params.size()) {
        return status(errc::invalid_argument,
                      std::string(what) + ": " + std::to_string(params.size()) +
                          " parameters given, the statement has " + std::to_string(expected));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
        const int at = static_cast<int>(i) + 1;
        const value& v = params[i];
        int rc = SQLITE_OK;
        if (auto n = std::get_if<std::int64_t>(&v)) {
            rc = sqlite3_bind_int64(stmt, at, *n);
        } else if (auto d = std::get_if<double>(&v)) {
            rc = sqlite3_bind_double(stmt, at, *d);
        } else if (auto s = std::get_if<std::string>(&v)) {
            // STATIC: params outlive the statement's run; reset_on_exit unbinds them.
            rc = sqlite3_bind_text64(stmt, at, s->data(), s->size(), SQLITE_STATIC, SQLITE_UTF8);
        } else if (auto b = std::get_if<bool>(&v)) {
            rc = sqlite3_bind_int(stmt, at, *b ? 1 : 0);
        } else if (auto raw = std::get_if<blob>(&v)) {
            // data() is never null, so an empty blob binds as a zero-length BLOB, not NULL.
            rc = sqlite3_bind_blob64(stmt, at, raw->bytes.data(), raw->bytes.size(), SQLITE_STATIC);
        } else {
            rc = sqlite3_bind_null(stmt, at);
        }
        if (rc != SQLITE_OK) return fail(what);
    }
    return status::ok();
}

result<std::int64_t> sqlite_connection::run(std::string_view sql, const std::vector<value>& params,
                                            rows* out, const char* what) {
    auto prepared = prepare(sql, what);
    if (!prepared) return prepared.error();
    sqlite3_stmt* stmt = *prepared;
    reset_on_exit guard{stmt};
    if (status s = bind(stmt, params, what); !s) return s;
    // sqlite3_changes64 keeps the count of the last INSERT/UPDATE/DELETE; a statement
    // that changed nothing (DDL, SELECT) must report 0, not that stale count.
    const sqlite3_int64 before = sqlite3_total_changes64(db_);
    int columns = 0;
    for (bool first = true;; first = false) {
        int rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) return fail(what);
        // Columns are read after the first step: a schema change re-prepares the
        // statement there, and SELECT * may then have new columns.
        if (first && out) {
            columns = sqlite3_column_count(stmt);
            for (int c = 0; c < columns; ++c) {
                out->columns.emplace_back(sqlite3_column_name(stmt, c));
            }
        }
        if (rc == SQLITE_DONE) break;
        if (!out) continue;
        row r;
        r.cells.reserve(static_cast<std::size_t>(columns));
        for (int c = 0; c < columns; ++c) r.cells.push_back(read_cell(stmt, c));
        out->data.push_back(std::move(r));
    }
    if (sqlite3_total_changes64(db_) == before) return std::int64_t{0};
    return std::int64_t{sqlite3_changes64(db_)};
}

status sqlite_connection::configure(const connect_options& o) {
    const std::string where = "sqlite.open " + path_;
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, o.busy_timeout_ms);
    // The first read of the file: a non-database fails here with SQLITE_NOTADB.
    rows mode;
    if (auto r = run("PRAGMA journal_mode=WAL", {}, &mode, where.c_str()); !r) return r.error();
    std::string answer = mode.empty() ? "" : mode[0].get_text(0).value_or("");
    const bool in_memory = path_ == ":memory:" || answer == "memory";
    if (!in_memory && answer != "wal") {
        return status(errc::io_error, where + ": the file system refused journal_mode=WAL (got '" +
                                          answer + "'); put DB_DATABASE on a local disk");
    }
    // PRAGMA statements are not cached: they run once.
    for (sqlite3_stmt* s : cache_.take_all()) sqlite3_finalize(s);
    const std::string pragmas = "PRAGMA synchronous=" + synchronous_level(o.sqlite_synchronous) +
                                "; PRAGMA foreign_keys=ON;"
                                // After a checkpoint, cut the WAL back to 4 MiB: a burst
                                // (a migration, a big batch) must not keep a large WAL
                                // holding space on a gateway's small disk for ever.
                                " PRAGMA journal_size_limit=4194304;";
    if (status s = exec_plain(pragmas, where.c_str()); !s) return s;
    return status::ok();
}

}  // namespace

result<std::unique_ptr<connection>> open_sqlite(const connect_options& o) {
    const std::string& path = o.database;
    if (path.empty()) {
        return status(errc::invalid_argument, "sqlite.open: no database file given (DB_DATABASE)");
    }
    if (synchronous_level(o.sqlite_synchronous).empty()) {
        return status(errc::invalid_argument,
                      "sqlite.open: synchronous must be OFF, NORMAL, "
                      "FULL or EXTRA, not '" +
                          o.sqlite_synchronous + "'");
    }
    if (path != ":memory:") {
        std::filesystem::path dir = std::filesystem::path(path).parent_path();
        std::error_code ec;
        if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
            return status(errc::io_error, "sqlite.open " + path + ": the directory " +
                                              dir.string() + " does not exist");
        }
    }
    sqlite3* db = nullptr;
    int rc =
        sqlite3_open_v2(path.c_str(), &db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (db == nullptr) return status(errc::internal, "sqlite.open " + path + ": out of memory");
    auto conn = std::make_unique<sqlite_connection>(db, path);
    if (rc != SQLITE_OK) return conn->fail("sqlite.open " + path);
    if (status s = conn->configure(o); !s) return s;
    return std::unique_ptr<connection>(std::move(conn));
}

}  // namespace opendms::db::detail
