// The gateway message parser: every sample in tests/data/samples.jsonl, then the edge cases
// of each rule in docs/gateway-messages.md (shapes, tolerance, mapping, rejections).
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "opendms/base64.hpp"
#include "opendms/central/record_validator.hpp"
#include "opendms/field/gateway_message_parser.hpp"

using namespace opendms;
using namespace opendms::field;

namespace {

const std::string default_head = R"("eventType":"status","MessageID":"AB12")";
const std::string default_body = R"("hops":1,"duckType":2,"DeviceID":"DUCK0001")";

parse_result parse(std::string_view raw, std::string_view topic = "hub/event",
                   const parse_limits& limits = {}) {
    return parse_gateway_message(topic, raw, limits);
}

cluster_data parse_ok(std::string_view raw, std::string_view topic = "hub/event",
                      const parse_limits& limits = {}) {
    const parse_result p = parse(raw, topic, limits);
    INFO("raw: " << raw.substr(0, 300));
    INFO("reason: " << p.reason);
    REQUIRE(p.ok);
    CHECK(p.reason.empty());
    return p.record;
}

std::string rejected(std::string_view raw, std::string_view topic = "hub/event",
                     const parse_limits& limits = {}) {
    const parse_result p = parse(raw, topic, limits);
    INFO("raw: " << raw.substr(0, 300));
    REQUIRE_FALSE(p.ok);
    REQUIRE_FALSE(p.reason.empty());
    return p.reason;
}

bool starts_with(const std::string& s, std::string_view prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

// A 5.x envelope: {"from","to","RE", <head>, "payload":{<body>}}.
std::string envelope(const std::string& body, const std::string& head = default_head) {
    return R"({"from":"hub","to":"controller","RE":false,)" + head + R"(,"payload":{)" + body +
           "}}";
}

// The default payload plus more members (each starting with a comma).
std::string with_body(const std::string& more) {
    return envelope(default_body + more);
}

// The default envelope with `message_json` (a JSON value) as Message.
std::string with_message(const std::string& message_json, const std::string& more = "") {
    return with_body(R"(,"Message":)" + message_json + more);
}

// ---- the samples file ----

std::optional<std::string> optional_string(const rapidjson::Value& expect, const char* key) {
    const auto it = expect.FindMember(key);
    if (it == expect.MemberEnd() || it->value.IsNull()) return std::nullopt;
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::optional<std::int64_t> optional_int(const rapidjson::Value& expect, const char* key) {
    const auto it = expect.FindMember(key);
    if (it == expect.MemberEnd() || it->value.IsNull()) return std::nullopt;
    return it->value.GetInt64();
}

struct sample {
    std::string id;
    std::string topic;
    std::string raw;
    rapidjson::Document doc;  // holds "expect"
};

std::vector<std::unique_ptr<sample>> load_samples() {
    std::ifstream in(OPENDMS_SOURCE_DIR "/tests/data/samples.jsonl");
    REQUIRE(in.good());
    std::vector<std::unique_ptr<sample>> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        auto s = std::make_unique<sample>();
        s->doc.Parse(line.data(), line.size());
        INFO(line);
        REQUIRE_FALSE(s->doc.HasParseError());
        s->id = s->doc["id"].GetString();
        s->topic = s->doc["mqtt_topic"].GetString();
        if (s->doc.HasMember("raw")) {
            s->raw.assign(s->doc["raw"].GetString(), s->doc["raw"].GetStringLength());
        } else {
            auto decoded = base64_decode(s->doc["raw_b64"].GetString());
            REQUIRE(decoded.is_ok());
            s->raw = std::move(decoded).value();
        }
        out.push_back(std::move(s));
    }
    return out;
}

// expect.message is the data as text (base64-wrapped text decoded), or null; with
// message_encoding "base64" and message null the data is binary: our record then keeps
// the original base64 in payload and says payload_encoding "base64".
void check_message(const rapidjson::Value& expect, const cluster_data& r) {
    const std::optional<std::string> message = optional_string(expect, "message");
    const std::optional<std::string> encoding = optional_string(expect, "message_encoding");
    if (message) {
        CHECK(r.payload == message);
        CHECK_FALSE(r.payload_encoding);
    } else if (encoding == "base64") {
        CHECK(r.payload_encoding == "base64");
        REQUIRE(r.payload);
        CHECK(base64_decode(*r.payload).is_ok());
    } else {
        CHECK_FALSE(r.payload);
        CHECK_FALSE(r.payload_encoding);
    }
}

void check_stored(const rapidjson::Value& expect, const parse_result& p) {
    INFO("reason: " << p.reason);
    REQUIRE(p.ok);
    const cluster_data& r = p.record;
    CHECK(r.duck_id == optional_string(expect, "duck_id").value_or("<null>"));
    CHECK(r.topic == optional_string(expect, "topic").value_or("<null>"));
    CHECK(r.message_id == optional_string(expect, "message_id").value_or("<null>"));
    CHECK(r.hops == optional_int(expect, "hops"));
    CHECK(r.duck_type == optional_int(expect, "duck_type"));
    CHECK(r.path == optional_string(expect, "path"));
    CHECK(r.origin == optional_string(expect, "origin"));
    CHECK(r.destination == optional_string(expect, "destination"));
    check_message(expect, r);
}

// A rejected message: the reason says the same thing as the sample's (the samples' texts
// for JSON errors are summaries: ours carry RapidJSON's offset and message), and the
// identity fields that could be read are reported for the log.
void check_not_stored(const rapidjson::Value& expect, const parse_result& p) {
    REQUIRE_FALSE(p.ok);
    REQUIRE_FALSE(p.reason.empty());
    if (const std::optional<std::string> reason = optional_string(expect, "reason")) {
        if (starts_with(*reason, "invalid JSON"))
            CHECK(starts_with(p.reason, "invalid JSON"));
        else
            CHECK(p.reason == *reason);
    }
    CHECK(p.record.duck_id == optional_string(expect, "duck_id").value_or(""));
    CHECK(p.record.topic == optional_string(expect, "topic").value_or(""));
    CHECK(p.record.message_id == optional_string(expect, "message_id").value_or(""));
}

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

}  // namespace

TEST_CASE("every sample message meets its expectations", "[unit]") {
    const auto samples = load_samples();
    REQUIRE(samples.size() >= 13);
    for (const auto& s : samples) {
        INFO("sample " << s->id);
        const rapidjson::Value& expect = s->doc["expect"];
        const parse_result p = parse(s->raw, s->topic);
        if (expect["stored"].GetBool())
            check_stored(expect, p);
        else
            check_not_stored(expect, p);

        const std::optional<std::string> original = optional_string(expect, "mesh_duplicate_of");
        if (!original) continue;
        for (const auto& other : samples) {
            if (other->id != *original) continue;
            const parse_result first = parse(other->raw, other->topic);
            REQUIRE(first.ok);
            CHECK(first.record.duck_id == p.record.duck_id);
            CHECK(first.record.message_id == p.record.message_id);
            CHECK(first.record.payload == p.record.payload);
            CHECK(first.record.payload_encoding == p.record.payload_encoding);
        }
    }
}

TEST_CASE("sample S18's single zero byte is kept as its original base64", "[unit]") {
    for (const auto& s : load_samples()) {
        if (s->id != "S18") continue;
        const cluster_data r = parse_ok(s->raw, s->topic);
        CHECK(r.payload == "AA==");
        CHECK(r.payload_encoding == "base64");
        return;
    }
    FAIL("sample S18 not found");
}

// ---- robustness ----

TEST_CASE("every truncation of a valid message is rejected with a reason, never a crash",
          "[unit]") {
    const std::vector<std::string> messages = {
        with_message(R"("MSG,TEXT:Air naik \"paras\" lutut\n\u00e9")",
                     R"(,"path":["A","B"],"origin":"X","encoding":"none")"),
        with_message("\"raw\x01"
                     "control\x1F"
                     "bytes \xFF\xFE\"",
                     R"(,"hops":"3")"),
        R"({"DeviceID":"MAMA0001","MessageID":"k2m9x0qa","Payload":"Counter:17","path":"A,B"})",
    };
    for (const std::string& raw : messages) {
        REQUIRE(parse(raw).ok);
        for (std::size_t n = 0; n < raw.size(); ++n) {
            const parse_result p = parse(std::string_view(raw).substr(0, n));
            INFO("cut at " << n << ": " << raw.substr(0, n));
            CHECK_FALSE(p.ok);
            CHECK((starts_with(p.reason, "invalid JSON") || p.reason == "empty message"));
        }
    }
}

