#include "opendms/central/http_types.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cstdlib>

#include "opendms/gzip.hpp"

namespace opendms::central {

std::string message_body(const std::string& text) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    w.StartObject();
    w.Key("message");
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    w.EndObject();
    return std::string(buf.GetString(), buf.GetSize());
}

http_reply json_message(unsigned status, const std::string& text) {
    http_reply r;
    r.status = status;
    r.body = message_body(text);
    return r;
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

// The q-value of one Accept-Encoding element's parameters ("q=0.5"); 1 when absent, 0
// when unreadable (a client that writes nonsense gets what it surely reads: identity).
double q_value(std::string_view params) {
    while (!params.empty()) {
        const std::size_t semi = params.find(';');
        const std::string_view p = trim(params.substr(0, semi));
        params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
        if (p.empty() || (p[0] != 'q' && p[0] != 'Q')) continue;
        const std::string_view rest = trim(p.substr(1));
        if (rest.empty() || rest.front() != '=') continue;
        const std::string value(trim(rest.substr(1)));
        char* end = nullptr;
        const double q = std::strtod(value.c_str(), &end);
        if (value.empty() || end != value.c_str() + value.size() || q < 0 || q > 1) return 0;
        return q;
    }
    return 1;
}

}  // namespace

bool accepts_gzip(std::string_view accept_encoding) {
    double gzip = -1, any = -1;  // -1: not listed
    while (!accept_encoding.empty()) {
        const std::size_t comma = accept_encoding.find(',');
        std::string_view element = accept_encoding.substr(0, comma);
        accept_encoding = comma == std::string_view::npos ? std::string_view()
                                                          : accept_encoding.substr(comma + 1);
        const std::size_t semi = element.find(';');
        const std::string_view coding = trim(element.substr(0, semi));
        const double q =
            q_value(semi == std::string_view::npos ? std::string_view() : element.substr(semi + 1));
        if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
            gzip = std::max(gzip, q);
        } else if (coding == "*") {
            any = std::max(any, q);
        }
    }
    if (gzip >= 0) return gzip > 0;
    return any > 0;
}

void compress_reply(http_reply& reply, std::string_view accept_encoding, std::size_t min_bytes) {
    if (reply.body.size() < min_bytes || reply.content_type != "application/json") return;
    for (const auto& header : reply.headers) {
        if (iequals(header.first, "Content-Encoding")) return;  // already encoded
    }
    reply.headers.emplace_back("Vary", "Accept-Encoding");
    if (!accepts_gzip(accept_encoding)) return;
    reply.body = gzip_compress(reply.body);
    reply.headers.emplace_back("Content-Encoding", "gzip");
}

}  // namespace opendms::central
