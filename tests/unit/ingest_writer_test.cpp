// The group-commit writer on SQLite files: concurrent submitters share commits and each
// gets its own outcome only after the COMMIT; a failed commit, a failed message, a refused
// record and mesh duplicates inside one batch; stop() with waiting submitters; and fail-at-N
// loops over every call of a batch. Batches are made deterministic by queueing the messages
// one by one on a writer that is not started yet, then starting it.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faulty_connection.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/ingest_store.hpp"
#include "store_snapshot.hpp"
#include "opendms/field/ingest_writer.hpp"
#include "test_servers.hpp"

using namespace opendms;
using field::ingest_options;
using field::ingest_outcome;
using field::ingest_store;
using field::ingest_writer;
using test::fault;
using test::faulty_connection;
using test::temp_dir;
using mode = config::deployment_mode;
using outcome = result<ingest_outcome>;

namespace {

const std::string hub = "hub/event";
const std::vector<std::string>& tables = test::store_tables();

std::string envelope(const std::string& device, const std::string& message_id,
                     const std::string& message, int hops = 1) {
    return "{\"from\":\"hub\",\"to\":\"controller\",\"RE\":false,\"eventType\":\"status\","
           "\"MessageID\":\"" +
           message_id + "\",\"payload\":{\"hops\":" + std::to_string(hops) +
           ",\"duckType\":2,\"DeviceID\":\"" + device + "\",\"Message\":\"" + message + "\"}}";
}

struct node {
    temp_dir dir;
    std::unique_ptr<db::connection> conn;
    manual_clock clk{1764028800000};

    node() {
        conn = open();
        db::migrator m(*conn);
        auto r = m.migrate();
        INFO(r.error().to_string());
        REQUIRE(r);
    }

    // Another connection to the same file (the test's own reads and locks).
    std::unique_ptr<db::connection> open() const {
        db::connect_options o;
        o.kind = db::dialect::sqlite;
        o.database = dir.file("field.sqlite");
        auto c = db::open(o);
        INFO(c.error().to_string());
        REQUIRE(c);
        return std::move(*c);
    }

