// The field node's settings: MQTT_*, FIELD_NODE_ID, MESH_DUPLICATE_WINDOW,
// MQTT_MAX_MESSAGE_BYTES and LOG_LEVEL (docs/configuration.md, "Field node").
#include "opendms/field/field_settings.hpp"

#include <mosquitto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>

namespace opendms::field {
namespace {

constexpr std::size_t max_node_id = 64;
constexpr long long max_message_limit = 1024 * 1024;  // the shipped broker's message_size_limit

bool is_node_id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool has_space_or_control(const std::string& s) {
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return true;
    }
    return false;
}

/// The host name with every character outside [A-Za-z0-9._-] replaced by '-', cut to 64;
/// "field-node" when there is no usable host name.
std::string default_node_id() {
    char name[HOST_NAME_MAX + 1] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "field-node";
    std::string id;
    for (const char* p = name; *p != '\0' && id.size() < max_node_id; ++p) {
        id += is_node_id_char(*p) ? *p : '-';
    }
    if (id.find_first_not_of('-') == std::string::npos) return "field-node";
    return id;
}

std::string read_node_id(config::setting_reader& r) {
    std::string fallback = default_node_id();
    std::string id = r.text("FIELD_NODE_ID", fallback);
    bool ok = !id.empty() && id.size() <= max_node_id;
    for (char c : id) ok = ok && is_node_id_char(c);
    if (ok) return id;
    r.fail("FIELD_NODE_ID", "'" + id +
                                "' is not a node id; use 1 to 64 characters from A-Z, a-z, "
                                "0-9, '.', '_' and '-' (it is stored as source_node of every "
                                "record), or remove it to use the host name");
    return fallback;
}

std::string read_host(config::setting_reader& r) {
    std::string host = r.text("MQTT_HOST", "127.0.0.1");
    if (!has_space_or_control(host)) return host;
    r.fail("MQTT_HOST",
           "contains whitespace or control characters; write only the broker's "
           "host name or address, e.g. 127.0.0.1");
    return "127.0.0.1";
}

void read_credentials(config::setting_reader& r, mqtt_options& m) {
    m.username = r.text("MQTT_USERNAME", "");
    m.password = r.text("MQTT_PASSWORD", "");
    // MQTT 3.1.1 (3.1.2.9) allows a password only together with a user name.
    if (!m.password.empty() && m.username.empty()) {
        r.fail("MQTT_USERNAME",
               "MQTT_PASSWORD is set but MQTT_USERNAME is not; MQTT sends a "
               "password only with a user name: set MQTT_USERNAME or remove "
               "MQTT_PASSWORD");
    }
}

std::string read_ca_file(config::setting_reader& r) {
    std::optional<std::string> path = r.optional_text("MQTT_TLS_CA_FILE");
    if (!path) return {};
    struct stat st {};
    if (::stat(path->c_str(), &st) != 0) {
        r.fail("MQTT_TLS_CA_FILE", "cannot read '" + *path + "': " + std::strerror(errno) +
                                       "; give the path of the PEM file with the CA "
                                       "certificate that signed the broker's certificate, or "
                                       "remove it for a plain connection");
        return *path;
    }
    if (!S_ISREG(st.st_mode) || ::access(path->c_str(), R_OK) != 0) {
        r.fail("MQTT_TLS_CA_FILE", "'" + *path +
                                       "' is not a readable file; give the path of the PEM "
                                       "file with the CA certificate (readable by this user)");
    }
    return *path;
}

std::vector<std::string> read_topics(config::setting_reader& r) {
    std::vector<std::string> topics = r.list("MQTT_TOPIC", {"hub/event"});
    if (topics.empty()) {
        r.fail("MQTT_TOPIC",
               "lists no topic; write one or more topic filters separated by "
               "commas, e.g. hub/event");
        return {"hub/event"};
    }
    for (const std::string& t : topics) {
        if (t.rfind("$share/", 0) == 0) {
            r.fail("MQTT_TOPIC", "'" + t +
                                     "' is a shared subscription; write the plain topic and "
                                     "set MQTT_CONNECTIONS above 1 to share it");
        } else if (mosquitto_sub_topic_check(t.c_str()) != MOSQ_ERR_SUCCESS ||
                   has_space_or_control(t)) {
            r.fail("MQTT_TOPIC", "'" + t +
                                     "' is not a valid topic filter ('+' and '#' only as a "
                                     "whole level, '#' last); e.g. hub/event or hub/#");
        }
    }
    return topics;
}

std::string read_client_id(config::setting_reader& r, const std::string& node_id) {
    std::string fallback = "opendms-field-" + node_id;
    std::string id = r.text("MQTT_CLIENT_ID", fallback);
    if (id.size() <= 200 && !has_space_or_control(id) &&
        mosquitto_validate_utf8(id.c_str(), static_cast<int>(id.size())) == MOSQ_ERR_SUCCESS) {
        return id;
    }
    r.fail("MQTT_CLIENT_ID",
           "is not a usable client id; use up to 200 characters of UTF-8 "
           "without spaces or control characters, the same on every start (the "
           "broker keeps the queue of unacknowledged messages under it)");
    return fallback;
}

log::level read_log_level(config::setting_reader& r) {
    std::string name =
        r.choice("LOG_LEVEL", "info", {"debug", "info", "notice", "warning", "error"}, "log level");
    log::level l = log::level::info;
    (void)log::parse_level(name, l);
    return l;
}

}  // namespace

