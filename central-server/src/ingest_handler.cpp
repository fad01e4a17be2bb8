// ingest_handler: what every route means (contract in ingest_handler.hpp).
#include "opendms/central/ingest_handler.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <future>
#include <memory>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "opendms/central/ingest_request.hpp"
#include "opendms/central/record_validator.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/log.hpp"

namespace opendms::central {
namespace {

constexpr const char* component = "ingest";
constexpr const char* unavailable_text = "The database is unavailable; retry later.";
constexpr const char* refused_text =
    "The database refused a value of this record (too long, or not storable).";
constexpr std::size_t max_echoed_path = 256;
// A body up to this size, uncompressed, is decoded and validated on the Asio thread
// (runs_inline()): a single record or a small batch, some tens of microseconds.
constexpr std::size_t inline_body_bytes = 16 * 1024;

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

struct route_info {
    const char* path;    // as matched, and the metrics label
    const char* method;  // the one method it supports
};

constexpr route_info routes[] = {
    {"/api/ingest", "POST"}, {"/healthz", "GET"}, {"/readyz", "GET"}, {"/metrics", "GET"}};

char lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

/// The target's path without query and trailing slashes ("/" stays), as Laravel's router
/// matches it.
std::string_view path_of(std::string_view target) {
    target = target.substr(0, target.find_first_of("?#"));
    while (target.size() > 1 && target.back() == '/') target.remove_suffix(1);
    return target;
}

const route_info* find_route(std::string_view path) {
    for (const route_info& r : routes) {
        if (path == r.path) return &r;
    }
    return nullptr;
}

/// The path as Laravel names it in messages ("api/foo"; "/" for the root), with bytes that
/// are not printable ASCII percent-encoded so the JSON reply stays valid whatever arrived.
std::string laravel_path(std::string_view path) {
    if (path.size() > 1 && path.front() == '/') path.remove_prefix(1);
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char c : path.substr(0, max_echoed_path)) {
        auto u = static_cast<unsigned char>(c);
        if (u > 0x20 && u < 0x7f) {
            out += c;
        } else {
            out += '%';
            out += hex[u >> 4];
            out += hex[u & 0xf];
        }
    }
    if (path.size() > max_echoed_path) out += "...";
    return out;
}

/// application/json or application/*+json, any case, parameters allowed.
bool is_json_type(std::string_view content_type) {
    std::string type;
    for (char c : content_type.substr(0, content_type.find(';'))) {
        if (c != ' ' && c != '\t') type += lower(c);
    }
    const std::string_view prefix = "application/";
    const std::string_view suffix = "+json";
    if (type == "application/json") return true;
    return type.size() > prefix.size() + suffix.size() &&
           type.compare(0, prefix.size(), prefix) == 0 &&
           type.compare(type.size() - suffix.size(), suffix.size(), suffix) == 0;
}

http_reply with_route(http_reply r, const char* route) {
    r.route = route;
    return r;
}

http_reply status_reply(unsigned code, const char* status_text, const std::string& reason) {
    rapidjson::StringBuffer buf;
    json_writer w(buf);
    w.StartObject();
    w.Key("status");
    w.String(status_text);
    if (!reason.empty()) {
        w.Key("reason");
        w.String(reason.data(), static_cast<rapidjson::SizeType>(reason.size()));
    }
    w.EndObject();
    http_reply r;
    r.status = code;
    r.body.assign(buf.GetString(), buf.GetSize());
    return r;
}

void write_errors(json_writer& w, const ordered_errors& errors) {
    w.StartObject();
    for (const auto& [field, messages] : errors) {
        w.Key(field.data(), static_cast<rapidjson::SizeType>(field.size()));
        w.StartArray();
        for (const std::string& m : messages) {
            w.String(m.data(), static_cast<rapidjson::SizeType>(m.size()));
        }
        w.EndArray();
    }
    w.EndObject();
}

/// {"message": message, "errors": errors}: Laravel's 422 shape, also for a refused record.
std::string error_body(const std::string& message, const ordered_errors& errors) {
    rapidjson::StringBuffer buf;
    json_writer w(buf);
    w.StartObject();
    w.Key("message");
    w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
    w.Key("errors");
    write_errors(w, errors);
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

/// One record of the request on its way through validation and storage.
struct item_result {
    bool rejected = false;
    std::string message;    // rejected: summary or reason
    ordered_errors errors;  // rejected by validation
    store_outcome outcome;  // not rejected: what the store did
};

struct tally {
    std::uint64_t stored = 0;
    std::uint64_t duplicate = 0;
    std::uint64_t mesh_duplicate = 0;
    std::uint64_t rejected = 0;

    std::string note() const {
        return "stored=" + std::to_string(stored) + " duplicate=" + std::to_string(duplicate) +
               " mesh_duplicate=" + std::to_string(mesh_duplicate) +
               " rejected=" + std::to_string(rejected);
    }
};

tally count(const std::vector<item_result>& results) {
    tally t;
    for (const item_result& r : results) {
        if (r.rejected) {
            ++t.rejected;
        } else if (r.outcome.status == store_status::stored) {
            ++t.stored;
        } else if (r.outcome.status == store_status::duplicate) {
            ++t.duplicate;
        } else {
            ++t.mesh_duplicate;
        }
    }
    return t;
}

/// Validates every item; fills `results` (rejections) and returns the records to store,
/// with `positions[k]` the index in `results` of the k-th record.
std::vector<cluster_data> validate_items(std::vector<request_item>& items,
                                         std::vector<item_result>& results,
                                         std::vector<std::size_t>& positions) {
    std::vector<cluster_data> valid;
    results.resize(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        request_item& item = items[i];
        item_result& r = results[i];
        if (!item.item_error.empty() || !item.record) {
            r.rejected = true;
            r.message =
                item.item_error.empty() ? "The record must be a JSON object." : item.item_error;
            continue;
        }
        r.errors = validate_record(*item.record, item.decode_errors);
        if (!r.errors.empty()) {
            r.rejected = true;
            r.message = summary_message(r.errors);
            continue;
        }
        positions.push_back(i);
        valid.push_back(std::move(*item.record));
    }
    return valid;
}

/// Copies the store's outcomes into their items; a refused record becomes a rejection
/// with a fixed reason (the database's message is logged: it may name internals).
void apply_outcomes(std::vector<store_outcome>& outcomes, const std::vector<std::size_t>& positions,
                    const std::vector<const cluster_data*>& records, const std::string& node,
                    std::vector<item_result>& results) {
    for (std::size_t k = 0; k < outcomes.size() && k < positions.size(); ++k) {
        item_result& r = results[positions[k]];
        if (outcomes[k].status == store_status::refused) {
            const cluster_data& rec = *records[k];
            OPENDMS_LOG(warning, component,
                        "record refused by the database (node "
                            << (node.empty() ? "-" : node) << ", duck_id " << rec.duck_id
                            << ", message_id " << rec.message_id << ", uuid "
                            << rec.uuid.value_or("-") << "): " << outcomes[k].reason);
            r.rejected = true;
            r.message = refused_text;
        } else {
            r.outcome = std::move(outcomes[k]);
        }
    }
}

http_reply single_reply(const item_result& r) {
    http_reply reply;
    if (r.rejected) {
        reply.status = 422;
        reply.body = error_body(r.message, r.errors);
        return reply;
    }
    rapidjson::StringBuffer buf;
    json_writer w(buf);
    w.StartObject();
    w.Key("message");
    w.String("Record ingested");
    w.Key("id");
    w.Int64(r.outcome.id);
    w.EndObject();
    reply.body.assign(buf.GetString(), buf.GetSize());
    return reply;
}

void write_result(json_writer& w, const item_result& r) {
    w.StartObject();
    w.Key("status");
    if (r.rejected) {
        w.String("rejected");
        w.Key("message");
        w.String(r.message.data(), static_cast<rapidjson::SizeType>(r.message.size()));
        w.Key("errors");
        write_errors(w, r.errors);
    } else {
        w.String(store_status_name(r.outcome.status));
        w.Key("id");
        w.Int64(r.outcome.id);
        if (r.outcome.status == store_status::mesh_duplicate) {
            w.Key("duplicate_of");
            w.Int64(r.outcome.duplicate_of);
        }
    }
    w.EndObject();
}

http_reply batch_reply(const std::vector<item_result>& results, const tally& t) {
    rapidjson::StringBuffer buf;
    json_writer w(buf);
    w.StartObject();
    w.Key("message");
    w.String("Batch processed");
    w.Key("stored");
    w.Uint64(t.stored);
    w.Key("duplicates");
    w.Uint64(t.duplicate);
    w.Key("mesh_duplicates");
    w.Uint64(t.mesh_duplicate);
    w.Key("rejected");
    w.Uint64(t.rejected);
    w.Key("results");
    w.StartArray();
    for (const item_result& r : results) write_result(w, r);
    w.EndArray();
    w.EndObject();
    http_reply reply;
    reply.body.assign(buf.GetString(), buf.GetSize());
    return reply;
}

/// A failed acquire or store: 503 with Retry-After when a retry can help (nothing of the
/// request was stored), else 500 (logged: it is a bug or a broken database).
http_reply database_failure(const status& error, std::int64_t retry_after_s) {
    if (error.retryable()) {
        http_reply r = json_message(503, unavailable_text);
        r.headers.emplace_back("Retry-After", std::to_string(retry_after_s));
        r.note = "database unavailable: " + error.message();
        return r;
    }
    OPENDMS_LOG(error, component, "storing records failed: " << error.to_string());
    http_reply r = json_message(500, "Server Error");
    r.note = "server error: " + error.message();
    return r;
}

}  // namespace

std::size_t default_store_groups(std::size_t pool_size) {
    const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
    return std::max<std::size_t>(1, std::min(pool_size, std::max<std::size_t>(2, cores / 2)));
}

namespace {

// How long a small call trusts what PostgreSQL last said of cluster_data's statistics.
constexpr std::chrono::seconds plan_memo_age{60};

group_options group_options_from(const handler_options& o, const db_pool& pool) {
    group_options g;
    g.max_groups = o.store_groups != 0 ? o.store_groups : default_store_groups(pool.size());
    g.max_records = std::max<std::size_t>(o.max_batch_records, 1);
    g.pool_wait = o.pool_wait;
    g.store = o.store;
    // Every call of this handler goes to the one database behind `pool`.
    if (!g.store.plans) g.store.plans = std::make_shared<generic_plan_memo>(plan_memo_age);
    return g;
}

}  // namespace

ingest_handler::ingest_handler(handler_options options, const token_store& tokens, db_pool& pool,
                               metrics& m, const clock& clk)
    : options_(std::move(options)),
      tokens_(tokens),
      pool_(pool),
      metrics_(m),
      group_(pool, clk, group_options_from(options_, pool)) {}

ingest_handler::~ingest_handler() {
    {
        std::lock_guard<std::mutex> lock(monitor_mutex_);
        monitor_stop_ = true;
    }
    monitor_wake_.notify_all();
    if (monitor_.joinable()) monitor_.join();
}

std::optional<http_reply> ingest_handler::check_head(const http_request& head) {
    return check(head, nullptr);
}

std::optional<http_reply> ingest_handler::check(const http_request& head, std::string* node) {
    std::string_view path = path_of(head.target);
    const route_info* route = find_route(path);
    if (!route) {
        return with_route(
            json_message(404, "The route " + laravel_path(path) + " could not be found."), "other");
    }
    if (head.method != route->method) {
        http_reply r = json_message(
            405, "The " + laravel_path(head.method) + " method is not supported for route " +
                     laravel_path(path) + ". Supported methods: " + route->method + ".");
        r.headers.emplace_back("Allow", route->method);
        return with_route(std::move(r), route->path);
    }
    if (path == "/healthz") return with_route(status_reply(200, "ok", ""), route->path);
    if (path == "/metrics") {
        http_reply r;
        r.body = metrics_.render();
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        return with_route(std::move(r), route->path);
    }
    if (path == "/readyz") {
        if (interval_.count() == 0) return std::nullopt;  // asks the database: a worker's job
        readiness latest;
        {
            std::lock_guard<std::mutex> lock(latest_mutex_);
            latest = latest_;
        }
        const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - latest.at);
        if (!latest.known) return std::nullopt;  // the first check is under way: wait for it
        if (age > 3 * interval_) {
            latest.reason = "the database has not answered the readiness check for " +
                            std::to_string(age.count()) + " ms";
            latest.ready = false;
        }
        return with_route(readiness_reply(latest), route->path);
    }

