// Per-node tokens on the real opendms-central: a tokens file (node name and SHA-256 of the
// token per line) re-read on SIGHUP, so a token is revoked or rotated without a restart;
// a broken file keeps the previous tokens (a typo never locks every node out) and the log
// says so; every record remembers which node delivered it.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>

#include "central_process.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
using opendms::db::dialect;
namespace t = opendms::test;

const std::string token_a = "token-of-node-a-0123456789abcdefghijklmnopqr";
const std::string token_b = "token-of-node-b-0123456789abcdefghijklmnopqr";

std::string record(const std::string& duck, int n) {
    return R"x({"duck_id":")x" + duck + R"x(","topic":"status","message_id":"M)x" +
           std::to_string(n) +
           R"x(","payload":"hi","hops":1,"duck_type":3,"created_at":"2026-02-27 10:00:00"})x";
}

/// A server reading its tokens from `dir`/tokens (no shared token), on a scratch database.
struct tokens_server {
    t::temp_dir dir;
    std::string tokens_path = dir.file("tokens");
    t::scratch_database db{dialect::pgsql};
    t::central_server server;
    int sent = 0;

    explicit tokens_server(const std::string& tokens_text)
        : server(dir.path(), env_for(tokens_text)) {
        server.migrate();
        server.start();
    }

    std::map<std::string, std::string> env_for(const std::string& tokens_text) {
        t::write_text_file(tokens_path, tokens_text);
        auto env = t::central_env(db.options(), "");
        env["CENTRAL_DMS_TOKENS_FILE"] = tokens_path;
        return env;
    }

    /// POSTs a new record as `duck` with `token`; the status (0 without a response).
    unsigned ingest(const std::string& token, const std::string& duck) {
        t::http_result r = t::post_ingest(server.port(), token, record(duck, sent++));
        INFO(r.describe());
        CHECK(r.outcome == t::http_outcome::response);
        return r.status();
    }

    double metric(const std::string& series) {
        t::http_result m = t::get_path(server.port(), "/metrics");
        return m.status() == 200 ? t::metric_value(m.response.body, series) : -1;
    }

    /// Sends SIGHUP and waits until the server counted one more reload with `result`.
    void reload_and_wait(const std::string& result) {
        std::string series = "opendms_tokens_reloads_total{result=\"" + result + "\"}";
        double before = metric(series);
        server.reload();
        bool seen = t::wait_until([&] { return metric(series) > before; }, 30s, 50ms);
        INFO(server.log());
        REQUIRE(seen);
    }

    /// received_from of the rows of `duck`.
    std::vector<std::string> senders(const std::string& duck) {
        auto c = db.connect();
        auto r = c->query("SELECT received_from FROM cluster_data WHERE duck_id = ? ORDER BY id",
                          {duck});
        REQUIRE(r);
        std::vector<std::string> out;
        for (const auto& row : r->data) out.push_back(row.get_text(0).value_or("<NULL>"));
        return out;
    }
};

std::string tokens_text(const std::vector<std::pair<std::string, std::string>>& nodes) {
    std::string out = "# node  sha256 of its token\n\n";
    for (const auto& [node, token] : nodes) out += t::tokens_file_line(node, token) + "\n";
    return out;
}

}  // namespace

TEST_CASE("a node's token revoked with SIGHUP gets 401 while the other node goes on",
          "[integration][central]") {
    tokens_server s(tokens_text({{"a", token_a}, {"b", token_b}}));
    CHECK(s.ingest(token_a, "DUCKA") == 200);
    CHECK(s.ingest(token_b, "DUCKB") == 200);
    // Without a shared token, nothing else gets in.
    CHECK(s.ingest("not-a-token", "DUCKX") == 401);

    t::write_text_file(s.tokens_path, tokens_text({{"a", token_a}}));
    s.reload_and_wait("ok");
    CHECK(s.ingest(token_b, "DUCKB") == 401);
    CHECK(s.ingest(token_a, "DUCKA") == 200);
    CHECK(s.ingest(token_a, "DUCKA") == 200);
    CHECK(s.server.running());

    CHECK(s.senders("DUCKA") == std::vector<std::string>{"a", "a", "a"});
    CHECK(s.senders("DUCKB") == std::vector<std::string>{"b"});
    CHECK(s.senders("DUCKX").empty());
    // The tokens never reach the log.
    std::string log = s.server.log();
    CHECK(log.find(token_a) == std::string::npos);
    CHECK(log.find(token_b) == std::string::npos);
    CHECK(s.server.stop() == 0);
}