    db::connection& c() { return *conn; }
};

ingest_options hybrid() {
    ingest_options o;
    o.mode = mode::hybrid;
    o.node_id = "field-node-7";
    return o;
}

using test::count;
using test::counts;
using test::dump_all;
using test::query_ok;
using test::snapshot;

constexpr auto patience = std::chrono::seconds(30);

// Polls `ready` for up to 30 s; a writer that hangs fails the test instead of hanging it.
bool eventually(const std::function<bool()>& ready) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (!ready()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// The outcome of a submitter thread, waited for at most 30 s. A hung submitter cannot be
// joined, so the process ends rather than hang the suite.
outcome await(std::future<outcome>& f) {
    if (f.wait_for(patience) != std::future_status::ready) {
        std::fprintf(stderr, "ingest_writer_test: a submitter is still blocked after 30 s\n");
        std::_Exit(3);
    }
    return f.get();
}

std::future<outcome> submit_async(ingest_writer& w, const std::string& bytes) {
    return std::async(std::launch::async, [&w, &bytes] { return w.submit(hub, bytes); });
}

// Queues the messages in this order on a writer that is not started (one batch once it is),
// then starts it and returns each submitter's outcome.
std::vector<outcome> one_batch(ingest_writer& w, const std::vector<std::string>& messages) {
    std::vector<std::future<outcome>> futures;
    for (const std::string& m : messages) {
        futures.push_back(submit_async(w, m));
        const std::size_t n = futures.size();
        REQUIRE(eventually([&] { return w.queued() == n; }));
    }
    w.start();
    std::vector<outcome> out;
    for (auto& f : futures) out.push_back(await(f));
    return out;
}

// The counted calls of one batch of `messages` on a fresh node, in order.
std::vector<test::call_record> calls_of_batch(const std::vector<std::string>& messages,
                                              const std::string& prior = "") {
    node n;
    faulty_connection f(n.c());
    if (!prior.empty()) REQUIRE(ingest_store(n.c(), n.clk, hybrid()).ingest(hub, prior));
    ingest_writer w(f, n.clk, hybrid());
    for (const outcome& r : one_batch(w, messages)) REQUIRE(r);
    w.stop();
    REQUIRE(w.stats().commits == 1);
    REQUIRE(f.log().back().operation == "commit");
    return f.log();
}

std::int64_t records_with_message_id(db::connection& c, const std::string& id) {
    return query_ok(c, "select count(*) from cluster_data where message_id = ?", {id})[0]
        .get_int(0)
        .value();
}

}  // namespace

// ---- batching ---------------------------------------------------------------------------

TEST_CASE("concurrent submitters each get ok once committed and share commits", "[unit]") {
    node n;
    ingest_writer w(n.c(), n.clk, hybrid());
    w.start();
    constexpr int threads = 8, per_thread = 500;
    std::vector<std::future<std::vector<outcome>>> futures;
    for (int t = 0; t < threads; ++t) {
        futures.push_back(std::async(std::launch::async, [&w, t] {
            std::vector<outcome> out;
            for (int i = 0; i < per_thread; ++i) {
                const std::string id = "T" + std::to_string(t) + "-" + std::to_string(i);
                out.push_back(w.submit(hub, envelope("DUCK000" + std::to_string(t), id, "m")));
            }
            return out;
        }));
    }
    std::size_t ok = 0;
    for (auto& f : futures) {
        REQUIRE(f.wait_for(std::chrono::seconds(120)) == std::future_status::ready);
        for (const outcome& r : f.get()) {
            INFO(r.error().to_string());
            CHECK(r);
            if (r && *r == ingest_outcome::stored) ++ok;
        }
    }
    w.stop();
    const std::uint64_t total = threads * per_thread;
    CHECK(ok == total);
    auto check = n.open();
    CHECK(count(*check, "cluster_data") == static_cast<std::int64_t>(total));
    CHECK(count(*check, "outbox") == static_cast<std::int64_t>(total));
    CHECK(query_ok(*check, "select count(distinct message_id) from cluster_data")[0].get_int(0) ==
          static_cast<std::int64_t>(total));
    const field::writer_stats s = w.stats();
    INFO("commits " << s.commits << ", largest batch " << s.largest_batch);
    CHECK(s.committed_messages == total);
    CHECK(s.failed_messages == 0);
    CHECK(s.rollbacks == 0);
    CHECK(s.commits < total);  // batches really formed
    CHECK(s.largest_batch > 1);
    CHECK(s.largest_batch <=
          static_cast<std::size_t>(threads));  // one message in flight per submitter
}

TEST_CASE("every waiting submitter goes into one transaction, up to max_batch", "[unit]") {
    node n;
    std::vector<std::string> messages;
    for (int i = 0; i < 5; ++i)
        messages.push_back(envelope("DUCK0001", "M" + std::to_string(i), "x"));
    SECTION("all five in one commit") {
        ingest_writer w(n.c(), n.clk, hybrid());
        for (const outcome& r : one_batch(w, messages)) CHECK(r.is_ok());
        w.stop();
        CHECK(w.stats().commits == 1);
        CHECK(w.stats().largest_batch == 5);
    }
    SECTION("max_batch 2 splits them into three commits") {
        ingest_writer w(n.c(), n.clk, hybrid(), field::writer_options{2});
        for (const outcome& r : one_batch(w, messages)) CHECK(r.is_ok());
        w.stop();
        CHECK(w.stats().commits == 3);
        CHECK(w.stats().largest_batch == 2);
    }
    CHECK(count(n.c(), "cluster_data") == 5);
    CHECK(count(n.c(), "outbox") == 5);
}

TEST_CASE("two copies of one message in one batch: the second is a mesh duplicate", "[unit]") {
    node n;
    ingest_writer w(n.c(), n.clk, hybrid());
    auto r = one_batch(w, {envelope("KAMPUNG1", "4QZ7", "air naik", 1),
                           envelope("KAMPUNG1", "4QZ7", "air naik", 3),
                           envelope("KAMPUNG1", "4QZ8", "air naik", 1)});
    w.stop();
    REQUIRE(w.stats().commits == 1);
    REQUIRE(r[0]);
    REQUIRE(r[1]);
    REQUIRE(r[2]);
    CHECK(*r[0] == ingest_outcome::stored);
    CHECK(*r[1] == ingest_outcome::mesh_duplicate);
    CHECK(*r[2] == ingest_outcome::stored);
    CHECK(count(n.c(), "cluster_data") == 2);
    CHECK(count(n.c(), "outbox") == 2);
    auto d = query_ok(n.c(),
                      "select c.message_id, d.hops from mesh_duplicates d join cluster_data c on "
                      "c.id = d.cluster_data_id");
    REQUIRE(d.size() == 1);
    CHECK(d[0].get_text(0) == "4QZ7");
    CHECK(d[0].get_int(1) == 3);
}

// ---- failures ---------------------------------------------------------------------------

TEST_CASE(
    "a failed commit fails every submitter of the batch, stores none of it, and the next "
    "batch works",
    "[unit][fault]") {
    const std::vector<std::string> messages = {envelope("DUCK0001", "AAAA", "a"),
                                               envelope("DUCK0001", "BBBB", "b"), "not json",
                                               envelope("DUCK0002", "CCCC", "c")};
    const auto calls = calls_of_batch(messages);
    node n;
    faulty_connection f(n.c(), fault{calls.size()});  // the commit
    ingest_writer w(f, n.clk, hybrid());
    const auto before = dump_all(n.c());
    for (const outcome& r : one_batch(w, messages)) {
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::io_error);
        CHECK_THAT(r.error().message(), Catch::StartsWith("ingest.writer: commit: faulty.commit"));
    }
    REQUIRE(f.fired());
    CHECK(f.log().back().operation == "commit");
    auto check = n.open();
    CHECK(dump_all(*check) == before);
    CHECK(w.stats().commits == 0);
    CHECK(w.stats().failed_messages == messages.size());

