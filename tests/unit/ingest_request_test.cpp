// Decoding POST /api/ingest bodies: Content-Encoding (gzip, bombs, corrupt streams), then
// JSON into the single or batch form, with whole-body errors as precise 4xx answers and
// per-record problems kept per record.
#include <zlib.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "opendms/central/ingest_request.hpp"

// Records the largest single allocation while `tracking` is set, to show that a gzip bomb
// never makes the decoder allocate much more than its cap.
namespace {
std::atomic<bool> tracking{false};
std::atomic<std::size_t> largest_allocation{0};
}  // namespace

// Every non-aligned form is replaced, so that no pair mixes ours with a sanitizer's.
namespace {
void* tracked_malloc(std::size_t n) noexcept {
    if (tracking.load(std::memory_order_relaxed)) {
        std::size_t seen = largest_allocation.load(std::memory_order_relaxed);
        while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {
        }
    }
    return std::malloc(n == 0 ? 1 : n);
}
}  // namespace

void* operator new(std::size_t n) {
    if (void* p = tracked_malloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = tracked_malloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return tracked_malloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return tracked_malloc(n);
}
// GCC 12 under -fsanitize=thread inlines these into the tests and takes the memory for
// operator new's, not malloc's: a false -Wmismatched-new-delete (the pair here is
// malloc/free throughout).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

using namespace opendms;
using namespace opendms::central;

namespace {

constexpr std::size_t mib = 1024 * 1024;

// A gzip member of `repeat` copies of `chunk`, compressed as a stream (so a 100 MiB bomb
// never exists uncompressed in memory).
std::string gzip(std::string_view chunk, std::size_t repeat = 1) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::string out;
    char buf[64 * 1024];
    for (std::size_t i = 0; i <= repeat; ++i) {
        const bool last = i == repeat;
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(chunk.data()));
        zs.avail_in = last ? 0 : static_cast<uInt>(chunk.size());
        int rc = Z_OK;
        do {
            zs.next_out = reinterpret_cast<Bytef*>(buf);
            zs.avail_out = sizeof buf;
            rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
            out.append(buf, sizeof buf - zs.avail_out);
        } while (zs.avail_out == 0 || (last && rc != Z_STREAM_END));
    }
    deflateEnd(&zs);
    return out;
}

const char* seed_body =
    R"({"duck_id":"DUCK0001","topic":"status","message_id":"A1B2","payload":"hello",)"
    R"("path":"DUCK0001,PAPA0001","hops":2,"duck_type":3,)"
    R"("created_at":"2026-02-27T10:00:00.000000Z"})";

request_error content_error(std::string_view encoding, std::string body,
                            std::size_t max = 8 * mib) {
    auto error = decode_content(encoding, body, max);
    REQUIRE(error.has_value());
    return *error;
}

ingest_request decode_ok(std::string_view body, decode_limits limits = {}) {
    auto r = decode_ingest_body(body, limits);
    INFO((r.error ? r.error->message : std::string()));
    REQUIRE(r.request.has_value());
    CHECK_FALSE(r.error.has_value());
    return std::move(*r.request);
}

request_error decode_error(std::string_view body, decode_limits limits = {}) {
    auto r = decode_ingest_body(body, limits);
    REQUIRE(r.error.has_value());
    CHECK_FALSE(r.request.has_value());
    return *r.error;
}

std::string nested(std::size_t depth, bool closed) {
    std::string s(depth, '[');
    if (closed) s.append(depth, ']');
    return s;
}

std::string batch_of(std::size_t n) {
    std::string s = R"({"records":[)";
    for (std::size_t i = 0; i < n; ++i) {
        if (i) s += ',';
        s += R"({"duck_id":"D","topic":"t","message_id":")" + std::to_string(i) + "\"}";
    }
    return s + "]}";
}

}  // namespace

// ---- Content-Encoding ----

TEST_CASE("an identity or absent Content-Encoding leaves the body as it is", "[unit]") {
    for (const char* encoding : {"", "identity", "IDENTITY", " identity "}) {
        std::string body = "{\"a\":1}";
        CHECK_FALSE(decode_content(encoding, body, 3).has_value());  // no cap applies
        CHECK(body == "{\"a\":1}");
    }
}

TEST_CASE("a gzip body is inflated, whatever the case of its encoding name", "[unit]") {
    for (const char* encoding : {"gzip", "GZip", "x-gzip", "gzip "}) {
        std::string body = gzip(seed_body);
        CHECK_FALSE(decode_content(encoding, body, 8 * mib).has_value());
        CHECK(body == seed_body);
    }
}

