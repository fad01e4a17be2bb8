// field_status: the counts behind `opendms-field status`, and their two printed forms.
#include "opendms/field/field_status.hpp"

#include <cstdint>
#include <optional>
#include <string>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "opendms/timefmt.hpp"

namespace opendms::field {

namespace {

// One statement, so one snapshot. The boolean parameters are false, true, false: the
// dialect's own boolean (PostgreSQL) or 0/1 (SQLite, MySQL).
constexpr const char* status_sql =
    "select (select count(*) from cluster_data where synced is null), "
    "(select count(*) from cluster_data where synced = ?), "
    "(select count(*) from cluster_data where synced = ?), "
    "(select count(*) from outbox), "
    "(select count(*) from quarantine), "
    "(select count(*) from mesh_duplicates), "
    "(select min(created_at) from cluster_data where synced = ?), "
    "(select count(*) from outbox where parked_at is not null), "
    "(select count(*) from outbox where parked_at is null and lane = 0), "
    "(select count(*) from outbox where parked_at is null and lane = 1)";

constexpr const char* push_state_sql =
    "select protocol, consecutive_failures, last_attempt_at, last_success_at, last_error, "
    "next_attempt_at, auth_alarm_at, bytes_sent, bytes_received from push_state where id = 1";

std::optional<unix_seconds> time_cell(const db::row& r, std::size_t i) {
    auto text = r.get_text(i);
    return text ? parse_time(*text) : std::nullopt;
}

std::string time_or(const std::optional<unix_seconds>& t, const std::string& none) {
    return t ? format_sql_time(*t) : none;
}

}  // namespace

result<field_status> read_status(db::connection& c, unix_seconds now) {
    auto r = c.query(status_sql, {false, true, false});
    if (!r) return r.error().context("field.status");
    if (r->size() != 1 || r->data[0].cells.size() != 10) {
        return status(errc::internal, "field.status: the counts query returned no row");
    }
    const db::row& row = r->data[0];
    field_status s;
    s.not_applicable = row.get_int(0).value_or(0);
    s.pending = row.get_int(1).value_or(0);
    s.synced = row.get_int(2).value_or(0);
    s.outbox_depth = row.get_int(3).value_or(0);
    s.quarantined = row.get_int(4).value_or(0);
    s.duplicates = row.get_int(5).value_or(0);
    if (auto oldest = row.get_text(6)) {
        auto t = parse_time(*oldest);
        if (!t) {
            return status(errc::corrupt, "field.status: the oldest pending record's created_at '" +
                                             *oldest + "' is not a time");
        }
        s.oldest_pending_age_seconds = now > *t ? now - *t : 0;
    }
    s.parked = row.get_int(7).value_or(0);
    s.live = row.get_int(8).value_or(0);
    s.backlog = row.get_int(9).value_or(0);
    auto p = c.query(push_state_sql, {});
    if (!p) return p.error().context("field.status: push_state");
    if (!p->empty()) {
        const db::row& q = p->data[0];
        s.protocol = q.get_text(0);
        s.consecutive_failures = q.get_int(1).value_or(0);
        s.last_attempt_at = time_cell(q, 2);
        s.last_success_at = time_cell(q, 3);
        s.last_error = q.get_text(4);
        s.next_attempt_at = time_cell(q, 5);
        s.auth_alarm_since = time_cell(q, 6);
        s.bytes_sent = q.get_int(7).value_or(0);
        s.bytes_received = q.get_int(8).value_or(0);
    }
    return s;
}

std::string to_json(const field_status& s) {
    rapidjson::StringBuffer out;
    rapidjson::Writer<rapidjson::StringBuffer> w(out);
    auto number = [&](const char* key, std::int64_t v) {
        w.Key(key);
        w.Int64(v);
    };
    auto text = [&](const char* key, const std::optional<std::string>& v) {
        w.Key(key);
        if (v) {
            w.String(v->data(), static_cast<rapidjson::SizeType>(v->size()));
        } else {
            w.Null();
        }
    };
    auto time = [&](const char* key, const std::optional<unix_seconds>& t) {
        text(key, t ? std::optional<std::string>(format_sql_time(*t)) : std::nullopt);
    };
    w.StartObject();
    number("not_applicable", s.not_applicable);
    number("pending", s.pending);
    number("synced", s.synced);
    number("quarantined", s.quarantined);
    number("duplicates", s.duplicates);
    w.Key("oldest_pending_age_seconds");
    if (s.oldest_pending_age_seconds) {
        w.Int64(*s.oldest_pending_age_seconds);
    } else {
        w.Null();
    }
    number("outbox_depth", s.outbox_depth);
    number("parked", s.parked);
    number("live", s.live);
    number("backlog", s.backlog);
    text("protocol", s.protocol);
    number("consecutive_failures", s.consecutive_failures);
    time("last_attempt_at", s.last_attempt_at);
    time("last_success_at", s.last_success_at);
    text("last_error", s.last_error);
    time("next_attempt_at", s.next_attempt_at);
    w.Key("auth_alarm");
    w.Bool(s.auth_alarm_since.has_value());
    time("auth_alarm_since", s.auth_alarm_since);
    number("bytes_sent", s.bytes_sent);
    number("bytes_received", s.bytes_received);
    w.Key("damaged_databases");
    w.StartArray();
    for (const std::string& f : s.damaged_databases) w.String(f.data(), static_cast<rapidjson::SizeType>(f.size()));
    w.EndArray();
    w.EndObject();
    return std::string(out.GetString(), out.GetSize());
}

std::string to_text(const field_status& s) {
    std::string out;
    out += "records, sync not applicable: " + std::to_string(s.not_applicable) + "\n";
    out += "records pending: " + std::to_string(s.pending) + "\n";
    out += "records synced: " + std::to_string(s.synced) + "\n";
    out += "outbox depth: " + std::to_string(s.outbox_depth) + "\n";
    out += "quarantined messages: " + std::to_string(s.quarantined) + "\n";
    out += "mesh duplicates: " + std::to_string(s.duplicates) + "\n";
    const auto& age = s.oldest_pending_age_seconds;
    out +=
        "oldest pending age: " + (age ? std::to_string(*age) + " s" : std::string("none")) + "\n";
    out += "parked (rejected by the central server): " + std::to_string(s.parked) + "\n";
    out += "outbox lanes: live " + std::to_string(s.live) + ", backlog " +
           std::to_string(s.backlog) + "\n";
    if (s.auth_alarm_since) {
        out += "AUTH ALARM: the central server refuses our token since " +
               format_sql_time(*s.auth_alarm_since) + " UTC\n";
    }
    out += "last success: " + time_or(s.last_success_at, "never") + "\n";
    out += "last attempt: " + time_or(s.last_attempt_at, "never") + "\n";
    out += "consecutive failures: " + std::to_string(s.consecutive_failures) + "\n";
    if (s.last_error) out += "last error: " + *s.last_error + "\n";
    out += "next attempt: " + time_or(s.next_attempt_at, "as soon as there are records") + "\n";
    out += "protocol: " + s.protocol.value_or("not detected yet") + "\n";
    out += "bytes sent/received: " + std::to_string(s.bytes_sent) + " / " +
           std::to_string(s.bytes_received) + "\n";
    for (const std::string& f : s.damaged_databases) {
        out += "DATABASE ALARM: a damaged database was kept aside: " + f + "\n";
    }
    return out;
}

}  // namespace opendms::field
