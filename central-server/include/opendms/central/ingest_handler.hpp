// ingest_handler: the meaning of every route. HTTP-independent (http_types.hpp), so it is
// tested without sockets on SQLite and used by http_server with PostgreSQL or MySQL.
//
// Routes:
//   POST /api/ingest  Bearer auth (token_store); then Content-Type must be JSON
//                     (application/json or application/*+json, parameters allowed): 415;
//                     Content-Encoding gzip allowed; body decoded (ingest_request.hpp),
//                     each record validated (record_validator.hpp), valid ones stored in
//                     one store_records() call (central_store.hpp).
//       single form (the seed's):  200 {"message":"Record ingested","id":N} (also for a
//                     duplicate: the existing id; for a mesh duplicate: the new row's id);
//                     422 {"message":..., "errors":{...}} in Laravel's shape.
//       batch form:   200 {"message":"Batch processed","stored":a,"duplicates":b,
//                     "mesh_duplicates":c,"rejected":d,"results":[{"status":"stored","id":1},
//                     {"status":"duplicate","id":7},{"status":"mesh_duplicate","id":9,
//                     "duplicate_of":3},{"status":"rejected","message":"...","errors":{...}}]}
//                     results in request order; rejected = failed validation or refused
//                     by the database. Never 422 for the batch as a whole.
//       A record the database refuses is answered with a fixed reason ("The database
//       refused a value of this record (too long, or not storable)."); the database's own
//       message is logged (warning, with the record's uuid), never sent: it may name
//       internals.
//       Storing goes through store_group (group commit): concurrent requests share a
//       transaction, each with its own answer; handle_async() answers from the store
//       thread that ran the group, so no HTTP thread or worker waits for a transaction.
//       A small uncompressed body is decoded on the Asio thread (runs_inline()); a
//       compressed or larger one on a worker.
//   GET /healthz      200 {"status":"ok"}: the process is up (no database access)
//   GET /readyz       200 {"status":"ready"} when the database answers and the migrations
//                     are current; else 503 {"status":"not ready","reason":...}. It uses a
//                     connection of its own, never the pool, so a pool busy with ingest
//                     does not make the instance look unready. With
//                     start_readiness_checks() (the daemon) a thread checks every interval
//                     and check_head() answers from the latest check at once (not ready
//                     when the latest is older than 3 intervals: the database hangs);
//                     without (or before the first check is done), each /readyz checks
//                     on a worker.
//   GET /metrics      Prometheus text (text/plain; version=0.0.4)
//   anything else     404 {"message":"The route <path> could not be found."}; a known path
//                     with another method: 405 {"message":"The GET method is not supported
//                     for route api/ingest. Supported methods: POST."} with Allow.
// Auth answers, as the seed: no token configured -> 503 {"message":"Ingestion is not
// configured on this server."}; missing or wrong -> 401 {"message":"Unauthenticated."}.
// Both come from check_head(), so the body is never read. check_head() also answers 413
// when Content-Length exceeds the limit.
// Database errors: retryable (unavailable, io_error, pool exhausted) -> 503
// {"message":"The database is unavailable; retry later."} with Retry-After: the whole
// request was rolled back. Anything else -> 500 {"message":"Server Error"} (logged).
// Records counted in metrics: stored, duplicate, mesh_duplicate, rejected.
//
// Thread safety: check_head() and handle() are called concurrently from many threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "opendms/central/central_settings.hpp"
#include "opendms/central/central_store.hpp"
#include "opendms/central/db_pool.hpp"
#include "opendms/central/http_server.hpp"
#include "opendms/central/metrics.hpp"
#include "opendms/central/store_group.hpp"
#include "opendms/central/token_store.hpp"
#include "opendms/clock.hpp"

namespace opendms::central {

struct handler_options {
    std::size_t max_body_bytes = 8 * 1024 * 1024;
    std::size_t max_batch_records = 1000;
    std::int64_t retry_after_s = 5;
    std::chrono::milliseconds pool_wait{5000};
    store_options store;
    /// Store transactions in flight at once (store_group's max_groups); 0: the default,
    /// default_store_groups(pool size).
    std::size_t store_groups = 0;
};

/// Half the cores, at least 2 and at most the pool: more transactions at once than the
/// database can run side by side only make each group smaller (on 2 cores, 2 in flight
/// carried about 8 single-record requests each and served more requests than 4 or 16).
std::size_t default_store_groups(std::size_t pool_size);

class ingest_handler final : public request_handler {
public:
    /// Borrows everything; all must outlive the handler.
    ingest_handler(handler_options options, const token_store& tokens, db_pool& pool, metrics& m,
                   const clock& clk);
    ~ingest_handler() override;

    std::optional<http_reply> check_head(const http_request& head) override;
    /// handle_async() and wait for its answer.
    http_reply handle(const http_request& request) override;
    void handle_async(http_request request, std::function<void(http_reply)> done) override;
    /// True for POST /api/ingest with an uncompressed body of at most 16 KiB:
    /// decoding and validating it is quick and storing is the store group's (its threads).
    bool runs_inline(const http_request& request) const override;

    /// Starts the readiness thread (see /readyz above); stopped by the destructor.
    void start_readiness_checks(std::chrono::milliseconds interval);

    const store_group& group() const { return group_; }

private:
    struct readiness {
        bool known = false;
        bool ready = false;
        std::string reason;
        std::chrono::steady_clock::time_point at;
    };

    /// check_head()'s checks; when the request may go on, `node` (if given) gets the
    /// authenticated node, so that the token is hashed once per call.
    std::optional<http_reply> check(const http_request& head, std::string* node);
    void ingest(http_request request, const std::string& node,
                std::function<void(http_reply)> done);
    readiness check_readiness();
    http_reply readiness_reply(const readiness& r) const;
    void readiness_loop();

    handler_options options_;
    const token_store& tokens_;
    db_pool& pool_;
    metrics& metrics_;
    store_group group_;

    std::mutex check_mutex_;                      // one readiness check at a time
    std::unique_ptr<db::connection> ready_conn_;  // under check_mutex_
    mutable std::mutex latest_mutex_;
    readiness latest_;                       // under latest_mutex_
    std::chrono::milliseconds interval_{0};  // 0: no readiness thread
    std::mutex monitor_mutex_;
    std::condition_variable monitor_wake_;
    bool monitor_stop_ = false;  // under monitor_mutex_
    std::thread monitor_;
};

}  // namespace opendms::central
