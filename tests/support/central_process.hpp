// The real opendms-central binary of this build as a child process, for system tests:
// writes its .env, runs `migrate`, starts `serve` on 127.0.0.1:0 and learns the port from
// the log line "listening on http://127.0.0.1:PORT", sends signals, and exposes the log
// (stdout and stderr of every run, appended to one file).
//
// Also the requests a test sends to it: POST /api/ingest with a token, GET of a path.
//
// Errors: set-up failures (migrate fails, the server exits or never logs that it is
// listening) throw std::runtime_error carrying the log, so Catch2 shows why. The
// destructor SIGKILLs a server still running. Thread safety: one test thread drives a
// central_server; the request helpers may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_test_client.hpp"
#include "mqtt_test_client.hpp"
#include "opendms/db/database.hpp"

namespace opendms::test {

/// The opendms-central binary of this build (OPENDMS_BINARY_DIR/central-server/...).
std::string central_binary();

/// Writes `text` to `path` atomically (a temporary file renamed over it), so a server
/// re-reading the file never sees half of it; throws on failure.
void write_text_file(const std::string& path, const std::string& text);

/// The .env variables for `opendms-central serve` on database `db`: DB_*, CENTRAL_LISTEN
/// 127.0.0.1:0, CENTRAL_THREADS 1, LOG_LEVEL info, and CENTRAL_DMS_TOKEN when `token` is
/// not empty. Tests add their own limits on top.
std::map<std::string, std::string> central_env(const db::connect_options& db,
                                               const std::string& token);

/// One server: its .env file in `dir`, its log `dir`/<name>.log.
class central_server {
public:
    central_server(std::string dir, std::map<std::string, std::string> env,
                   std::string name = "central");
    ~central_server();
    central_server(const central_server&) = delete;
    central_server& operator=(const central_server&) = delete;

    /// Rewrites the .env file (takes effect at the next start).
    void set_env(std::map<std::string, std::string> env);
    const std::map<std::string, std::string>& env() const noexcept { return env_; }
    const std::string& env_file() const noexcept { return env_file_; }

    /// `opendms-central --env-file ENV <args>`, to completion (migrate, status, ...).
    program_result run_command(const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout = std::chrono::seconds(120));
    /// run_command({"migrate"}); throws with the output when it fails.
    void migrate();

    /// Starts `serve` and waits for its "listening on http://127.0.0.1:PORT" line; throws
    /// with the log when the process exits first or `timeout` passes.
    void start(std::chrono::milliseconds timeout = std::chrono::seconds(60));
    /// The port of the current run (after start()).
    unsigned short port() const noexcept { return port_; }
    pid_t pid() const;
    bool running();

    void send_signal(int sig);
    /// SIGHUP: re-read the tokens file.
    void reload() { send_signal(SIGHUP); }
    /// SIGTERM and wait up to `grace` (then SIGKILL); the exit code (128 + signal if killed).
    int stop(std::chrono::milliseconds grace = std::chrono::seconds(40));
    void kill_hard();
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);

    /// Everything every run has logged.
    std::string log() const { return read_text_file(log_path_); }
    const std::string& log_path() const noexcept { return log_path_; }

private:
    std::string dir_;
    std::string name_;
    std::string env_file_;
    std::string log_path_;
    std::map<std::string, std::string> env_;
    std::unique_ptr<child_process> process_;
    unsigned short port_ = 0;
};

/// The headers of a JSON ingest POST: Authorization (when `token` is not empty),
/// Content-Type application/json, Accept application/json.
header_list ingest_headers(const std::string& token);

/// POST /api/ingest with `body` on a fresh connection.
http_result post_ingest(unsigned short port, const std::string& token, const std::string& body,
                        const header_list& extra = {},
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// A keep-alive client of POST /api/ingest: reuses one connection and opens a new one when
/// the server closed the last (or said Connection: close). Never resends by itself: a
/// request without a response is returned as such (http_outcome::closed / timeout).
class ingest_client {
public:
    ingest_client(unsigned short port, std::string token,
                  std::chrono::milliseconds timeout = std::chrono::seconds(60));
    ~ingest_client();
    http_result post(const std::string& body, const header_list& extra = {});
    /// Connections opened so far.
    std::size_t connections() const noexcept { return connections_; }

private:
    unsigned short port_;
    std::string token_;
    std::chrono::milliseconds timeout_;
    std::unique_ptr<http_connection> conn_;
    std::size_t connections_ = 0;
};

/// GET `path` on a fresh connection.
http_result get_path(unsigned short port, const std::string& path,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Lower-case hex SHA-256 of `text` (OpenSSL), computed here rather than by the server's
/// token_store, so the tests check the tokens file format independently.
std::string sha256_hex(const std::string& text);
/// A tokens file line: "<node> sha256:<hex of SHA-256(token)>".
std::string tokens_file_line(const std::string& node, const std::string& token);

/// {"records":[r1,r2,...]} from record JSON texts.
std::string batch_body(const std::vector<std::string>& record_jsons);

/// The value of one Prometheus sample line "name{labels} value" in `metrics_text`
/// (exact `series` match, e.g. `opendms_tokens_reloads_total{result="failed"}`); 0 absent.
double metric_value(const std::string& metrics_text, const std::string& series);

}  // namespace opendms::test