TEST_CASE("a rotated token works after SIGHUP and the old one gets 401", "[integration][central]") {
    tokens_server s(tokens_text({{"a", token_a}, {"b", token_b}}));
    const std::string new_a = token_a + "-rotated";
    CHECK(s.ingest(token_a, "DUCKA") == 200);
    t::write_text_file(s.tokens_path, tokens_text({{"a", new_a}, {"b", token_b}}));
    s.reload_and_wait("ok");
    CHECK(s.ingest(token_a, "DUCKA") == 401);
    CHECK(s.ingest(new_a, "DUCKA") == 200);
    CHECK(s.ingest(token_b, "DUCKB") == 200);
    CHECK(s.senders("DUCKA") == std::vector<std::string>{"a", "a"});

    // Revoking every node leaves ingestion configured: 401, not "not configured".
    t::write_text_file(s.tokens_path, "# nobody\n");
    s.reload_and_wait("ok");
    CHECK(s.ingest(new_a, "DUCKA") == 401);
    CHECK(s.ingest(token_b, "DUCKB") == 401);
}

TEST_CASE("a broken tokens file on SIGHUP keeps the old tokens and the log says so",
          "[integration][central][fault]") {
    tokens_server s(tokens_text({{"a", token_a}, {"b", token_b}}));
    CHECK(s.ingest(token_a, "DUCKA") == 200);
    std::size_t log_before = s.server.log().size();

    // Line 2 is broken, and b is gone: had the file been half-applied, b would fail.
    t::write_text_file(s.tokens_path,
                       t::tokens_file_line("a", token_a) + "\nthis line is not a token entry\n");
    s.reload_and_wait("failed");
    std::string news = s.server.log().substr(log_before);
    INFO(news);
    CHECK(news.find(s.tokens_path) != std::string::npos);
    CHECK(news.find("line 2") != std::string::npos);
    // ... and that the tokens loaded before are still the ones in use.
    CHECK((news.find("previous") != std::string::npos || news.find("kept") != std::string::npos ||
           news.find("keep") != std::string::npos));
    CHECK(s.server.running());
    CHECK(s.ingest(token_a, "DUCKA") == 200);
    CHECK(s.ingest(token_b, "DUCKB") == 200);

    // A bad hash and a duplicate node are refused too.
    t::write_text_file(s.tokens_path, "a sha256:1234\n");
    s.reload_and_wait("failed");
    t::write_text_file(s.tokens_path, tokens_text({{"a", token_a}, {"a", token_b}}));
    s.reload_and_wait("failed");
    CHECK(s.ingest(token_b, "DUCKB") == 200);

    // A missing file is a failed reload as well, keeping the tokens.
    REQUIRE(std::remove(s.tokens_path.c_str()) == 0);
    s.reload_and_wait("failed");
    CHECK(s.ingest(token_b, "DUCKB") == 200);

    // Fixed: the next SIGHUP applies it.
    t::write_text_file(s.tokens_path, tokens_text({{"a", token_a}}));
    s.reload_and_wait("ok");
    CHECK(s.ingest(token_b, "DUCKB") == 401);
    CHECK(s.ingest(token_a, "DUCKA") == 200);
    CHECK(s.senders("DUCKB") == std::vector<std::string>{"b", "b", "b"});
    CHECK(s.server.stop() == 0);
}
