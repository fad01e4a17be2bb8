// field_metrics: the field node's Prometheus endpoint, GET /metrics on FIELD_METRICS_LISTEN
// (off by default). docs/operations.md lists every series.
//
//   opendms_field_messages_total{outcome="stored|mesh_duplicate|quarantined"}  counter, since start
//   opendms_field_mqtt_connections{state="subscribed|configured"}             gauge
//   opendms_field_records{sync="pending|synced|not_applicable"}               gauge, database
//   opendms_field_outbox_records{lane="live|backlog|parked"}                  gauge, database
//   opendms_field_quarantine_records, opendms_field_mesh_duplicate_records    gauge, database
//   opendms_field_oldest_pending_age_seconds                                  gauge, 0 when none
//   opendms_field_push_last_success_timestamp_seconds                         gauge, 0 never
//   opendms_field_push_consecutive_failures, opendms_field_push_auth_alarm    gauge
//   opendms_field_push_{requests,delivered,parked,failed_attempts}_total      counter, since start
//   opendms_field_push_request_duration_seconds_bucket{le=...}                histogram
//   opendms_field_database_up                                                 1 when the read worked
// The database gauges come from read_status() (field_status.hpp), the same snapshot as
// `opendms-field status`; the push series exist only in hybrid mode.
//
// The listener has no authentication, so only loopback addresses are accepted
// (127.0.0.0/8, ::1, localhost); a scraper elsewhere reaches it through a tunnel or a local
// agent. It is one Asio thread, serves GET /metrics only (404 for other paths, 405 for
// other methods), keeps at most 8 connections and closes a connection idle for 10 s.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "opendms/config/settings.hpp"
#include "opendms/db/database.hpp"
#include "opendms/field/field_status.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

struct metrics_options {
    std::string host;         // empty: off
    unsigned short port = 0;  // 0: any free port (tests; the start-up line names it)
    bool enabled() const { return !host.empty(); }
};

/// Reads FIELD_METRICS_LISTEN (unset: off; `IPv4:PORT`, `[IPv6]:PORT` or `localhost:PORT`,
/// loopback only); a problem naming the variable and the fix otherwise.
metrics_options load_metrics_options(config::setting_reader& r);
/// The check-config line(s).
void describe_metrics(const metrics_options& o, const config::env_map& env,
                      std::vector<std::string>& lines);

/// Request durations in seconds, in fixed buckets. Thread-safe (atomics): observe() from
/// the pusher's threads, snapshot() from the listener's.
class latency_histogram {
public:
    static constexpr std::array<double, 12> bounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10,  30};
    struct snapshot_t {
        std::array<std::uint64_t, bounds.size()> buckets{};  // per bucket, not cumulative
        std::uint64_t count = 0;                               // every observation (+Inf)
        double sum = 0;
    };
    void observe(double seconds);
    snapshot_t snapshot() const;

private:
    std::array<std::atomic<std::uint64_t>, bounds.size()> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_us_{0};  // microseconds, so an atomic integer suffices
};

/// The daemon's own counts since it started.
struct daemon_counts {
    std::uint64_t stored = 0;
    std::uint64_t mesh_duplicates = 0;
    std::uint64_t quarantined = 0;
    int connections_up = 0;
    int connections = 0;
};

/// Everything one scrape shows.
struct metrics_sample {
    daemon_counts daemon;
    std::optional<field_status> database;  // nullopt: the read failed
    bool hybrid = false;                   // the push series are shown
    std::uint64_t push_requests = 0, push_delivered = 0, push_parked = 0, push_failed = 0;
    latency_histogram::snapshot_t latency;
    unix_seconds now = 0;
};

/// The Prometheus text exposition (version 0.0.4) of `m`. Pure.
std::string render_metrics(const metrics_sample& m);

/// The HTTP listener. The sampler runs on the listener's thread for every scrape and may
/// block briefly (it reads the database).
class metrics_server {
public:
    using sampler = std::function<metrics_sample()>;
    metrics_server(metrics_options o, sampler sample);
    ~metrics_server();  // stop()
    metrics_server(const metrics_server&) = delete;
    metrics_server& operator=(const metrics_server&) = delete;

    /// Binds, listens and starts the thread. errc::unavailable "metrics.listen:
    /// 127.0.0.1:9101: Address already in use".
    status start();
    /// The bound port (after start()).
    unsigned short port() const;
    /// Closes the listener and every connection, joins the thread. Idempotent.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

class pusher;

/// Where the daemon's sampler reads from.
struct metrics_sources {
    db::connect_options database;            // read with a connection of the listener's own
    std::function<daemon_counts()> daemon;   // any thread
    const pusher* push = nullptr;            // hybrid mode: its stats(); must outlive the server
    const latency_histogram* latency = nullptr;  // hybrid mode
};

/// The daemon's sampler: its counts, read_status() on a connection opened on first use (on
/// the listener's thread) and opened again after a failure, and the push counts.
metrics_server::sampler make_sampler(metrics_sources sources);

}  // namespace opendms::field
