// The settings of both programs, read once at start-up from an env_map and validated.
//
// Every setting has a default that is safe for a gateway (docs/configuration.md lists
// them). Validation collects every problem, each naming the variable and the fix; a
// program with any problem does not start.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "opendms/config/dotenv.hpp"
#include "opendms/db/database.hpp"
#include "opendms/status.hpp"

namespace opendms::config {

/// The seed's three deployment modes, chosen only by DB_CONNECTION and CENTRAL_DMS_URL:
///   production: pgsql|mysql, no CENTRAL_DMS_URL   (this database IS the central one)
///   offline:    sqlite, no CENTRAL_DMS_URL        (standalone field node)
///   hybrid:     sqlite + CENTRAL_DMS_URL + CENTRAL_DMS_TOKEN (field node that syncs)
enum class deployment_mode { production, offline, hybrid };

/// "production", "offline", "hybrid".
const char* mode_name(deployment_mode m) noexcept;

/// One problem found in the configuration.
struct problem {
    std::string variable;  // "CENTRAL_DMS_TOKEN"
    std::string message;   // what is wrong and how to fix it, one sentence or two
};

struct settings {
    // Database (Laravel's names).
    db::connect_options db;      // DB_CONNECTION, DB_DATABASE, DB_HOST, DB_PORT,
                                 // DB_USERNAME, DB_PASSWORD, DB_SOCKET,
                                 // DB_SYNCHRONOUS, DB_BUSY_TIMEOUT (seconds)
    std::string queue_connection = "database";  // QUEUE_CONNECTION: only "database"

    // Sync to the central server (the seed's names).
    std::optional<std::string> central_url;    // CENTRAL_DMS_URL (base; /api/ingest appended)
    std::optional<std::string> central_token;  // CENTRAL_DMS_TOKEN, or the content of:
    std::optional<std::string> central_token_file;  // CENTRAL_DMS_TOKEN_FILE (read at start-up;
                                                    // the field node re-reads it after a 401)

    deployment_mode mode = deployment_mode::offline;
};

/// Seconds as check-config prints them: "5", "0.25" (milliseconds in).
std::string format_seconds(long long ms);

/// "DB_PORT: <message>", the form check-config and start-up print.
std::string format_problem(const problem& p);

/// Typed reads of one variable each: the building blocks of load_settings, and of the
/// settings that later parts add (MQTT_*, CENTRAL_LISTEN, ...). A bad value appends a
/// problem naming the variable (what is wrong and the fix) and returns the fallback, so
/// one pass reports every problem. Unset, `null` and empty values give the fallback
/// (text() can keep an empty value). Borrows both arguments; used once at start-up.
class setting_reader {
public:
    setting_reader(const env_map& env, std::vector<problem>& problems)
        : env_(env), problems_(problems) {}

    const env_map& env() const { return env_; }
    /// Appends a problem for `variable`; `message` says what is wrong and the fix.
    void fail(const std::string& variable, std::string message);

    /// The value as written; `fallback` when unset (or empty, if `empty_is_unset`).
    std::string text(const std::string& name, const std::string& fallback,
                     bool empty_is_unset = true) const;
    /// The value, or nullopt when unset, `null` or empty.
    std::optional<std::string> optional_text(const std::string& name) const;
    /// A whole number in [min, max] ("5432").
    long long integer(const std::string& name, long long fallback, long long min, long long max);
    /// A duration in seconds, fraction allowed ("5", "0.25"), from 0 to max_ms; returned
    /// in milliseconds (rounded).
    long long duration_ms(const std::string& name, long long fallback_ms, long long max_ms);
    /// A comma-separated list of durations in seconds ("30,60,120"), each more than min_ms
    /// and at most max_ms; returned in milliseconds. An empty list is a problem.
    std::vector<long long> duration_list_ms(const std::string& name,
                                            const std::vector<long long>& fallback_ms,
                                            long long min_ms, long long max_ms);
    /// A decimal number in [min, max] ("0.2", "150", "2.5"); no exponent, no unit.
    double decimal(const std::string& name, double fallback, double min, double max);
    /// One of `allowed`, compared case-insensitively; returns the spelling in `allowed`.
    /// `what` names the kind of value in the message ("unknown driver 'x'").
    std::string choice(const std::string& name, const std::string& fallback,
                       const std::vector<std::string>& allowed, const std::string& what);
    /// true/false, 1/0, yes/no, on/off, (true)/(false), case-insensitive.
    bool boolean(const std::string& name, bool fallback);
    /// A comma-separated list; items trimmed, empty items dropped.
    std::vector<std::string> list(const std::string& name,
                                  const std::vector<std::string>& fallback) const;

private:
    const env_map& env_;
    std::vector<problem>& problems_;
};

/// Reads and validates. On success `problems` is empty. On failure returns the settings
/// parsed so far (for check-config) and fills `problems`: an invalid value is left at its
/// default, except CENTRAL_DMS_URL, kept as written so that the mode still reflects it.
settings load_settings(const env_map& env, std::vector<problem>& problems);

/// The deployment mode for a driver and the presence of URL and token; a problem
/// (with its fix) for the contradictions: URL without token, token-less hybrid,
/// a URL on a server database (hybrid on pgsql/mysql). The error (invalid_argument) reads
/// like format_problem(): it starts with the variable to change.
result<deployment_mode> resolve_mode(db::dialect driver, bool has_url, bool has_token);

/// The token in a CENTRAL_DMS_TOKEN_FILE: the file's text without surrounding whitespace
/// (a trailing newline is normal). errc::io_error naming the path when it cannot be read;
/// errc::invalid_argument when it is empty or holds whitespace or control characters inside.
result<std::string> read_token_file(const std::string& path);

/// Masks a secret for printing: "" -> "(empty)", otherwise "****" plus its length.
std::string mask_secret(const std::string& secret);

/// The resolved settings as `NAME=value (origin)` lines, secrets masked.
std::vector<std::string> describe(const settings& s, const env_map& env);

}  // namespace opendms::config
