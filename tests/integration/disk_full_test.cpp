// A real full disk under the field node's SQLite database: a 2 MiB tmpfs is filled by
// ingesting until ingest() fails with io_error (SQLITE_FULL). Every message acknowledged
// (ingest ok) must be in the database and none that failed; once space is freed, ingest
// works again and the file passes PRAGMA integrity_check.
//
// Mounting needs root (or CAP_SYS_ADMIN); CI runs the suite as root. Without that the test
// FAILS, naming the reason: it never passes without having filled a disk.
#include <sys/mount.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "opendms/clock.hpp"
#include "opendms/db/database.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/ingest_store.hpp"
#include "test_servers.hpp"

using namespace opendms;
using field::ingest_outcome;

namespace {

// A tmpfs of `size` mounted on a fresh directory; unmounted by the destructor. Close
// every file on it (the database connection) before the destructor runs.
class tmpfs_mount {
public:
    tmpfs_mount(const std::string& dir, const std::string& size) : dir_(dir) {
        if (::mkdir(dir.c_str(), 0700) != 0) {
            throw std::runtime_error("mkdir " + dir + ": " + std::strerror(errno));
        }
        const std::string options = "size=" + size + ",mode=0700";
        if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
            const int e = errno;
            throw std::runtime_error(
                "mount -t tmpfs -o " + options + " tmpfs " + dir + " failed: " + std::strerror(e) +
                (e == EPERM ? " (the disk-full test needs root or CAP_SYS_ADMIN to mount a small "
                              "file system; CI runs it as root)"
                            : ""));
        }
        mounted_ = true;
    }
    ~tmpfs_mount() {
        if (mounted_ && ::umount2(dir_.c_str(), MNT_DETACH) != 0) {
            std::cerr << "disk_full_test: umount " << dir_ << ": " << std::strerror(errno) << "\n";
        }
    }
    tmpfs_mount(const tmpfs_mount&) = delete;
    tmpfs_mount& operator=(const tmpfs_mount&) = delete;

    std::string file(const std::string& name) const { return dir_ + "/" + name; }

private:
    std::string dir_;
    bool mounted_ = false;
};

void write_filler(const std::string& path, std::size_t bytes) {
    std::ofstream out(path, std::ios::binary);
    const std::string block(4096, 'f');
    for (std::size_t written = 0; written < bytes; written += block.size()) out << block;
    out.close();
    REQUIRE(out.good());
}

std::string envelope(int i) {
    char message_id[8];
    std::snprintf(message_id, sizeof message_id, "%04X", i);
    return "{\"from\":\"hub\",\"to\":\"controller\",\"RE\":false,\"eventType\":\"status\","
           "\"MessageID\":\"" +
           std::string(message_id) +
           "\",\"payload\":{\"hops\":1,\"duckType\":2,\"DeviceID\":\"KAMPUNG1\",\"Message\":"
           "\"MSG,URGENCY:low,LAT:6.125400,LNG:102.238100,TEXT:message number " +
           std::to_string(i) + " from the flood zone, air naik paras lutut di Kg Pasir\"}}";
}

std::string payload_of(int i) {
    return "MSG,URGENCY:low,LAT:6.125400,LNG:102.238100,TEXT:message number " + std::to_string(i) +
           " from the flood zone, air naik paras lutut di Kg Pasir";
}

db::rows query_ok(db::connection& c, const std::string& sql) {
    auto r = c.query(sql, {});
    INFO(sql << ": " << r.error().to_string());
    REQUIRE(r);
    return std::move(*r);
}

}  // namespace

TEST_CASE("a full disk fails ingest with io_error, loses no acknowledged message and recovers",
          "[integration][fault]") {
    test::temp_dir dir;
    tmpfs_mount disk(dir.file("mnt"), "2m");
    const std::string filler = disk.file("filler");
    write_filler(filler, 512 * 1024);

    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = disk.file("field.sqlite");
    auto opened = db::open(o);
    INFO(opened.error().to_string());
    REQUIRE(opened);
    db::connection& c = **opened;
    db::migrator m(c);
    auto migrated = m.migrate();
    INFO(migrated.error().to_string());
    REQUIRE(migrated);

    manual_clock clk;
    field::ingest_options options;
    options.mode = config::deployment_mode::hybrid;
    options.node_id = "field-node-1";
    field::ingest_store store(c, clk, options);

    std::set<std::string> acknowledged;
    std::set<std::string> refused;
    std::vector<status> failures;
    int i = 0;
    for (; i < 100000 && failures.size() < 5; ++i) {
        clk.advance_ms(10);
        auto r = store.ingest("hub/event", envelope(i));
        if (r) {
            REQUIRE(*r == ingest_outcome::stored);
            acknowledged.insert(payload_of(i));
        } else {
            refused.insert(payload_of(i));
            failures.push_back(r.error());
        }
    }
    REQUIRE(failures.size() == 5);  // the disk did fill up
    INFO(failures.front().to_string());
    CHECK(acknowledged.size() > 10);
    for (const status& s : failures) {
        CHECK(s.code() == errc::io_error);
        CHECK_THAT(s.message(), Catch::StartsWith("ingest.store: "));
    }

    // Exactly the acknowledged messages are stored, each with its outbox entry.
    std::set<std::string> stored;
    for (const auto& row : query_ok(c, "select payload from cluster_data").data) {
        stored.insert(row.get_text(0).value_or(""));
    }
    CHECK(stored == acknowledged);
    for (const std::string& p : refused) CHECK(stored.count(p) == 0);
    CHECK(query_ok(c, "select count(*) from outbox")[0].get_int(0) ==
          static_cast<std::int64_t>(acknowledged.size()));
    CHECK(query_ok(c,
                   "select count(*) from cluster_data c left join outbox o on "
                   "o.cluster_data_id = c.id where o.id is null")[0]
              .get_int(0) == 0);

    // Space again: the next message (and a redelivered refused one) goes in.
    REQUIRE(std::remove(filler.c_str()) == 0);
    clk.advance_ms(10);
    auto after = store.ingest("hub/event", envelope(i));
    INFO(after.error().to_string());
    REQUIRE(after);
    CHECK(*after == ingest_outcome::stored);
    auto redelivered = store.ingest("hub/event", envelope(i - 1));
    INFO(redelivered.error().to_string());
    REQUIRE(redelivered);
    CHECK(*redelivered == ingest_outcome::stored);
    CHECK(query_ok(c, "select count(*) from cluster_data")[0].get_int(0) ==
          static_cast<std::int64_t>(acknowledged.size() + 2));
    CHECK(query_ok(c, "PRAGMA integrity_check")[0].get_text(0) == "ok");
    CHECK(query_ok(c, "PRAGMA foreign_key_check").empty());
}
