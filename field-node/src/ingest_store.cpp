// ingest_store: one gateway message -> one committed transaction (record, mesh duplicate
// or quarantine row). See ingest_store.hpp for the contract.
#include "opendms/field/ingest_store.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "opendms/timefmt.hpp"
#include "opendms/uuid.hpp"

namespace opendms::field {

const char* ingest_outcome_name(ingest_outcome o) noexcept {
    switch (o) {
        case ingest_outcome::stored:
            return "stored";
        case ingest_outcome::mesh_duplicate:
            return "mesh_duplicate";
        case ingest_outcome::quarantined:
            return "quarantined";
    }
    return "unknown";
}

namespace {

constexpr const char* what = "ingest.store";

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when it is not one
// (stray continuation byte, overlong form, surrogate, past U+10FFFF, cut short).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b = byte(i);
    if (b < 0x80) return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        if (b == 0xe0) lo = 0xa0;
        if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        if (b == 0xf0) lo = 0x90;
        if (b == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
    }
    return n;
}

// Text that every dialect's text column accepts: valid UTF-8 without NUL, each invalid
// byte and NUL replaced by '?', at most max_bytes long and never cut inside a character.
// (PostgreSQL refuses invalid UTF-8 and NUL in text, and MySQL's strict mode refuses
// invalid UTF-8: either would fail the quarantine insert and the message would never
// be stored. The exact bytes are kept in quarantine.raw.)
std::string storable_text(std::string_view in, std::size_t max_bytes) {
    std::string out;
    out.reserve(in.size() < max_bytes ? in.size() : max_bytes);
    for (std::size_t i = 0; i < in.size();) {
        std::size_t n = in[i] == '\0' ? 0 : utf8_sequence(in, i);
        if (out.size() + (n == 0 ? 1 : n) > max_bytes) break;
        if (n == 0) {
            out += '?';
            ++i;
        } else {
            out.append(in.substr(i, n));
            i += n;
        }
    }
    return out;
}

constexpr std::size_t topic_column_bytes = 255;
constexpr std::size_t unlimited = static_cast<std::size_t>(-1);

// Runs fn in one transaction: commits when it succeeds, rolls back on any failure.
template <typename Fn>
result<ingest_outcome> in_one_transaction(db::connection& c, Fn&& fn) {
    if (status s = c.begin(); !s) {
        (void)c.rollback();  // harmless when BEGIN itself did not open one
        return s.context(std::string(what) + ": begin");
    }
    result<ingest_outcome> r = fn();
    if (!r) {
        (void)c.rollback();
        return r;
    }
    if (status s = c.commit(); !s) {
        (void)c.rollback();
        return s.context(std::string(what) + ": commit");
    }
    return r;
}

// The id of a record with the same data stored since window_start, if any. The query
// has no ORDER BY/LIMIT (a planner could then prefer walking the primary key), so
// it returns the few matching ids and the first copy is picked here.
result<std::optional<std::int64_t>> find_original(db::connection& c, const cluster_data& r,
                                                  unix_seconds window_start) {
    std::string sql =
        "select id from cluster_data where duck_id = ? and message_id = ? and updated_at >= ?";
    std::vector<db::value> params = {r.duck_id, r.message_id, format_sql_time(window_start)};
    // One statement per NULL pattern: `= NULL` never matches, and `IS` is not portable.
    if (!r.payload) {
        sql += " and payload is null";
    } else if (c.kind() == db::dialect::mysql) {
        // utf8mb4_unicode_ci would call "Hello" and "HELLO " equal.
        sql += " and cast(payload as binary) = cast(? as binary)";
        params.emplace_back(*r.payload);
    } else {
        sql += " and payload = ?";
        params.emplace_back(*r.payload);
    }
    if (!r.payload_encoding) {
        sql += " and payload_encoding is null";
    } else {
        sql += " and payload_encoding = ?";
        params.emplace_back(*r.payload_encoding);
    }
    auto rows = c.query(sql, params);
    if (!rows) return rows.error().context(std::string(what) + ": find duplicate");
    std::optional<std::int64_t> first;
    for (const db::row& row : rows->data) {
        auto id = row.get_int(0);
        if (id && (!first || *id < *first)) first = id;
    }
    return first;
}

status insert_duplicate(db::connection& c, std::int64_t original, const cluster_data& r,
                        const std::string& now) {
    auto n =
        c.exec("insert into mesh_duplicates (cluster_data_id, received_at, hops) values (?, ?, ?)",
               {original, now, db::opt(r.hops)});
    return n ? status::ok() : n.error().context(std::string(what) + ": insert mesh duplicate");
}

result<std::int64_t> insert_record(db::connection& c, const ingest_options& o,
                                   const cluster_data& r, const std::string& now,
                                   std::int64_t now_ms) {
    const db::value synced =
        o.mode == config::deployment_mode::hybrid ? db::value(false) : db::null();
    const db::value source = o.node_id.empty() ? db::null() : db::value(o.node_id);
    auto id = c.insert(
        "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, payload, "
        "payload_encoding, path, origin, destination, hops, duck_type, synced, uuid, "
        "source_node) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        {now, now, r.duck_id, r.topic, r.message_id, db::opt(r.payload),
         db::opt(r.payload_encoding), db::opt(r.path), db::opt(r.origin), db::opt(r.destination),
         db::opt(r.hops), db::opt(r.duck_type), synced, new_uuid_v7(now_ms), source});
    if (!id) return id.error().context(std::string(what) + ": insert record");
    return id;
}

