// A corpus of bad requests against ONE running opendms-central (real binary, real
// PostgreSQL): malformed and truncated JSON, wrong types, overlong strings, NUL bytes,
// invalid UTF-8, 100 MiB bodies, a gzip bomb, SQL metacharacters, header floods, a client
// sending one byte a second, bad routes, methods and framing. Each case must get its 4xx
// (or be cut off), never a 5xx; after each, a normal request on a fresh connection must
// still get 200; at the end the process is alive and the table holds exactly what the
// valid requests stored, the SQL metacharacters byte for byte.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <functional>
#include <set>
#include <sstream>

#include "central_process.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
using opendms::db::dialect;
namespace t = opendms::test;

const std::string token = "bad-requests-token-0123456789abcdefghijklmnopq";
constexpr unsigned closed = 0;  // expected: the server closes without a (whole) response
constexpr std::size_t mib = 1024 * 1024;

struct bad_case {
    std::string name;
    std::function<t::http_result(unsigned short port)> run;
    std::set<unsigned> expected;  // statuses; `closed` for a connection cut off
    std::string error_field;      // for a 422: a field that must be in "errors"
    int stores = 0;               // records the case itself stores (valid odd requests)
    std::function<void(const t::http_result&)> check;  // optional extra checks
};

t::header_list json_headers(const std::string& content_type = "application/json") {
    t::header_list h{{"Authorization", "Bearer " + token}};
    if (!content_type.empty()) h.emplace_back("Content-Type", content_type);
    return h;
}

/// POST /api/ingest with `body` and `headers` on a fresh connection.
std::function<t::http_result(unsigned short)> post(std::string body,
                                                   t::header_list headers = json_headers()) {
    return [body = std::move(body), headers = std::move(headers)](unsigned short port) {
        return t::http_request_once(port, "POST", "/api/ingest", headers, body);
    };
}

/// Sends raw bytes on a fresh connection.
std::function<t::http_result(unsigned short)> raw(std::string bytes) {
    return
        [bytes = std::move(bytes)](unsigned short port) { return t::http_raw_once(port, bytes); };
}

/// The head of an ingest POST (without the final blank line), for hand-made framing.
std::string ingest_head(const std::string& extra_lines) {
    return "POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
           "\r\nContent-Type: application/json\r\n" + extra_lines;
}

/// A valid seed-form record with these field texts spliced in (JSON fragments).
std::string record_with(const std::string& duck_json, const std::string& extra = "") {
    return R"x({"duck_id":)x" + duck_json +
           R"x(,"topic":"status","message_id":"BAD1","payload":"p","hops":1,"duck_type":3,)x"
           R"x("created_at":"2026-02-27T10:00:00.000000Z")x" +
           extra + "}";
}

std::string record_field(const std::string& field, const std::string& value_json) {
    return record_with("\"DUCKBAD\"", ",\"" + field + "\":" + value_json);
}

std::string json_string(const std::string& text) {
    return "\"" + text + "\"";
}

