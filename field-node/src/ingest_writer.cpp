// ingest_writer: submitters queue one message each and wait; the writer thread stores a
// batch in one transaction and wakes them. See ingest_writer.hpp for the contract.
#include "opendms/field/ingest_writer.hpp"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>

namespace opendms::field {

namespace {

constexpr const char* what = "ingest.writer";

}  // namespace

// Lives on the submitter's stack; the writer fills `outcome` without the lock while the
// submitter waits, then sets `done` and notifies `wake` under the lock, after which it
// never touches the job. One condition variable each: a batch wakes only its submitters.
// A batch submission queues one job per message and waits on the last one's `wake`
// (jobs are finished in queue order).
struct ingest_writer::job {
    std::condition_variable wake;
    batch_entry entry;
    bool done = false;
};

ingest_writer::ingest_writer(std::unique_ptr<db::connection> c, const clock& clk,
                             ingest_options options, writer_options wo)
    : ingest_writer(*c, clk, std::move(options), wo) {
    owned_ = std::move(c);
}

ingest_writer::ingest_writer(db::connection& c, const clock& clk, ingest_options options,
                             writer_options wo)
    : store_(c, clk, std::move(options)), options_(wo) {
    if (options_.max_batch == 0) options_.max_batch = 1;
}

ingest_writer::~ingest_writer() {
    stop();
}

void ingest_writer::start() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (started_ || stopping_) return;
    started_ = true;
    thread_ = std::thread([this] { run(); });
}

void ingest_writer::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    work_.notify_all();
    if (thread_.joinable()) thread_.join();
    std::vector<job*> left;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        left.assign(queue_.begin(), queue_.end());
        queue_.clear();
    }
    finish(left, status(errc::unavailable, std::string(what) + ": stopped"));
}

result<ingest_outcome> ingest_writer::submit(std::string_view topic, std::string_view bytes) {
    return std::move(submit_batch({{topic, bytes}})[0]);
}

std::vector<result<ingest_outcome>> ingest_writer::submit_batch(
    const std::vector<std::pair<std::string_view, std::string_view>>& messages) {
    std::vector<job> jobs(messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) {
        jobs[i].entry = store_.entry(messages[i].first, messages[i].second);  // outside the lock
    }
    std::vector<result<ingest_outcome>> out;
    out.reserve(jobs.size());
    if (jobs.empty()) return out;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        if (stopping_) {
            stats_.failed_messages += jobs.size();
            for (std::size_t i = 0; i < jobs.size(); ++i) {
                out.emplace_back(status(errc::unavailable, std::string(what) + ": stopped"));
            }
            return out;
        }
        for (job& j : jobs) queue_.push_back(&j);
        work_.notify_one();
        job& last = jobs.back();
        last.wake.wait(lock, [&] { return last.done; });
    }
    for (job& j : jobs) out.push_back(std::move(*j.entry.outcome));
    return out;
}

std::size_t ingest_writer::queued() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
}

bool ingest_writer::stopping() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_;
}

writer_stats ingest_writer::stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
}

void ingest_writer::run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;  // stop() fails what is still queued
        const std::size_t n = std::min(queue_.size(), options_.max_batch);
        std::vector<job*> batch(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
        stats_.largest_batch = std::max(stats_.largest_batch, n);
        lock.unlock();
        write_batch(batch);
        finish(batch, status::ok());
        lock.lock();
    }
}

// Fills every job's outcome. Only this thread uses the connection.
void ingest_writer::write_batch(std::vector<job*>& batch) {
    std::vector<batch_entry*> entries;
    entries.reserve(batch.size());
    for (job* j : batch) entries.push_back(&j->entry);
    const batch_counts n = store_.ingest_batch(entries, what);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.commits += n.commits;
    stats_.rollbacks += n.rollbacks;
}

// Publishes the outcomes (or `error` for jobs without one) and wakes the submitters.
void ingest_writer::finish(std::vector<job*>& jobs, const status& error) {
    if (jobs.empty()) return;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        for (job* j : jobs) {
            std::optional<result<ingest_outcome>>& outcome = j->entry.outcome;
            if (!outcome) outcome = result<ingest_outcome>(error);
            if (*outcome) {
                ++stats_.committed_messages;
            } else {
                ++stats_.failed_messages;
            }
            j->done = true;
            // Under the lock: the submitter cannot see `done` and destroy the job before.
            j->wake.notify_one();
        }
    }
}

}  // namespace opendms::field
