// database_guard: check at start-up, set a damaged file aside (see database_guard.hpp).
#include "opendms/field/database_guard.hpp"

#include <dirent.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "opendms/db/migrations.hpp"
#include "opendms/log.hpp"
#include "opendms/timefmt.hpp"

namespace opendms::field {
namespace {

constexpr const char* marker = ".damaged-";

std::string dir_of(const std::string& path) {
    std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
    std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// Why the database is unusable, or "" when it is fine. Read-only, through SQLite itself,
/// so that judging never changes the file (no checkpoint of its WAL on close).
std::string judge(const db::connect_options& o) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(o.database.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    std::string why;
    auto damaged = [](int code) {
        const int primary = code & 0xff;
        return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
    };
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, o.busy_timeout_ms);
        sqlite3_stmt* st = nullptr;
        rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, nullptr);
        if (rc == SQLITE_OK) rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const char* verdict = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
            if (verdict == nullptr || std::strcmp(verdict, "ok") != 0) {
                why = std::string("PRAGMA quick_check: ") + (verdict ? verdict : "no answer");
            }
        } else if (damaged(rc)) {
            why = sqlite3_errmsg(db);
        }
        sqlite3_finalize(st);
    } else if (damaged(rc)) {
        why = sqlite3_errstr(rc);
    }
    sqlite3_close(db);
    return why;
}

/// Whether `aside` or its WAL or shared-memory companion is already there.
bool taken(const std::string& aside) {
    struct stat st {};
    for (const char* suffix : {"", "-wal", "-shm"}) {
        if (::lstat((aside + suffix).c_str(), &st) == 0) return true;
    }
    return false;
}

status move(const std::string& from, const std::string& to) {
    if (::rename(from.c_str(), to.c_str()) == 0 || errno == ENOENT) return status::ok();
    return status(errc::io_error, "rename " + from + " to " + to + ": " + std::strerror(errno));
}

}  // namespace

result<guard_report> guard_database(const db::connect_options& o, const clock& clk) {
    guard_report report;
    if (o.kind != db::dialect::sqlite || o.database == ":memory:") return report;
    report.reason = judge(o);
    if (report.reason.empty()) return report;

    std::string stamp = format_iso8601(clk.now()).substr(0, 19);  // 2026-12-03T10:00:00
    stamp.erase(std::remove(stamp.begin(), stamp.end(), ':'), stamp.end());
    // Never over an earlier set-aside file: two damaged databases within one second (a
    // crash loop of the card, a clock stuck at 1970) each keep their own name.
    std::string aside = o.database + marker + stamp + "Z";
    for (int n = 2; taken(aside); ++n) {
        aside = o.database + marker + stamp + "Z-" + std::to_string(n);
    }
    for (const char* suffix : {"", "-wal", "-shm"}) {
        if (status s = move(o.database + suffix, aside + suffix); !s) {
            return s.context("database_guard");
        }
    }
    report.set_aside = aside;
    OPENDMS_LOG(error, "database",
                "DATABASE ALARM: " << o.database << " is damaged (" << report.reason
                                   << "); kept aside as " << aside
                                   << " (salvage with `sqlite3 FILE .recover`); starting a fresh "
                                      "database so that ingest goes on");
    auto c = db::open(o);
    if (!c) return c.error().context("database_guard: create a fresh database");
    db::migrator m(**c);
    auto applied = m.migrate();
    if (!applied) return applied.error().context("database_guard: migrate the fresh database");
    return report;
}

std::vector<std::string> list_set_aside(const db::connect_options& o) {
    std::vector<std::string> out;
    if (o.kind != db::dialect::sqlite) return out;
    const std::string prefix = base_of(o.database) + marker;
    DIR* d = ::opendir(dir_of(o.database).c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        std::string name = e->d_name;
        if (name.rfind(prefix, 0) != 0) continue;
        if (name.size() > 4 && (name.compare(name.size() - 4, 4, "-wal") == 0 ||
                                name.compare(name.size() - 4, 4, "-shm") == 0)) {
            continue;
        }
        out.push_back(name);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace opendms::field
