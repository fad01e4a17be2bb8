// ingest_handler without sockets: http_request structs in, http_reply out, on a migrated
// SQLite file. The seed's contract (auth answers, 200/422 bodies, idempotent retries,
// created_at kept, MessageID reuse), the batch form, gzip, the operational routes, and 503
// with Retry-After when the database cannot be used.
#include <rapidjson/document.h>
#include <sys/stat.h>
#include <zlib.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "opendms/central/db_pool.hpp"
#include "opendms/central/http_types.hpp"
#include "opendms/central/ingest_handler.hpp"
#include "opendms/central/metrics.hpp"
#include "opendms/central/store_group.hpp"
#include "opendms/central/token_store.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/gzip.hpp"
#include "test_servers.hpp"

using namespace opendms;
using namespace opendms::central;

namespace {

const std::string shared_token = "s3cret-shared-token";
const std::string seed_record =
    R"({"duck_id":"DUCK0001","topic":"status","message_id":"A1B2","payload":"hello",)"
    R"("path":"DUCK0001,PAPA0001","hops":2,"duck_type":3,)"
    R"("created_at":"2026-02-27T10:00:00.000000Z"})";

db::connect_options sqlite_at(const std::string& path) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = path;
    return o;
}

void migrate(const db::connect_options& o) {
    auto c = db::open(o);
    REQUIRE(c);
    auto done = db::migrator(**c).migrate();
    REQUIRE(done);
}

/// A handler over its own pool, token store and metrics.
struct server_parts {
    server_parts(db::connect_options db, std::optional<std::string> token,
                 std::string tokens_file = "", handler_options options = {})
        : tokens(std::move(token), std::move(tokens_file)),
          pool(std::move(db), 2),
          handler(options, tokens, pool, m, clk) {
        REQUIRE(tokens.load());
    }

    token_store tokens;
    db_pool pool;
    metrics m;
    manual_clock clk;
    ingest_handler handler;
};

/// A migrated SQLite database in a temp directory, with a handler that accepts
/// shared_token.
struct fixture {
    test::temp_dir dir;
    db::connect_options db = sqlite_at(dir.file("central.sqlite"));
    std::unique_ptr<server_parts> parts;

    explicit fixture(std::optional<std::string> token = shared_token, std::string tokens_file = "",
                     handler_options options = {}) {
        migrate(db);
        parts =
            std::make_unique<server_parts>(db, std::move(token), std::move(tokens_file), options);
    }
    ingest_handler& handler() { return parts->handler; }
    metrics& m() { return parts->m; }

    std::int64_t count(const std::string& where = "1 = 1") {
        auto c = db::open(db);
        REQUIRE(c);
        auto r = (*c)->query("select count(*) from cluster_data where " + where);
        REQUIRE(r);
        return r->data.at(0).get_int(0).value_or(-1);
    }
    std::optional<std::string> column(const std::string& name, std::int64_t id) {
        auto c = db::open(db);
        REQUIRE(c);
        auto r = (*c)->query("select " + name + " from cluster_data where id = ?", {id});
        REQUIRE(r);
        REQUIRE(r->size() == 1);
        return r->data[0].get_text(0);
    }
};

http_request post(const std::string& body, const std::string& token = shared_token) {
    http_request r;
    r.method = "POST";
    r.target = "/api/ingest";
    r.remote = "127.0.0.1:50000";
    if (!token.empty()) r.authorization = "Bearer " + token;
    r.content_type = "application/json";
    r.has_content_length = true;
    r.content_length = body.size();
    r.body = body;
    return r;
}

http_request get(const std::string& target) {
    http_request r;
    r.method = "GET";
    r.target = target;
    return r;
}

rapidjson::Document parse(const std::string& text) {
    rapidjson::Document d;
    d.Parse(text.c_str(), text.size());
    INFO(text);
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d.IsObject());
    return d;
}

std::string message_of(const http_reply& r) {
    rapidjson::Document d = parse(r.body);
    REQUIRE(d.HasMember("message"));
    return d["message"].GetString();
}

std::int64_t id_of(const http_reply& r) {
    INFO(r.body);
    REQUIRE(r.status == 200);
    rapidjson::Document d = parse(r.body);
    REQUIRE(d["message"].GetString() == std::string("Record ingested"));
    REQUIRE(d["id"].IsInt64());
    return d["id"].GetInt64();
}

std::string header(const http_reply& r, const std::string& name) {
    for (const auto& [key, value] : r.headers) {
        if (key == name) return value;
    }
    return {};
}

std::string gzip(const std::string& data) {
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                         Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(&out[0]);
    zs.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

std::string record(const std::string& duck, const std::string& message_id,
                   const std::string& created_at, const std::string& payload = "hi") {
    return R"({"duck_id":")" + duck + R"(","topic":"status","message_id":")" + message_id +
           R"(","payload":")" + payload + R"(","created_at":")" + created_at + R"("})";
}

}  // namespace

// ---- authentication, as the seed ---------------------------------------------------