std::string repeat(const std::string& s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

/// Sends `bytes` slowly (`piece` bytes every `pause`) for at most `limit` bytes, then reads.
std::function<t::http_result(unsigned short)> slowly(std::string bytes, std::size_t limit) {
    return [bytes = std::move(bytes), limit](unsigned short port) {
        t::http_connection c(port);
        c.send_slowly(std::string_view(bytes).substr(0, limit), 1, 1s);
        return c.read_response(30s);
    };
}

/// Sends head + all of `body` quickly, in pieces, stopping when the server answers.
std::function<t::http_result(unsigned short)> flood(std::string bytes) {
    return [bytes = std::move(bytes)](unsigned short port) {
        t::http_connection c(port);
        c.send_slowly(bytes, 16 * 1024, 0ms);
        return c.read_response(30s);
    };
}

std::function<t::http_result(unsigned short)> stream(std::string head, std::size_t total,
                                                     bool chunked) {
    return [head = std::move(head), total, chunked](unsigned short port) {
        t::http_connection c(port);
        std::string pattern(64 * 1024, 'a');
        std::size_t sent = c.stream_body(head, total, pattern, chunked, 120s);
        INFO("streamed " << sent << " of " << total << " body bytes before the server stopped");
        CHECK(sent < total);  // the server must stop reading long before 100 MiB
        return c.read_response(30s);
    };
}

std::vector<bad_case> corpus() {
    const std::string valid = record_with("\"DUCKOK\"");
    std::vector<bad_case> c;
    auto add = [&](std::string name, std::function<t::http_result(unsigned short)> run,
                   std::set<unsigned> expected, std::string error_field = "") {
        c.push_back({std::move(name), std::move(run), std::move(expected), std::move(error_field),
                     0, nullptr});
    };
    // A request that is odd but valid: 200, and it stores one record.
    auto stored = [&](std::string name, std::function<t::http_result(unsigned short)> run) {
        c.push_back({std::move(name), std::move(run), {200}, "", 1, nullptr});
    };

    // ---- JSON that is not one record object
    add("truncated JSON", post(R"x({"duck_id":"D1","topic":"status","message_id":"M)x"), {400});
    add("a trailing comma", post(R"x({"duck_id":"D1",})x"), {400});
    add("not JSON at all", post("duck_id=D1&topic=status&message_id=M1"), {400});
    add("an empty body", post(""), {400, 422});
    add("single-quoted JSON", post("{'duck_id':'D1'}"), {400});
    add("a JSON array at top level", post("[" + valid + "]"), {400});
    add("a JSON string at top level", post(R"x("DUCK0001")x"), {400});
    add("a JSON number at top level", post("42"), {400});
    add("JSON null at top level", post("null"), {400});
    add("JSON true at top level", post("true"), {400});
    add("garbage after the object", post(valid + " x"), {400});
    add("two objects in one body", post(valid + valid), {400});
    add("100000 unclosed brackets", post(R"x({"a":)x" + std::string(100000, '[')), {400, 413});
    add("50000 nested arrays, closed",
        post(R"x({"a":)x" + std::string(50000, '[') + std::string(50000, ']') + "}"), {400, 422});
    add("records that is not an array", post(R"x({"records":{"a":1}})x"), {400});
    add("a batch of 1001 records", post("{\"records\":[" + repeat("{},", 1000) + "{}]}"), {413});
    c.push_back({"batch items that are not objects",
                 post(R"x({"records":[1,"x",null,[]]})x"),
                 {200},
                 "",
                 0,
                 [](const t::http_result& r) {
                     rapidjson::Document d;
                     d.Parse(r.response.body.c_str());
                     REQUIRE(d.IsObject());
                     CHECK(d["stored"].GetInt() == 0);
                     CHECK(d["rejected"].GetInt() == 4);
                 }});
    add("an empty object", post("{}"), {422}, "message_id");

    // ---- wrong types
    add("duck_id as a number", post(record_with("1234")), {422}, "duck_id");
    add("topic as an array", post(record_field("topic", "[\"status\"]")), {422}, "topic");
    add("message_id as an object", post(record_field("message_id", "{\"a\":1}")), {422},
        "message_id");
    add("payload as an object", post(record_field("payload", "{\"text\":\"hi\"}")), {422},
        "payload");
    add("hops as a word", post(record_field("hops", "\"two\"")), {422}, "hops");
    add("hops as a fraction", post(record_field("hops", "2.5")), {422}, "hops");
    add("hops as a boolean", post(record_field("hops", "true")), {422}, "hops");
    add("hops beyond 32 bits", post(record_field("hops", "4294967296")), {422}, "hops");
    add("hops beyond 64 bits", post(record_field("hops", "123456789012345678901234567890")), {422},
        "hops");
    add("duck_type as letters", post(record_field("duck_type", "\"papa\"")), {422}, "duck_type");
    add("created_at that is not a date", post(record_field("created_at", "\"yesterday\"")), {422},
        "created_at");
    add("created_at as a Unix timestamp", post(record_field("created_at", "1772186400")), {422},
        "created_at");
    add("created_at on February 30", post(record_field("created_at", "\"2026-02-30 10:00:00\"")),
        {422}, "created_at");
    add("a uuid that is not a UUID", post(record_field("uuid", "\"not-a-uuid\"")), {422}, "uuid");
    add("an unknown payload_encoding", post(record_field("payload_encoding", "\"hex\"")), {422},
        "payload_encoding");

    // ---- lengths (max counts characters, not bytes)
    add("duck_id of 256 characters", post(record_with(json_string(std::string(256, 'D')))), {422},
        "duck_id");
    add("topic of 256 characters", post(record_field("topic", json_string(std::string(256, 't')))),
        {422}, "topic");
    add("message_id of 256 two-byte characters",
        post(record_field("message_id", json_string(repeat("\xC3\xA9", 256)))), {422},
        "message_id");
    add("origin of 33 characters", post(record_field("origin", json_string(std::string(33, 'o')))),
        {422}, "origin");
    add("destination of 33 characters",
        post(record_field("destination", json_string(std::string(33, 'd')))), {422}, "destination");
    stored("duck_id of exactly 255 characters is stored",
           post(record_with(json_string(std::string(255, 'L')))));
    stored("origin of 32 two-byte characters is stored",
           post(record_with("\"DUCKUTF\"", ",\"origin\":" + json_string(repeat("\xC3\xA9", 32)))));

    // ---- NUL bytes and invalid UTF-8
    add("a raw NUL byte inside a string", post(record_with(std::string("\"DU\0CK\"", 7))), {400});
    add("an escaped NUL in payload", post(record_field("payload", R"x("a\u0000b")x")), {422},
        "payload");
    add("an escaped NUL in duck_id", post(record_with(R"x("DU\u0000CK")x")), {422}, "duck_id");
    add("byte 0xFF in payload",
        post(record_field("payload",
                          "\"a\xFF"
                          "b\"")),
        {400, 422});
    add("a truncated UTF-8 sequence in duck_id", post(record_with("\"DUCK\xC3\"")), {400, 422});
    add("an encoded surrogate in topic", post(record_field("topic", "\"\xED\xA0\x80\"")),
        {400, 422});
    add("an overlong UTF-8 encoding in path", post(record_field("path", "\"\xC0\xAF\"")),
        {400, 422});
    add("a lone surrogate escape in payload", post(record_field("payload", R"x("\ud800")x")),
        {400, 422});

    // ---- sizes and encodings
    add("Content-Length of 100 MiB with no body sent",
        raw(ingest_head("Content-Length: " + std::to_string(100 * mib) + "\r\n\r\n")), {413});
    add("100 MiB streamed with Content-Length",
        stream(ingest_head("Content-Length: " + std::to_string(100 * mib) + "\r\n\r\n"), 100 * mib,
               false),
        {413, closed});
    add("100 MiB streamed in chunks",
        stream(ingest_head("Transfer-Encoding: chunked\r\n\r\n"), 100 * mib, true), {413, closed});
    {
        std::string bomb = t::gzip_compress(R"x({"duck_id":"BOMB","payload":")x" +
                                            std::string(64 * mib, 'A') + "\"}");
        add("a gzip bomb (64 MiB from " + std::to_string(bomb.size() / 1024) + " KiB)",
            post(bomb,
                 [] {
                     auto h = json_headers();
                     h.emplace_back("Content-Encoding", "gzip");
                     return h;
                 }()),
            {413});
        std::string gz = t::gzip_compress(valid);
        std::string corrupt = gz;
        for (std::size_t i = 10; i < corrupt.size() - 8; ++i)
            corrupt[i] = static_cast<char>(i * 37);
        auto gzip_headers = [] {
            auto h = json_headers();
            h.emplace_back("Content-Encoding", "gzip");
            return h;
        };
        add("a corrupt gzip stream", post(corrupt, gzip_headers()), {400});
        add("a truncated gzip stream", post(gz.substr(0, gz.size() / 2), gzip_headers()), {400});
        add("plain JSON labelled gzip", post(valid, gzip_headers()), {400});
        auto br = json_headers();
        br.emplace_back("Content-Encoding", "br");
        add("an unknown Content-Encoding", post(valid, br), {415});
    }

    // ---- content types
    add("Content-Type text/plain", post(valid, json_headers("text/plain")), {415});
    add("no Content-Type", post(valid, json_headers("")), {415});
    add("a form instead of JSON",
        post("duck_id=D1&topic=status&message_id=M1",
             json_headers("application/x-www-form-urlencoded")),
        {415});
    add("Content-Type application/json-seq", post(valid, json_headers("application/json-seq")),
        {415});
    stored("application/json with a charset is accepted",
           post(record_with("\"DUCKCHARSET\""), json_headers("application/json; charset=utf-8")));
    stored("a +json media type is accepted",
           post(record_with("\"DUCKPLUS\""), json_headers("application/vnd.opendms+json")));

    // ---- SQL metacharacters: stored verbatim (checked at the end)
    stored("SQL in duck_id is data", post(record_with(R"x("'; DROP TABLE cluster_data; --")x")));
    stored("SQL and quoting in payload is data",
           post(record_with("\"DUCKSQL2\"", R"x(,"payload":"Robert'); DROP TABLE cluster_data;-- )x"
                                            R"x(\\ \" ` $$ $1 ? :name %s %_ \\x00")x")));
    stored("a tautology in message_id is data",
           post(record_field("message_id", R"x("1' OR '1'='1")x")));
    stored("placeholders in topic are data",
           post(record_with("\"DUCKSQL4\"",
                            R"x(,"topic":"status\\'; SELECT pg_sleep(10); -- ? $2")x")));

    // ---- headers
    {
        std::string many = ingest_head("");
        for (int i = 0; i < 10000; ++i) many += "X-Flood-" + std::to_string(i) + ": v\r\n";
        add("10000 headers", flood(many + "Content-Length: 2\r\n\r\n{}"), {431, 400, closed});
        add("one header of 100 KiB",
            flood(ingest_head("X-Big: " + std::string(100 * 1024, 'b') + "\r\n") +
                  "Content-Length: 2\r\n\r\n{}"),
            {431, closed});
        add("a request target of 100 KiB",
            flood("GET /" + std::string(100 * 1024, 'p') + " HTTP/1.1\r\nHost: x\r\n\r\n"),
            {431, 414, 400, closed});
    }
    add("a header line without a colon",
        raw(ingest_head("NoColonHere\r\nContent-Length: 2\r\n\r\n{}")), {400});
    add("a header name with a space",
        raw(ingest_head("Bad Header: x\r\nContent-Length: 2\r\n\r\n{}")), {400});
    add("a control character in a header value",
        raw(ingest_head("X-Ctl: a\x01"
                        "b\r\nContent-Length: 2\r\n\r\n{}")),
        {400});
    add("LF-only line endings",
        raw("POST /api/ingest HTTP/1.1\nHost: x\nAuthorization: Bearer " + token +
            "\nContent-Type: application/json\nContent-Length: 2\n\n{}"),
        {400, 422});

    // ---- slow and short clients (CENTRAL_REQUEST_TIMEOUT=2 on this server)
    add("one byte a second (slowloris)", slowly(ingest_head("Content-Length: 2\r\n\r\n{}"), 60),
        {408, closed});
    add("a body sent one byte a second",
        [valid](unsigned short port) {
            t::http_connection conn(port);
            conn.send_raw(
                ingest_head("Content-Length: " + std::to_string(valid.size()) + "\r\n\r\n"));
            conn.send_slowly(valid.substr(0, 40), 1, 1s);
            return conn.read_response(30s);
        },
        {408, closed});
    add("a body shorter than its Content-Length",
        [valid](unsigned short port) {
            t::http_connection conn(port);
            conn.send_raw(ingest_head("Content-Length: 100\r\n\r\n") + valid.substr(0, 10));
            return conn.read_response(30s);
        },
        {408, closed});
    add("half-closed after part of the body",
        [valid](unsigned short port) {
            t::http_connection conn(port);
            conn.send_raw(ingest_head("Content-Length: 100\r\n\r\n") + valid.substr(0, 10));
            conn.shutdown_write();
            return conn.read_response(30s);
        },
        {400, closed});

    // ---- routes and methods
    add("an unknown route", raw("GET /api/nothing HTTP/1.1\r\nHost: x\r\n\r\n"), {404});
    add("the site root", raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), {404});
    add("a path below the ingest route",
        raw(t::format_request("POST", "/api/ingest/extra", json_headers(), valid)), {404});
    add("a path traversal", raw("GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"), {400, 404});
    c.push_back({"GET on the ingest route",
                 raw("GET /api/ingest HTTP/1.1\r\nHost: x\r\n\r\n"),
                 {405},
                 "",
                 0,
                 [](const t::http_result& r) {
                     CHECK(r.response.header("Allow").find("POST") != std::string::npos);
                 }});
    add("PUT on the ingest route",
        raw(t::format_request("PUT", "/api/ingest", json_headers(), valid)), {405});
    add("DELETE on the ingest route",
        raw("DELETE /api/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
            "\r\n\r\n"),
        {405});
    add("POST on /healthz", raw(t::format_request("POST", "/healthz", json_headers(), valid)),
        {405});
    add("an unknown method", raw(t::format_request("BREW", "/api/ingest", json_headers(), valid)),
        {400, 405});

    // ---- HTTP framing
    stored("HTTP/1.0 with a valid record is served and closed", [](unsigned short port) {
        t::http_connection conn(port);
        conn.send_raw(t::format_request("POST", "/api/ingest", json_headers(),
                                        record_with("\"DUCKHTTP10\""), "HTTP/1.0"));
        t::http_result r = conn.read_response(30s);
        CHECK(conn.wait_closed(30s));
        return r;
    });
    add("a garbage request line", raw("HELLO\r\n\r\n"), {400});
    add("binary garbage",
        raw(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) +
            std::string(200, '\x8f') + "\r\n\r\n"),
        {400, closed});
    add("only blank lines", raw("\r\n\r\n\r\n\r\n"), {400, 408, closed});
    add("an absurd Content-Length",
        raw(ingest_head("Content-Length: 99999999999999999999999\r\n\r\n{}")), {400, 413});
    add("a negative Content-Length", raw(ingest_head("Content-Length: -1\r\n\r\n{}")), {400});
    add("a Content-Length that is not a number", raw(ingest_head("Content-Length: abc\r\n\r\n{}")),
        {400});
    add("two different Content-Lengths",
        raw(ingest_head("Content-Length: 2\r\nContent-Length: 20\r\n\r\n{}")), {400});
    add("Content-Length together with chunked",
        raw(ingest_head("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n") +
            "4\r\n{xx}\r\n0\r\n\r\n"),
        {400});
    add("chunked garbage",
        raw(ingest_head("Transfer-Encoding: chunked\r\n\r\n") + "ZZZ\r\nnot a chunk\r\n\r\n"),
        {400, closed});
    add("a chunk size that overflows",
        raw(ingest_head("Transfer-Encoding: chunked\r\n\r\n") +
            "FFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n"),
        {400, 413, closed});

    // ---- authentication
    add("Basic instead of Bearer",
        post(valid, {{"Authorization", "Basic " + token}, {"Content-Type", "application/json"}}),
        {401});
    add("Bearer without a token",
        post(valid, {{"Authorization", "Bearer "}, {"Content-Type", "application/json"}}), {401});
    add("a wrong token",
        post(valid, {{"Authorization", "Bearer x" + token}, {"Content-Type", "application/json"}}),
        {401});
    return c;
}

/// The JSON body every reply must carry (http_server.hpp): an object with a message.
void check_reply_shape(const t::http_result& r, const bad_case& bc) {
    CHECK(r.response.has_header("Content-Length"));
    rapidjson::Document d;
    d.Parse(r.response.body.c_str(), r.response.body.size());
    INFO("body: " << r.response.body.substr(0, 300));
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d.IsObject());
    if (r.response.status != 200) {
        REQUIRE(d.HasMember("message"));
        CHECK(d["message"].IsString());
    }
    if (!bc.error_field.empty()) {
        REQUIRE(d.HasMember("errors"));
        CHECK(d["errors"].HasMember(bc.error_field.c_str()));
    }
}

std::string probe_record(int n) {
    return R"x({"duck_id":"PROBE)x" + std::to_string(n) +
           R"x(","topic":"status","message_id":"P1","payload":"probe","hops":0,"duck_type":1,)x"
           R"x("created_at":"2026-02-27T10:00:00.000000Z"})x";
}

}  // namespace

TEST_CASE("every request of the bad-request corpus gets its 4xx and the server keeps serving",
          "[integration][central][fault]") {
    t::temp_dir dir;
    t::scratch_database db(dialect::pgsql);
    auto env = t::central_env(db.options(), token);
    env["CENTRAL_REQUEST_TIMEOUT"] = "2";
    env["CENTRAL_IDLE_TIMEOUT"] = "5";
    t::central_server server(dir.path(), env);
    server.migrate();
    server.start();
    const unsigned short port = server.port();

    std::vector<bad_case> cases = corpus();
    REQUIRE(cases.size() >= 40);
    std::int64_t expected_rows = 0;
    int probe = 0;
    for (const bad_case& bc : cases) {
        INFO("case: " << bc.name);
        t::http_result r = bc.run(port);
        INFO("got: " << r.describe());
        unsigned got = r.ok() ? r.response.status : closed;
        CHECK(r.outcome != t::http_outcome::timeout);
        CHECK(r.outcome != t::http_outcome::malformed);
        CHECK(got < 500);
        CHECK(bc.expected.count(got) == 1);
        if (r.ok()) {
            check_reply_shape(r, bc);
            if (bc.check) bc.check(r);
        }
        if (got == 200) expected_rows += bc.stores;

        // The server still serves a normal request on a fresh connection.
        t::http_result ok = t::post_ingest(port, token, probe_record(probe++));
        INFO("probe after the case: " << ok.describe());
        CHECK(ok.status() == 200);
        if (ok.status() == 200) ++expected_rows;
        REQUIRE(server.running());
    }

    CHECK(server.running());
    auto conn = db.connect();
    CHECK(t::count_rows(*conn, "cluster_data") == expected_rows);
    auto probes = conn->query("SELECT COUNT(*) FROM cluster_data WHERE duck_id LIKE 'PROBE%'");
    REQUIRE(probes);
    CHECK(probes->data[0].get_int(0) == static_cast<std::int64_t>(cases.size()));

    // SQL metacharacters came back byte for byte, and the table is still there.
    auto text_of = [&](const std::string& column, const std::string& where_column,
                       const std::string& value) {
        auto r = conn->query(
            "SELECT " + column + " FROM cluster_data WHERE " + where_column + " = ?", {value});
        REQUIRE(r);
        REQUIRE(r->size() == 1);
        return r->data[0].get_text(0).value_or("<NULL>");
    };
    CHECK(text_of("topic", "duck_id", "'; DROP TABLE cluster_data; --") == "status");
    CHECK(text_of("payload", "duck_id", "DUCKSQL2") ==
          "Robert'); DROP TABLE cluster_data;-- \\ \" ` $$ $1 ? :name %s %_ \\x00");
    CHECK(text_of("duck_id", "message_id", "1' OR '1'='1") == "DUCKBAD");
    CHECK(text_of("topic", "duck_id", "DUCKSQL4") == "status\\'; SELECT pg_sleep(10); -- ? $2");
    CHECK(text_of("origin", "duck_id", "DUCKUTF") == repeat("\xC3\xA9", 32));
    CHECK(text_of("duck_id", "duck_id", std::string(255, 'L')).size() == 255);

    // No request was ever answered with a 5xx (the server's own count).
    t::http_result m = t::get_path(port, "/metrics");
    REQUIRE(m.status() == 200);
    std::istringstream lines(m.response.body);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("opendms_http_requests_total{", 0) == 0) {
            INFO(line);
            CHECK(line.find("status=\"5") == std::string::npos);
        }
    }
    CHECK(server.stop() == 0);
}
