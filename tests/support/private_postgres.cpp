#include "private_postgres.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <stdexcept>

#include "mqtt_test_client.hpp"

namespace opendms::test {
namespace {

const char* const pg_os_user = "opendms-test";

std::string pg_bin(const std::string& tool) {
    const char* dir = std::getenv("PG_BIN");
    return std::string(dir != nullptr && *dir != '\0' ? dir : "/usr/lib/postgresql/15/bin") + "/" +
           tool;
}

bool is_root() {
    return ::geteuid() == 0;
}

/// Makes `path` usable by the PostgreSQL OS user (as root).
void hand_over(const std::string& path) {
    if (!is_root()) return;
    passwd* pw = ::getpwnam(pg_os_user);
    if (pw == nullptr) {
        throw std::runtime_error(std::string("private_postgres: no system user ") + pg_os_user +
                                 ": run tests/support/servers.sh start once (it creates it)");
    }
    if (::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw std::runtime_error("private_postgres: cannot chown " + path);
    }
}

}  // namespace

private_postgres::private_postgres() : dir_(std::make_unique<temp_dir>()) {
    ::chmod(dir_->path().c_str(), 0755);
    hand_over(dir_->path());
    data_ = dir_->file("data");
    socket_dir_ = dir_->file("run");
    ::mkdir(socket_dir_.c_str(), 0755);
    hand_over(socket_dir_);
    port_ = free_tcp_port();
    run_as_pg({pg_bin("initdb"), "-D", data_, "--username=postgres", "--auth=trust",
               "--encoding=UTF8", "--no-locale", "--no-sync"},
              "initdb");
    start();
    db::connect_options admin = options();
    admin.database = "postgres";
    auto c = db::open(admin);
    if (!c) throw std::runtime_error("private_postgres: connect: " + c.error().to_string());
    if (status s = (*c)->execute_script("CREATE DATABASE opendms"); !s) {
        throw std::runtime_error("private_postgres: " + s.to_string());
    }
}

private_postgres::~private_postgres() {
    if (!running_) return;
    try {
        std::vector<std::string> argv{
            pg_bin("pg_ctl"), "-D", data_, "-m", "immediate", "-w", "-t", "30", "stop"};
        if (is_root()) argv.insert(argv.begin(), {"runuser", "-u", pg_os_user, "--"});
        run_program(argv, {}, std::chrono::seconds(60));
    } catch (const std::exception& e) {
        std::cerr << "private_postgres: stop failed: " << e.what() << '\n';
    }
}

void private_postgres::run_as_pg(const std::vector<std::string>& argv, const std::string& what) {
    std::vector<std::string> full = argv;
    if (is_root()) full.insert(full.begin(), {"runuser", "-u", pg_os_user, "--"});
    program_result r = run_program(full, {}, std::chrono::seconds(120));
    if (r.code != 0) {
        throw std::runtime_error("private_postgres: " + what + " failed (exit " +
                                 std::to_string(r.code) + "): " + r.output + "\nserver log:\n" +
                                 log());
    }
}

void private_postgres::start() {
    std::string opts = "-c listen_addresses=127.0.0.1 -p " + std::to_string(port_) +
                       " -c unix_socket_directories=" + socket_dir_ +
                       " -c fsync=off -c synchronous_commit=off -c full_page_writes=off";
    run_as_pg({pg_bin("pg_ctl"), "-D", data_, "-l", dir_->file("postgresql.log"), "-w", "-t", "60",
               "-o", opts, "start"},
              "pg_ctl start");
    running_ = true;
}

void private_postgres::stop() {
    run_as_pg({pg_bin("pg_ctl"), "-D", data_, "-m", "fast", "-w", "-t", "60", "stop"},
              "pg_ctl stop");
    running_ = false;
}

db::connect_options private_postgres::options() const {
    db::connect_options o;
    o.kind = db::dialect::pgsql;
    o.host = "127.0.0.1";
    o.port = port_;
    o.username = "postgres";
    o.database = "opendms";
    o.connect_timeout_s = 5;
    return o;
}

std::string private_postgres::log() const {
    return read_text_file(dir_->file("postgresql.log"));
}

}  // namespace opendms::test
