// The shipped nginx configuration (deploy/nginx/opendms-central.conf) in front of the
// central server, as a system test: a real nginx started by the test on 127.0.0.1 (its own
// main configuration, pid file, logs and temporary paths in a temporary directory; never the
// system service), the shipped server blocks included with only ports and certificate paths
// swapped in, a certificate made by the test, and the field node pushing through it over
// TLS with verification on. Then what nginx itself promises: TLS 1.2/1.3 with forward-secret
// ciphers only, HSTS, the 8 MiB body limit, the redirect from plain HTTP, the client's
// address passed on, and keep-alive connections to the upstream.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "central_process.hpp"
#include "fault_http_server.hpp"
#include "mqtt_test_client.hpp"
#include "opendms/clock.hpp"
#include "opendms/field/ingest_store.hpp"
#include "store_snapshot.hpp"
#include "test_pki.hpp"
#include "test_servers.hpp"

namespace {

using namespace std::chrono_literals;
namespace t = opendms::test;
namespace db = opendms::db;

const std::string token = "nginx-test-token-0123456789abcdefghijklmnop";
const std::string nginx_binary = "/usr/sbin/nginx";

db::connect_options sqlite_at(const std::string& path) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = path;
    return o;
}

/// `text` with `from` replaced by `to`; fails the test unless `from` occurs exactly once, so
/// the test notices when the shipped file changes under it.
std::string replace_once(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    INFO("deploy/nginx/opendms-central.conf must contain exactly one '" << from << "'");
    REQUIRE(at != std::string::npos);
    REQUIRE(text.find(from, at + 1) == std::string::npos);
    return text.replace(at, from.size(), to);
}

/// The processes whose parent is `parent` (from /proc).
std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    DIR* d = ::opendir("/proc");
    if (d == nullptr) return out;
    while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so after ')'.
        const std::string stat = t::read_text_file("/proc/" + name + "/stat");
        const auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(stat.substr(close + 1));
        std::string state;
        long ppid = 0;
        if (rest >> state >> ppid && ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    ::closedir(d);
    return out;
}

/// nginx with the shipped server blocks, in `dir`, in front of 127.0.0.1:`upstream_port`.
class nginx_process {
public:
    nginx_process(const std::string& dir, unsigned short upstream_port, const t::test_pki& pki)
        : dir_(dir), tls_port_(t::free_tcp_port()), plain_port_(t::free_tcp_port()) {
        INFO("nginx is installed by deploy/install-deps.sh test");
        REQUIRE(::access(nginx_binary.c_str(), X_OK) == 0);
        std::string site = t::read_text_file(OPENDMS_SOURCE_DIR "/deploy/nginx/opendms-central.conf");
        site = replace_once(site, "server 127.0.0.1:8080;", "server 127.0.0.1:" + std::to_string(upstream_port) + ";");
        site = replace_once(site, "listen 443 ssl http2;", "listen 127.0.0.1:" + std::to_string(tls_port_) + " ssl http2;");
        site = replace_once(site, "listen [::]:443 ssl http2;", "");
        site = replace_once(site, "listen 80;", "listen 127.0.0.1:" + std::to_string(plain_port_) + ";");
        site = replace_once(site, "listen [::]:80;", "");
        site = replace_once(site, "/etc/letsencrypt/live/central.example.org/fullchain.pem", pki.cert_pem());
        site = replace_once(site, "/etc/letsencrypt/live/central.example.org/privkey.pem", pki.key_pem());
        t::write_text_file(dir_ + "/site.conf", site);

        std::ostringstream main;
        // As root the workers would switch to "nobody", who cannot use the test's 0700
        // directories; keep them as the user running the test.
        if (::geteuid() == 0) main << "user root;\n";
        main << "worker_processes 1;\n"  // one worker: one upstream keep-alive cache
             << "pid " << dir_ << "/nginx.pid;\n"
             << "error_log " << dir_ << "/error.log info;\n"
             << "events { worker_connections 256; }\n"
             << "http {\n"
             << "  access_log " << dir_ << "/access.log;\n"
             << "  client_body_temp_path " << dir_ << "/client_body;\n"
             << "  proxy_temp_path " << dir_ << "/proxy;\n"
             << "  fastcgi_temp_path " << dir_ << "/fastcgi;\n"
             << "  uwsgi_temp_path " << dir_ << "/uwsgi;\n"
             << "  scgi_temp_path " << dir_ << "/scgi;\n"
             << "  include " << dir_ << "/site.conf;\n"
             << "}\n";
        t::write_text_file(dir_ + "/nginx.conf", main.str());
    }