    auth_result auth = tokens_.authenticate(head.authorization);
    if (auth.outcome == auth_outcome::not_configured) {
        return with_route(json_message(503, "Ingestion is not configured on this server."),
                          route->path);
    }
    if (auth.outcome != auth_outcome::ok) {
        return with_route(json_message(401, "Unauthenticated."), route->path);
    }
    std::optional<http_reply> refusal;
    if (!is_json_type(head.content_type)) {
        refusal = json_message(415,
                               "The request body must be JSON: send Content-Type: "
                               "application/json.");
    } else if (head.has_content_length && head.content_length > options_.max_body_bytes) {
        refusal = json_message(413, "The request body is larger than " +
                                        std::to_string(options_.max_body_bytes) + " bytes.");
    }
    if (refusal) {
        refusal->node = auth.node;
        return with_route(std::move(*refusal), route->path);
    }
    if (node) *node = std::move(auth.node);
    return std::nullopt;
}

http_reply ingest_handler::handle(const http_request& request) {
    std::promise<http_reply> answer;
    std::future<http_reply> future = answer.get_future();
    handle_async(request, [&answer](http_reply r) { answer.set_value(std::move(r)); });
    return future.get();
}

void ingest_handler::handle_async(http_request request, std::function<void(http_reply)> done) {
    // The same checks as for the head, so that a caller need not have called check_head().
    std::string node;
    if (std::optional<http_reply> early = check(request, &node)) return done(std::move(*early));
    if (path_of(request.target) == "/readyz") {
        return done(with_route(readiness_reply(check_readiness()), "/readyz"));
    }
    ingest(std::move(request), node, [done = std::move(done)](http_reply r) {
        done(with_route(std::move(r), "/api/ingest"));
    });
}

