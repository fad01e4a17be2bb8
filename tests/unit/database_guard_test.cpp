// A damaged field database at start-up: kept aside, replaced by a fresh migrated one.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "central_process.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/database_guard.hpp"
#include "store_snapshot.hpp"
#include "test_servers.hpp"

using namespace opendms;
using field::guard_database;
using field::list_set_aside;

namespace {

db::connect_options sqlite_at(const std::string& path) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = path;
    return o;
}

void make_database(const db::connect_options& o, int rows) {
    auto c = db::open(o);
    REQUIRE(c);
    db::migrator m(**c);
    REQUIRE(m.migrate());
    for (int i = 0; i < rows; ++i) {
        test::query_ok(**c, "insert into cluster_data (duck_id, topic, message_id, payload) values "
                            "('D', 'status', 'M" + std::to_string(i) + "', printf('%.500c', 'p'))");
    }
}

bool file_exists(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
}

bool fresh_and_migrated(const db::connect_options& o) {
    auto c = db::open(o);
    REQUIRE(c);
    db::migrator m(**c);
    auto current = m.is_current();
    return current && *current && test::count(**c, "cluster_data") == 0;
}

}  // namespace

TEST_CASE("a healthy database is left alone", "[unit]") {
    test::temp_dir dir;
    auto o = sqlite_at(dir.file("field.sqlite"));
    make_database(o, 10);
    manual_clock clk;
    auto r = guard_database(o, clk);
    REQUIRE(r);
    CHECK_FALSE(r->set_aside);
    CHECK(list_set_aside(o).empty());
    auto c = db::open(o);
    REQUIRE(c);
    CHECK(test::count(**c, "cluster_data") == 10);
}

TEST_CASE("a file that is not a database is kept aside and a fresh one made", "[unit][fault]") {
    test::temp_dir dir;
    auto o = sqlite_at(dir.file("field.sqlite"));
    test::write_text_file(o.database, std::string(8192, 'Z'));
    manual_clock clk(1764028800000);
    auto r = guard_database(o, clk);
    REQUIRE(r);
    REQUIRE(r->set_aside);
    CHECK(*r->set_aside == o.database + ".damaged-2025-11-25T000000Z");
    CHECK(test::read_text_file(*r->set_aside) == std::string(8192, 'Z'));  // kept byte for byte
    CHECK_FALSE(r->reason.empty());
    CHECK(fresh_and_migrated(o));
    CHECK(list_set_aside(o) == std::vector<std::string>{"field.sqlite.damaged-2025-11-25T000000Z"});
}

TEST_CASE("a truncated database is found by quick_check and kept aside with its WAL", "[unit][fault]") {
    test::temp_dir dir;
    auto o = sqlite_at(dir.file("field.sqlite"));
    make_database(o, 2000);
    struct stat st {};
    REQUIRE(::stat(o.database.c_str(), &st) == 0);
    REQUIRE(::truncate(o.database.c_str(), st.st_size / 2) == 0);
    test::write_text_file(o.database + "-wal", "");  // a WAL beside it goes along
    manual_clock clk(1764028800000);
    auto r = guard_database(o, clk);
    REQUIRE(r);
    REQUIRE(r->set_aside);
    CHECK(file_exists(*r->set_aside));
    CHECK(file_exists(*r->set_aside + "-wal"));
    CHECK(fresh_and_migrated(o));
    CHECK(list_set_aside(o).size() == 1);  // the -wal is not listed on its own
}

TEST_CASE("two damaged databases in the same second are both kept, under their own names",
          "[unit][fault]") {
    test::temp_dir dir;
    auto o = sqlite_at(dir.file("field.sqlite"));
    manual_clock clk(1764028800000);  // the clock does not move between the two
    test::write_text_file(o.database, std::string(8192, 'A'));
    auto first = guard_database(o, clk);
    REQUIRE(first);
    REQUIRE(first->set_aside);
    test::write_text_file(o.database, std::string(8192, 'B'));
    test::write_text_file(o.database + "-wal", "");
    auto second = guard_database(o, clk);
    REQUIRE(second);
    REQUIRE(second->set_aside);
    CHECK(*second->set_aside != *first->set_aside);
    CHECK(*second->set_aside == o.database + ".damaged-2025-11-25T000000Z-2");
    CHECK(test::read_text_file(*first->set_aside) == std::string(8192, 'A'));  // not overwritten
    CHECK(test::read_text_file(*second->set_aside) == std::string(8192, 'B'));
    CHECK(file_exists(*second->set_aside + "-wal"));
    CHECK(list_set_aside(o).size() == 2);
    CHECK(fresh_and_migrated(o));
}
