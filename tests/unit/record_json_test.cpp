// The record's JSON form: what is written, what survives a round trip byte for byte, and
// how each field reports a bad value (Laravel's "errors" shape).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "opendms/record_json.hpp"

using namespace opendms;

namespace {

constexpr unix_seconds t_2026_02_27_10_00 = 1772186400;

cluster_data full_record() {
    cluster_data r;
    r.id = 42;
    r.duck_id = "DUCK0001";
    r.topic = "status";
    r.message_id = "A1B2";
    r.payload = "hello";
    r.path = "DUCK0001,PAPA0001";
    r.origin = "DUCK0001";
    r.destination = "PAPA0001";
    r.hops = 2;
    r.duck_type = 3;
    r.created_at = t_2026_02_27_10_00;
    r.updated_at = t_2026_02_27_10_00 + 1;
    r.synced = sync_state::synced;
    r.synced_at = t_2026_02_27_10_00 + 2;
    r.uuid = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
    r.source_node = "node-1";
    return r;
}

// What a wire round trip can carry: the local and sync columns are not sent.
cluster_data wire_part(cluster_data r) {
    r.id.reset();
    r.updated_at.reset();
    r.synced = sync_state::not_applicable;
    r.synced_at.reset();
    return r;
}

cluster_data decode_ok(const std::string& json) {
    field_errors errors;
    auto decoded = record_from_json(json, &errors);
    INFO(json);
    INFO(decoded.error().to_string());
    REQUIRE(decoded.is_ok());
    REQUIRE(errors.empty());
    return std::move(decoded).value();
}

void check_round_trip(const cluster_data& r) {
    CHECK(decode_ok(to_json(r, json_fields::full)) == r);
    CHECK(decode_ok(to_json(r, json_fields::wire)) == wire_part(r));
}

// Decodes `json`, expecting exactly one field error.
void check_field_error(const std::string& json, const std::string& field,
                       const std::string& message) {
    INFO(json);
    field_errors errors;
    auto decoded = record_from_json(json, &errors);
    REQUIRE_FALSE(decoded.is_ok());
    CHECK(decoded.error().code() == errc::invalid_argument);
    CHECK(decoded.error().message().find(field) != std::string::npos);
    REQUIRE(errors.size() == 1);
    REQUIRE(errors.count(field) == 1);
    REQUIRE(errors[field].size() == 1);
    CHECK(errors[field][0] == message);
}

void check_not_json_object(const std::string& json) {
    INFO("'" << json << "'");
    field_errors errors;
    auto decoded = record_from_json(json, &errors);
    REQUIRE_FALSE(decoded.is_ok());
    CHECK(decoded.error().code() == errc::invalid_argument);
    CHECK(decoded.error().message().rfind("record_from_json: ", 0) == 0);
    CHECK(errors.empty());
}

std::string all_bytes_from(int first, int last) {
    std::string s;
    for (int c = first; c <= last; ++c) s.push_back(static_cast<char>(c));
    return s;
}

}  // namespace

TEST_CASE("the wire form has the seed's fields in a fixed order and no local columns",
          "[unit]") {
    CHECK(to_json(full_record()) ==
          R"({"duck_id":"DUCK0001","topic":"status","message_id":"A1B2","payload":"hello",)"
          R"("payload_encoding":null,"path":"DUCK0001,PAPA0001","origin":"DUCK0001",)"
          R"("destination":"PAPA0001","hops":2,"duck_type":3,"created_at":"2026-02-27 10:00:00",)"
          R"("uuid":"017f22e2-79b0-7cc3-98c4-dc0c0c07398f","source_node":"node-1"})");
}

TEST_CASE("the full form adds id, updated_at, synced and synced_at", "[unit]") {
    CHECK(to_json(full_record(), json_fields::full) ==
          R"({"id":42,"duck_id":"DUCK0001","topic":"status","message_id":"A1B2",)"
          R"("payload":"hello","payload_encoding":null,"path":"DUCK0001,PAPA0001",)"
          R"("origin":"DUCK0001",)"
          R"("destination":"PAPA0001","hops":2,"duck_type":3,)"
          R"("created_at":"2026-02-27 10:00:00","uuid":"017f22e2-79b0-7cc3-98c4-dc0c0c07398f",)"
          R"("source_node":"node-1","updated_at":"2026-02-27 10:00:01","synced":true,)"
          R"("synced_at":"2026-02-27 10:00:02"})");
}

