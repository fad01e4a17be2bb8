// db_pool: lazily opened connections shared by the worker threads. See db_pool.hpp.
#include "opendms/central/db_pool.hpp"

#include <string>
#include <utility>

namespace opendms::central {

db_pool::db_pool(db::connect_options options, std::size_t size)
    : options_(std::move(options)), size_(size) {}

db_pool::~db_pool() = default;

db_pool::lease::lease(lease&& o) noexcept
    : pool_(o.pool_), conn_(std::move(o.conn_)), discard_(o.discard_) {
    o.pool_ = nullptr;
}

db_pool::lease::~lease() {
    if (pool_ != nullptr && conn_) pool_->give_back(std::move(conn_), discard_);
}

result<db_pool::lease> db_pool::acquire(std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        if (!idle_.empty()) {
            std::unique_ptr<db::connection> c = std::move(idle_.back());
            idle_.pop_back();
            ++in_use_;
            return lease(this, std::move(c));
        }
        if (open_ < size_) break;
        if (returned_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
            open_ >= size_) {
            return status(errc::unavailable, "db_pool.acquire: all " + std::to_string(size_) +
                                                 " connections busy for " +
                                                 std::to_string(wait.count()) + " ms");
        }
    }
    // Opening may take the connect timeout: the slot is reserved, the lock released.
    ++open_;
    ++in_use_;
    lock.unlock();
    auto c = db::open(options_);
    if (c) return lease(this, std::move(*c));
    lock.lock();
    --open_;
    --in_use_;
    lock.unlock();
    returned_.notify_one();  // a waiter may try to open the slot itself
    return status(errc::unavailable, "db_pool.acquire: " + c.error().message());
}

void db_pool::give_back(std::unique_ptr<db::connection> c, bool discard) noexcept {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        --in_use_;
        if (discard) {
            --open_;
        } else {
            idle_.push_back(std::move(c));
        }
    }
    returned_.notify_one();
    c.reset();  // a discarded connection closes outside the lock (a server round trip)
}

std::size_t db_pool::in_use() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return in_use_;
}

std::size_t db_pool::open_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return open_;
}

}  // namespace opendms::central
