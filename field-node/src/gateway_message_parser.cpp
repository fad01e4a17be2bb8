// The gateway message parser: tolerant JSON reading, then one mapping per message shape.
// The rules and every rejection reason are specified in docs/gateway-messages.md.
#include "opendms/field/gateway_message_parser.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "opendms/base64.hpp"
#include "opendms/status.hpp"

namespace opendms::field {

namespace {

using json_value = rapidjson::Value;
using json_document = rapidjson::Document;

constexpr std::size_t max_duck_id_chars = 32;   // the mesh's DeviceID
constexpr std::size_t max_column_chars = 255;   // varchar(255): message_id, topic
constexpr std::size_t max_endpoint_chars = 32;  // varchar(32): origin, destination
constexpr std::size_t max_message_depth = 64;   // a Message given as a JSON value
constexpr std::string_view non_printable_sentinel = "ERROR: Non-printable character";

status reject(std::string reason) {
    return status(errc::invalid_argument, std::move(reason));
}

// ---- bytes, UTF-8 and text ----

unsigned char byte_at(std::string_view s, std::size_t i) {
    return static_cast<unsigned char>(s[i]);
}

// The length of the well-formed UTF-8 sequence starting at s[i] (Unicode table 3-7: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0 when none starts there.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
    const unsigned char c = byte_at(s, i);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) low = 0xA0;
        if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) low = 0x90;
        if (c == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (i + n > s.size() || byte_at(s, i + 1) < low || byte_at(s, i + 1) > high) return 0;
    for (std::size_t k = 2; k < n; ++k) {
        if ((byte_at(s, i + k) & 0xC0) != 0x80) return 0;
    }
    return n;
}

// Valid UTF-8 without NUL: what a PostgreSQL text column and a JSON body can hold.
bool is_storable_text(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = utf8_sequence_length(s, i);
        if (n == 0 || s[i] == '\0') return false;
        i += n;
    }
    return true;
}

// Storable text whose only control characters are tab, line feed and carriage return.
bool is_text_like(std::string_view s) {
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && c != '\t' && c != '\n' && c != '\r') || u == 0x7F) return false;
    }
    return is_storable_text(s);
}

// Characters (code points); each byte that starts no valid sequence counts as one.
std::size_t char_count(std::string_view s) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < s.size(); ++count) {
        const std::size_t n = utf8_sequence_length(s, i);
        i += n == 0 ? 1 : n;
    }
    return count;
}

// A short column value made storable: NUL and every byte that is not part of valid
// UTF-8 are written as the four characters "\xNN"; everything else is kept.
std::string storable(std::string_view s) {
    if (is_storable_text(s)) return std::string(s);
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = s[i] == '\0' ? 0 : utf8_sequence_length(s, i);
        if (n != 0) {
            out.append(s, i, n);
            i += n;
            continue;
        }
        out += "\\x";
        out += hex[byte_at(s, i) >> 4];
        out += hex[byte_at(s, i) & 0x0F];
        ++i;
    }
    return out;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto lower = [](char c) {
            return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
        };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

bool is_sentinel(std::string_view s) {
    return trim(s).substr(0, non_printable_sentinel.size()) == non_printable_sentinel;
}

// ---- tolerant JSON ----

// The text handed to RapidJSON. Producers put raw control bytes inside strings, which
// RapidJSON rejects, so each is replaced by its \u00XX escape; a C gateway may publish
// its terminating NUL, so NUL padding after the document is cut off; a UTF-8 BOM is
// skipped. Each replacement is remembered so that an error offset can be reported in
// the original bytes.
class json_text {
public:
    /// Fails only for a NUL byte outside a string that is followed by more than padding.
    status prepare(std::string_view bytes);
    std::string_view text() const { return changed_ ? std::string_view(storage_) : view_; }
    std::size_t original_offset(std::size_t offset) const;

private:
    struct replacement {
        std::size_t at;     // offset in text() where the escape starts
        std::size_t extra;  // characters added for the one raw byte it replaced
    };

    void escape(std::string_view bytes, std::size_t i, bool after_backslash);

