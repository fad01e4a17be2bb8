// Settings: typed reads (setting_reader), the variables of both programs, the mode table.
#include "opendms/config/settings.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <utility>
#include <variant>

namespace opendms::config {
namespace {

constexpr long long max_busy_timeout_ms = 3600 * 1000;

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/// "a, b or c".
std::string one_of(const std::vector<std::string>& options) {
    std::string out;
    for (std::size_t i = 0; i < options.size(); ++i) {
        if (i > 0) out += i + 1 == options.size() ? " or " : ", ";
        out += options[i];
    }
    return out;
}

/// Seconds written as "5", "0.25" or ".5", in milliseconds rounded to the nearest;
/// nullopt when not of that form or absurdly long.
std::optional<long long> parse_seconds_ms(std::string_view s) {
    std::size_t dot = s.find('.');
    std::string_view whole = s.substr(0, dot);
    std::string_view frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
    if (whole.empty() && frac.empty()) return std::nullopt;
    for (char c : whole) {
        if (!is_digit(c)) return std::nullopt;
    }
    for (char c : frac) {
        if (!is_digit(c)) return std::nullopt;
    }
    while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
    if (whole.size() > 12) return std::nullopt;
    long long ms = 0;
    for (char c : whole) ms = ms * 10 + (c - '0');
    ms *= 1000;
    long long scale = 100;
    for (std::size_t i = 0; i < frac.size() && i < 3; ++i, scale /= 10)
        ms += (frac[i] - '0') * scale;
    if (frac.size() > 3 && frac[3] >= '5') ++ms;
    return ms;
}

/// "5", "0.25": milliseconds back as seconds, without trailing zeros.
std::string seconds_text(long long ms) {
    std::string out = std::to_string(ms / 1000);
    long long rest = ms % 1000;
    if (rest == 0) return out;
    std::string frac = std::to_string(1000 + rest).substr(1);
    while (frac.back() == '0') frac.pop_back();
    return out + "." + frac;
}

// ---- database ----------------------------------------------------------------------

// The DB_CONNECTION spelling; kept here so that config does not need the database code.
const char* driver_name(db::dialect d) {
    switch (d) {
        case db::dialect::sqlite:
            return "sqlite";
        case db::dialect::pgsql:
            return "pgsql";
        case db::dialect::mysql:
            return "mysql";
    }
    return "unknown";
}

db::dialect read_driver(setting_reader& r) {
    std::optional<std::string> raw = r.optional_text("DB_CONNECTION");
    if (raw && iequals(trim(*raw), "mariadb")) return db::dialect::mysql;
    std::string name = r.choice("DB_CONNECTION", "sqlite", {"sqlite", "pgsql", "mysql"}, "driver");
    if (name == "pgsql") return db::dialect::pgsql;
    if (name == "mysql") return db::dialect::mysql;
    return db::dialect::sqlite;
}

void read_database(setting_reader& r, db::connect_options& db) {
    db.kind = read_driver(r);
    bool server = db.kind != db::dialect::sqlite;
    // Laravel's defaults (config/database.php), with the SQLite path relative to the
    // working directory instead of Laravel's database_path().
    db.database = r.text("DB_DATABASE", server ? "laravel" : "database/database.sqlite");
    db.host = r.text("DB_HOST", "127.0.0.1");
    long long default_port = db.kind == db::dialect::pgsql   ? 5432
                             : db.kind == db::dialect::mysql ? 3306
                                                             : 0;
    db.port = static_cast<int>(r.integer("DB_PORT", default_port, 1, 65535));
    db.username = r.text("DB_USERNAME", "root", false);
    db.password = r.text("DB_PASSWORD", "", false);
    db.socket = r.text("DB_SOCKET", "", false);
    db.sqlite_synchronous =
        r.choice("DB_SYNCHRONOUS", "FULL", {"OFF", "NORMAL", "FULL", "EXTRA"}, "level");
    db.busy_timeout_ms =
        static_cast<int>(r.duration_ms("DB_BUSY_TIMEOUT", 5000, max_busy_timeout_ms));
}

std::string read_queue(setting_reader& r) {
    std::string queue = r.text("QUEUE_CONNECTION", "database");
    if (iequals(trim(queue), "database")) return "database";
    r.fail("QUEUE_CONNECTION", "'" + queue +
                                   "' is not supported; this project keeps its queue (the "
                                   "outbox) in the database: set QUEUE_CONNECTION=database "
                                   "or remove it");
    return "database";
}

// ---- central server ----------------------------------------------------------------

bool has_space_or_control(std::string_view s) {
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return true;
    }
    return false;
}

/// Checks an authority ("host", "host:8443", "[::1]:8443"); an error message or "".
std::string check_authority(std::string_view authority) {
    if (authority.find('@') != std::string_view::npos) {
        return "must not contain a user name or password; put the credential in "
               "CENTRAL_DMS_TOKEN";
    }
    std::string_view host = authority;
    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return "has an unclosed '[' in its host; write [::1]";
        host = authority.substr(1, close - 1);
        std::string_view after = authority.substr(close + 1);
        if (!after.empty() && after.front() != ':') return "has text after the ']' of its host";
        if (!after.empty()) port = after.substr(1);
        if (after.size() == 1) port = "-";  // "[::1]:" with nothing after the colon
    } else if (std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = colon + 1 < authority.size() ? authority.substr(colon + 1) : "-";
    }
    if (host.empty()) return "has no host; write it like https://central.example.org";
    if (!port.empty()) {
        int value = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
            return "has an invalid port; use a number from 1 to 65535 after the ':'";
        }
    }
    return {};
}

