#include "system_rig.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "opendms/db/database.hpp"

namespace opendms::test {
namespace {

const std::string token = "matrix-token-0123456789abcdefghijklmnopqrstuv";

std::string json_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        out += c;
    }
    return out;
}

db::connect_options sqlite_at(const std::string& path) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = path;
    return o;
}

std::unique_ptr<db::connection> open_or_throw(const db::connect_options& o) {
    auto c = db::open(o);
    if (!c) throw std::runtime_error("system_rig: open " + o.database + ": " + c.error().to_string());
    return std::move(*c);
}

std::int64_t scalar(db::connection& c, const std::string& sql) {
    auto r = c.query(sql, {});
    if (!r || r->empty()) throw std::runtime_error("system_rig: " + sql + ": " + r.error().to_string());
    return (*r)[0].get_int(0).value_or(-1);
}

}  // namespace

bool long_matrix() {
    const char* v = std::getenv("OPENDMS_MATRIX");
    return v != nullptr && std::string(v) == "long";
}

int scaled(int bounded, int long_count) { return long_matrix() ? long_count : bounded; }

void record_row(const matrix_row& r) {
    const char* env = std::getenv("OPENDMS_RELIABILITY_OUT");
    std::string path = env && *env ? env : std::string(OPENDMS_BINARY_DIR) + "/reliability/results.jsonl";
    ::mkdir(path.substr(0, path.rfind('/')).c_str(), 0755);
    std::ofstream out(path, std::ios::app);
    out << "{\"scenario\":\"" << json_escape(r.scenario) << "\",\"injected\":\"" << json_escape(r.injected)
        << "\",\"times\":" << r.times << ",\"published\":" << r.published << ",\"stored\":" << r.stored
        << ",\"delivered\":" << r.delivered << ",\"duplicated\":" << r.duplicated
        << ",\"lost\":" << r.lost << ",\"note\":\"" << json_escape(r.note) << "\",\"scale\":\""
        << (long_matrix() ? "long" : "bounded") << "\"}\n";
}

pipeline::pipeline(std::map<std::string, std::string> field_extra,
                   std::map<std::string, std::string> central_extra)
    : dir_(std::make_unique<temp_dir>()) {
    ::chmod(dir_->path().c_str(), 0755);
    pg_ = std::make_unique<private_postgres>();
    ::mkdir(dir_->file("broker").c_str(), 0755);
    broker_ = std::make_unique<private_broker>(dir_->file("broker"));
    broker_->start();

    central_port_ = free_tcp_port();
    auto cenv = central_env(pg_->options(), token);
    cenv["CENTRAL_LISTEN"] = "127.0.0.1:" + std::to_string(central_port_);
    cenv["CENTRAL_ACCESS_LOG"] = "false";
    for (const auto& [k, v] : central_extra) cenv[k] = v;
    central_ = std::make_unique<central_server>(dir_->path(), cenv);
    central_->migrate();
    central_->start();
    link_ = std::make_unique<link_proxy>(static_cast<unsigned short>(central_port_));

    field_db_ = dir_->file("field.sqlite");
    field_env_ = dir_->file("field.env");
    topic_ = unique_name("matrix") + "/hub/event";
    auto fenv = daemon_env(sqlite_at(field_db_), broker_->address(), topic_, "matrix-field");
    fenv["CENTRAL_DMS_URL"] = "http://127.0.0.1:" + std::to_string(link_->port());
    fenv["CENTRAL_DMS_TOKEN"] = token;
    fenv["CENTRAL_DMS_BACKOFF"] = "0.2,0.5,1";
    fenv["CENTRAL_DMS_TIMEOUT"] = "3";
    fenv["CENTRAL_DMS_POLL_INTERVAL"] = "0.2";
    for (const auto& [k, v] : field_extra) fenv[k] = v;
    field_db_ = fenv["DB_DATABASE"];
    write_env_file(field_env_, fenv);
    migrate_with_program(field_env_);
    field_ = std::make_unique<field_daemon>(field_env_, dir_->file("field.log"));
    publisher_ = std::make_unique<mqtt_publisher>(broker_->address(), unique_name("matrix-pub"),
                                                  dir_->file("acked.log"));
    publisher_->connect();
}

pipeline::~pipeline() {
    publisher_.reset();
    if (field_ && field_->running()) field_->kill_hard();
    field_.reset();
    link_.reset();
    central_.reset();
    broker_.reset();
    pg_.reset();
}

void pipeline::publish(std::size_t count, std::chrono::microseconds gap) {
    if (messages_.size() < next_ + count) {
        messages_ = make_gateway_messages(next_ + count + 1000, 3);
    }
    for (std::size_t i = 0; i < count; ++i, ++next_) {
        const gateway_message& m = messages_[next_];
        publisher_->publish(topic_, m.bytes, m.key());
        if (gap.count() > 0) std::this_thread::sleep_for(gap);
    }
    if (!publisher_->wait_acked(std::chrono::seconds(120))) {
        throw std::runtime_error("system_rig: the broker did not acknowledge every message");
    }
}

std::int64_t pipeline::field_pending() {
    auto c = open_or_throw(sqlite_at(field_db_));
    return scalar(*c, "select count(*) from cluster_data where synced = 0");
}

std::int64_t pipeline::central_rows() {
    auto c = open_or_throw(pg_->options());
    return scalar(*c, "select count(*) from cluster_data");
}

bool pipeline::wait_delivered(std::chrono::milliseconds timeout) {
    const auto want = static_cast<std::int64_t>(publisher_->acked());
    return wait_until(
        [&] {
            try {
                return central_rows() >= want && field_pending() == 0;
            } catch (const std::exception&) {
                return false;  // a database restarting
            }
        },
        timeout, std::chrono::milliseconds(200));
}

matrix_row pipeline::verdict(const std::string& scenario, const std::string& injected, int times) {
    matrix_row row;
    row.scenario = scenario;
    row.injected = injected;
    row.times = times;
    std::map<std::string, int> at_central;
    {
        auto c = open_or_throw(pg_->options());
        auto r = c->query("select duck_id, message_id, count(*) from cluster_data group by duck_id, message_id", {});
        if (!r) throw std::runtime_error("system_rig: " + r.error().to_string());
        for (const auto& x : r->data) {
            at_central[x.get_text(0).value_or("") + "/" + x.get_text(1).value_or("")] =
                static_cast<int>(x.get_int(2).value_or(0));
        }
    }
    {
        auto c = open_or_throw(sqlite_at(field_db_));
        row.stored = static_cast<std::size_t>(scalar(*c, "select count(*) from cluster_data"));
    }
    const std::vector<std::string> acked = publisher_->acked_tags();
    row.published = acked.size();
    for (const std::string& key : acked) {
        auto it = at_central.find(key);
        if (it == at_central.end()) {
            ++row.lost;
        } else {
            ++row.delivered;
            if (it->second > 1) ++row.duplicated;
        }
    }
    return row;
}

void pipeline::restart_central() {
    if (central_->running()) central_->stop();
    central_->start();
}

}  // namespace opendms::test