status insert_outbox_entry(db::connection& c, std::int64_t record_id, const std::string& now) {
    auto n = c.exec("insert into outbox (cluster_data_id, lane, created_at) values (?, ?, ?)",
                    {record_id, std::int64_t{0}, now});
    return n ? status::ok() : n.error().context(std::string(what) + ": insert outbox entry");
}

// `refused` is set when the database refused the record's data (errc::invalid_argument
// from the INSERT itself: a value too long for its column, bytes its text type cannot
// hold). Errors of the other steps are not the data's fault and are only returned.
result<ingest_outcome> store_record(db::connection& c, const ingest_options& o,
                                    const cluster_data& r, unix_seconds now, std::int64_t now_ms,
                                    bool& refused) {
    const std::string now_text = format_sql_time(now);
    if (o.duplicate_window_s > 0) {
        auto original = find_original(c, r, now - o.duplicate_window_s);
        if (!original) return original.error();
        if (*original) {
            if (status s = insert_duplicate(c, **original, r, now_text); !s) return s;
            return ingest_outcome::mesh_duplicate;
        }
    }
    auto id = insert_record(c, o, r, now_text, now_ms);
    if (!id) {
        refused = id.error().code() == errc::invalid_argument;
        return id.error();
    }
    if (o.mode == config::deployment_mode::hybrid) {
        if (status s = insert_outbox_entry(c, *id, now_text); !s) return s;
    }
    return ingest_outcome::stored;
}

result<ingest_outcome> store_quarantine(db::connection& c, std::string_view topic,
                                        std::string_view bytes, const std::string& reason,
                                        unix_seconds now) {
    auto n = c.exec("insert into quarantine (received_at, topic, raw, reason) values (?, ?, ?, ?)",
                    {format_sql_time(now), storable_text(topic, topic_column_bytes),
                     db::blob{std::string(bytes)}, storable_text(reason, unlimited)});
    if (!n) return n.error().context(std::string(what) + ": insert quarantine");
    return ingest_outcome::quarantined;
}

// One message's savepoint inside a batch transaction.
constexpr const char* savepoint_sql = "SAVEPOINT ingest_message";
constexpr const char* rollback_to_sql = "ROLLBACK TO SAVEPOINT ingest_message";
constexpr const char* release_sql = "RELEASE SAVEPOINT ingest_message";

// SQLite runs them as cached prepared statements (parsing each costs about as much as
// running it); the servers get a plain script, as MySQL cannot prepare every
// transaction-control statement.
status run_control(db::connection& c, const char* sql, const char* step) {
    status s = status::ok();
    if (c.kind() == db::dialect::sqlite) {
        auto n = c.exec(sql, {});
        if (!n) s = n.error();
    } else {
        s = c.execute_script(sql);
    }
    return s ? s : s.context(std::string(what) + ": " + step);
}

}  // namespace

ingest_store::ingest_store(db::connection& c, const clock& clk, ingest_options options)
    : c_(c), clock_(clk), options_(std::move(options)) {}

