// The correctness matrix (issue 5, docs/reliability.md): the whole pipeline as real
// processes (Mosquitto with the shipped configuration, opendms-field, opendms-central,
// PostgreSQL), faults injected while messages flow, and at the end the publisher's log of
// every message the broker acknowledged compared with the central's table: nothing
// missing, nothing twice. Each scenario appends its row to the results file
// (system_rig.hpp); tests/system/reliability_table.py renders the table.
//
// Bounded in CI; OPENDMS_MATRIX=long runs the long version (tests/system/run_matrix.sh).
#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "opendms/timefmt.hpp"
#include "system_rig.hpp"

namespace {

using namespace std::chrono_literals;
namespace t = opendms::test;
using env = std::map<std::string, std::string>;

/// Publishes on its own thread (Catch2 assertions stay on the test's thread).
class background_publisher {
public:
    background_publisher(t::pipeline& p, std::size_t count, std::chrono::microseconds gap)
        : thread_([&p, count, gap, this] {
              try {
                  p.publish(count, gap);
              } catch (const std::exception& e) {
                  error_ = e.what();
              }
              done_.store(true);
          }) {}
    ~background_publisher() {
        if (thread_.joinable()) thread_.join();
    }
    bool done() const { return done_.load(); }
    std::string join() {
        thread_.join();
        return error_;
    }

private:
    std::string error_;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

/// A backlog for a drain: the field node subscribes once (the broker keeps its persistent
/// session from then on), stops, the messages arrive at the broker meanwhile, and the field
/// node starts again: it ingests them all and drains them while the test injects faults.
// `count` messages stored at the field node and none delivered yet: the central is down
// while the field daemon ingests them (else, on a disk slower at fsync than the drain's
// cap, the pusher drained the backlog as fast as it came in, and the faults that follow
// found nothing to interrupt: seen once), then started again.
void build_backlog(t::pipeline& p, std::size_t count) {
    p.field().start();
    p.field().wait_subscribed(1);
    REQUIRE(p.field().stop() == 0);
    REQUIRE(p.central().stop() == 0);
    p.publish(count);
    p.field().start();
    p.field().wait_subscribed(2, 180s);  // the SUBACK queues behind the backlog
    const auto want = static_cast<std::int64_t>(count);
    REQUIRE(t::wait_until([&] { return p.field_pending() >= want; }, 180s, 200ms));
    p.central().start();
}

void check_and_record(t::pipeline& p, const std::string& scenario, const std::string& injected,
                      int times, const std::string& note = "") {
    const bool delivered = p.wait_delivered(std::chrono::seconds(t::scaled(300, 1200)));
    t::matrix_row row = p.verdict(scenario, injected, times);
    row.note = note + (delivered ? "" : (note.empty() ? "" : "; ") + std::string("NOT DRAINED in time"));
    t::record_row(row);
    INFO(scenario << ": published " << row.published << ", stored " << row.stored << ", delivered "
                  << row.delivered << ", duplicated " << row.duplicated << ", lost " << row.lost);
    INFO("field log tail: " << p.field_log().substr(p.field_log().size() > 4000 ? p.field_log().size() - 4000 : 0));
    CHECK(delivered);
    CHECK(row.published > 0);
    CHECK(row.lost == 0);
    CHECK(row.duplicated == 0);
    CHECK(row.delivered == row.published);
}

}  // namespace

TEST_CASE("matrix: the field daemon killed with kill -9 at random moments during ingest and push",
          "[system][crash]") {
    t::pipeline p(env{{"CENTRAL_DMS_BATCH_SIZE", "100"}});
    const int kills = t::scaled(12, 50);
    const std::size_t messages = static_cast<std::size_t>(t::scaled(3000, 20000));
    p.field().start();
    p.field().wait_subscribed(1);
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> pause_ms(100, 900);
    background_publisher pub(p, messages, std::chrono::microseconds(t::scaled(1500, 1000)));
    int done = 0;
    for (; done < kills; ++done) {
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
        p.field().kill_hard();
        p.field().start();
        p.field().wait_subscribed(static_cast<std::size_t>(done + 2), 60s);
    }
    REQUIRE(pub.join().empty());
    check_and_record(p, "field daemon killed during ingest and push",
                     "kill -9 of opendms-field at random moments (0.1-0.9 s apart), restarted each time",
                     done);
}

TEST_CASE("matrix: the central server killed and restarted during a drain", "[system][crash]") {
    // The drain is capped (CENTRAL_DMS_MAX_RATE) so that the kills land in its middle
    // however fast the machine is.
    t::pipeline p(env{{"CENTRAL_DMS_BATCH_SIZE", "200"}, {"CENTRAL_DMS_MAX_RATE", "2000"}});
    const int kills = t::scaled(5, 20);
    build_backlog(p, static_cast<std::size_t>(t::scaled(12000, 60000)));
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> pause_ms(100, 600);
    int done = 0;
    for (; done < kills && p.field_pending() != 0; ++done) {
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
        p.central().kill_hard();
        std::this_thread::sleep_for(300ms);
        p.central().start();
    }
    CHECK(done >= 2);  // the kills landed in the middle of the drain
    check_and_record(p, "central server killed during a drain",
                     "kill -9 of opendms-central mid-drain (drain capped at 2000 records/s), "
                     "restarted 0.3 s later",
                     done);
}

TEST_CASE("matrix: PostgreSQL restarted during a drain", "[system][fault]") {
    t::pipeline p(env{{"CENTRAL_DMS_BATCH_SIZE", "200"}, {"CENTRAL_DMS_MAX_RATE", "2000"}});
    const int restarts = t::scaled(3, 10);
    build_backlog(p, static_cast<std::size_t>(t::scaled(12000, 60000)));
    int done = 0;
    for (; done < restarts && p.field_pending() != 0; ++done) {
        std::this_thread::sleep_for(200ms);
        p.postgres().stop();
        std::this_thread::sleep_for(1s);
        p.postgres().start();
    }
    CHECK(done >= 2);
    check_and_record(p, "PostgreSQL restarted during a drain",
                     "pg_ctl stop -m fast mid-drain (drain capped at 2000 records/s), started "
                     "again 1 s later",
                     done,
                     "the central answers 503 meanwhile");
}

TEST_CASE("matrix: the link cut (refused) and blackholed, then restored", "[system][fault]") {
    t::pipeline p;  // backoff 0.2, 0.5, 1 s; request timeout 3 s
    p.field().start();
    p.field().wait_subscribed(1);
    const std::size_t per_phase = static_cast<std::size_t>(t::scaled(1000, 10000));
    p.publish(per_phase);
    REQUIRE(p.wait_delivered(60s));

    struct phase {
        t::link_proxy::mode mode;
        const char* scenario;
        const char* injected;
    };
    for (const phase& ph :
         {phase{t::link_proxy::mode::refuse, "link down (connection refused), then restored",
                "listener closed for 3 s: every attempt refused"},
          phase{t::link_proxy::mode::blackhole, "link blackholed (packets dropped), then restored",
                "connections accepted, nothing relayed for 8 s: only timeouts tell"}}) {
        p.link().set_mode(ph.mode);
        p.publish(per_phase);
        std::this_thread::sleep_for(ph.mode == t::link_proxy::mode::refuse ? 3s : 8s);
        CHECK(p.field_pending() > 0);  // nothing went through meanwhile
        p.link().set_mode(t::link_proxy::mode::pass);
        const auto restored = std::chrono::steady_clock::now();
        const bool drained = p.wait_delivered(60s);
        const double resume_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - restored).count();
        CHECK(drained);
        // The longest wait is the last backoff step (1 s + 20 % jitter), plus a request in
        // flight that the blackhole holds until its 3 s timeout, plus the drain itself.
        CHECK(resume_s < 8.0);
        char note[96];
        std::snprintf(note, sizeof note, "delivered %.1f s after the link came back", resume_s);
        check_and_record(p, ph.scenario, ph.injected, 1, note);
    }
}