    // The broker redelivers them: the same writer stores each exactly once.
    for (const std::string& m : messages) CHECK(w.submit(hub, m).is_ok());
    w.stop();
    CHECK(count(*check, "cluster_data") == 3);
    CHECK(count(*check, "outbox") == 3);
    CHECK(count(*check, "quarantine") == 1);
    CHECK(count(*check, "mesh_duplicates") == 0);
}

TEST_CASE("a record the database refuses is quarantined alone and the rest of its batch is stored",
          "[unit][fault]") {
    const std::vector<std::string> messages = {envelope("DUCK0001", "AAAA", "a"),
                                               envelope("DUCK0001", "BBBB", "b"),
                                               envelope("DUCK0002", "CCCC", "c")};
    // The second message's record insert: the 3rd "insert" call of the batch (the first
    // message's record and outbox entry come before it).
    const auto calls = calls_of_batch(messages);
    std::uint64_t at = 0, inserts = 0;
    for (std::size_t i = 0; i < calls.size() && at == 0; ++i) {
        if (calls[i].operation == "insert" && ++inserts == 2) at = i + 1;
    }
    REQUIRE(at > 0);
    REQUIRE_THAT(calls[at - 1].sql, Catch::Contains("insert into cluster_data"));

    node n;
    faulty_connection f(n.c(), fault{at, errc::invalid_argument, "value too long",
                                     test::fault_timing::after});  // the row is written
    ingest_writer w(f, n.clk, hybrid());
    auto r = one_batch(w, messages);
    w.stop();
    REQUIRE(f.fired());
    for (const outcome& o : r) REQUIRE(o);
    CHECK(*r[0] == ingest_outcome::stored);
    CHECK(*r[1] == ingest_outcome::quarantined);
    CHECK(*r[2] == ingest_outcome::stored);
    CHECK(w.stats().commits == 1);
    CHECK(w.stats().rollbacks == 0);
    CHECK(records_with_message_id(n.c(), "AAAA") == 1);
    CHECK(records_with_message_id(n.c(), "BBBB") == 0);  // rolled back to its savepoint
    CHECK(records_with_message_id(n.c(), "CCCC") == 1);
    CHECK(count(n.c(), "outbox") == 2);
    auto q = query_ok(n.c(), "select raw, reason from quarantine");
    REQUIRE(q.size() == 1);
    CHECK(q[0].get_text(0) == messages[1]);
    CHECK_THAT(q[0].get_text(1).value_or(""),
               Catch::StartsWith("the database refused the record: "));
}

