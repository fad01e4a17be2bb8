#include "mqtt_test_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace opendms::test {
namespace {

using steady = std::chrono::steady_clock;

std::atomic<int> next_name{0};

std::string getenv_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

/// argv[0] when it holds a '/', else its first match on PATH.
std::string resolve(const std::string& program) {
    if (program.find('/') != std::string::npos) return program;
    std::stringstream path(getenv_or("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"));
    std::string dir;
    while (std::getline(path, dir, ':')) {
        std::string candidate = dir + "/" + program;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    throw std::runtime_error("child_process: " + program + " not found on PATH");
}

/// argv and envp as the exec family wants them; built before fork() (after it, in a
/// threaded process, only async-signal-safe calls are allowed).
struct exec_args {
    std::string path;
    std::vector<std::string> strings;
    std::vector<char*> argv;
    std::vector<char*> envp;

    exec_args(const std::vector<std::string>& args, std::map<std::string, std::string> env) {
        if (args.empty()) throw std::logic_error("child_process: empty argv");
        path = resolve(args[0]);
        if (env.find("PATH") == env.end()) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
        strings = args;
        std::size_t env_start = strings.size();
        for (const auto& [k, v] : env) strings.push_back(k + "=" + v);
        for (std::size_t i = 0; i < strings.size(); ++i) {
            (i < env_start ? argv : envp).push_back(strings[i].data());
        }
        argv.push_back(nullptr);
        envp.push_back(nullptr);
    }
};

int decode_wait_status(int st) {
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

/// In the child after fork(): stdin from /dev/null, stdout and stderr to `out_fd`, die
/// with the parent, exec. Async-signal-safe calls only.
[[noreturn]] void exec_child(const exec_args& a, int out_fd) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(a.path.c_str(), a.argv.data(), a.envp.data());
    const char msg[] = "child_process: execve failed\n";
    ssize_t ignored = ::write(2, msg, sizeof msg - 1);
    (void)ignored;
    ::_exit(127);
}

}  // namespace

mqtt_broker require_mqtt_broker() {
    std::string host = getenv_or("OPENDMS_TEST_MQTT_HOST", "");
    std::string port = getenv_or("OPENDMS_TEST_MQTT_PORT", "");
    if (host.empty() || port.empty()) {
        throw std::runtime_error(
            "OPENDMS_TEST_MQTT_HOST is not set: run the suite with tests/run_all.sh (it "
            "starts the servers)");
    }
    return {host, std::atoi(port.c_str())};
}

std::string unique_name(const std::string& prefix) {
    return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(next_name++);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
    auto deadline = steady::now() + timeout;
    for (;;) {
        if (condition()) return true;
        if (steady::now() >= deadline) return condition();
        std::this_thread::sleep_for(poll);
    }
}

std::string read_text_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::size_t count_occurrences(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos;
         at = text.find(needle, at + needle.size())) {
        ++n;
    }
    return n;
}

int free_tcp_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("free_tcp_port: socket failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("free_tcp_port: bind failed");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

std::string field_binary() {
    return std::string(OPENDMS_BINARY_DIR) + "/field-node/opendms-field";
}

void write_env_file(const std::string& path, const std::map<std::string, std::string>& vars) {
    std::ofstream f(path);
    f << "# written by an end-to-end test\n";
    for (const auto& [k, v] : vars) {
        if (v.find('\'') != std::string::npos) {
            throw std::logic_error("write_env_file: a single quote in " + k);
        }
        f << k << "='" << v << "'\n";
    }
    if (!f) throw std::runtime_error("write_env_file: cannot write " + path);
}

program_result run_program(const std::vector<std::string>& argv,
                           const std::map<std::string, std::string>& env,
                           std::chrono::milliseconds timeout) {
    exec_args a(argv, env);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("run_program: pipe failed");
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("run_program: fork failed");
    if (pid == 0) exec_child(a, fds[1]);
    ::close(fds[1]);
    program_result r;
    auto deadline = steady::now() + timeout;
    bool timed_out = false;
    char buf[4096];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000))) <= 0) {
            continue;
        }
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        r.output.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    if (timed_out) ::kill(pid, SIGKILL);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    r.code = timed_out ? -1 : decode_wait_status(st);
    return r;
}

// ---- child_process ----------------------------------------------------------------------

child_process::child_process(const std::vector<std::string>& argv,
                             std::map<std::string, std::string> env, const std::string& log_path) {
    exec_args a(argv, std::move(env));
    int fd = ::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("child_process: cannot open " + log_path);
    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(fd);
        throw std::runtime_error("child_process: fork failed");
    }
    if (pid_ == 0) exec_child(a, fd);
    ::close(fd);
}

