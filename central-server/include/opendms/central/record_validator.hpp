// The seed's validation rules for one record, with Laravel's messages and order.
//
// Rules (IngestController::store, plus ours for the fields the seed ignores):
//   duck_id      required|string|max:255        topic       required|string|max:255
//   message_id   required|string|max:255        payload     nullable|string
//   path         nullable|string                origin      nullable|string|max:32
//   destination  nullable|string|max:32         hops        nullable|integer
//   duck_type    nullable|integer               created_at  nullable|date
//   payload_encoding  nullable, "base64" only   uuid        nullable, a UUID (36 chars)
//   source_node  nullable|string|max:64
// "required" fails for a missing, null, empty or all-whitespace value (Laravel trims).
// max counts characters (UTF-8 code points), as mb_strlen does, not bytes.
// Beyond the seed (our storage needs them; PostgreSQL could not store the value):
//   - hops and duck_type must fit a 32-bit signed integer (the seed's `integer` column):
//     "The hops field must be between -2147483648 and 2147483647."
//   - text must be valid UTF-8 without NUL bytes: "The payload field must be valid UTF-8
//     text without NUL bytes." (a binary payload travels as base64 with payload_encoding).
//   - payload_encoding "base64": payload must be valid base64 ("The payload field must be
//     valid base64 when payload_encoding is base64.").
// Messages: "The duck id field is required.", "The duck id field must be a string.",
// "The duck id field must not be greater than 255 characters.", "The hops field must be an
// integer.", "The created at field must be a valid date.", "The uuid field must be a valid
// UUID.", "The payload encoding field must be null or base64.".
// Decode errors from record_from_json (wrong JSON types) come first for their field and
// replace that field's other checks.
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "opendms/record.hpp"
#include "opendms/record_json.hpp"

namespace opendms::central {

/// Field errors in the rules' order (Laravel reports them in rule order, not by name).
using ordered_errors = std::vector<std::pair<std::string, std::vector<std::string>>>;

/// Validates a decoded record. `decode_errors` are record_from_json's field errors for the
/// same body. Empty result: valid.
ordered_errors validate_record(const cluster_data& r, const field_errors& decode_errors);

/// Laravel's summary message: the first error, plus " (and N more error)" /
/// " (and N more errors)" counting the remaining messages of all fields.
std::string summary_message(const ordered_errors& errors);

/// {"message":"...","errors":{"duck_id":["..."],...}} in rule order (the 422 body).
std::string validation_error_body(const ordered_errors& errors);

}  // namespace opendms::central
