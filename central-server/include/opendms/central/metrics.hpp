// metrics: the central server's counters, rendered as Prometheus text (GET /metrics).
//
//   opendms_http_requests_total{route="/api/ingest",status="200"}   counter
//   opendms_http_request_duration_seconds_bucket{route=...,le=...}  histogram (+_sum,_count)
//     buckets: 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf
//   opendms_records_total{outcome="stored|duplicate|mesh_duplicate|rejected"}  counter
//   opendms_http_connections_open                                    gauge
//   opendms_db_pool_connections{state="in_use|open"}, opendms_db_pool_size   gauges
//   opendms_tokens_reloads_total{result="ok|failed"}                 counter
//   opendms_store_transactions_total, opendms_store_requests_total,
//   opendms_store_records_total                                      counters (group commit:
//     requests / transactions is how many requests a transaction carries on average)
//   opendms_http_requests_pending                                    gauge
// Routes are a fixed set ("/api/ingest", "/healthz", "/readyz", "/metrics", "other") so a
// client cannot grow the label space.
//
// Thread safety: every member may be called from any thread (a mutex around the maps;
// the counts are cheap compared with a request).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace opendms::central {

class metrics {
public:
    metrics();

    void count_request(const std::string& route, unsigned status, double seconds);
    void count_records(std::uint64_t stored, std::uint64_t duplicate, std::uint64_t mesh_duplicate,
                       std::uint64_t rejected);
    void count_token_reload(bool ok);
    void connection_opened() { connections_.fetch_add(1); }
    void connection_closed() { connections_.fetch_sub(1); }
    std::int64_t connections_open() const { return connections_.load(); }

    /// Source of the pool gauges: returns {in_use, open, size}. Set once before serving.
    void set_pool_source(std::function<std::vector<std::size_t>()> source);
    /// Source of the store counters: returns {transactions, requests, records}. Set once
    /// before serving.
    void set_store_source(std::function<std::vector<std::uint64_t>()> source);
    /// Source of the pending-requests gauge. Set once before serving.
    void set_pending_source(std::function<std::size_t()> source);

    /// The Prometheus text exposition (version 0.0.4).
    std::string render() const;

    /// For tests: requests counted for (route, status).
    std::uint64_t requests(const std::string& route, unsigned status) const;
    /// For tests: records counted with this outcome name.
    std::uint64_t records(const std::string& outcome) const;

private:
    struct histogram {
        std::vector<std::uint64_t> buckets;  // cumulative at render time
        double sum = 0;
        std::uint64_t count = 0;
    };
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, unsigned>, std::uint64_t> requests_;
    std::map<std::string, histogram> durations_;
    std::map<std::string, std::uint64_t> records_;
    std::map<std::string, std::uint64_t> reloads_;
    std::atomic<std::int64_t> connections_{0};
    std::function<std::vector<std::size_t>()> pool_source_;
    std::function<std::vector<std::uint64_t>()> store_source_;
    std::function<std::size_t()> pending_source_;
};

}  // namespace opendms::central
