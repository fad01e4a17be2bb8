// central_store: validated records -> cluster_data rows, exactly once, one transaction per
// call. See central_store.hpp for the contract.
//
// Per chunk (PostgreSQL: the whole call; SQLite, MySQL and the careful pass: 64, 8 or 1
// records): one "neighbour" query fetches every row with the same (duck_id, message_id)
// near each record's time (rows of the same uuid, legacy seed rows and mesh originals are
// all among them); the records are classified in C++ (byte-exact, through hash maps, so a
// large chunk stays linear); the new ones are inserted with one INSERT (PostgreSQL: arrays
// through unnest(); SQLite: multi-row; both RETURNING id, uuid, which tells which rows it
// inserted; MySQL: multi-row, then a lookup by uuid). A record whose mesh original is an
// earlier record of the same chunk goes into a second INSERT, once the original's id is
// known.
#include "opendms/central/central_store.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "opendms/central/pg_array.hpp"
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

std::uint32_t packet_lock_bucket(std::string_view duck_id, std::string_view message_id) noexcept {
    std::uint64_t h = 14695981039346656037ULL;  // FNV-1a 64
    auto mix = [&h](std::string_view bytes) {
        for (char c : bytes) {
            h ^= static_cast<unsigned char>(c);
            h *= 1099511628211ULL;
        }
    };
    mix(duck_id);
    mix(std::string_view("\0", 1));
    mix(message_id);
    return static_cast<std::uint32_t>(h % packet_lock_buckets);
}

namespace {

constexpr const char* what = "central.store";
constexpr std::array<std::size_t, 3> chunk_sizes = {64, 8, 1};
constexpr unix_seconds max_time = 253402300799;         // 9999-12-31 23:59:59
constexpr std::int64_t default_mysql_lock_wait_s = 50;  // InnoDB's default lock wait
constexpr std::size_t lock_first_max_records = 64;      // see attempt()

// ---- statement texts ------------------------------------------------------------------

std::string placeholders(std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += i == 0 ? "?" : ", ?";
    return s;
}

constexpr const char* insert_columns =
    "created_at, updated_at, duck_id, topic, message_id, payload, payload_encoding, path, "
    "origin, destination, hops, duck_type, uuid, source_node, received_from, duplicate_of";
constexpr std::size_t insert_width = 16;

// PostgreSQL: one statement each, whatever the number of records (arrays as parameters).
// (duck_id, message_id) pairs are distinct, so each row comes back at most once.
// The rows of each key are a LATERAL subquery kept apart by OFFSET 0, so they are looked
// up key by key, never joined: as a plain join the planner (costing pages as if read from
// disk) hashed the keys and scanned the whole table for every batch until it held a few
// hundred thousand rows. The subquery has only the two equalities, so no index but those
// on duck_id can serve it (with the time range in it, the planner chose the created_at
// index on a young table and walked every row of the window for each key: 0.5 s a
// batch); the time range filters its few rows (a MessageID recurs about once in 1.7
// million messages of a device).
constexpr const char* pg_neighbours_sql =
    "select c.id, c.uuid, c.duck_id, c.message_id, c.payload, c.payload_encoding, "
    "c.created_at, c.duplicate_of "
    "from unnest(?::text[], ?::text[], ?::timestamp[], ?::timestamp[]) as k(duck_id, "
    "message_id, lo, hi) cross join lateral (select id, uuid, duck_id, message_id, payload, "
    "payload_encoding, created_at, duplicate_of from cluster_data where duck_id = k.duck_id "
    "and message_id = k.message_id offset 0) c where c.created_at >= k.lo and c.created_at "
    "<= k.hi";
constexpr const char* pg_insert_sql =
    "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, payload, "
    "payload_encoding, path, origin, destination, hops, duck_type, uuid, source_node, "
    "received_from, duplicate_of) "
    "select k.created_at, ?::timestamp, k.duck_id, k.topic, k.message_id, k.payload, "
    "k.payload_encoding, k.path, k.origin, k.destination, k.hops, k.duck_type, k.uuid, "
    "k.source_node, k.received_from, k.duplicate_of "
    "from unnest(?::timestamp[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], "
    "?::text[], ?::text[], ?::text[], ?::int4[], ?::int4[], ?::text[], ?::text[], ?::text[], "
    "?::int8[]) as k(created_at, duck_id, topic, message_id, payload, payload_encoding, path, "
    "origin, destination, hops, duck_type, uuid, source_node, received_from, duplicate_of) "
    "on conflict (uuid) do nothing returning id, uuid";
constexpr const char* pg_lookup_sql =
    "select c.id, c.uuid, c.created_at from unnest(?::text[]) as k(uuid) cross join lateral "
    "(select id, uuid, created_at from cluster_data where uuid = k.uuid offset 0) c";

// PostgreSQL, the usual case in one statement: the neighbours of every key (as
// pg_neighbours_sql) and, in the same snapshot, the insert of each record marked `simple`
// (the first of its uuid and of its packet in the call) that has no neighbour at all: a new
// original (kind 1: id, uuid). The other records are classified and inserted afterwards
// from the neighbours (kind 0), as on the other dialects. Parameters: updated_at, the 15
// column arrays of pg_insert_sql, `simple`, then the 4 key arrays of pg_neighbours_sql.
constexpr const char* pg_combined_sql =
    "with k as (select ?::timestamp as updated_at, * from unnest(?::timestamp[], ?::text[], "
    "?::text[], ?::text[], "
    "?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::int4[], ?::int4[], ?::text[], "
    "?::text[], ?::text[], ?::int8[], ?::bool[]) as k(created_at, duck_id, topic, message_id, "
    "payload, payload_encoding, path, origin, destination, hops, duck_type, uuid, source_node, "
    "received_from, duplicate_of, simple)), "
    "nb as (select c.* from unnest(?::text[], ?::text[], ?::timestamp[], ?::timestamp[]) as "
    "q(duck_id, message_id, lo, hi) cross join lateral (select id, uuid, duck_id, message_id, "
    "payload, payload_encoding, created_at, duplicate_of from cluster_data where duck_id = "
    "q.duck_id and message_id = q.message_id offset 0) c where c.created_at >= q.lo and "
    "c.created_at <= q.hi), "
    "ins as (insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, "
    "payload, payload_encoding, path, origin, destination, hops, duck_type, uuid, source_node, "
    "received_from, duplicate_of) select k.created_at, k.updated_at, k.duck_id, k.topic, "
    "k.message_id, k.payload, k.payload_encoding, k.path, k.origin, k.destination, k.hops, "
    "k.duck_type, k.uuid, k.source_node, k.received_from, k.duplicate_of from k where k.simple "
    "and not exists (select 1 from nb where nb.duck_id = k.duck_id and nb.message_id = "
    "k.message_id) on conflict (uuid) do nothing returning id, uuid) "
    "select 1 as kind, id, uuid, null::varchar, null::varchar, null::text, null::varchar, "
    "null::timestamp, null::bigint from ins union all select 0, id, uuid, duck_id, message_id, "
    "payload, payload_encoding, created_at, duplicate_of from nb";

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

// MySQL: GET_LOCK of n buckets (and their timeout), evaluated left to right; AND stops at
// the first that is not granted. 1 when all are held.
std::string build_mysql_lock_sql(std::size_t n) {
    std::string s = "select ";
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0) s += " and ";
        s += "get_lock(concat('opendms.', left(database(), 40), '.', ?), ?)";
    }
    return s;
}

