// central_store: validated records -> cluster_data rows, exactly once, one transaction per
// call. See central_store.hpp for the contract.
//
// Per chunk (64, 8 or 1 records): one "neighbour" query fetches every row with the same
// (duck_id, message_id) near each record's time (rows of the same uuid, legacy seed rows
// and mesh originals are all among them); the records are classified in C++ (byte-exact);
// the new ones are inserted with one multi-row INSERT (PostgreSQL/SQLite: RETURNING id,
// uuid tells which rows it inserted; MySQL: a locking lookup by uuid afterwards). A record
// whose mesh original is an earlier record of the same chunk goes into a second INSERT,
// once the original's id is known.
#include "opendms/central/central_store.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "opendms/timefmt.hpp"
#include "opendms/uuid.hpp"

namespace opendms::central {

const char* store_status_name(store_status s) noexcept {
    switch (s) {
        case store_status::stored:
            return "stored";
        case store_status::duplicate:
            return "duplicate";
        case store_status::mesh_duplicate:
            return "mesh_duplicate";
        case store_status::refused:
            return "refused";
    }
    return "unknown";
}

namespace {

using digest = std::array<unsigned char, 32>;

digest sha256(const std::string& data) {
    digest out{};
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 ||
        size != out.size()) {
        throw std::runtime_error("central.store: EVP_Digest(SHA-256) failed");  // a bug
    }
    return out;
}

}  // namespace

std::string derived_uuid(const std::string& duck_id, const std::string& message_id,
                         unix_seconds created_at) {
    std::string input = duck_id;
    input += '\0';
    input += message_id;
    input += '\0';
    input += format_sql_time(created_at);
    digest b = sha256(input);
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x80);  // version 8
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // variant 0b10
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(digits[b[i] >> 4]);
        out.push_back(digits[b[i] & 0x0f]);
    }
    return out;
}

namespace {

constexpr const char* what = "central.store";
constexpr std::array<std::size_t, 3> chunk_sizes = {64, 8, 1};
constexpr unix_seconds max_time = 253402300799;  // 9999-12-31 23:59:59

// ---- statement texts (fixed per dialect and size, so each connection caches a few) -----

std::string placeholders(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += i == 0 ? "?" : ", ?";
    return s;
}

constexpr const char* insert_columns =
    "created_at, updated_at, duck_id, topic, message_id, payload, payload_encoding, path, "
    "origin, destination, hops, duck_type, uuid, source_node, received_from, duplicate_of";
constexpr std::size_t insert_width = 16;

std::string build_neighbour_sql(std::size_t n) {
    std::string s =
        "select id, uuid, duck_id, message_id, payload, payload_encoding, created_at, "
        "duplicate_of from cluster_data where ";
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0) s += " or ";
        s += "(duck_id = ? and message_id = ? and created_at >= ? and created_at <= ?)";
    }
    return s;
}

std::string build_insert_sql(db::dialect d, std::size_t n) {
    std::string s = std::string("insert into cluster_data (") + insert_columns + ") values ";
    const std::string row = "(" + placeholders(insert_width) + ")";
    for (std::size_t i = 0; i < n; ++i) s += (i == 0 ? "" : ", ") + row;
    if (d == db::dialect::mysql) return s + " on duplicate key update uuid = uuid";
    return s + " on conflict (uuid) do nothing returning id, uuid";
}

std::string build_lookup_sql(std::size_t n) {
    return "select id, uuid, created_at from cluster_data where uuid in (" + placeholders(n) + ")";
}

struct statement_texts {
    std::array<std::string, chunk_sizes.size()> neighbours, inserts, lookups;
};

const statement_texts& texts(db::dialect d) {
    static const std::array<statement_texts, 3> all = [] {
        std::array<statement_texts, 3> t;
        for (db::dialect k : {db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql}) {
            statement_texts& s = t[static_cast<std::size_t>(k)];
            for (std::size_t i = 0; i < chunk_sizes.size(); ++i) {
                s.neighbours[i] = build_neighbour_sql(chunk_sizes[i]);
                s.inserts[i] = build_insert_sql(k, chunk_sizes[i]);
                s.lookups[i] = build_lookup_sql(chunk_sizes[i]);
            }
        }
        return t;
    }();
    return all[static_cast<std::size_t>(d)];
}