child_process::~child_process() {
    if (!code_ && pid_ > 0) kill_hard();
}

bool child_process::running() {
    if (code_) return false;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        code_ = decode_wait_status(st);
        return false;
    }
    return r == 0;
}

std::optional<int> child_process::wait_exit(std::chrono::milliseconds timeout) {
    wait_until([this] { return !running(); }, timeout, 10ms);
    return code_;
}

void child_process::kill_hard() {
    if (code_) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    code_ = decode_wait_status(st);
}

int child_process::terminate(std::chrono::milliseconds grace) {
    if (code_) return *code_;
    ::kill(pid_, SIGTERM);
    if (!wait_exit(grace)) kill_hard();
    return *code_;
}

// ---- field_daemon -----------------------------------------------------------------------

field_daemon::field_daemon(std::string env_file, std::string log_path)
    : env_file_(std::move(env_file)), log_path_(std::move(log_path)) {}

void field_daemon::start() {
    if (process_ && process_->running()) throw std::logic_error("field_daemon: still running");
    process_ = std::make_unique<child_process>(
        std::vector<std::string>{field_binary(), "--env-file", env_file_, "run"},
        std::map<std::string, std::string>{}, log_path_);
}

void field_daemon::wait_subscribed(std::size_t total, std::chrono::milliseconds timeout) {
    bool ok = wait_until(
        [&] { return count_occurrences(log(), " subscribed to ") >= total || !running(); },
        timeout);
    if (!ok || count_occurrences(log(), " subscribed to ") < total) {
        throw std::runtime_error("field_daemon: not subscribed (" +
                                 std::string(running() ? "timed out" : "exited") + "); its log:\n" +
                                 log());
    }
}

bool field_daemon::running() {
    return process_ && process_->running();
}

void field_daemon::kill_hard() {
    if (process_) process_->kill_hard();
}

int field_daemon::stop(std::chrono::milliseconds grace) {
    if (!process_) return -1;
    return process_->terminate(grace);
}

// ---- private_broker ---------------------------------------------------------------------

private_broker::private_broker(std::string dir) : dir_(std::move(dir)), port_(free_tcp_port()) {
    std::string script = std::string(OPENDMS_SOURCE_DIR) + "/tests/support/servers.sh";
    program_result r =
        run_program({"/bin/bash", script, "mosquitto-conf", dir_, std::to_string(port_)});
    if (r.code != 0) throw std::runtime_error("private_broker: servers.sh: " + r.output);
    conf_ = dir_ + "/mosquitto.conf";
}

private_broker::~private_broker() {
    if (process_) process_->kill_hard();
}

void private_broker::start() {
    if (process_ && process_->running()) throw std::logic_error("private_broker: running");
    process_ =
        std::make_unique<child_process>(std::vector<std::string>{"mosquitto", "-c", conf_},
                                        std::map<std::string, std::string>{}, dir_ + "/stderr.log");
    bool up = wait_until(
        [&] {
            if (!process_->running()) return true;
            int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(static_cast<std::uint16_t>(port_));
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
            ::close(fd);
            return ok;
        },
        20s);
    if (!up || !process_->running()) {
        throw std::runtime_error("private_broker: did not start: " + log() +
                                 read_text_file(dir_ + "/stderr.log"));
    }
}

void private_broker::stop() {
    if (process_) process_->terminate(20s);
}

void private_broker::kill_hard() {
    if (process_) process_->kill_hard();
}

// ---- mqtt_publisher ---------------------------------------------------------------------

mqtt_publisher::mqtt_publisher(mqtt_broker broker, std::string client_id, std::string ack_log)
    : broker_(std::move(broker)), client_id_(std::move(client_id)) {
    static std::once_flag once;
    std::call_once(once, [] { mosquitto_lib_init(); });
    mosq_ = mosquitto_new(client_id_.c_str(), true, this);
    if (mosq_ == nullptr) throw std::runtime_error("mqtt_publisher: mosquitto_new failed");
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set(mosq_, 0);  // our own window limits it
    mosquitto_connect_callback_set(mosq_, on_connect);
    mosquitto_publish_callback_set(mosq_, on_publish);
    if (!ack_log.empty()) {
        log_ = std::fopen(ack_log.c_str(), "a");
        if (log_ == nullptr) throw std::runtime_error("mqtt_publisher: cannot open " + ack_log);
    }
}

mqtt_publisher::~mqtt_publisher() {
    disconnect();
    if (mosq_ != nullptr) mosquitto_destroy(mosq_);
    if (log_ != nullptr) std::fclose(log_);
}