TEST_CASE("concatenated gzip members are inflated one after another", "[unit]") {
    std::string body = gzip("{\"duck_id\":") + gzip("\"D\"}");
    CHECK_FALSE(decode_content("gzip", body, 100).has_value());
    CHECK(body == "{\"duck_id\":\"D\"}");
}

TEST_CASE("other content encodings are 415", "[unit]") {
    for (const char* encoding : {"br", "deflate", "compress", "zstd", "gzip, gzip", "gzip;q=1"}) {
        const auto e = content_error(encoding, gzip("{}"));
        CHECK(e.http_status == 415);
        CHECK(e.message.find("is not supported") != std::string::npos);
    }
}

TEST_CASE("a body that inflates to exactly the cap is accepted, one byte more is 413", "[unit]") {
    const std::string data(1000, 'x');
    std::string body = gzip(data);
    CHECK_FALSE(decode_content("gzip", body, 1000).has_value());
    CHECK(body == data);
    const auto e = content_error("gzip", gzip(data), 999);
    CHECK(e.http_status == 413);
    CHECK(e.message == "The request body is larger than 999 bytes once decompressed.");
}

TEST_CASE("a gzip bomb stops at the cap without allocating much more than the cap",
          "[unit][fault]") {
    const std::string zeros(mib, '\0');
    std::string bomb = gzip(zeros, 100);  // 100 MiB of zeros
    REQUIRE(bomb.size() < mib);
    const std::string original = bomb;
    largest_allocation = 0;
    tracking = true;
    const auto error = decode_content("gzip", bomb, 8 * mib);
    tracking = false;
    REQUIRE(error.has_value());
    CHECK(error->http_status == 413);
    CHECK(largest_allocation.load() <= 8 * mib + 64);
    CHECK(bomb == original);  // a failure leaves the body as it came
}

TEST_CASE("a truncated gzip stream is 400", "[unit][fault]") {
    const std::string whole = gzip(seed_body);
    for (std::size_t cut :
         {std::size_t{1}, std::size_t{4}, std::size_t{8}, whole.size() / 2, whole.size() - 10}) {
        INFO("kept " << cut << " of " << whole.size());
        const auto e = content_error("gzip", whole.substr(0, cut));
        CHECK(e.http_status == 400);
        CHECK(e.message == "The gzip request body is truncated.");
    }
    CHECK(content_error("gzip", "").message == "The gzip request body is empty.");
}

TEST_CASE("a corrupt gzip stream is 400 with zlib's reason", "[unit][fault]") {
    std::string bad_magic = gzip(seed_body);
    bad_magic[0] = 'x';
    auto e = content_error("gzip", bad_magic);
    CHECK(e.http_status == 400);
    CHECK(e.message.rfind("The gzip request body is corrupt: ", 0) == 0);

    std::string bad_crc = gzip(seed_body);
    bad_crc[bad_crc.size() - 6] ^= 0x55;  // inside the CRC-32 trailer
    e = content_error("gzip", bad_crc);
    CHECK(e.http_status == 400);
    CHECK(e.message.find("incorrect data check") != std::string::npos);

    CHECK(content_error("gzip", seed_body).http_status == 400);  // plain text, not gzip
    CHECK(content_error("gzip", gzip(seed_body) + "garbage").http_status == 400);
}

// ---- the single form ----

TEST_CASE("a seed body is one record, not a batch", "[unit]") {
    const auto req = decode_ok(seed_body);
    CHECK_FALSE(req.batch);
    REQUIRE(req.items.size() == 1);
    const auto& item = req.items[0];
    REQUIRE(item.record.has_value());
    CHECK(item.decode_errors.empty());
    CHECK(item.item_error.empty());
    CHECK(item.record->duck_id == "DUCK0001");
    CHECK(item.record->message_id == "A1B2");
    CHECK(item.record->hops == 2);
    CHECK(item.record->created_at == 1772186400);
}