TEST_CASE("a message whose statement fails gets its error alone and the rest are committed",
          "[unit][fault]") {
    const std::vector<std::string> messages = {envelope("DUCK0001", "AAAA", "a"),
                                               envelope("DUCK0001", "BBBB", "b"),
                                               envelope("DUCK0002", "CCCC", "c")};
    const auto calls = calls_of_batch(messages);
    std::uint64_t at = 0, queries = 0;  // the second message's duplicate lookup
    for (std::size_t i = 0; i < calls.size() && at == 0; ++i) {
        if (calls[i].operation == "query" && ++queries == 2) at = i + 1;
    }
    REQUIRE(at > 0);
    node n;
    faulty_connection f(n.c(), fault{at});
    ingest_writer w(f, n.clk, hybrid());
    auto r = one_batch(w, messages);
    w.stop();
    REQUIRE(r[0]);
    REQUIRE_FALSE(r[1]);
    REQUIRE(r[2]);
    CHECK(r[1].error().code() == errc::io_error);
    CHECK_THAT(r[1].error().message(), Catch::StartsWith("ingest.store: find duplicate: "));
    CHECK(w.stats().rollbacks == 1);
    CHECK(w.stats().commits == 1);
    CHECK(records_with_message_id(n.c(), "AAAA") == 1);
    CHECK(records_with_message_id(n.c(), "BBBB") == 0);
    CHECK(records_with_message_id(n.c(), "CCCC") == 1);
    CHECK(count(n.c(), "outbox") == 2);
}

TEST_CASE("stop fails the waiting submitters with unavailable and finishes the batch in hand",
          "[unit]") {
    node n;
    SECTION("a writer that never started") {
        ingest_writer w(n.c(), n.clk, hybrid());
        std::string a = envelope("DUCK0001", "AAAA", "a"), b = envelope("DUCK0001", "BBBB", "b");
        auto fa = submit_async(w, a);
        auto fb = submit_async(w, b);
        REQUIRE(eventually([&] { return w.queued() == 2; }));
        w.stop();
        for (auto* f : {&fa, &fb}) {
            outcome r = await(*f);
            REQUIRE_FALSE(r);
            CHECK(r.error().code() == errc::unavailable);
            CHECK(r.error().message() == "ingest.writer: stopped");
        }
        CHECK(count(n.c(), "cluster_data") == 0);
    }
    SECTION("a writer blocked in BEGIN by another connection's write lock") {
        auto locker = n.open();
        REQUIRE(locker->begin());  // BEGIN IMMEDIATE: holds the write lock
        ingest_writer w(n.c(), n.clk, hybrid());
        const std::string first = envelope("DUCK0001", "AAAA", "a");
        auto f1 = submit_async(w, first);
        REQUIRE(eventually([&] { return w.queued() == 1; }));
        w.start();
        REQUIRE(eventually([&] { return w.queued() == 0; }));  // taken into a batch
        const std::string second = envelope("DUCK0001", "BBBB", "b");
        auto f2 = submit_async(w, second);
        REQUIRE(eventually([&] { return w.queued() == 1; }));
        auto stopper = std::async(std::launch::async, [&w] { w.stop(); });
        REQUIRE(eventually([&] { return w.stopping(); }));
        CHECK_FALSE(w.submit(hub, envelope("DUCK0001", "CCCC", "c")).is_ok());  // refused at once
        REQUIRE(locker->rollback());  // the writer's BEGIN goes through
        REQUIRE(stopper.wait_for(patience) == std::future_status::ready);
        outcome r1 = await(f1), r2 = await(f2);
        INFO(r1.error().to_string());
        CHECK(r1.is_ok());
        REQUIRE_FALSE(r2);
        CHECK(r2.error().code() == errc::unavailable);
        CHECK(records_with_message_id(*locker, "AAAA") == 1);
        CHECK(records_with_message_id(*locker, "BBBB") == 0);
        CHECK(w.stats().failed_messages == 2);
    }
}

TEST_CASE("a writer whose database failed stores the next batch when it is back", "[unit][fault]") {
    node n;
    faulty_connection f(n.c(), fault{1, errc::io_error, "disk full", test::fault_timing::before,
                                     true});  // a disk that stays full
    ingest_writer w(f, n.clk, hybrid());
    w.start();
    const std::string m = envelope("DUCK0001", "AAAA", "a");
    for (int i = 0; i < 3; ++i) {
        outcome r = w.submit(hub, m);
        REQUIRE_FALSE(r);
        CHECK(r.error().retryable());
    }
    f.disarm();
    outcome r = w.submit(hub, m);
    INFO(r.error().to_string());
    REQUIRE(r);
    CHECK(*r == ingest_outcome::stored);
    w.stop();
    CHECK(count(n.c(), "cluster_data") == 1);
}