TEST_CASE("without any token configured ingest answers 503 and stores nothing", "[unit]") {
    fixture f(std::nullopt);
    http_request r = post(seed_record);
    std::optional<http_reply> head = f.handler().check_head(r);
    REQUIRE(head);
    CHECK(head->status == 503);
    CHECK(head->body == R"({"message":"Ingestion is not configured on this server."})");
    http_reply reply = f.handler().handle(r);
    CHECK(reply.status == 503);
    CHECK(message_of(reply) == "Ingestion is not configured on this server.");
    CHECK(f.count() == 0);
}

TEST_CASE("a request without a token or with a wrong one gets 401 and stores nothing", "[unit]") {
    fixture f;
    for (const std::string& token :
         {std::string(), std::string("wrong-token"), shared_token + "x", shared_token.substr(1)}) {
        INFO("token: '" << token << "'");
        http_request r = post(seed_record, token);
        std::optional<http_reply> head = f.handler().check_head(r);
        REQUIRE(head);
        CHECK(head->status == 401);
        CHECK(head->body == R"({"message":"Unauthenticated."})");
        CHECK(head->route == "/api/ingest");
        CHECK(f.handler().handle(r).status == 401);
    }
    http_request basic = post(seed_record);
    basic.authorization = "Basic " + shared_token;
    CHECK(f.handler().handle(basic).status == 401);
    CHECK(f.count() == 0);
    CHECK(f.m().records("stored") == 0);
}

TEST_CASE("a valid token passes the head check, so the body is read", "[unit]") {
    fixture f;
    CHECK_FALSE(f.handler().check_head(post(seed_record)));
}

TEST_CASE("per-node tokens name the node that delivered each record", "[unit]") {
    test::temp_dir dir;
    std::string n1 = "token-of-node-one";
    std::string n2 = "token-of-node-two";
    std::string path = dir.file("tokens");
    std::ofstream(path) << "# field nodes\nn1 " << token_hash(n1) << "\n\nn2 " << token_hash(n2)
                        << "\n";
    fixture f(shared_token, path);

    std::int64_t a =
        id_of(f.handler().handle(post(record("D1", "AAAA", "2026-02-27 10:00:00"), n1)));
    std::int64_t b =
        id_of(f.handler().handle(post(record("D1", "BBBB", "2026-02-27 10:00:00"), n2)));
    std::int64_t c =
        id_of(f.handler().handle(post(record("D1", "CCCC", "2026-02-27 10:00:00"), shared_token)));
    CHECK(f.column("received_from", a) == "n1");
    CHECK(f.column("received_from", b) == "n2");
    CHECK(f.column("received_from", c) == "default");
    CHECK(f.handler().handle(post(seed_record, "token-of-node-three")).status == 401);
    CHECK(f.count() == 3);
}

TEST_CASE("with only a tokens file, the shared token is not configured and 401s", "[unit]") {
    test::temp_dir dir;
    std::string path = dir.file("tokens");
    std::ofstream(path) << "n1 " << token_hash("node-one-token") << "\n";
    fixture f(std::nullopt, path);
    CHECK(f.handler().handle(post(seed_record, shared_token)).status == 401);
    CHECK(f.handler().handle(post(seed_record, "node-one-token")).status == 200);
}

// ---- the seed's single-record contract -------------------------------------------------

TEST_CASE("a seed record is stored and answered with its id", "[unit]") {
    fixture f;
    http_reply r = f.handler().handle(post(seed_record));
    std::int64_t id = id_of(r);
    CHECK(id > 0);
    CHECK(r.route == "/api/ingest");
    CHECK(r.node == "default");
    CHECK(r.note.find("stored=1") != std::string::npos);
    CHECK(f.count() == 1);
    CHECK(f.column("duck_id", id) == "DUCK0001");
    CHECK(f.column("payload", id) == "hello");
    CHECK(f.column("hops", id) == "2");
    CHECK(f.m().records("stored") == 1);
}

TEST_CASE("created_at is kept as the record's time, not the time of arrival", "[unit]") {
    fixture f;
    std::int64_t id = id_of(f.handler().handle(post(seed_record)));
    CHECK(f.column("created_at", id) == "2026-02-27 10:00:00");
}

TEST_CASE("an identical retry answers the same id and leaves one row", "[unit]") {
    fixture f;
    std::int64_t first = id_of(f.handler().handle(post(seed_record)));
    std::int64_t second = id_of(f.handler().handle(post(seed_record)));
    std::int64_t third = id_of(f.handler().handle(post(seed_record)));
    CHECK(second == first);
    CHECK(third == first);
    CHECK(f.count() == 1);
    CHECK(f.m().records("stored") == 1);
    CHECK(f.m().records("duplicate") == 2);
}

TEST_CASE("two messages sharing duck_id and message_id at different times are both kept",
          "[unit]") {
    fixture f;
    // MessageIDs are four characters and are reused: these are different messages.
    std::int64_t a =
        id_of(f.handler().handle(post(record("DUCK0001", "A1B2", "2026-02-27 10:00:00", "one"))));
    std::int64_t b =
        id_of(f.handler().handle(post(record("DUCK0001", "A1B2", "2026-03-05 08:30:00", "two"))));
    CHECK(a != b);
    CHECK(f.count() == 2);
    CHECK(f.column("payload", a) == "one");
    CHECK(f.column("payload", b) == "two");
    CHECK(f.column("created_at", b) == "2026-03-05 08:30:00");
}