TEST_CASE("an empty record writes every optional field as null", "[unit]") {
    CHECK(to_json(cluster_data{}) ==
          R"({"duck_id":"","topic":"","message_id":"","payload":null,"payload_encoding":null,)"
          R"("path":null,"origin":null,"destination":null,"hops":null,"duck_type":null,)"
          R"("created_at":null,"uuid":null,"source_node":null})");
    CHECK(to_json(cluster_data{}, json_fields::full) ==
          R"({"id":null,"duck_id":"","topic":"","message_id":"","payload":null,)"
          R"("payload_encoding":null,"path":null,)"
          R"("origin":null,"destination":null,"hops":null,"duck_type":null,)"
          R"("created_at":null,"uuid":null,"source_node":null,"updated_at":null,)"
          R"("synced":null,"synced_at":null})");
}

TEST_CASE("payload_encoding follows payload on the wire and survives a round trip", "[unit]") {
    cluster_data r = full_record();
    r.payload = "AA==";
    r.payload_encoding = "base64";
    const std::string json = to_json(r);
    CHECK(json.find(R"("payload":"AA==","payload_encoding":"base64","path":)") !=
          std::string::npos);
    check_round_trip(r);
    CHECK(decode_ok(R"({"payload_encoding":"base64"})").payload_encoding == "base64");
    CHECK_FALSE(decode_ok(R"({"payload_encoding":null})").payload_encoding);
    CHECK_FALSE(decode_ok("{}").payload_encoding);
}

TEST_CASE("the sync state is written as null, false or true", "[unit]") {
    cluster_data r;
    r.synced = sync_state::not_applicable;
    CHECK(to_json(r, json_fields::full).find(R"("synced":null)") != std::string::npos);
    r.synced = sync_state::pending;
    CHECK(to_json(r, json_fields::full).find(R"("synced":false)") != std::string::npos);
    r.synced = sync_state::synced;
    CHECK(to_json(r, json_fields::full).find(R"("synced":true)") != std::string::npos);
    CHECK(to_json(r, json_fields::wire).find("synced") == std::string::npos);
}

TEST_CASE("a full record survives a round trip", "[unit]") {
    check_round_trip(full_record());
}

TEST_CASE("every combination of NULL columns survives a round trip", "[unit]") {
    for (unsigned mask = 0; mask < (1u << 13); ++mask) {
        cluster_data r = full_record();
        const auto drop = [mask](unsigned bit) { return (mask >> bit & 1u) != 0; };
        if (drop(0)) r.id.reset();
        if (drop(1)) r.payload.reset();
        if (drop(2)) r.path.reset();
        if (drop(3)) r.origin.reset();
        if (drop(4)) r.destination.reset();
        if (drop(5)) r.hops.reset();
        if (drop(6)) r.duck_type.reset();
        if (drop(7)) r.created_at.reset();
        if (drop(8)) r.updated_at.reset();
        if (drop(9)) r.synced_at.reset();
        if (drop(10)) r.uuid.reset();
        if (drop(11)) r.source_node.reset();
        if (!drop(12)) r.payload_encoding = "base64";
        r.synced = static_cast<sync_state>(mask % 3);
        INFO("mask " << mask);
        check_round_trip(r);
    }
}

TEST_CASE("Malay, emoji and CJK text is written as raw UTF-8 and read back", "[unit]") {
    cluster_data r = full_record();
    r.payload = "Bantuan diperlukan di Kampung Baru, air naik 2 meter! 🌊🚨 救命 助けて 도와주세요";
    r.origin = "Pusat Pemindahan Sekolah Kebangsaan Jalan Raja Muda";
    r.destination = "👩‍👩‍👧‍👦";  // ZWJ sequence
    r.path = "鸭子一号,鸭子二号";
    const std::string json = to_json(r);
    CHECK(json.find("🌊🚨 救命") != std::string::npos);
    CHECK(json.find("\\u") == std::string::npos);
    check_round_trip(r);
}

TEST_CASE("escaped unicode in incoming JSON decodes to UTF-8", "[unit]") {
    const cluster_data r = decode_ok(R"({"payload":"\u0042\u00e9\u6551\ud83c\udf0a"})");
    CHECK(r.payload == "B\xC3\xA9\xE6\x95\x91\xF0\x9F\x8C\x8A");
}

TEST_CASE("a 64 KiB string survives a round trip", "[unit]") {
    cluster_data r = full_record();
    std::string big;
    for (std::size_t i = 0; big.size() < 64 * 1024; ++i) big += static_cast<char>('a' + i % 26);
    r.payload = big;
    check_round_trip(r);
}

