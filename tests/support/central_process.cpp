#include "central_process.hpp"

#include <openssl/evp.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace opendms::test {
namespace {

/// The port of the first "listening on http(s)://127.0.0.1:PORT" in `text`; 0 when none.
unsigned short listening_port(const std::string& text) {
    static const std::regex line(R"(listening on https?://127\.0\.0\.1:([0-9]{1,5}))");
    std::smatch m;
    if (!std::regex_search(text, m, line)) return 0;
    return static_cast<unsigned short>(std::stoul(m[1].str()));
}

}  // namespace

std::string central_binary() {
    return std::string(OPENDMS_BINARY_DIR) + "/central-server/opendms-central";
}

void write_text_file(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << text;
        if (!f.flush()) throw std::runtime_error("write_text_file: cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        throw std::runtime_error("write_text_file: cannot rename " + tmp + " to " + path);
    }
}

std::map<std::string, std::string> central_env(const db::connect_options& db,
                                               const std::string& token) {
    std::map<std::string, std::string> env{
        {"DB_CONNECTION", db::dialect_name(db.kind)},
        {"DB_DATABASE", db.database},
        {"CENTRAL_LISTEN", "127.0.0.1:0"},
        {"CENTRAL_THREADS", "1"},
        {"LOG_LEVEL", "info"},
    };
    if (db.kind != db::dialect::sqlite) {
        env["DB_HOST"] = db.host;
        env["DB_PORT"] = std::to_string(db.port);
        env["DB_USERNAME"] = db.username;
        env["DB_PASSWORD"] = db.password;
    }
    if (!token.empty()) env["CENTRAL_DMS_TOKEN"] = token;
    return env;
}

central_server::central_server(std::string dir, std::map<std::string, std::string> env,
                               std::string name)
    : dir_(std::move(dir)),
      name_(std::move(name)),
      env_file_(dir_ + "/" + name_ + ".env"),
      log_path_(dir_ + "/" + name_ + ".log") {
    set_env(std::move(env));
}

central_server::~central_server() {
    if (process_) process_->kill_hard();
}

void central_server::set_env(std::map<std::string, std::string> env) {
    env_ = std::move(env);
    write_env_file(env_file_, env_);
}

program_result central_server::run_command(const std::vector<std::string>& args,
                                           std::chrono::milliseconds timeout) {
    std::vector<std::string> argv{central_binary(), "--env-file", env_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, {}, timeout);
}

void central_server::migrate() {
    program_result r = run_command({"migrate"});
    if (r.code != 0) {
        throw std::runtime_error("opendms-central migrate failed (exit " + std::to_string(r.code) +
                                 "): " + r.output);
    }
}

void central_server::start(std::chrono::milliseconds timeout) {
    if (process_ && process_->running()) throw std::logic_error("central_server: still running");
    std::size_t log_start = log().size();
    port_ = 0;
    process_ = std::make_unique<child_process>(
        std::vector<std::string>{central_binary(), "--env-file", env_file_, "serve"},
        std::map<std::string, std::string>{}, log_path_);
    wait_until(
        [&] {
            std::string text = log();
            port_ = listening_port(text.size() > log_start ? text.substr(log_start) : "");
            return port_ != 0 || !process_->running();
        },
        timeout, std::chrono::milliseconds(20));
    if (port_ == 0) {
        bool alive = process_->running();
        if (alive) process_->kill_hard();
        throw std::runtime_error(
            "central_server: `opendms-central serve` " +
            std::string(alive ? "did not log \"listening on\" in time"
                              : "exited with code " + std::to_string(*process_->exit_code())) +
            "; its log:\n" + log());
    }
}

pid_t central_server::pid() const {
    return process_ ? process_->pid() : -1;
}

bool central_server::running() {
    return process_ && process_->running();
}

void central_server::send_signal(int sig) {
    if (!running()) throw std::logic_error("central_server: not running");
    ::kill(process_->pid(), sig);
}

int central_server::stop(std::chrono::milliseconds grace) {
    if (!process_) return -1;
    return process_->terminate(grace);
}

void central_server::kill_hard() {
    if (process_) process_->kill_hard();
}

std::optional<int> central_server::wait_exit(std::chrono::milliseconds timeout) {
    if (!process_) return std::nullopt;
    return process_->wait_exit(timeout);
}

// ---- requests -----------------------------------------------------------------------------

header_list ingest_headers(const std::string& token) {
    header_list h;
    if (!token.empty()) h.emplace_back("Authorization", "Bearer " + token);
    h.emplace_back("Content-Type", "application/json");
    h.emplace_back("Accept", "application/json");
    return h;
}

http_result post_ingest(unsigned short port, const std::string& token, const std::string& body,
                        const header_list& extra, std::chrono::milliseconds timeout) {
    header_list h = ingest_headers(token);
    h.insert(h.end(), extra.begin(), extra.end());
    return http_request_once(port, "POST", "/api/ingest", h, body, timeout);
}

ingest_client::ingest_client(unsigned short port, std::string token,
                             std::chrono::milliseconds timeout)
    : port_(port), token_(std::move(token)), timeout_(timeout) {}

ingest_client::~ingest_client() = default;

http_result ingest_client::post(const std::string& body, const header_list& extra) {
    if (!conn_ || conn_->peer_closed()) {
        try {
            conn_ = std::make_unique<http_connection>(port_, timeout_);
            ++connections_;
        } catch (const std::runtime_error& e) {
            conn_.reset();
            http_result r;
            r.outcome = http_outcome::closed;
            r.detail = e.what();
            return r;
        }
    }
    header_list h = ingest_headers(token_);
    h.insert(h.end(), extra.begin(), extra.end());
    http_result r = conn_->request("POST", "/api/ingest", h, body, timeout_);
    std::string connection = r.ok() ? r.response.header("Connection") : "close";
    bool close = connection.size() == 5 && (connection[0] == 'c' || connection[0] == 'C');
    if (close || r.response.version == "HTTP/1.0") conn_.reset();
    return r;
}

http_result get_path(unsigned short port, const std::string& path,
                     std::chrono::milliseconds timeout) {
    return http_request_once(port, "GET", path, {}, "", timeout);
}

std::string sha256_hex(const std::string& text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("sha256_hex: EVP_Digest failed");
    }
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 15];
    }
    return out;
}

std::string tokens_file_line(const std::string& node, const std::string& token) {
    return node + " sha256:" + sha256_hex(token);
}

std::string batch_body(const std::vector<std::string>& record_jsons) {
    std::string out = "{\"records\":[";
    for (std::size_t i = 0; i < record_jsons.size(); ++i) {
        if (i > 0) out += ',';
        out += record_jsons[i];
    }
    return out + "]}";
}

double metric_value(const std::string& metrics_text, const std::string& series) {
    std::istringstream in(metrics_text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
            line[series.size()] == ' ') {
            return std::strtod(line.c_str() + series.size() + 1, nullptr);
        }
    }
    return 0;
}

}  // namespace opendms::test
