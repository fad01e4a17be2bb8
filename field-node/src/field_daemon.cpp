// field_daemon: `opendms-field run` (contract in field_daemon.hpp).
#include "opendms/field/field_daemon.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <ostream>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include "opendms/clock.hpp"
#include "opendms/db/migrations.hpp"
#include "opendms/field/clock_watch.hpp"
#include "opendms/field/database_guard.hpp"
#include "opendms/field/ingest_store.hpp"
#include "opendms/field/ingest_writer.hpp"
#include "opendms/field/mqtt_subscriber.hpp"
#include "opendms/field/push_service.hpp"
#include "opendms/log.hpp"
#include "opendms/systemd.hpp"

namespace opendms::field {
namespace {

constexpr const char* component = "daemon";
constexpr std::chrono::seconds summary_interval{60};
constexpr std::chrono::seconds max_database_retry{30};

/// Blocks SIGTERM and SIGINT in the calling thread, and so in every thread it starts
/// afterwards; takes them with sigtimedwait. Restores the old mask when destroyed.
class signal_gate {
public:
    signal_gate() {
        sigemptyset(&set_);
        sigaddset(&set_, SIGTERM);
        sigaddset(&set_, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set_, &old_);
    }
    ~signal_gate() {
        // A second signal during shutdown would kill the process once unblocked.
        while (wait(std::chrono::milliseconds(0)) != 0) {
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    signal_gate(const signal_gate&) = delete;
    signal_gate& operator=(const signal_gate&) = delete;

    /// The signal that arrived within `d`, or 0.
    int wait(std::chrono::milliseconds d) {
        timespec ts{};
        ts.tv_sec = static_cast<time_t>(d.count() / 1000);
        ts.tv_nsec = static_cast<long>(d.count() % 1000) * 1000000L;
        int sig = sigtimedwait(&set_, nullptr, &ts);
        return sig > 0 ? sig : 0;
    }

private:
    sigset_t set_{};
    sigset_t old_{};
};

struct counters {
    std::atomic<std::uint64_t> stored{0};
    std::atomic<std::uint64_t> duplicates{0};
    std::atomic<std::uint64_t> quarantined{0};
};

/// Where the MQTT connections store their batches (each batch: the messages one connection
/// had read; their PUBACKs leave after this returns). With one MQTT connection, its network
/// thread stores the batch itself in one transaction, no hand-off; a lone message takes the
/// plain ingest() path. With several, every connection submits its batch to one
/// ingest_writer, which commits whatever is waiting in one transaction (group commit) and
/// answers only after that commit. Either way one commit (one fsync with
/// synchronous=FULL) serves many messages of a burst.
struct ingest_sink {
    std::unique_ptr<db::connection> connection;  // single-connection mode
    std::unique_ptr<ingest_store> store;         // single-connection mode
    std::unique_ptr<ingest_writer> writer;       // MQTT_CONNECTIONS > 1

    std::vector<result<ingest_outcome>> ingest(const std::vector<mqtt_message>& batch) {
        std::vector<result<ingest_outcome>> out;
        if (writer) {
            std::vector<std::pair<std::string_view, std::string_view>> messages;
            messages.reserve(batch.size());
            for (const mqtt_message& m : batch) messages.emplace_back(m.topic, m.payload);
            return writer->submit_batch(messages);
        }
        if (batch.size() == 1) {
            out.push_back(store->ingest(batch[0].topic, batch[0].payload));
            return out;
        }
        std::vector<batch_entry> entries;
        entries.reserve(batch.size());
        for (const mqtt_message& m : batch) entries.push_back(store->entry(m.topic, m.payload));
        std::vector<batch_entry*> pointers;
        pointers.reserve(entries.size());
        for (batch_entry& e : entries) pointers.push_back(&e);
        (void)store->ingest_batch(pointers);
        out.reserve(batch.size());
        for (batch_entry& e : entries) out.push_back(std::move(*e.outcome));
        return out;
    }
};

std::string database_label(const db::connect_options& o) {
    if (o.kind == db::dialect::sqlite) return "sqlite " + o.database;
    return std::string(db::dialect_name(o.kind)) + " " + o.database + " on " + o.host + ":" +
           std::to_string(o.port);
}

/// Opens a connection, waiting out a server that is down (errc::unavailable) until it
/// answers or a signal arrives (then `signalled` is set).
result<std::unique_ptr<db::connection>> open_database(const db::connect_options& o,
                                                      signal_gate& signals, bool& signalled) {
    std::chrono::milliseconds delay(1000);
    for (;;) {
        auto c = db::open(o);
        if (c || c.error().code() != errc::unavailable) return c;
        OPENDMS_LOG(warning, component,
                    "cannot reach the database (" << c.error().message() << "); retrying in "
                                                  << delay.count() / 1000 << " s");
        if (signals.wait(delay) != 0) {
            signalled = true;
            return c;
        }
        delay = std::min<std::chrono::milliseconds>(delay * 2, max_database_retry);
    }
}

/// 0 when the database may be used; else the exit code, with the reason on `err`.
int check_database(const field_settings& s, db::connection& c, std::ostream& err) {
    db::migrator m(c);
    auto current = m.is_current();
    if (!current) {
        err << "opendms-field run: cannot read the migrations of " << database_label(s.common.db)
            << ": " << current.error().message() << "\n";
        return daemon_exit_failed;
    }
    if (!*current) {
        err << "opendms-field run: the database " << database_label(s.common.db)
            << " has pending migrations; run `opendms-field migrate` first (see "
               "`opendms-field migrate:status`)\n";
        return daemon_exit_config;
    }
    return 0;
}

/// False (with the fix on `err`) when the SQLite file does not exist: opening it would
/// create an empty database that is not migrated.
bool sqlite_file_exists(const db::connect_options& o, std::ostream& err) {
    if (o.kind != db::dialect::sqlite || o.database == ":memory:") return true;
    struct stat st {};
    if (::stat(o.database.c_str(), &st) == 0) return true;
    err << "opendms-field run: DB_DATABASE: " << o.database << ": " << std::strerror(errno)
        << "; run `opendms-field migrate` to create the database\n";
    return false;
}

/// Logs a jump of the wall clock (records take it as their time; clock_watch.hpp).
void watch_clock() {
    static std::mutex mutex;
    static clock_watch watch;
    const std::int64_t steady_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now().time_since_epoch())
                                       .count();
    std::optional<std::int64_t> jump;
    {
        std::lock_guard<std::mutex> lock(mutex);
        jump = watch.observe(real_clock().now_ms(), steady_ms);
    }
    if (jump) {
        OPENDMS_LOG(warning, component,
                    "the wall clock jumped " << (*jump < 0 ? "back" : "forward") << " by "
                                             << std::llabs(*jump) / 1000
                                             << " s: records take its time (created_at), their "
                                                "order stays the order of arrival (id)");
    }
}

/// Counts and logs one message's outcome; its status for the subscriber.
status account(const result<ingest_outcome>& outcome, const ingest_options& options,
               counters& n, std::string_view topic, std::string_view payload) {
    if (!outcome) {
        if (outcome.error().code() == errc::corrupt) {
            // The file went bad under us. Retrying cannot help; a restart can: the start-up
            // check sets the file aside and the broker redelivers this message.
            static std::atomic<bool> raised{false};
            if (!raised.exchange(true)) {
                OPENDMS_LOG(error, component, "the database is damaged (" << outcome.error().message()
                                                                          << "): stopping to recover");
                ::kill(::getpid(), SIGTERM);
            }
        }
        return outcome.error();
    }
    switch (*outcome) {
        case ingest_outcome::stored:
            n.stored.fetch_add(1);
            OPENDMS_LOG(debug, "ingest", "stored a message on " << topic);
            break;
        case ingest_outcome::mesh_duplicate:
            n.duplicates.fetch_add(1);
            OPENDMS_LOG(debug, "ingest", "a mesh duplicate on " << topic << " (recorded)");
            break;
        case ingest_outcome::quarantined:
            n.quarantined.fetch_add(1);
            // Parsing again costs little and happens only here: the operator sees why.
            OPENDMS_LOG(warning, "ingest",
                        "quarantined a message on "
                            << topic << " (" << payload.size() << " bytes): "
                            << parse_gateway_message(topic, payload, options.limits).reason);
            break;
    }
    return status::ok();
}

/// Stores one connection's batch; one status per message (mqtt_subscriber's handler).
std::vector<status> store_messages(ingest_sink& sink, const ingest_options& options,
                                   counters& n, push_service* push,
                                   const std::vector<mqtt_message>& batch) {
    watch_clock();
    std::vector<result<ingest_outcome>> outcomes = sink.ingest(batch);
    std::vector<status> out;
    out.reserve(batch.size());
    bool stored = false;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const result<ingest_outcome>& o = outcomes[i];
        stored = stored || (o && *o == ingest_outcome::stored);
        out.push_back(account(o, options, n, batch[i].topic, batch[i].payload));
    }
    if (stored && push != nullptr) push->notify();  // the live lane goes out now
    return out;
}

/// The periodic line; a warning while a connection is down. `final` after stop().
void log_summary(const mqtt_subscriber& sub, const counters& n, int connections,
                 push_service* push, bool final) {
    int up = sub.connected();
    std::ostringstream line;
    line << (final ? "stopped" : "summary") << ": handled " << sub.handled()
         << " message(s) since start (stored " << n.stored.load() << ", mesh duplicates "
         << n.duplicates.load() << ", quarantined " << n.quarantined.load() << ")";
    if (push != nullptr) {
        const pusher_stats p = push->get().stats();
        line << "; delivered " << p.delivered << " record(s) in " << p.requests
             << " request(s), parked " << p.parked << ", failed attempts " << p.failed_attempts;
    }
    if (!final) line << "; " << up << " of " << connections << " connection(s) subscribed";
    if (!final && up < connections) {
        OPENDMS_LOG(warning, component, line.str());
    } else {
        OPENDMS_LOG(info, component, line.str());
    }
}

/// Opens the database and the store or writer; 0 or an exit code (reason on `err`).
int open_sink(const field_settings& s, signal_gate& signals, ingest_sink& sink, std::ostream& err,
              bool& signalled) {
    auto c = open_database(s.common.db, signals, signalled);
    if (signalled) return 0;
    if (!c) {
        err << "opendms-field run: cannot open " << database_label(s.common.db) << ": "
            << c.error().message() << "\n";
        return daemon_exit_failed;
    }
    if (int code = check_database(s, **c, err); code != 0) return code;
    if (s.mqtt.connections > 1) {
        sink.writer = std::make_unique<ingest_writer>(std::move(*c), real_clock(), s.ingest());
        sink.writer->start();
    } else {
        sink.connection = std::move(*c);
        sink.store = std::make_unique<ingest_store>(*sink.connection, real_clock(), s.ingest());
    }
    return 0;
}

/// FIELD_METRICS_LISTEN: starts GET /metrics (field_metrics.hpp); 0 or an exit code.
int start_metrics(const field_settings& s, const mqtt_subscriber& sub, const counters& n,
                  push_service* push, const latency_histogram& latency,
                  std::unique_ptr<metrics_server>& out, std::ostream& err) {
    if (!s.metrics.enabled()) return 0;
    metrics_sources src;
    src.database = s.common.db;
    const int connections = s.mqtt.connections;
    src.daemon = [&sub, &n, connections] {
        return daemon_counts{n.stored.load(), n.duplicates.load(), n.quarantined.load(),
                             sub.connected(), connections};
    };
    src.push = push != nullptr ? &push->get() : nullptr;
    src.latency = push != nullptr ? &latency : nullptr;
    out = std::make_unique<metrics_server>(s.metrics, make_sampler(std::move(src)));
    if (status st = out->start(); !st) {
        err << "opendms-field run: FIELD_METRICS_LISTEN: " << st.message() << "\n";
        return daemon_exit_failed;
    }
    return 0;
}

}  // namespace

int run_daemon(const field_settings& s, std::ostream& err) {
    log::set_threshold(s.log_level);
    signal_gate signals;
    ::signal(SIGPIPE, SIG_IGN);  // a closed socket is an error code, not a death
    if (!sqlite_file_exists(s.common.db, err)) return daemon_exit_config;
    if (auto guarded = guard_database(s.common.db, real_clock()); !guarded) {
        err << "opendms-field run: " << guarded.error().message() << "\n";
        return daemon_exit_failed;
    }

    ingest_sink sink;
    bool signalled = false;
    if (int code = open_sink(s, signals, sink, err, signalled); code != 0) return code;
    if (signalled) return daemon_exit_ok;

    latency_histogram latency;  // before push: the pusher's threads observe into it
    std::unique_ptr<push_service> push;
    if (s.push.enabled) {
        auto opened = push_service::open(s);
        if (!opened) {
            err << "opendms-field run: " << opened.error().message() << "\n";
            return opened.error().code() == errc::invalid_argument ? daemon_exit_config
                                                                   : daemon_exit_failed;
        }
        push = std::move(*opened);
        if (s.metrics.enabled()) {
            push->get().set_request_observer([&latency](double seconds) { latency.observe(seconds); });
        }
        push->start();
    }

    counters n;
    const ingest_options options = s.ingest();
    mqtt_subscriber sub(s.mqtt, batch_handler([&](int, const std::vector<mqtt_message>& batch) {
                            return store_messages(sink, options, n, push.get(), batch);
                        }));
    if (status st = sub.start(); !st) {
        err << "opendms-field run: " << st.message() << "\n";
        return st.code() == errc::invalid_argument ? daemon_exit_config : daemon_exit_failed;
    }
    std::string topics;
    for (const std::string& t : s.mqtt.topics) topics += (topics.empty() ? "" : ",") + t;
    OPENDMS_LOG(info, component,
                "running: mode " << config::mode_name(s.common.mode) << ", "
                                 << database_label(s.common.db) << ", node " << s.node_id << ", "
                                 << s.mqtt.connections << " connection(s) to " << s.mqtt.host << ":"
                                 << s.mqtt.port << " for " << topics);
    std::unique_ptr<metrics_server> metrics;
    if (int code = start_metrics(s, sub, n, push.get(), latency, metrics, err); code != 0) {
        return code;
    }
    // Under systemd (Type=notify): ready now; WATCHDOG=1 at least every half WatchdogSec.
    systemd::notify_ready("receiving on " + topics);
    const auto ping_period = systemd::ping_period(summary_interval);

    auto next_summary = std::chrono::steady_clock::now() + summary_interval;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            next_summary - std::chrono::steady_clock::now());
        int sig = signals.wait(std::clamp(left, std::chrono::milliseconds(0), ping_period));
        if (sig != 0) {
            OPENDMS_LOG(notice, component,
                        "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": stopping");
            systemd::notify_stopping();
            break;
        }
        systemd::notify_watchdog();
        if (std::chrono::steady_clock::now() >= next_summary) {
            log_summary(sub, n, s.mqtt.connections, push.get(), false);
            next_summary += summary_interval;
        }
    }
    sub.stop();  // first: no callback is waiting on the writer after this
    if (sink.writer) sink.writer->stop();
    if (push) push->stop();
    log_summary(sub, n, s.mqtt.connections, push.get(), true);
    return daemon_exit_ok;
}

}  // namespace opendms::field