TEST_CASE("every control character is escaped and survives byte for byte", "[unit]") {
    const std::string controls = all_bytes_from(0x00, 0x1F) + "\x7F";
    cluster_data r = full_record();
    r.payload = controls;
    r.duck_id = std::string("DU\0CK", 5);
    r.message_id = std::string(1, '\0');
    const std::string json = to_json(r);
    for (char c : json) CHECK(static_cast<unsigned char>(c) >= 0x20);
    CHECK(json.find(R"("message_id":"\u0000")") != std::string::npos);
    CHECK(json.find(R"(\b\t\n\u000B\f\r)") != std::string::npos);
    check_round_trip(r);
    CHECK(decode_ok(json).payload->size() == controls.size());
}

TEST_CASE("bytes 0x80-0xFF (invalid UTF-8) are copied raw and survive byte for byte",
          "[unit]") {
    // RapidJSON's Writer does not validate: each byte is copied as it is, unescaped.
    const std::string high = all_bytes_from(0x80, 0xFF);
    cluster_data r = full_record();
    r.payload = high;
    r.origin = "\xC3";                // a truncated two-byte sequence
    r.destination = "\xED\xA0\x80";   // an encoded surrogate
    r.path = "ok,\xFF\xFE,\xC0\xAF";  // BOM bytes, an overlong '/'
    r.source_node = std::string("\0\x80\xFF", 3);
    const std::string json = to_json(r);
    CHECK(json.find(R"("payload":")" + high + "\"") != std::string::npos);
    check_round_trip(r);
    CHECK(*decode_ok(json).payload == high);
}

TEST_CASE("a required string may hold any byte", "[unit]") {
    cluster_data r;
    r.duck_id = all_bytes_from(0x00, 0xFF);
    r.topic = "\"\\/";
    CHECK(decode_ok(to_json(r)) == r);
}

TEST_CASE("SQL metacharacters are plain text", "[unit]") {
    cluster_data r = full_record();
    r.payload = "'; DROP TABLE cluster_data; -- \" ` \\ % _ $1 ? :name /* */ \\x27 E'\\n'";
    r.duck_id = "O'Brien";
    r.topic = "a\\\"b";
    r.message_id = "%_*?";
    check_round_trip(r);
}

TEST_CASE("the seed's Laravel JSON is accepted: integers and Carbon times", "[unit]") {
    const cluster_data r = decode_ok(
        R"({"id":9,"duck_id":"DUCK0001","topic":"gps","message_id":"Z9Z9","payload":"x",)"
        R"("path":null,"hops":4,"duck_type":2,"created_at":"2026-02-27T10:00:00.000000Z",)"
        R"("updated_at":"2026-02-27T10:00:00.000000Z","synced":1,"synced_at":null})");
    CHECK(r.id == 9);
    CHECK(r.hops == 4);
    CHECK(r.duck_type == 2);
    CHECK(r.created_at == t_2026_02_27_10_00);
    CHECK(r.updated_at == t_2026_02_27_10_00);
    CHECK(r.synced == sync_state::synced);
    CHECK_FALSE(r.path);
    CHECK_FALSE(r.origin);
}

TEST_CASE("times are read in every form parse_time accepts", "[unit]") {
    for (const char* t : {"2026-02-27 10:00:00", "2026-02-27T10:00:00Z",
                          "2026-02-27T18:00:00+08:00", "2026-02-27T10:00:00.5"}) {
        const cluster_data r = decode_ok(std::string(R"({"created_at":")") + t + "\"}");
        INFO(t);
        CHECK(r.created_at == t_2026_02_27_10_00);
    }
}

TEST_CASE("integer fields accept integer strings as Laravel's integer rule does", "[unit]") {
    CHECK(decode_ok(R"({"hops":"3"})").hops == 3);
    CHECK(decode_ok(R"({"hops":"0"})").hops == 0);
    CHECK(decode_ok(R"({"hops":"-1"})").hops == -1);
    CHECK(decode_ok(R"({"hops":"+7"})").hops == 7);
    CHECK(decode_ok(R"({"duck_type":"9223372036854775807"})").duck_type == INT64_MAX);
    CHECK(decode_ok(R"({"duck_type":"-9223372036854775808"})").duck_type == INT64_MIN);
    CHECK(decode_ok(R"({"id":"12"})").id == 12);
    CHECK(decode_ok(R"({"hops":3.0})").hops == 3);
    CHECK(decode_ok(R"({"hops":1e2})").hops == 100);
    CHECK(decode_ok(R"({"hops":-0})").hops == 0);
    CHECK(decode_ok(R"({"duck_type":-9223372036854775808})").duck_type == INT64_MIN);
}