    std::vector<std::string> argv(std::vector<std::string> extra) const {
        std::vector<std::string> a = {nginx_binary, "-p", dir_, "-c", dir_ + "/nginx.conf", "-e",
                                      dir_ + "/error.log"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }

    /// `nginx -t`: the configuration is valid.
    t::program_result test_config() const { return t::run_program(argv({"-t"})); }

    /// Starts nginx in the foreground (a child of the test) and waits until it accepts TLS.
    void start() {
        process_ = std::make_unique<t::child_process>(argv({"-g", "daemon off;"}), std::map<std::string, std::string>{},
                                                      dir_ + "/nginx.out");
        const bool up = t::wait_until(
            [&] {
                return !process_->running() ||
                       t::http_request_once(plain_port_, "GET", "/", {}, "", 1s).ok();
            },
            20s, 50ms);
        INFO(log());
        REQUIRE(up);
        REQUIRE(process_->running());
    }

    /// SIGTERM: the master stops its workers and exits. A master killed hard would leave its
    /// workers running (and listening), so any worker of it still alive afterwards is killed.
    void stop() {
        if (!process_) return;
        const std::vector<pid_t> workers = children_of(process_->pid());
        if (process_->running()) process_->terminate(10s);
        for (pid_t w : workers) {
            if (t::read_text_file("/proc/" + std::to_string(w) + "/cmdline").rfind("nginx: worker", 0) == 0) {
                ::kill(w, SIGKILL);
            }
        }
        process_.reset();
    }
    ~nginx_process() { stop(); }
    nginx_process(const nginx_process&) = delete;
    nginx_process& operator=(const nginx_process&) = delete;

    std::string log() const {
        return t::read_text_file(dir_ + "/nginx.out") + t::read_text_file(dir_ + "/error.log");
    }
    std::string access_log() const { return t::read_text_file(dir_ + "/access.log"); }
    unsigned short tls_port() const { return tls_port_; }
    unsigned short plain_port() const { return plain_port_; }
    std::string url() const { return "https://localhost:" + std::to_string(tls_port_); }

private:
    std::string dir_;
    unsigned short tls_port_;
    unsigned short plain_port_;
    std::unique_ptr<t::child_process> process_;  // killed by its destructor
};

/// A field node in hybrid mode pushing to `url` with the test's CA.
struct field_node {
    t::temp_dir dir;
    std::string env_file = dir.file("field.env");
    std::map<std::string, std::string> env;

    field_node(const std::string& url, const std::string& ca, std::map<std::string, std::string> extra = {}) {
        env = t::daemon_env(sqlite_at(dir.file("field.sqlite")), {"127.0.0.1", 1883}, "hub/event", "field-n");
        env["CENTRAL_DMS_URL"] = url;
        env["CENTRAL_DMS_TOKEN"] = token;
        env["CENTRAL_DMS_CA_FILE"] = ca;
        for (const auto& [k, v] : extra) env[k] = v;
        t::write_env_file(env_file, env);
        t::migrate_with_program(env_file);
    }
    std::unique_ptr<db::connection> connect() {
        auto c = db::open(sqlite_at(dir.file("field.sqlite")));
        REQUIRE(c);
        return std::move(*c);
    }
    /// `n` records stored as ingest would (hybrid: each with its outbox entry).
    void seed(int n) {
        auto c = connect();
        opendms::field::ingest_options o;
        o.mode = opendms::config::deployment_mode::hybrid;
        o.node_id = "field-n";
        opendms::field::ingest_store store(*c, opendms::real_clock(), o);
        REQUIRE(c->begin());
        for (int i = 0; i < n; ++i) {
            REQUIRE(store.ingest_in_transaction(
                "hub/event", R"({"eventType":"status","MessageID":")" + std::to_string(1000 + i) +
                                 R"(","payload":{"hops":1,"duckType":3,"DeviceID":"DUCK0077","Message":"nginx )" +
                                 std::to_string(i) + R"("}})"));
        }
        REQUIRE(c->commit());
    }
    t::program_result push_once() {
        return t::run_program({t::field_binary(), "--env-file", env_file, "push", "--once"}, {}, 120s);
    }
    std::int64_t count(const std::string& where) {
        auto c = connect();
        return t::query_ok(*c, "select count(*) from cluster_data where " + where)[0].get_int(0).value();
    }
};