    std::size_t skipped_ = 0;  // a BOM
    std::string_view view_;
    std::string storage_;
    std::size_t copied_ = 0;  // view_[0, copied_) is already in storage_
    bool changed_ = false;
    std::vector<replacement> replacements_;
};

void json_text::escape(std::string_view bytes, std::size_t i, bool after_backslash) {
    static constexpr char hex[] = "0123456789ABCDEF";
    if (!changed_) storage_.reserve(bytes.size() + 16);
    changed_ = true;
    storage_.append(bytes, copied_, i - copied_);
    copied_ = i + 1;
    const std::size_t at = storage_.size();
    // After a backslash the escape is completed ("\" raw 0x01 -> "\u0001"), otherwise
    // it is written whole.
    storage_ += after_backslash ? "u00" : "\\u00";
    storage_ += hex[byte_at(bytes, i) >> 4];
    storage_ += hex[byte_at(bytes, i) & 0x0F];
    replacements_.push_back({at, storage_.size() - at - 1});
}

status json_text::prepare(std::string_view bytes) {
    if (bytes.substr(0, 3) == "\xEF\xBB\xBF") {
        skipped_ = 3;
        bytes.remove_prefix(3);
    }
    bool in_string = false;
    bool after_backslash = false;
    std::size_t end = bytes.size();
    for (std::size_t i = 0; i < end; ++i) {
        const char c = bytes[i];
        if (!in_string) {
            if (c == '"') {
                in_string = true;
            } else if (c == '\0') {
                const std::string_view rest = bytes.substr(i);
                if (rest.find_first_not_of(std::string_view(" \t\r\n\0", 5)) != rest.npos) {
                    return reject("invalid JSON at offset " + std::to_string(i + skipped_) +
                                  ": a NUL byte outside a string");
                }
                end = i;
            }
            continue;
        }
        const bool escaped = after_backslash;
        after_backslash = false;
        if (static_cast<unsigned char>(c) < 0x20) {
            escape(bytes, i, escaped);
        } else if (!escaped && c == '\\') {
            after_backslash = true;
        } else if (!escaped && c == '"') {
            in_string = false;
        }
    }
    view_ = bytes.substr(0, end);
    if (changed_) storage_.append(bytes, copied_, end - copied_);
    return status::ok();
}

std::size_t json_text::original_offset(std::size_t offset) const {
    std::size_t added = 0;
    for (const replacement& r : replacements_) {
        if (offset <= r.at) break;
        if (offset <= r.at + r.extra) return r.at - added + skipped_;  // inside the escape
        added += r.extra;
    }
    return offset - added + skipped_;
}

// Parses without UTF-8 validation (invalid bytes are kept as they are) and without
// recursion (kParseIterativeFlag: deep nesting cannot overflow the stack).
status parse_json(std::string_view bytes, json_document& doc) {
    json_text prepared;
    if (status st = prepared.prepare(bytes); !st) return st;
    const std::string_view text = prepared.text();
    if (text.empty()) return reject("invalid JSON at offset 0: The document is empty.");
    doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
    if (!doc.HasParseError()) return status::ok();
    return reject("invalid JSON at offset " +
                  std::to_string(prepared.original_offset(doc.GetErrorOffset())) + ": " +
                  rapidjson::GetParseError_En(doc.GetParseError()));
}

// ---- reading values ----

std::string_view view_of(const json_value& v) {
    return {v.GetString(), v.GetStringLength()};
}

// The member's value; with a repeated key the last one, as PHP and JavaScript read it.
const json_value* member(const json_value& object, std::string_view key) {
    const json_value* found = nullptr;
    for (const auto& m : object.GetObject()) {
        if (view_of(m.name) == key) found = &m.value;
    }
    return found;
}

struct found_member {
    const json_value* value = nullptr;
    std::string_view key;  // the key found, else the first one asked for
};

// The first of `keys` (empty ones ignored) that the object has.
template <std::size_t N>
found_member first_of(const json_value& object, const std::array<std::string_view, N>& keys) {
    for (std::string_view key : keys) {
        if (key.empty()) continue;
        if (const json_value* v = member(object, key)) return {v, key};
    }
    return {nullptr, keys[0]};
}

std::string serialize(const json_value& v) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    v.Accept(writer);
    return std::string(buffer.GetString(), buffer.GetSize());
}

