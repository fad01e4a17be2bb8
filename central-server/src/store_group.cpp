// store_group: group commit of concurrent requests (contract in store_group.hpp).
#include "opendms/central/store_group.hpp"

#include <algorithm>
#include <exception>
#include <future>
#include <utility>

#include "opendms/log.hpp"

namespace opendms::central {

store_group::store_group(db_pool& pool, const clock& clk, group_options options)
    : pool_(pool), clock_(clk), options_(std::move(options)) {
    options_.max_groups = std::max<std::size_t>(options_.max_groups, 1);
    options_.max_records = std::max<std::size_t>(options_.max_records, 1);
    threads_.reserve(options_.max_groups);
    for (std::size_t i = 0; i < options_.max_groups; ++i) {
        threads_.emplace_back([this] { store_loop(); });
    }
}

store_group::~store_group() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    work_.notify_all();
    for (std::thread& t : threads_) t.join();
}

void store_group::submit(const std::vector<cluster_data>& records, std::string node,
                         completion done) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(job{&records, std::move(node), std::move(done)});
    }
    work_.notify_one();  // no system call when every store thread is busy
}

void store_group::store_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        work_.wait(lock, [this] { return !queue_.empty() || stopping_; });
        if (queue_.empty()) return;  // stopping, and everything queued is stored
        std::vector<job> group = take_group();
        lock.unlock();
        run_group(group);
        lock.lock();
    }
}

store_group::outcomes store_group::store(const std::vector<cluster_data>& records,
                                         std::string node) {
    std::promise<outcomes> promise;
    std::future<outcomes> future = promise.get_future();
    submit(records, std::move(node), [&promise](outcomes r) { promise.set_value(std::move(r)); });
    return future.get();
}

std::vector<store_group::job> store_group::take_group() {
    std::vector<job> group;
    std::size_t records = 0;
    while (!queue_.empty()) {
        const std::size_t n = queue_.front().records->size();
        if (!group.empty() && records + n > options_.max_records) break;
        records += n;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
    }
    ++stats_.transactions;
    stats_.requests += group.size();
    stats_.records += records;
    stats_.largest = std::max(stats_.largest, group.size());
    return group;
}

void store_group::run_group(std::vector<job>& group) {
    std::vector<store_input> inputs;
    for (const job& j : group) {
        for (const cluster_data& r : *j.records) inputs.push_back({&r, &j.node});
    }
    outcomes all = status(errc::internal, "store_group: not stored");
    {
        auto lease = pool_.acquire(options_.pool_wait);
        if (!lease) {
            all = lease.error();
        } else {
            all = store_records(**lease, inputs, clock_.now(), options_.store);
            if (!all && !all.error().retryable()) lease->discard();
        }
    }  // the connection is back in the pool before anyone is answered
    std::size_t at = 0;
    for (job& j : group) {
        auto mine = [&]() -> outcomes {
            if (!all) return all.error();
            const auto first = all->begin() + static_cast<std::ptrdiff_t>(at);
            return std::vector<store_outcome>(
                std::make_move_iterator(first),
                std::make_move_iterator(first + static_cast<std::ptrdiff_t>(j.records->size())));
        }();
        at += j.records->size();
        try {
            j.done(std::move(mine));
        } catch (const std::exception& e) {
            OPENDMS_LOG(error, "ingest", "a store completion failed: " << e.what());
        } catch (...) {
            OPENDMS_LOG(error, "ingest", "a store completion failed");
        }
    }
}

group_stats store_group::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

std::size_t store_group::waiting() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
}

}  // namespace opendms::central