/// `openssl s_client` to 127.0.0.1:port as localhost with the CA, sending `request`; its
/// output (handshake summary and the answer).
t::program_result s_client(unsigned short port, const std::string& ca, const std::string& options,
                           const std::string& request = "") {
    const std::string command = "printf '" + request + "' | openssl s_client -connect 127.0.0.1:" +
                                std::to_string(port) + " -servername localhost -verify_return_error -ign_eof -CAfile " +
                                ca + " " + options + " 2>&1";
    return t::run_program({"/bin/sh", "-c", command}, {}, 30s);
}

}  // namespace

TEST_CASE("the field node delivers through nginx over TLS with verification on", "[integration]") {
    t::temp_dir dir;
    t::test_pki pki(dir.file("pki"), "DNS:localhost");
    t::central_server central(dir.path(), t::central_env(sqlite_at(dir.file("central.sqlite")), token));
    central.migrate();
    central.start();
    nginx_process nginx(dir.path(), central.port(), pki);
    t::program_result check = nginx.test_config();
    INFO(check.output);
    REQUIRE(check.code == 0);
    nginx.start();

    field_node f(nginx.url(), pki.ca_pem(), {{"CENTRAL_DMS_BATCH_SIZE", "100"}});
    f.seed(250);
    t::program_result r = f.push_once();
    INFO(r.output << "\nnginx:\n" << nginx.log() << "\ncentral:\n" << central.log());
    CHECK(r.code == 0);
    CHECK(f.count("synced = 1") == 250);
    CHECK(f.count("synced = 0") == 0);
    auto central_db = db::open(sqlite_at(dir.file("central.sqlite")));
    REQUIRE(central_db);
    CHECK(t::count_rows(**central_db, "cluster_data") == 250);
    // Three batches, each through nginx (its log) to the central.
    const std::string access = nginx.access_log();
    INFO(access);
    CHECK(t::count_occurrences(access, "\"POST /api/ingest HTTP/1.1\" 200") == 3);

    // A wrong CA is refused by the field node: verification is really on.
    t::test_pki other(dir.file("other"), "DNS:localhost");
    field_node g(nginx.url(), other.ca_pem());
    g.seed(2);
    t::program_result refused = g.push_once();
    INFO(refused.output);
    CHECK(refused.code == 75);
    CHECK(refused.output.find("certificate verify failed") != std::string::npos);
    CHECK(g.count("synced = 0") == 2);
}

