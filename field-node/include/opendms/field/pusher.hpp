// pusher: delivers the outbox to the central server, for ever, in the background.
//
// One step (step()) = launch what may go, then finish one request:
//   1. not before push_state.next_attempt_at (the backoff), nor faster than
//      CENTRAL_DMS_MAX_RATE;
//   2. demote rows older than the live window to the backlog lane; take a batch (live lane
//      newest first, then the backlog oldest first: outbox_store.hpp);
//   3. send it: the batch form (one gzip request, a result per record) or, for a central
//      that does not know it, the seed's form (one request per record, keep-alive).
//      Batches are pipelined: up to CENTRAL_DMS_CONCURRENCY requests are in flight, each on
//      its own connection (transport) and thread, while this thread reads the next batch
//      (skipping the rows in flight) and settles the answers in the order they were sent;
//      so the field node's database work overlaps the central's. Single records go one at
//      a time;
//   4. settle the answer in ONE transaction (outbox_store::settle): delivered records are
//      synced and leave the outbox; records the central rejects (400/422, "rejected" in a
//      batch, or 413 alone) are parked with its reason and stay synced = false; the rest
//      stay queued.
// The meaning of each answer is push_policy.hpp's classify_answer():
//   network error, timeout, 408, 429, 5xx   retry on CENTRAL_DMS_BACKOFF with jitter, or
//                                           after Retry-After; never give up
//   401, 403                                the same, plus the AUTH ALARM: logged at error
//                                           on every failure, shown by `status`, cleared by
//                                           the next success; the token file is re-read
//   413                                     the batch is split in halves (the smaller size is
//                                           kept: the central's limit is lower); one record
//                                           alone: parked (it was the cause), and batches go
//                                           back to CENTRAL_DMS_BATCH_SIZE
//   a batch answered 400/415/422            in auto mode: the central is a seed (Laravel)
//                                           one; switch to single records, try batches again
//                                           after an hour. With CENTRAL_DMS_PROTOCOL=batch:
//                                           a failure like any other
//   404, 405, 3xx, other 4xx                a misdirected URL or a proxy: retried on the
//                                           schedule, logged at error
// Nothing is ever dropped: a record leaves the outbox only when the central has it.
// Idempotency: every record carries its uuid, so a record sent twice (a crash between the
// central's commit and ours; a cut connection) is stored once.
//
// Several requests in flight fail together when the link goes down: only the first
// failure of an attempt counts (and sets the backoff); the others only record an attempt
// on their records.
// Time comes from the clock (tests use manual_clock); randomness for the jitter from
// `random_unit` (uniform in [0, 1)).
// Threads: step() from one thread (the pusher's, or a test's). run() loops step() on the
// calling thread until stop(); stop() and notify() are thread-safe. The connection and
// the client belong to the pusher's thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>

#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/field/https_client.hpp"
#include "opendms/field/outbox_store.hpp"
#include "opendms/field/push_policy.hpp"
#include "opendms/field/push_settings.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

/// Counts since the pusher was made (for logs and tests).
struct pusher_stats {
    std::uint64_t requests = 0;         // HTTP requests sent (answered or not)
    std::uint64_t delivered = 0;        // records marked synced
    std::uint64_t parked = 0;           // records parked
    std::uint64_t failed_attempts = 0;  // rounds that ended in a retry
    std::uint64_t splits = 0;           // 413s that halved the batch
};

/// What step() did, and when the next step is due.
struct step_result {
    enum kind_t {
        sent,     // a round went out (delivered, parked or failed): step again at `due_ms`
        idle,     // nothing to send: step again after the poll interval or notify()
        waiting,  // the backoff or the rate cap: step again at `due_ms`
    } kind = idle;
    std::int64_t due_ms = 0;  // on the pusher's clock
};

