// central_daemon: `opendms-central serve` (contract in central_daemon.hpp).
#include "opendms/central/central_daemon.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <thread>

#include "opendms/central/db_pool.hpp"
#include "opendms/central/http_server.hpp"
#include "opendms/central/ingest_handler.hpp"
#include "opendms/central/metrics.hpp"
#include "opendms/central/token_store.hpp"
#include "opendms/cli.hpp"
#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/log.hpp"
#include "opendms/systemd.hpp"

namespace opendms::central {
namespace {

constexpr const char* component = "serve";
constexpr std::chrono::milliseconds readiness_interval{1000};

std::string database_label(const db::connect_options& o) {
    if (o.kind == db::dialect::sqlite) return "sqlite " + o.database;
    return std::string(db::dialect_name(o.kind)) + " " + o.database + " on " + o.host + ":" +
           std::to_string(o.port);
}

/// 0 when serving may start; else the exit code, with the reason and the fix on `err`.
/// A database that cannot be reached is not a reason: the server starts and answers 503
/// until it is back.
int check_database(const db::connect_options& o, std::ostream& err) {
    if (o.kind == db::dialect::sqlite && o.database != ":memory:") {
        struct stat st {};
        if (::stat(o.database.c_str(), &st) != 0) {
            err << "opendms-central serve: DB_DATABASE: " << o.database << ": "
                << std::strerror(errno)
                << "; run `opendms-central migrate` to create the database\n";
            return cli::exit_failed;
        }
    }
    auto c = db::open(o);
    auto state =
        c ? db::migrator(**c).state() : result<std::vector<db::migration_state>>(c.error());
    if (!state) {
        if (state.error().code() != errc::unavailable) {
            err << "opendms-central serve: cannot use " << database_label(o) << ": "
                << state.error().message() << "\n";
            return cli::exit_failed;
        }
        OPENDMS_LOG(warning, component,
                    "cannot reach the database (" << state.error().message()
                                                  << "); serving anyway: ingest answers 503 "
                                                     "until it is back");
        return 0;
    }
    std::size_t pending = 0;
    for (const db::migration_state& m : *state) pending += m.applied ? 0 : 1;
    if (pending == 0) return 0;
    err << "opendms-central serve: " << pending
        << (pending == 1 ? " migration is" : " migrations are")
        << " pending; run `opendms-central migrate` first\n";
    return cli::exit_failed;
}

/// SIGTERM/SIGINT stop the server, SIGHUP re-reads the tokens file, on a thread of its
/// own (never inside a raw signal handler). Construct before the server listens, so a
/// signal arriving early is not the default action.
class signal_thread {
public:
    signal_thread(http_server& server, token_store& tokens, metrics& m)
        : signals_(io_, SIGTERM, SIGINT, SIGHUP), server_(server), tokens_(tokens), metrics_(m) {
        wait();
        thread_ = std::thread([this] { io_.run(); });
    }
    ~signal_thread() {
        io_.stop();
        thread_.join();
    }
    signal_thread(const signal_thread&) = delete;
    signal_thread& operator=(const signal_thread&) = delete;

private:
    void wait() {
        signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec) return;  // cancelled at exit
            on_signal(sig);
            wait();  // a second SIGTERM during the drain must not kill the process
        });
    }

    void on_signal(int sig) {
        if (sig == SIGHUP) {
            status st = tokens_.load();
            metrics_.count_token_reload(st.is_ok());
            if (st) {
                OPENDMS_LOG(notice, component,
                            "SIGHUP: tokens file re-read, " << tokens_.node_count() << " node(s)");
            } else {
                OPENDMS_LOG(error, component,
                            "SIGHUP: " << st.message() << "; the previous tokens stay in use");
            }
            return;
        }
        OPENDMS_LOG(notice, component,
                    "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
                                << ": finishing requests in flight, then stopping");
        systemd::notify_stopping("finishing requests in flight");
        server_.stop();
    }

    boost::asio::io_context io_;
    boost::asio::signal_set signals_;
    http_server& server_;
    token_store& tokens_;
    metrics& metrics_;
    std::thread thread_;
};

