#include "opendms/base64.hpp"

#include <cstdint>

namespace opendms {

namespace {

constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) noexcept {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

std::uint32_t byte_at(std::string_view s, std::size_t i) noexcept {
    return static_cast<unsigned char>(s[i]);
}

void put_sextets(std::string& out, std::uint32_t group, int count) {
    for (int k = 0; k < count; ++k) out.push_back(alphabet[(group >> (18 - 6 * k)) & 0x3F]);
}

status invalid(const std::string& what) {
    return status(errc::invalid_argument, "base64_decode: " + what);
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        put_sextets(
            out, byte_at(bytes, i) << 16 | byte_at(bytes, i + 1) << 8 | byte_at(bytes, i + 2), 4);
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        put_sextets(out, byte_at(bytes, i) << 16, 2);
        out += "==";
    } else if (rest == 2) {
        put_sextets(out, byte_at(bytes, i) << 16 | byte_at(bytes, i + 1) << 8, 3);
        out += '=';
    }
    return out;
}

result<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) {
        return invalid("length " + std::to_string(text.size()) + " is not a multiple of 4");
    }
    std::size_t padding = 0;
    if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
    const std::size_t data_chars = text.size() - padding;

    std::string out;
    out.reserve(text.size() / 4 * 3);
    std::uint32_t group = 0;
    for (std::size_t i = 0; i < data_chars; ++i) {
        const int v = sextet(text[i]);
        if (v < 0) return invalid("invalid character at offset " + std::to_string(i));
        group = group << 6 | static_cast<std::uint32_t>(v);
        if (i % 4 == 3) {
            out.push_back(static_cast<char>(group >> 16));
            out.push_back(static_cast<char>(group >> 8 & 0xFF));
            out.push_back(static_cast<char>(group & 0xFF));
            group = 0;
        }
    }
    // The last group: 2 characters (12 bits) carry one byte, 3 (18 bits) carry two; the
    // bits left over must be zero, or two different texts would decode to the same bytes.
    const std::uint32_t unused_mask = padding == 2 ? 0xF : 0x3;
    if (padding != 0 && (group & unused_mask) != 0) {
        return invalid("unused bits are not zero at offset " + std::to_string(data_chars - 1));
    }
    if (padding == 2) {
        out.push_back(static_cast<char>(group >> 4));
    } else if (padding == 1) {
        out.push_back(static_cast<char>(group >> 10));
        out.push_back(static_cast<char>(group >> 2 & 0xFF));
    }
    return out;
}

}  // namespace opendms