TEST_CASE("a record with a bad field keeps its other fields and names the bad one", "[unit]") {
    const auto req = decode_ok(
        R"({"duck_id":"D","topic":"t","message_id":"M","hops":"two","created_at":"soon"})");
    REQUIRE(req.items.size() == 1);
    const auto& item = req.items[0];
    REQUIRE(item.record.has_value());
    CHECK(item.record->duck_id == "D");
    CHECK(item.record->message_id == "M");
    CHECK_FALSE(item.record->hops.has_value());
    CHECK(item.decode_errors.at("hops") ==
          std::vector<std::string>{"The hops field must be an integer."});
    CHECK(item.decode_errors.at("created_at") ==
          std::vector<std::string>{"The created at field must be a valid date."});
}

TEST_CASE("the sender's local columns are ignored, even with bad values", "[unit]") {
    const auto req =
        decode_ok(R"({"duck_id":"D","topic":"t","message_id":"M","id":"x","synced":"maybe",)"
                  R"("updated_at":5,"synced_at":[],"extra":{"deep":[1,2]}})");
    const auto& item = req.items.at(0);
    REQUIRE(item.record.has_value());
    CHECK(item.decode_errors.empty());
    CHECK_FALSE(item.record->id.has_value());
}

TEST_CASE("with a duplicate key the last one wins", "[unit]") {
    const auto req = decode_ok(R"({"duck_id":"first","duck_id":"second","hops":"x","hops":4})");
    const auto& item = req.items.at(0);
    REQUIRE(item.record.has_value());
    CHECK(item.record->duck_id == "second");
    CHECK(item.record->hops == 4);
    CHECK(item.decode_errors.empty());
}

TEST_CASE("string bytes reach the record unchanged for the validator to judge", "[unit]") {
    const std::string body = "{\"duck_id\":\"D\",\"payload\":\"a\\u0000b\xFF\xC3\xA9\\n\"}";
    const auto req = decode_ok(body);
    REQUIRE(req.items.at(0).record.has_value());
    CHECK(req.items[0].record->payload == std::string("a\0b\xFF\xC3\xA9\n", 7));
}

TEST_CASE("integral numbers and big numbers decode as record_from_json reads them", "[unit]") {
    auto req = decode_ok(R"({"hops":3.0,"duck_type":"7"})");
    CHECK(req.items.at(0).record->hops == 3);
    CHECK(req.items.at(0).record->duck_type == 7);
    req = decode_ok(R"({"hops":18446744073709551615})");
    CHECK(req.items.at(0).decode_errors.count("hops") == 1);
}

// ---- whole-body errors ----

TEST_CASE("malformed JSON is 400 naming the offset and the problem", "[unit]") {
    const std::vector<std::string> bodies = {
        "{",    "{\"duck_id\":\"D\"", "{\"duck_id\":\"D}", "{duck_id:1}",     "{\"a\":1,}", "{} x",
        "{}{}", "{\"a\":tru}",        "{\"a\":1e400}",     "{\"a\":\"\\x\"}",
    };
    for (const auto& body : bodies) {
        INFO(body);
        const auto e = decode_error(body);
        CHECK(e.http_status == 400);
        CHECK(e.message.rfind("The request body is not valid JSON at offset ", 0) == 0);
    }
    CHECK(decode_error("{} x").message ==
          "The request body is not valid JSON at offset 3: "
          "The document root must not be followed by other values.");
}

TEST_CASE("a NUL byte anywhere in the body is 400", "[unit]") {
    const auto e = decode_error(std::string("{\"duck_id\":\"D\"}\0garbage", 23));
    CHECK(e.http_status == 400);
    CHECK(e.message == "The request body is not valid JSON: a NUL byte at offset 15.");
    CHECK(decode_error(std::string("{\"duck_id\":\"a\0b\"}", 17)).http_status == 400);
}

TEST_CASE("a body that is not a JSON object is 400", "[unit]") {
    for (const char* body : {"[]", "\"text\"", "42", "null", "true", " [ {} ] "}) {
        INFO(body);
        const auto e = decode_error(body);
        CHECK(e.http_status == 400);
        CHECK(e.message == "The request body must be a JSON object.");
    }
    CHECK(decode_error("").message == "The request body is empty; it must be a JSON object.");
    CHECK(decode_error("   ").http_status == 400);
}

TEST_CASE("a body over the size limit is 413", "[unit]") {
    decode_limits limits;
    limits.max_body_bytes = 16;
    const auto e = decode_error(seed_body, limits);
    CHECK(e.http_status == 413);
    CHECK(e.message == "The request body is larger than 16 bytes.");
}