TEST_CASE("a body lacking duck_id and message_id gets 422 in Laravel's shape", "[unit]") {
    fixture f;
    http_reply r = f.handler().handle(post(R"({"topic":"status","payload":"x"})"));
    CHECK(r.status == 422);
    CHECK(r.body == R"x({"message":"The duck id field is required. (and 1 more error)","errors":{)x"
                    R"("duck_id":["The duck id field is required."],)"
                    R"("message_id":["The message id field is required."]}})");
    CHECK(f.count() == 0);
    CHECK(f.m().records("rejected") == 1);
}

TEST_CASE("type errors are reported per field with 422 and nothing stored", "[unit]") {
    fixture f;
    http_reply r =
        f.handler().handle(post(R"({"duck_id":"D","topic":"t","message_id":"M","hops":"many"})"));
    CHECK(r.status == 422);
    rapidjson::Document d = parse(r.body);
    REQUIRE(d["errors"].HasMember("hops"));
    CHECK(d["errors"]["hops"][0].GetString() == std::string("The hops field must be an integer."));
    CHECK(f.count() == 0);
}

TEST_CASE("unknown fields are ignored", "[unit]") {
    fixture f;
    std::string body = R"({"duck_id":"D","topic":"t","message_id":"M","colour":"blue",)"
                       R"("created_at":"2026-02-27 10:00:00","nested":{"a":[1,2]}})";
    std::int64_t id = id_of(f.handler().handle(post(body)));
    CHECK(f.column("duck_id", id) == "D");
}

TEST_CASE("a query string and a trailing slash still reach the ingest route", "[unit]") {
    fixture f;
    http_request r = post(seed_record);
    r.target = "/api/ingest/?source=laravel";
    CHECK(id_of(f.handler().handle(r)) > 0);
}

// ---- what is not a valid request -------------------------------------------------------

TEST_CASE("a body that is not JSON gets a JSON 400, never a 500", "[unit]") {
    fixture f;
    for (const std::string& body :
         {std::string("{\"duck_id\":"), std::string("not json"), std::string("[1,2]"),
          std::string(""), std::string("{\"a\":1} trailing")}) {
        INFO(body);
        http_reply r = f.handler().handle(post(body));
        CHECK(r.status >= 400);
        CHECK(r.status < 500);
        CHECK_FALSE(message_of(r).empty());
    }
    CHECK(f.count() == 0);
}

TEST_CASE("a body that is not declared JSON gets 415 before it is read", "[unit]") {
    fixture f;
    for (const std::string& type : {std::string("text/plain"), std::string(""),
                                    std::string("application/x-www-form-urlencoded"),
                                    std::string("application/jsonx"), std::string("json")}) {
        INFO("Content-Type: " << type);
        http_request r = post(seed_record);
        r.content_type = type;
        std::optional<http_reply> head = f.handler().check_head(r);
        REQUIRE(head);
        CHECK(head->status == 415);
        CHECK_FALSE(message_of(*head).empty());
        CHECK(f.handler().handle(r).status == 415);
    }
    CHECK(f.count() == 0);
}

TEST_CASE("JSON content types with parameters or a +json suffix are accepted", "[unit]") {
    fixture f;
    const char* types[] = {"application/json; charset=utf-8", "Application/JSON",
                           "application/vnd.opendms+json", "application/json;charset=UTF-8"};
    int n = 0;
    for (const char* type : types) {
        INFO(type);
        http_request r = post(record("D", "M" + std::to_string(n++), "2026-02-27 10:00:00"));
        r.content_type = type;
        CHECK(f.handler().handle(r).status == 200);
    }
    CHECK(f.count() == 4);
}

TEST_CASE("a Content-Length over the limit gets 413 at the head", "[unit]") {
    handler_options o;
    o.max_body_bytes = 1024;
    fixture f(shared_token, "", o);
    http_request r = post(seed_record);
    r.content_length = 1025;
    std::optional<http_reply> head = f.handler().check_head(r);
    REQUIRE(head);
    CHECK(head->status == 413);
    // Without a Content-Length (chunked), the body read decides.
    http_request big = post(std::string(2000, ' ') + seed_record);
    big.has_content_length = false;
    CHECK_FALSE(f.handler().check_head(big));
    CHECK(f.handler().handle(big).status == 413);
    CHECK(f.count() == 0);
}

TEST_CASE("an unknown route gets a JSON 404 naming it", "[unit]") {
    fixture f;
    for (const char* method : {"GET", "POST", "DELETE"}) {
        http_request r = post(seed_record);
        r.method = method;
        r.target = "/api/nope?x=1";
        std::optional<http_reply> head = f.handler().check_head(r);
        REQUIRE(head);
        CHECK(head->status == 404);
        CHECK(head->body == R"({"message":"The route api/nope could not be found."})");
        CHECK(head->route == "other");
    }
}

TEST_CASE("bytes in an unknown path are escaped, so the 404 body stays valid JSON", "[unit]") {
    fixture f;
    http_request r = get(std::string("/a\"b\\c\xff\x01"));
    http_reply reply = f.handler().handle(r);
    CHECK(reply.status == 404);
    CHECK(message_of(reply) == "The route a\"b\\c%FF%01 could not be found.");
}

