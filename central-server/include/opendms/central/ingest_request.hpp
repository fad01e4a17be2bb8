// Decoding a POST /api/ingest body: optional gzip, then JSON, then one record (the seed's
// form) or a batch ({"records":[ ... ]}, docs/wire-format.md). Pure; thread-safe.
//
// Whole-body problems become a request_error with the HTTP status and message the client
// gets (400 malformed JSON / not an object / "records" not an array / NUL bytes;
// 413 more than max_records or an inflated body over max_body_bytes; 415 an unsupported
// Content-Encoding; 400 a corrupt gzip stream). Per-record problems are not errors here:
// each batch item carries its own decode result, so one bad record never fails the others.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/record.hpp"
#include "opendms/record_json.hpp"
#include "opendms/status.hpp"

namespace opendms::central {

struct request_error {
    unsigned http_status = 400;
    std::string message;  // the JSON body's "message"
};

/// Inflates a gzip (RFC 1952) body with zlib, refusing to produce more than `max_bytes`
/// (a gzip bomb stops at the cap: 413). Concatenated members are accepted.
/// `content_encoding` is the header's value: "" or "identity" (returned as is), "gzip"
/// (also "x-gzip"), case-insensitive; anything else is 415.
std::optional<request_error> decode_content(std::string_view content_encoding,
                                            std::string& body, std::size_t max_bytes);

/// One record of the request, decoded.
struct request_item {
    std::optional<cluster_data> record;  // empty when the item is not a JSON object
    field_errors decode_errors;          // record_from_json's type errors
    std::string item_error;              // set when the item itself is unusable
                                         // ("The record must be a JSON object.")
};

struct ingest_request {
    bool batch = false;                  // {"records":[...]} form
    std::vector<request_item> items;     // one item for the single form
};

struct decode_limits {
    std::size_t max_body_bytes = 8 * 1024 * 1024;
    std::size_t max_records = 1000;
};

/// Parses an (already inflated) body. A JSON object with a "records" member is the batch
/// form (then "records" must be an array of at most max_records elements; an empty array
/// is allowed); any other JSON object is one record. Everything else is a request_error.
/// Uses record_from_json for each record so that both forms read records identically.
struct decode_result {
    std::optional<ingest_request> request;
    std::optional<request_error> error;
};
decode_result decode_ingest_body(std::string_view body, const decode_limits& limits);

}  // namespace opendms::central