// Integers in decimal, other numbers as RapidJSON writes them ("2.5", "1e300").
std::string number_text(const json_value& v) {
    if (v.IsInt64()) return std::to_string(v.GetInt64());
    if (v.IsUint64()) return std::to_string(v.GetUint64());
    return serialize(v);
}

// True when containers nest deeper than `limit`; walks with its own stack, not recursion.
bool nested_deeper_than(const json_value& root, std::size_t limit) {
    std::vector<std::pair<const json_value*, std::size_t>> pending{{&root, 1}};
    while (!pending.empty()) {
        const auto [v, depth] = pending.back();
        pending.pop_back();
        if (depth > limit) return true;
        if (v->IsObject()) {
            for (const auto& m : v->GetObject()) pending.emplace_back(&m.value, depth + 1);
        } else if (v->IsArray()) {
            for (const auto& e : v->GetArray()) pending.emplace_back(&e, depth + 1);
        }
    }
    return false;
}

// A required identity column (DeviceID, MessageID, eventType): a string or an integer,
// 1..max_chars characters. `out` is written only on success.
status read_identity(const json_value* v, std::string_view name, std::size_t max_chars,
                     std::string& out) {
    const std::string field(name);
    if (v == nullptr || v->IsNull()) return reject(field + " is missing");
    std::string text;
    if (v->IsString())
        text.assign(view_of(*v));
    else if (v->IsInt64() || v->IsUint64())
        text = number_text(*v);
    else
        return reject(field + " is not a string");
    if (text.empty()) return reject(field + " is empty");
    // The central's `required` rule trims (as Laravel does): it would refuse the record.
    if (trim(text).empty()) return reject(field + " is blank");
    const std::size_t chars = char_count(text);
    if (chars > max_chars) {
        return reject(field + " is longer than " + std::to_string(max_chars) + " characters (" +
                      std::to_string(chars) + ")");
    }
    // Each invalid byte is stored as four characters: the stored text must still fit the
    // column, or the central would refuse the record (and the field node park it for ever).
    std::string stored = storable(text);
    if (const std::size_t stored_chars = char_count(stored); stored_chars > max_column_chars) {
        return reject(field + " is longer than " + std::to_string(max_column_chars) +
                      " characters once its invalid bytes are escaped (" +
                      std::to_string(stored_chars) + ")");
    }
    out = std::move(stored);
    return status::ok();
}

// Optional sign, then 1..18 decimal digits (leading zeros allowed).
std::optional<std::int64_t> integer_text(std::string_view s) {
    bool negative = false;
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
        negative = s.front() == '-';
        s.remove_prefix(1);
    }
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return negative ? -v : v;
}

// hops and duckType: an integer 0..255 given as a number or a string ("2", " 2 ", 2.0);
// anything else is NULL, so that a bad count never costs the message.
std::optional<std::int64_t> byte_value(const json_value* v) {
    if (v == nullptr) return std::nullopt;
    std::optional<std::int64_t> n;
    if (v->IsInt64()) {
        n = v->GetInt64();
    } else if (v->IsDouble()) {
        const double d = v->GetDouble();
        if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 1e15)
            n = static_cast<std::int64_t>(d);
    } else if (v->IsString()) {
        n = integer_text(trim(view_of(*v)));
    }
    if (n && *n >= 0 && *n <= 255) return n;
    return std::nullopt;
}

// duckType, also by name ("MamaDuck"), which CDP 4.2 gateways may send as deviceType.
std::optional<std::int64_t> duck_type_value(const json_value* v) {
    if (std::optional<std::int64_t> n = byte_value(v)) return n;
    if (v == nullptr || !v->IsString()) return std::nullopt;
    static constexpr std::array<std::pair<std::string_view, std::int64_t>, 6> names = {{
        {"unknown", 0},
        {"papaduck", 1},
        {"mamaduck", 2},
        {"ducklink", 3},
        {"detectorduck", 4},
        {"detector", 4},
    }};
    const std::string_view name = trim(view_of(*v));
    for (const auto& [known, type] : names) {
        if (equals_ignoring_case(name, known)) return type;
    }
    return std::nullopt;
}