TEST_CASE("matrix: a long outage compressed, then recovery, with the live lane first",
          "[system][fault]") {
    t::pipeline p(env{{"CENTRAL_DMS_BACKOFF", "0.5,1,2"}, {"CENTRAL_DMS_LIVE_WINDOW", "2"},
                   {"CENTRAL_DMS_BATCH_SIZE", "500"}});
    p.field().start();
    p.field().wait_subscribed(1);
    p.link().set_mode(t::link_proxy::mode::refuse);
    const std::size_t backlog = static_cast<std::size_t>(t::scaled(20000, 200000));
    p.publish(backlog);  // hours of mesh traffic (a message every few seconds), at full speed
    REQUIRE(t::wait_until([&] { return p.field_pending() == static_cast<std::int64_t>(backlog); }, 120s, 200ms));
    std::this_thread::sleep_for(3s);  // older than the live window: backlog now
    p.link().set_mode(t::link_proxy::mode::pass);
    p.publish(1);  // a fresh SOS as the link returns
    const bool drained = p.wait_delivered(std::chrono::seconds(t::scaled(180, 1200)));
    CHECK(drained);
    // Where the SOS landed in the central's order of arrival.
    auto c = opendms::db::open(p.postgres().options());
    REQUIRE(c);
    auto rows = (*c)->query(
        "select (select id from cluster_data order by id desc limit 1) - id from cluster_data "
        "where id = (select max(id) from cluster_data where created_at = (select max(created_at) "
        "from cluster_data))",
        {});
    REQUIRE(rows);
    const std::int64_t behind_it = rows->empty() ? -1 : (*rows)[0].get_int(0).value_or(-1);
    CHECK(behind_it > static_cast<std::int64_t>(backlog) / 2);  // most of the backlog came after it
    check_and_record(p, "long outage (compressed), then recovery",
                     std::to_string(backlog) + " messages while the central was unreachable, then the link restored", 1,
                     "the SOS sent as the link came back was stored ahead of " + std::to_string(behind_it) +
                         " backlog records");
}