TEST_CASE("deep nesting is refused or ignored, never a stack overflow", "[unit][fault]") {
    const std::size_t depth = 100000;
    CHECK(decode_error(nested(depth, false)).http_status == 400);
    CHECK(decode_error(nested(depth, true)).message == "The request body must be a JSON object.");

    // Inside a record: an unknown field is ignored, a known one is a type error.
    auto req = decode_ok("{\"duck_id\":\"D\",\"x\":" + nested(depth, true) + "}");
    CHECK(req.items.at(0).record->duck_id == "D");
    CHECK(req.items[0].decode_errors.empty());
    req = decode_ok("{\"payload\":" + nested(depth, true) + ",\"duck_id\":\"D\"}");
    CHECK(req.items.at(0).decode_errors.at("payload") ==
          std::vector<std::string>{"The payload field must be a string."});
    CHECK(req.items[0].record->duck_id == "D");

    req = decode_ok("{\"records\":[" + nested(depth, true) + "]}");
    CHECK(req.items.at(0).item_error == "The record must be a JSON object.");
}

// ---- the batch form ----

TEST_CASE("a batch decodes every record and keeps their order", "[unit]") {
    const auto req = decode_ok(batch_of(3));
    CHECK(req.batch);
    REQUIRE(req.items.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        REQUIRE(req.items[i].record.has_value());
        CHECK(req.items[i].record->message_id == std::to_string(i));
    }
}

TEST_CASE("one bad record in a batch never fails the others", "[unit]") {
    const auto req = decode_ok(
        R"({"records":[{"duck_id":"A"},42,{"duck_id":"B","hops":[]},null,"x",{"duck_id":"C"}]})");
    REQUIRE(req.items.size() == 6);
    CHECK(req.items[0].record->duck_id == "A");
    for (std::size_t i : {1, 3, 4}) {
        CHECK_FALSE(req.items[i].record.has_value());
        CHECK(req.items[i].item_error == "The record must be a JSON object.");
    }
    REQUIRE(req.items[2].record.has_value());
    CHECK(req.items[2].record->duck_id == "B");
    CHECK(req.items[2].decode_errors.count("hops") == 1);
    CHECK(req.items[5].record->duck_id == "C");
    CHECK(req.items[5].item_error.empty());
}

TEST_CASE("an empty batch is a batch of nothing", "[unit]") {
    const auto req = decode_ok(R"({"records":[]})");
    CHECK(req.batch);
    CHECK(req.items.empty());
}

TEST_CASE("records that is not an array is 400", "[unit]") {
    for (const char* body : {R"({"records":{}})", R"({"records":null})", R"({"records":"[]"})",
                             R"({"records":[],"records":1})"}) {
        INFO(body);
        const auto e = decode_error(body);
        CHECK(e.http_status == 400);
        CHECK(e.message == "The records field must be an array of record objects.");
    }
}

TEST_CASE("a batch over the record limit is 413, at the limit it is accepted", "[unit]") {
    decode_limits limits;
    limits.max_records = 5;
    CHECK(decode_ok(batch_of(5), limits).items.size() == 5);
    const auto e = decode_error(batch_of(6), limits);
    CHECK(e.http_status == 413);
    CHECK(e.message == "The batch holds 6 records; at most 5 are allowed per request.");
}

TEST_CASE("a gzip batch decodes like the plain one", "[unit]") {
    std::string body = gzip(batch_of(200));
    REQUIRE_FALSE(decode_content("gzip", body, 8 * mib).has_value());
    const auto req = decode_ok(body);
    CHECK(req.batch);
    CHECK(req.items.size() == 200);
    CHECK(req.items.back().record->message_id == "199");
}

// ---- regressions found by fuzzing (tests/fuzz/fuzz_ingest_request.cpp) ----

TEST_CASE("fuzz: a zero with a large exponent in a body reads as 0, not as garbage", "[unit]") {
    // The fuzzer's input was {"a":[[...0e301...]]}: RapidJSON 1.1.0's full-precision path
    // computed a garbage double (undefined behaviour: clz of 0, then a shift by 63+).
    const ingest_request r = decode_ok(
        R"({"records":[{"duck_id":"D1","topic":"t","message_id":"m","hops":0e301,)"
        R"("duck_type":0.0e-300,"x":[[0e308]]}]})");
    REQUIRE(r.items.size() == 1);
    REQUIRE(r.items[0].record);
    CHECK(r.items[0].decode_errors.empty());
    CHECK(r.items[0].record->hops == 0);
    CHECK(r.items[0].record->duck_type == 0);
}