TEST_CASE("a known route with another method gets 405 with Allow", "[unit]") {
    fixture f;
    http_reply r = f.handler().handle(get("/api/ingest"));
    CHECK(r.status == 405);
    CHECK(r.body == R"({"message":"The GET method is not supported for route api/ingest. )"
                    R"(Supported methods: POST."})");
    CHECK(header(r, "Allow") == "POST");
    http_request p = post("{}");
    p.target = "/healthz";
    http_reply h = f.handler().handle(p);
    CHECK(h.status == 405);
    CHECK(header(h, "Allow") == "GET");
    CHECK(message_of(h) ==
          "The POST method is not supported for route healthz. Supported methods: GET.");
}

// ---- the batch form --------------------------------------------------------------------

TEST_CASE("a batch answers per record, and a rejected record does not fail the others", "[unit]") {
    fixture f;
    std::string body = "{\"records\":[" + record("D1", "AAAA", "2026-02-27 10:00:00") + "," +
                       R"({"duck_id":"D1","message_id":"BBBB"})" + "," + "17," +
                       record("D1", "CCCC", "2026-02-27 10:00:00") + "]}";
    http_reply r = f.handler().handle(post(body));
    INFO(r.body);
    REQUIRE(r.status == 200);
    rapidjson::Document d = parse(r.body);
    CHECK(d["message"].GetString() == std::string("Batch processed"));
    CHECK(d["stored"].GetInt() == 2);
    CHECK(d["duplicates"].GetInt() == 0);
    CHECK(d["mesh_duplicates"].GetInt() == 0);
    CHECK(d["rejected"].GetInt() == 2);
    const auto& results = d["results"];
    REQUIRE(results.Size() == 4);
    CHECK(results[0]["status"].GetString() == std::string("stored"));
    CHECK(results[1]["status"].GetString() == std::string("rejected"));
    CHECK(results[1]["message"].GetString() == std::string("The topic field is required."));
    CHECK(results[1]["errors"]["topic"][0].GetString() ==
          std::string("The topic field is required."));
    CHECK(results[2]["status"].GetString() == std::string("rejected"));
    CHECK(results[2]["message"].GetString() == std::string("The record must be a JSON object."));
    CHECK(results[3]["status"].GetString() == std::string("stored"));
    CHECK(results[0]["id"].GetInt64() != results[3]["id"].GetInt64());
    CHECK(f.count() == 2);
    CHECK(f.m().records("stored") == 2);
    CHECK(f.m().records("rejected") == 2);
    CHECK(r.note == "stored=2 duplicate=0 mesh_duplicate=0 rejected=2");
}

TEST_CASE("a batch sent again answers duplicates with the stored ids", "[unit]") {
    fixture f;
    std::string body = "{\"records\":[" + record("D1", "AAAA", "2026-02-27 10:00:00") + "," +
                       record("D2", "AAAA", "2026-02-27 10:00:00") + "]}";
    rapidjson::Document first = parse(f.handler().handle(post(body)).body);
    rapidjson::Document again = parse(f.handler().handle(post(body)).body);
    CHECK(again["stored"].GetInt() == 0);
    CHECK(again["duplicates"].GetInt() == 2);
    for (rapidjson::SizeType i = 0; i < 2; ++i) {
        CHECK(again["results"][i]["status"].GetString() == std::string("duplicate"));
        CHECK(again["results"][i]["id"].GetInt64() == first["results"][i]["id"].GetInt64());
    }
    CHECK(f.count() == 2);
}

TEST_CASE("a mesh duplicate in a batch is stored, linked to its original", "[unit]") {
    fixture f;
    // The same packet heard by two gateways a minute apart.
    std::string body = "{\"records\":[" + record("D1", "AAAA", "2026-02-27 10:00:00", "same") +
                       "," + record("D1", "AAAA", "2026-02-27 10:01:00", "same") + "]}";
    rapidjson::Document d = parse(f.handler().handle(post(body)).body);
    CHECK(d["stored"].GetInt() == 1);
    CHECK(d["mesh_duplicates"].GetInt() == 1);
    const auto& dup = d["results"][1];
    CHECK(dup["status"].GetString() == std::string("mesh_duplicate"));
    CHECK(dup["duplicate_of"].GetInt64() == d["results"][0]["id"].GetInt64());
    CHECK(dup["id"].GetInt64() != dup["duplicate_of"].GetInt64());
    CHECK(f.count() == 2);
    CHECK(f.count("duplicate_of is null") == 1);
    CHECK(f.m().records("mesh_duplicate") == 1);
}

TEST_CASE("a single seed record that repeats a stored packet answers the new row's id", "[unit]") {
    fixture f;
    std::int64_t a =
        id_of(f.handler().handle(post(record("D1", "AAAA", "2026-02-27 10:00:00", "x"))));
    std::int64_t b =
        id_of(f.handler().handle(post(record("D1", "AAAA", "2026-02-27 10:02:00", "x"))));
    CHECK(b != a);
    CHECK(f.column("duplicate_of", b) == std::to_string(a));
}