TEST_CASE("matrix: the field disk fills up, then space is freed", "[system][fault]") {
    t::temp_dir disk_dir;
    const std::string mount_point = disk_dir.file("disk");
    REQUIRE(::mkdir(mount_point.c_str(), 0755) == 0);
    // Room for the database and a WAL of up to 4 MiB (the autocheckpoint) once the filler
    // is gone: at 6 MiB the messages stored after the freeing could fill the disk again
    // with our own data, a checkpoint then had no room to grow the database into, and the
    // run stayed full (seen once).
    const long disk_mib = t::scaled(16, 64);
    const std::string mount_options = "size=" + std::to_string(disk_mib) + "m,mode=0755";
    if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, mount_options.c_str()) != 0) {
        FAIL("mount -t tmpfs failed: " << std::strerror(errno)
                                       << " (the disk-full scenario needs root or CAP_SYS_ADMIN)");
    }
    struct unmount {
        std::string dir;
        ~unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
    } guard{mount_point};
    {
        t::pipeline p(env{{"DB_DATABASE", mount_point + "/field.sqlite"}});
        p.field().start();
        p.field().wait_subscribed(1);
        // Fill the disk but a sliver, so the field database soon cannot grow.
        const std::string filler = mount_point + "/filler";
        {
            std::ofstream f(filler, std::ios::binary);
            std::string block(64 * 1024, 'x');
            while (f.write(block.data(), static_cast<std::streamsize>(block.size()))) {
            }
        }
        ::truncate(filler.c_str(), static_cast<off_t>(std::max<long>(0, static_cast<long>(
                                                            [&] {
                                                                struct stat st {};
                                                                ::stat(filler.c_str(), &st);
                                                                return st.st_size;
                                                            }()) - 256 * 1024)));
        background_publisher pub(p, static_cast<std::size_t>(t::scaled(4000, 20000)),
                                 std::chrono::microseconds(200));
        const bool full = t::wait_until(
            [&] { return p.field_log().find("full") != std::string::npos || pub.done(); }, 120s, 200ms);
        CHECK(full);
        const bool refused = p.field_log().find("full") != std::string::npos;
        std::this_thread::sleep_for(2s);
        ::unlink(filler.c_str());  // the operator frees space
        REQUIRE(pub.join().empty());
        check_and_record(p, "field disk full, then freed",
                         "tmpfs of " + std::to_string(disk_mib) +
                             " MiB filled to 256 KiB short; the filler deleted after the "
                             "first refused write",
                         refused ? 1 : 0,
                         refused ? "messages the database refused stayed unacknowledged at the broker"
                                 : "the disk never filled");
        CHECK(refused);
    }
}

