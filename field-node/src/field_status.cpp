// field_status: the counts behind `opendms-field status`, and their two printed forms.
#include "opendms/field/field_status.hpp"

#include <cstdint>
#include <optional>
#include <string>

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
    "(select min(created_at) from cluster_data where synced = ?)";

std::string number_or(const std::optional<std::int64_t>& v, const std::string& none) {
    return v ? std::to_string(*v) : none;
}

}  // namespace

result<field_status> read_status(db::connection& c, unix_seconds now) {
    auto r = c.query(status_sql, {false, true, false});
    if (!r) return r.error().context("field.status");
    if (r->size() != 1 || r->data[0].cells.size() != 7) {
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
    return s;
}

std::string to_json(const field_status& s) {
    // Every value is an integer or null: nothing to escape.
    return "{\"not_applicable\":" + std::to_string(s.not_applicable) +
           ",\"pending\":" + std::to_string(s.pending) + ",\"synced\":" + std::to_string(s.synced) +
           ",\"quarantined\":" + std::to_string(s.quarantined) +
           ",\"duplicates\":" + std::to_string(s.duplicates) +
           ",\"oldest_pending_age_seconds\":" + number_or(s.oldest_pending_age_seconds, "null") +
           ",\"outbox_depth\":" + std::to_string(s.outbox_depth) + "}";
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
    return out;
}

}  // namespace opendms::field
