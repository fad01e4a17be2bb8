// store_group: group commit for the central server. Concurrent requests hand their records
// to submit(), which only queues them. max_groups store threads of the group's own each
// take the requests waiting (oldest first, up to max_records records), store them with ONE
// store_records() call on one pooled connection (each record keeps the node that
// delivered it), and give every request its own outcomes. A request's records are never
// split between groups.
//
// Why: a transaction costs PostgreSQL a fixed handful of round trips, a commit and (with
// mesh duplicates on) a packet-lock statement whatever its size; many single-record
// requests stored one transaction each spent most of the database's time on that.
// With max_groups transactions at most in flight, requests that arrive meanwhile wait
// and go together into the next one, so the transactions grow with the load.
//
// Outcomes: exactly what store_records() would give the request alone, with one
// difference that is no error: records of requests stored together see each other like
// records of one batch (a copy of a packet another request of the same group carries is
// its mesh duplicate; the same uuid twice is one row and a duplicate). A failure of the
// group's transaction (the pool has no connection within pool_wait, the database is
// unavailable, a bug) is every request's failure: nothing of the group was stored.
// A connection whose failure is not retryable is discarded, not returned to the pool.
//
// Threads: submit() may be called from any thread and never blocks on the database (it
// takes a mutex to queue), so an Asio thread may call it. The completion runs exactly
// once, on a store thread, after the transaction; it must not block for long (the next
// group waits for it) and must not call submit() synchronously with store(). The
// destructor stores what is still queued, then joins the store threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "opendms/central/central_store.hpp"
#include "opendms/central/db_pool.hpp"
#include "opendms/clock.hpp"
#include "opendms/record.hpp"
#include "opendms/status.hpp"

namespace opendms::central {

struct group_options {
    std::size_t max_groups = 2;      // transactions in flight at once (at least 1)
    std::size_t max_records = 1000;  // records per transaction (a larger request goes alone)
    std::chrono::milliseconds pool_wait{5000};
    store_options store;
};

struct group_stats {
    std::uint64_t transactions = 0;  // store_records() calls
    std::uint64_t requests = 0;      // requests they carried
    std::uint64_t records = 0;
    std::size_t largest = 0;  // most requests in one transaction
};

class store_group {
public:
    using outcomes = result<std::vector<store_outcome>>;
    using completion = std::function<void(outcomes)>;

    /// Borrows the pool and the clock; both must outlive the group.
    store_group(db_pool& pool, const clock& clk, group_options options);
    ~store_group();
    store_group(const store_group&) = delete;
    store_group& operator=(const store_group&) = delete;

    /// Stores `records` (validated; non-empty) delivered by `node`; `done` gets one
    /// outcome per record, in order, or the transaction's failure. `records` is borrowed:
    /// it must stay unchanged until `done` has been called.
    void submit(const std::vector<cluster_data>& records, std::string node, completion done);

    /// submit() and wait for the outcome (not from a completion).
    outcomes store(const std::vector<cluster_data>& records, std::string node);

    group_stats stats() const;
    std::size_t waiting() const;

private:
    struct job {
        const std::vector<cluster_data>* records;
        std::string node;
        completion done;
    };

    std::vector<job> take_group();  // under the lock: the next group, oldest first
    void run_group(std::vector<job>& group);
    void store_loop();  // a store thread

    db_pool& pool_;
    const clock& clock_;
    group_options options_;
    mutable std::mutex mutex_;
    std::condition_variable work_;
    std::deque<job> queue_;
    bool stopping_ = false;
    group_stats stats_;
    std::vector<std::thread> threads_;  // last: started when the rest is ready
};

}  // namespace opendms::central