namespace {

// Rows a message adds in hybrid mode, by its outcome.
std::map<std::string, std::int64_t> rows_added(ingest_outcome o) {
    switch (o) {
        case ingest_outcome::stored:
            return {{"cluster_data", 1}, {"outbox", 1}};
        case ingest_outcome::mesh_duplicate:
            return {{"mesh_duplicates", 1}};
        case ingest_outcome::quarantined:
            return {{"quarantine", 1}};
    }
    return {};
}

void add_rows(std::map<std::string, std::int64_t>& counts, ingest_outcome o) {
    for (const auto& [table, k] : rows_added(o)) counts[table] += k;
}

}  // namespace

TEST_CASE(
    "fail at N over a batch: each failed submitter's message is absent, each ok one stored "
    "once, and a redelivery completes the batch",
    "[unit][fault]") {
    const bool sticky = GENERATE(false, true);
    const std::string prior = envelope("KAMPUNG1", "4QZ7", "air naik");
    const std::vector<std::string> messages = {
        envelope("KAMPUNG1", "NEW1", "baru"),         // stored
        envelope("KAMPUNG1", "4QZ7", "air naik", 4),  // a duplicate of the prior record
        "\x01\x02 not json",                          // quarantined
        envelope("KAMPUNG1", "NEW1", "baru", 2),      // a duplicate of the first, same batch
        envelope("KAMPUNG2", "NEW2", "lagi"),         // stored
    };
    const std::vector<ingest_outcome> whole = {
        ingest_outcome::stored, ingest_outcome::mesh_duplicate, ingest_outcome::quarantined,
        ingest_outcome::mesh_duplicate, ingest_outcome::stored};
    const std::size_t batch_calls = calls_of_batch(messages, prior).size();
    CAPTURE(sticky);
    std::uint64_t at = 1;
    for (; at <= batch_calls + 1; ++at) {
        CAPTURE(at);
        node n;
        REQUIRE(ingest_store(n.c(), n.clk, hybrid()).ingest(hub, prior));
        n.clk.advance_s(5);
        const snapshot before = dump_all(n.c());
        const auto counts_before = counts(n.c());
        auto counts_whole = counts_before;
        for (ingest_outcome o : whole) add_rows(counts_whole, o);

        faulty_connection f(
            n.c(), fault{at, errc::io_error, "disk full", test::fault_timing::before, sticky});
        ingest_writer w(f, n.clk, hybrid());
        const std::vector<outcome> r = one_batch(w, messages);
        if (!f.fired()) {
            for (std::size_t i = 0; i < r.size(); ++i) {
                REQUIRE(r[i]);
                CHECK(*r[i] == whole[i]);
            }
            CHECK(counts(n.c()) == counts_whole);
            break;
        }
        const std::string op = f.log().at(at - 1).operation;
        auto expected = counts_before;
        std::size_t failed = 0;
        for (const outcome& o : r) {
            if (o) {
                add_rows(expected, *o);
            } else {
                ++failed;
                CHECK(o.error().code() == errc::io_error);
            }
        }
        INFO("failed call: " << op << "; " << failed << " submitter(s) got an error");
        // A fault in BEGIN or COMMIT, or one that stays, fails the whole batch; one in a
        // message's own statement fails that message only.
        if (sticky || op == "begin" || op == "commit") {
            CHECK(failed == r.size());
            CHECK(dump_all(n.c()) == before);
        } else {
            CHECK(failed == 1);
        }
        CHECK(counts(n.c()) == expected);
        CHECK(query_ok(n.c(), "PRAGMA integrity_check")[0].get_text(0) == "ok");

        // The broker redelivers the failed ones. A first copy redelivered after its own
        // duplicate was stored swaps their roles, so only the totals are fixed.
        f.disarm();
        for (std::size_t i = 0; i < r.size(); ++i) {
            if (!r[i]) CHECK(w.submit(hub, messages[i]).is_ok());
        }
        w.stop();
        CHECK(counts(n.c()) == counts_whole);
    }
    CHECK(at == batch_calls + 1);  // every call of the batch was failed once
    CHECK(batch_calls >= 20);
}

