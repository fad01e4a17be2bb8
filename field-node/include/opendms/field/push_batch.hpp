// push_batch: the bodies the pusher sends and how it reads the answers. Pure functions of
// their inputs (no I/O), tested without a server. Formats: docs/wire-format.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/record.hpp"

namespace opendms::field {

/// One record waiting in the outbox, as the pusher reads it.
struct outbox_item {
    std::int64_t outbox_id = 0;
    cluster_data record;  // record.id is the cluster_data row
    std::int64_t attempts = 0;
    int lane = 0;  // 0 live, 1 backlog
};

/// The seed's single-record body: the record's wire form (to_json, json_fields::wire).
std::string encode_single(const cluster_data& record);

/// Our central's batch body: {"records":[<wire form>, ...]} in the items' order.
std::string encode_batch(const std::vector<outbox_item>& items);

/// What the central said about one record of a batch.
enum class record_verdict {
    delivered,  // "stored", "duplicate" or "mesh_duplicate": the central has it
    rejected,   // "rejected": it will never take this record as it is
    unknown,    // a status this version does not know: kept and sent again later
};

struct record_result {
    record_verdict verdict = record_verdict::unknown;
    std::string reason;  // rejected/unknown: what the central said, for parked_reason
};

/// Reads a batch answer (200 {"results":[{"status":...},...]}): one result per record sent,
/// in order. nullopt when the body is not such an answer for exactly `expected` records.
std::optional<std::vector<record_result>> decode_batch_results(std::string_view body,
                                                               std::size_t expected);

/// A short reason from an error answer: its "message" and its field errors
/// ({"errors":{"hops":["..."]}}), or the start of a body that is not JSON; at most
/// 500 bytes, always valid UTF-8 text. "HTTP 422: The hops field must be an integer."
std::string reason_from_answer(unsigned status, std::string_view body);

}  // namespace opendms::field
