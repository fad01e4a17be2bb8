// The HTTP request and reply as the handler sees them, independent of Boost.Beast, so the
// handler can be tested without sockets.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace opendms::central {

struct http_request {
    std::string method;         // "POST"
    std::string target;         // "/api/ingest?x=1" as received
    std::string remote;         // "127.0.0.1:51234" (for logs)
    std::string authorization;  // header values; empty when absent
    std::string content_type;
    std::string content_encoding;
    std::string accept_encoding;  // what the client can read back (gzip replies)
    bool has_content_length = false;
    std::size_t content_length = 0;  // when has_content_length
    std::string body;                // raw (possibly gzip) bytes; empty in check_head()
};

struct http_reply {
    unsigned status = 200;
    std::string body;  // JSON unless content_type says otherwise
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;  // extra: Retry-After, Allow
    bool close = false;  // close the connection after this reply
    // For the access log and metrics; never the token.
    std::string route;  // "/api/ingest", "/healthz", ..., "other"
    std::string node;   // authenticated node, if any
    std::string note;   // e.g. "stored=10 duplicate=2 rejected=1"
};

/// {"message":"<text>"} with JSON escaping.
std::string message_body(const std::string& text);

/// A reply with status and {"message": text}.
http_reply json_message(unsigned status, const std::string& text);

/// True when an Accept-Encoding value lets the reply be gzip: `gzip` or `x-gzip` (any case)
/// with a q-value above 0, or `*` with one when gzip is not listed. "gzip;q=0" refuses.
bool accepts_gzip(std::string_view accept_encoding);

/// Replies at least this large are worth compressing (a batch's per-record results).
constexpr std::size_t min_compressed_reply = 1024;

/// Response compression (docs/wire-format.md): a JSON reply of at least min_bytes gets
/// `Vary: Accept-Encoding` (its form depends on that header), and when the client accepts
/// gzip its body is replaced by the gzip of it with `Content-Encoding: gzip`. Other
/// replies are left alone. Pure, apart from allocation.
void compress_reply(http_reply& reply, std::string_view accept_encoding,
                    std::size_t min_bytes = min_compressed_reply);

}  // namespace opendms::central