// origin / destination: a string or number; the sentinel, empty, or longer than the
// varchar(32) column is NULL.
std::optional<std::string> endpoint_value(const json_value* v) {
    if (v == nullptr) return std::nullopt;
    std::string text;
    if (v->IsString())
        text.assign(view_of(*v));
    else if (v->IsNumber())
        text = number_text(*v);
    else
        return std::nullopt;
    if (trim(text).empty() || is_sentinel(text)) return std::nullopt;
    text = storable(text);
    if (char_count(text) > max_endpoint_chars) return std::nullopt;
    return text;
}

// ---- path ----

void append_path_item(std::string& out, std::string_view item) {
    item = trim(item);
    if (item.empty() || is_sentinel(item)) return;
    if (!out.empty()) out += ',';
    out += item;
}

std::optional<std::string> joined_path(const std::string& items) {
    if (items.empty()) return std::nullopt;
    return storable(items);
}

std::optional<std::string> path_from_array(const json_value& array) {
    std::string out;
    for (const auto& item : array.GetArray()) {
        if (item.IsString())
            append_path_item(out, view_of(item));
        else if (item.IsNumber())
            append_path_item(out, number_text(item));
    }
    return joined_path(out);
}

std::optional<std::string> path_from_text(std::string_view text) {
    const std::string_view trimmed = trim(text);
    if (!trimmed.empty() && trimmed.front() == '[') {
        json_document inner;
        if (parse_json(trimmed, inner).is_ok() && inner.IsArray()) return path_from_array(inner);
    }
    std::string out;
    for (std::size_t start = 0; start <= text.size();) {
        std::size_t comma = text.find(',', start);
        if (comma == text.npos) comma = text.size();
        append_path_item(out, text.substr(start, comma - start));
        start = comma + 1;
    }
    return joined_path(out);
}

// An array, a JSON array inside a string, a comma string, or a single number.
std::optional<std::string> path_value(const json_value* v) {
    if (v == nullptr) return std::nullopt;
    if (v->IsArray()) return path_from_array(*v);
    if (v->IsString()) return path_from_text(view_of(*v));
    if (v->IsNumber()) return joined_path(number_text(*v));
    return std::nullopt;
}

// ---- the Message ----

void set_payload(cluster_data& r, std::string_view raw, bool declared_base64) {
    if (declared_base64) {
        result<std::string> decoded = base64_decode(raw);
        if (decoded.is_ok()) {
            if (is_text_like(*decoded)) {
                r.payload = std::move(decoded).value();
            } else {
                r.payload = std::string(raw);  // canonical, so it is exactly the bytes' base64
                r.payload_encoding = "base64";
            }
            return;
        }
        // Not base64 after all: keep it as it came, like any other text.
    }
    if (is_storable_text(raw)) {
        r.payload = std::string(raw);
    } else {
        r.payload = base64_encode(raw);
        r.payload_encoding = "base64";
    }
}

bool declares_base64(const json_value& body) {
    const json_value* encoding = member(body, "encoding");
    return encoding != nullptr && encoding->IsString() &&
           equals_ignoring_case(trim(view_of(*encoding)), "base64");
}

status read_message(const found_member& message, bool declared_base64, cluster_data& r) {
    const json_value* m = message.value;
    if (m == nullptr || m->IsNull()) return status::ok();  // route packets carry none
    if (m->IsString()) {
        set_payload(r, view_of(*m), declared_base64);
        return status::ok();
    }
    if (m->IsBool()) {
        set_payload(r, m->GetBool() ? "true" : "false", false);
    } else if (m->IsNumber()) {
        set_payload(r, number_text(*m), false);
    } else {
        if (nested_deeper_than(*m, max_message_depth)) {
            return reject(std::string(message.key) + " is nested deeper than " +
                          std::to_string(max_message_depth) + " levels");
        }
        set_payload(r, serialize(*m), false);
    }
    return status::ok();
}

void take_route(const json_value& route, cluster_data& r) {
    if (!r.path) r.path = path_value(member(route, "path"));
    if (!r.origin) r.origin = endpoint_value(member(route, "origin"));
    if (!r.destination) r.destination = endpoint_value(member(route, "destination"));
}

