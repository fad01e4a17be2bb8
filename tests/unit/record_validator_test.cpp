// The record validator: the seed's Laravel rules and messages, in rule order, plus the
// checks our storage needs (32-bit integers, valid UTF-8 text, base64 payloads, UUIDs).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "opendms/central/record_validator.hpp"
#include "opendms/record_json.hpp"

using namespace opendms;
using namespace opendms::central;

namespace {

cluster_data valid_record() {
    cluster_data r;
    r.duck_id = "DUCK0001";
    r.topic = "status";
    r.message_id = "A1B2";
    r.payload = "hello";
    r.path = "DUCK0001,PAPA0001";
    r.hops = 2;
    r.duck_type = 3;
    r.created_at = 1772186400;
    r.uuid = "019c9e8a-7500-7c3d-9b1e-3f0a5c2d4e61";
    r.source_node = "node-1";
    return r;
}

std::vector<std::string> fields_of(const ordered_errors& errors) {
    std::vector<std::string> out;
    for (const auto& e : errors) out.push_back(e.first);
    return out;
}

// The messages for one field; empty when it has none.
std::vector<std::string> messages_for(const ordered_errors& errors, const std::string& field) {
    for (const auto& e : errors) {
        if (e.first == field) return e.second;
    }
    return {};
}

std::vector<std::string> one(const std::string& m) {
    return {m};
}

std::string repeat(const std::string& s, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

ordered_errors validate(const cluster_data& r) {
    return validate_record(r, {});
}

}  // namespace

TEST_CASE("a complete record and a minimal record are both valid", "[unit]") {
    CHECK(validate(valid_record()).empty());
    cluster_data minimal;
    minimal.duck_id = "D";
    minimal.topic = "t";
    minimal.message_id = "M";
    CHECK(validate(minimal).empty());
}

TEST_CASE("missing required fields are reported in rule order with Laravel's messages", "[unit]") {
    cluster_data r = valid_record();
    r.duck_id.clear();
    r.message_id.clear();
    const auto errors = validate(r);
    CHECK(fields_of(errors) == std::vector<std::string>{"duck_id", "message_id"});
    CHECK(messages_for(errors, "duck_id") == one("The duck id field is required."));
    CHECK(messages_for(errors, "message_id") == one("The message id field is required."));
    CHECK(summary_message(errors) == "The duck id field is required. (and 1 more error)");
}

TEST_CASE("a whitespace-only value is missing, as Laravel trims it", "[unit]") {
    cluster_data r = valid_record();
    r.topic = " \t\r\n";
    CHECK(messages_for(validate(r), "topic") == one("The topic field is required."));
}

TEST_CASE("the seed's body without duck_id and message_id gets the seed's exact 422 body",
          "[unit]") {
    field_errors decode_errors;
    auto decoded = record_from_json(R"({"topic":"status","payload":"x","hops":1})", &decode_errors);
    REQUIRE(decoded.is_ok());
    CHECK(validation_error_body(validate_record(*decoded, decode_errors)) ==
          R"j({"message":"The duck id field is required. (and 1 more error)","errors":)j"
          R"j({"duck_id":["The duck id field is required."],)j"
          R"j("message_id":["The message id field is required."]}})j");
}

TEST_CASE("the summary counts every remaining message, plural after one", "[unit]") {
    cluster_data r;  // all three required fields missing, and a bad hops value
    r.hops = 1LL << 40;
    const auto errors = validate(r);
    CHECK(fields_of(errors) == std::vector<std::string>{"duck_id", "topic", "message_id", "hops"});
    CHECK(summary_message(errors) == "The duck id field is required. (and 3 more errors)");
    CHECK(summary_message({{"hops", {"The hops field must be an integer."}}}) ==
          "The hops field must be an integer.");
    CHECK(summary_message({}).empty());
}

TEST_CASE("max counts characters, not bytes", "[unit]") {
    cluster_data r = valid_record();
    r.duck_id = repeat("\xC3\xA9", 255);        // 255 x 'é', 510 bytes
    r.origin = repeat("\xF0\x9F\xA6\x86", 32);  // 32 ducks (emoji), 128 bytes
    CHECK(validate(r).empty());

    r.duck_id = repeat("a", 256);
    r.origin = repeat("o", 33);
    r.destination = repeat("d", 33);
    r.source_node = repeat("n", 65);
    r.topic = repeat("t", 256);
    r.message_id = repeat("m", 256);
    const auto errors = validate(r);
    CHECK(messages_for(errors, "duck_id") ==
          one("The duck id field must not be greater than 255 characters."));
    CHECK(messages_for(errors, "topic") ==
          one("The topic field must not be greater than 255 characters."));
    CHECK(messages_for(errors, "message_id") ==
          one("The message id field must not be greater than 255 characters."));
    CHECK(messages_for(errors, "origin") ==
          one("The origin field must not be greater than 32 characters."));
    CHECK(messages_for(errors, "destination") ==
          one("The destination field must not be greater than 32 characters."));
    CHECK(messages_for(errors, "source_node") ==
          one("The source node field must not be greater than 64 characters."));
}

TEST_CASE("a path and a payload have no length limit", "[unit]") {
    cluster_data r = valid_record();
    r.path = repeat("DUCK0001,", 1000);
    r.payload = repeat("x", 100000);
    CHECK(validate(r).empty());
}

TEST_CASE("invalid UTF-8 or a NUL byte in any text field is refused", "[unit]") {
    const std::vector<std::string> bad = {
        std::string("a\0b", 3),  // NUL
        "\xFF",                  // never valid
        "\xC0\x80",              // overlong NUL
        "\xE0\x80\xAF",          // overlong '/'
        "\xED\xA0\x80",          // a UTF-16 surrogate
        "\xF4\x90\x80\x80",      // above U+10FFFF
        "\xE2\x82",              // truncated euro sign
        "ok\x80",                // a lone continuation byte
    };
    for (const auto& text : bad) {
        INFO("bytes: " << text.size());
        cluster_data r = valid_record();
        r.duck_id = text;
        r.payload = text;
        r.source_node = text;
        const auto errors = validate(r);
        CHECK(messages_for(errors, "duck_id") ==
              one("The duck id field must be valid UTF-8 text without NUL bytes."));
        CHECK(messages_for(errors, "payload") ==
              one("The payload field must be valid UTF-8 text without NUL bytes."));
        CHECK(messages_for(errors, "source_node") ==
              one("The source node field must be valid UTF-8 text without NUL bytes."));
    }
}

TEST_CASE("valid multi-byte text passes, including the largest code point", "[unit]") {
    cluster_data r = valid_record();
    r.payload = "Selamat pagi, \xE4\xBD\xA0\xE5\xA5\xBD \xF4\x8F\xBF\xBF \xEF\xBF\xBD";
    r.path = "\xED\x9F\xBF";  // U+D7FF, just below the surrogates
    CHECK(validate(r).empty());
}

TEST_CASE("hops and duck_type must fit a 32-bit signed integer", "[unit]") {
    cluster_data r = valid_record();
    r.hops = 2147483647;
    r.duck_type = -2147483648LL;
    CHECK(validate(r).empty());

    r.hops = 2147483648LL;
    r.duck_type = -2147483649LL;
    const auto errors = validate(r);
    CHECK(messages_for(errors, "hops") ==
          one("The hops field must be between -2147483648 and 2147483647."));
    CHECK(messages_for(errors, "duck_type") ==
          one("The duck type field must be between -2147483648 and 2147483647."));
}

TEST_CASE("a decode error replaces the field's other checks and keeps its rule position",
          "[unit]") {
    cluster_data r;  // duck_id empty because it was not a string
    r.topic = "status";
    r.message_id = "M";
    const field_errors decode_errors = {
        {"duck_id", {"The duck id field must be a string."}},
        {"created_at", {"The created at field must be a valid date."}},
        {"hops", {"The hops field must be an integer."}},
    };
    const auto errors = validate_record(r, decode_errors);
    CHECK(fields_of(errors) == std::vector<std::string>{"duck_id", "hops", "created_at"});
    CHECK(messages_for(errors, "duck_id") == one("The duck id field must be a string."));
    CHECK(summary_message(errors) == "The duck id field must be a string. (and 2 more errors)");
}

TEST_CASE("decode errors of fields the central ignores do not reject a record", "[unit]") {
    const field_errors decode_errors = {
        {"id", {"The id field must be an integer."}},
        {"synced", {"The synced field must be true or false."}},
        {"updated_at", {"The updated at field must be a valid date."}},
    };
    CHECK(validate_record(valid_record(), decode_errors).empty());
}

TEST_CASE("payload_encoding is null or base64, and base64 payloads must decode", "[unit]") {
    cluster_data r = valid_record();
    r.payload_encoding = "base64";
    r.payload = "aGVsbG8=";
    CHECK(validate(r).empty());
    r.payload.reset();  // nothing to decode
    CHECK(validate(r).empty());

    r.payload = "aGVsbG8";  // unpadded
    CHECK(messages_for(validate(r), "payload") ==
          one("The payload field must be valid base64 when payload_encoding is base64."));

    r.payload = "not base64!";
    r.payload_encoding = "hex";  // not base64: the payload is text and needs no decoding
    const auto errors = validate(r);
    CHECK(fields_of(errors) == std::vector<std::string>{"payload_encoding"});
    CHECK(messages_for(errors, "payload_encoding") ==
          one("The payload encoding field must be null or base64."));
    r.payload_encoding = "BASE64";
    CHECK(fields_of(validate(r)) == std::vector<std::string>{"payload_encoding"});
}

TEST_CASE("uuid must be the 36-character UUID form", "[unit]") {
    cluster_data r = valid_record();
    r.uuid = "019C9E8A-7500-7C3D-9B1E-3F0A5C2D4E61";
    CHECK(validate(r).empty());
    for (const char* bad :
         {"", "019c9e8a75007c3d9b1e3f0a5c2d4e61", "019c9e8a-7500-7c3d-9b1e-3f0a5c2d4e6g",
          "019c9e8a-7500-7c3d-9b1e-3f0a5c2d4e61 "}) {
        r.uuid = bad;
        CHECK(messages_for(validate(r), "uuid") == one("The uuid field must be a valid UUID."));
    }
}

TEST_CASE("every field failing at once is reported in the rules' order", "[unit]") {
    cluster_data r;
    r.payload = "\xFF";
    r.path = std::string(1, '\0');
    r.origin = repeat("o", 33);
    r.destination = repeat("d", 33);
    r.hops = -(1LL << 40);
    r.duck_type = 1LL << 40;
    r.payload_encoding = "gzip";
    r.uuid = "nope";
    r.source_node = repeat("n", 65);
    const field_errors decode_errors = {
        {"created_at", {"The created at field must be a valid date."}}};
    const auto errors = validate_record(r, decode_errors);
    CHECK(fields_of(errors) == std::vector<std::string>{"duck_id", "topic", "message_id", "payload",
                                                        "path", "origin", "destination", "hops",
                                                        "duck_type", "created_at",
                                                        "payload_encoding", "uuid", "source_node"});
    CHECK(summary_message(errors) == "The duck id field is required. (and 12 more errors)");
}

TEST_CASE("the 422 body escapes nothing it should not and keeps the order", "[unit]") {
    const ordered_errors errors = {
        {"topic", {"The topic field is required."}},
        {"hops", {"The hops field must be an integer."}},
    };
    CHECK(validation_error_body(errors) ==
          R"j({"message":"The topic field is required. (and 1 more error)","errors":)j"
          R"j({"topic":["The topic field is required."],)j"
          R"j("hops":["The hops field must be an integer."]}})j");
}