TEST_CASE("a bad integer is reported against its field", "[unit]") {
    const std::string hops = "The hops field must be an integer.";
    for (const char* v : {"3.5", "true", "false", R"("abc")", R"("3.5")", R"("")", R"(" 3")",
                          R"("3 ")", R"("03")", R"("1e2")", R"("0x1F")", R"("-")", "[]", "{}",
                          "[3]", R"("9223372036854775808")", R"("-9223372036854775809")",
                          "9223372036854775808", "18446744073709551615",
                          "9007199254740994.0", "1e300"}) {
        check_field_error(std::string(R"({"hops":)") + v + "}", "hops", hops);
    }
    check_field_error(R"({"duck_type":"x"})", "duck_type",
                      "The duck type field must be an integer.");
    check_field_error(R"({"id":1.25})", "id", "The id field must be an integer.");
}

TEST_CASE("a number, boolean, array or object is not a string", "[unit]") {
    const std::vector<std::pair<std::string, std::string>> fields = {
        {"duck_id", "duck id"}, {"topic", "topic"},   {"message_id", "message id"},
        {"payload", "payload"}, {"payload_encoding", "payload encoding"},
        {"path", "path"},       {"origin", "origin"},
        {"destination", "destination"}, {"uuid", "uuid"}, {"source_node", "source node"},
    };
    for (const auto& [field, label] : fields) {
        for (const char* v : {"1234", "1.5", "true", "[\"a\"]", "{\"a\":1}"}) {
            check_field_error("{\"" + field + "\":" + v + "}", field,
                              "The " + label + " field must be a string.");
        }
    }
}

TEST_CASE("a bad time is reported against its field", "[unit]") {
    for (const char* v : {R"("2026-02-30 10:00:00")", R"("yesterday")", R"("")", "1772186400",
                          "true", R"("2026-02-27 10:00:60")", "[]"}) {
        check_field_error(std::string(R"({"created_at":)") + v + "}", "created_at",
                          "The created at field must be a valid date.");
    }
    check_field_error(R"({"updated_at":"x"})", "updated_at",
                      "The updated at field must be a valid date.");
    check_field_error(R"({"synced_at":1})", "synced_at",
                      "The synced at field must be a valid date.");
}

TEST_CASE("synced accepts null, booleans and 0/1", "[unit]") {
    CHECK(decode_ok(R"({"synced":null})").synced == sync_state::not_applicable);
    CHECK(decode_ok(R"({"synced":false})").synced == sync_state::pending);
    CHECK(decode_ok(R"({"synced":true})").synced == sync_state::synced);
    CHECK(decode_ok(R"({"synced":0})").synced == sync_state::pending);
    CHECK(decode_ok(R"({"synced":1})").synced == sync_state::synced);
    CHECK(decode_ok(R"({"synced":"0"})").synced == sync_state::pending);
    CHECK(decode_ok(R"({"synced":"1"})").synced == sync_state::synced);
    CHECK(decode_ok(R"({})").synced == sync_state::not_applicable);
    for (const char* v : {"2", "-1", "0.0", "1.0", R"("true")", R"("yes")", R"("")", "[]"}) {
        check_field_error(std::string(R"({"synced":)") + v + "}", "synced",
                          "The synced field must be true or false.");
    }
}

TEST_CASE("every bad field is reported at once", "[unit]") {
    field_errors errors;
    auto decoded =
        record_from_json(R"({"hops":"x","duck_type":true,"created_at":"no","topic":5})", &errors);
    REQUIRE_FALSE(decoded.is_ok());
    CHECK(errors.size() == 4);
    CHECK(errors.count("hops") == 1);
    CHECK(errors.count("duck_type") == 1);
    CHECK(errors.count("created_at") == 1);
    CHECK(errors.count("topic") == 1);
    CHECK(decoded.error().message() ==
          "record_from_json: invalid field(s): created_at, duck_type, hops, topic");
}

TEST_CASE("errors can be ignored, and a reused error map is cleared first", "[unit]") {
    CHECK_FALSE(record_from_json(R"({"hops":"x"})").is_ok());
    field_errors errors;
    errors["stale"].push_back("from an earlier call");
    CHECK(record_from_json(R"({"hops":1})", &errors).is_ok());
    CHECK(errors.empty());
}

TEST_CASE("missing or null required strings are left empty for the validator", "[unit]") {
    const cluster_data none = decode_ok("{}");
    CHECK(none == cluster_data{});
    const cluster_data nulls = decode_ok(R"({"duck_id":null,"topic":null,"message_id":null})");
    CHECK(nulls.duck_id.empty());
    CHECK(nulls.topic.empty());
    CHECK(nulls.message_id.empty());
}

