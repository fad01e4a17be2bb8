// outbox_store: lanes, batches and settling on SQLite (see outbox_store.hpp).
//
// Id lists travel as one JSON array parameter read with json_each, so each statement has
// one text (cached once per connection) whatever the batch size.
#include "opendms/field/outbox_store.hpp"

#include <string>

#include "opendms/timefmt.hpp"

namespace opendms::field {
namespace {

constexpr const char* what = "outbox";

constexpr const char* batch_sql_head =
    "select o.id, o.attempts, o.lane, c.id, c.created_at, c.updated_at, c.duck_id, c.topic, "
    "c.message_id, c.payload, c.payload_encoding, c.path, c.origin, c.destination, c.hops, "
    "c.duck_type, c.synced, c.synced_at, c.uuid, c.source_node "
    "from outbox o join cluster_data c on c.id = o.cluster_data_id "
    "where o.parked_at is null and o.lane = ? ";

std::optional<unix_seconds> time_of(const db::row& r, std::size_t i) {
    auto text = r.get_text(i);
    if (!text) return std::nullopt;
    return parse_time(*text);
}

outbox_item item_of(const db::row& r) {
    outbox_item it;
    it.outbox_id = r.get_int(0).value_or(0);
    it.attempts = r.get_int(1).value_or(0);
    it.lane = static_cast<int>(r.get_int(2).value_or(0));
    cluster_data& d = it.record;
    d.id = r.get_int(3);
    d.created_at = time_of(r, 4);
    d.updated_at = time_of(r, 5);
    d.duck_id = r.get_text(6).value_or("");
    d.topic = r.get_text(7).value_or("");
    d.message_id = r.get_text(8).value_or("");
    d.payload = r.get_text(9);
    d.payload_encoding = r.get_text(10);
    d.path = r.get_text(11);
    d.origin = r.get_text(12);
    d.destination = r.get_text(13);
    d.hops = r.get_int(14);
    d.duck_type = r.get_int(15);
    d.synced = sync_state_from_column(r.get_bool(16));
    d.synced_at = time_of(r, 17);
    d.uuid = r.get_text(18);
    d.source_node = r.get_text(19);
    return it;
}

db::value opt_time(const std::optional<unix_seconds>& t) {
    return t ? db::value(format_sql_time(*t)) : db::null();
}

/// "[1,2,3]": ids for json_each.
template <typename Get>
std::string id_array(std::size_t n, Get get) {
    std::string out = "[";
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0) out += ',';
        out += std::to_string(get(i));
    }
    out += ']';
    return out;
}

status exec(db::connection& c, const char* step, const std::string& sql,
            const std::vector<db::value>& params) {
    auto n = c.exec(sql, params);
    return n ? status::ok() : n.error().context(std::string(what) + "." + step);
}

}  // namespace

outbox_store::outbox_store(db::connection& c, const clock& clk) : c_(c), clock_(clk) {}

result<std::int64_t> outbox_store::adopt_orphans() {
    auto n = c_.exec(
        "insert into outbox (cluster_data_id, lane, created_at) "
        "select c.id, 1, coalesce(c.created_at, ?) from cluster_data c "
        "where c.synced = 0 and not exists (select 1 from outbox o where o.cluster_data_id = c.id)",
        {format_sql_time(clock_.now())});
    if (!n) return n.error().context(std::string(what) + ".adopt_orphans");
    return n;
}

result<std::int64_t> outbox_store::demote(unix_seconds cutoff) {
    auto n = c_.exec(
        "update outbox set lane = 1 where parked_at is null and lane = 0 and created_at < ?",
        {format_sql_time(cutoff)});
    if (!n) return n.error().context(std::string(what) + ".demote");
    return n;
}

result<std::vector<outbox_item>> outbox_store::next_batch(std::size_t max,
                                                         const std::vector<std::int64_t>& skip) {
    std::vector<outbox_item> items;
    if (max == 0) return items;
    // Two texts per lane (with and without the rows to skip), each cached once.
    static const std::string live = std::string(batch_sql_head) + "order by o.id desc limit ?";
    static const std::string backlog = std::string(batch_sql_head) + "order by o.id limit ?";
    static const std::string skipping =
        "and o.id not in (select value from json_each(?)) ";
    static const std::string live_skip = std::string(batch_sql_head) + skipping + "order by o.id desc limit ?";
    static const std::string backlog_skip = std::string(batch_sql_head) + skipping + "order by o.id limit ?";
    const std::string skip_ids = id_array(skip.size(), [&](std::size_t i) { return skip[i]; });
    auto fetch = [&](int lane, std::size_t n) {
        if (skip.empty()) {
            return c_.query(lane == 0 ? live : backlog,
                            {std::int64_t{lane}, static_cast<std::int64_t>(n)});
        }
        return c_.query(lane == 0 ? live_skip : backlog_skip,
                        {std::int64_t{lane}, skip_ids, static_cast<std::int64_t>(n)});
    };
    auto rows = fetch(0, max);
    if (!rows) return rows.error().context(std::string(what) + ".next_batch (live)");
    items.reserve(std::min<std::size_t>(max, 1024));
    for (const db::row& r : rows->data) items.push_back(item_of(r));
    if (items.size() < max) {
        rows = fetch(1, max - items.size());
        if (!rows) return rows.error().context(std::string(what) + ".next_batch (backlog)");
        for (const db::row& r : rows->data) items.push_back(item_of(r));
    }
    return items;
}