// The index into chunk_sizes of the smallest size that holds n (1 <= n <= 64).
std::size_t size_index_for(std::size_t n) {
    std::size_t i = chunk_sizes.size() - 1;
    while (i > 0 && chunk_sizes[i] < n) --i;
    return i;
}

// ---- the call's records -------------------------------------------------------------

struct item {
    const cluster_data* record;
    std::string key;    // the uuid column's value
    unix_seconds time;  // created_at
    bool seed;          // key derived from (duck_id, message_id, created_at)
};

std::vector<item> prepare_items(const std::vector<cluster_data>& records, unix_seconds now) {
    std::vector<item> items;
    items.reserve(records.size());
    for (const cluster_data& r : records) {
        item it{&r, {}, r.created_at.value_or(now), false};
        if (r.uuid) {
            it.key = *r.uuid;
        } else if (r.created_at) {
            it.key = derived_uuid(r.duck_id, r.message_id, *r.created_at);
            it.seed = true;
        } else {
            it.key = new_uuid_v7(now * 1000);
        }
        items.push_back(std::move(it));
    }
    return items;
}

struct call_context {
    db::connection& c;
    db::dialect kind;
    db::value received_from;
    std::string now_text;
    std::int64_t window;  // 0: mesh duplicates disabled
    unix_seconds now;
};

