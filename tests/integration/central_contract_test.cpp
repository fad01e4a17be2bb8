// The seed's ingest contract, end to end: the real opendms-central binary (`serve`) on real
// PostgreSQL and MariaDB, spoken to over real HTTP. What a Laravel OpenDMS field node sends
// today must work unchanged (401/503/200/422 exactly as the seed answers), a retried POST
// must never add a row, created_at must survive as sent, and two server instances on one
// database must not store a record twice however the requests interleave.
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
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
using opendms::db::dialect;
namespace t = opendms::test;

const std::string shared_token = "test-shared-token-0123456789abcdefghijklmnop";
const std::string node_a_token = "node-a-token-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// A migrated scratch database and an opendms-central serving it.
struct central_under_test {
    t::temp_dir dir;
    t::scratch_database db;
    t::central_server server;

    central_under_test(dialect d, const std::string& token,
                       const std::map<std::string, std::string>& extra = {},
                       const std::string& tokens_file_text = "")
        : db(d), server(dir.path(), env_for(token, extra, tokens_file_text)) {
        server.migrate();
        server.start();
    }

    std::map<std::string, std::string> env_for(const std::string& token,
                                               const std::map<std::string, std::string>& extra,
                                               const std::string& tokens_file_text) {
        auto env = t::central_env(db.options(), token);
        if (!tokens_file_text.empty()) {
            std::string path = dir.file("tokens");
            t::write_text_file(path, tokens_file_text);
            env["CENTRAL_DMS_TOKENS_FILE"] = path;
        }
        for (const auto& [k, v] : extra) env[k] = v;
        return env;
    }

    std::int64_t rows() { return t::count_rows(*db.connect(), "cluster_data"); }
};

rapidjson::Document json_of(const t::http_result& r) {
    INFO(r.describe());
    REQUIRE(r.ok());
    rapidjson::Document d;
    d.Parse(r.response.body.c_str(), r.response.body.size());
    REQUIRE_FALSE(d.HasParseError());
    REQUIRE(d.IsObject());
    return d;
}

/// A record as the seed's Laravel field node sends it: no uuid, created_at in Carbon's
/// JSON form (or whatever `created_at` is given).
std::string seed_record(const std::string& duck, const std::string& message_id,
                        const std::string& created_at, const std::string& payload = "hello") {
    return R"x({"duck_id":")x" + duck + R"x(","topic":"status","message_id":")x" + message_id +
           R"x(","payload":")x" + payload + R"x(","path":"DUCK0001,PAPA0001","hops":2,)x" +
           R"x("duck_type":3,"created_at":")x" + created_at + R"x("})x";
}

/// A record as our field node sends it (with a uuid), through the shared to_json.
std::string our_record(const std::string& duck, const std::string& message_id,
                       opendms::unix_seconds created_at, const std::string& uuid) {
    opendms::cluster_data r;
    r.duck_id = duck;
    r.topic = "status";
    r.message_id = message_id;
    r.payload = "payload of " + duck + "/" + message_id;
    r.path = duck + ",PAPA0001";
    r.hops = 1;
    r.duck_type = 3;
    r.created_at = created_at;
    r.uuid = uuid;
    r.source_node = "field-1";
    return opendms::to_json(r);
}

std::int64_t ingested_id(const t::http_result& r) {
    auto d = json_of(r);
    CHECK(r.status() == 200);
    REQUIRE(d.HasMember("message"));
    CHECK(std::string(d["message"].GetString()) == "Record ingested");
    REQUIRE(d.HasMember("id"));
    REQUIRE(d["id"].IsInt64());
    return d["id"].GetInt64();
}

opendms::db::rows query(opendms::db::connection& c, const std::string& sql,
                        const std::vector<opendms::db::value>& params = {}) {
    auto r = c.query(sql, params);
    INFO(sql);
    REQUIRE(r);
    return std::move(*r);
}

const char* name_of(dialect d) {
    return opendms::db::dialect_name(d);
}

}  // namespace

