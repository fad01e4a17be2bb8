#include "opendms/central/metrics.hpp"

#include <array>
#include <cstdio>
#include <sstream>

namespace opendms::central {
namespace {

constexpr std::array<double, 13> bucket_bounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                  0.25,  0.5,    1,     2.5,  5,     10};

constexpr std::array<const char*, 5> known_routes = {"/api/ingest", "/healthz", "/readyz",
                                                     "/metrics", "other"};

constexpr std::array<const char*, 4> outcomes = {"stored", "duplicate", "mesh_duplicate",
                                                 "rejected"};

// A route outside the fixed set would let a caller grow the label space: count it as "other".
std::string bounded_route(const std::string& route) {
    for (const char* known : known_routes) {
        if (route == known) return route;
    }
    return "other";
}

// Prometheus renders floats in Go's shortest form; %g is close enough for the parser.
std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

void write_requests(std::ostream& out,
                    const std::map<std::pair<std::string, unsigned>, std::uint64_t>& requests) {
    out << "# HELP opendms_http_requests_total HTTP requests answered, by route and status.\n"
           "# TYPE opendms_http_requests_total counter\n";
    for (const auto& [key, count] : requests) {
        out << "opendms_http_requests_total{route=\"" << key.first << "\",status=\"" << key.second
            << "\"} " << count << '\n';
    }
}

template <typename Histogram>
void write_durations(std::ostream& out, const std::map<std::string, Histogram>& durations) {
    out << "# HELP opendms_http_request_duration_seconds Time from the first byte of a request "
           "to its reply written.\n"
           "# TYPE opendms_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : durations) {
        const std::string prefix = "opendms_http_request_duration_seconds";
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < bucket_bounds.size(); ++i) {
            cumulative += h.buckets[i];
            out << prefix << "_bucket{route=\"" << route << "\",le=\"" << number(bucket_bounds[i])
                << "\"} " << cumulative << '\n';
        }
        out << prefix << "_bucket{route=\"" << route << "\",le=\"+Inf\"} " << h.count << '\n';
        out << prefix << "_sum{route=\"" << route << "\"} " << number(h.sum) << '\n';
        out << prefix << "_count{route=\"" << route << "\"} " << h.count << '\n';
    }
}

std::uint64_t lookup(const std::map<std::string, std::uint64_t>& m, const std::string& key) {
    auto it = m.find(key);
    return it == m.end() ? 0 : it->second;
}

}  // namespace

metrics::metrics() = default;

void metrics::count_request(const std::string& route, unsigned status, double seconds) {
    const std::string label = bounded_route(route);
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_[{label, status}];
    histogram& h = durations_[label];
    // Stored per bucket (not cumulative); render() adds them up. Overflow lands only in +Inf.
    if (h.buckets.empty()) h.buckets.assign(bucket_bounds.size(), 0);
    for (std::size_t i = 0; i < bucket_bounds.size(); ++i) {
        if (seconds <= bucket_bounds[i]) {
            ++h.buckets[i];
            break;
        }
    }
    h.sum += seconds;
    ++h.count;
}

void metrics::count_records(std::uint64_t stored, std::uint64_t duplicate,
                            std::uint64_t mesh_duplicate, std::uint64_t rejected) {
    std::lock_guard<std::mutex> lock(mutex_);
    records_["stored"] += stored;
    records_["duplicate"] += duplicate;
    records_["mesh_duplicate"] += mesh_duplicate;
    records_["rejected"] += rejected;
}

void metrics::count_token_reload(bool ok) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++reloads_[ok ? "ok" : "failed"];
}

void metrics::set_pool_source(std::function<std::vector<std::size_t>()> source) {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_source_ = std::move(source);
}

void metrics::set_store_source(std::function<std::vector<std::uint64_t>()> source) {
    std::lock_guard<std::mutex> lock(mutex_);
    store_source_ = std::move(source);
}

void metrics::set_pending_source(std::function<std::size_t()> source) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_source_ = std::move(source);
}

std::string metrics::render() const {
    std::ostringstream out;
    std::function<std::vector<std::size_t>()> pool_source;
    std::function<std::vector<std::uint64_t>()> store_source;
    std::function<std::size_t()> pending_source;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        write_requests(out, requests_);
        write_durations(out, durations_);
        out << "# HELP opendms_records_total Records received, by outcome.\n"
               "# TYPE opendms_records_total counter\n";
        for (const char* outcome : outcomes) {
            out << "opendms_records_total{outcome=\"" << outcome << "\"} "
                << lookup(records_, outcome) << '\n';
        }
        out << "# HELP opendms_tokens_reloads_total Re-reads of the tokens file, by result.\n"
               "# TYPE opendms_tokens_reloads_total counter\n";
        for (const char* result : {"ok", "failed"}) {
            out << "opendms_tokens_reloads_total{result=\"" << result << "\"} "
                << lookup(reloads_, result) << '\n';
        }
        pool_source = pool_source_;
        store_source = store_source_;
        pending_source = pending_source_;
    }
    out << "# HELP opendms_http_connections_open Open client connections.\n"
           "# TYPE opendms_http_connections_open gauge\n"
        << "opendms_http_connections_open " << connections_open() << '\n';
    // The pool is asked outside our lock: it takes its own.
    if (pool_source) {
        const std::vector<std::size_t> pool = pool_source();
        if (pool.size() >= 3) {
            out << "# HELP opendms_db_pool_connections Database connections, by state.\n"
                   "# TYPE opendms_db_pool_connections gauge\n"
                << "opendms_db_pool_connections{state=\"in_use\"} " << pool[0] << '\n'
                << "opendms_db_pool_connections{state=\"open\"} " << pool[1] << '\n'
                << "# HELP opendms_db_pool_size Configured database pool size.\n"
                   "# TYPE opendms_db_pool_size gauge\n"
                << "opendms_db_pool_size " << pool[2] << '\n';
        }
    }
    if (store_source) {
        const std::vector<std::uint64_t> store = store_source();
        if (store.size() >= 3) {
            out << "# HELP opendms_store_transactions_total Store transactions (group commit: "
                   "each carries one or more requests).\n"
                   "# TYPE opendms_store_transactions_total counter\n"
                << "opendms_store_transactions_total " << store[0] << '\n'
                << "# HELP opendms_store_requests_total Requests carried by store transactions.\n"
                   "# TYPE opendms_store_requests_total counter\n"
                << "opendms_store_requests_total " << store[1] << '\n'
                << "# HELP opendms_store_records_total Records given to store transactions.\n"
                   "# TYPE opendms_store_records_total counter\n"
                << "opendms_store_records_total " << store[2] << '\n';
        }
    }
    if (pending_source) {
        out << "# HELP opendms_http_requests_pending Requests read and not yet answered.\n"
               "# TYPE opendms_http_requests_pending gauge\n"
            << "opendms_http_requests_pending " << pending_source() << '\n';
    }
    return out.str();
}

std::uint64_t metrics::requests(const std::string& route, unsigned status) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = requests_.find({route, status});
    return it == requests_.end() ? 0 : it->second;
}

std::uint64_t metrics::records(const std::string& outcome) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lookup(records_, outcome);
}

}  // namespace opendms::central