bool ascii_iequal(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

// The unique index's notion of "the same uuid": MySQL's utf8mb4_unicode_ci ignores case.
bool same_key(db::dialect d, const std::string& a, const std::string& b) {
    return d == db::dialect::mysql ? ascii_iequal(a, b) : a == b;
}

bool same_packet(const cluster_data& a, const cluster_data& b) {
    return a.duck_id == b.duck_id && a.message_id == b.message_id && a.payload == b.payload &&
           a.payload_encoding == b.payload_encoding;
}

// ---- step 1: the rows near each record ----------------------------------------------

struct neighbour {
    std::int64_t id = 0;
    std::optional<std::string> uuid;
    cluster_data data;  // duck_id, message_id, payload, payload_encoding
    unix_seconds time = 0;
    bool original = false;  // duplicate_of IS NULL
};

result<neighbour> to_neighbour(const db::row& r) {
    neighbour n;
    auto id = r.get_int(0);
    auto time = parse_time(r.get_text(6).value_or(""));
    if (!id || !time) return status(errc::internal, "a row without id or created_at");
    n.id = *id;
    n.uuid = r.get_text(1);
    n.data.duck_id = r.get_text(2).value_or("");
    n.data.message_id = r.get_text(3).value_or("");
    n.data.payload = r.get_text(4);
    n.data.payload_encoding = r.get_text(5);
    n.time = *time;
    n.original = r.is_null(7);
    return n;
}

result<std::vector<neighbour>> find_neighbours(const call_context& ctx, const item* items,
                                               std::size_t n, std::size_t size_index) {
    std::vector<db::value> params;
    params.reserve(4 * n);
    for (std::size_t i = 0; i < n; ++i) {
        const item& it = items[i];
        params.emplace_back(it.record->duck_id);
        params.emplace_back(it.record->message_id);
        params.emplace_back(format_sql_time(std::max<unix_seconds>(it.time - ctx.window, 0)));
        params.emplace_back(format_sql_time(std::min(it.time + ctx.window, max_time)));
    }
    auto rows = ctx.c.query(texts(ctx.kind).neighbours[size_index], params);
    if (!rows) return rows.error().context(std::string(what) + ": find neighbours");
    std::vector<neighbour> out;
    out.reserve(rows->size());
    for (const db::row& r : rows->data) {
        auto nb = to_neighbour(r);
        if (!nb) return nb.error().context(std::string(what) + ": find neighbours");
        out.push_back(std::move(*nb));
    }
    return out;
}

// ---- step 2: classify each record of a chunk ----------------------------------------

enum class plan_kind { existing, same_as_earlier, insert };

struct plan {
    plan_kind kind = plan_kind::insert;
    std::int64_t id = 0;                           // existing: the row
    std::size_t earlier = 0;                       // same_as_earlier: the chunk index of the row
    std::int64_t duplicate_of = 0;                 // insert: an original already stored; 0: none
    std::optional<std::size_t> original_in_chunk;  // insert: an original inserted first
};

std::optional<std::int64_t> existing_row(const call_context& ctx, const item& it,
                                         const std::vector<neighbour>& near) {
    std::optional<std::int64_t> found;
    for (const neighbour& nb : near) {
        bool match = nb.uuid && same_key(ctx.kind, *nb.uuid, it.key);
        // A legacy row (stored before our server, without uuid) of the same seed key.
        match = match || (it.seed && !nb.uuid && nb.time == it.time &&
                          nb.data.duck_id == it.record->duck_id &&
                          nb.data.message_id == it.record->message_id);
        if (match && (!found || nb.id < *found)) found = nb.id;
    }
    return found;
}

// The oldest original (by created_at, then id) within the window: a stored row, or an
// earlier record of the chunk that is to be inserted as an original (a stored row wins a
// tie: its id is older).
void find_original(const call_context& ctx, const item* items, std::size_t index,
                   const std::vector<neighbour>& near, std::vector<plan>& plans) {
    const item& it = items[index];
    plan& p = plans[index];
    auto within = [&](unix_seconds t) {
        return t >= it.time - ctx.window && t <= it.time + ctx.window;
    };
    std::optional<unix_seconds> best;
    for (const neighbour& nb : near) {
        if (!nb.original || !within(nb.time) || !same_packet(nb.data, *it.record)) continue;
        if (!best || nb.time < *best || (nb.time == *best && nb.id < p.duplicate_of)) {
            best = nb.time;
            p.duplicate_of = nb.id;
        }
    }
    for (std::size_t j = 0; j < index; ++j) {
        const plan& q = plans[j];
        if (q.kind != plan_kind::insert || q.duplicate_of != 0 || q.original_in_chunk) continue;
        if (!within(items[j].time) || !same_packet(*items[j].record, *it.record)) continue;
        if (!best || items[j].time < *best) {
            best = items[j].time;
            p.duplicate_of = 0;
            p.original_in_chunk = j;
        }
    }
}

// An earlier record of the chunk with the same key: this one is its duplicate.
std::optional<plan> same_as_earlier(const call_context& ctx, const item* items, std::size_t i,
                                    const std::vector<plan>& plans) {
    for (std::size_t j = 0; j < i; ++j) {
        if (!same_key(ctx.kind, items[j].key, items[i].key)) continue;
        if (plans[j].kind != plan_kind::insert) return plans[j];  // already resolved
        plan p;
        p.kind = plan_kind::same_as_earlier;
        p.earlier = j;
        return p;
    }
    return std::nullopt;
}

std::vector<plan> classify(const call_context& ctx, const item* items, std::size_t n,
                           const std::vector<neighbour>& near) {
    std::vector<plan> plans(n);
    for (std::size_t i = 0; i < n; ++i) {
        plan& p = plans[i];
        if (auto id = existing_row(ctx, items[i], near)) {
            p.kind = plan_kind::existing;
            p.id = *id;
        } else if (auto earlier = same_as_earlier(ctx, items, i, plans)) {
            p = *earlier;
        } else if (ctx.window > 0) {
            find_original(ctx, items, i, near, plans);
        }
    }
    return plans;
}

// ---- step 3: insert the new rows ----------------------------------------------------

struct row_result {
    std::int64_t id = 0;
    bool inserted = false;  // by this call (else another transaction stored the uuid first)
    bool found = false;
};

void append_row(const call_context& ctx, const item& it, std::int64_t duplicate_of,
                std::vector<db::value>& params) {
    const cluster_data& r = *it.record;
    params.emplace_back(format_sql_time(it.time));
    params.emplace_back(ctx.now_text);
    params.emplace_back(r.duck_id);
    params.emplace_back(r.topic);
    params.emplace_back(r.message_id);
    params.push_back(db::opt(r.payload));
    params.push_back(db::opt(r.payload_encoding));
    params.push_back(db::opt(r.path));
    params.push_back(db::opt(r.origin));
    params.push_back(db::opt(r.destination));
    params.push_back(db::opt(r.hops));
    params.push_back(db::opt(r.duck_type));
    params.emplace_back(it.key);
    params.push_back(db::opt(r.source_node));
    params.push_back(ctx.received_from);
    params.push_back(duplicate_of != 0 ? db::value(duplicate_of) : db::null());
}

// Rows by uuid, after an INSERT that skipped some (or, on MySQL, any) of them.
status look_up_rows(const call_context& ctx, const std::vector<const item*>& rows,
                    std::vector<row_result>& results) {
    std::vector<std::size_t> missing;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (!results[i].found) missing.push_back(i);
    }
    if (missing.empty()) return status::ok();
    const std::size_t size_index = size_index_for(missing.size());
    std::vector<db::value> params;
    for (std::size_t k = 0; k < chunk_sizes[size_index]; ++k) {
        params.emplace_back(rows[missing[std::min(k, missing.size() - 1)]]->key);
    }
    auto found = ctx.c.query(texts(ctx.kind).lookups[size_index], params);
    if (!found) return found.error().context(std::string(what) + ": look up ids");
    for (std::size_t i : missing) {
        for (const db::row& r : found->data) {
            if (!same_key(ctx.kind, r.get_text(1).value_or(""), rows[i]->key)) continue;
            results[i].id = r.get_int(0).value_or(0);
            results[i].found = true;
            // MySQL cannot say which rows its INSERT added: a row of another time was
            // there before; one of the same time is taken as ours (see the header: two
            // instances storing one uuid in the same instant may both report it stored).
            results[i].inserted = ctx.kind == db::dialect::mysql &&
                                  parse_time(r.get_text(2).value_or("")) == rows[i]->time;
        }
        if (!results[i].found) {
            return status(errc::unavailable, std::string(what) + ": uuid " + rows[i]->key +
                                                 " was neither inserted nor found; retry");
        }
    }
    return status::ok();
}

