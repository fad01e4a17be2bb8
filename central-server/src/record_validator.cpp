#include "opendms/central/record_validator.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

#include "opendms/base64.hpp"
#include "opendms/uuid.hpp"

namespace opendms::central {

namespace {

constexpr std::size_t max_short = 255;  // duck_id, topic, message_id
constexpr std::size_t max_route = 32;   // origin, destination
constexpr std::size_t max_node = 64;    // source_node

// Laravel's attribute label: "duck_id" -> "duck id".
std::string label(std::string_view field) {
    std::string out(field);
    for (char& c : out) {
        if (c == '_') c = ' ';
    }
    return out;
}

std::string message(std::string_view field, std::string_view what) {
    std::string out = "The ";
    out += label(field);
    out += " field ";
    out += what;
    out += '.';
    return out;
}

// Length of the next well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b0 = byte(i);
    if (b0 < 0x80) return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        n = 3;
        if (b0 == 0xE0) lo = 0xA0;  // overlong
        if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        n = 4;
        if (b0 == 0xF0) lo = 0x90;  // overlong
        if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (std::size_t k = 2; k < n; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
    }
    return n;
}

// Code points in `s` (as mb_strlen counts them), or nullopt when `s` is not valid UTF-8
// or holds a NUL byte (neither PostgreSQL nor MySQL could store it as text).
std::optional<std::size_t> text_length(std::string_view s) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < s.size(); ++count) {
        if (s[i] == '\0') return std::nullopt;
        const std::size_t n = utf8_sequence(s, i);
        if (n == 0) return std::nullopt;
        i += n;
    }
    return count;
}

// PHP's trim() set, which Laravel's `required` applies.
bool blank(std::string_view s) {
    for (char c : s) {
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\0' && c != '\x0B')
            return false;
    }
    return true;
}

class checker {
public:
    checker(const field_errors& decode_errors, ordered_errors& out)
        : decode_errors_(decode_errors), out_(out) {}

    // True when the field had a decode error: those replace the field's other checks.
    bool decoded_badly(std::string_view field) {
        const auto it = decode_errors_.find(std::string(field));
        if (it == decode_errors_.end() || it->second.empty()) return false;
        out_.emplace_back(std::string(field), it->second);
        return true;
    }

    void fail(std::string_view field, std::string_view what) {
        if (out_.empty() || out_.back().first != field)
            out_.emplace_back(std::string(field), std::vector<std::string>{});
        out_.back().second.push_back(message(field, what));
    }

    void required_text(std::string_view field, const std::string& v, std::size_t max) {
        if (decoded_badly(field)) return;
        if (blank(v)) {
            fail(field, "is required");
            return;
        }
        text(field, v, max);
    }

    void nullable_text(std::string_view field, const std::optional<std::string>& v,
                       std::size_t max = 0) {
        if (decoded_badly(field) || !v) return;
        text(field, *v, max);
    }

    void int32(std::string_view field, const std::optional<std::int64_t>& v) {
        if (decoded_badly(field) || !v) return;
        if (*v < std::numeric_limits<std::int32_t>::min() ||
            *v > std::numeric_limits<std::int32_t>::max())
            fail(field, "must be between -2147483648 and 2147483647");
    }

    // A nullable text field whose checks after "valid text" are `extra`'s.
    template <typename Extra>
    void nullable_text_then(std::string_view field, const std::optional<std::string>& v,
                            Extra extra) {
        if (decoded_badly(field) || !v) return;
        if (text(field, *v, 0)) extra(*v);
    }

private:
    // Valid text first: a length in characters means nothing for bytes that are not text.
    bool text(std::string_view field, const std::string& v, std::size_t max) {
        const std::optional<std::size_t> length = text_length(v);
        if (!length) {
            fail(field, "must be valid UTF-8 text without NUL bytes");
            return false;
        }
        if (max != 0 && *length > max) {
            fail(field, "must not be greater than " + std::to_string(max) + " characters");
            return false;
        }
        return true;
    }

    const field_errors& decode_errors_;
    ordered_errors& out_;
};

}  // namespace

ordered_errors validate_record(const cluster_data& r, const field_errors& decode_errors) {
    ordered_errors out;
    checker c(decode_errors, out);
    c.required_text("duck_id", r.duck_id, max_short);
    c.required_text("topic", r.topic, max_short);
    c.required_text("message_id", r.message_id, max_short);
    const bool base64 = r.payload_encoding && *r.payload_encoding == "base64" &&
                        decode_errors.count("payload_encoding") == 0;
    c.nullable_text_then("payload", r.payload, [&](const std::string& v) {
        if (base64 && !base64_decode(v).is_ok())
            c.fail("payload", "must be valid base64 when payload_encoding is base64");
    });
    c.nullable_text("path", r.path);
    c.nullable_text("origin", r.origin, max_route);
    c.nullable_text("destination", r.destination, max_route);
    c.int32("hops", r.hops);
    c.int32("duck_type", r.duck_type);
    c.decoded_badly("created_at");  // parse_time already judged the date
    c.nullable_text_then("payload_encoding", r.payload_encoding, [&](const std::string& v) {
        if (v != "base64") c.fail("payload_encoding", "must be null or base64");
    });
    c.nullable_text_then("uuid", r.uuid, [&](const std::string& v) {
        if (!is_uuid(v)) c.fail("uuid", "must be a valid UUID");
    });
    c.nullable_text("source_node", r.source_node, max_node);
    return out;
}

std::string summary_message(const ordered_errors& errors) {
    std::size_t total = 0;
    const std::string* first = nullptr;
    for (const auto& field : errors) {
        for (const auto& m : field.second) {
            if (!first) first = &m;
            ++total;
        }
    }
    if (!first) return {};
    std::string out = *first;
    if (total > 1) {
        const std::size_t more = total - 1;
        out += " (and " + std::to_string(more) + " more error" + (more == 1 ? ")" : "s)");
    }
    return out;
}

std::string validation_error_body(const ordered_errors& errors) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    const auto put = [&](const std::string& s) {
        w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
    };
    w.StartObject();
    w.Key("message");
    put(summary_message(errors));
    w.Key("errors");
    w.StartObject();
    for (const auto& field : errors) {
        w.Key(field.first.data(), static_cast<rapidjson::SizeType>(field.first.size()));
        w.StartArray();
        for (const auto& m : field.second) put(m);
        w.EndArray();
    }
    w.EndObject();
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace opendms::central
