#include "opendms/record_json.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "opendms/timefmt.hpp"

namespace opendms {

namespace {

using json_writer = rapidjson::Writer<rapidjson::StringBuffer>;

// ---- writing ----

// Length-aware, so an embedded NUL is written as \u0000 instead of ending the string.
// RapidJSON's default Writer does not validate UTF-8: bytes 0x80-0xFF are copied as they
// are, which keeps invalid UTF-8 byte for byte (see docs/wire-format.md for the trade-off).
void put_string(json_writer& w, const std::string& s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

void put(json_writer& w, const char* key, const std::string& v) {
    w.Key(key);
    put_string(w, v);
}

void put(json_writer& w, const char* key, const std::optional<std::string>& v) {
    w.Key(key);
    if (v)
        put_string(w, *v);
    else
        w.Null();
}

void put_int(json_writer& w, const char* key, const std::optional<std::int64_t>& v) {
    w.Key(key);
    if (v)
        w.Int64(*v);
    else
        w.Null();
}

void put_time(json_writer& w, const char* key, const std::optional<unix_seconds>& v) {
    w.Key(key);
    if (v)
        put_string(w, format_sql_time(*v));
    else
        w.Null();
}

void put_synced(json_writer& w, sync_state s) {
    w.Key("synced");
    const std::optional<bool> column = to_column(s);
    if (column)
        w.Bool(*column);
    else
        w.Null();
}

// ---- reading ----

using json_value = rapidjson::Value;

std::string_view view_of(const json_value& v) {
    return {v.GetString(), v.GetStringLength()};
}

// Laravel's attribute label: "duck_id" -> "duck id".
std::string label(std::string_view field) {
    std::string out(field);
    for (char& c : out) {
        if (c == '_') c = ' ';
    }
    return out;
}

class field_decoder {
public:
    explicit field_decoder(field_errors& errors) : errors_(errors) {}

    void fail(std::string_view field, const char* what) {
        errors_[std::string(field)].push_back("The " + label(field) + " field " + what + ".");
    }

    // A non-nullable string column: null leaves it empty (the validator reports "required").
    void string(std::string_view field, const json_value& v, std::string& out) {
        if (v.IsString())
            out.assign(v.GetString(), v.GetStringLength());
        else if (!v.IsNull())
            fail(field, "must be a string");
    }

    void string(std::string_view field, const json_value& v, std::optional<std::string>& out) {
        if (v.IsNull())
            out.reset();
        else if (v.IsString())
            out.emplace(v.GetString(), v.GetStringLength());
        else
            fail(field, "must be a string");
    }

    // JSON integers, integral numbers (3.0) and integer strings ("3"), as Laravel's
    // 'integer' rule (PHP's FILTER_VALIDATE_INT) accepts them.
    void integer(std::string_view field, const json_value& v, std::optional<std::int64_t>& out) {
        if (v.IsNull()) {
            out.reset();
            return;
        }
        std::optional<std::int64_t> n;
        if (v.IsInt64())
            n = v.GetInt64();
        else if (v.IsDouble())
            n = integral_double(v.GetDouble());
        else if (v.IsString())
            n = integer_text(view_of(v));
        if (n)
            out = n;
        else
            fail(field, "must be an integer");
    }

    void time(std::string_view field, const json_value& v, std::optional<unix_seconds>& out) {
        if (v.IsNull()) {
            out.reset();
            return;
        }
        std::optional<unix_seconds> t;
        if (v.IsString()) t = parse_time(view_of(v));
        if (t)
            out = t;
        else
            fail(field, "must be a valid date");
    }

    // Laravel's 'boolean' rule: true, false, 0, 1, "0", "1"; null means not applicable.
    void synced(std::string_view field, const json_value& v, sync_state& out) {
        if (v.IsNull())
            out = sync_state::not_applicable;
        else if (v.IsBool())
            out = sync_state_from_column(v.GetBool());
        else if (v.IsInt64() && (v.GetInt64() == 0 || v.GetInt64() == 1))
            out = sync_state_from_column(v.GetInt64() == 1);
        else if (v.IsString() && (view_of(v) == "0" || view_of(v) == "1"))
            out = sync_state_from_column(view_of(v) == "1");
        else
            fail(field, "must be true or false");
    }

private:
    static std::optional<std::int64_t> integral_double(double d) {
        constexpr double limit = 9007199254740992.0;  // 2^53: every integer below is exact
        if (!std::isfinite(d) || std::trunc(d) != d || std::fabs(d) > limit) return std::nullopt;
        return static_cast<std::int64_t>(d);
    }

    // Optional sign, then "0" or digits without a leading zero, within int64.
    static std::optional<std::int64_t> integer_text(std::string_view s) {
        bool negative = false;
        if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
            negative = s.front() == '-';
            s.remove_prefix(1);
        }
        if (s.empty() || (s.size() > 1 && s.front() == '0')) return std::nullopt;
        const std::uint64_t limit =
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) +
            (negative ? 1 : 0);
        std::uint64_t v = 0;
        for (char c : s) {
            if (c < '0' || c > '9') return std::nullopt;
            const auto digit = static_cast<std::uint64_t>(c - '0');
            if (v > (limit - digit) / 10) return std::nullopt;
            v = v * 10 + digit;
        }
        if (!negative) return static_cast<std::int64_t>(v);
        if (v == 0) return 0;
        return -static_cast<std::int64_t>(v - 1) - 1;  // reaches INT64_MIN without overflow
    }

