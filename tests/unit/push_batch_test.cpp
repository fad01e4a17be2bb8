// Request bodies the pusher sends and how it reads the central's answers.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include "opendms/field/push_batch.hpp"
#include "opendms/record_json.hpp"

using namespace opendms;
using namespace opendms::field;

namespace {

outbox_item item(std::int64_t id, const std::string& message) {
    outbox_item it;
    it.outbox_id = id * 10;
    cluster_data& r = it.record;
    r.id = id;
    r.duck_id = "DUCK0001";
    r.topic = "status";
    r.message_id = "M" + std::to_string(id);
    r.payload = message;
    r.hops = 2;
    r.created_at = 1764028800 + id;
    r.uuid = "019ab000-0000-7000-8000-00000000000" + std::to_string(id % 10);
    r.source_node = "node-1";
    r.synced = sync_state::pending;
    return it;
}

}  // namespace

TEST_CASE("a batch body holds every record's wire form in order and reads back", "[unit]") {
    std::vector<outbox_item> items = {item(1, "one"), item(2, "two \"quoted\"\n"), item(3, "")};
    std::string body = encode_batch(items);
    rapidjson::Document d;
    d.Parse(body.c_str(), body.size());
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d["records"].IsArray());
    REQUIRE(d["records"].Size() == 3);
    for (rapidjson::SizeType i = 0; i < 3; ++i) {
        const auto& rec = d["records"][i];
        CHECK(rec["uuid"].GetString() == *items[i].record.uuid);
        CHECK(rec["payload"].GetString() == *items[i].record.payload);
        CHECK_FALSE(rec.HasMember("id"));      // the local id never travels
        CHECK_FALSE(rec.HasMember("synced"));  // nor the local sync state
    }
    auto back = record_from_json(encode_single(items[1].record));
    REQUIRE(back);
    CHECK(back->payload == items[1].record.payload);
    CHECK(back->uuid == items[1].record.uuid);
    CHECK(encode_batch({}) == R"({"records":[]})");
}

TEST_CASE("batch results map stored, duplicate and mesh duplicate to delivered", "[unit]") {
    auto r = decode_batch_results(
        R"({"message":"Batch processed","results":[{"status":"stored","id":1},)"
        R"({"status":"duplicate","id":7},{"status":"mesh_duplicate","id":9,"duplicate_of":3},)"
        R"({"status":"rejected","message":"The hops field must be an integer.",)"
        R"("errors":{"hops":["The hops field must be an integer."],"topic":["The topic field is required."]}},)"
        R"({"status":"teleported"}]})",
        5);
    REQUIRE(r);
    CHECK((*r)[0].verdict == record_verdict::delivered);
    CHECK((*r)[1].verdict == record_verdict::delivered);
    CHECK((*r)[2].verdict == record_verdict::delivered);
    CHECK((*r)[3].verdict == record_verdict::rejected);
    CHECK((*r)[3].reason ==
          "The hops field must be an integer. The topic field is required.");
    CHECK((*r)[4].verdict == record_verdict::unknown);
    CHECK((*r)[4].reason == "unknown result status 'teleported'");
}

TEST_CASE("an answer that is not a batch result for exactly those records is refused", "[unit]") {
    CHECK_FALSE(decode_batch_results(R"({"message":"Record ingested","id":5})", 1));
    CHECK_FALSE(decode_batch_results(R"({"results":[{"status":"stored"}]})", 2));
    CHECK_FALSE(decode_batch_results(R"({"results":[{"status":"stored"},1]})", 2));
    CHECK_FALSE(decode_batch_results(R"({"results":[{"id":1}]})", 1));
    CHECK_FALSE(decode_batch_results("<html>502 Bad Gateway</html>", 1));
    CHECK_FALSE(decode_batch_results("", 0));
    CHECK(decode_batch_results(R"({"results":[]})", 0));
}

TEST_CASE("an error answer becomes a short, clean reason", "[unit]") {
    CHECK(reason_from_answer(422, R"x({"message":"The duck id field is required. (and 1 more error)",)x"
                                  R"x("errors":{"duck_id":["The duck id field is required."],)x"
                                  R"x("message_id":["The message id field is required."]}})x") ==
          "HTTP 422: The duck id field is required. (and 1 more error) The message id field is "
          "required.");
    CHECK(reason_from_answer(500, "") == "HTTP 500");
    CHECK(reason_from_answer(502, "<html>\r\nBad Gateway</html>") == "HTTP 502: <html>  Bad Gateway</html>");
    std::string huge(5000, 'x');
    CHECK(reason_from_answer(400, huge).size() <= 500);
    // Bytes that are not UTF-8 never reach parked_reason.
    std::string r = reason_from_answer(400, std::string("bad \xff\xfe bytes"));
    CHECK(r == "HTTP 400: bad ?? bytes");
}