struct statement_texts {
    std::array<std::string, chunk_sizes.size()> neighbours, inserts, lookups, locks;
};

// Chunked statements of SQLite and MySQL (PostgreSQL uses the pg_ ones).
const statement_texts& texts(db::dialect d) {
    static const std::array<statement_texts, 3> all = [] {
        std::array<statement_texts, 3> t;
        for (db::dialect k : {db::dialect::sqlite, db::dialect::pgsql, db::dialect::mysql}) {
            statement_texts& s = t[static_cast<std::size_t>(k)];
            for (std::size_t i = 0; i < chunk_sizes.size(); ++i) {
                s.neighbours[i] = build_neighbour_sql(chunk_sizes[i]);
                s.inserts[i] = build_insert_sql(k, chunk_sizes[i]);
                s.lookups[i] = build_lookup_sql(chunk_sizes[i]);
                s.locks[i] = build_mysql_lock_sql(chunk_sizes[i]);
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

std::string ascii_lower(std::string s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

std::string packet_of(const cluster_data& r) {
    std::string p = r.duck_id;
    p += '\0';
    p += r.message_id;
    return p;
}

struct item {
    const cluster_data* record;
    const std::string* received_from;
    std::string key;     // the uuid column's value, lower-case
    unix_seconds time;   // created_at
    bool seed;           // key derived from (duck_id, message_id, created_at)
    std::string packet;  // duck_id NUL message_id
};

std::vector<item> prepare_items(const std::vector<store_input>& inputs, unix_seconds now) {
    std::vector<item> items;
    items.reserve(inputs.size());
    for (const store_input& in : inputs) {
        const cluster_data& r = *in.record;
        item it{&r, in.received_from, {}, r.created_at.value_or(now), false, packet_of(r)};
        if (r.uuid) {
            it.key = ascii_lower(*r.uuid);
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
    std::string now_text;
    std::int64_t window;  // 0: mesh duplicates disabled
    unix_seconds now;
    const store_options& options;
};

bool arrays(const call_context& ctx) {
    return ctx.kind == db::dialect::pgsql;
}

db::value node_value(const item& it) {
    if (it.received_from == nullptr || it.received_from->empty()) return db::null();
    return db::value(*it.received_from);
}

bool same_packet(const cluster_data& a, const cluster_data& b) {
    return a.duck_id == b.duck_id && a.message_id == b.message_id && a.payload == b.payload &&
           a.payload_encoding == b.payload_encoding;
}

// ---- step 1: the rows near each record ----------------------------------------------

struct neighbour {
    std::int64_t id = 0;
    std::optional<std::string> uuid;  // lower-case
    cluster_data data;                // duck_id, message_id, payload, payload_encoding
    unix_seconds time = 0;
    bool original = false;  // duplicate_of IS NULL
};

result<neighbour> to_neighbour(const db::row& r) {
    neighbour n;
    auto id = r.get_int(0);
    auto time = parse_time(r.get_text(6).value_or(""));
    if (!id || !time) return status(errc::internal, "a row without id or created_at");
    n.id = *id;
    if (auto u = r.get_text(1)) n.uuid = ascii_lower(std::move(*u));
    n.data.duck_id = r.get_text(2).value_or("");
    n.data.message_id = r.get_text(3).value_or("");
    n.data.payload = r.get_text(4);
    n.data.payload_encoding = r.get_text(5);
    n.time = *time;
    n.original = r.is_null(7);
    return n;
}

std::vector<db::value> neighbour_params(const call_context& ctx, const item* items, std::size_t n) {
    std::vector<db::value> params;
    auto lo = [&](const item& it) { return std::max<unix_seconds>(it.time - ctx.window, 0); };
    auto hi = [&](const item& it) { return std::min(it.time + ctx.window, max_time); };
    if (!arrays(ctx)) {
        const std::size_t size = chunk_sizes[size_index_for(n)];
        params.reserve(4 * size);
        for (std::size_t k = 0; k < size; ++k) {
            const item& it = items[std::min(k, n - 1)];  // padded with the last record
            params.emplace_back(it.record->duck_id);
            params.emplace_back(it.record->message_id);
            params.emplace_back(format_sql_time(lo(it)));
            params.emplace_back(format_sql_time(hi(it)));
        }
        return params;
    }
    // One range per distinct packet key, covering all of its records (classify() checks
    // each record's own window).
    std::unordered_map<std::string_view, std::pair<unix_seconds, unix_seconds>> ranges;
    std::vector<const item*> order;
    for (std::size_t i = 0; i < n; ++i) {
        const item& it = items[i];
        auto [at, added] = ranges.try_emplace(it.packet, lo(it), hi(it));
        if (added) {
            order.push_back(&it);
        } else {
            at->second.first = std::min(at->second.first, lo(it));
            at->second.second = std::max(at->second.second, hi(it));
        }
    }
    pg_array ducks, messages, los, his;
    for (const item* it : order) {
        const auto& range = ranges[it->packet];
        ducks.add(std::string_view(it->record->duck_id));
        messages.add(std::string_view(it->record->message_id));
        los.add(std::string_view(format_sql_time(range.first)));
        his.add(std::string_view(format_sql_time(range.second)));
    }
    params.emplace_back(ducks.take());
    params.emplace_back(messages.take());
    params.emplace_back(los.take());
    params.emplace_back(his.take());
    return params;
}

result<std::vector<neighbour>> find_neighbours(const call_context& ctx, const item* items,
                                               std::size_t n) {
    const std::string_view sql =
        arrays(ctx) ? std::string_view(pg_neighbours_sql)
                    : std::string_view(texts(ctx.kind).neighbours[size_index_for(n)]);
    auto rows = ctx.c.query(sql, neighbour_params(ctx, items, n));
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

// The neighbours and the chunk's records, indexed so that each record is classified in
// time proportional to the rows of its own packet (a 1000-record call stays linear).
class chunk_index {
public:
    explicit chunk_index(const std::vector<neighbour>& near) : near_(near) {
        for (std::size_t k = 0; k < near.size(); ++k) {
            const neighbour& nb = near[k];
            if (nb.uuid) {
                auto [at, added] = by_uuid_.try_emplace(*nb.uuid, nb.id);
                if (!added) at->second = std::min(at->second, nb.id);
            }
            by_packet_[packet_of(nb.data)].push_back(k);
        }
    }

    // The oldest row of this uuid (or, for a seed record, a legacy row without uuid of
    // the same duck_id, message_id and time).
    std::optional<std::int64_t> existing_row(const item& it) const {
        std::optional<std::int64_t> found;
        if (auto at = by_uuid_.find(it.key); at != by_uuid_.end()) found = at->second;
        if (!it.seed) return found;
        for (std::size_t k : near_of(it.packet)) {
            const neighbour& nb = near_[k];
            if (nb.uuid || nb.time != it.time) continue;
            if (!found || nb.id < *found) found = nb.id;
        }
        return found;
    }

    const std::vector<std::size_t>& near_of(const std::string& packet) const {
        auto at = by_packet_.find(packet);
        return at == by_packet_.end() ? none_ : at->second;
    }

    // The first earlier record of the chunk with this key, if any; then notes this one.
    std::optional<std::size_t> first_with_key(const item& it, std::size_t index) {
        auto [at, added] = first_by_key_.try_emplace(it.key, index);
        if (added) return std::nullopt;
        return at->second;
    }

    // Earlier records of the chunk of the same packet key; then notes this one.
    std::vector<std::size_t>& earlier_of(const std::string& packet) {
        return items_by_packet_[packet];
    }

private:
    const std::vector<neighbour>& near_;
    std::unordered_map<std::string, std::int64_t> by_uuid_;
    std::unordered_map<std::string, std::vector<std::size_t>> by_packet_;
    std::unordered_map<std::string_view, std::size_t> first_by_key_;
    std::unordered_map<std::string, std::vector<std::size_t>> items_by_packet_;
    const std::vector<std::size_t> none_;
};

// The oldest original (by created_at, then id) within the window: a stored row, or an
// earlier record of the chunk that is to be inserted as an original (a stored row wins a
// tie: its id is older).
void find_original(const call_context& ctx, const item* items, std::size_t index,
                   const chunk_index& idx, const std::vector<std::size_t>& earlier,
                   const std::vector<neighbour>& near, std::vector<plan>& plans) {
    const item& it = items[index];
    plan& p = plans[index];
    auto within = [&](unix_seconds t) {
        return t >= it.time - ctx.window && t <= it.time + ctx.window;
    };
    std::optional<unix_seconds> best;
    for (std::size_t k : idx.near_of(it.packet)) {
        const neighbour& nb = near[k];
        if (!nb.original || !within(nb.time) || !same_packet(nb.data, *it.record)) continue;
        if (!best || nb.time < *best || (nb.time == *best && nb.id < p.duplicate_of)) {
            best = nb.time;
            p.duplicate_of = nb.id;
        }
    }
    for (std::size_t j : earlier) {
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

std::vector<plan> classify(const call_context& ctx, const item* items, std::size_t n,
                           const std::vector<neighbour>& near) {
    std::vector<plan> plans(n);
    chunk_index idx(near);
    for (std::size_t i = 0; i < n; ++i) {
        plan& p = plans[i];
        const std::optional<std::size_t> first = idx.first_with_key(items[i], i);
        std::vector<std::size_t>& earlier = idx.earlier_of(items[i].packet);
        if (auto id = idx.existing_row(items[i])) {
            p.kind = plan_kind::existing;
            p.id = *id;
        } else if (first) {
            if (plans[*first].kind != plan_kind::insert) {
                p = plans[*first];  // already resolved
            } else {
                p.kind = plan_kind::same_as_earlier;
                p.earlier = *first;
            }
        } else if (ctx.window > 0) {
            find_original(ctx, items, i, idx, earlier, near, plans);
        }
        earlier.push_back(i);
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
    params.push_back(node_value(it));
    params.push_back(duplicate_of != 0 ? db::value(duplicate_of) : db::null());
}

void append_pg_columns(const std::vector<const item*>& rows,
                       const std::vector<std::int64_t>& duplicate_of,
                       std::array<pg_array, insert_width - 1>& columns);

// The PostgreSQL INSERT's parameters: updated_at, then one array per column.
std::vector<db::value> pg_insert_params(const call_context& ctx,
                                        const std::vector<const item*>& rows,
                                        const std::vector<std::int64_t>& duplicate_of) {
    std::array<pg_array, insert_width - 1> columns;
    append_pg_columns(rows, duplicate_of, columns);
    std::vector<db::value> params;
    params.reserve(insert_width);
    params.emplace_back(ctx.now_text);
    for (pg_array& a : columns) params.emplace_back(a.take());
    return params;
}

// One element per row in each of the 15 column arrays of pg_insert_sql.
void append_pg_columns(const std::vector<const item*>& rows,
                       const std::vector<std::int64_t>& duplicate_of,
                       std::array<pg_array, insert_width - 1>& columns) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const item& it = *rows[i];
        const cluster_data& r = *it.record;
        std::size_t c = 0;
        columns[c++].add(std::string_view(format_sql_time(it.time)));
        columns[c++].add(std::string_view(r.duck_id));
        columns[c++].add(std::string_view(r.topic));
        columns[c++].add(std::string_view(r.message_id));
        columns[c++].add(r.payload);
        columns[c++].add(r.payload_encoding);
        columns[c++].add(r.path);
        columns[c++].add(r.origin);
        columns[c++].add(r.destination);
        columns[c++].add(r.hops);
        columns[c++].add(r.duck_type);
        columns[c++].add(std::string_view(it.key));
        columns[c++].add(r.source_node);
        if (it.received_from && !it.received_from->empty()) {
            columns[c++].add(std::string_view(*it.received_from));
        } else {
            columns[c++].add_null();
        }
        if (duplicate_of[i] != 0) {
            columns[c++].add(duplicate_of[i]);
        } else {
            columns[c++].add_null();
        }
    }
}

// Rows by uuid, after an INSERT that skipped some (or, on MySQL, any) of them.
status look_up_rows(const call_context& ctx, const std::vector<const item*>& rows,
                    std::vector<row_result>& results) {
    std::vector<std::size_t> missing;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (!results[i].found) missing.push_back(i);
    }
    if (missing.empty()) return status::ok();
    std::vector<db::value> params;
    std::string_view sql = pg_lookup_sql;
    if (arrays(ctx)) {
        pg_array keys;
        for (std::size_t i : missing) keys.add(std::string_view(rows[i]->key));
        params.emplace_back(keys.take());
    } else {
        const std::size_t size_index = size_index_for(missing.size());
        for (std::size_t k = 0; k < chunk_sizes[size_index]; ++k) {
            params.emplace_back(rows[missing[std::min(k, missing.size() - 1)]]->key);
        }
        sql = texts(ctx.kind).lookups[size_index];
    }
    auto found = ctx.c.query(sql, params);
    if (!found) return found.error().context(std::string(what) + ": look up ids");
    std::unordered_map<std::string, const db::row*> by_key;
    for (const db::row& r : found->data) {
        // MySQL's collation ignores case: a row stored with an upper-case uuid matches.
        by_key.emplace(ascii_lower(r.get_text(1).value_or("")), &r);
    }
    for (std::size_t i : missing) {
        auto at = by_key.find(rows[i]->key);
        if (at == by_key.end()) {
            return status(errc::unavailable, std::string(what) + ": uuid " + rows[i]->key +
                                                 " was neither inserted nor found; retry");
        }
        const db::row& r = *at->second;
        results[i].id = r.get_int(0).value_or(0);
        results[i].found = true;
        // MySQL cannot say which rows its INSERT added: a row of another time was
        // there before; one of the same time is taken as ours (see the header: two
        // instances storing one uuid in the same instant may both report it stored).
        results[i].inserted = ctx.kind == db::dialect::mysql &&
                              parse_time(r.get_text(2).value_or("")) == rows[i]->time;
    }
    return status::ok();
}

// One INSERT of `rows`: on PostgreSQL as arrays, else one multi-row INSERT (1..64 rows)
// padded to a fixed size by repeating the first row (the repeat conflicts with it and is
// skipped).
result<std::vector<row_result>> insert_rows(const call_context& ctx,
                                            const std::vector<const item*>& rows,
                                            const std::vector<std::int64_t>& duplicate_of) {
    std::vector<row_result> results(rows.size());
    if (ctx.kind == db::dialect::mysql) {
        const std::size_t size_index = size_index_for(rows.size());
        std::vector<db::value> params;
        params.reserve(insert_width * chunk_sizes[size_index]);
        for (std::size_t k = 0; k < chunk_sizes[size_index]; ++k) {
            const std::size_t i = k < rows.size() ? k : 0;
            append_row(ctx, *rows[i], duplicate_of[i], params);
        }
        auto n = ctx.c.exec(texts(ctx.kind).inserts[size_index], params);
        if (!n) return n.error().context(std::string(what) + ": insert");
    } else {
        result<db::rows> inserted = db::rows{};
        if (arrays(ctx)) {
            inserted = ctx.c.query(pg_insert_sql, pg_insert_params(ctx, rows, duplicate_of));
        } else {
            const std::size_t size_index = size_index_for(rows.size());
            std::vector<db::value> params;
            params.reserve(insert_width * chunk_sizes[size_index]);
            for (std::size_t k = 0; k < chunk_sizes[size_index]; ++k) {
                const std::size_t i = k < rows.size() ? k : 0;
                append_row(ctx, *rows[i], duplicate_of[i], params);
            }
            inserted = ctx.c.query(texts(ctx.kind).inserts[size_index], params);
        }
        if (!inserted) return inserted.error().context(std::string(what) + ": insert");
        std::unordered_map<std::string_view, std::size_t> by_key;
        for (std::size_t i = 0; i < rows.size(); ++i) by_key.emplace(rows[i]->key, i);
        for (const db::row& r : inserted->data) {
            const std::string key = r.get_text(1).value_or("");
            auto at = by_key.find(key);
            if (at != by_key.end()) results[at->second] = {r.get_int(0).value_or(0), true, true};
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
            if (results[i].found) continue;  // inserted already (pg_combined_sql)
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

// Stores items[0..n) and appends their outcomes. n is one of chunk_sizes, or on
// PostgreSQL any number.
status store_chunk(const call_context& ctx, const item* items, std::size_t n,
                   std::vector<store_outcome>& out);

// PostgreSQL: pg_combined_sql stores the new originals and returns the neighbours; the rest
// goes the usual way.
status store_chunk_pgsql(const call_context& ctx, const item* items, std::size_t n,
                         std::vector<store_outcome>& out) {
    std::vector<const item*> rows(n);
    std::vector<std::int64_t> no_original(n, 0);
    std::unordered_set<std::string_view> keys, packets;
    pg_array simple;
    for (std::size_t i = 0; i < n; ++i) {
        rows[i] = &items[i];
        const bool new_key = keys.insert(items[i].key).second;
        const bool new_packet = packets.insert(items[i].packet).second;
        simple.add_bool(new_key && new_packet);
    }
    std::array<pg_array, insert_width - 1> columns;
    append_pg_columns(rows, no_original, columns);
    std::vector<db::value> params;
    params.reserve(insert_width + 5);
    params.emplace_back(ctx.now_text);
    for (pg_array& a : columns) params.emplace_back(a.take());
    params.emplace_back(simple.take());
    for (db::value& v : neighbour_params(ctx, items, n)) params.push_back(std::move(v));
    auto got = ctx.c.query(pg_combined_sql, params);
    if (!got) return got.error().context(std::string(what) + ": store");
    std::vector<neighbour> near;
    std::unordered_map<std::string, std::int64_t> inserted;
    for (const db::row& r : got->data) {
        if (r.get_int(0) == 1) {
            inserted.emplace(r.get_text(2).value_or(""), r.get_int(1).value_or(0));
            continue;
        }
        db::row nb;
        nb.cells.assign(r.cells.begin() + 1, r.cells.end());
        auto x = to_neighbour(nb);
        if (!x) return x.error().context(std::string(what) + ": store");
        near.push_back(std::move(*x));
    }
    const std::vector<plan> plans = classify(ctx, items, n, near);
    std::vector<row_result> results(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto at = inserted.find(items[i].key);
        if (at != inserted.end() && plans[i].kind == plan_kind::insert) {
            results[i] = {at->second, true, true};
        }
    }
    if (status s = insert_planned(ctx, items, plans, results); !s) return s;
    for (std::size_t i = 0; i < n; ++i) out.push_back(outcome_of(plans, results, i));
    return status::ok();
}

status store_chunk(const call_context& ctx, const item* items, std::size_t n,
                   std::vector<store_outcome>& out) {
    if (arrays(ctx)) return store_chunk_pgsql(ctx, items, n, out);
    auto near = find_neighbours(ctx, items, n);
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

// The distinct packet buckets of `items`, ascending.
std::vector<std::uint32_t> lock_buckets(const std::vector<item>& items) {
    std::vector<std::uint32_t> buckets;
    buckets.reserve(items.size());
    for (const item& it : items) {
        buckets.push_back(packet_lock_bucket(it.record->duck_id, it.record->message_id));
    }
    std::sort(buckets.begin(), buckets.end());
    buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
    return buckets;
}

std::int64_t whole_seconds_up(std::chrono::milliseconds ms) {
    return std::max<std::int64_t>(1, (ms.count() + 999) / 1000);
}

std::string pg_lock_sql(const std::vector<std::uint32_t>& buckets) {
    std::string sql = "SELECT pg_advisory_xact_lock(" + std::to_string(pg_packet_lock_class) +
                      ", k) FROM unnest('{";
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        sql += (i == 0 ? "" : ",") + std::to_string(buckets[i]);
    }
    return sql + "}'::int4[]) AS u(k)";
}

// PostgreSQL: BEGIN, this transaction's guards and (small calls) the packet locks, in one
// round trip.
//
// The plans. A large call plans with its actual arrays (force_custom_plan): a plan sized
// for a few keys would be wrong for 500. A small call (at most lock_first_max_records
// records: grouped single-record requests) reuses the connection's generic plans, since
// planning the combined statement anew costs PostgreSQL about 0.4 ms, several times its
// execution, and the generic plan is the same index probe per key; but only once the
// statistics of cluster_data count 1000 rows or more (reltuples, from ANALYZE or VACUUM,
// which also invalidate the cached plans, so autovacuum keeps them fresh as the table
// grows). On a table never analysed, or analysed with 60 rows, the generic plan probed
// the duck_id index and filtered every row of the device; such a table gets custom plans,
// as large calls do. enable_seqscan = off keeps the generic plan from scanning.
// Whether the statistics count 1000 rows is asked with a prepared statement before BEGIN,
// at most once per generic_plan_memo::max_age: deciding it inside the BEGIN script
// (set_config() from a subquery on pg_class) cost PostgreSQL about 0.13 ms of parsing and
// planning per transaction, more than the rest of the script.
// Integration tests: the settings per call size and table, the memo, and the generic plan
// on analysed tables of 1000 to 50000 rows.
constexpr const char* pg_generic_plans_fit_sql =
    "SELECT count(*) FROM pg_class WHERE oid = to_regclass('cluster_data') AND reltuples >= "
    "1000";

result<bool> generic_plans_fit(const call_context& ctx) {
    const auto now = generic_plan_memo::clock::now();
    if (ctx.options.plans) {
        if (std::optional<bool> known = ctx.options.plans->get(now)) return *known;
    }
    auto r = ctx.c.query(pg_generic_plans_fit_sql);
    if (!r) return r.error();
    const bool fit = !r->data.empty() && r->data[0].get_int(0).value_or(0) > 0;
    if (ctx.options.plans) ctx.options.plans->put(fit, now);
    return fit;
}

status begin_pgsql(const call_context& ctx, const std::vector<item>& items, bool lock_first) {
    bool generic = false;
    if (items.size() <= lock_first_max_records) {
        auto fit = generic_plans_fit(ctx);
        if (!fit) return fit.error().context(std::string(what) + ": begin");
        generic = *fit;
    }
    std::string script = generic ? "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; "
                                   "SET LOCAL enable_seqscan = off"
                                 : "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan";
    const store_options& o = ctx.options;
    if (o.statement_timeout.count() > 0) {
        script += "; SET LOCAL statement_timeout = " + std::to_string(o.statement_timeout.count());
    }
    if (o.lock_timeout.count() > 0) {
        script += "; SET LOCAL lock_timeout = " + std::to_string(o.lock_timeout.count());
    }
    if (lock_first) script += "; " + pg_lock_sql(lock_buckets(items));
    if (status s = ctx.c.execute_script(script); !s) {
        return s.context(std::string(what) + ": begin");
    }
    return status::ok();
}

// MySQL: READ COMMITTED (every read sees rows other instances committed meanwhile without
// locking reads, which could wait and deadlock), the timeouts and START TRANSACTION, in one
// round trip.
status begin_mysql(const call_context& ctx) {
    const store_options& o = ctx.options;
    std::string script = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED";
    if (o.lock_timeout.count() > 0 || o.statement_timeout.count() > 0) {
        script += "; SET SESSION innodb_lock_wait_timeout = ";
        script += std::to_string(o.lock_timeout.count() > 0 ? whole_seconds_up(o.lock_timeout)
                                                            : default_mysql_lock_wait_s);
        if (o.statement_timeout.count() > 0) {
            // MariaDB only (the /*M! ... */ comment is skipped by MySQL); 0 means no limit.
            char seconds[32];
            std::snprintf(seconds, sizeof seconds, "%.3f",
                          static_cast<double>(o.statement_timeout.count()) / 1000.0);
            script += std::string(" /*M!100108 , max_statement_time = ") + seconds + " */";
        }
    }
    script += "; START TRANSACTION";
    if (status s = ctx.c.execute_script(script); !s) {
        return s.context(std::string(what) + ": begin");
    }
    return status::ok();
}

// The packet locks of `items`, in ascending order. PostgreSQL: transaction locks in one
// statement (the bucket numbers are our own integers, safe in the text). MySQL: session
// locks, in chunks; `locked` tells the caller to release them, even after a failure.
status lock_packets(const call_context& ctx, const std::vector<item>& items, bool& locked) {
    const std::vector<std::uint32_t> buckets = lock_buckets(items);
    if (ctx.kind == db::dialect::pgsql) {
        std::string sql = "SELECT pg_advisory_xact_lock(" + std::to_string(pg_packet_lock_class) +
                          ", k) FROM unnest('{";
        for (std::size_t i = 0; i < buckets.size(); ++i) {
            sql += (i == 0 ? "" : ",") + std::to_string(buckets[i]);
        }
        sql += "}'::int4[]) AS u(k)";
        if (status s = ctx.c.execute_script(sql); !s) {
            return s.context(std::string(what) + ": lock packets");
        }
        return status::ok();
    }
    const store_options& o = ctx.options;
    const std::int64_t wait_s =
        o.lock_timeout.count() > 0 ? whole_seconds_up(o.lock_timeout) : default_mysql_lock_wait_s;
    locked = true;
    std::size_t done = 0;
    for (std::size_t size : chunk_sizes) {
        while (buckets.size() - done >= size) {
            std::vector<db::value> params;
            for (std::size_t k = 0; k < size; ++k) {
                params.emplace_back(static_cast<std::int64_t>(buckets[done + k]));
                params.emplace_back(wait_s);
            }
            auto r = ctx.c.query(texts(ctx.kind).locks[size_index_for(size)], params);
            if (!r) return r.error().context(std::string(what) + ": lock packets");
            if (r->empty() || r->data[0].get_int(0).value_or(0) != 1) {
                return status(errc::unavailable, std::string(what) +
                                                     ": lock packets: not granted within " +
                                                     std::to_string(wait_s) + " s; retry");
            }
            done += size;
        }
    }
    return status::ok();
}

// The rows near `items` (any number: chunked on SQLite and MySQL).
result<std::vector<neighbour>> find_all_neighbours(const call_context& ctx,
                                                   const std::vector<item>& items) {
    if (arrays(ctx)) return find_neighbours(ctx, items.data(), items.size());
    std::vector<neighbour> all;
    std::size_t done = 0;
    for (std::size_t size : chunk_sizes) {
        while (items.size() - done >= size) {
            auto near = find_neighbours(ctx, items.data() + done, size);
            if (!near) return near.error();
            all.insert(all.end(), std::make_move_iterator(near->begin()),
                       std::make_move_iterator(near->end()));
            done += size;
        }
    }
    return all;
}

// Two instances storing copies of one packet at the same moment: neither saw the other's
// row when it classified its records, so both inserted theirs as originals. Here, with the
// packet buckets locked until the commit, each call reads again the neighbours of the
// records it inserted as originals: the rows it sees now that it did not insert were
// committed by others (READ COMMITTED: every statement sees the latest commits), and the
// locks order the calls, so the second sees the first. A record with such an original in
// its window becomes its mesh duplicate (the oldest, by created_at then id), with every
// copy of it in this call; the first call keeps its originals. Only this phase holds the
// locks: the calls' inserts, the expensive part, run side by side.
status settle_originals(const call_context& ctx, const std::vector<item>& items,
                        std::vector<store_outcome>& out, bool& locked) {
    if (ctx.window <= 0 || ctx.kind == db::dialect::sqlite) return status::ok();
    std::vector<std::size_t> originals;
    std::vector<item> subset;
    std::unordered_set<std::int64_t> mine;
    for (std::size_t i = 0; i < items.size() && i < out.size(); ++i) {
        const store_outcome& o = out[i];
        if (o.status == store_status::stored || o.status == store_status::mesh_duplicate) {
            mine.insert(o.id);
        }
        if (o.status == store_status::stored) {
            originals.push_back(i);
            subset.push_back(items[i]);
        }
    }
    if (originals.empty()) return status::ok();
    if (status s = lock_packets(ctx, subset, locked); !s) return s;
    auto near = find_all_neighbours(ctx, subset);
    if (!near) return near.error();
    chunk_index idx(*near);
    std::vector<std::pair<std::int64_t, std::int64_t>> moved;  // (our original, theirs)
    for (std::size_t i : originals) {
        const item& it = items[i];
        std::optional<std::pair<unix_seconds, std::int64_t>> best;
        for (std::size_t k : idx.near_of(it.packet)) {
            const neighbour& nb = (*near)[k];
            if (!nb.original || mine.count(nb.id) != 0) continue;
            if (nb.time < it.time - ctx.window || nb.time > it.time + ctx.window) continue;
            if (!same_packet(nb.data, *it.record)) continue;
            if (!best || std::make_pair(nb.time, nb.id) < *best) best = {nb.time, nb.id};
        }
        if (!best) continue;
        moved.emplace_back(out[i].id, best->second);
        out[i].status = store_status::mesh_duplicate;
        out[i].duplicate_of = best->second;
    }
    for (const auto& [ours, theirs] : moved) {
        auto n =
            ctx.c.exec("update cluster_data set duplicate_of = ? where id = ? or duplicate_of = ?",
                       {theirs, ours, ours});
        if (!n) return n.error().context(std::string(what) + ": settle originals");
        for (store_outcome& o : out) {
            if (o.status == store_status::mesh_duplicate && o.duplicate_of == ours) {
                o.duplicate_of = theirs;
            }
        }
    }
    return status::ok();
}

constexpr const char* mysql_release_sql = "SELECT RELEASE_ALL_LOCKS()";

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
    static const std::string node = "probe";
    const item it{&r, &node, new_uuid_v7(now * 1000), now, false, packet_of(r)};
    std::vector<store_outcome> ignored;
    if (status s = run_control(ctx.c, "SAVEPOINT central_probe"); !s) return s;
    status s = store_chunk(ctx, &it, 1, ignored);
    if (!s) return s.context(std::string(what) + ": probe");
    if (s = run_control(ctx.c, "ROLLBACK TO SAVEPOINT central_probe"); !s) return s;
    return run_control(ctx.c, "RELEASE SAVEPOINT central_probe");
}

status store_all(const call_context& ctx, const std::vector<item>& items, bool careful,
                 std::vector<store_outcome>& out) {
    if (careful) {
        if (status s = probe(ctx, ctx.now); !s) return s;
    }
    if (arrays(ctx) && !careful) return store_chunk(ctx, items.data(), items.size(), out);
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

// Opens the transaction of a call storing `items`; with `lock_first`, also takes their
// packet locks at once.
status begin(const call_context& ctx, const std::vector<item>& items, bool lock_first,
             bool& locked) {
    switch (ctx.kind) {
        case db::dialect::pgsql:
            return begin_pgsql(ctx, items, lock_first);
        case db::dialect::mysql:
            if (lock_first) {
                if (status s = lock_packets(ctx, items, locked); !s) return s;
            }
            return begin_mysql(ctx);
        case db::dialect::sqlite:
            break;
    }
    if (status s = ctx.c.begin(); !s) return s.context(std::string(what) + ": begin");
    return status::ok();
}

// After a failure: the transaction is rolled back and, on MySQL, the packet locks are
// released. A connection that cannot release them (yet is not lost, which frees them) must
// not go back to the pool: the error then becomes errc::internal, which makes the caller
// discard it.
status abandon(const call_context& ctx, bool locked, status error) {
    (void)ctx.c.rollback();
    if (locked) {
        if (status s = ctx.c.execute_script(mysql_release_sql); !s && !s.retryable()) {
            return status(errc::internal, error.message() +
                                              "; and releasing the packet locks "
                                              "failed: " +
                                              s.message());
        }
    }
    return error;
}

result<std::vector<store_outcome>> attempt(const call_context& ctx, const std::vector<item>& items,
                                           bool careful) {
    std::vector<store_outcome> out;
    out.reserve(items.size());
    bool locked = false;
    // A small call (a few single-record requests) locks its packets up front: that costs no
    // round trip on PostgreSQL (they go with BEGIN) and saves the check's two, and its few
    // buckets hold up few others. A large one inserts first and checks under the locks.
    // MySQL always locks first: its packet locks (GET_LOCK) are outside InnoDB, so a call
    // that waits for them while holding the row locks of its inserts, against one that
    // holds them and waits for those rows, is a deadlock nothing detects; it would last
    // until innodb_lock_wait_timeout (50 s by default). Taken before any row, never.
    const bool lock_first = ctx.window > 0 && ctx.kind != db::dialect::sqlite &&
                            (items.size() <= lock_first_max_records ||
                             ctx.kind == db::dialect::mysql);
    if (status s = begin(ctx, items, lock_first, locked); !s) {
        return abandon(ctx, locked, s);
    }
    if (status s = store_all(ctx, items, careful, out); !s) return abandon(ctx, locked, s);
    if (!lock_first) {
        if (status s = settle_originals(ctx, items, out, locked); !s) {
            return abandon(ctx, locked, s);
        }
    }
    // MySQL: the packet locks go with the COMMIT, in the same round trip.
    status s =
        locked ? ctx.c.execute_script(std::string("COMMIT; ") + mysql_release_sql) : ctx.c.commit();
    if (!s) return abandon(ctx, locked, s.context(std::string(what) + ": commit"));
    return out;
}

}  // namespace

std::int64_t generic_plan_memo::ms(clock::time_point t) noexcept {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::optional<bool> generic_plan_memo::get(clock::time_point now) const noexcept {
    const std::int64_t said = said_.load(std::memory_order_relaxed);
    if (said < 0 || ms(now) - (said >> 1) >= max_age_.count()) return std::nullopt;
    return (said & 1) != 0;
}

void generic_plan_memo::put(bool generic, clock::time_point now) noexcept {
    said_.store((std::max<std::int64_t>(ms(now), 0) << 1) | (generic ? 1 : 0),
                std::memory_order_relaxed);
}

result<std::vector<store_outcome>> store_records(db::connection& c,
                                                 const std::vector<store_input>& inputs,
                                                 unix_seconds now, const store_options& options) {
    if (inputs.empty()) return std::vector<store_outcome>{};
    const std::vector<item> items = prepare_items(inputs, now);
    const call_context ctx{
        c,   c.kind(), format_sql_time(now), std::max<std::int64_t>(options.mesh_window_s, 0),
        now, options};
    auto r = attempt(ctx, items, false);
    // A refused value: the fast path cannot tell which record it was (and PostgreSQL has
    // aborted the transaction), so the call is redone with savepoints around each chunk.
    if (r || r.error().code() != errc::invalid_argument) return r;
    return attempt(ctx, items, true);
}

result<std::vector<store_outcome>> store_records(db::connection& c,
                                                 const std::vector<cluster_data>& records,
                                                 const std::string& received_from, unix_seconds now,
                                                 const store_options& options) {
    std::vector<store_input> inputs;
    inputs.reserve(records.size());
    for (const cluster_data& r : records) inputs.push_back({&r, &received_from});
    return store_records(c, inputs, now, options);
}

}  // namespace opendms::central
