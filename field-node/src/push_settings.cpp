// push_settings: the CENTRAL_DMS_* delivery settings and the proxy (see the header).
#include "opendms/field/push_settings.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "opendms/base64.hpp"

namespace opendms::field {

const char* push_protocol_name(push_protocol p) noexcept {
    switch (p) {
        case push_protocol::automatic:
            return "auto";
        case push_protocol::batch:
            return "batch";
        case push_protocol::single:
            return "single";
    }
    return "auto";
}

namespace {

std::string lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

/// The first of `names` that is set (HTTPS_PROXY before https_proxy, as curl reads them),
/// or "" when none is.
std::string first_set(const config::setting_reader& r, std::initializer_list<const char*> names,
                      std::string& which) {
    for (const char* n : names) {
        if (auto v = r.optional_text(n)) {
            which = n;
            return *v;
        }
    }
    return {};
}

/// True when NO_PROXY's list names `host`: "*", the host itself, or a domain suffix
/// (".example.org" or "example.org" both match "c.example.org").
bool no_proxy_matches(const std::string& list, const std::string& host) {
    const std::string h = lower(host);
    std::size_t start = 0;
    while (start <= list.size()) {
        std::size_t comma = list.find(',', start);
        std::string item = lower(list.substr(start, comma == std::string::npos ? std::string::npos
                                                                                 : comma - start));
        start = comma == std::string::npos ? list.size() + 1 : comma + 1;
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.erase(0, 1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.pop_back();
        if (item.empty()) continue;
        if (item == "*") return true;
        if (item.front() == '.') item.erase(0, 1);
        if (h == item) return true;
        if (h.size() > item.size() && h.compare(h.size() - item.size(), item.size(), item) == 0 &&
            h[h.size() - item.size() - 1] == '.') {
            return true;
        }
    }
    return false;
}

std::string read_ca_file(config::setting_reader& r) {
    std::optional<std::string> path = r.optional_text("CENTRAL_DMS_CA_FILE");
    if (!path) return {};
    struct stat st {};
    std::string why;
    if (::stat(path->c_str(), &st) != 0 || ::access(path->c_str(), R_OK) != 0) {
        why = std::strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
        why = "not a regular file";
    }
    if (!why.empty()) {
        r.fail("CENTRAL_DMS_CA_FILE",
               "cannot read '" + *path + "': " + why +
                   "; give the path of the PEM file with the CA certificate that signed the "
                   "central server's certificate, or remove it to use the system's trusted CAs");
    }
    return *path;
}

push_protocol read_protocol(config::setting_reader& r) {
    std::string p = r.choice("CENTRAL_DMS_PROTOCOL", "auto", {"auto", "batch", "single"}, "protocol");
    if (p == "batch") return push_protocol::batch;
    if (p == "single") return push_protocol::single;
    return push_protocol::automatic;
}

}  // namespace

std::optional<http_proxy> proxy_for(const http_endpoint& endpoint, config::setting_reader& r) {
    std::string variable;
    const std::string url = first_set(r, {"HTTPS_PROXY", "https_proxy"}, variable);
    if (url.empty()) return std::nullopt;
    std::string no_variable;
    const std::string no_proxy = first_set(r, {"NO_PROXY", "no_proxy"}, no_variable);
    if (no_proxy_matches(no_proxy, endpoint.host)) return std::nullopt;

    std::string rest = url;
    if (std::size_t sep = rest.find("://"); sep != std::string::npos) {
        if (lower(rest.substr(0, sep)) != "http") {
            r.fail(variable, "'" + lower(rest.substr(0, sep)) +
                                 "://' proxies are not supported; give an HTTP proxy that "
                                 "allows CONNECT, as http://host:port");
            return std::nullopt;
        }
        rest = rest.substr(sep + 3);
    }
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    http_proxy p;
    if (std::size_t at = rest.rfind('@'); at != std::string::npos) {
        p.authorization = "Basic " + base64_encode(rest.substr(0, at));
        rest = rest.substr(at + 1);
    }
    auto parsed = parse_endpoint("http://" + rest);
    if (!parsed || !parsed->base_path.empty()) {
        r.fail(variable, "is not a proxy URL; write http://[user:password@]host:port");
        return std::nullopt;
    }
    p.host = parsed->host;
    // curl's default proxy port when none is written.
    const std::size_t colon = rest.rfind(':');
    const bool has_port = colon != std::string::npos && rest.find(']', colon) == std::string::npos;
    p.port = has_port ? parsed->port : 1080;
    return p;
}

push_options load_push_options(config::setting_reader& r, const config::settings& common) {
    using std::chrono::milliseconds;
    push_options o;
    o.client.ca_file = read_ca_file(r);
    o.client.connect_timeout =
        milliseconds(r.duration_ms("CENTRAL_DMS_CONNECT_TIMEOUT", 10'000, 600'000));
    o.client.request_timeout = milliseconds(r.duration_ms("CENTRAL_DMS_TIMEOUT", 30'000, 3'600'000));
    for (auto* t : {&o.client.connect_timeout, &o.client.request_timeout}) {
        if (t->count() == 0) *t = milliseconds(1);  // 0 would mean "already expired"
    }
    o.client.user_agent = std::string("opendms-field/") + OPENDMS_VERSION;
    std::vector<long long> backoff = r.duration_list_ms(
        "CENTRAL_DMS_BACKOFF", {30'000, 60'000, 120'000, 300'000, 600'000}, 0, 86'400'000);
    o.backoff.clear();
    for (long long ms : backoff) o.backoff.emplace_back(ms);
    o.jitter = r.decimal("CENTRAL_DMS_JITTER", 0.2, 0.0, 1.0);
    o.batch_size = static_cast<std::size_t>(r.integer("CENTRAL_DMS_BATCH_SIZE", 500, 1, 10'000));
    o.concurrency = static_cast<std::size_t>(r.integer("CENTRAL_DMS_CONCURRENCY", 2, 1, 8));
    o.max_rate = r.decimal("CENTRAL_DMS_MAX_RATE", 0.0, 0.0, 1'000'000.0);
    o.protocol = read_protocol(r);
    o.live_window_s = r.integer("CENTRAL_DMS_LIVE_WINDOW", 60, 0, 86'400);
    o.poll_interval = milliseconds(r.duration_ms("CENTRAL_DMS_POLL_INTERVAL", 2'000, 3'600'000));
    if (o.poll_interval.count() < 10) o.poll_interval = milliseconds(10);
    o.gzip_level = static_cast<int>(r.integer("CENTRAL_DMS_GZIP_LEVEL", 6, 0, 9));
    const bool allow_http = r.boolean("CENTRAL_DMS_ALLOW_HTTP", false);

    if (common.mode != config::deployment_mode::hybrid || !common.central_url) return o;
    auto endpoint = parse_endpoint(*common.central_url);
    if (!endpoint) return o;  // the common settings have reported CENTRAL_DMS_URL already
    o.client.endpoint = *endpoint;
    if (!endpoint->tls && !is_loopback_host(endpoint->host)) {
        if (!allow_http) {
            r.fail("CENTRAL_DMS_URL",
                   "is http:// to " + endpoint->host +
                       ", which would send the token and every record unencrypted; use "
                       "https://, or set CENTRAL_DMS_ALLOW_HTTP=true if the link is protected "
                       "some other way (a VPN)");
        }
        o.insecure_http = true;
    }
    o.client.proxy = proxy_for(*endpoint, r);
    o.token = common.central_token.value_or("");
    o.token_file = common.central_token_file.value_or("");
    o.enabled = true;
    return o;
}

void describe_push(const push_options& o, const config::env_map& env,
                   std::vector<std::string>& lines) {
    auto line = [&](const std::string& name, const std::string& value) {
        lines.push_back(name + "=" + value + " (" + env.origin(name) + ")");
    };
    std::string backoff;
    for (auto d : o.backoff) backoff += (backoff.empty() ? "" : ",") + config::format_seconds(d.count());
    line("CENTRAL_DMS_CA_FILE", o.client.ca_file.empty() ? "(none: the system's CAs)" : o.client.ca_file);
    line("CENTRAL_DMS_ALLOW_HTTP", o.insecure_http ? "true (http:// to a remote host)" : "false");
    line("CENTRAL_DMS_CONNECT_TIMEOUT", config::format_seconds(o.client.connect_timeout.count()));
    line("CENTRAL_DMS_TIMEOUT", config::format_seconds(o.client.request_timeout.count()));
    line("CENTRAL_DMS_BACKOFF", backoff);
    line("CENTRAL_DMS_JITTER", config::format_seconds(static_cast<long long>(o.jitter * 1000)));
    line("CENTRAL_DMS_BATCH_SIZE", std::to_string(o.batch_size));
    line("CENTRAL_DMS_CONCURRENCY", std::to_string(o.concurrency));
    line("CENTRAL_DMS_MAX_RATE",
         o.max_rate > 0 ? config::format_seconds(static_cast<long long>(o.max_rate * 1000)) : "0 (no cap)");
    line("CENTRAL_DMS_PROTOCOL", push_protocol_name(o.protocol));
    line("CENTRAL_DMS_LIVE_WINDOW", std::to_string(o.live_window_s));
    line("CENTRAL_DMS_POLL_INTERVAL", config::format_seconds(o.poll_interval.count()));
    line("CENTRAL_DMS_GZIP_LEVEL", std::to_string(o.gzip_level));
    line("HTTPS_PROXY", o.client.proxy ? o.client.proxy->url() : "(none)");
}

}  // namespace opendms::field