TEST_CASE("a request without a token or with a wrong one gets 401 and stores nothing",
          "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, shared_token);
    std::string body = seed_record("DUCK0001", "A1B2", "2026-02-27T10:00:00.000000Z");

    t::http_result none = t::post_ingest(c.server.port(), "", body);
    INFO(none.describe());
    CHECK(none.status() == 401);
    CHECK(none.response.body == R"x({"message":"Unauthenticated."})x");

    t::http_result wrong = t::post_ingest(c.server.port(), shared_token + "x", body);
    INFO(wrong.describe());
    CHECK(wrong.status() == 401);
    CHECK(wrong.response.body == R"x({"message":"Unauthenticated."})x");

    t::http_result prefix = t::post_ingest(c.server.port(), shared_token.substr(0, 10), body);
    CHECK(prefix.status() == 401);

    t::header_list basic{{"Authorization", "Basic " + shared_token},
                         {"Content-Type", "application/json"}};
    t::http_result scheme =
        t::http_request_once(c.server.port(), "POST", "/api/ingest", basic, body);
    CHECK(scheme.status() == 401);

    CHECK(c.rows() == 0);
    // The token never reaches the log, even when it was wrong.
    CHECK(c.server.log().find(shared_token) == std::string::npos);
    CHECK(c.server.stop() == 0);
}

TEST_CASE("a server without CENTRAL_DMS_TOKEN answers 503: ingestion is not configured",
          "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, "");
    t::http_result r = t::post_ingest(c.server.port(), shared_token,
                                      seed_record("DUCK0001", "A1B2", "2026-02-27 10:00:00"));
    INFO(r.describe());
    CHECK(r.status() == 503);
    CHECK(r.response.body == R"x({"message":"Ingestion is not configured on this server."})x");
    CHECK(c.rows() == 0);
    // The process itself is fine: only ingestion is off.
    CHECK(t::get_path(c.server.port(), "/healthz").status() == 200);
}

TEST_CASE("a record is stored once: 200 with its id, and an identical retry gets the same id",
          "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, shared_token);
    std::string body = seed_record("DUCK0001", "A1B2", "2026-02-27T10:00:00.000000Z");

    std::int64_t first = ingested_id(t::post_ingest(c.server.port(), shared_token, body));
    CHECK(first > 0);
    std::int64_t retry = ingested_id(t::post_ingest(c.server.port(), shared_token, body));
    CHECK(retry == first);
    // The same retried on a kept-alive connection, twice more.
    t::ingest_client client(c.server.port(), shared_token);
    CHECK(ingested_id(client.post(body)) == first);
    CHECK(ingested_id(client.post(body)) == first);
    CHECK(client.connections() == 1);
    CHECK(c.rows() == 1);

    // Our form (a uuid): also stored once.
    std::string ours = our_record("DUCK0002", "C3D4", 1772186400, opendms::new_uuid_v7());
    std::int64_t mine = ingested_id(t::post_ingest(c.server.port(), shared_token, ours));
    CHECK(mine != first);
    CHECK(ingested_id(t::post_ingest(c.server.port(), shared_token, ours)) == mine);
    CHECK(c.rows() == 2);

    auto conn = c.db.connect();
    auto r = query(*conn,
                   "SELECT id, duck_id, topic, message_id, payload, path, hops, "
                   "duck_type, received_from, duplicate_of FROM cluster_data WHERE id = ?",
                   {first});
    REQUIRE(r.size() == 1);
    CHECK(r[0].get_text(1) == "DUCK0001");
    CHECK(r[0].get_text(2) == "status");
    CHECK(r[0].get_text(3) == "A1B2");
    CHECK(r[0].get_text(4) == "hello");
    CHECK(r[0].get_text(5) == "DUCK0001,PAPA0001");
    CHECK(r[0].get_int(6) == 2);
    CHECK(r[0].get_int(7) == 3);
    CHECK(r[0].get_text(8) == "default");
    CHECK(r[0].is_null(9));
}

TEST_CASE("created_at is kept exactly, in Carbon's JSON form, SQL form and with an offset",
          "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, shared_token);
    const std::vector<std::pair<std::string, std::string>> cases{
        {"2026-02-27T10:00:00.000000Z", "2026-02-27 10:00:00"},
        {"2026-03-01 23:59:59", "2026-03-01 23:59:59"},
        {"2026-02-28T18:30:15+08:00", "2026-02-28 10:30:15"},
        {"2027-12-31T23:59:59.999999Z", "2027-12-31 23:59:59"},
    };
    auto conn = c.db.connect();
    int n = 0;
    for (const auto& [sent, stored] : cases) {
        INFO(sent);
        std::string duck = "DUCKT" + std::to_string(n++);
        std::int64_t id = ingested_id(
            t::post_ingest(c.server.port(), shared_token, seed_record(duck, "T1ME", sent)));
        auto r = query(*conn, "SELECT created_at, updated_at FROM cluster_data WHERE id = ?", {id});
        REQUIRE(r.size() == 1);
        CHECK(r[0].get_text(0) == stored);
        CHECK_FALSE(r[0].is_null(1));
    }
    CHECK(c.rows() == static_cast<std::int64_t>(cases.size()));
}