// One multi-row INSERT of `rows` (1..64), padded to a fixed size by repeating the first
// row (the repeat conflicts with it and is skipped).
result<std::vector<row_result>> insert_rows(const call_context& ctx,
                                            const std::vector<const item*>& rows,
                                            const std::vector<std::int64_t>& duplicate_of) {
    const std::size_t size_index = size_index_for(rows.size());
    std::vector<db::value> params;
    params.reserve(insert_width * chunk_sizes[size_index]);
    for (std::size_t k = 0; k < chunk_sizes[size_index]; ++k) {
        const std::size_t i = k < rows.size() ? k : 0;
        append_row(ctx, *rows[i], duplicate_of[i], params);
    }
    const std::string& sql = texts(ctx.kind).inserts[size_index];
    std::vector<row_result> results(rows.size());
    if (ctx.kind == db::dialect::mysql) {
        auto n = ctx.c.exec(sql, params);
        if (!n) return n.error().context(std::string(what) + ": insert");
    } else {
        auto inserted = ctx.c.query(sql, params);
        if (!inserted) return inserted.error().context(std::string(what) + ": insert");
        for (const db::row& r : inserted->data) {
            const std::string key = r.get_text(1).value_or("");
            for (std::size_t i = 0; i < rows.size(); ++i) {
                if (rows[i]->key != key) continue;
                results[i] = {r.get_int(0).value_or(0), true, true};
                break;
            }
        }
    }
    if (status s = look_up_rows(ctx, rows, results); !s) return s;
    return results;
}

// Inserts the chunk's planned rows: originals and rows with a stored original first, then
// the rows whose original is in the same chunk. Fills ids/inserted per chunk index.
status insert_planned(const call_context& ctx, const item* items, const std::vector<plan>& plans,
                      std::vector<row_result>& results) {
    for (int wave = 0; wave < 2; ++wave) {
        std::vector<const item*> rows;
        std::vector<std::int64_t> duplicate_of;
        std::vector<std::size_t> where;
        for (std::size_t i = 0; i < plans.size(); ++i) {
            const plan& p = plans[i];
            if (p.kind != plan_kind::insert || p.original_in_chunk.has_value() != (wave == 1)) {
                continue;
            }
            rows.push_back(&items[i]);
            duplicate_of.push_back(wave == 0 ? p.duplicate_of : results[*p.original_in_chunk].id);
            where.push_back(i);
        }
        if (rows.empty()) continue;
        auto r = insert_rows(ctx, rows, duplicate_of);
        if (!r) return r.error();
        for (std::size_t k = 0; k < where.size(); ++k) results[where[k]] = (*r)[k];
    }
    return status::ok();
}