TEST_CASE("random corruptions never crash and always give a record or a reason", "[unit]") {
    const std::string base = with_message(R"("SOS,LAT:5.53,LNG:102.2")",
                                          R"(,"path":"[\"A\",\"B\"]","encoding":"base64")");
    std::mt19937 rng(20261125);  // fixed: the same cases every run
    std::uniform_int_distribution<int> byte(0, 255);
    for (int round = 0; round < 3000; ++round) {
        std::string raw = base;
        const int edits = 1 + round % 4;
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = static_cast<std::size_t>(byte(rng)) * raw.size() / 256;
            const char c = static_cast<char>(byte(rng));
            if (round % 3 == 0)
                raw.insert(at, 1, c);
            else if (round % 3 == 1)
                raw[at] = c;
            else
                raw.erase(at, 1);
        }
        const parse_result p = parse(raw);
        INFO(raw);
        CHECK((p.ok ? p.reason.empty() : !p.reason.empty()));
        if (p.ok) CHECK_FALSE(p.record.duck_id.empty());
    }
}

TEST_CASE("a message over the size cap is rejected with its size and the cap", "[unit]") {
    const std::string big = with_message("\"" + std::string(1024 * 1024, 'x') + "\"");
    CHECK(rejected(big) ==
          "message too large (" + std::to_string(big.size()) + " bytes, limit 16384)");
    parse_limits raised;
    raised.max_bytes = 2 * 1024 * 1024;
    const cluster_data r = parse_ok(big, "hub/event", raised);
    CHECK(r.payload->size() == 1024 * 1024);
}

TEST_CASE("a message exactly at the cap is accepted, one byte more is not", "[unit]") {
    const std::string raw = with_message(R"("hello")");
    parse_limits limits;
    limits.max_bytes = raw.size();
    CHECK(parse(raw, "hub/event", limits).ok);
    limits.max_bytes = raw.size() - 1;
    CHECK(starts_with(rejected(raw, "hub/event", limits), "message too large"));
}

TEST_CASE("an empty message is rejected", "[unit]") {
    CHECK(rejected("") == "empty message");
    CHECK(rejected(std::string_view{}) == "empty message");
    CHECK(starts_with(rejected(" \r\n"), "invalid JSON at offset"));
}

