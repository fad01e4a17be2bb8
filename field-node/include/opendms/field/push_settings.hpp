// push_settings: how the field node delivers its outbox to the central server
// (docs/configuration.md, "Delivery to the central server"). Read once at start-up in
// hybrid mode (DB_CONNECTION=sqlite with CENTRAL_DMS_URL and a token); every invalid value
// is a problem naming its variable and the fix.
//
//   CENTRAL_DMS_URL            base URL; /api/ingest is appended (the common settings
//                              normalise it). http:// only for loopback hosts, or with
//   CENTRAL_DMS_ALLOW_HTTP     true (then a warning is logged at every start).
//   CENTRAL_DMS_TOKEN[_FILE]   the Bearer token (common settings); the file is re-read
//                              before every attempt, so a rotated token is picked up.
//   CENTRAL_DMS_CA_FILE        PEM CA bundle for a private CA (default: system store).
//   CENTRAL_DMS_CONNECT_TIMEOUT 10 s (the seed's), CENTRAL_DMS_TIMEOUT 30 s per request.
//   CENTRAL_DMS_BACKOFF        30,60,120,300,600 (seconds; the last repeats for ever).
//   CENTRAL_DMS_JITTER         0.2: each wait is the schedule's +/- 20 % at random.
//   CENTRAL_DMS_BATCH_SIZE     500 records per request (batch protocol).
//   CENTRAL_DMS_CONCURRENCY    2 batch requests in flight (each its own connection).
//   CENTRAL_DMS_MAX_RATE       0 (no cap): records per second at most.
//   CENTRAL_DMS_PROTOCOL       auto | batch | single.
//   CENTRAL_DMS_LIVE_WINDOW    60 s: records younger than this go out first (live lane).
//   CENTRAL_DMS_POLL_INTERVAL  2 s: how often an idle pusher looks for new records.
//   CENTRAL_DMS_GZIP_LEVEL     6 (1..9; 0 sends batches uncompressed).
//   HTTPS_PROXY / https_proxy  http://[user:password@]host:port: a CONNECT tunnel, unless
//   NO_PROXY / no_proxy        lists the central's host (a name, a .suffix, or *).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "opendms/config/settings.hpp"
#include "opendms/field/https_client.hpp"

namespace opendms::field {

enum class push_protocol { automatic, batch, single };
/// "auto", "batch", "single".
const char* push_protocol_name(push_protocol p) noexcept;

struct push_options {
    bool enabled = false;  // hybrid mode
    client_options client;
    std::string token;       // the token read at start-up
    std::string token_file;  // CENTRAL_DMS_TOKEN_FILE: re-read before every attempt
    bool insecure_http = false;  // http:// to a host that is not loopback (allowed, warned)
    std::vector<std::chrono::milliseconds> backoff{
        std::chrono::seconds(30), std::chrono::seconds(60), std::chrono::seconds(120),
        std::chrono::seconds(300), std::chrono::seconds(600)};
    double jitter = 0.2;
    std::size_t batch_size = 500;
    std::size_t concurrency = 2;  // batch requests in flight
    double max_rate = 0;  // records per second; 0: no cap
    push_protocol protocol = push_protocol::automatic;
    std::int64_t live_window_s = 60;
    std::chrono::milliseconds poll_interval{2000};
    int gzip_level = 6;  // 0: no compression
};

/// Reads the CENTRAL_DMS_* delivery settings and the proxy variables. `common` gives the
/// mode, the URL and the token. Outside hybrid mode only the values are checked and
/// `enabled` stays false.
push_options load_push_options(config::setting_reader& r, const config::settings& common);

/// The proxy for `endpoint` from HTTPS_PROXY/https_proxy and NO_PROXY/no_proxy, or none
/// (as curl reads them; list a loopback central in NO_PROXY to bypass the proxy). A proxy
/// URL that is not
/// http://[user:password@]host[:port][/] is a problem on its variable.
std::optional<http_proxy> proxy_for(const http_endpoint& endpoint, config::setting_reader& r);

/// NAME=value (origin) lines for check-config.
void describe_push(const push_options& o, const config::env_map& env,
                   std::vector<std::string>& lines);

}  // namespace opendms::field
