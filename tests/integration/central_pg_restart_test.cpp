// PostgreSQL stopped and started again under a running opendms-central with clients
// sending batches. The promises: while the database is down every ingest answer is 503
// with Retry-After (never 500, never a dropped connection); no batch is ever half stored;
// once the database is back the same server process answers 200 again by itself; after
// the clients retried their refused batches every record is in the table exactly once;
// /readyz follows the database.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "central_process.hpp"
#include "opendms/record_json.hpp"
#include "opendms/uuid.hpp"
#include "private_postgres.hpp"

namespace {

using namespace std::chrono_literals;
namespace t = opendms::test;

const std::string token = "pg-restart-token-0123456789abcdefghijklmnopqrs";
constexpr int batch_size = 50;

/// A batch of 50 new records, all with the topic "batch-<name>", so that the table says
/// how many of each batch are stored.
std::string make_batch(const std::string& name) {
    std::vector<std::string> records;
    for (int i = 0; i < batch_size; ++i) {
        opendms::cluster_data r;
        r.duck_id = "D" + name + "-" + std::to_string(i);
        r.topic = "batch-" + name;
        r.message_id = "M" + std::to_string(i);
        r.payload = "record " + std::to_string(i) + " of batch " + name;
        r.hops = 1;
        r.duck_type = 3;
        r.created_at = 1772186400 + i;
        r.uuid = opendms::new_uuid_v7();
        r.source_node = "field-1";
        records.push_back(opendms::to_json(r));
    }
    return t::batch_body(records);
}

/// What the client threads saw, shared with the test thread.
struct load {
    std::atomic<bool> stop{false};
    std::atomic<bool> paused{false};
    std::atomic<int> parked{0};
    std::atomic<int> acknowledged{0};  // batches answered 200
    std::atomic<int> refused_503{0};   // 503 answers
    std::atomic<int> refused_no_retry_after{0};
    std::atomic<int> unexpected{0};  // any other answer, or none
    std::atomic<int> unfinished{0};  // batches given up at the end
    std::mutex mutex;
    std::set<std::string> acknowledged_names;
    std::string first_unexpected;

    void note_unexpected(const std::string& what) {
        ++unexpected;
        std::lock_guard<std::mutex> lock(mutex);
        if (first_unexpected.empty()) first_unexpected = what;
    }
};

/// Parks while the test has paused the clients.
void wait_while_paused(load& l) {
    if (!l.paused) return;
    ++l.parked;
    while (l.paused) std::this_thread::sleep_for(10ms);
    --l.parked;
}

/// One client thread: sends batch after batch on a kept-alive connection, each until it
/// gets a 200 (a 503 is retried), until told to stop.
void client_loop(unsigned short port, int thread, load& l) {
    t::ingest_client client(port, token);
    for (int k = 0; !l.stop; ++k) {
        std::string name = std::to_string(thread) + "-" + std::to_string(k);
        std::string body = make_batch(name);
        auto give_up = std::chrono::steady_clock::now() + 180s;
        for (;;) {
            wait_while_paused(l);
            t::http_result r = client.post(body);
            if (r.status() == 200) {
                rapidjson::Document d;
                d.Parse(r.response.body.c_str());
                if (d.HasParseError() || !d.IsObject() || !d.HasMember("stored") ||
                    d["stored"].GetInt() + d["duplicates"].GetInt() != batch_size) {
                    l.note_unexpected("batch " + name + ": " + r.describe());
                }
                ++l.acknowledged;
                std::lock_guard<std::mutex> lock(l.mutex);
                l.acknowledged_names.insert(name);
                break;
            }
            if (r.status() == 503) {
                ++l.refused_503;
                if (!r.response.has_header("Retry-After")) ++l.refused_no_retry_after;
            } else {
                l.note_unexpected("batch " + name + ": " + r.describe());
            }
            if (std::chrono::steady_clock::now() > give_up) {
                ++l.unfinished;
                break;
            }
            std::this_thread::sleep_for(100ms);
        }
    }
}

/// topic -> number of rows, for the "batch-..." topics.
std::map<std::string, std::int64_t> rows_per_batch(const t::private_postgres& pg) {
    auto c = opendms::db::open(pg.options());
    REQUIRE(c);
    auto r = (*c)->query("SELECT topic, COUNT(*) FROM cluster_data GROUP BY topic");
    REQUIRE(r);
    std::map<std::string, std::int64_t> out;
    for (const auto& row : r->data) {
        out[row.get_text(0).value_or("")] = row.get_int(1).value_or(-1);
    }
    return out;
}

/// Every stored batch is whole; every acknowledged batch is stored.
void check_whole_batches(const t::private_postgres& pg, load& l) {
    auto stored = rows_per_batch(pg);
    int partial = 0;
    for (const auto& [topic, n] : stored) {
        if (n != batch_size && ++partial <= 5) FAIL_CHECK(topic << " holds " << n << " rows");
    }
    CHECK(partial == 0);
    std::lock_guard<std::mutex> lock(l.mutex);
    int missing = 0;
    for (const std::string& name : l.acknowledged_names) {
        if (stored.count("batch-" + name) == 0 && ++missing <= 5) {
            FAIL_CHECK("batch " << name << " got a 200 but is not stored");
        }
    }
    CHECK(missing == 0);
}

unsigned readyz(unsigned short port) {
    return t::get_path(port, "/readyz", 10s).status();
}

}  // namespace

