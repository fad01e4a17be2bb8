#include "opendms/central/ingest_request.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>

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

// Owns a z_stream set up for gzip only (16 + MAX_WBITS: a gzip header and trailer).
class gzip_inflater {
public:
    gzip_inflater() { ready_ = inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK; }
    ~gzip_inflater() {
        if (ready_) inflateEnd(&zs_);
    }
    gzip_inflater(const gzip_inflater&) = delete;
    gzip_inflater& operator=(const gzip_inflater&) = delete;

    bool ready() const { return ready_; }
    z_stream& stream() { return zs_; }

private:
    z_stream zs_{};
    bool ready_ = false;
};

// Resizes `out` to exactly `size` bytes of storage, keeping its first `used` bytes.
// std::string's own growth may double the capacity past the cap; this never does.
void grow_exactly(std::string& out, std::size_t used, std::size_t size) {
    std::string bigger;
    bigger.reserve(size);
    bigger.assign(out.data(), used);
    bigger.resize(size);
    out.swap(bigger);
}

// Inflates `in` into `out`, never holding more than max_bytes + 1 bytes of output: one
// byte past the cap is how a bomb is told from a body of exactly max_bytes.
std::optional<request_error> inflate_gzip(std::string_view in, std::string& out,
                                          std::size_t max_bytes) {
    if (in.empty()) return request_error{400, "The gzip request body is empty."};
    gzip_inflater inflater;
    if (!inflater.ready())
        return request_error{503, "The server could not start a gzip decoder; retry later."};
    z_stream& zs = inflater.stream();
    const std::size_t limit = std::min(max_bytes, std::size_t{SIZE_MAX - 1}) + 1;
    std::size_t consumed = 0;
    std::size_t produced = 0;
    grow_exactly(out, 0, std::min(limit, std::max(in.size() * 4, std::size_t{64 * 1024})));
    for (;;) {
        if (produced == out.size()) {
            if (out.size() >= limit) return too_large(max_bytes);
            grow_exactly(out, produced, std::min(limit, out.size() * 2));
        }
        // zlib counts in uInt: feed at most UINT_MAX bytes a call either way.
        const std::size_t in_chunk = std::min<std::size_t>(in.size() - consumed, UINT_MAX);
        const std::size_t out_chunk = std::min<std::size_t>(out.size() - produced, UINT_MAX);
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + consumed));
        zs.avail_in = static_cast<uInt>(in_chunk);
        zs.next_out = reinterpret_cast<Bytef*>(&out[produced]);
        zs.avail_out = static_cast<uInt>(out_chunk);
        const int rc = inflate(&zs, Z_NO_FLUSH);
        consumed += in_chunk - zs.avail_in;
        produced += out_chunk - zs.avail_out;
        if (rc == Z_STREAM_END) {
            if (consumed == in.size()) break;
            inflateReset(&zs);  // another gzip member follows (RFC 1952 section 2.2)
            continue;
        }
        if (rc == Z_OK) continue;
        if (rc == Z_BUF_ERROR && zs.avail_out == 0) continue;
        if (rc == Z_BUF_ERROR) return request_error{400, "The gzip request body is truncated."};
        if (rc == Z_MEM_ERROR)
            return request_error{503, "The server ran out of memory decoding gzip; retry later."};
        const std::string why = zs.msg ? zs.msg : "invalid data";
        return request_error{400, "The gzip request body is corrupt: " + why + "."};
    }
    if (produced > max_bytes) return too_large(max_bytes);
    out.resize(produced);
    return std::nullopt;
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
    // Iterative: a body of 100000 '[' must not exhaust the stack.
    doc.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag>(body.data(),
                                                                                   body.size());
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