TEST_CASE("nginx: TLS 1.2 and 1.3 only with forward-secret ciphers, HSTS, 8 MiB, redirect",
          "[integration]") {
    t::temp_dir dir;
    t::test_pki pki(dir.file("pki"), "DNS:localhost");
    t::central_server central(dir.path(), t::central_env(sqlite_at(dir.file("central.sqlite")), token));
    central.migrate();
    central.start();
    nginx_process nginx(dir.path(), central.port(), pki);
    nginx.start();

    const std::string get = "GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n";
    t::program_result v13 = s_client(nginx.tls_port(), pki.ca_pem(), "-tls1_3", get);
    INFO(v13.output);
    CHECK(v13.output.find("Protocol  : TLSv1.3") != std::string::npos);
    CHECK(v13.output.find("Verify return code: 0 (ok)") != std::string::npos);
    CHECK(v13.output.find("HTTP/1.1 200 OK") != std::string::npos);
    CHECK(v13.output.find("Strict-Transport-Security: max-age=63072000") != std::string::npos);

    t::program_result v12 = s_client(nginx.tls_port(), pki.ca_pem(), "-tls1_2", get);
    INFO(v12.output);
    CHECK(v12.output.find("Protocol  : TLSv1.2") != std::string::npos);
    CHECK(v12.output.find("Cipher    : ECDHE-RSA-") != std::string::npos);
    CHECK(v12.output.find("HTTP/1.1 200 OK") != std::string::npos);

    // Refused: TLS 1.1 (even with a client that would allow it) and TLS 1.2 without forward
    // secrecy or with CBC.
    t::program_result v11 = s_client(nginx.tls_port(), pki.ca_pem(), "-tls1_1 -cipher DEFAULT:@SECLEVEL=0", get);
    INFO(v11.output);
    CHECK(v11.output.find("HTTP/1.1 200") == std::string::npos);
    CHECK(v11.code != 0);
    for (const char* weak : {"AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"}) {
        t::program_result w = s_client(nginx.tls_port(), pki.ca_pem(), std::string("-tls1_2 -cipher ") + weak, get);
        INFO(weak << ": " << w.output);
        CHECK(w.output.find("HTTP/1.1 200") == std::string::npos);
    }

    // The body limit is CENTRAL_MAX_BODY_BYTES: one byte more is refused by nginx itself,
    // by Content-Length, before anything reaches the central.
    const std::string big = "POST /api/ingest HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Type: application/json\\r\\n"
                            "Content-Length: 8388609\\r\\nConnection: close\\r\\n\\r\\n";
    t::program_result too_big = s_client(nginx.tls_port(), pki.ca_pem(), "-quiet", big);
    INFO(too_big.output);
    CHECK(too_big.output.find("HTTP/1.1 413") != std::string::npos);
    CHECK(central.log().find("/api/ingest") == std::string::npos);

    // Plain HTTP is only a redirect to HTTPS.
    auto plain = t::http_request_once(nginx.plain_port(), "POST", "/api/ingest", {{"Host", "central.example.org"}}, "{}");
    INFO(plain.describe());
    CHECK(plain.status() == 301);
    CHECK(plain.response.header("Location") == "https://central.example.org/api/ingest");

    // /metrics is for the scraper on the nginx host only (here: 127.0.0.1 is allowed).
    t::program_result metrics = s_client(nginx.tls_port(), pki.ca_pem(), "-quiet",
                                         "GET /metrics HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n");
    CHECK(metrics.output.find("opendms_http_requests_total") != std::string::npos);
}

TEST_CASE("nginx passes the client's address on and keeps its upstream connection alive",
          "[integration]") {
    t::temp_dir dir;
    t::test_pki pki(dir.file("pki"), "DNS:localhost");
    t::fault_http_server upstream([](const t::recorded_request& r, std::size_t) { return t::batch_answer(r); });
    nginx_process nginx(dir.path(), upstream.port(), pki);
    nginx.start();

    field_node f(nginx.url(), pki.ca_pem(), {{"CENTRAL_DMS_BATCH_SIZE", "10"}, {"CENTRAL_DMS_CONCURRENCY", "1"}});
    f.seed(50);
    t::program_result r = f.push_once();
    INFO(r.output << "\nnginx:\n" << nginx.log());
    CHECK(r.code == 0);
    CHECK(f.count("synced = 1") == 50);
    const auto requests = upstream.requests();
    REQUIRE(requests.size() == 5);
    for (const t::recorded_request& q : requests) {
        CHECK(q.header("X-Real-IP") == "127.0.0.1");
        CHECK(q.header("X-Forwarded-For") == "127.0.0.1");
        CHECK(q.header("X-Forwarded-Proto") == "https");
        CHECK(q.header("Host") == "localhost");
        CHECK(q.header("Authorization") == "Bearer " + token);
        CHECK(q.header("Connection").empty());  // not "close": the connection is kept
    }
    // Five requests, one upstream connection.
    CHECK(upstream.connections() == 1);
}
