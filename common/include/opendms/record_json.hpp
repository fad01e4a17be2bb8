// The one definition of a record's JSON form, used by both programs (RapidJSON).
//
// Field names are the seed's ingest body: duck_id, topic, message_id, payload, path,
// hops, duck_type, created_at, plus payload_encoding, origin, destination, uuid and
// source_node; a full record also carries id, updated_at, synced (null/false/true) and
// synced_at. Times are written as "YYYY-MM-DD HH:MM:SS" (UTC) and read in any form
// parse_time accepts. NULLs are written as JSON null. Control characters are escaped.
// Invalid UTF-8 is copied byte for byte (RapidJSON does not validate on write), which
// makes the text invalid JSON for strict readers: the gateway parser therefore never
// puts such bytes in a record (it stores them base64, payload_encoding "base64").
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/record.hpp"
#include "opendms/status.hpp"

namespace opendms {

enum class json_fields {
    wire,  // what a field node sends: no local id, no sync columns
    full,  // everything (status output, tests)
};

std::string to_json(const cluster_data& r, json_fields which = json_fields::wire);

/// Field-level decode problems: field name -> messages (Laravel's "errors" shape).
using field_errors = std::map<std::string, std::vector<std::string>>;

/// Decodes one record object. Unknown fields are ignored. Type errors are reported per
/// field in `errors` (e.g. "hops": ["The hops field must be an integer."]); the return
/// value is errc::invalid_argument when the text is not a JSON object or any field
/// failed. Required-field and length rules are the central's validator's, not this.
result<cluster_data> record_from_json(std::string_view json, field_errors* errors = nullptr);

}  // namespace opendms