TEST_CASE("a top level that is not a JSON object is rejected", "[unit]") {
    for (const char* raw : {"[]", R"(["DeviceID"])", R"("text")", "42", "null", "true"})
        CHECK(rejected(raw) == "top level is not a JSON object");
}

TEST_CASE("text that is not JSON is rejected with the offset of the problem", "[unit]") {
    CHECK(rejected("{,}") == "invalid JSON at offset 1: Missing a name for object member.");
    CHECK(starts_with(rejected(with_message(R"("a")") + " x"), "invalid JSON at offset"));
    CHECK(starts_with(rejected(with_message(R"("a")") + "{}"), "invalid JSON"));
    CHECK(starts_with(rejected("SOS please help"), "invalid JSON at offset 0"));
    CHECK(starts_with(rejected(with_message(R"("bad \x escape")")), "invalid JSON"));
}

TEST_CASE("the offset of a JSON error counts the original bytes, not inserted escapes", "[unit]") {
    // Three raw control bytes before the error would shift it by 15 if not mapped back.
    const std::string raw = "{\"a\":\"\x01\x02\x03\",}";
    CHECK(rejected(raw) == "invalid JSON at offset 11: Missing a name for object member.");
}

TEST_CASE("NUL padding after the object is accepted, NUL before more text is not", "[unit]") {
    const std::string raw = with_message(R"("hi")");
    CHECK(parse_ok(raw + std::string(1, '\0')).payload == "hi");
    CHECK(parse_ok(raw + std::string("\0\0 \n\0", 5)).payload == "hi");
    CHECK(rejected(raw + std::string("\0x", 2)) ==
          "invalid JSON at offset " + std::to_string(raw.size()) + ": a NUL byte outside a string");
    CHECK(starts_with(rejected(std::string("\0", 1)), "invalid JSON at offset 0"));
    CHECK(starts_with(rejected(std::string("{\0}", 3)), "invalid JSON at offset 1"));
}

TEST_CASE("a UTF-8 byte order mark before the object is skipped", "[unit]") {
    CHECK(parse_ok("\xEF\xBB\xBF" + with_message(R"("hi")")).payload == "hi");
    CHECK(rejected("\xEF\xBB\xBF{,}") ==
          "invalid JSON at offset 4: Missing a name for object member.");
}

TEST_CASE("deeply nested JSON neither overflows the stack nor is refused for depth alone",
          "[unit]") {
    const std::size_t depth = 200000;
    parse_limits limits;
    limits.max_bytes = 4 * 1024 * 1024;
    const std::string nested = repeat("[", depth) + repeat("]", depth);
    const cluster_data r =
        parse_ok(with_message(R"("ok")", R"(,"extra":)" + nested), "hub/event", limits);
    CHECK(r.payload == "ok");
    CHECK(starts_with(rejected(with_body(R"(,"extra":)" + repeat("[", depth)), "hub/event", limits),
                      "invalid JSON"));
    CHECK(starts_with(rejected(repeat("{\"a\":", depth), "hub/event", limits), "invalid JSON"));
}

TEST_CASE("a Message given as a JSON value nested deeper than 64 levels is rejected", "[unit]") {
    const std::string deep = repeat("[", 65) + repeat("]", 65);
    CHECK(rejected(with_message(deep)) == "Message is nested deeper than 64 levels");
    const std::string ok = repeat("[", 64) + repeat("]", 64);
    CHECK(parse_ok(with_message(ok)).payload == ok);
}

// ---- numbers ----

TEST_CASE("hops given as a string or an integral number is read", "[unit]") {
    const std::vector<std::pair<std::string, std::int64_t>> cases = {
        {"2", 2},       {R"("2")", 2},   {R"(" 7 ")", 7}, {"2.0", 2},   {"1e2", 100},
        {R"("+3")", 3}, {R"("007")", 7}, {"0", 0},        {"255", 255}, {"-0", 0},
    };
    for (const auto& [json, hops] : cases) {
        INFO(json);
        CHECK(parse_ok(envelope(R"("DeviceID":"D1","Message":"m","hops":)" + json)).hops == hops);
    }
}

TEST_CASE("hops outside 0..255 or not an integer is NULL and the message is kept", "[unit]") {
    for (const char* json :
         {"256", "-1", R"("x")", "2.5", "true", "null", "[]", "{}", R"("")", R"("2x")", R"("1e2")",
          "1e300", "18446744073709551615", R"("99999999999999999999")", R"("-")"}) {
        INFO(json);
        const cluster_data r =
            parse_ok(envelope(std::string(R"("DeviceID":"D1","Message":"SOS","hops":)") + json));
        CHECK_FALSE(r.hops);
        CHECK(r.payload == "SOS");
    }
}

TEST_CASE("duckType follows the rules of hops and also accepts the type names", "[unit]") {
    const auto duck_type = [](const std::string& json) {
        return parse_ok(envelope(R"("DeviceID":"D1","duckType":)" + json)).duck_type;
    };
    CHECK(duck_type("4") == 4);
    CHECK(duck_type(R"("3")") == 3);
    CHECK(duck_type(R"("MamaDuck")") == 2);
    CHECK(duck_type(R"("papaduck")") == 1);
    CHECK(duck_type(R"(" DuckLink ")") == 3);
    CHECK(duck_type(R"("Detector")") == 4);
    CHECK(duck_type("9") == 9);  // a type we do not know yet is still a byte
    CHECK_FALSE(duck_type("256"));
    CHECK_FALSE(duck_type("-2"));
    CHECK_FALSE(duck_type(R"("Goose")"));
    CHECK_FALSE(duck_type("false"));
    CHECK_FALSE(parse_ok(envelope(R"("DeviceID":"D1")")).duck_type);
}