ingest_options field_settings::ingest() const {
    ingest_options o;
    o.mode = common.mode;
    o.node_id = node_id;
    o.duplicate_window_s = duplicate_window_s;
    o.limits.max_bytes = max_message_bytes;
    return o;
}

field_settings load_field_settings(const config::env_map& env, const config::settings& common,
                                   std::vector<config::problem>& problems) {
    field_settings s;
    s.common = common;
    config::setting_reader r(env, problems);
    s.node_id = read_node_id(r);
    mqtt_options& m = s.mqtt;
    m.host = read_host(r);
    m.port = static_cast<int>(r.integer("MQTT_PORT", 1883, 1, 65535));
    read_credentials(r, m);
    m.tls_ca_file = read_ca_file(r);
    m.topics = read_topics(r);
    m.client_id = read_client_id(r, s.node_id);
    // libmosquitto refuses a keepalive under 5 s.
    m.keepalive_s = static_cast<int>(r.integer("MQTT_KEEPALIVE", 30, 5, 65535));
    m.reconnect_max_s = static_cast<int>(r.integer("MQTT_RECONNECT_MAX", 30, 1, 3600));
    m.reconnect_min_s = std::min(m.reconnect_min_s, m.reconnect_max_s);
    m.connections = static_cast<int>(r.integer("MQTT_CONNECTIONS", 1, 1, 16));
    s.duplicate_window_s = r.integer("MESH_DUPLICATE_WINDOW", 600, 0, 86400);
    s.max_message_bytes = static_cast<std::size_t>(
        r.integer("MQTT_MAX_MESSAGE_BYTES", 16 * 1024, 256, max_message_limit));
    s.log_level = read_log_level(r);
    s.push = load_push_options(r, common);
    s.metrics = load_metrics_options(r);
    return s;
}

std::vector<std::string> describe(const field_settings& s, const config::env_map& env) {
    std::vector<std::string> lines;
    auto line = [&](const std::string& name, const std::string& value) {
        lines.push_back(name + "=" + (value.empty() ? "(empty)" : value) + " (" + env.origin(name) +
                        ")");
    };
    const mqtt_options& m = s.mqtt;
    std::string topics;
    for (const std::string& t : m.topics) topics += (topics.empty() ? "" : ",") + t;
    const char* level_names[] = {"error", "warning", "notice", "info", "debug"};
    std::string level = level_names[static_cast<int>(s.log_level) - 3];
    line("MQTT_HOST", m.host);
    line("MQTT_PORT", std::to_string(m.port));
    line("MQTT_USERNAME", m.username);
    line("MQTT_PASSWORD", config::mask_secret(m.password));
    line("MQTT_TLS_CA_FILE", m.tls_ca_file.empty() ? "(none: plain TCP)" : m.tls_ca_file);
    line("MQTT_TOPIC", topics);
    line("MQTT_CLIENT_ID", m.client_id);
    line("MQTT_KEEPALIVE", std::to_string(m.keepalive_s));
    line("MQTT_RECONNECT_MAX", std::to_string(m.reconnect_max_s));
    line("MQTT_CONNECTIONS", std::to_string(m.connections));
    line("FIELD_NODE_ID", s.node_id);
    line("MESH_DUPLICATE_WINDOW", std::to_string(s.duplicate_window_s));
    line("MQTT_MAX_MESSAGE_BYTES", std::to_string(s.max_message_bytes));
    line("LOG_LEVEL", level);
    describe_push(s.push, env, lines);
    describe_metrics(s.metrics, env, lines);
    return lines;
}

}  // namespace opendms::field
