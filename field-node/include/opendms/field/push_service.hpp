// push_service: a pusher with everything it owns — its own database connection, its HTTPS
// client, its thread, and the lock that keeps one pusher per database. Used by
// `opendms-field run` (beside ingest) and `opendms-field push` (alone).
//
// The lock: an exclusive flock() on "<DB_DATABASE>.push.lock", held while the service
// lives; a second pusher on the same database (a `push` while `run` is up) is refused with
// errc::conflict, so records are never sent twice by two processes at once.
// Threads: open/start/stop from one thread (the daemon's main); notify() from any thread.
#pragma once

#include <memory>
#include <thread>
#include <vector>

#include "opendms/field/field_settings.hpp"
#include "opendms/field/pusher.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

class push_service {
public:
    /// Takes the lock, opens the database, creates the client and opens the pusher.
    /// `s.push.enabled` must be true (hybrid mode).
    static result<std::unique_ptr<push_service>> open(const field_settings& s);
    ~push_service();  // stop()
    push_service(const push_service&) = delete;
    push_service& operator=(const push_service&) = delete;

    /// Runs the pusher on a new thread.
    void start();
    /// Stops the pusher (a request in flight is cancelled) and joins its thread. Idempotent.
    void stop();
    /// New records were queued (from the ingest threads).
    void notify() { pusher_->notify(); }

    pusher& get() { return *pusher_; }

private:
    push_service() = default;

    int lock_fd_ = -1;
    std::unique_ptr<db::connection> connection_;
    std::vector<std::unique_ptr<https_client>> clients_;  // one per request in flight
    std::unique_ptr<pusher> pusher_;
    std::thread thread_;
};

}  // namespace opendms::field