TEST_CASE("a body without duck_id and message_id gets Laravel's 422 with both field errors",
          "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, shared_token);
    t::http_result r =
        t::post_ingest(c.server.port(), shared_token,
                       R"x({"topic":"status","payload":"hello","hops":2,"duck_type":3,)x"
                       R"x("created_at":"2026-02-27T10:00:00.000000Z"})x");
    INFO(r.describe());
    CHECK(r.status() == 422);
    CHECK(r.response.body ==
          R"x({"message":"The duck id field is required. (and 1 more error)","errors":)x"
          R"x({"duck_id":["The duck id field is required."],)x"
          R"x("message_id":["The message id field is required."]}})x");
    CHECK(r.response.header("Content-Type").find("application/json") == 0);

    t::http_result types =
        t::post_ingest(c.server.port(), shared_token,
                       R"x({"duck_id":"D1","topic":"status","message_id":"M1","hops":"two"})x");
    CHECK(types.status() == 422);
    CHECK(types.response.body == R"x({"message":"The hops field must be an integer.","errors":)x"
                                 R"x({"hops":["The hops field must be an integer."]}})x");
    CHECK(c.rows() == 0);
}

TEST_CASE("two messages sharing duck_id and message_id at different times are both kept",
          "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, shared_token);
    // MessageIDs are reused: the same ID a day later is another message, same payload too.
    std::int64_t a =
        ingested_id(t::post_ingest(c.server.port(), shared_token,
                                   seed_record("DUCK0001", "A1B2", "2026-02-27T10:00:00.000000Z")));
    std::int64_t b =
        ingested_id(t::post_ingest(c.server.port(), shared_token,
                                   seed_record("DUCK0001", "A1B2", "2026-02-28T10:00:00.000000Z")));
    CHECK(a != b);
    CHECK(c.rows() == 2);
    auto conn = c.db.connect();
    auto r = query(*conn,
                   "SELECT created_at FROM cluster_data WHERE duck_id = ? AND "
                   "message_id = ? AND duplicate_of IS NULL ORDER BY created_at",
                   {std::string("DUCK0001"), std::string("A1B2")});
    REQUIRE(r.size() == 2);
    CHECK(r[0].get_text(0) == "2026-02-27 10:00:00");
    CHECK(r[1].get_text(0) == "2026-02-28 10:00:00");
    // Retrying the second leaves both as they are.
    CHECK(ingested_id(
              t::post_ingest(c.server.port(), shared_token,
                             seed_record("DUCK0001", "A1B2", "2026-02-28T10:00:00.000000Z"))) == b);
    CHECK(c.rows() == 2);
}

TEST_CASE("a batch of 100 with one invalid record stores the other 99", "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, shared_token);
    std::vector<std::string> records;
    for (int i = 0; i < 100; ++i) {
        records.push_back(our_record("DUCKB" + std::to_string(i), "B" + std::to_string(i),
                                     1772186400 + i, opendms::new_uuid_v7()));
    }
    records[37] = R"x({"duck_id":"DUCKBAD","topic":"status","message_id":"BAD1","hops":"x"})x";
    t::http_result r = t::post_ingest(c.server.port(), shared_token, t::batch_body(records));
    auto doc = json_of(r);
    CHECK(r.status() == 200);
    CHECK(std::string(doc["message"].GetString()) == "Batch processed");
    CHECK(doc["stored"].GetInt() == 99);
    CHECK(doc["duplicates"].GetInt() == 0);
    CHECK(doc["mesh_duplicates"].GetInt() == 0);
    CHECK(doc["rejected"].GetInt() == 1);
    REQUIRE(doc["results"].IsArray());
    REQUIRE(doc["results"].Size() == 100);
    const auto& bad = doc["results"][37];
    CHECK(std::string(bad["status"].GetString()) == "rejected");
    REQUIRE(bad.HasMember("errors"));
    CHECK(bad["errors"].HasMember("hops"));
    std::set<std::int64_t> ids;
    for (rapidjson::SizeType i = 0; i < 100; ++i) {
        if (i == 37) continue;
        CHECK(std::string(doc["results"][i]["status"].GetString()) == "stored");
        ids.insert(doc["results"][i]["id"].GetInt64());
    }
    CHECK(ids.size() == 99);
    CHECK(c.rows() == 99);

    // The whole batch again: 99 duplicates with the same ids, still 99 rows.
    auto again = json_of(t::post_ingest(c.server.port(), shared_token, t::batch_body(records)));
    CHECK(again["stored"].GetInt() == 0);
    CHECK(again["duplicates"].GetInt() == 99);
    CHECK(again["rejected"].GetInt() == 1);
    CHECK(again["results"][0]["id"].GetInt64() == doc["results"][0]["id"].GetInt64());
    CHECK(c.rows() == 99);
}