/// The URL as the client will use it (scheme lower-case, no trailing '/'), or the
/// message for what is wrong.
std::variant<std::string, std::string> normalize_central_url(std::string_view url) {
    using out = std::variant<std::string, std::string>;
    auto error = [](std::string m) { return out(std::in_place_index<1>, std::move(m)); };
    if (has_space_or_control(url)) return error("contains whitespace; remove it");
    std::size_t sep = url.find("://");
    std::string scheme(url.substr(0, sep == std::string_view::npos ? 0 : sep));
    for (char& c : scheme) c = lower(c);
    if (sep == std::string_view::npos || (scheme != "http" && scheme != "https")) {
        return error(
            "is not an http:// or https:// URL; write the central server's base "
            "URL, e.g. https://central.example.org");
    }
    std::string_view rest = url.substr(sep + 3);
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return error(
            "must not have a query ('?') or fragment ('#'); give only the base "
            "URL: /api/ingest is appended to it");
    }
    std::string_view authority = rest.substr(0, rest.find('/'));
    if (std::string e = check_authority(authority); !e.empty()) return error(e);
    while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    return out(std::in_place_index<0>, scheme + "://" + std::string(rest));
}

void read_central(setting_reader& r, settings& s) {
    if (std::optional<std::string> url = r.optional_text("CENTRAL_DMS_URL")) {
        auto normal = normalize_central_url(*url);
        if (normal.index() == 0) {
            s.central_url = std::get<0>(normal);
        } else {
            r.fail("CENTRAL_DMS_URL", std::get<1>(normal));
            s.central_url = *url;
        }
    }
    if (std::optional<std::string> token = r.optional_text("CENTRAL_DMS_TOKEN")) {
        if (has_space_or_control(*token)) {
            r.fail("CENTRAL_DMS_TOKEN",
                   "contains whitespace or control characters, which "
                   "cannot travel in a Bearer header; remove them");
        }
        s.central_token = std::move(*token);
    }
    if (std::optional<std::string> path = r.optional_text("CENTRAL_DMS_TOKEN_FILE")) {
        s.central_token_file = *path;
        if (s.central_token) {
            r.fail("CENTRAL_DMS_TOKEN_FILE",
                   "is set together with CENTRAL_DMS_TOKEN; keep only one of them (the file "
                   "keeps the token out of the .env file and can be replaced without a restart)");
            return;
        }
        auto token = read_token_file(*path);
        if (!token) {
            r.fail("CENTRAL_DMS_TOKEN_FILE",
                   token.error().message() +
                       "; give the path of a file (readable by this user) that holds only the "
                       "token the central server expects");
            s.central_token = std::string();  // the mode still sees a token
            return;
        }
        s.central_token = std::move(*token);
    }
}

// ---- the mode table ----------------------------------------------------------------

std::variant<deployment_mode, problem> mode_rule(db::dialect driver, bool has_url, bool has_token) {
    if (driver == db::dialect::sqlite) {
        if (!has_url) return deployment_mode::offline;
        if (has_token) return deployment_mode::hybrid;
        return problem{"CENTRAL_DMS_TOKEN",
                       "CENTRAL_DMS_URL is set but CENTRAL_DMS_TOKEN is not; a field node "
                       "that syncs needs the token the central server expects: set "
                       "CENTRAL_DMS_TOKEN (or CENTRAL_DMS_TOKEN_FILE), or unset "
                       "CENTRAL_DMS_URL to run offline"};
    }
    if (!has_url) return deployment_mode::production;
    return problem{"CENTRAL_DMS_URL",
                   std::string("is set with DB_CONNECTION=") + driver_name(driver) +
                       ", but a server database is the central one and pushes nowhere: "
                       "unset CENTRAL_DMS_URL, or use DB_CONNECTION=sqlite for a field node"};
}

}  // namespace

