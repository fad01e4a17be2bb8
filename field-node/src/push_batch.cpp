// push_batch: request bodies and answers (see the header).
#include "opendms/field/push_batch.hpp"

#include <rapidjson/document.h>

#include "opendms/record_json.hpp"

namespace opendms::field {
namespace {

constexpr std::size_t max_reason = 500;

/// Cuts `s` to at most `n` bytes without splitting a UTF-8 character, and replaces bytes
/// that are not UTF-8 text (and control characters) so the reason can be stored and logged.
std::string clean_text(std::string_view s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < s.size() && out.size() < n;) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        bool ok = len > 0 && i + len <= s.size();
        for (std::size_t k = 1; ok && k < len; ++k) {
            ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
        }
        if (!ok) {
            out += '?';
            ++i;
            continue;
        }
        if (out.size() + len > n) break;
        if (len == 1 && (c < 0x20 || c == 0x7f)) {
            out += ' ';
        } else {
            out.append(s.data() + i, len);
        }
        i += len;
    }
    return out;
}

std::string message_and_errors(const rapidjson::Value& v) {
    std::string out;
    if (v.HasMember("message") && v["message"].IsString()) out = v["message"].GetString();
    if (v.HasMember("errors") && v["errors"].IsObject()) {
        for (const auto& field : v["errors"].GetObject()) {
            if (!field.value.IsArray()) continue;
            for (const auto& m : field.value.GetArray()) {
                if (!m.IsString()) continue;
                std::string text = m.GetString();
                if (out.find(text) != std::string::npos) continue;  // Laravel repeats the first
                out += (out.empty() ? "" : " ") + text;
            }
        }
    }
    return out;
}

}  // namespace

std::string encode_single(const cluster_data& record) { return to_json(record, json_fields::wire); }

std::string encode_batch(const std::vector<outbox_item>& items) {
    std::string out = "{\"records\":[";
    out.reserve(items.size() * 320 + 16);
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ',';
        out += to_json(items[i].record, json_fields::wire);
    }
    out += "]}";
    return out;
}

std::optional<std::vector<record_result>> decode_batch_results(std::string_view body,
                                                               std::size_t expected) {
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("results") || !d["results"].IsArray()) {
        return std::nullopt;
    }
    const auto& results = d["results"];
    if (results.Size() != expected) return std::nullopt;
    std::vector<record_result> out;
    out.reserve(expected);
    for (const auto& r : results.GetArray()) {
        if (!r.IsObject() || !r.HasMember("status") || !r["status"].IsString()) return std::nullopt;
        const std::string s = r["status"].GetString();
        record_result one;
        if (s == "stored" || s == "duplicate" || s == "mesh_duplicate") {
            one.verdict = record_verdict::delivered;
        } else if (s == "rejected") {
            one.verdict = record_verdict::rejected;
            one.reason = clean_text(message_and_errors(r), max_reason);
            if (one.reason.empty()) one.reason = "rejected by the central server (no reason given)";
        } else {
            one.reason = clean_text("unknown result status '" + s + "'", max_reason);
        }
        out.push_back(std::move(one));
    }
    return out;
}

std::string reason_from_answer(unsigned status, std::string_view body) {
    std::string prefix = "HTTP " + std::to_string(status);
    rapidjson::Document d;
    d.Parse(body.data(), body.size());
    std::string text;
    if (!d.HasParseError() && d.IsObject()) {
        text = message_and_errors(d);
    } else {
        text = std::string(body.substr(0, 200));
    }
    if (text.empty()) return prefix;
    return clean_text(prefix + ": " + text, max_reason);
}

}  // namespace opendms::field