// ---- identity fields ----

TEST_CASE("a missing, null or empty DeviceID cannot become a record", "[unit]") {
    CHECK(rejected(envelope(R"("hops":1,"Message":"SOS")")) == "DeviceID is missing");
    CHECK(rejected(envelope(R"("DeviceID":null,"Message":"SOS")")) == "DeviceID is missing");
    CHECK(rejected(envelope(R"("DeviceID":"","Message":"SOS")")) == "DeviceID is empty");
}

TEST_CASE("a DeviceID of 1 to 32 characters is kept as it is, 33 is rejected", "[unit]") {
    CHECK(parse_ok(envelope(R"("DeviceID":"D")")).duck_id == "D");
    const std::string max(32, 'A');
    CHECK(parse_ok(envelope(R"("DeviceID":")" + max + "\"")).duck_id == max);
    CHECK(rejected(envelope(R"("DeviceID":")" + max + "B\"")) ==
          "DeviceID is longer than 32 characters (33)");
    const std::string cjk = repeat("\xE9\xB8\xAD", 32);  // 32 characters, 96 bytes
    CHECK(parse_ok(envelope(R"("DeviceID":")" + cjk + "\"")).duck_id == cjk);
    CHECK(parse_ok(envelope(R"("DeviceID":" DUCK 1 ")")).duck_id == " DUCK 1 ");
}

TEST_CASE("a DeviceID given as a number is its decimal text; other types are rejected", "[unit]") {
    CHECK(parse_ok(envelope(R"("DeviceID":12345678)")).duck_id == "12345678");
    for (const char* json : {"true", "[\"D1\"]", "{\"id\":\"D1\"}", "1.5"}) {
        INFO(json);
        CHECK(rejected(envelope(std::string(R"("DeviceID":)") + json)) ==
              "DeviceID is not a string");
    }
}

TEST_CASE("a missing, empty or non-string MessageID cannot become a record", "[unit]") {
    const std::string body = R"("DeviceID":"D1","Message":"SOS")";
    CHECK(rejected(envelope(body, R"("eventType":"alert")")) == "MessageID is missing");
    CHECK(rejected(envelope(body, R"("eventType":"alert","MessageID":"")")) ==
          "MessageID is empty");
    CHECK(rejected(envelope(body, R"("eventType":"alert","MessageID":["A"])")) ==
          "MessageID is not a string");
    CHECK(parse_ok(envelope(body, R"("eventType":"alert","MessageID":1234)")).message_id == "1234");
}

TEST_CASE("a missing, empty or non-string eventType cannot become a record", "[unit]") {
    const std::string body = R"("DeviceID":"D1","Message":"SOS")";
    CHECK(rejected(envelope(body, R"("MessageID":"AB12")")) == "eventType is missing");
    CHECK(rejected(envelope(body, R"("eventType":"","MessageID":"AB12")")) == "eventType is empty");
    CHECK(rejected(envelope(body, R"("eventType":{},"MessageID":"AB12")")) ==
          "eventType is not a string");
    CHECK(parse_ok(envelope(body, R"("eventType":7,"MessageID":"AB12")")).topic == "7");
}

TEST_CASE("a MessageID or eventType longer than 255 characters is rejected", "[unit]") {
    const std::string body = R"("DeviceID":"D1")";
    const std::string max(255, 'm');
    CHECK(parse_ok(envelope(body, R"("eventType":"x","MessageID":")" + max + "\"")).message_id ==
          max);
    CHECK(rejected(envelope(body, R"("eventType":"x","MessageID":")" + max + "m\"")) ==
          "MessageID is longer than 255 characters (256)");
    CHECK(rejected(envelope(body, R"("eventType":")" + max + "e\",\"MessageID\":\"A\"")) ==
          "eventType is longer than 255 characters (256)");
}

TEST_CASE("a rejected message reports the identity fields it could read", "[unit]") {
    const parse_result p = parse(envelope(R"("DeviceID":"","Message":"x")"));
    REQUIRE_FALSE(p.ok);
    CHECK(p.reason == "DeviceID is empty");
    CHECK(p.record.topic == "status");
    CHECK(p.record.message_id == "AB12");
    CHECK(p.record.duck_id.empty());

    const parse_result q = parse(envelope(R"("DeviceID":"D9")", R"("MessageID":"Q1")"));
    REQUIRE_FALSE(q.ok);
    CHECK(q.reason == "eventType is missing");
    CHECK(q.record.duck_id == "D9");
    CHECK(q.record.message_id == "Q1");
}

TEST_CASE("keys are matched exactly: deviceid is not DeviceID", "[unit]") {
    CHECK(rejected(envelope(R"("deviceid":"D1","Message":"x")")) == "DeviceID is missing");
    CHECK(rejected(envelope(R"("DeviceID":"D1")", R"("eventtype":"x","MessageID":"A")")) ==
          "eventType is missing");
}