TEST_CASE("an empty batch is answered without touching the database", "[unit]") {
    test::temp_dir dir;
    server_parts p(sqlite_at(dir.file("missing/dir/central.sqlite")), shared_token);
    http_reply r = p.handler.handle(post(R"({"records":[]})"));
    INFO(r.body);
    CHECK(r.status == 200);
    rapidjson::Document d = parse(r.body);
    CHECK(d["stored"].GetInt() == 0);
    CHECK(d["results"].Size() == 0);
}

TEST_CASE("a batch larger than the record limit gets 413 and stores nothing", "[unit]") {
    handler_options o;
    o.max_batch_records = 2;
    fixture f(shared_token, "", o);
    std::string body = "{\"records\":[" + record("D", "A", "2026-02-27 10:00:00") + "," +
                       record("D", "B", "2026-02-27 10:00:00") + "," +
                       record("D", "C", "2026-02-27 10:00:00") + "]}";
    http_reply r = f.handler().handle(post(body));
    CHECK(r.status == 413);
    CHECK_FALSE(message_of(r).empty());
    CHECK(f.count() == 0);
}

TEST_CASE("a gzip body is inflated and stored", "[unit]") {
    fixture f;
    std::string body = "{\"records\":[" + record("D1", "AAAA", "2026-02-27 10:00:00") + "," +
                       record("D1", "BBBB", "2026-02-27 10:00:00") + "]}";
    http_request r = post(gzip(body));
    r.content_encoding = "gzip";
    http_reply reply = f.handler().handle(r);
    INFO(reply.body);
    REQUIRE(reply.status == 200);
    CHECK(parse(reply.body)["stored"].GetInt() == 2);
    CHECK(f.count() == 2);
}

TEST_CASE("a corrupt gzip body or an unknown encoding is a 4xx, nothing stored", "[unit]") {
    fixture f;
    http_request corrupt = post(gzip(seed_record).substr(0, 20));
    corrupt.content_encoding = "gzip";
    http_reply a = f.handler().handle(corrupt);
    CHECK(a.status == 400);
    http_request brotli = post(seed_record);
    brotli.content_encoding = "br";
    http_reply b = f.handler().handle(brotli);
    CHECK(b.status == 415);
    CHECK_FALSE(message_of(b).empty());
    CHECK(f.count() == 0);
}

// ---- operations --------------------------------------------------------------------------