bool ingest_handler::runs_inline(const http_request& request) const {
    return request.method == "POST" && request.body.size() <= inline_body_bytes &&
           request.content_encoding.empty() && path_of(request.target) == "/api/ingest";
}

void ingest_handler::ingest(http_request request, const std::string& node,
                            std::function<void(http_reply)> done) {
    auto finish = [&](http_reply r) {
        r.node = node;
        done(std::move(r));
    };
    if (request.body.size() > options_.max_body_bytes) {
        return finish(json_message(413, "The request body is larger than " +
                                            std::to_string(options_.max_body_bytes) + " bytes."));
    }
    std::string body = std::move(request.body);
    if (auto e = decode_content(request.content_encoding, body, options_.max_body_bytes)) {
        return finish(json_message(e->http_status, e->message));
    }
    decode_result decoded = decode_ingest_body(
        body, decode_limits{options_.max_body_bytes, options_.max_batch_records});
    if (!decoded.request) {
        request_error e =
            decoded.error.value_or(request_error{400, "The request body is not valid JSON."});
        return finish(json_message(e.http_status, e.message));
    }

    // What the answer needs once the records are stored, kept until the group answers.
    struct pending {
        bool batch = false;
        std::string node;
        std::vector<item_result> results;
        std::vector<std::size_t> positions;
        std::vector<cluster_data> records;  // the valid ones, borrowed by the group
        std::function<void(http_reply)> done;
    };
    auto p = std::make_shared<pending>();
    p->batch = decoded.request->batch;
    p->node = node;
    p->done = std::move(done);
    p->records = validate_items(decoded.request->items, p->results, p->positions);
    auto answer = [this](pending& q) {
        tally t = count(q.results);
        metrics_.count_records(t.stored, t.duplicate, t.mesh_duplicate, t.rejected);
        http_reply reply = q.batch ? batch_reply(q.results, t) : single_reply(q.results.at(0));
        reply.note = t.note();
        reply.node = q.node;
        q.done(std::move(reply));
    };
    if (p->records.empty()) return answer(*p);
    group_.submit(p->records, node, [this, p, answer](store_group::outcomes out) {
        if (!out) {
            http_reply r = database_failure(out.error(), options_.retry_after_s);
            r.node = p->node;
            return p->done(std::move(r));
        }
        std::vector<const cluster_data*> stored;
        stored.reserve(p->records.size());
        for (const cluster_data& r : p->records) stored.push_back(&r);
        apply_outcomes(*out, p->positions, stored, p->node, p->results);
        answer(*p);
    });
}