server_options server_options_from(const central_settings& s) {
    server_options o;
    o.host = s.listen_host;
    o.port = s.listen_port;
    o.threads = s.effective_threads();
    // Workers inflate, decode and validate the requests that do not run inline; storing
    // is the store group's own threads'.
    o.workers = static_cast<unsigned>(std::max<std::size_t>(2, s.db_pool_size));
    o.limits = s.limits;
    o.retry_after_s = s.retry_after_s;
    o.tls_cert_file = s.tls_cert_file;
    o.tls_key_file = s.tls_key_file;
    o.access_log = s.access_log;
    return o;
}

handler_options handler_options_from(const central_settings& s) {
    handler_options o;
    o.max_body_bytes = s.limits.max_body_bytes;
    o.max_batch_records = s.max_batch_records;
    o.retry_after_s = s.retry_after_s;
    o.store.mesh_window_s = s.duplicate_window_s;
    // Deadlines on the database, inside the request's: a statement may take a third of
    // CENTRAL_REQUEST_TIMEOUT, a lock wait a sixth (a request makes a few statements).
    o.store.statement_timeout =
        std::max(std::chrono::milliseconds(1000), s.limits.request_timeout / 3);
    o.store.lock_timeout = std::max(std::chrono::milliseconds(500), s.limits.request_timeout / 6);
    return o;
}

void log_listening(const central_settings& s, unsigned short port) {
    bool v6 = s.listen_host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + s.listen_host + "]" : s.listen_host;
    OPENDMS_LOG(notice, component,
                "listening on " << (s.tls_cert_file ? "https" : "http") << "://" << host << ":"
                                << port << " (" << database_label(s.common.db) << ", "
                                << s.effective_threads() << " HTTP thread(s), " << s.db_pool_size
                                << " database connection(s))");
}

}  // namespace

int run_serve(const central_settings& s, std::ostream& err) {
    log::set_threshold(s.log_level);
    ::signal(SIGPIPE, SIG_IGN);  // a closed socket is an error code, not a death
    token_store tokens(s.common.central_token, s.tokens_file.value_or(""));
    if (status st = tokens.load(); !st) {
        err << "opendms-central serve: " << st.message() << "\n";
        return cli::exit_config;
    }
    if (!s.common.central_token && !s.tokens_file) {
        OPENDMS_LOG(warning, component,
                    "neither CENTRAL_DMS_TOKEN nor CENTRAL_DMS_TOKENS_FILE is set: every "
                    "ingest request is answered 503 (not configured)");
    }
    if (int code = check_database(s.common.db, err); code != 0) return code;

    db_pool pool(s.common.db, s.db_pool_size);
    metrics m;
    m.set_pool_source([&pool] {
        return std::vector<std::size_t>{pool.in_use(), pool.open_count(), pool.size()};
    });
    ingest_handler handler(handler_options_from(s), tokens, pool, m, real_clock());
    handler.start_readiness_checks(readiness_interval);
    m.set_store_source([&handler] {
        const group_stats g = handler.group().stats();
        return std::vector<std::uint64_t>{g.transactions, g.requests, g.records};
    });
    http_server server(server_options_from(s), handler, m);
    m.set_pending_source([&server] { return server.pending_requests(); });
    signal_thread signals(server, tokens, m);
    if (status st = server.start(); !st) {
        err << "opendms-central serve: " << st.message() << "\n";
        return st.code() == errc::invalid_argument ? cli::exit_config : cli::exit_failed;
    }
    log_listening(s, server.port());
    // Under systemd (Type=notify): ready now, and the watchdog pinged from a thread of its
    // own while run() blocks this one (deploy/systemd/opendms-central.service).
    systemd::notify_ready("listening on port " + std::to_string(server.port()));
    systemd::heartbeat watchdog;
    server.run();
    if (server.stopped_by_timeout()) {
        // A request is still running (stuck on the database past every timeout): waiting
        // for it would hang the shutdown. Its transaction is not committed and dies with
        // the connection; its client retries.
        OPENDMS_LOG(warning, component,
                    "stopped after CENTRAL_SHUTDOWN_TIMEOUT with "
                        << server.pending_requests()
                        << " request(s) unanswered; exiting without waiting for them");
        std::fflush(nullptr);
        std::_Exit(cli::exit_failed);
    }
    OPENDMS_LOG(notice, component, "stopped");
    return cli::exit_ok;
}

}  // namespace opendms::central