TEST_CASE("matrix: a corrupt, then a truncated field database at start-up", "[system][fault]") {
    t::pipeline p;
    const std::size_t per_phase = static_cast<std::size_t>(t::scaled(1000, 10000));
    auto clear_wal = [&] {
        ::unlink((p.field_db_path() + "-wal").c_str());
        ::unlink((p.field_db_path() + "-shm").c_str());
    };
    // 1. Garbage where the database should be (a card that returned junk).
    t::write_text_file(p.field_db_path(), std::string(64 * 1024, '\x5a'));
    clear_wal();
    p.field().start();
    p.field().wait_subscribed(1);
    p.publish(per_phase);
    REQUIRE(p.wait_delivered(120s));
    // 2. The database cut in half while the daemon is down (a write interrupted by a
    //    failing card), with messages arriving at the broker meanwhile.
    REQUIRE(p.field().stop() == 0);
    struct stat st {};
    REQUIRE(::stat(p.field_db_path().c_str(), &st) == 0);
    REQUIRE(::truncate(p.field_db_path().c_str(), st.st_size / 2) == 0);
    clear_wal();
    p.publish(per_phase);
    p.field().start();
    p.field().wait_subscribed(2);
    const std::string log = p.field_log();
    CHECK(t::count_occurrences(log, "DATABASE ALARM") == 2);
    t::program_result status =
        t::run_program({t::field_binary(), "--env-file", p.field_env_file(), "status", "--json"});
    CHECK(t::count_occurrences(status.output, ".damaged-") == 2);
    CHECK(p.field().running());  // never a crash loop
    check_and_record(p, "corrupt or truncated field database at start-up",
                     "64 KiB of junk as the database file; later the file cut in half while the "
                     "daemon was down",
                     2, "both kept aside (DATABASE ALARM, listed by status), a fresh database made; "
                        "records delivered before the damage stay at the central");
}

TEST_CASE("matrix: the wall clock jumping back and forward under the field daemon",
          "[system][fault]") {
    const std::string faketime_lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    REQUIRE(::access(faketime_lib.c_str(), R_OK) == 0);  // Debian's faketime (install-deps.sh test)
    t::pipeline p;
    const std::string offset_file = p.dir().file("faketime");
    t::write_text_file(offset_file, "+0\n");
    // The daemon under libfaketime: its wall clock follows the file; the monotonic clock
    // (timeouts, backoff) is left alone, as a real clock change would.
    t::child_process daemon({t::field_binary(), "--env-file", p.field_env_file(), "run"},
                            {{"LD_PRELOAD", faketime_lib},
                             {"FAKETIME_TIMESTAMP_FILE", offset_file},
                             {"FAKETIME_NO_CACHE", "1"},
                             {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}},
                            p.dir().file("faketime-field.log"));
    auto log = [&] { return t::read_text_file(p.dir().file("faketime-field.log")); };
    REQUIRE(t::wait_until([&] { return log().find("subscribed to") != std::string::npos; }, 30s, 100ms));
    const std::size_t per_phase = static_cast<std::size_t>(t::scaled(300, 3000));
    p.publish(per_phase);
    REQUIRE(p.wait_delivered(60s));
    t::write_text_file(offset_file, "-2h\n");  // set back two hours
    std::this_thread::sleep_for(500ms);
    p.publish(per_phase);
    REQUIRE(p.wait_delivered(60s));
    t::write_text_file(offset_file, "+1d\n");  // then a day ahead
    std::this_thread::sleep_for(500ms);
    p.publish(per_phase);
    const bool drained = p.wait_delivered(60s);
    CHECK(drained);
    CHECK(log().find("the wall clock jumped back by 7") != std::string::npos);
    CHECK(log().find("the wall clock jumped forward by 9") != std::string::npos);
    CHECK(daemon.terminate(30s) == 0);
    // The jump shows in the records' times; their order of arrival (id) is kept.
    auto c = opendms::db::open([&] {
        opendms::db::connect_options o;
        o.kind = opendms::db::dialect::sqlite;
        o.database = p.field_db_path();
        return o;
    }());
    REQUIRE(c);
    auto rows = (*c)->query("select id, created_at from cluster_data order by id", {});
    REQUIRE(rows);
    REQUIRE(rows->size() == 3 * per_phase);
    auto time_at = [&](std::size_t i) { return *opendms::parse_time(*(*rows)[i].get_text(1)); };
    const std::int64_t back = time_at(per_phase) - time_at(per_phase - 1);
    const std::int64_t ahead = time_at(2 * per_phase) - time_at(2 * per_phase - 1);
    CHECK(back < -7000);   // about two hours earlier
    CHECK(ahead > 90000);  // about a day later
    check_and_record(p, "wall clock set back 2 h, then forward 1 day (no RTC)",
                     "libfaketime under opendms-field: offset +0, then -2h, then +1d",
                     2,
                     "each jump logged; created_at follows the clock (" + std::to_string(back) + " s, then +" +
                         std::to_string(ahead) + " s between neighbours), id order kept");
}
