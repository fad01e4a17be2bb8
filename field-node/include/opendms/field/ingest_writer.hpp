// ingest_writer: group commit for several MQTT connections. Many threads submit messages
// (one, or one connection's batch); ONE writer thread stores whatever is waiting in one
// transaction and tells every submitter its own outcomes after the COMMIT.
//
// Why: libmosquitto sends the PUBACK of a QoS 1 message only after we have handed it over,
// so a message must be committed before then. Each connection already hands over what it
// has read in one batch (mqtt_subscriber.hpp); with several connections (a shared
// subscription) their batches meet here and share one commit and one connection. A single
// connection does not need it: it stores its batches on its own thread (field_daemon.cpp).
//
// Contract of submit(topic, bytes) and submit_batch(), called from any number of threads
// at once (for submit_batch, per message):
//   - ok: the transaction holding the message has COMMITTED (with synchronous=FULL: synced
//     to disk); the caller may acknowledge it. The outcome is the one ingest() would give
//     (stored, mesh_duplicate, quarantined; a record the database refuses is quarantined
//     under a savepoint without touching the batch's other messages).
//   - error: NOTHING of the message is stored; the caller must not acknowledge it and may
//     submit it again later. A failed BEGIN or COMMIT fails every message of the batch
//     (the transaction rolled back). A message whose own statements fail gets its error and
//     the batch is rolled back and run again without it, so one bad message never fails the
//     others (on a full disk each one fails in turn). errc::unavailable after stop().
//     As with ingest(): an error from COMMIT on a server connection may hide a commit that
//     happened; the redelivered copy then becomes a mesh duplicate, not a second record.
// Nothing is retried inside the writer: the next batch simply tries again, so a database
// that comes back (disk freed, server restarted: the drivers reconnect outside a
// transaction) is used without a restart.
//
// Memory is bounded: a submitter blocks until its outcomes are known, so the queue holds at
// most one submission (one message, or one connection's batch) per submitting thread; a
// transaction takes at most `max_batch` messages.
// The message is parsed in the submitting thread (pure), so the writer holds the database's
// write lock only for the SQL. The receive time is read when submit() is called.
//
// Threads and ownership: the writer owns its thread and its ingest_store, and uses the
// connection (owned or borrowed, see the constructors) only on that thread between start()
// and the end of stop(); before start() and after stop() the connection is the caller's
// again. submit() may be called before start(): it waits. stop() and the destructor must
// not be called from a submitting thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

struct writer_options {
    std::size_t max_batch = 256;  // messages per transaction at most (0 is taken as 1)
};

/// Counts since construction; a snapshot, consistent with itself.
struct writer_stats {
    std::uint64_t commits = 0;             // transactions committed (batches, reruns included)
    std::uint64_t committed_messages = 0;  // messages reported ok
    std::uint64_t failed_messages = 0;     // messages reported as errors (stop() included)
    std::uint64_t rollbacks = 0;           // transactions rolled back after a failure
    std::size_t largest_batch = 0;         // most messages taken into one transaction
};

class ingest_writer {
public:
    /// Owns the connection. `clk` must outlive the writer.
    ingest_writer(std::unique_ptr<db::connection> c, const clock& clk, ingest_options options,
                  writer_options wo = {});
    /// Borrows the connection, which must outlive the writer (tests wrap it in faults).
    ingest_writer(db::connection& c, const clock& clk, ingest_options options,
                  writer_options wo = {});
    /// stop().
    ~ingest_writer();
    ingest_writer(const ingest_writer&) = delete;
    ingest_writer& operator=(const ingest_writer&) = delete;

    /// Starts the writer thread. Once only; ignored after stop().
    void start();

    /// Stops taking messages: submissions from now on, and those waiting that are not in
    /// the batch being written, fail with errc::unavailable; the batch being written is
    /// finished (committed or rolled back) and its submitters get their outcome. Joins the
    /// thread. Idempotent. Never waits for new messages.
    void stop();

    /// Stores one message; blocks until its transaction committed or failed (see above).
    /// `topic` and `bytes` are only borrowed during the call.
    result<ingest_outcome> submit(std::string_view topic, std::string_view bytes);
    /// Stores several (topic, bytes) messages, queued together in order (they share a
    /// transaction, unless max_batch splits them), and returns one outcome each, in order,
    /// once all are known. One hand-off for the lot: a connection's burst costs one wake-up.
    std::vector<result<ingest_outcome>> submit_batch(
        const std::vector<std::pair<std::string_view, std::string_view>>& messages);

    /// Messages submitted and not yet taken into a batch (for tests and diagnostics).
    std::size_t queued() const;
    /// True once stop() has begun: submit() fails from then on.
    bool stopping() const;
    writer_stats stats() const;

private:
    struct job;

    void run();
    void write_batch(std::vector<job*>& batch);
    void finish(std::vector<job*>& jobs, const status& error);

    std::unique_ptr<db::connection> owned_;
    ingest_store store_;
    writer_options options_;

    mutable std::mutex mutex_;
    std::condition_variable work_;  // the writer waits for jobs or stop
    std::deque<job*> queue_;
    bool stopping_ = false;
    bool started_ = false;
    writer_stats stats_;
    std::thread thread_;
};

}  // namespace opendms::field