TEST_CASE("with a repeated key the last one wins", "[unit]") {
    const cluster_data r =
        parse_ok(envelope(R"("DeviceID":"OLD","DeviceID":"NEW","hops":1,"hops":4,"Message":"a",)"
                          R"("Message":"b")",
                          R"("eventType":"status","eventType":"alert","MessageID":"AB12")"));
    CHECK(r.duck_id == "NEW");
    CHECK(r.hops == 4);
    CHECK(r.payload == "b");
    CHECK(r.topic == "alert");
}

TEST_CASE("the parser sets no times, ids or sync state", "[unit]") {
    const cluster_data r = parse_ok(with_message(R"("x")"));
    CHECK_FALSE(r.id);
    CHECK_FALSE(r.created_at);
    CHECK_FALSE(r.updated_at);
    CHECK_FALSE(r.uuid);
    CHECK_FALSE(r.source_node);
    CHECK(r.synced == sync_state::not_applicable);
}

// ---- path, origin, destination ----

TEST_CASE("a path array of strings and numbers is comma-joined", "[unit]") {
    const auto path = [](const std::string& json) {
        return parse_ok(with_body(R"(,"path":)" + json)).path;
    };
    CHECK(path(R"(["A","B","C"])") == "A,B,C");
    CHECK(path(R"([" A ","B "])") == "A,B");
    CHECK(path(R"(["A",7,2.5])") == "A,7,2.5");
    CHECK(path(R"(["A",null,"",{"x":1},["y"],true,"B"])") == "A,B");
    CHECK(path(R"(["A","ERROR: Non-printable character","B"])") == "A,B");
    CHECK(path("42") == "42");
}

