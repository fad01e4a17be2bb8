// Base64: RFC 4648's test vectors, round trips of every byte, and the canonical-only
// decoder's refusals.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "opendms/base64.hpp"

using namespace opendms;

namespace {

std::string decode_ok(const std::string& text) {
    auto decoded = base64_decode(text);
    INFO("'" << text << "': " << decoded.error().to_string());
    REQUIRE(decoded.is_ok());
    return std::move(decoded).value();
}

std::string decode_error(const std::string& text) {
    INFO("'" << text << "'");
    const auto decoded = base64_decode(text);
    REQUIRE_FALSE(decoded.is_ok());
    CHECK(decoded.error().code() == errc::invalid_argument);
    CHECK(decoded.error().message().rfind("base64_decode: ", 0) == 0);
    return decoded.error().message();
}

}  // namespace

TEST_CASE("RFC 4648 section 10 test vectors encode and decode", "[unit]") {
    const std::vector<std::pair<std::string, std::string>> vectors = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [bytes, text] : vectors) {
        INFO(bytes);
        CHECK(base64_encode(bytes) == text);
        CHECK(decode_ok(text) == bytes);
    }
}

TEST_CASE("every byte value survives a round trip, NUL included", "[unit]") {
    std::string all;
    for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
    for (std::size_t n = 0; n <= all.size(); n += 17) {
        const std::string bytes = all.substr(all.size() - n);
        CHECK(decode_ok(base64_encode(bytes)) == bytes);
    }
    CHECK(base64_encode(std::string(1, '\0')) == "AA==");
    CHECK(decode_ok("AA==") == std::string(1, '\0'));
    CHECK(base64_encode("\xFF\xFE\xFD") == "//79");
    CHECK(decode_ok("+/+/") == "\xFB\xFF\xBF");
}

TEST_CASE("a length that is not a multiple of 4 is refused", "[unit]") {
    CHECK(decode_error("Zg") == "base64_decode: length 2 is not a multiple of 4");
    for (const char* text : {"Z", "Zg=", "Zm9vY", "Zm9vYg=", "Zm9vYmFy="}) decode_error(text);
}

TEST_CASE("characters outside the standard alphabet are refused with their offset", "[unit]") {
    CHECK(decode_error("Zm9!") == "base64_decode: invalid character at offset 3");
    CHECK(decode_error("Zm 9") == "base64_decode: invalid character at offset 2");
    for (const char* text : {"Zm9-", "Zm9_", "Zm9v\nYg==", "\"Zm9\"", "Zm9v YmFy", "Zm\xC3\xA9"})
        decode_error(text);
    decode_error(std::string("Zm\0v", 4));
}

TEST_CASE("padding is accepted only at the end, one or two characters", "[unit]") {
    CHECK(decode_error("====") == "base64_decode: invalid character at offset 0");
    for (const char* text : {"Z===", "=Zm9", "Zg==Zg==", "Zm=v", "Zm9vYg=a"}) decode_error(text);
}

TEST_CASE("non-zero bits under the padding are refused so that decoding is one-to-one", "[unit]") {
    CHECK(decode_error("Zh==") == "base64_decode: unused bits are not zero at offset 1");
    CHECK(decode_error("Zm9=") == "base64_decode: unused bits are not zero at offset 2");
    CHECK(decode_ok("Zg==") == "f");
    CHECK(decode_ok("Zm8=") == "fo");
}

TEST_CASE("whatever decodes is canonical: encoding it gives the same text back", "[unit]") {
    const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    int accepted = 0;
    for (char a : alphabet) {
        for (char b : alphabet) {
            const std::string text = std::string("Zm") + a + b;
            const auto decoded = base64_decode(text);
            if (!decoded.is_ok()) continue;
            ++accepted;
            CHECK(base64_encode(*decoded) == text);
        }
    }
    // Full groups, and "Zm?=" where ? leaves its low two bits zero; "Zm==" has bits under
    // its padding ('m' is 100110), so it is refused.
    CHECK(accepted == 64 * 64 + 16);
}