// ---- batches from one connection ----------------------------------------------------------

namespace {

// The message ids stored in cluster_data, in id order.
std::vector<std::string> stored_ids(db::connection& c) {
    std::vector<std::string> out;
    for (const db::row& r : query_ok(c, "select message_id from cluster_data order by id").data) {
        out.push_back(r.get_text(0).value_or(""));
    }
    return out;
}

}  // namespace

TEST_CASE("fail at N: ingest_batch stores exactly the messages it reports ok, in order",
          "[unit][fault]") {
    const std::vector<std::string> ids = {"AAAA", "BBBB", "CCCC", "DDDD"};
    std::vector<std::string> messages;
    for (const std::string& id : ids) messages.push_back(envelope("DUCK0001", id, "m" + id));
    std::uint64_t n = 1;
    for (;; ++n) {
        INFO("fault at call " << n);
        node nd;
        faulty_connection f(nd.c(), fault{n});
        ingest_store store(f, nd.clk, hybrid());
        std::vector<field::batch_entry> entries(messages.size());
        std::vector<field::batch_entry*> pointers;
        for (std::size_t i = 0; i < messages.size(); ++i) {
            entries[i].topic = hub;
            entries[i].bytes = messages[i];
            entries[i].message = store.prepare(hub, messages[i]);
            pointers.push_back(&entries[i]);
        }
        const field::batch_counts counts = store.ingest_batch(pointers);
        std::vector<std::string> ok_ids;
        for (std::size_t i = 0; i < entries.size(); ++i) {
            REQUIRE(entries[i].outcome.has_value());
            if (*entries[i].outcome) {
                CHECK(**entries[i].outcome == ingest_outcome::stored);
                ok_ids.push_back(ids[i]);
            }
        }
        auto check = nd.open();
        // What was reported stored is in the database, in the batch's order, with its
        // outbox entry; what was reported failed is not there at all.
        CHECK(stored_ids(*check) == ok_ids);
        CHECK(count(*check, "outbox") == static_cast<std::int64_t>(ok_ids.size()));
        CHECK(counts.commits == (ok_ids.empty() ? 0u : 1u));
        if (!f.fired()) {
            CHECK(ok_ids == ids);  // past the last call: everything stored in one commit
            CHECK(counts.rollbacks == 0);
            break;
        }
        CHECK(ok_ids.size() < ids.size());
    }
    CHECK(n > 8);  // the loop went through the batch's calls
}

TEST_CASE("submit_batch: one connection's messages share one transaction, outcomes in order",
          "[unit]") {
    node n;
    ingest_writer w(n.c(), n.clk, hybrid());
    w.start();
    const std::vector<std::string> messages = {
        envelope("DUCK0001", "AAAA", "a"), "not json", envelope("DUCK0001", "AAAA", "a", 2),
        envelope("DUCK0002", "BBBB", "b")};
    std::vector<std::pair<std::string_view, std::string_view>> batch;
    for (const std::string& m : messages) batch.emplace_back(hub, m);
    const std::vector<outcome> out = w.submit_batch(batch);
    REQUIRE(out.size() == 4);
    REQUIRE(out[0]);
    CHECK(*out[0] == ingest_outcome::stored);
    REQUIRE(out[1]);
    CHECK(*out[1] == ingest_outcome::quarantined);
    REQUIRE(out[2]);
    CHECK(*out[2] == ingest_outcome::mesh_duplicate);  // a copy within the same batch
    REQUIRE(out[3]);
    CHECK(*out[3] == ingest_outcome::stored);
    CHECK(w.stats().commits == 1);
    CHECK(w.stats().committed_messages == 4);
    w.stop();
    // After stop() a whole batch is refused, nothing stored.
    const std::vector<outcome> late = w.submit_batch(batch);
    REQUIRE(late.size() == 4);
    for (const outcome& r : late) {
        REQUIRE_FALSE(r);
        CHECK(r.error().code() == errc::unavailable);
    }
    CHECK(count(n.c(), "cluster_data") == 2);
    CHECK(w.submit_batch({}).empty());
}