const char* mode_name(deployment_mode m) noexcept {
    switch (m) {
        case deployment_mode::production:
            return "production";
        case deployment_mode::offline:
            return "offline";
        case deployment_mode::hybrid:
            return "hybrid";
    }
    return "unknown";
}

std::string format_problem(const problem& p) {
    return p.variable + ": " + p.message;
}

// ---- setting_reader ----------------------------------------------------------------

void setting_reader::fail(const std::string& variable, std::string message) {
    problems_.push_back(problem{variable, std::move(message)});
}

std::string setting_reader::text(const std::string& name, const std::string& fallback,
                                 bool empty_is_unset) const {
    std::optional<std::string> v = empty_is_unset ? env_.get_non_empty(name) : env_.get(name);
    return v ? *v : fallback;
}

std::optional<std::string> setting_reader::optional_text(const std::string& name) const {
    return env_.get_non_empty(name);
}

long long setting_reader::integer(const std::string& name, long long fallback, long long min,
                                  long long max) {
    std::optional<std::string> raw = optional_text(name);
    if (!raw) return fallback;
    std::string_view v = trim(*raw);
    std::string range =
        "use a whole number from " + std::to_string(min) + " to " + std::to_string(max);
    long long value = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (v.empty() || end != v.data() + v.size() || ec == std::errc::invalid_argument) {
        fail(name, "'" + *raw + "' is not a whole number; " + range);
        return fallback;
    }
    if (ec == std::errc::result_out_of_range || value < min || value > max) {
        fail(name, *raw + " is out of range; " + range);
        return fallback;
    }
    return value;
}

std::string format_seconds(long long ms) { return seconds_text(ms); }

std::vector<long long> setting_reader::duration_list_ms(const std::string& name,
                                                        const std::vector<long long>& fallback_ms,
                                                        long long min_ms, long long max_ms) {
    std::optional<std::string> raw = optional_text(name);
    if (!raw) return fallback_ms;
    std::vector<std::string> items = list(name, {});
    std::string range = "more than " + seconds_text(min_ms) + " and at most " +
                        seconds_text(max_ms) + " seconds";
    if (items.empty()) {
        fail(name, "lists no duration; write seconds separated by commas, e.g. 30,60,120");
        return fallback_ms;
    }
    std::vector<long long> out;
    for (const std::string& item : items) {
        std::optional<long long> ms = parse_seconds_ms(item);
        if (!ms || *ms <= min_ms || *ms > max_ms) {
            fail(name, "'" + item + "' in '" + *raw + "' is not a number of seconds " + range +
                           "; write seconds separated by commas, e.g. 30,60,120");
            return fallback_ms;
        }
        out.push_back(*ms);
    }
    return out;
}

double setting_reader::decimal(const std::string& name, double fallback, double min, double max) {
    std::optional<std::string> raw = optional_text(name);
    if (!raw) return fallback;
    std::string_view v = trim(*raw);
    std::optional<long long> thousandths = parse_seconds_ms(v);  // the same "12.345" form
    const double value = thousandths ? static_cast<double>(*thousandths) / 1000.0 : -1.0;
    if (!thousandths || value < min || value > max) {
        fail(name, "'" + *raw + "' is not a number from " + seconds_text(static_cast<long long>(min * 1000)) +
                       " to " + seconds_text(static_cast<long long>(max * 1000)) +
                       "; write a plain decimal number such as 0.2");
        return fallback;
    }
    return value;
}

long long setting_reader::duration_ms(const std::string& name, long long fallback_ms,
                                      long long max_ms) {
    std::optional<std::string> raw = optional_text(name);
    if (!raw) return fallback_ms;
    std::string range = "from 0 to " + seconds_text(max_ms);
    std::optional<long long> ms = parse_seconds_ms(trim(*raw));
    if (!ms) {
        fail(name, "'" + *raw + "' is not a number of seconds; write a plain number " + range +
                       ", e.g. 5 or 0.5 (no unit)");
        return fallback_ms;
    }
    if (*ms > max_ms) {
        fail(name, *raw + " seconds is too long; use a value " + range + " seconds");
        return fallback_ms;
    }
    return *ms;
}

std::string setting_reader::choice(const std::string& name, const std::string& fallback,
                                   const std::vector<std::string>& allowed,
                                   const std::string& what) {
    std::optional<std::string> raw = optional_text(name);
    if (!raw) return fallback;
    for (const std::string& option : allowed) {
        if (iequals(trim(*raw), option)) return option;
    }
    fail(name, "unknown " + what + " '" + *raw + "'; use " + one_of(allowed));
    return fallback;
}