status outbox_store::settle(const settlement& s) {
    const std::string now = format_sql_time(clock_.now());
    return db::in_transaction(c_, [&]() -> status {
        if (!s.delivered.empty()) {
            const std::string records = id_array(s.delivered.size(), [&](std::size_t i) {
                return s.delivered[i]->record.id.value_or(0);
            });
            const std::string rows = id_array(s.delivered.size(),
                                              [&](std::size_t i) { return s.delivered[i]->outbox_id; });
            if (status st = exec(c_, "settle (synced)",
                                 "update cluster_data set synced = 1, synced_at = ? "
                                 "where id in (select value from json_each(?))",
                                 {now, records});
                !st) {
                return st;
            }
            if (status st = exec(c_, "settle (delete)",
                                 "delete from outbox where id in (select value from json_each(?))",
                                 {rows});
                !st) {
                return st;
            }
        }
        for (const auto& [item, reason] : s.parked) {
            if (status st = exec(c_, "settle (park)",
                                 "update outbox set parked_at = ?, parked_reason = ?, "
                                 "attempts = attempts + 1, last_attempt_at = ?, last_error = ? "
                                 "where id = ?",
                                 {now, reason, now, reason, item->outbox_id});
                !st) {
                return st;
            }
        }
        if (!s.failed.empty()) {
            const std::string rows =
                id_array(s.failed.size(), [&](std::size_t i) { return s.failed[i]->outbox_id; });
            if (status st = exec(c_, "settle (failed)",
                                 "update outbox set attempts = attempts + 1, last_attempt_at = ?, "
                                 "last_error = ?, next_attempt_at = ? "
                                 "where id in (select value from json_each(?))",
                                 {now, s.error, opt_time(s.next_attempt_at), rows});
                !st) {
                return st;
            }
        }
        return save_state_in_transaction(s.state);
    });
}

result<push_state_row> outbox_store::load_state() {
    auto rows = c_.query(
        "select protocol, consecutive_failures, last_attempt_at, last_success_at, last_error, "
        "next_attempt_at, auth_alarm_at, bytes_sent, bytes_received from push_state where id = 1",
        {});
    if (!rows) return rows.error().context(std::string(what) + ".load_state");
    push_state_row s;
    if (rows->empty()) return s;
    const db::row& r = (*rows)[0];
    s.protocol = r.get_text(0);
    s.consecutive_failures = r.get_int(1).value_or(0);
    s.last_attempt_at = time_of(r, 2);
    s.last_success_at = time_of(r, 3);
    s.last_error = r.get_text(4);
    s.next_attempt_at = time_of(r, 5);
    s.auth_alarm_at = time_of(r, 6);
    s.bytes_sent = r.get_int(7).value_or(0);
    s.bytes_received = r.get_int(8).value_or(0);
    return s;
}

status outbox_store::save_state_in_transaction(const push_state_row& st) {
    return exec(c_, "save_state",
                "insert into push_state (id, protocol, consecutive_failures, last_attempt_at, "
                "last_success_at, last_error, next_attempt_at, auth_alarm_at, bytes_sent, "
                "bytes_received, updated_at) values (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "on conflict (id) do update set protocol = excluded.protocol, "
                "consecutive_failures = excluded.consecutive_failures, "
                "last_attempt_at = excluded.last_attempt_at, "
                "last_success_at = excluded.last_success_at, last_error = excluded.last_error, "
                "next_attempt_at = excluded.next_attempt_at, "
                "auth_alarm_at = excluded.auth_alarm_at, bytes_sent = excluded.bytes_sent, "
                "bytes_received = excluded.bytes_received, updated_at = excluded.updated_at",
                {db::opt(st.protocol), st.consecutive_failures, opt_time(st.last_attempt_at),
                 opt_time(st.last_success_at), db::opt(st.last_error), opt_time(st.next_attempt_at),
                 opt_time(st.auth_alarm_at), st.bytes_sent, st.bytes_received,
                 format_sql_time(clock_.now())});
}

status outbox_store::save_state(const push_state_row& state) {
    return db::in_transaction(c_, [&] { return save_state_in_transaction(state); });
}

result<std::int64_t> outbox_store::requeue(std::optional<std::int64_t> record_id) {
    std::string sql =
        "update outbox set parked_at = null, parked_reason = null, attempts = 0, "
        "next_attempt_at = null, lane = 1 where parked_at is not null";
    std::vector<db::value> params;
    if (record_id) {
        sql += " and cluster_data_id = ?";
        params.emplace_back(*record_id);
    }
    auto n = c_.exec(sql, params);
    if (!n) return n.error().context(std::string(what) + ".requeue");
    return n;
}

}  // namespace opendms::field