void mqtt_publisher::on_connect(mosquitto*, void* self, int rc) {
    auto* p = static_cast<mqtt_publisher*>(self);
    std::lock_guard<std::mutex> lock(p->mutex_);
    p->connack_ = rc;
    p->changed_.notify_all();
}

void mqtt_publisher::on_publish(mosquitto*, void* self, int mid) {
    static_cast<mqtt_publisher*>(self)->record_ack(mid);
}

void mqtt_publisher::record_ack(int mid) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = in_flight_.find(mid);
    if (it == in_flight_.end()) {
        early_.insert(mid);  // publish() has not recorded this mid yet
        return;
    }
    std::string tag = std::move(it->second);
    in_flight_.erase(it);
    acked_locked(std::move(tag));
}

void mqtt_publisher::acked_locked(std::string tag) {
    if (log_ != nullptr) {
        std::fprintf(log_, "%s\n", tag.c_str());
        std::fflush(log_);
    }
    acked_.push_back(std::move(tag));
    changed_.notify_all();
}

void mqtt_publisher::connect(std::chrono::milliseconds timeout) {
    int rc = mosquitto_connect(mosq_, broker_.host.c_str(), broker_.port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        throw std::runtime_error("mqtt_publisher: connect: " + std::string(mosquitto_strerror(rc)));
    }
    if (!loop_started_) {
        if (mosquitto_loop_start(mosq_) != MOSQ_ERR_SUCCESS) {
            throw std::runtime_error("mqtt_publisher: loop_start failed");
        }
        loop_started_ = true;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return connack_ >= 0; }) || connack_ != 0) {
        throw std::runtime_error("mqtt_publisher: no CONNACK (or refused) from the broker");
    }
}

void mqtt_publisher::publish(const std::string& topic, const std::string& payload,
                             const std::string& tag, int qos) {
    if (qos > 0) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!changed_.wait_for(lock, 60s, [&] { return in_flight_.size() < window; })) {
            throw std::runtime_error("mqtt_publisher: no PUBACK for 60 s");
        }
    }
    int mid = 0;
    int rc = mosquitto_publish(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                               payload.data(), qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        throw std::runtime_error("mqtt_publisher: publish: " + std::string(mosquitto_strerror(rc)));
    }
    if (qos == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    ++published_;
    if (early_.erase(mid) > 0) {
        acked_locked(tag);
    } else {
        in_flight_[mid] = tag;
    }
}

bool mqtt_publisher::wait_acked(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return in_flight_.empty(); });
}

void mqtt_publisher::disconnect() {
    if (!loop_started_) return;
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, false);
    loop_started_ = false;
}

std::size_t mqtt_publisher::published() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return published_;
}

std::size_t mqtt_publisher::acked() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return acked_.size();
}

std::vector<std::string> mqtt_publisher::acked_tags() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return acked_;
}

// ---- gateway messages -------------------------------------------------------------------