TEST_CASE("a gzip-compressed batch is inflated and stored", "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(d, shared_token);
    std::vector<std::string> records;
    for (int i = 0; i < 20; ++i) {
        records.push_back(our_record("DUCKZ" + std::to_string(i), "Z" + std::to_string(i),
                                     1772186400 + i, opendms::new_uuid_v7()));
    }
    std::string gz = t::gzip_compress(t::batch_body(records));
    t::http_result r =
        t::post_ingest(c.server.port(), shared_token, gz, {{"Content-Encoding", "gzip"}});
    auto doc = json_of(r);
    CHECK(r.status() == 200);
    CHECK(doc["stored"].GetInt() == 20);
    CHECK(c.rows() == 20);
    auto conn = c.db.connect();
    auto row =
        query(*conn, "SELECT payload FROM cluster_data WHERE duck_id = ?", {std::string("DUCKZ7")});
    REQUIRE(row.size() == 1);
    CHECK(row[0].get_text(0) == "payload of DUCKZ7/Z7");
}

TEST_CASE("each record remembers the node whose token delivered it", "[integration][central]") {
    auto d = GENERATE(dialect::pgsql, dialect::mysql);
    INFO(name_of(d));
    central_under_test c(
        d, shared_token, {},
        "# per-node tokens\n" + t::tokens_file_line("node-a", node_a_token) + "\n");
    ingested_id(t::post_ingest(c.server.port(), shared_token,
                               seed_record("DUCKS", "S1", "2026-02-27 10:00:00")));
    ingested_id(t::post_ingest(c.server.port(), node_a_token,
                               seed_record("DUCKA", "A1", "2026-02-27 10:00:00")));
    auto batch = json_of(t::post_ingest(
        c.server.port(), node_a_token,
        t::batch_body({our_record("DUCKA2", "A2", 1772186400, opendms::new_uuid_v7())})));
    CHECK(batch["stored"].GetInt() == 1);

    auto conn = c.db.connect();
    auto r = query(*conn, "SELECT duck_id, received_from FROM cluster_data ORDER BY duck_id");
    REQUIRE(r.size() == 3);
    CHECK(r[0].get_text(0) == "DUCKA");
    CHECK(r[0].get_text(1) == "node-a");
    CHECK(r[1].get_text(0) == "DUCKA2");
    CHECK(r[1].get_text(1) == "node-a");
    CHECK(r[2].get_text(0) == "DUCKS");
    CHECK(r[2].get_text(1) == "default");
    // `status` counts by node.
    t::program_result st = c.server.run_command({"status"});
    INFO(st.output);
    CHECK(st.code == 0);
    CHECK(st.output.find("node-a") != std::string::npos);
}

namespace {

/// What one server instance reported over all of its batches.
struct batch_totals {
    std::atomic<int> stored{0};
    std::atomic<int> duplicates{0};
    std::atomic<int> mesh_duplicates{0};
    std::atomic<int> rejected{0};
    std::atomic<int> retried_503{0};
    std::atomic<int> failures{0};
};

/// Sends `batches` (indices into `bodies`) on one kept-alive connection; a 503 (the
/// contract's "retry later") is retried, anything else than 200 is a failure.
void send_batches(unsigned short port, const std::vector<std::string>& bodies,
                  const std::vector<std::size_t>& batches, batch_totals& totals,
                  std::string& first_failure, std::mutex& failure_mutex) {
    t::ingest_client client(port, shared_token);
    for (std::size_t b : batches) {
        for (int attempt = 0;; ++attempt) {
            t::http_result r = client.post(bodies[b]);
            if (r.status() == 503 && attempt < 50) {
                ++totals.retried_503;
                std::this_thread::sleep_for(100ms);
                continue;
            }
            rapidjson::Document d;
            if (r.ok()) d.Parse(r.response.body.c_str());
            if (r.status() != 200 || d.HasParseError() || !d.IsObject() || !d.HasMember("stored")) {
                ++totals.failures;
                std::lock_guard<std::mutex> lock(failure_mutex);
                if (first_failure.empty()) first_failure = r.describe();
                break;
            }
            totals.stored += d["stored"].GetInt();
            totals.duplicates += d["duplicates"].GetInt();
            totals.mesh_duplicates += d["mesh_duplicates"].GetInt();
            totals.rejected += d["rejected"].GetInt();
            break;
        }
    }
}

}  // namespace