prepared_message ingest_store::prepare(std::string_view mqtt_topic, std::string_view bytes) const {
    prepared_message m;
    m.parsed = parse_gateway_message(mqtt_topic, bytes, options_.limits);
    m.received_ms = clock_.now_ms();
    return m;
}

batch_entry ingest_store::entry(std::string_view mqtt_topic, std::string_view bytes) const {
    batch_entry e;
    e.topic = mqtt_topic;
    e.bytes = bytes;
    e.message = prepare(mqtt_topic, bytes);
    return e;
}

result<ingest_outcome> ingest_store::ingest(std::string_view mqtt_topic, std::string_view bytes) {
    // Parsing is pure: done before BEGIN so that the write lock is held only for the SQL.
    prepared_message m = prepare(mqtt_topic, bytes);
    parse_result& parsed = m.parsed;
    const std::int64_t now_ms = m.received_ms;
    const unix_seconds now = now_ms / 1000;
    std::string reason;
    if (parsed.ok) {
        bool refused = false;
        auto stored = in_one_transaction(
            c_, [&] { return store_record(c_, options_, parsed.record, now, now_ms, refused); });
        // Retrying a record the database refuses cannot help, and failing would make the
        // broker redeliver it forever: keep the message in quarantine instead.
        if (stored || !refused) return stored;
        reason = "the database refused the record: " + stored.error().message();
    } else {
        reason = std::move(parsed.reason);
    }
    return in_one_transaction(c_,
                              [&] { return store_quarantine(c_, mqtt_topic, bytes, reason, now); });
}

result<ingest_outcome> ingest_store::ingest_in_transaction(std::string_view mqtt_topic,
                                                           std::string_view bytes) {
    return ingest_in_transaction(mqtt_topic, bytes, prepare(mqtt_topic, bytes));
}

result<ingest_outcome> ingest_store::ingest_in_transaction(std::string_view mqtt_topic,
                                                           std::string_view bytes,
                                                           const prepared_message& m) {
    const unix_seconds now = m.received_ms / 1000;
    if (!m.parsed.ok) return store_quarantine(c_, mqtt_topic, bytes, m.parsed.reason, now);
    if (status s = run_control(c_, savepoint_sql, "savepoint"); !s) return s;
    bool refused = false;
    auto stored = store_record(c_, options_, m.parsed.record, now, m.received_ms, refused);
    // Any failure but a refusal: the caller rolls back the whole transaction.
    if (!stored && !refused) return stored;
    if (!stored) {
        // A failed statement aborts a PostgreSQL transaction: only the savepoint revives it.
        if (status s = run_control(c_, rollback_to_sql, "rollback to savepoint"); !s) return s;
    }
    if (status s = run_control(c_, release_sql, "release savepoint"); !s) return s;
    if (stored) return stored;
    return store_quarantine(c_, mqtt_topic, bytes,
                            "the database refused the record: " + stored.error().message(), now);
}

batch_counts ingest_store::ingest_batch(const std::vector<batch_entry*>& entries,
                                        const std::string& context) {
    std::vector<batch_entry*> pending = entries;
    batch_counts n;
    while (!pending.empty()) {
        if (status s = c_.begin(); !s) {
            (void)c_.rollback();  // harmless when BEGIN opened nothing
            ++n.rollbacks;
            for (batch_entry* e : pending) e->outcome = s.context(context + ": begin");
            return n;
        }
        auto failed = pending.end();
        for (auto it = pending.begin(); it != pending.end(); ++it) {
            batch_entry* e = *it;
            e->outcome = ingest_in_transaction(e->topic, e->bytes, e->message);
            if (!*e->outcome) {
                failed = it;
                break;
            }
        }
        if (failed != pending.end()) {
            // The transaction is unusable after the failure: drop it and run the others
            // again without the failed message, which keeps its error.
            (void)c_.rollback();
            ++n.rollbacks;
            pending.erase(failed);
            continue;
        }
        if (status s = c_.commit(); !s) {
            (void)c_.rollback();
            ++n.rollbacks;
            for (batch_entry* e : pending) e->outcome = s.context(context + ": commit");
            return n;
        }
        ++n.commits;
        return n;
    }
    return n;
}

}  // namespace opendms::field