TEST_CASE("PostgreSQL stopped and started under load: 503s, recovery, no half-stored batch",
          "[integration][central][fault]") {
    t::private_postgres pg;
    t::temp_dir dir;
    auto env = t::central_env(pg.options(), token);
    env["CENTRAL_RETRY_AFTER"] = "1";
    env["CENTRAL_DB_POOL_SIZE"] = "4";
    t::central_server server(dir.path(), env);
    server.migrate();
    server.start();
    const pid_t pid = server.pid();
    const unsigned short port = server.port();
    REQUIRE(readyz(port) == 200);

    load l;
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) clients.emplace_back([&, i] { client_loop(port, i, l); });
    struct joiner {
        load& l;
        std::vector<std::thread>& threads;
        ~joiner() {
            l.stop = true;
            l.paused = false;
            for (auto& th : threads) {
                if (th.joinable()) th.join();
            }
        }
    } join_at_exit{l, clients};

    // Load is flowing.
    REQUIRE(t::wait_until([&] { return l.acknowledged >= 20; }, 120s));

    // PostgreSQL goes away: the clients get 503s with Retry-After, /readyz says not ready.
    pg.stop();
    int refused_before = l.refused_503;
    CHECK(t::wait_until([&] { return l.refused_503 >= refused_before + 8; }, 120s));
    CHECK(t::wait_until([&] { return readyz(port) == 503; }, 60s, 200ms));
    CHECK(server.running());

    // With the clients parked, nothing is half stored (checked once the database is back).
    l.paused = true;
    REQUIRE(t::wait_until([&] { return l.parked == 4; }, 120s));
    pg.start();
    check_whole_batches(pg, l);
    int acknowledged_at_restart = l.acknowledged;
    l.paused = false;

    // The same server process recovers by itself.
    CHECK(t::wait_until([&] { return l.acknowledged >= acknowledged_at_restart + 20; }, 120s));
    CHECK(t::wait_until([&] { return readyz(port) == 200; }, 60s, 200ms));
    CHECK(server.running());
    CHECK(server.pid() == pid);

    // The clients finish their current batches (retrying 503s) and stop.
    l.stop = true;
    for (auto& th : clients) th.join();

    INFO("first unexpected answer: " << l.first_unexpected);
    INFO("503s: " << l.refused_503 << ", batches acknowledged: " << l.acknowledged);
    CHECK(l.unexpected == 0);
    CHECK(l.unfinished == 0);
    CHECK(l.refused_503 > 0);
    CHECK(l.refused_no_retry_after == 0);
    check_whole_batches(pg, l);
    auto c = opendms::db::open(pg.options());
    REQUIRE(c);
    auto totals = (*c)->query("SELECT COUNT(*), COUNT(DISTINCT uuid) FROM cluster_data");
    REQUIRE(totals);
    CHECK(totals->data[0].get_int(0) == static_cast<std::int64_t>(l.acknowledged) * batch_size);
    CHECK(totals->data[0].get_int(1) == totals->data[0].get_int(0));
    CHECK(rows_per_batch(pg).size() == l.acknowledged_names.size());

    // Never a 500 over the whole run (the server's own count).
    t::http_result m = t::get_path(port, "/metrics");
    REQUIRE(m.status() == 200);
    CHECK(m.response.body.find("status=\"500\"") == std::string::npos);
    CHECK(server.stop() == 0);
}
