// Who may ingest: the shared token, the per-node tokens file (parse errors by line),
// Bearer header parsing, reloads that keep the old table on failure, and authenticate()
// running while a reload swaps the table.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "opendms/central/token_store.hpp"

using namespace opendms;
using namespace opendms::central;

namespace {

namespace fs = std::filesystem;

// A scratch directory removed at the end of the test.
class temp_dir {
public:
    temp_dir() {
        static std::atomic<int> counter{0};
        path_ = fs::temp_directory_path() / ("opendms-token-test-" + std::to_string(getpid()) +
                                             "-" + std::to_string(counter++));
        fs::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

void write_file(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << text;
        REQUIRE(out.good());
    }
    fs::rename(tmp, path);  // atomic, as an operator's editor or deploy tool would do
}

std::string line(const std::string& node, const std::string& token) {
    return node + " " + token_hash(token) + "\n";
}

std::string parse_error(const std::string& text) {
    auto parsed = parse_tokens_file(text);
    REQUIRE_FALSE(parsed.is_ok());
    CHECK(parsed.error().code() == errc::invalid_argument);
    return parsed.error().message();
}

const std::string hash_a = token_hash("token-a");

}  // namespace

TEST_CASE("token_hash is sha256: and the lower-case hex digest", "[unit]") {
    CHECK(token_hash("abc") ==
          "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(token_hash("") ==
          "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("new tokens are 43 base64url characters and never repeat", "[unit]") {
    const std::string a = new_token();
    const std::string b = new_token();
    CHECK(a.size() == 43);
    CHECK(a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
    CHECK(a != b);
}

TEST_CASE("a tokens file with comments, blank lines, tabs and CRLF parses", "[unit]") {
    const std::string text = "# central tokens\n\n  \nnode-1 " + hash_a + "\r\n\tnode_2.b\t\t" +
                             token_hash("token-b") + "  \n   # indented comment\n";
    auto parsed = parse_tokens_file(text);
    REQUIRE(parsed.is_ok());
    REQUIRE(parsed->size() == 2);
    CHECK((*parsed)[0].node == "node-1");
    CHECK((*parsed)[0].sha256_hex == hash_a.substr(7));
    CHECK((*parsed)[1].node == "node_2.b");
    CHECK(parse_tokens_file("").is_ok());
    CHECK(parse_tokens_file("# nothing yet\n")->empty());
}

TEST_CASE("tokens file errors name the line and the problem", "[unit]") {
    CHECK(parse_error("# c\nnode-1\n") == "line 2: expected '<node-name> sha256:<64 hex digits>'");
    CHECK(parse_error("n1 " + hash_a + " extra\n") ==
          "line 1: expected '<node-name> sha256:<64 hex digits>'");
    CHECK(parse_error("\n\nn/1 " + hash_a) ==
          "line 3: invalid node name 'n/1' (1 to 64 of A-Z a-z 0-9 . _ -)");
    CHECK(parse_error(std::string(65, 'n') + " " + hash_a).rfind("line 1: invalid node name", 0) ==
          0);
    CHECK(parse_error("n1 " + hash_a.substr(7)) ==
          "line 1: the hash of 'n1' must be 'sha256:' and 64 lower-case hex digits");
    std::string upper = hash_a;
    upper[10] = 'A';  // a hex digit, but upper-case
    CHECK(parse_error("n1 " + upper).rfind("line 1: the hash of 'n1'", 0) == 0);
    CHECK(parse_error("n1 " + hash_a + "0").rfind("line 1: the hash", 0) == 0);
    CHECK(parse_error("n1 sha1:" + hash_a.substr(7)).rfind("line 1: the hash", 0) == 0);
}

TEST_CASE("a node name or a token used twice is refused", "[unit]") {
    CHECK(parse_error(line("n1", "a") + line("n2", "b") + "\n" + line("n1", "c")) ==
          "line 4: duplicate node name 'n1' (also on line 1)");
    CHECK(parse_error(line("n1", "a") + line("n2", "a")) ==
          "line 2: node 'n2' has the same token as line 1; each node needs its own token");
}

TEST_CASE("without a shared token or a tokens file ingestion is not configured", "[unit]") {
    for (auto shared : {std::optional<std::string>{}, std::optional<std::string>{""}}) {
        token_store store(shared, "");
        REQUIRE(store.load().is_ok());
        CHECK(store.authenticate("Bearer anything").outcome == auth_outcome::not_configured);
        CHECK(store.authenticate("").outcome == auth_outcome::not_configured);
        CHECK(store.node_count() == 0);
    }
}

TEST_CASE("the shared token authenticates as node default", "[unit]") {
    token_store store(std::string("s3cret"), "");
    REQUIRE(store.load().is_ok());
    for (const char* header : {"Bearer s3cret", "bearer s3cret", "BEARER    s3cret"}) {
        INFO(header);
        const auto r = store.authenticate(header);
        CHECK(r.outcome == auth_outcome::ok);
        CHECK(r.node == "default");
    }
}

TEST_CASE("missing, malformed and wrong Authorization headers are unauthenticated", "[unit]") {
    token_store store(std::string("s3cret"), "");
    REQUIRE(store.load().is_ok());
    for (const char* header : {"", "Bearer", "Bearer ", "Bearer    ", "Bearer wrong",
                               "Bearer s3cre", "Bearer s3cret2", "Bearers3cret", "Basic s3cret",
                               "s3cret", "Bearer\ts3cret", "Bearer s3cret ", " Bearer s3cret"}) {
        INFO("'" << header << "'");
        const auto r = store.authenticate(header);
        CHECK(r.outcome == auth_outcome::unauthenticated);
        CHECK(r.node.empty());
    }
}

TEST_CASE("per-node tokens name their node, next to the shared token", "[unit]") {
    temp_dir dir;
    const std::string path = dir.file("tokens");
    write_file(path, line("node-1", "tok-1") + line("node-2", "tok-2"));
    token_store store(std::string("shared"), path);
    REQUIRE(store.load().is_ok());
    CHECK(store.node_count() == 2);
    CHECK(store.authenticate("Bearer tok-1").node == "node-1");
    CHECK(store.authenticate("Bearer tok-2").node == "node-2");
    CHECK(store.authenticate("Bearer shared").node == "default");
    CHECK(store.authenticate("Bearer tok-3").outcome == auth_outcome::unauthenticated);
}

TEST_CASE("a tokens file alone configures ingestion, even before it loads", "[unit]") {
    temp_dir dir;
    token_store store(std::nullopt, dir.file("missing"));
    const status s = store.load();
    CHECK(s.code() == errc::not_found);
    CHECK(s.message().find(dir.file("missing")) != std::string::npos);
    CHECK(store.authenticate("Bearer x").outcome == auth_outcome::unauthenticated);
}

TEST_CASE("a reload revokes a token, and a bad reload keeps the previous table", "[unit]") {
    temp_dir dir;
    const std::string path = dir.file("tokens");
    write_file(path, line("node-1", "tok-1") + line("node-2", "tok-2"));
    token_store store(std::nullopt, path);
    REQUIRE(store.load().is_ok());
    REQUIRE(store.authenticate("Bearer tok-1").outcome == auth_outcome::ok);

    write_file(path, line("node-2", "tok-2"));  // node-1 revoked
    REQUIRE(store.load().is_ok());
    CHECK(store.node_count() == 1);
    CHECK(store.authenticate("Bearer tok-1").outcome == auth_outcome::unauthenticated);
    CHECK(store.authenticate("Bearer tok-2").node == "node-2");

    write_file(path, line("node-2", "tok-2") + "node-3 sha256:typo\n");
    const status s = store.load();
    CHECK(s.code() == errc::invalid_argument);
    CHECK(s.message() == "token_store.load: " + path +
                             ": line 2: the hash of 'node-3' must be 'sha256:' and 64 lower-case "
                             "hex digits");
    CHECK(store.node_count() == 1);
    CHECK(store.authenticate("Bearer tok-2").node == "node-2");

    fs::remove(path);
    CHECK(store.load().code() == errc::not_found);
    CHECK(store.authenticate("Bearer tok-2").node == "node-2");
}

TEST_CASE("authenticate runs safely while reloads swap the table", "[unit]") {
    temp_dir dir;
    const std::string path = dir.file("tokens");
    const std::string with_1 = line("node-1", "tok-1") + line("node-2", "tok-2");
    const std::string without_1 = line("node-2", "tok-2");
    write_file(path, with_1);
    token_store store(std::nullopt, path);
    REQUIRE(store.load().is_ok());

    std::atomic<bool> stop{false};
    std::atomic<int> node2_failures{0};
    std::atomic<int> node1_wrong_name{0};
    std::atomic<long> checks{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < 3; ++t) {
        readers.emplace_back([&] {
            while (!stop.load()) {
                if (store.authenticate("Bearer tok-2").node != "node-2") ++node2_failures;
                const auto r1 = store.authenticate("Bearer tok-1");
                if (r1.outcome == auth_outcome::ok && r1.node != "node-1") ++node1_wrong_name;
                ++checks;
            }
        });
    }
    int failed_loads = 0;
    for (int i = 0; i < 200; ++i) {
        write_file(path, i % 2 == 0 ? without_1 : with_1);
        if (!store.load().is_ok()) ++failed_loads;
    }
    while (checks.load() < 100) std::this_thread::yield();  // the readers really overlapped
    stop = true;
    for (auto& t : readers) t.join();
    CHECK(failed_loads == 0);
    CHECK(node2_failures.load() == 0);
    CHECK(node1_wrong_name.load() == 0);
    CHECK(store.node_count() == 2);  // the last write had node-1 again
}