bool setting_reader::boolean(const std::string& name, bool fallback) {
    std::optional<std::string> raw = optional_text(name);
    if (!raw) return fallback;
    std::string_view v = trim(*raw);
    for (const char* yes : {"true", "(true)", "1", "yes", "on"}) {
        if (iequals(v, yes)) return true;
    }
    for (const char* no : {"false", "(false)", "0", "no", "off"}) {
        if (iequals(v, no)) return false;
    }
    fail(name, "'" + *raw + "' is not a boolean; use true or false (or 1/0, yes/no, on/off)");
    return fallback;
}

std::vector<std::string> setting_reader::list(const std::string& name,
                                              const std::vector<std::string>& fallback) const {
    std::optional<std::string> raw = optional_text(name);
    if (!raw) return fallback;
    std::vector<std::string> items;
    std::string_view rest = *raw;
    while (true) {
        std::size_t comma = rest.find(',');
        std::string_view item = trim(rest.substr(0, comma));
        if (!item.empty()) items.emplace_back(item);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return items;
}

// ---- the settings ------------------------------------------------------------------

settings load_settings(const env_map& env, std::vector<problem>& problems) {
    settings s;
    setting_reader r(env, problems);
    std::size_t before_driver = problems.size();
    read_database(r, s.db);
    bool driver_ok =
        problems.size() == before_driver || problems[before_driver].variable != "DB_CONNECTION";
    s.queue_connection = read_queue(r);
    read_central(r, s);
    // With an unknown driver the mode would be a guess: its problem is enough.
    if (driver_ok) {
        auto rule = mode_rule(s.db.kind, s.central_url.has_value(), s.central_token.has_value());
        if (auto* mode = std::get_if<deployment_mode>(&rule)) {
            s.mode = *mode;
        } else {
            problems.push_back(std::get<problem>(std::move(rule)));
        }
    }
    return s;
}

result<deployment_mode> resolve_mode(db::dialect driver, bool has_url, bool has_token) {
    auto rule = mode_rule(driver, has_url, has_token);
    if (auto* mode = std::get_if<deployment_mode>(&rule)) return *mode;
    return status(errc::invalid_argument, format_problem(std::get<problem>(rule)));
}

result<std::string> read_token_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return status(errc::io_error,
                      "cannot read '" + path + "': " + std::strerror(errno));
    }
    std::string text;
    char buffer[4096];
    while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
        text.append(buffer, static_cast<std::size_t>(in.gcount()));
        if (text.size() > 64 * 1024) {
            return status(errc::invalid_argument, "'" + path + "' is larger than 64 KiB");
        }
    }
    if (in.bad()) return status(errc::io_error, "cannot read '" + path + "'");
    std::string_view t = text;
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!t.empty() && blank(t.front())) t.remove_prefix(1);
    while (!t.empty() && blank(t.back())) t.remove_suffix(1);
    if (t.empty()) return status(errc::invalid_argument, "'" + path + "' is empty");
    if (has_space_or_control(t)) {
        return status(errc::invalid_argument,
                      "'" + path + "' holds more than one word (whitespace or control "
                      "characters inside the token), which cannot travel in a Bearer header");
    }
    return std::string(t);
}

std::string mask_secret(const std::string& secret) {
    if (secret.empty()) return "(empty)";
    return "**** (" + std::to_string(secret.size()) + " chars)";
}

std::vector<std::string> describe(const settings& s, const env_map& env) {
    std::vector<std::string> lines;
    auto line = [&](const std::string& name, const std::string& value) {
        lines.push_back(name + "=" + value + " (" + env.origin(name) + ")");
    };
    auto shown = [](const std::string& v) { return v.empty() ? std::string("(empty)") : v; };
    const db::connect_options& db = s.db;
    line("DB_CONNECTION", driver_name(db.kind));
    line("DB_DATABASE", shown(db.database));
    line("DB_HOST", shown(db.host));
    line("DB_PORT", db.port == 0 ? std::string("(not used)") : std::to_string(db.port));
    line("DB_USERNAME", shown(db.username));
    line("DB_PASSWORD", mask_secret(db.password));
    line("DB_SOCKET", shown(db.socket));
    line("DB_SYNCHRONOUS", db.sqlite_synchronous);
    line("DB_BUSY_TIMEOUT", seconds_text(db.busy_timeout_ms));
    line("QUEUE_CONNECTION", s.queue_connection);
    line("CENTRAL_DMS_URL", s.central_url ? *s.central_url : "(unset)");
    if (s.central_token_file) {
        line("CENTRAL_DMS_TOKEN_FILE", *s.central_token_file + " (token " +
                                           mask_secret(s.central_token.value_or("")) + ")");
    } else {
        line("CENTRAL_DMS_TOKEN", s.central_token ? mask_secret(*s.central_token) : "(unset)");
    }
    lines.push_back(std::string("mode=") + mode_name(s.mode) +
                    " (from DB_CONNECTION and CENTRAL_DMS_URL)");
    return lines;
}

}  // namespace opendms::config