TEST_CASE("/healthz answers from the head, without the database", "[unit]") {
    test::temp_dir dir;
    server_parts p(sqlite_at(dir.file("missing/dir/central.sqlite")), shared_token);
    std::optional<http_reply> r = p.handler.check_head(get("/healthz"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == R"({"status":"ok"})");
    CHECK(r->route == "/healthz");
}

TEST_CASE("/readyz is ready on a migrated database", "[unit]") {
    fixture f;
    CHECK_FALSE(f.handler().check_head(get("/readyz")));
    http_reply r = f.handler().handle(get("/readyz"));
    CHECK(r.status == 200);
    CHECK(r.body == R"({"status":"ready"})");
    CHECK(r.route == "/readyz");
}

TEST_CASE("/readyz is not ready while migrations are pending", "[unit]") {
    test::temp_dir dir;
    db::connect_options o = sqlite_at(dir.file("central.sqlite"));
    {
        auto c = db::open(o);
        REQUIRE(c);
        const auto& catalog = db::schema_catalog(db::dialect::sqlite);
        // All but the last migration: one pending.
        db::migrator m(**c, std::vector<db::migration>(catalog.begin(), catalog.end() - 1));
        REQUIRE(m.migrate());
    }
    server_parts p(o, shared_token);
    http_reply r = p.handler.handle(get("/readyz"));
    CHECK(r.status == 503);
    rapidjson::Document d = parse(r.body);
    CHECK(d["status"].GetString() == std::string("not ready"));
    CHECK(std::string(d["reason"].GetString()).find("1 migration") != std::string::npos);
}

TEST_CASE("/metrics renders the counters as Prometheus text", "[unit]") {
    fixture f;
    (void)id_of(f.handler().handle(post(seed_record)));
    (void)f.handler().handle(post(R"({"topic":"t"})"));
    std::optional<http_reply> r = f.handler().check_head(get("/metrics"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->content_type.rfind("text/plain", 0) == 0);
    CHECK(r->route == "/metrics");
    CHECK(r->body.find("opendms_records_total{outcome=\"stored\"} 1\n") != std::string::npos);
    CHECK(r->body.find("opendms_records_total{outcome=\"rejected\"} 1\n") != std::string::npos);
}

// ---- the database cannot be used -----------------------------------------------------------

TEST_CASE("a database that refuses connections gets 503 with Retry-After, nothing else",
          "[unit][fault]") {
    db::connect_options o;
    o.kind = db::dialect::pgsql;
    o.host = "127.0.0.1";
    o.port = 1;  // nothing listens there: connection refused at once
    o.database = "opendms";
    o.username = "opendms";
    o.connect_timeout_s = 1;
    handler_options options;
    options.retry_after_s = 7;
    options.pool_wait = std::chrono::milliseconds(100);
    token_store tokens(shared_token, "");
    REQUIRE(tokens.load());
    db_pool pool(o, 2);
    metrics m;
    manual_clock clk;
    ingest_handler h(options, tokens, pool, m, clk);

    http_reply single = h.handle(post(seed_record));
    CHECK(single.status == 503);
    CHECK(single.body == R"({"message":"The database is unavailable; retry later."})");
    CHECK(header(single, "Retry-After") == "7");
    http_reply batch = h.handle(post("{\"records\":[" + seed_record + "]}"));
    CHECK(batch.status == 503);
    CHECK(header(batch, "Retry-After") == "7");
    CHECK(m.records("stored") == 0);

    http_reply ready = h.handle(get("/readyz"));
    CHECK(ready.status == 503);
    CHECK(parse(ready.body)["status"].GetString() == std::string("not ready"));
    // Auth and validation still answer without the database.
    CHECK(h.handle(post(seed_record, "wrong")).status == 401);
    CHECK(h.handle(post(R"({"topic":"t"})")).status == 422);
}

TEST_CASE("a SQLite database in a missing directory gets 503 with Retry-After", "[unit][fault]") {
    test::temp_dir dir;
    server_parts p(sqlite_at(dir.file("missing/dir/central.sqlite")), shared_token);
    http_reply r = p.handler.handle(post(seed_record));
    CHECK(r.status == 503);
    CHECK(header(r, "Retry-After") == "5");
    CHECK(message_of(r) == "The database is unavailable; retry later.");
}

TEST_CASE("the database coming back ends the 503s without a restart", "[unit][fault]") {
    test::temp_dir dir;
    std::string sub = dir.file("later");
    db::connect_options o = sqlite_at(sub + "/central.sqlite");
    server_parts p(o, shared_token);
    CHECK(p.handler.handle(post(seed_record)).status == 503);
    REQUIRE(::mkdir(sub.c_str(), 0700) == 0);
    migrate(o);
    CHECK(id_of(p.handler.handle(post(seed_record))) > 0);
}

// ---- a record the database refuses -------------------------------------------------------

TEST_CASE("a record the database refuses gets a fixed reason, never the database's message",
          "[unit]") {
    // Regression: the reason sent back was the driver's text ("sqlite.query: ... secret"),
    // which can name tables, constraints and server internals.
    fixture f;
    {
        auto c = db::open(f.db);
        REQUIRE(c);
        REQUIRE((*c)->execute_script(
            "create trigger refuse_boom before insert on cluster_data when new.payload = 'boom' "
            "begin select raise(abort, 'internal detail: constraint cd_secret_42'); end"));
    }
    std::string body = "{\"records\":[" + record("D1", "AAAA", "2026-02-27 10:00:00") + "," +
                       record("D1", "BBBB", "2026-02-27 10:00:00", "boom") + "]}";
    http_reply r = f.handler().handle(post(body));
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.body.find("secret") == std::string::npos);
    CHECK(r.body.find("sqlite") == std::string::npos);
    rapidjson::Document d = parse(r.body);
    CHECK(d["stored"].GetInt() == 1);
    CHECK(d["rejected"].GetInt() == 1);
    CHECK(d["results"][1]["status"].GetString() == std::string("rejected"));
    CHECK(d["results"][1]["message"].GetString() ==
          std::string("The database refused a value of this record (too long, or not storable)."));
    http_reply single =
        f.handler().handle(post(record("D1", "CCCC", "2026-02-27 10:00:00", "boom")));
    CHECK(single.status == 422);
    CHECK(single.body.find("secret") == std::string::npos);
}

// ---- group commit ------------------------------------------------------------------------

TEST_CASE("concurrent requests share one transaction and each gets its own answer and node",
          "[unit]") {
    test::temp_dir dir;
    std::string path = dir.file("tokens");
    std::ofstream(path) << "n1 " << token_hash("token-one") << "\nn2 " << token_hash("token-two")
                        << "\n";
    handler_options options;
    options.store_groups = 1;  // one transaction at a time: the others wait and group
    fixture f(shared_token, path, options);
    // Another writer holds SQLite's write lock: the first request's transaction waits for
    // it (busy timeout) while the next five queue up behind it.
    auto blocker = db::open(f.db);
    REQUIRE(blocker);
    REQUIRE((*blocker)->execute_script("BEGIN IMMEDIATE"));
    std::vector<std::future<http_reply>> replies;
    const char* tokens[] = {"token-one", "token-two", shared_token.c_str()};
    for (int i = 0; i < 6; ++i) {
        replies.push_back(std::async(std::launch::async, [&f, i, &tokens] {
            return f.handler().handle(post(
                record("G" + std::to_string(i), "M00" + std::to_string(i), "2026-02-27 10:00:00"),
                tokens[i % 3]));
        }));
        if (i == 0) {
            // The first one leads: it is in store_records() before the others arrive.
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
    for (int i = 0; i < 100 && f.handler().group().waiting() < 5; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(f.handler().group().waiting() == 5);
    REQUIRE((*blocker)->execute_script("COMMIT"));
    std::vector<std::int64_t> ids;
    for (auto& r : replies) ids.push_back(id_of(r.get()));
    const group_stats stats = f.handler().group().stats();
    CHECK(stats.transactions == 2);
    CHECK(stats.requests == 6);
    CHECK(stats.largest == 5);
    CHECK(std::set<std::int64_t>(ids.begin(), ids.end()).size() == 6);
    for (int i = 0; i < 6; ++i) {
        CHECK(f.column("duck_id", ids[i]) == "G" + std::to_string(i));
        CHECK(f.column("received_from", ids[i]) == std::string(i % 3 == 0   ? "n1"
                                                               : i % 3 == 1 ? "n2"
                                                                            : "default"));
    }
    CHECK(f.count() == 6);
    CHECK(f.m().records("stored") == 6);
}

TEST_CASE("only a small uncompressed ingest body is decoded on the Asio thread", "[unit]") {
    fixture f;
    CHECK(f.handler().runs_inline(post(seed_record)));
    CHECK(f.handler().runs_inline(post(std::string(16 * 1024, ' '))));
    CHECK_FALSE(f.handler().runs_inline(post(std::string(16 * 1024 + 1, ' '))));
    http_request zipped = post(seed_record);
    zipped.content_encoding = "gzip";  // inflating is a worker's job (a bomb takes long)
    CHECK_FALSE(f.handler().runs_inline(zipped));
    CHECK_FALSE(f.handler().runs_inline(get("/readyz")));  // may wait for the database
    CHECK_FALSE(f.handler().runs_inline(get("/api/ingest")));
}

namespace {

std::vector<cluster_data> group_records(const std::string& duck, int n) {
    std::vector<cluster_data> records(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        cluster_data& r = records[static_cast<std::size_t>(i)];
        r.duck_id = duck;
        r.topic = "status";
        r.message_id = "Q" + std::to_string(i);
        r.payload = "p";
        r.created_at = 1772186400 + i;
    }
    return records;
}

}  // namespace

TEST_CASE("submit() only queues: a store thread of the group runs the transaction and answers",
          "[unit]") {
    fixture f;
    auto blocker = db::open(f.db);
    REQUIRE(blocker);
    REQUIRE((*blocker)->execute_script("BEGIN IMMEDIATE"));  // the transaction must wait
    db_pool pool(f.db, 1);
    manual_clock clk;
    group_options o;
    o.max_groups = 1;
    store_group group(pool, clk, o);
    const std::vector<cluster_data> records = group_records("S1", 2);
    std::promise<std::thread::id> answered_on;
    std::promise<store_group::outcomes> outcome;
    group.submit(records, "node-a", [&](store_group::outcomes out) {
        answered_on.set_value(std::this_thread::get_id());
        outcome.set_value(std::move(out));
    });
    // Back while the transaction still waits for the lock: nothing answered yet.
    std::future<store_group::outcomes> result = outcome.get_future();
    CHECK(result.wait_for(std::chrono::milliseconds(200)) == std::future_status::timeout);
    REQUIRE((*blocker)->execute_script("COMMIT"));
    store_group::outcomes out = result.get();
    REQUIRE(out);
    REQUIRE(out->size() == 2);
    CHECK((*out)[0].status == store_status::stored);
    CHECK((*out)[1].status == store_status::stored);
    CHECK(answered_on.get_future().get() != std::this_thread::get_id());
    CHECK(f.count("duck_id = 'S1'") == 2);
}

TEST_CASE("a store group being destroyed first stores and answers every request queued",
          "[unit]") {
    fixture f;
    auto blocker = db::open(f.db);
    REQUIRE(blocker);
    REQUIRE((*blocker)->execute_script("BEGIN IMMEDIATE"));
    db_pool pool(f.db, 1);
    manual_clock clk;
    const std::vector<cluster_data> a = group_records("DA", 1), b = group_records("DB", 3);
    std::atomic<int> stored{0}, answers{0};
    bool committed = false;
    auto done = [&](store_group::outcomes out) {
        answers.fetch_add(1);
        if (out) stored.fetch_add(static_cast<int>(out->size()));
    };
    std::thread release;
    {
        group_options o;
        o.max_groups = 1;
        o.max_records = 1;  // one request per transaction: the second waits in the queue
        store_group group(pool, clk, o);
        group.submit(a, "node-a", done);
        group.submit(b, "node-a", done);
        release = std::thread([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            committed = static_cast<bool>((*blocker)->execute_script("COMMIT"));
        });
    }  // ~store_group, while both still wait
    release.join();
    REQUIRE(committed);
    CHECK(answers.load() == 2);
    CHECK(stored.load() == 4);
    CHECK(f.count("duck_id in ('DA', 'DB')") == 4);
}

TEST_CASE("a failed group transaction answers every request in it 503, storing none",
          "[unit][fault]") {
    test::temp_dir dir;
    std::string sub = dir.file("later");
    handler_options options;
    options.store_groups = 1;
    options.pool_wait = std::chrono::milliseconds(100);
    server_parts p(sqlite_at(sub + "/central.sqlite"), shared_token, "", options);
    std::vector<std::future<http_reply>> replies;
    for (int i = 0; i < 4; ++i) {
        replies.push_back(std::async(std::launch::async, [&p, i] {
            return p.handler.handle(post(
                record("F" + std::to_string(i), "F00" + std::to_string(i), "2026-02-27 10:00:00")));
        }));
    }
    for (auto& r : replies) {
        http_reply reply = r.get();
        CHECK(reply.status == 503);
        CHECK(header(reply, "Retry-After") == "5");
    }
}

// ---- readiness ---------------------------------------------------------------------------

TEST_CASE("a pool busy with ingest does not make /readyz unready", "[unit]") {
    // Regression: /readyz waited for a pooled connection and answered "not ready" when
    // ingest held them all (pool_wait later).
    handler_options options;
    options.pool_wait = std::chrono::milliseconds(200);
    fixture f(shared_token, "", options);
    auto first = f.parts->pool.acquire(std::chrono::milliseconds(100));
    auto second = f.parts->pool.acquire(std::chrono::milliseconds(100));
    REQUIRE(first);
    REQUIRE(second);
    CHECK(f.handler().handle(post(seed_record)).status == 503);  // ingest has to wait
    http_reply r = f.handler().handle(get("/readyz"));
    CHECK(r.status == 200);
    CHECK(r.body == R"({"status":"ready"})");
}

TEST_CASE("with readiness checks running, /readyz is answered at the head", "[unit]") {
    fixture f;
    f.handler().start_readiness_checks(std::chrono::milliseconds(50));
    std::optional<http_reply> r;
    for (int i = 0; i < 200 && !r; ++i) {
        r = f.handler().check_head(get("/readyz"));
        if (!r) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->route == "/readyz");
    auto held = f.parts->pool.acquire(std::chrono::milliseconds(100));
    auto held2 = f.parts->pool.acquire(std::chrono::milliseconds(100));
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    r = f.handler().check_head(get("/readyz"));
    REQUIRE(r);
    CHECK(r->status == 200);
}

// ---- response compression ----------------------------------------------------------------

TEST_CASE("accepts_gzip reads Accept-Encoding with its q-values", "[unit]") {
    CHECK(accepts_gzip("gzip"));
    CHECK(accepts_gzip("GZIP"));
    CHECK(accepts_gzip("x-gzip"));
    CHECK(accepts_gzip("deflate, gzip;q=0.5, br"));
    CHECK(accepts_gzip(" gzip ; q=1.0 "));
    CHECK(accepts_gzip("*"));
    CHECK(accepts_gzip("identity, *;q=0.1"));
    CHECK_FALSE(accepts_gzip(""));
    CHECK_FALSE(accepts_gzip("identity"));
    CHECK_FALSE(accepts_gzip("deflate, br"));
    CHECK_FALSE(accepts_gzip("gzip;q=0"));
    CHECK_FALSE(accepts_gzip("gzip;q=0.000"));
    CHECK_FALSE(accepts_gzip("*, gzip;q=0"));  // gzip named and refused: * does not override
    CHECK_FALSE(accepts_gzip("*;q=0"));
    CHECK_FALSE(accepts_gzip("gzip;q=abc"));  // unreadable: the safe side
    CHECK_FALSE(accepts_gzip("gzipper"));
}

TEST_CASE("a JSON reply of 1 KiB or more is gzipped for a client that accepts it", "[unit]") {
    http_reply big;
    big.body = "{\"results\":[" + std::string(2000, ' ') + "]}";
    const std::string original = big.body;
    http_reply plain = big;
    compress_reply(big, "gzip, deflate");
    CHECK(header(big, "Content-Encoding") == "gzip");
    CHECK(header(big, "Vary") == "Accept-Encoding");
    CHECK(big.body.size() < original.size() / 10);
    std::string inflated;
    REQUIRE(gzip_decompress(big.body, inflated, 1 << 20).error == gunzip_error::none);
    CHECK(inflated == original);
    // Not accepted: the same body, but Vary says the form depends on the header.
    compress_reply(plain, "identity");
    CHECK(plain.body == original);
    CHECK(header(plain, "Content-Encoding").empty());
    CHECK(header(plain, "Vary") == "Accept-Encoding");
    // Small replies and non-JSON replies are left alone.
    http_reply small = json_message(200, "Record ingested");
    compress_reply(small, "gzip");
    CHECK(small.headers.empty());
    http_reply text;
    text.content_type = "text/plain; version=0.0.4; charset=utf-8";
    text.body = std::string(4096, 'x');
    compress_reply(text, "gzip");
    CHECK(text.body == std::string(4096, 'x'));
    CHECK(text.headers.empty());
}

TEST_CASE("a large batch answer compresses to a small fraction of its size", "[unit]") {
    fixture f;
    std::string body = "{\"records\":[";
    for (int i = 0; i < 500; ++i) {
        if (i > 0) body += ",";
        body +=
            record("Z" + std::to_string(i % 50), "Z" + std::to_string(i), "2026-02-27 10:00:00");
    }
    body += "]}";
    http_reply r = f.handler().handle(post(body));
    REQUIRE(r.status == 200);
    const std::size_t plain = r.body.size();
    compress_reply(r, "gzip");
    INFO(plain << " bytes -> " << r.body.size());
    CHECK(header(r, "Content-Encoding") == "gzip");
    CHECK(r.body.size() * 5 < plain);
}
