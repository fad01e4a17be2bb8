// libFuzzer target: the central's ingest body decoder (central-server/include/opendms/
// central/ingest_request.hpp): decode_content (gzip) then decode_ingest_body (JSON, the
// single and the batch form), then record_validator on every decoded record.
//
// Input: a request body as the central receives it. One that starts with the gzip magic
// (1f 8b) is sent as Content-Encoding: gzip, any other as identity. The seeds are
// tests/fuzz/corpus/ingest_request/ (records, batches, gzip, a bomb, malformed JSON).
// The limits are the server's defaults except the body cap, 256 KiB (a gzip bomb reaches
// it in a few milliseconds instead of the 8 MiB default).
//
// Checked besides the sanitizers (a breach aborts):
//  - exactly one of request and error; an error is 400, 413, 415 or 503 with a message;
//  - the single form has one item, a batch at most max_records;
//  - a record that passes validation survives the round trip the central's own reply and
//    the field node's retry make of it: to_json then record_from_json gives the same
//    record, still valid.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "opendms/central/ingest_request.hpp"
#include "opendms/central/record_validator.hpp"
#include "opendms/record_json.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
    std::fprintf(stderr, "fuzz_ingest_request: %s: %.*s\n", what, static_cast<int>(detail.size()),
                 detail.data());
    std::abort();
}

void check_error(const opendms::central::request_error& e) {
    // 503: zlib could not allocate its state (out of memory).
    if (e.http_status != 400 && e.http_status != 413 && e.http_status != 415 &&
        e.http_status != 503) {
        fail("unexpected status", std::to_string(e.http_status) + " " + e.message);
    }
    if (e.message.empty()) fail("an error without a message", std::to_string(e.http_status));
}

void check_record(const opendms::central::request_item& item) {
    if (!item.record) {
        if (item.item_error.empty()) fail("an item with neither record nor error", "");
        return;
    }
    const auto errors = opendms::central::validate_record(*item.record, item.decode_errors);
    if (!errors.empty()) return;
    const std::string json = opendms::to_json(*item.record, opendms::json_fields::wire);
    opendms::field_errors again_errors;
    auto again = opendms::record_from_json(json, &again_errors);
    if (!again) fail("a valid record does not decode from its own JSON", json);
    if (*again != *item.record) fail("a valid record reads back differently", json);
    if (!opendms::central::validate_record(*again, again_errors).empty()) {
        fail("a valid record is invalid after a round trip", json);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string body(reinterpret_cast<const char*>(data), size);
    const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;

    opendms::central::decode_limits limits;
    limits.max_body_bytes = 256 * 1024;
    if (auto e = opendms::central::decode_content(gzip ? "gzip" : "", body,
                                                  limits.max_body_bytes)) {
        check_error(*e);
        return 0;
    }
    if (gzip && body.size() > limits.max_body_bytes) {
        fail("inflated past the cap", std::to_string(body.size()));
    }

    const auto decoded = opendms::central::decode_ingest_body(body, limits);
    if (decoded.request.has_value() == decoded.error.has_value()) {
        fail("not exactly one of request and error", body);
    }
    if (decoded.error) {
        check_error(*decoded.error);
        return 0;
    }
    const auto& request = *decoded.request;
    if (!request.batch && request.items.size() != 1) {
        fail("a single form with other than one item", body);
    }
    if (request.items.size() > limits.max_records) fail("a batch over max_records", body);
    for (const auto& item : request.items) check_record(item);
    return 0;
}
