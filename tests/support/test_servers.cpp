#include "test_servers.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace opendms::test {
namespace {

std::optional<std::string> env(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
}

std::string missing_message(db::dialect d) {
    return server_env_prefix(d) +
           "HOST is not set: run the suite with tests/run_all.sh (it starts the servers)";
}

// The server's maintenance connection, for CREATE/DROP DATABASE.
std::unique_ptr<db::connection> admin_connection(db::dialect d) {
    auto c = db::open(require_server_options(d));
    if (!c) throw std::runtime_error("scratch_database: " + c.error().to_string());
    return std::move(*c);
}

std::string drop_statement(db::dialect d, const std::string& name) {
    if (d == db::dialect::pgsql) return "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)";
    return "DROP DATABASE IF EXISTS " + name;
}

std::string create_statement(db::dialect d, const std::string& name) {
    if (d == db::dialect::mysql) {
        return "CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci";
    }
    return "CREATE DATABASE " + name;
}

std::atomic<int> next_database{0};

}  // namespace

temp_dir::temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/opendms-test-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
        throw std::system_error(errno, std::generic_category(), "temp_dir: mkdtemp " + pattern);
    }
    path_ = buf.data();
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) std::cerr << "temp_dir: cannot remove " << path_ << ": " << ec.message() << '\n';
}

std::string temp_dir::file(std::string_view name) const {
    return path_ + "/" + std::string(name);
}

std::string server_env_prefix(db::dialect d) {
    return d == db::dialect::pgsql ? "OPENDMS_TEST_PG_" : "OPENDMS_TEST_MYSQL_";
}

std::optional<db::connect_options> server_options(db::dialect d) {
    if (d == db::dialect::sqlite) return std::nullopt;
    const std::string prefix = server_env_prefix(d);
    auto host = env(prefix + "HOST");
    if (!host || host->empty()) return std::nullopt;
    db::connect_options o;
    o.kind = d;
    o.host = *host;
    o.port = std::atoi(env(prefix + "PORT").value_or("0").c_str());
    o.username = env(prefix + "USER").value_or("");
    o.password = env(prefix + "PASSWORD").value_or("");
    o.database = env(prefix + "DATABASE").value_or("");
    o.connect_timeout_s = 5;
    return o;
}

db::connect_options require_server_options(db::dialect d) {
    if (d == db::dialect::sqlite) {
        throw std::logic_error("require_server_options: sqlite has no server");
    }
    auto o = server_options(d);
    if (!o) throw std::runtime_error(missing_message(d));
    return *o;
}

scratch_database::scratch_database(db::dialect d) {
    if (d == db::dialect::sqlite) {
        dir_ = std::make_unique<temp_dir>();
        options_.kind = d;
        options_.database = dir_->file("test.sqlite");
        return;
    }
    options_ = require_server_options(d);
    options_.database = "opendms_t_" + std::to_string(::getpid()) + "_" +
                        std::to_string(next_database.fetch_add(1));
    auto admin = admin_connection(d);
    for (const std::string& sql :
         {drop_statement(d, options_.database), create_statement(d, options_.database)}) {
        if (status s = admin->execute_script(sql); !s) {
            throw std::runtime_error("scratch_database: " + s.to_string());
        }
    }
}

scratch_database::~scratch_database() {
    if (options_.kind == db::dialect::sqlite) return;  // dir_ removes the file
    try {
        auto admin = admin_connection(options_.kind);
        if (status s = admin->execute_script(drop_statement(options_.kind, options_.database));
            !s) {
            std::cerr << "scratch_database: " << s.to_string() << '\n';
        }
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
    }
}

std::unique_ptr<db::connection> scratch_database::connect() const {
    auto c = db::open(options_);
    if (!c) throw std::runtime_error("scratch_database.connect: " + c.error().to_string());
    return std::move(*c);
}

}  // namespace opendms::test