class pusher {
public:
    /// Borrows everything; all must outlive the pusher. `c` is the field node's SQLite
    /// database (hybrid mode), used only by the pusher's thread. One transport: one request
    /// at a time.
    pusher(push_options options, db::connection& c, const clock& clk, http_transport& client,
           std::function<double()> random_unit);
    /// One transport per request in flight (at least one; single records use the first).
    pusher(push_options options, db::connection& c, const clock& clk,
           std::vector<http_transport*> clients, std::function<double()> random_unit);
    /// Waits for the requests in flight (cancel them first with stop()).
    ~pusher();

    /// Loads push_state and queues orphaned pending records (outbox_store::adopt_orphans).
    /// Call once before step() or run().
    status open();

    /// One step (see the file comment). Database errors are returned (nothing was lost:
    /// the step is simply tried again later).
    result<step_result> step();

    /// Steps until stop(), waiting as step() says (real time). Logs failures.
    void run();
    /// Thread-safe: makes run() return soon (a request in flight is cancelled).
    void stop();
    /// Thread-safe: records were queued; an idle run() looks now rather than after the
    /// poll interval (the backoff is still honoured). Cheap when called for every message:
    /// it wakes run() only when run() is waiting for records and was not told yet.
    void notify();

    const push_state_row& state() const { return state_; }
    /// Thread-safe snapshot.
    pusher_stats stats() const;
    /// Called after every HTTP request with its duration in seconds (answered or not), on
    /// the thread that sent it, so several at once with CENTRAL_DMS_CONCURRENCY > 1: it must
    /// be thread-safe. Set before run(). For the metrics (field_metrics.hpp).
    void set_request_observer(std::function<void(double)> observer) { observer_ = std::move(observer); }
    /// The protocol the next round uses.
    push_protocol current_protocol() const;

private:
    struct round;
    struct flight {
        std::vector<outbox_item> items;
        std::size_t slot = 0;
        std::uint64_t attempt = 0;  // attempt_ when launched
        std::future<result<http_answer>> answer;
    };
    status launch_batches(std::int64_t now_ms, std::int64_t& pace_wait_ms);
    result<step_result> finish_batch(flight& f, result<http_answer> answer);
    result<step_result> send_singles(std::vector<outbox_item>& items, std::int64_t now_ms);
    result<step_result> on_failure(round& r, const std::string& error, answer_kind kind,
                                   std::optional<std::chrono::milliseconds> retry_after,
                                   std::int64_t now_ms, bool counts = true);
    result<step_result> on_success(round& r, std::int64_t now_ms);
    status settle(round& r);
    void refresh_token();
    std::vector<std::pair<std::string, std::string>> headers(bool batch, bool gzip) const;
    void record_wire_counts();

    push_options options_;
    [[maybe_unused]] db::connection& c_;  // only stored (outbox_ uses it): clang warns
    const clock& clock_;
    std::vector<http_transport*> clients_;
    std::vector<bool> slot_busy_;
    std::deque<flight> flights_;
    std::uint64_t attempt_ = 0;  // advances with every failure that counts
    std::function<double()> random_unit_;
    std::function<void(double)> observer_;  // set_request_observer
    outbox_store outbox_;
    backoff_schedule schedule_;
    pacer pacer_;
    push_state_row state_;
    struct {
        std::atomic<std::uint64_t> requests{0}, delivered{0}, parked{0}, failed_attempts{0},
            splits{0};
    } stats_;
    std::string token_;
    std::size_t batch_limit_;
    std::int64_t next_attempt_ms_ = 0;       // in memory, to the millisecond
    std::int64_t batch_recheck_ms_ = 0;      // auto mode on a seed central: try batches again
    std::int64_t wire_base_sent_ = 0;        // push_state's counts when opened
    std::int64_t wire_base_received_ = 0;

    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    bool notified_ = false;      // records queued since run() last looked
    bool waiting_idle_ = false;  // run() waits with an empty outbox: a notify() wakes it
};

}  // namespace opendms::field