TEST_CASE("a path given as a JSON array inside a string is parsed and joined", "[unit]") {
    const auto path = [](const std::string& json) {
        return parse_ok(with_body(R"(,"path":)" + json)).path;
    };
    CHECK(path(R"("[\"KAMPUNG1\",\"RELAY007\"]")") == "KAMPUNG1,RELAY007");
    CHECK(path(R"(" [\"A\", 5] ")") == "A,5");
    CHECK(path(R"("[\"A\",\"B\"")") == "[\"A\",\"B\"");  // not JSON: kept as a comma string
    CHECK(path(R"("[A,B]")") == "[A,B]");
}

TEST_CASE("a plain comma path is kept with spaces around items trimmed", "[unit]") {
    const auto path = [](const std::string& json) {
        return parse_ok(with_body(R"(,"path":)" + json)).path;
    };
    CHECK(path(R"("MAMA0001,MAMA0002,PAPADUCK")") == "MAMA0001,MAMA0002,PAPADUCK");
    CHECK(path(R"(" A , B ,C ")") == "A,B,C");
    CHECK(path(R"("A,,B,")") == "A,B");
    CHECK(path(R"("MAMA0001MAMA0002")") == "MAMA0001MAMA0002");
}

TEST_CASE("an empty or absent path, in any form, is NULL", "[unit]") {
    CHECK_FALSE(parse_ok(with_body("")).path);
    for (const char* json :
         {"[]", R"("")", R"("[]")", R"(" , ")", "null", "{}", "true", R"([null,""])"}) {
        INFO(json);
        CHECK_FALSE(parse_ok(with_body(std::string(R"(,"path":)") + json)).path);
    }
}

TEST_CASE("the non-printable sentinel in origin or destination is NULL", "[unit]") {
    const cluster_data r = parse_ok(with_body(R"(,"origin":"ERROR: Non-printable character",)"
                                              R"("destination":"ERROR: Non-printable character")"));
    CHECK_FALSE(r.origin);
    CHECK_FALSE(r.destination);
}

TEST_CASE("origin and destination longer than 32 characters, empty, or not text are NULL",
          "[unit]") {
    const std::string max(32, 'o');
    const cluster_data kept =
        parse_ok(with_body(R"(,"origin":")" + max + R"(","destination":12345678)"));
    CHECK(kept.origin == max);
    CHECK(kept.destination == "12345678");
    const cluster_data dropped =
        parse_ok(with_body(R"(,"origin":")" + max + R"(o","destination":"")"));
    CHECK_FALSE(dropped.origin);
    CHECK_FALSE(dropped.destination);
    const cluster_data typed = parse_ok(with_body(R"(,"origin":["A"],"destination":true)"));
    CHECK_FALSE(typed.origin);
    CHECK_FALSE(typed.destination);
}

TEST_CASE("a route packet without Message has a NULL payload and is kept", "[unit]") {
    const cluster_data r =
        parse_ok(envelope(R"("hops":1,"duckType":2,"DeviceID":"RELAY007","origin":"KAMPUNG1",)"
                          R"("destination":"PAPADUCK","path":["KAMPUNG1","RELAY007"])",
                          R"("eventType":"rreq","MessageID":"RQ01")"));
    CHECK(r.topic == "rreq");
    CHECK_FALSE(r.payload);
    CHECK_FALSE(r.payload_encoding);
    CHECK(r.origin == "KAMPUNG1");
    CHECK(r.path == "KAMPUNG1,RELAY007");
}

TEST_CASE("a route given as JSON text inside Message fills the route and keeps the Message",
          "[unit]") {
    const std::string route =
        R"({\"origin\":\"KAMPUNG1\",\"destination\":\"PAPADUCK\",)"
        R"(\"path\":[\"KAMPUNG1\",\"RELAY007\"]})";
    const cluster_data r = parse_ok(with_message("\"" + route + "\""));
    CHECK(r.origin == "KAMPUNG1");
    CHECK(r.destination == "PAPADUCK");
    CHECK(r.path == "KAMPUNG1,RELAY007");
    CHECK(r.payload ==
          R"({"origin":"KAMPUNG1","destination":"PAPADUCK","path":["KAMPUNG1","RELAY007"]})");
    CHECK_FALSE(r.payload_encoding);
}

TEST_CASE("payload route keys take precedence over the route inside Message", "[unit]") {
    const cluster_data r =
        parse_ok(with_message(R"("{\"origin\":\"M1\",\"destination\":\"M2\",\"path\":\"M1,M2\"}")",
                              R"(,"origin":"P1","path":[])"));
    CHECK(r.origin == "P1");
    CHECK(r.destination == "M2");  // absent from the payload keys
    CHECK(r.path == "M1,M2");      // the payload's path was empty
}

TEST_CASE("Message text that is not a route object leaves the route NULL", "[unit]") {
    for (const char* message :
         {R"("{not json")", R"("{\"temp\":21}")", R"("[1,2]")", R"("{\"origin\":5}extra")"}) {
        INFO(message);
        const cluster_data r = parse_ok(with_message(message));
        CHECK_FALSE(r.origin);
        CHECK_FALSE(r.destination);
        CHECK_FALSE(r.path);
        CHECK(r.payload);
    }
}

// ---- the Message ----

TEST_CASE("a Message given as a JSON object is stored as JSON text and its route is read",
          "[unit]") {
    const cluster_data r =
        parse_ok(with_message(R"({"origin":"A1","destination":"B2","path":["A1","B2"]})"));
    CHECK(r.payload == R"({"origin":"A1","destination":"B2","path":["A1","B2"]})");
    CHECK(r.origin == "A1");
    CHECK(r.path == "A1,B2");
}

TEST_CASE("a Message given as a number or boolean is stored as its text", "[unit]") {
    CHECK(parse_ok(with_message("42")).payload == "42");
    CHECK(parse_ok(with_message("-1.5")).payload == "-1.5");
    CHECK(parse_ok(with_message("true")).payload == "true");
    CHECK_FALSE(parse_ok(with_message("null")).payload);
}

TEST_CASE("UTF-8 text in Message is kept as text", "[unit]") {
    const std::string text = "Banjir! \xF0\x9F\x8C\x8A \xE6\x95\x91\xE5\x91\xBD caf\xC3\xA9";
    const cluster_data r = parse_ok(with_message("\"" + text + "\""));
    CHECK(r.payload == text);
    CHECK_FALSE(r.payload_encoding);
    CHECK(parse_ok(with_message(R"("\u00e9\ud83c\udf0a")")).payload == "\xC3\xA9\xF0\x9F\x8C\x8A");
}

TEST_CASE("base64 that decodes to printable UTF-8 is stored as the decoded text", "[unit]") {
    const std::string text = "Tolong! Air naik \xF0\x9F\x8C\x8A\tdi Kg Pasir\r\n";
    const cluster_data r =
        parse_ok(with_message("\"" + base64_encode(text) + "\"", R"(,"encoding":"base64")"));
    CHECK(r.payload == text);
    CHECK_FALSE(r.payload_encoding);
    const cluster_data empty = parse_ok(with_message(R"("")", R"(,"encoding":"base64")"));
    CHECK(empty.payload == "");
    CHECK_FALSE(empty.payload_encoding);
}

TEST_CASE("base64 of binary data is kept as the original base64", "[unit]") {
    for (const std::string& bytes :
         {std::string(1, '\0'), std::string("SOS\x01"), std::string("\xFF\xFE"),
          std::string("ok\x7F"), std::string("\xC3"), std::string("\xED\xA0\x80"),
          std::string("a\0b", 3)}) {
        const std::string b64 = base64_encode(bytes);
        INFO(b64);
        const cluster_data r = parse_ok(with_message("\"" + b64 + "\"", R"(,"encoding":"base64")"));
        CHECK(r.payload == b64);
        CHECK(r.payload_encoding == "base64");
    }
}

TEST_CASE("invalid base64 under encoding base64 is kept as the text given", "[unit]") {
    for (const char* message : {"SOS help", "Zg", "Zh==", "Zm9v\\nYmFy", "4QZ7!"}) {
        INFO(message);
        const cluster_data r =
            parse_ok(with_message(std::string("\"") + message + "\"", R"(,"encoding":"base64")"));
        CHECK(r.payload);
        CHECK_FALSE(r.payload_encoding);
    }
    CHECK(parse_ok(with_message(R"("SOS help")", R"(,"encoding":"base64")")).payload == "SOS help");
}

TEST_CASE("the encoding name is matched without case; other encodings change nothing", "[unit]") {
    CHECK(parse_ok(with_message(R"("aGk=")", R"(,"encoding":"BASE64")")).payload == "hi");
    CHECK(parse_ok(with_message(R"("aGk=")", R"(,"encoding":"hex")")).payload == "aGk=");
    CHECK(parse_ok(with_message(R"("aGk=")", R"(,"encoding":null)")).payload == "aGk=");
    CHECK(parse_ok(with_message(R"("aGk=")", R"(,"encoding":64)")).payload == "aGk=");
}

TEST_CASE("raw control bytes inside strings are kept as text", "[unit]") {
    const std::string text = "line1\nline2\ttab\x01\x1F end";
    const cluster_data r = parse_ok(with_message("\"" + text + "\""));
    CHECK(r.payload == text);
    CHECK_FALSE(r.payload_encoding);
    // A raw control byte right after a backslash completes the escape.
    CHECK(parse_ok(with_message("\"a\\\x01z\"")).payload == "a\x01z");
}

TEST_CASE("raw control bytes in DeviceID, path or origin do not reject the message", "[unit]") {
    const cluster_data r =
        parse_ok(envelope("\"DeviceID\":\"DU\x02"
                          "CK\",\"path\":\"A\x03,B\",\"origin\":\"O\x04\",\"Message\":\"m\""));
    CHECK(r.duck_id ==
          "DU\x02"
          "CK");
    CHECK(r.path == "A\x03,B");
    CHECK(r.origin == "O\x04");
}

TEST_CASE("Message bytes that are not valid UTF-8 are stored as their base64", "[unit]") {
    for (const std::string& bytes :
         {std::string("SOS \xFF\xFE"), std::string("\xC3"), std::string("\xED\xA0\x80"),
          std::string("\xC0\xAF"), std::string("\xF4\x90\x80\x80")}) {
        const cluster_data r = parse_ok(with_message("\"" + bytes + "\""));
        CHECK(r.payload == base64_encode(bytes));
        CHECK(r.payload_encoding == "base64");
    }
}

TEST_CASE("NUL inside Message, raw or escaped, is stored as base64", "[unit]") {
    const cluster_data raw = parse_ok(with_message(std::string("\"a\0b\"", 5)));
    CHECK(raw.payload == base64_encode(std::string("a\0b", 3)));
    CHECK(raw.payload_encoding == "base64");
    const cluster_data escaped = parse_ok(with_message(R"("a\u0000b")"));
    CHECK(escaped.payload == raw.payload);
    CHECK(escaped.payload_encoding == "base64");
}

TEST_CASE("invalid UTF-8 or NUL in a short column is written as \\xNN", "[unit]") {
    const cluster_data r = parse_ok(envelope(
        std::string("\"DeviceID\":\"D\xFF\",\"origin\":\"A\\u0000B\",\"path\":[\"P\xC3\",\"Q\"]"),
        "\"eventType\":\"st\xE9\",\"MessageID\":\"M\xFE\""));
    CHECK(r.duck_id == "D\\xFF");
    CHECK(r.origin == "A\\x00B");
    CHECK(r.path == "P\\xC3,Q");
    CHECK(r.topic == "st\\xE9");
    CHECK(r.message_id == "M\\xFE");
}

TEST_CASE("a lone surrogate escape is invalid JSON", "[unit]") {
    CHECK(starts_with(rejected(with_message(R"("\ud800")")), "invalid JSON"));
}

// ---- shapes ----

TEST_CASE("an object with neither a payload object nor DeviceID is rejected", "[unit]") {
    CHECK(rejected(R"({"eventType":"status","MessageID":"A1"})") ==
          "not a gateway message (no payload object and no DeviceID)");
    CHECK(rejected("{}") == "not a gateway message (no payload object and no DeviceID)");
    for (const char* payload : {"[]", "null", "42", R"("text")"}) {
        INFO(payload);
        CHECK(rejected(std::string(R"({"eventType":"status","MessageID":"A1","payload":)") +
                       payload + "}") == "payload is not an object (no DeviceID/hops/duckType)");
    }
}

TEST_CASE("legacy flat objects take the event type from the MQTT topic", "[unit]") {
    const std::string raw = R"({"DeviceID":"MAMA0001","MessageID":"k2m9x0qa","Payload":"C:1"})";
    const std::vector<std::pair<std::string, std::string>> topics = {
        {"iot-2/evt/alert/fmt/json", "alert"},
        {"iot-2/evt/gps/fmt/txt", "gps"},
        {"owl/device/papa-7/evt/health", "health"},
        {"alert", "alert"},
        {"hub/event", "status"},
        {"event", "status"},
        {"HUB", "status"},
        {"", "status"},
        {"/alert", "status"},
        {"iot-2/evt//fmt/json", "status"},
        {"iot-2/cmd/alert/fmt/json", "status"},
        {"owl/device/x/evt/", "status"},
        {"a/b/c", "status"},
    };
    for (const auto& [topic, type] : topics) {
        INFO("'" << topic << "'");
        const cluster_data r = parse_ok(raw, topic);
        CHECK(r.topic == type);
        CHECK(r.duck_id == "MAMA0001");
        CHECK(r.message_id == "k2m9x0qa");
        CHECK(r.payload == "C:1");
    }
}

TEST_CASE("a legacy flat object may carry hops, duckType and a lower-case payload string",
          "[unit]") {
    const cluster_data r =
        parse_ok(R"({"DeviceID":"MAMA0001","MessageID":"k2m9","payload":"hello","hops":"3",)"
                 R"("duckType":2,"path":"MAMA0001,PAPADUCK"})",
                 "iot-2/evt/status/fmt/json");
    CHECK(r.payload == "hello");
    CHECK(r.hops == 3);
    CHECK(r.duck_type == 2);
    CHECK(r.path == "MAMA0001,PAPADUCK");
    CHECK(rejected(R"({"DeviceID":"MAMA0001","Payload":"x"})") == "MessageID is missing");
}

TEST_CASE("a legacy flat object with raw binary in Payload and path is kept", "[unit]") {
    const std::string payload = "\x01\x02\xFF";
    const cluster_data r =
        parse_ok("{\"DeviceID\":\"MAMA0001\",\"MessageID\":\"k2\",\"Payload\":\"" + payload +
                     "\",\"path\":\"MAMA0001\xA0PAPA\"}",
                 "iot-2/evt/sensor/fmt/json");
    CHECK(r.topic == "sensor");
    CHECK(r.payload == base64_encode(payload));
    CHECK(r.payload_encoding == "base64");
    CHECK(r.path == "MAMA0001\\xA0PAPA");
}

TEST_CASE("CDP 4.2: messageTopic, a numeric messageId and a hex deviceId", "[unit]") {
    const cluster_data r =
        parse_ok(R"({"messageTopic":"alert","messageId":305419896,"payload":{"deviceType":2,)"
                 R"("deviceId":"4B414D50554E4731","message":"SOS,SRC:DEVICE","hops":1}})",
                 "hub/event");
    CHECK(r.topic == "alert");
    CHECK(r.message_id == "305419896");
    CHECK(r.duck_id == "KAMPUNG1");
    CHECK(r.duck_type == 2);
    CHECK(r.hops == 1);
    CHECK(r.payload == "SOS,SRC:DEVICE");
}

TEST_CASE("CDP 4.2: a deviceId that is not 8 printable bytes in hex is kept as given", "[unit]") {
    const auto duck_id = [](const std::string& id) {
        return parse_ok(R"({"messageTopic":"status","messageId":1,"payload":{"deviceId":")" + id +
                        R"(","message":"x"}})")
            .duck_id;
    };
    CHECK(duck_id("0001020304050607") == "0001020304050607");  // not printable
    CHECK(duck_id("4b616d70756e6731") == "Kampung1");          // lower-case hex
    CHECK(duck_id("4B414D50554E47") == "4B414D50554E47");      // 7 bytes
    CHECK(duck_id("4B414D50554E473G") == "4B414D50554E473G");  // not hex
    CHECK(duck_id("DUCK0001") == "DUCK0001");
}

TEST_CASE("CDP 4.2 without messageTopic takes the type from the MQTT topic", "[unit]") {
    const std::string raw =
        R"({"messageId":"77","payload":{"deviceId":"DUCK0001","Message":"hi",)"
        R"("deviceType":"MamaDuck"}})";
    const cluster_data r = parse_ok(raw, "owl/device/papa/evt/gps");
    CHECK(r.topic == "gps");
    CHECK(r.message_id == "77");
    CHECK(r.payload == "hi");
    CHECK(r.duck_type == 2);
    CHECK(parse_ok(raw, "hub/event").topic == "status");
    CHECK(rejected(R"({"messageTopic":"","messageId":1,"payload":{"deviceId":"D1"}})") ==
          "messageTopic is empty");
    CHECK(rejected(R"({"messageTopic":"s","payload":{"deviceId":"D1"}})") ==
          "messageId is missing");
}

// ---- regressions found by fuzzing (tests/fuzz/fuzz_gateway_parser.cpp) ----

TEST_CASE("fuzz: a MessageID whose escaped invalid bytes pass 255 characters is rejected, "
          "not stored for the central to refuse",
          "[unit]") {
    // 100 bytes that are not UTF-8 are 100 characters as received, but 400 once stored
    // ("\xFF" each): the central's 255-character rule would refuse the record for ever.
    const std::string bad(100, '\xFF');
    const std::string reason =
        rejected(envelope(default_body, R"("eventType":"status","MessageID":")" + bad + "\""));
    CHECK(reason == "MessageID is longer than 255 characters once its invalid bytes are "
                    "escaped (400)");
    // 60 such bytes are 240 characters stored: kept, and the central accepts the record.
    const cluster_data kept = parse_ok(
        envelope(default_body, R"("eventType":"status","MessageID":")" + bad.substr(0, 60) + "\""));
    CHECK(kept.message_id.size() == 240);
    CHECK(central::validate_record(kept, {}).empty());
    // The event type taken from a legacy MQTT topic falls back to "status" in the same case.
    const std::string flat = R"({"DeviceID":"DUCK0001","MessageID":"AB12","Payload":"x"})";
    CHECK(parse_ok(flat, bad).topic == "status");
    CHECK(parse_ok(flat, bad.substr(0, 60)).topic.size() == 240);
}

TEST_CASE("fuzz: a blank DeviceID, MessageID or eventType is rejected, not stored for the "
          "central to refuse",
          "[unit]") {
    // The central's `required` rule trims (Laravel): " " is no DeviceID there, so a record
    // stored with it would be refused (422) and parked for ever on the field node.
    CHECK(rejected(envelope(R"("hops":1,"duckType":2,"DeviceID":" ","Message":"x")")) ==
          "DeviceID is blank");
    CHECK(rejected(envelope(default_body, R"("eventType":"status","MessageID":"\t\r\n")")) ==
          "MessageID is blank");
    CHECK(rejected(envelope(default_body, R"("eventType":" \u000b ","MessageID":"AB12")")) ==
          "eventType is blank");
    // Not blank: kept, and accepted by the central.
    const cluster_data kept = parse_ok(envelope(R"("hops":1,"DeviceID":" D1 ","Message":"x")"));
    CHECK(kept.duck_id == " D1 ");
    CHECK(central::validate_record(kept, {}).empty());
}