// The stock ESP32 gateway forwards a route packet's route as JSON text in Message.
void take_route_from_message(const json_value* message, cluster_data& r) {
    if (message != nullptr && message->IsObject()) {
        take_route(*message, r);
        return;
    }
    if (!r.payload || r.payload_encoding) return;
    const std::string_view text = trim(*r.payload);
    if (text.empty() || text.front() != '{') return;
    json_document route;
    if (parse_json(text, route).is_ok() && route.IsObject()) take_route(route, r);
}

// ---- shapes ----

enum class shape { envelope, cdp42, legacy };

struct shape_keys {
    std::string_view topic;  // empty: the type comes from the MQTT topic
    bool topic_required;     // false: fall back to the MQTT topic when absent
    std::string_view message_id;
    std::array<std::string_view, 2> duck_id;
    std::array<std::string_view, 3> message;
    std::array<std::string_view, 2> duck_type;
};

constexpr shape_keys envelope_keys{"eventType",  true,        "MessageID",
                                   {"DeviceID"}, {"Message"}, {"duckType"}};
constexpr shape_keys cdp42_keys{"messageTopic",
                                false,
                                "messageId",
                                {"deviceId", "DeviceID"},
                                {"message", "Message"},
                                {"deviceType", "duckType"}};
constexpr shape_keys legacy_keys{
    "", false, "MessageID", {"DeviceID"}, {"Payload", "payload", "Message"}, {"duckType"}};
constexpr std::array<std::string_view, 2> hops_keys = {"hops", "hopCount"};

const shape_keys& keys_of(shape kind) {
    switch (kind) {
        case shape::envelope:
            return envelope_keys;
        case shape::cdp42:
            return cdp42_keys;
        case shape::legacy:
            break;
    }
    return legacy_keys;
}

struct message_parts {
    shape kind = shape::envelope;
    const json_value* head = nullptr;  // eventType / MessageID
    const json_value* body = nullptr;  // DeviceID, hops, duckType, Message, route
};

status locate_parts(const json_value& top, message_parts& out) {
    const json_value* payload = member(top, "payload");
    if (payload != nullptr && payload->IsObject()) {
        const bool cdp42 = member(top, "messageTopic") || member(top, "messageId") ||
                           (member(*payload, "deviceId") && !member(*payload, "DeviceID"));
        out = {cdp42 ? shape::cdp42 : shape::envelope, &top, payload};
        return status::ok();
    }
    if (member(top, "DeviceID") != nullptr) {
        out = {shape::legacy, &top, &top};
        return status::ok();
    }
    if (payload != nullptr) return reject("payload is not an object (no DeviceID/hops/duckType)");
    return reject("not a gateway message (no payload object and no DeviceID)");
}

bool is_generic_segment(std::string_view s) {
    for (std::string_view generic :
         {"event", "events", "hub", "data", "json", "message", "messages"}) {
        if (equals_ignoring_case(s, generic)) return true;
    }
    return false;
}

std::vector<std::string_view> split_topic(std::string_view topic) {
    std::vector<std::string_view> segments;
    for (std::size_t start = 0;;) {
        const std::size_t slash = topic.find('/', start);
        segments.push_back(topic.substr(start, slash == topic.npos ? topic.npos : slash - start));
        if (slash == topic.npos) return segments;
        start = slash + 1;
    }
}

// Legacy gateways put the event type in the MQTT topic.
std::string topic_from_mqtt(std::string_view mqtt_topic) {
    const std::vector<std::string_view> s = split_topic(mqtt_topic);
    std::string_view type;
    if (s.size() == 5 && s[0] == "iot-2" && s[1] == "evt" && s[3] == "fmt")
        type = s[2];  // iot-2/evt/<type>/fmt/json
    else if (s.size() == 5 && s[0] == "owl" && s[1] == "device" && s[3] == "evt")
        type = s[4];  // owl/device/<thing>/evt/<type>
    else if (s.size() == 1 && !is_generic_segment(s[0]))
        type = s[0];  // the bare type
    std::string stored = storable(type);
    if (trim(type).empty() || char_count(stored) > max_column_chars) return "status";
    return stored;
}

