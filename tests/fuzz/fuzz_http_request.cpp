// libFuzzer target: the central server's HTTP request path, from raw bytes to a reply,
// without sockets: Boost.Beast's request parser with the server's limits, then
// ingest_handler::check_head() on the head and ingest_handler::handle() on the whole
// request, on an in-memory SQLite database (migrated once), with a shared token.
//
// It follows what a session of http_server.cpp does with the bytes of one connection
// (that session is private to http_server.cpp; the steps below mirror
// session::do_read_header, on_header, to_request, read_body and on_read_error): up to 8
// pipelined requests, each head checked before its body is read; a reply that leaves a
// body unread, a reply with close, or a request that is not keep-alive ends the
// connection. Replies to JSON requests are compressed as the server would (compress_reply).
//
// Input: the bytes a client sends on one connection. The seeds are tests/fuzz/corpus/
// http_request/ (from the bad-request corpus of tests/integration/central_bad_requests_test.cpp
// and valid ingests); the token is "fuzz-token".
//
// Checked besides the sanitizers (a breach aborts):
//  - no reply is a 500 (a handler bug, or a database error on a healthy database);
//  - every status is one the contract names; 503 only from /readyz (its own connection
//    sees a fresh in-memory database: not migrated, so not ready);
//  - every JSON reply is a JSON object with a "message" (or "status") member;
//  - a compressed reply inflates back to the body it replaced.
#include <rapidjson/document.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "opendms/central/central_settings.hpp"
#include "opendms/central/db_pool.hpp"
#include "opendms/central/http_types.hpp"
#include "opendms/central/ingest_handler.hpp"
#include "opendms/central/metrics.hpp"
#include "opendms/central/token_store.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/gzip.hpp"
#include "opendms/log.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using namespace opendms;
using namespace opendms::central;

[[noreturn]] void fail(const char* what, std::string_view detail) {
    std::fprintf(stderr, "fuzz_http_request: %s: %.*s\n", what, static_cast<int>(detail.size()),
                 detail.data());
    std::abort();
}

/// What a server process holds: one of each, for the whole run.
struct server_parts {
    server_parts() : tokens(std::string("fuzz-token"), ""), pool(memory_db(), 1) {
        if (!tokens.load()) fail("token_store.load", "");
        {
            // Back to the pool (size 1) at the end of the block: the handler gets this
            // connection, so this migrated database.
            auto lease = pool.acquire(std::chrono::milliseconds(1000));
            if (!lease) fail("db_pool.acquire", lease.error().message());
            if (auto done = db::migrator(**lease).migrate(); !done) {
                fail("migrate", done.error().message());
            }
        }
        handler = std::make_unique<ingest_handler>(options(), tokens, pool, m, clk);
    }

    static db::connect_options memory_db() {
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = ":memory:";
        return o;
    }

    // As central_daemon.cpp's handler_options_from() with the default settings.
    handler_options options() const {
        handler_options o;
        o.max_body_bytes = limits.max_body_bytes;
        o.store.statement_timeout = limits.request_timeout / 3;
        o.store.lock_timeout = limits.request_timeout / 6;
        return o;
    }

    server_limits limits;
    token_store tokens;
    db_pool pool;
    metrics m;
    manual_clock clk;
    std::unique_ptr<ingest_handler> handler;
};

server_parts& the_central() {
    static server_parts* c = [] {
        log::set_threshold(log::level::error);  // access and warning lines would flood the run
        return new server_parts();  // never destroyed: the handler may be used to the last input
    }();
    return *c;
}

// session::to_request in http_server.cpp.
http_request to_request(const http::request_parser<http::string_body>& parser) {
    const auto& head = parser.get();
    http_request r;
    r.method = std::string(head.method_string());
    r.target = std::string(head.target());
    r.remote = "127.0.0.1:40000";
    r.authorization = std::string(head[http::field::authorization]);
    r.content_type = std::string(head[http::field::content_type]);
    r.content_encoding = std::string(head[http::field::content_encoding]);
    r.accept_encoding = std::string(head[http::field::accept_encoding]);
    if (const auto length = parser.content_length()) {
        r.has_content_length = true;
        r.content_length = static_cast<std::size_t>(*length);
    }
    return r;
}

void check_reply(const http_request& request, http_reply reply) {
    static const std::set<unsigned> allowed = {200, 400, 401, 404, 405, 413, 415, 422, 503};
    const std::string what = std::to_string(reply.status) + " " + reply.body;
    if (reply.status == 500) fail("a 500", what);
    if (!allowed.count(reply.status)) fail("a status outside the contract", what);
    if (reply.status == 503 && request.target.rfind("/readyz", 0) != 0) fail("a 503", what);
    if (reply.content_type == "application/json") {
        rapidjson::Document d;
        d.Parse(reply.body.c_str(), reply.body.size());
        if (d.HasParseError() || !d.IsObject()) fail("a reply that is not a JSON object", what);
        if (!d.HasMember("message") && !d.HasMember("status")) fail("a reply without message", what);
    }
    const std::string original = reply.body;
    compress_reply(reply, request.accept_encoding);
    for (const auto& [name, value] : reply.headers) {
        if (name != "Content-Encoding") continue;
        std::string inflated;
        if (gzip_decompress(reply.body, inflated, original.size() + 1).error != gunzip_error::none ||
            inflated != original) {
            fail("a compressed reply that does not inflate to its body", original);
        }
    }
}

// Feeds the bytes to the parser until `done()` or an error, as async_read_header and
// async_read do; the input holds everything the client sends, so a parser that wants more
// sees the client's EOF (put_eof), as a session does when the peer closes.
template <typename Done>
beast::error_code feed(http::request_parser<http::string_body>& parser,
                       beast::flat_buffer& buffer, Done done) {
    beast::error_code ec;
    while (!done()) {
        const std::size_t used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec && ec != http::error::need_more) return ec;
        if (ec == http::error::need_more || used == 0) {
            ec = {};
            parser.put_eof(ec);
            if (!ec && !done()) fail("the parser neither done nor failed at EOF", "");
            return ec;
        }
    }
    return ec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    server_parts& c = the_central();
    beast::flat_buffer buffer;
    buffer.commit(boost::asio::buffer_copy(buffer.prepare(size), boost::asio::buffer(data, size)));

    for (int n = 0; n < 8 && buffer.size() > 0; ++n) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(c.limits.max_header_bytes));
        parser.body_limit(static_cast<std::uint64_t>(c.limits.max_body_bytes));
        // The head (async_read_header). An error: the server answers 400/431/413 or
        // closes, and nothing of ours runs.
        if (feed(parser, buffer, [&] { return parser.is_header_done(); })) return 0;

        const http_request head = to_request(parser);
        if (std::optional<http_reply> early = c.handler->check_head(head)) {
            const bool close = early->close;
            check_reply(head, std::move(*early));
            if (!parser.is_done() || close) return 0;
            if (!parser.get().keep_alive()) return 0;
            continue;
        }
        // The body (async_read).
        parser.eager(true);
        if (feed(parser, buffer, [&] { return parser.is_done(); })) return 0;
        http_request request = to_request(parser);
        request.body = std::move(parser.get().body());
        http_reply reply = c.handler->handle(request);
        const bool close = reply.close;
        check_reply(request, std::move(reply));
        if (close || !parser.get().keep_alive()) return 0;
    }
    return 0;
}
