// db_pool: a fixed number of database connections shared by the worker threads.
//
// Connections are opened lazily (the first acquire() that finds no idle one and fewer
// than `size` open opens a new one), so a server whose database is down still starts.
// A lease returns its connection on destruction; a caller that saw a failure it cannot
// attribute (e.g. errc::internal) calls lease.discard() so the connection is closed
// instead of reused. Lost server connections need no discard: the drivers reconnect on
// the next call outside a transaction.
//
// Thread safety: all members may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/status.hpp"

namespace opendms::central {

class db_pool {
public:
    db_pool(db::connect_options options, std::size_t size);
    ~db_pool();
    db_pool(const db_pool&) = delete;
    db_pool& operator=(const db_pool&) = delete;

    class lease {
    public:
        lease(lease&& o) noexcept;
        lease& operator=(lease&&) = delete;
        lease(const lease&) = delete;
        ~lease();
        db::connection& operator*() const { return *conn_; }
        db::connection* operator->() const { return conn_.get(); }
        /// Close this connection instead of returning it to the pool.
        void discard() noexcept { discard_ = true; }

    private:
        friend class db_pool;
        lease(db_pool* pool, std::unique_ptr<db::connection> c)
            : pool_(pool), conn_(std::move(c)) {}
        db_pool* pool_;
        std::unique_ptr<db::connection> conn_;
        bool discard_ = false;
    };

    /// An idle connection, a new one, or (all `size` in use) the next one returned within
    /// `wait`. errc::unavailable when opening fails (the driver's message) or the wait
    /// times out ("db_pool.acquire: all 8 connections busy for 5000 ms").
    result<lease> acquire(std::chrono::milliseconds wait);

    std::size_t size() const noexcept { return size_; }
    /// The options its connections are opened with (for a connection of one's own).
    const db::connect_options& options() const noexcept { return options_; }
    /// Connections currently leased out.
    std::size_t in_use() const;
    /// Connections currently open (idle + leased).
    std::size_t open_count() const;

private:
    void give_back(std::unique_ptr<db::connection> c, bool discard) noexcept;

    db::connect_options options_;
    std::size_t size_;
    mutable std::mutex mutex_;
    std::condition_variable returned_;
    std::vector<std::unique_ptr<db::connection>> idle_;
    std::size_t in_use_ = 0;
    std::size_t open_ = 0;
};

}  // namespace opendms::central
