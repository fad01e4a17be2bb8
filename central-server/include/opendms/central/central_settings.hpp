// The central server's own settings, on top of the shared ones (docs/configuration.md):
//   CENTRAL_LISTEN (127.0.0.1:8080; "host:port", "[v6]:port"; port 0 = any free port)
//   CENTRAL_THREADS (0 = one per core)          HTTP (Asio) threads
//   CENTRAL_DB_POOL_SIZE (8)                     database connections = worker threads
//   CENTRAL_TLS_CERT, CENTRAL_TLS_KEY            PEM files; both or neither (TLS when set)
//   CENTRAL_DMS_TOKENS_FILE                      per-node tokens (token_store.hpp)
//   CENTRAL_MAX_BODY_BYTES (8388608)             request body, and its inflated size
//   CENTRAL_MAX_BATCH_RECORDS (1000)
//   CENTRAL_MAX_HEADER_BYTES (8192)              request line + headers
//   CENTRAL_MAX_CONNECTIONS (1024)
//   CENTRAL_MAX_PENDING_REQUESTS (128)           requests read and not yet answered; 503 beyond
//   CENTRAL_REQUEST_TIMEOUT (30 s)               whole request (headers + body) must arrive,
//                                                and a response be written, within it
//   CENTRAL_IDLE_TIMEOUT (60 s)                  keep-alive connection with no request
//   CENTRAL_RETRY_AFTER (5 s)                    Retry-After of a 503
//   CENTRAL_SHUTDOWN_TIMEOUT (30 s)              SIGTERM: wait this long for in-flight work
//   CENTRAL_ACCESS_LOG (true)                    one line per request
//   MESH_DUPLICATE_WINDOW (600 s; 0 disables)    the field node's name and meaning
//   LOG_LEVEL (info)
// CENTRAL_DMS_TOKEN (the seed's) is read by the shared settings. CENTRAL_DMS_URL must not be
// set for the central server (that would make it a field node): a problem names it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "opendms/config/settings.hpp"
#include "opendms/log.hpp"

namespace opendms::central {

/// What the HTTP layer enforces (http_server.hpp).
struct server_limits {
    std::size_t max_body_bytes = 8 * 1024 * 1024;
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_connections = 1024;
    std::chrono::milliseconds request_timeout{30'000};
    std::chrono::milliseconds idle_timeout{60'000};
    std::chrono::milliseconds shutdown_timeout{30'000};
    std::size_t max_pending_requests = 128;
};

struct central_settings {
    config::settings common;
    std::string listen_host = "127.0.0.1";
    unsigned short listen_port = 8080;
    unsigned threads = 0;  // resolved: 0 -> std::thread::hardware_concurrency() (at least 1)
    std::size_t db_pool_size = 8;
    std::optional<std::string> tls_cert_file;
    std::optional<std::string> tls_key_file;
    std::optional<std::string> tokens_file;
    server_limits limits;
    std::size_t max_batch_records = 1000;
    std::int64_t retry_after_s = 5;
    bool access_log = true;
    std::int64_t duplicate_window_s = 600;
    log::level log_level = log::level::info;

    /// threads, or the number of cores when 0 (at least 1).
    unsigned effective_threads() const;
};

/// Reads and validates; appends a problem per invalid value (naming the variable and the
/// fix). Also a problem when CENTRAL_DMS_URL is set, when only one of CENTRAL_TLS_CERT /
/// CENTRAL_TLS_KEY is set, or when a named file is unreadable.
central_settings load_central_settings(const config::env_map& env, const config::settings& common,
                                       std::vector<config::problem>& problems);

/// NAME=value (origin) lines for check-config, secrets masked.
std::vector<std::string> describe(const central_settings& s, const config::env_map& env);

}  // namespace opendms::central
