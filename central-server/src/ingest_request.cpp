#include "opendms/central/ingest_request.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>

#include "opendms/gzip.hpp"

namespace opendms::central {

namespace {

// ---- Content-Encoding ----

std::string lower_trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

request_error too_large(std::size_t max_bytes) {
    return {413, "The request body is larger than " + std::to_string(max_bytes) +
                     " bytes once decompressed."};
}

// Inflates `in` into `out` under the cap (common gzip.hpp), as the request's 4xx/503.
std::optional<request_error> inflate_gzip(std::string_view in, std::string& out,
                                          std::size_t max_bytes) {
    const gunzip_result r = gzip_decompress(in, out, max_bytes);
    switch (r.error) {
        case gunzip_error::none:
            return std::nullopt;
        case gunzip_error::empty:
            return request_error{400, "The gzip request body is empty."};
        case gunzip_error::truncated:
            return request_error{400, "The gzip request body is truncated."};
        case gunzip_error::corrupt:
            return request_error{400, "The gzip request body is corrupt: " + r.detail + "."};
        case gunzip_error::too_large:
            return too_large(max_bytes);
        case gunzip_error::no_memory:
            break;
    }
    return request_error{503, "The server ran out of memory decoding gzip; retry later."};
}

// ---- JSON ----

using json_value = rapidjson::Value;
using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

std::string_view name_of(const json_value& v) {
    return {v.GetString(), v.GetStringLength()};
}

// The fields record_from_json reads that the central uses. The full form's id, updated_at,
// synced and synced_at are the sender's local columns: a central ignores them, so they are
// not passed on (and their errors never reject a record).
bool record_field(std::string_view name) {
    static constexpr std::string_view fields[] = {
        "duck_id",    "topic",  "message_id",  "payload", "payload_encoding",
        "path",       "origin", "destination", "hops",    "duck_type",
        "created_at", "uuid",   "source_node",
    };
    return std::find(std::begin(fields), std::end(fields), name) != std::end(fields);
}

// The record's object as text for record_from_json, keeping only the fields it reads, in
// document order (duplicates included: the last wins there, as in PHP). An array or object
// value is written empty: record_from_json only needs its type to report it, and this
// keeps its recursive parser (and the writer's recursion) away from deep nesting.
std::string record_text(const json_value& object, const field_errors* skip) {
    rapidjson::StringBuffer buf;
    json_writer w(buf);
    w.StartObject();
    for (const auto& member : object.GetObject()) {
        const std::string_view name = name_of(member.name);
        if (!record_field(name)) continue;
        if (skip && skip->count(std::string(name)) != 0) continue;
        w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
        if (member.value.IsObject()) {
            w.StartObject();
            w.EndObject();
        } else if (member.value.IsArray()) {
            w.StartArray();
            w.EndArray(0);
        } else {
            member.value.Accept(w);
        }
    }
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

request_item decode_item(const json_value& v) {
    request_item item;
    if (!v.IsObject()) {
        item.item_error = "The record must be a JSON object.";
        return item;
    }
    auto decoded = record_from_json(record_text(v, nullptr), &item.decode_errors);
    if (!decoded.is_ok() && !item.decode_errors.empty()) {
        // record_from_json returns no record when a field is bad; decode the others again
        // without the bad fields, so the validator can report every field at once.
        field_errors ignored;
        decoded = record_from_json(record_text(v, &item.decode_errors), &ignored);
    }
    if (decoded.is_ok())
        item.record = std::move(decoded).value();
    else
        item.item_error = "The record could not be decoded.";  // not reachable: a bug
    return item;
}

const json_value* records_member(const json_value& object) {
    const json_value* found = nullptr;
    for (const auto& member : object.GetObject()) {
        if (name_of(member.name) == "records") found = &member.value;  // the last wins
    }
    return found;
}

decode_result fail(unsigned http_status, std::string message) {
    decode_result r;
    r.error = request_error{http_status, std::move(message)};
    return r;
}

}  // namespace

std::optional<request_error> decode_content(std::string_view content_encoding, std::string& body,
                                            std::size_t max_bytes) {
    const std::string encoding = lower_trimmed(content_encoding);
    if (encoding.empty() || encoding == "identity") return std::nullopt;
    if (encoding != "gzip" && encoding != "x-gzip") {
        return request_error{415, "The Content-Encoding '" + std::string(content_encoding) +
                                      "' is not supported; send gzip or identity."};
    }
    std::string inflated;
    if (auto error = inflate_gzip(body, inflated, max_bytes)) return error;
    body = std::move(inflated);
    return std::nullopt;
}

decode_result decode_ingest_body(std::string_view body, const decode_limits& limits) {
    if (body.size() > limits.max_body_bytes) {
        return fail(413, "The request body is larger than " +
                             std::to_string(limits.max_body_bytes) + " bytes.");
    }
    if (body.empty()) return fail(400, "The request body is empty; it must be a JSON object.");
    // RapidJSON reads a raw NUL as the end of the text; JSON never holds one (\u0000 is how
    // a string carries it).
    if (const void* nul = std::memchr(body.data(), '\0', body.size())) {
        const auto offset = static_cast<const char*>(nul) - body.data();
        return fail(400, "The request body is not valid JSON: a NUL byte at offset " +
                             std::to_string(offset) + ".");
    }
    rapidjson::Document doc;
    // Iterative: a body of 100000 '[' must not exhaust the stack. Not full precision: see
    // record_from_json (RapidJSON 1.1.0 misreads 0e308 that way).
    doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
    if (doc.HasParseError()) {
        return fail(400, "The request body is not valid JSON at offset " +
                             std::to_string(doc.GetErrorOffset()) + ": " +
                             rapidjson::GetParseError_En(doc.GetParseError()));
    }
    if (!doc.IsObject()) return fail(400, "The request body must be a JSON object.");

    ingest_request request;
    const json_value* records = records_member(doc);
    if (!records) {
        request.items.push_back(decode_item(doc));
    } else {
        if (!records->IsArray())
            return fail(400, "The records field must be an array of record objects.");
        const std::size_t count = records->Size();
        if (count > limits.max_records) {
            return fail(413, "The batch holds " + std::to_string(count) + " records; at most " +
                                 std::to_string(limits.max_records) + " are allowed per request.");
        }
        request.batch = true;
        request.items.reserve(count);
        for (const auto& element : records->GetArray())
            request.items.push_back(decode_item(element));
    }
    decode_result r;
    r.request = std::move(request);
    return r;
}

}  // namespace opendms::central