    field_errors& errors_;
};

void decode_field(field_decoder& d, std::string_view name, const json_value& v, cluster_data& r) {
    if (name == "id")
        d.integer(name, v, r.id);
    else if (name == "duck_id")
        d.string(name, v, r.duck_id);
    else if (name == "topic")
        d.string(name, v, r.topic);
    else if (name == "message_id")
        d.string(name, v, r.message_id);
    else if (name == "payload")
        d.string(name, v, r.payload);
    else if (name == "payload_encoding")
        d.string(name, v, r.payload_encoding);
    else if (name == "path")
        d.string(name, v, r.path);
    else if (name == "origin")
        d.string(name, v, r.origin);
    else if (name == "destination")
        d.string(name, v, r.destination);
    else if (name == "hops")
        d.integer(name, v, r.hops);
    else if (name == "duck_type")
        d.integer(name, v, r.duck_type);
    else if (name == "created_at")
        d.time(name, v, r.created_at);
    else if (name == "updated_at")
        d.time(name, v, r.updated_at);
    else if (name == "synced")
        d.synced(name, v, r.synced);
    else if (name == "synced_at")
        d.time(name, v, r.synced_at);
    else if (name == "uuid")
        d.string(name, v, r.uuid);
    else if (name == "source_node")
        d.string(name, v, r.source_node);
    // anything else: unknown fields are ignored
}

std::string field_list(const field_errors& errors) {
    std::string out;
    for (const auto& entry : errors) {
        if (!out.empty()) out += ", ";
        out += entry.first;
    }
    return out;
}

}  // namespace

std::string to_json(const cluster_data& r, json_fields which) {
    rapidjson::StringBuffer buffer;
    json_writer w(buffer);
    const bool full = which == json_fields::full;
    w.StartObject();
    if (full) put_int(w, "id", r.id);
    put(w, "duck_id", r.duck_id);
    put(w, "topic", r.topic);
    put(w, "message_id", r.message_id);
    put(w, "payload", r.payload);
    put(w, "payload_encoding", r.payload_encoding);
    put(w, "path", r.path);
    put(w, "origin", r.origin);
    put(w, "destination", r.destination);
    put_int(w, "hops", r.hops);
    put_int(w, "duck_type", r.duck_type);
    put_time(w, "created_at", r.created_at);
    put(w, "uuid", r.uuid);
    put(w, "source_node", r.source_node);
    if (full) {
        put_time(w, "updated_at", r.updated_at);
        put_synced(w, r.synced);
        put_time(w, "synced_at", r.synced_at);
    }
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

result<cluster_data> record_from_json(std::string_view json, field_errors* errors) {
    field_errors local;
    field_errors& errs = errors ? *errors : local;
    errs.clear();

    if (json.empty()) {  // also keeps a null data() away from memchr and RapidJSON
        return status(errc::invalid_argument,
                      "record_from_json: invalid JSON at offset 0: The document is empty.");
    }
    // RapidJSON's in-memory stream reads a NUL byte as the end of the text, which would
    // let "{} \0garbage" pass; a raw NUL is never valid JSON (inside strings it is \u0000).
    if (const void* nul = std::memchr(json.data(), '\0', json.size())) {
        const auto offset = static_cast<const char*>(nul) - json.data();
        return status(errc::invalid_argument, "record_from_json: invalid JSON at offset " +
                                                  std::to_string(offset) + ": a NUL byte");
    }
    rapidjson::Document doc;
    // Not kParseFullPrecisionFlag: RapidJSON 1.1.0's full-precision path misreads a zero
    // with a large exponent (0e308 -> -6e-269; undefined behaviour inside, clz of 0),
    // found by fuzzing. The normal path reads every integral number up to 15 digits
    // exactly, which covers every value the validator accepts (32-bit hops, duck_type).
    doc.Parse(json.data(), json.size());
    if (doc.HasParseError()) {
        return status(errc::invalid_argument, "record_from_json: invalid JSON at offset " +
                                                  std::to_string(doc.GetErrorOffset()) + ": " +
                                                  rapidjson::GetParseError_En(doc.GetParseError()));
    }
    if (!doc.IsObject())
        return status(errc::invalid_argument, "record_from_json: the body must be a JSON object");

    // Members in document order, so with a duplicate key the last one wins (as in PHP).
    cluster_data r;
    field_decoder decoder(errs);
    for (const auto& member : doc.GetObject()) {
        const std::string_view name = view_of(member.name);
        errs.erase(std::string(name));  // an earlier duplicate's error no longer applies
        decode_field(decoder, name, member.value, r);
    }
    if (!errs.empty()) {
        return status(errc::invalid_argument,
                      "record_from_json: invalid field(s): " + field_list(errs));
    }
    return r;
}

}  // namespace opendms
