// The central server's settings: CENTRAL_*, MESH_DUPLICATE_WINDOW and LOG_LEVEL
// (docs/configuration.md, "Central server").
#include "opendms/central/central_settings.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "opendms/central/token_store.hpp"

namespace opendms::central {
namespace {

constexpr long long max_timeout_ms = 3600LL * 1000;

bool is_ipv4(const std::string& host) {
    in_addr a{};
    return ::inet_pton(AF_INET, host.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& host) {
    in6_addr a{};
    return ::inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

/// Splits "host:port" / "[v6]:port"; false when the text has neither form.
bool split_listen(const std::string& text, std::string& host, std::string& port) {
    if (!text.empty() && text.front() == '[') {
        std::size_t close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return false;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        return is_ipv6(host);
    }
    std::size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host == "localhost") host = "127.0.0.1";
    return is_ipv4(host);
}

bool parse_port(const std::string& text, unsigned short& port) {
    if (text.empty() || text.size() > 5) return false;
    unsigned long v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned long>(c - '0');
    }
    if (v > 65535) return false;
    port = static_cast<unsigned short>(v);
    return true;
}

void read_listen(config::setting_reader& r, central_settings& s) {
    std::string text = r.text("CENTRAL_LISTEN", "127.0.0.1:8080");
    std::string host;
    std::string port_text;
    unsigned short port = 0;
    if (split_listen(text, host, port_text) && parse_port(port_text, port)) {
        s.listen_host = host;
        s.listen_port = port;
        return;
    }
    r.fail("CENTRAL_LISTEN", "'" + text +
                                 "' is not an address and port; write IPv4:PORT or [IPv6]:PORT, "
                                 "e.g. 127.0.0.1:8080 (behind nginx), 0.0.0.0:8080 (every "
                                 "interface) or [::1]:8080; port 0 picks a free port");
}

/// "cannot read 'x': reason", or "" when `path` is a readable regular file.
std::string file_problem(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return "cannot read '" + path + "': " + std::strerror(errno);
    if (!S_ISREG(st.st_mode)) return "'" + path + "' is not a regular file";
    if (::access(path.c_str(), R_OK) != 0) {
        return "cannot read '" + path + "': " + std::strerror(errno);
    }
    return {};
}

void read_tls(config::setting_reader& r, central_settings& s) {
    s.tls_cert_file = r.optional_text("CENTRAL_TLS_CERT");
    s.tls_key_file = r.optional_text("CENTRAL_TLS_KEY");
    if (s.tls_cert_file.has_value() != s.tls_key_file.has_value()) {
        const char* missing = s.tls_cert_file ? "CENTRAL_TLS_KEY" : "CENTRAL_TLS_CERT";
        r.fail(missing, std::string("is not set but ") +
                            (s.tls_cert_file ? "CENTRAL_TLS_CERT" : "CENTRAL_TLS_KEY") +
                            " is; TLS needs both the certificate and its private key (PEM "
                            "files): set both, or neither for plain HTTP behind nginx");
        return;
    }
    const std::pair<const char*, const std::optional<std::string>*> files[] = {
        {"CENTRAL_TLS_CERT", &s.tls_cert_file}, {"CENTRAL_TLS_KEY", &s.tls_key_file}};
    for (const auto& [name, path] : files) {
        if (!*path) continue;
        std::string why = file_problem(**path);
        if (!why.empty()) {
            r.fail(name, why +
                             "; give the path of a PEM file readable by this user, or unset "
                             "CENTRAL_TLS_CERT and CENTRAL_TLS_KEY for plain HTTP");
        }
    }
}

void read_tokens_file(config::setting_reader& r, central_settings& s) {
    s.tokens_file = r.optional_text("CENTRAL_DMS_TOKENS_FILE");
    if (!s.tokens_file) return;
    const std::string& path = *s.tokens_file;
    const std::string fix =
        "; give the path of a file with one `NODE sha256:HEX` line per field node "
        "(`opendms-central token:new NODE` makes one), or unset it to use only "
        "CENTRAL_DMS_TOKEN";
    std::string why = file_problem(path);
    if (!why.empty()) {
        r.fail("CENTRAL_DMS_TOKENS_FILE", why + fix);
        return;
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in && !in.eof()) {
        r.fail("CENTRAL_DMS_TOKENS_FILE", "cannot read '" + path + "'" + fix);
        return;
    }
    auto parsed = parse_tokens_file(text.str());
    if (!parsed) {
        r.fail("CENTRAL_DMS_TOKENS_FILE",
               "'" + path + "': " + parsed.error().message() +
                   "; each line is `NODE sha256:HEX` (NODE from A-Z a-z 0-9 . _ -, at most 64; "
                   "HEX the 64 hex digits `opendms-central token:hash` prints)");
    }
}

void refuse_url(config::setting_reader& r, const std::vector<config::problem>& problems) {
    if (!r.optional_text("CENTRAL_DMS_URL")) return;
    // The shared settings already refuse a URL on a server database: one problem is enough.
    for (const config::problem& p : problems) {
        if (p.variable == "CENTRAL_DMS_URL") return;
    }
    r.fail("CENTRAL_DMS_URL",
           "is set, which makes this a field node that pushes to another server; the "
           "central server only receives: unset CENTRAL_DMS_URL here (it belongs in the field "
           "nodes' .env)");
}

std::chrono::milliseconds positive_duration(config::setting_reader& r, const std::string& name,
                                            long long fallback_ms) {
    long long ms = r.duration_ms(name, fallback_ms, max_timeout_ms);
    if (ms > 0) return std::chrono::milliseconds(ms);
    r.fail(name, "must be more than 0 seconds; e.g. " + std::to_string(fallback_ms / 1000) +
                     " (the default)");
    return std::chrono::milliseconds(fallback_ms);
}

void read_limits(config::setting_reader& r, server_limits& l) {
    l.max_body_bytes = static_cast<std::size_t>(
        r.integer("CENTRAL_MAX_BODY_BYTES", 8 * 1024 * 1024, 1024, 1024LL * 1024 * 1024));
    l.max_header_bytes = static_cast<std::size_t>(
        r.integer("CENTRAL_MAX_HEADER_BYTES", 8 * 1024, 1024, 1024 * 1024));
    l.max_connections =
        static_cast<std::size_t>(r.integer("CENTRAL_MAX_CONNECTIONS", 1024, 1, 1'000'000));
    l.max_pending_requests =
        static_cast<std::size_t>(r.integer("CENTRAL_MAX_PENDING_REQUESTS", 128, 1, 100'000));
    l.request_timeout = positive_duration(r, "CENTRAL_REQUEST_TIMEOUT", 30'000);
    l.idle_timeout = positive_duration(r, "CENTRAL_IDLE_TIMEOUT", 60'000);
    l.shutdown_timeout = std::chrono::milliseconds(
        r.duration_ms("CENTRAL_SHUTDOWN_TIMEOUT", 30'000, max_timeout_ms));
}

log::level read_log_level(config::setting_reader& r) {
    std::string name =
        r.choice("LOG_LEVEL", "info", {"debug", "info", "notice", "warning", "error"}, "log level");
    log::level l = log::level::info;
    (void)log::parse_level(name, l);
    return l;
}

const char* level_name(log::level l) {
    switch (l) {
        case log::level::debug:
            return "debug";
        case log::level::info:
            return "info";
        case log::level::notice:
            return "notice";
        case log::level::warning:
            return "warning";
        case log::level::error:
            return "error";
    }
    return "info";
}

std::string seconds_text(std::chrono::milliseconds d) {
    std::string out = std::to_string(d.count() / 1000);
    if (long long rest = d.count() % 1000; rest != 0) {
        std::string frac = std::to_string(1000 + rest).substr(1);
        while (frac.back() == '0') frac.pop_back();
        out += "." + frac;
    }
    return out;
}

}  // namespace

unsigned central_settings::effective_threads() const {
    if (threads != 0) return threads;
    return std::max(1U, std::thread::hardware_concurrency());
}

central_settings load_central_settings(const config::env_map& env, const config::settings& common,
                                       std::vector<config::problem>& problems) {
    central_settings s;
    s.common = common;
    config::setting_reader r(env, problems);
    refuse_url(r, problems);
    read_listen(r, s);
    s.threads = static_cast<unsigned>(r.integer("CENTRAL_THREADS", 0, 0, 256));
    s.db_pool_size = static_cast<std::size_t>(r.integer("CENTRAL_DB_POOL_SIZE", 8, 1, 1024));
    read_tls(r, s);
    read_tokens_file(r, s);
    read_limits(r, s.limits);
    s.max_batch_records =
        static_cast<std::size_t>(r.integer("CENTRAL_MAX_BATCH_RECORDS", 1000, 1, 100'000));
    s.retry_after_s = r.integer("CENTRAL_RETRY_AFTER", 5, 1, 3600);
    s.access_log = r.boolean("CENTRAL_ACCESS_LOG", true);
    s.duplicate_window_s = r.integer("MESH_DUPLICATE_WINDOW", 600, 0, 86400);
    s.log_level = read_log_level(r);
    return s;
}

std::vector<std::string> describe(const central_settings& s, const config::env_map& env) {
    std::vector<std::string> lines;
    auto line = [&](const std::string& name, const std::string& value) {
        lines.push_back(name + "=" + (value.empty() ? "(empty)" : value) + " (" + env.origin(name) +
                        ")");
    };
    bool v6 = s.listen_host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + s.listen_host + "]" : s.listen_host;
    line("CENTRAL_LISTEN", host + ":" + std::to_string(s.listen_port));
    line("CENTRAL_THREADS", s.threads == 0
                                ? "0 (one per core: " + std::to_string(s.effective_threads()) + ")"
                                : std::to_string(s.threads));
    line("CENTRAL_DB_POOL_SIZE", std::to_string(s.db_pool_size));
    line("CENTRAL_TLS_CERT", s.tls_cert_file.value_or("(none: plain HTTP)"));
    line("CENTRAL_TLS_KEY", s.tls_key_file.value_or("(none: plain HTTP)"));
    line("CENTRAL_DMS_TOKENS_FILE", s.tokens_file.value_or("(none)"));
    line("CENTRAL_MAX_BODY_BYTES", std::to_string(s.limits.max_body_bytes));
    line("CENTRAL_MAX_BATCH_RECORDS", std::to_string(s.max_batch_records));
    line("CENTRAL_MAX_HEADER_BYTES", std::to_string(s.limits.max_header_bytes));
    line("CENTRAL_MAX_CONNECTIONS", std::to_string(s.limits.max_connections));
    line("CENTRAL_MAX_PENDING_REQUESTS", std::to_string(s.limits.max_pending_requests));
    line("CENTRAL_REQUEST_TIMEOUT", seconds_text(s.limits.request_timeout));
    line("CENTRAL_IDLE_TIMEOUT", seconds_text(s.limits.idle_timeout));
    line("CENTRAL_RETRY_AFTER", std::to_string(s.retry_after_s));
    line("CENTRAL_SHUTDOWN_TIMEOUT", seconds_text(s.limits.shutdown_timeout));
    line("CENTRAL_ACCESS_LOG", s.access_log ? "true" : "false");
    line("MESH_DUPLICATE_WINDOW", std::to_string(s.duplicate_window_s));
    line("LOG_LEVEL", level_name(s.log_level));
    return lines;
}

}  // namespace opendms::central