void ingest_handler::start_readiness_checks(std::chrono::milliseconds interval) {
    if (monitor_.joinable() || interval.count() <= 0) return;
    interval_ = interval;
    monitor_ = std::thread([this] { readiness_loop(); });
}

void ingest_handler::readiness_loop() {
    std::unique_lock<std::mutex> lock(monitor_mutex_);
    while (!monitor_stop_) {
        lock.unlock();
        (void)check_readiness();
        lock.lock();
        monitor_wake_.wait_for(lock, interval_, [this] { return monitor_stop_; });
    }
}

ingest_handler::readiness ingest_handler::check_readiness() {
    std::lock_guard<std::mutex> checking(check_mutex_);
    readiness r;
    r.known = true;
    if (!ready_conn_) {
        auto c = db::open(pool_.options());
        if (c) {
            ready_conn_ = std::move(*c);
        } else {
            r.reason = c.error().message();
        }
    }
    if (ready_conn_) {
        db::migrator m(*ready_conn_);
        auto state = m.state();
        if (!state) {
            if (!state.error().retryable()) ready_conn_.reset();
            r.reason = state.error().message();
        } else {
            std::size_t pending = 0;
            for (const db::migration_state& s : *state) pending += s.applied ? 0 : 1;
            if (pending > 0) {
                r.reason = std::to_string(pending) +
                           " migration(s) pending; run `opendms-central migrate`";
            } else {
                r.ready = true;
            }
        }
    }
    r.at = std::chrono::steady_clock::now();
    std::lock_guard<std::mutex> lock(latest_mutex_);
    latest_ = r;
    return r;
}

http_reply ingest_handler::readiness_reply(const readiness& r) const {
    return r.ready ? status_reply(200, "ready", "") : status_reply(503, "not ready", r.reason);
}

}  // namespace opendms::central