store_outcome outcome_of(const std::vector<plan>& plans, const std::vector<row_result>& results,
                         std::size_t i) {
    const plan& p = plans[i];
    store_outcome o;
    if (p.kind == plan_kind::existing) {
        o.status = store_status::duplicate;
        o.id = p.id;
    } else if (p.kind == plan_kind::same_as_earlier) {
        o.status = store_status::duplicate;
        o.id = results[p.earlier].id;
    } else if (!results[i].inserted) {
        o.status = store_status::duplicate;
        o.id = results[i].id;
    } else {
        o.id = results[i].id;
        const std::int64_t original =
            p.original_in_chunk ? results[*p.original_in_chunk].id : p.duplicate_of;
        if (original != 0) {
            o.status = store_status::mesh_duplicate;
            o.duplicate_of = original;
        }
    }
    return o;
}

// Stores items[0..n) (n is one of chunk_sizes) and appends their outcomes.
status store_chunk(const call_context& ctx, const item* items, std::size_t n,
                   std::vector<store_outcome>& out) {
    const std::size_t size_index = size_index_for(n);
    auto near = find_neighbours(ctx, items, n, size_index);
    if (!near) return near.error();
    const std::vector<plan> plans = classify(ctx, items, n, *near);
    std::vector<row_result> results(n);
    if (status s = insert_planned(ctx, items, plans, results); !s) return s;
    for (std::size_t i = 0; i < n; ++i) out.push_back(outcome_of(plans, results, i));
    return status::ok();
}

// ---- the transaction ----------------------------------------------------------------

// SQLite runs them as cached statements; the servers as plain scripts (MySQL cannot
// prepare every transaction-control statement).
status run_control(db::connection& c, const char* sql) {
    status s = status::ok();
    if (c.kind() == db::dialect::sqlite) {
        auto n = c.exec(sql, {});
        if (!n) s = n.error();
    } else {
        s = c.execute_script(sql);
    }
    return s ? s : s.context(std::string(what) + ": " + sql);
}