namespace {

std::vector<std::string> sample_lines() {
    std::ifstream f(std::string(OPENDMS_SOURCE_DIR) + "/tests/data/samples.jsonl");
    if (!f) throw std::runtime_error("cannot read tests/data/samples.jsonl");
    std::vector<std::string> lines;
    for (std::string line; std::getline(f, line);) {
        if (!line.empty()) lines.push_back(line);
    }
    return lines;
}

std::optional<std::string> opt_text(const rapidjson::Value& v, const char* key) {
    auto it = v.FindMember(key);
    if (it == v.MemberEnd() || !it->value.IsString()) return std::nullopt;
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::optional<std::int64_t> opt_int(const rapidjson::Value& v, const char* key) {
    auto it = v.FindMember(key);
    if (it == v.MemberEnd() || !it->value.IsInt64()) return std::nullopt;
    return it->value.GetInt64();
}

std::string base36(std::size_t n, std::size_t width) {
    const char* digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    std::string out(width, '0');
    for (std::size_t i = width; i-- > 0; n /= 36) out[i] = digits[n % 36];
    return out;
}

/// A sample usable as a template: its parsed raw message and its expectations.
struct sample_template {
    std::string raw;
    rapidjson::Document expect;
};

std::vector<std::unique_ptr<sample_template>> templates() {
    std::vector<std::unique_ptr<sample_template>> out;
    for (const std::string& line : sample_lines()) {
        rapidjson::Document d;
        d.Parse(line.c_str());
        if (d.HasParseError() || !d.HasMember("raw") || !d["raw"].IsString()) continue;
        const rapidjson::Value& e = d["expect"];
        if (!e["stored"].GetBool() || !e["mesh_duplicate_of"].IsNull()) continue;
        bool text = e["message_encoding"].IsNull() ||
                    std::string(e["message_encoding"].GetString()) == "text";
        if (!text) continue;
        rapidjson::Document raw;
        raw.Parse(d["raw"].GetString());
        if (raw.HasParseError() || !raw.IsObject() || !raw.HasMember("MessageID") ||
            !raw.HasMember("payload") || !raw["payload"].IsObject() ||
            !raw["payload"].HasMember("DeviceID")) {
            continue;
        }
        auto t = std::make_unique<sample_template>();
        t->raw = d["raw"].GetString();
        t->expect.CopyFrom(e, t->expect.GetAllocator());
        out.push_back(std::move(t));
    }
    if (out.empty()) throw std::runtime_error("samples.jsonl has no usable envelope sample");
    return out;
}

}  // namespace

std::vector<gateway_message> make_gateway_messages(std::size_t count, int series) {
    static const std::vector<std::unique_ptr<sample_template>> samples = templates();
    std::vector<gateway_message> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const sample_template& t = *samples[i % samples.size()];
        gateway_message m;
        m.device_id = "T" + base36(static_cast<std::size_t>(series), 1) + base36(i, 6);
        m.message_id = base36(i, 4);
        rapidjson::Document raw;
        raw.Parse(t.raw.c_str());
        raw["MessageID"].SetString(m.message_id.c_str(), raw.GetAllocator());
        raw["payload"]["DeviceID"].SetString(m.device_id.c_str(), raw.GetAllocator());
        rapidjson::StringBuffer buf;
        rapidjson::Writer<rapidjson::StringBuffer> w(buf);
        raw.Accept(w);
        m.bytes.assign(buf.GetString(), buf.GetSize());
        const rapidjson::Value& e = t.expect;
        m.topic = opt_text(e, "topic").value_or("");
        m.message = opt_text(e, "message");
        m.hops = opt_int(e, "hops");
        m.duck_type = opt_int(e, "duck_type");
        m.path = opt_text(e, "path");
        m.origin = opt_text(e, "origin");
        m.destination = opt_text(e, "destination");
        out.push_back(std::move(m));
    }
    return out;
}

std::vector<std::string> malformed_samples() {
    std::vector<std::string> out;
    for (const std::string& line : sample_lines()) {
        rapidjson::Document d;
        d.Parse(line.c_str());
        if (d.HasParseError() || d["expect"]["stored"].GetBool()) continue;
        if (d.HasMember("raw") && d["raw"].IsString()) {
            out.emplace_back(d["raw"].GetString(), d["raw"].GetStringLength());
        }
    }
    return out;
}

std::map<std::string, std::string> daemon_env(const db::connect_options& db, const mqtt_broker& b,
                                              const std::string& topic,
                                              const std::string& node_id) {
    std::map<std::string, std::string> env{
        {"DB_CONNECTION", db::dialect_name(db.kind)},
        {"DB_DATABASE", db.database},
        {"MQTT_HOST", b.host},
        {"MQTT_PORT", std::to_string(b.port)},
        {"MQTT_TOPIC", topic},
        {"MQTT_CLIENT_ID", unique_name("opendms-test-daemon")},
        {"FIELD_NODE_ID", node_id},
        {"LOG_LEVEL", "info"},
    };
    if (db.kind != db::dialect::sqlite) {
        env["DB_HOST"] = db.host;
        env["DB_PORT"] = std::to_string(db.port);
        env["DB_USERNAME"] = db.username;
        env["DB_PASSWORD"] = db.password;
    }
    return env;
}

void migrate_with_program(const std::string& env_file) {
    program_result r = run_program({field_binary(), "--env-file", env_file, "migrate"});
    if (r.code != 0) throw std::runtime_error("opendms-field migrate failed: " + r.output);
}

std::map<std::string, int> stored_keys(db::connection& c) {
    auto rows = c.query(
        "SELECT duck_id, message_id, COUNT(*) FROM cluster_data "
        "GROUP BY duck_id, message_id");
    if (!rows) throw std::runtime_error("stored_keys: " + rows.error().to_string());
    std::map<std::string, int> out;
    for (const db::row& r : rows->data) {
        out[r.get_text(0).value_or("") + "/" + r.get_text(1).value_or("")] =
            static_cast<int>(r.get_int(2).value_or(0));
    }
    return out;
}

std::int64_t count_rows(db::connection& c, const std::string& table) {
    auto rows = c.query("SELECT COUNT(*) FROM " + table);
    if (!rows) throw std::runtime_error("count_rows: " + rows.error().to_string());
    return rows->data.at(0).get_int(0).value_or(-1);
}

}  // namespace opendms::test
