// The real opendms-central under the deadlines of issue 3: a request stuck on the database
// neither holds up SIGTERM past CENTRAL_SHUTDOWN_TIMEOUT nor waits for the database forever,
// and a batch's answer is gzip-compressed for a client that accepts it.
// Needs tests/support/servers.sh (PostgreSQL).
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <future>
#include <string>
#include <thread>

#include "central_process.hpp"
#include "opendms/gzip.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
using opendms::db::dialect;
namespace t = opendms::test;

const std::string token = "shutdown-test-token-0123456789abcdefghijkl";

std::string record(int n) {
    return R"x({"duck_id":"DUCK0001","topic":"status","message_id":"S)x" + std::to_string(n) +
           R"x(","payload":"hi","hops":1,"duck_type":3,"created_at":"2026-02-27 10:00:00"})x";
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("SIGTERM with a request stuck on a locked table exits after the shutdown timeout",
          "[integration][central][fault]") {
    // Regression: the process waited for the stuck worker for ever after run() returned.
    t::temp_dir dir;
    t::scratch_database db(dialect::pgsql);
    auto env = t::central_env(db.options(), token);
    env["CENTRAL_REQUEST_TIMEOUT"] = "600";  // the database deadlines stay far away
    env["CENTRAL_SHUTDOWN_TIMEOUT"] = "1";
    t::central_server server(dir.path(), env);
    server.migrate();
    server.start();
    auto locker = db.connect();
    REQUIRE(locker->begin());
    REQUIRE(locker->execute_script("LOCK TABLE cluster_data IN ACCESS EXCLUSIVE MODE"));
    auto stuck = std::async(std::launch::async, [&] {
        return t::post_ingest(server.port(), token, record(1), {}, 30s);
    });
    std::this_thread::sleep_for(500ms);  // the request is read and waits for the table
    const auto start = std::chrono::steady_clock::now();
    server.send_signal(SIGTERM);
    const std::optional<int> code = server.wait_exit(20s);
    const double took = seconds_since(start);
    (void)locker->rollback();
    REQUIRE(code);
    INFO(server.log());
    CHECK(took < 6);
    CHECK(*code == 1);
    CHECK(server.log().find("unanswered; exiting without waiting") != std::string::npos);
    (void)stuck.get();  // the client saw the connection end, not an answer
}

TEST_CASE("a request waiting on a locked table past the lock timeout gets 503, not rejected",
          "[integration][central][fault]") {
    t::temp_dir dir;
    t::scratch_database db(dialect::pgsql);
    auto env = t::central_env(db.options(), token);
    env["CENTRAL_REQUEST_TIMEOUT"] = "6";  // lock_timeout 1 s, statement_timeout 2 s
    env["CENTRAL_RETRY_AFTER"] = "3";
    t::central_server server(dir.path(), env);
    server.migrate();
    server.start();
    auto locker = db.connect();
    REQUIRE(locker->begin());
    REQUIRE(locker->execute_script("LOCK TABLE cluster_data IN ACCESS EXCLUSIVE MODE"));
    const auto start = std::chrono::steady_clock::now();
    t::http_result r =
        t::post_ingest(server.port(), token, t::batch_body({record(1), record(2)}), {}, 30s);
    const double took = seconds_since(start);
    (void)locker->rollback();
    INFO(r.describe());
    REQUIRE(r.outcome == t::http_outcome::response);
    CHECK(r.status() == 503);
    CHECK(r.response.header("Retry-After") == "3");
    CHECK(took < 5);
    t::http_result again =
        t::post_ingest(server.port(), token, t::batch_body({record(1), record(2)}));
    CHECK(again.status() == 200);
    CHECK(again.response.body.find("\"stored\":2") != std::string::npos);
}

TEST_CASE("a batch's answer is gzip-compressed for a client that accepts gzip",
          "[integration][central]") {
    t::temp_dir dir;
    t::scratch_database db(dialect::pgsql);
    t::central_server server(dir.path(), t::central_env(db.options(), token));
    server.migrate();
    server.start();
    std::vector<std::string> records;
    for (int i = 0; i < 200; ++i) records.push_back(record(i));
    t::http_result r =
        t::post_ingest(server.port(), token, t::batch_body(records), {{"Accept-Encoding", "gzip"}});
    INFO(r.describe());
    REQUIRE(r.status() == 200);
    CHECK(r.response.header("Content-Encoding") == "gzip");
    CHECK(r.response.header("Vary") == "Accept-Encoding");
    std::string json;
    REQUIRE(opendms::gzip_decompress(r.response.body, json, 1 << 20).error ==
            opendms::gunzip_error::none);
    CHECK(json.find("\"stored\":200") != std::string::npos);
    CHECK(r.response.body.size() * 5 < json.size());
    // The same answer in plain JSON for a client that does not ask.
    t::http_result plain = t::post_ingest(server.port(), token, t::batch_body(records));
    REQUIRE(plain.status() == 200);
    CHECK(plain.response.header("Content-Encoding").empty());
    CHECK(plain.response.body.find("\"duplicates\":200") != std::string::npos);
}