// Serialises instances storing copies of the same packet (PostgreSQL): one advisory lock
// per (duck_id, message_id), taken in sorted order by one statement, held to commit.
status lock_packets(const call_context& ctx, const std::vector<item>& items) {
    std::vector<std::int64_t> keys;
    keys.reserve(items.size());
    for (const item& it : items) {
        const digest d = sha256(it.record->duck_id + '\0' + it.record->message_id);
        std::uint64_t k = 0;
        for (std::size_t i = 0; i < 8; ++i) k = (k << 8) | d[i];
        std::int64_t signed_key = 0;
        std::memcpy(&signed_key, &k, sizeof k);
        keys.push_back(signed_key);
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    std::string array = "{";
    for (std::size_t i = 0; i < keys.size(); ++i) {
        array += (i == 0 ? "" : ",") + std::to_string(keys[i]);
    }
    array += "}";
    auto r = ctx.c.query("select pg_advisory_xact_lock(k) from unnest(cast(? as bigint[])) as u(k)",
                         {array});
    return r ? status::ok() : r.error().context(std::string(what) + ": lock packets");
}

// Careful mode: the chunk under a savepoint; if the database refuses its data, each record
// alone under its own savepoint, so that only the refused ones are left out.
status store_chunk_carefully(const call_context& ctx, const item* items, std::size_t n,
                             std::vector<store_outcome>& out) {
    if (status s = run_control(ctx.c, "SAVEPOINT central_chunk"); !s) return s;
    status s = store_chunk(ctx, items, n, out);
    if (!s && s.code() == errc::invalid_argument) {
        if (status r = run_control(ctx.c, "ROLLBACK TO SAVEPOINT central_chunk"); !r) return r;
        s = status::ok();
        for (std::size_t i = 0; i < n && s; ++i) {
            if (s = run_control(ctx.c, "SAVEPOINT central_row"); !s) break;
            s = store_chunk(ctx, items + i, 1, out);
            if (!s && s.code() == errc::invalid_argument) {
                store_outcome refused;
                refused.status = store_status::refused;
                refused.reason = s.message();
                out.push_back(std::move(refused));
                s = run_control(ctx.c, "ROLLBACK TO SAVEPOINT central_row");
            }
            if (s) s = run_control(ctx.c, "RELEASE SAVEPOINT central_row");
        }
    }
    if (!s) return s;
    return run_control(ctx.c, "RELEASE SAVEPOINT central_chunk");
}

// Before records are refused one by one: a plain record must be storable, else the fault
// is the database's (a missing table or column), not the data's, and the call fails. The
// probe row is rolled back.
status probe(const call_context& ctx, unix_seconds now) {
    cluster_data r;
    r.duck_id = "opendms-probe";
    r.topic = "probe";
    r.message_id = "probe";
    const item it{&r, new_uuid_v7(now * 1000), now, false};
    std::vector<store_outcome> ignored;
    if (status s = run_control(ctx.c, "SAVEPOINT central_probe"); !s) return s;
    status s = store_chunk(ctx, &it, 1, ignored);
    if (!s) return s.context(std::string(what) + ": probe");
    if (s = run_control(ctx.c, "ROLLBACK TO SAVEPOINT central_probe"); !s) return s;
    return run_control(ctx.c, "RELEASE SAVEPOINT central_probe");
}

status store_all(const call_context& ctx, const std::vector<item>& items, bool careful,
                 std::vector<store_outcome>& out) {
    if (ctx.kind == db::dialect::pgsql && ctx.window > 0) {
        if (status s = lock_packets(ctx, items); !s) return s;
    }
    if (careful) {
        if (status s = probe(ctx, ctx.now); !s) return s;
    }
    std::size_t done = 0;
    for (std::size_t size : chunk_sizes) {
        while (items.size() - done >= size) {
            status s = careful ? store_chunk_carefully(ctx, items.data() + done, size, out)
                               : store_chunk(ctx, items.data() + done, size, out);
            if (!s) return s;
            done += size;
        }
    }
    return status::ok();
}

result<std::vector<store_outcome>> attempt(const call_context& ctx, const std::vector<item>& items,
                                           bool careful) {
    std::vector<store_outcome> out;
    out.reserve(items.size());
    // MySQL: READ COMMITTED, so that every read sees rows other instances committed
    // meanwhile (a uuid our INSERT waited for; mesh originals) without locking reads,
    // which could wait and deadlock. PostgreSQL's default already is; SQLite has one writer.
    if (ctx.kind == db::dialect::mysql) {
        if (status s = ctx.c.execute_script("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"); !s) {
            return s.context(std::string(what) + ": set isolation");
        }
    }
    if (status s = ctx.c.begin(); !s) {
        (void)ctx.c.rollback();  // harmless when BEGIN itself did not open one
        return s.context(std::string(what) + ": begin");
    }
    if (status s = store_all(ctx, items, careful, out); !s) {
        (void)ctx.c.rollback();
        return s;
    }
    if (status s = ctx.c.commit(); !s) {
        (void)ctx.c.rollback();
        return s.context(std::string(what) + ": commit");
    }
    return out;
}

}  // namespace

result<std::vector<store_outcome>> store_records(db::connection& c,
                                                 const std::vector<cluster_data>& records,
                                                 const std::string& received_from, unix_seconds now,
                                                 const store_options& options) {
    if (records.empty()) return std::vector<store_outcome>{};
    const std::vector<item> items = prepare_items(records, now);
    const call_context ctx{c,
                           c.kind(),
                           received_from.empty() ? db::null() : db::value(received_from),
                           format_sql_time(now),
                           std::max<std::int64_t>(options.mesh_window_s, 0),
                           now};
    auto r = attempt(ctx, items, false);
    // A refused value: the fast path cannot tell which record it was (and PostgreSQL has
    // aborted the transaction), so the call is redone with savepoints around each chunk.
    if (r || r.error().code() != errc::invalid_argument) return r;
    return attempt(ctx, items, true);
}

}  // namespace opendms::central