TEST_CASE("unknown fields are ignored, whatever they hold", "[unit]") {
    const cluster_data r = decode_ok(
        R"({"duck_id":"D1","extra":{"nested":[1,2,{"x":null}]},"HOPS":"bad",)"
        R"("hops ":"bad","eventType":"alert","duckId":7})");
    CHECK(r.duck_id == "D1");
    CHECK_FALSE(r.hops);
    CHECK(r.topic.empty());
    // A key with an embedded NUL is not "hops".
    CHECK_FALSE(decode_ok(R"({"hops\u0000":"bad"})").hops);
}

TEST_CASE("with duplicate keys the last one wins", "[unit]") {
    CHECK(decode_ok(R"({"hops":1,"hops":2})").hops == 2);
    CHECK_FALSE(decode_ok(R"({"hops":1,"hops":null})").hops);
    CHECK(decode_ok(R"({"hops":"bad","hops":3})").hops == 3);  // the earlier error is dropped
    CHECK(decode_ok(R"({"synced":true,"synced":null})").synced == sync_state::not_applicable);
    check_field_error(R"({"hops":3,"hops":"bad"})", "hops", "The hops field must be an integer.");
}

TEST_CASE("a top level that is not an object is rejected", "[unit]") {
    for (const char* json : {"[]", R"([{"duck_id":"D1"}])", R"("text")", "1", "null", "true"})
        check_not_json_object(json);
    CHECK(record_from_json("[]").error().message() ==
          "record_from_json: the body must be a JSON object");
}

TEST_CASE("text that is not JSON is rejected with the offset", "[unit]") {
    for (const char* json : {"", " ", "{", "}", "{duck_id:1}", "{'duck_id':'x'}",
                             R"({"duck_id":"x",})", R"({"payload":"a)" "\x01" R"(b"})",
                             R"({"payload":"\x"})", R"({"payload":"\ud800"})", "NaN",
                             R"({"hops":1e400})", R"({"hops":01})"}) {
        check_not_json_object(json);
    }
    CHECK(record_from_json("{,}").error().message().find("offset 1") != std::string::npos);
}

TEST_CASE("every truncation of a valid record is rejected", "[unit]") {
    const std::string json = to_json(full_record(), json_fields::full);
    for (std::size_t n = 0; n < json.size(); ++n) check_not_json_object(json.substr(0, n));
    CHECK(decode_ok(json) == full_record());
}

TEST_CASE("trailing garbage after the object is rejected", "[unit]") {
    for (const std::string& json :
         {std::string("{} x"), std::string("{}{}"), std::string("{},"), std::string("{}]"),
          std::string("{}\0", 3), std::string("{}\0garbage", 10), std::string("{} \0 {}", 6),
          std::string("{\"duck_id\":\"a\"}\"b\"")}) {
        check_not_json_object(json);
    }
    CHECK(decode_ok(" \t\r\n{} \t\r\n").duck_id.empty());
}

TEST_CASE("an empty or default-constructed view is rejected", "[unit]") {
    check_not_json_object(std::string());
    const auto decoded = record_from_json(std::string_view{});
    REQUIRE_FALSE(decoded.is_ok());
    CHECK(decoded.error().message() ==
          "record_from_json: invalid JSON at offset 0: The document is empty.");
}

TEST_CASE("a NUL byte inside the text is rejected with its offset", "[unit]") {
    const auto decoded = record_from_json(std::string("{\"duck_id\":\"a\0b\"}", 17));
    REQUIRE_FALSE(decoded.is_ok());
    CHECK(decoded.error().message() ==
          "record_from_json: invalid JSON at offset 13: a NUL byte");
}

TEST_CASE("decoding reads only the view, not past its end", "[unit]") {
    const std::string text = R"({"hops":1}{"hops":2})";
    const auto decoded = record_from_json(std::string_view(text).substr(0, 10));
    REQUIRE(decoded.is_ok());
    CHECK(decoded->hops == 1);
}

// ---- regressions found by fuzzing (tests/fuzz/fuzz_ingest_request.cpp) ----

TEST_CASE("fuzz: a zero with a large exponent reads as 0, not as RapidJSON's garbage",
          "[unit]") {
    // RapidJSON 1.1.0's full-precision path read 0e308 as -6.06e-269 (clz of 0 inside):
    // a valid integral hops was then "not an integer".
    CHECK(decode_ok(R"({"hops":0e308})").hops == 0);
    CHECK(decode_ok(R"({"hops":0.0e-300})").hops == 0);
    CHECK(decode_ok(R"({"duck_type":-0e301})").duck_type == 0);
    CHECK(decode_ok(R"({"hops":2147483647.0})").hops == 2147483647);
}