TEST_CASE("two server instances on one PostgreSQL store 1000 records sent to both exactly once",
          "[integration][central]") {
    t::temp_dir dir;
    t::scratch_database db(dialect::pgsql);
    auto env = t::central_env(db.options(), shared_token);
    env["CENTRAL_RETRY_AFTER"] = "1";
    t::central_server one(dir.path(), env, "one");
    t::central_server two(dir.path(), env, "two");
    one.migrate();
    one.start();
    two.start();

    // 1000 records: half as our field node sends them (uuid), half as a seed node (no uuid,
    // created_at: the derived key). Batches of 50; the second server's batches are shifted
    // by 25 records, so each of its batches overlaps two of the first's.
    std::vector<std::string> records;
    for (int i = 0; i < 1000; ++i) {
        std::string duck = "DUCK" + std::to_string(10000 + i);
        if (i % 2 == 0) {
            records.push_back(
                our_record(duck, "M" + std::to_string(i), 1772186400 + i, opendms::new_uuid_v7()));
        } else {
            records.push_back(
                seed_record(duck, "M" + std::to_string(i),
                            "2026-02-27T10:" + std::to_string(10 + i % 50) + ":00.000000Z"));
        }
    }
    auto make_batches = [&](std::size_t offset) {
        std::vector<std::string> bodies;
        for (std::size_t start = 0; start < records.size(); start += 50) {
            std::vector<std::string> part;
            for (std::size_t k = 0; k < 50; ++k) {
                part.push_back(records[(start + offset + k) % records.size()]);
            }
            bodies.push_back(t::batch_body(part));
        }
        return bodies;
    };
    std::vector<std::string> bodies_one = make_batches(0);
    std::vector<std::string> bodies_two = make_batches(25);

    batch_totals totals_one;
    batch_totals totals_two;
    std::mutex failure_mutex;
    std::string first_failure;
    std::vector<std::thread> threads;
    for (int thread = 0; thread < 4; ++thread) {
        std::vector<std::size_t> mine;
        for (std::size_t b = static_cast<std::size_t>(thread); b < bodies_one.size(); b += 4) {
            mine.push_back(b);
        }
        threads.emplace_back([&, mine] {
            send_batches(one.port(), bodies_one, mine, totals_one, first_failure, failure_mutex);
        });
        threads.emplace_back([&, mine] {
            send_batches(two.port(), bodies_two, mine, totals_two, first_failure, failure_mutex);
        });
    }
    for (auto& th : threads) th.join();

    INFO(first_failure);
    INFO("503s retried: " << totals_one.retried_503 + totals_two.retried_503);
    CHECK(totals_one.failures == 0);
    CHECK(totals_two.failures == 0);
    // Each server saw each record once: stored by exactly one of them, a duplicate for the
    // other.
    CHECK(totals_one.stored + totals_one.duplicates == 1000);
    CHECK(totals_two.stored + totals_two.duplicates == 1000);
    CHECK(totals_one.stored + totals_two.stored == 1000);
    CHECK(totals_one.mesh_duplicates + totals_two.mesh_duplicates == 0);
    CHECK(totals_one.rejected + totals_two.rejected == 0);

    auto conn = db.connect();
    CHECK(t::count_rows(*conn, "cluster_data") == 1000);
    auto distinct = query(*conn,
                          "SELECT COUNT(DISTINCT uuid), COUNT(DISTINCT duck_id), "
                          "COUNT(uuid) FROM cluster_data");
    CHECK(distinct[0].get_int(0) == 1000);
    CHECK(distinct[0].get_int(1) == 1000);
    CHECK(distinct[0].get_int(2) == 1000);
    CHECK(one.stop() == 0);
    CHECK(two.stop() == 0);
}