// hex "4B414D50554E4731" -> "KAMPUNG1" when the 8 bytes are printable ASCII; else as given.
std::string device_id_from_hex(const std::string& id) {
    if (id.size() != 16) return id;
    const auto nibble = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    std::string text;
    for (std::size_t i = 0; i < id.size(); i += 2) {
        const int high = nibble(id[i]);
        const int low = nibble(id[i + 1]);
        if (high < 0 || low < 0 || high * 16 + low < 0x21 || high * 16 + low > 0x7E) return id;
        text.push_back(static_cast<char>(high * 16 + low));
    }
    return text;
}

status read_topic(const message_parts& p, const shape_keys& keys, std::string_view mqtt_topic,
                  std::string& out) {
    const json_value* v = keys.topic.empty() ? nullptr : member(*p.head, keys.topic);
    if (keys.topic_required || (v != nullptr && !v->IsNull()))
        return read_identity(v, keys.topic, max_column_chars, out);
    out = topic_from_mqtt(mqtt_topic);
    return status::ok();
}

// duck_id, message_id and topic: without any of them there is no record. Each one read
// is kept in `r` even when another fails (for the log line of a rejected message).
status read_identities(const message_parts& p, std::string_view mqtt_topic, cluster_data& r) {
    const shape_keys& keys = keys_of(p.kind);
    const found_member duck = first_of(*p.body, keys.duck_id);
    const status duck_id = read_identity(duck.value, duck.key, max_duck_id_chars, r.duck_id);
    if (duck_id.is_ok() && p.kind == shape::cdp42) r.duck_id = device_id_from_hex(r.duck_id);
    const status message_id = read_identity(member(*p.head, keys.message_id), keys.message_id,
                                            max_column_chars, r.message_id);
    const status topic = read_topic(p, keys, mqtt_topic, r.topic);
    for (const status* st : {&duck_id, &message_id, &topic}) {
        if (!st->is_ok()) return *st;
    }
    return status::ok();
}

status read_details(const message_parts& p, cluster_data& r) {
    const json_value& body = *p.body;
    const shape_keys& keys = keys_of(p.kind);
    r.hops = byte_value(first_of(body, hops_keys).value);
    r.duck_type = duck_type_value(first_of(body, keys.duck_type).value);
    r.path = path_value(member(body, "path"));
    r.origin = endpoint_value(member(body, "origin"));
    r.destination = endpoint_value(member(body, "destination"));
    const found_member message = first_of(body, keys.message);
    if (status st = read_message(message, declares_base64(body), r); !st) return st;
    if (!r.path || !r.origin || !r.destination) take_route_from_message(message.value, r);
    return status::ok();
}

// What a message that is no gateway shape still says about itself, for the log line.
void read_partial(const json_value& top, cluster_data& r) {
    const auto take = [&top](std::string_view key, std::string& out) {
        const json_value* v = member(top, key);
        if (v != nullptr && v->IsString()) out = storable(view_of(*v));
    };
    take("eventType", r.topic);
    take("MessageID", r.message_id);
}

status parse_into(std::string_view mqtt_topic, std::string_view bytes, const parse_limits& limits,
                  cluster_data& r) {
    if (bytes.empty()) return reject("empty message");
    if (bytes.size() > limits.max_bytes) {
        return reject("message too large (" + std::to_string(bytes.size()) + " bytes, limit " +
                      std::to_string(limits.max_bytes) + ")");
    }
    json_document doc;
    if (status st = parse_json(bytes, doc); !st) return st;
    if (!doc.IsObject()) return reject("top level is not a JSON object");
    message_parts parts;
    if (status st = locate_parts(doc, parts); !st) {
        read_partial(doc, r);
        return st;
    }
    if (status st = read_identities(parts, mqtt_topic, r); !st) return st;
    return read_details(parts, r);
}

}  // namespace

parse_result parse_gateway_message(std::string_view mqtt_topic, std::string_view bytes,
                                   const parse_limits& limits) {
    parse_result out;
    const status st = parse_into(mqtt_topic, bytes, limits, out.record);
    out.ok = st.is_ok();
    if (!out.ok) out.reason = st.message();
    return out;
}

}  // namespace opendms::field
