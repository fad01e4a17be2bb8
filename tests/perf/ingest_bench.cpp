// ingest_bench: sustained MQTT ingest of opendms-field against baselines measured in the
// same run on the same machine (docs/performance.md).
//
//   baseline_fsync   appending 200 bytes + fdatasync, in the database's directory: the
//                    disk's own durable-commit rate (what synchronous=FULL must approach)
//   baseline_broker  the broker delivering QoS 1 messages to a subscriber that stores
//                    nothing (what synchronous=NORMAL must approach), measured with two
//                    null subscribers, each a process of its own like the daemon:
//                    libmosquitto's own loop (mosquitto_loop(), one PUBACK written per
//                    message), and a loop like opendms-field's (read what has arrived,
//                    then write all its PUBACKs); the NORMAL ratio is taken against the
//                    faster of the two. Every measurement starts after a warm-up message
//                    and half a second of quiet, and looks for completion every 5 ms
//   daemon           opendms-field run, fresh SQLite database, N messages published at
//                    QoS 1; the rate is N / (time from the first publish until all N rows
//                    are in the database); peak RSS is the daemon's VmHWM
//
// Usage: ingest_bench --field BIN --mqtt-port P [--messages N] [--dir DIR]
//                     [--connections LIST] [--repeat R]
// Prints a Markdown table. Loopback only; bounded by N and by a 120 s deadline per run.
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <mosquitto.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
// How often every measurement looks whether all N have arrived (the daemon's: a COUNT(*)).
// The same for the baselines, so that neither steals more CPU from the pipeline.
constexpr std::chrono::milliseconds poll_period{5};

struct options {
    std::string field_bin;
    int mqtt_port = 0;
    int messages = 20000;
    std::string dir = "/tmp";
    std::vector<int> connections{1, 2};
    int repeat = 3;
};

[[noreturn]] void die(const std::string& what) {
    std::cerr << "ingest_bench: " << what << "\n";
    std::exit(1);
}

double seconds_since(steady::time_point t0) {
    return std::chrono::duration<double>(steady::now() - t0).count();
}

// A gateway-shaped message of about 200 bytes, unique per (run, i).
std::string message(const std::string& run, int i) {
    char id[16];
    std::snprintf(id, sizeof id, "%06d", i);
    return R"({"from":"hub","to":"controller","RE":false,"eventType":"status","MessageID":")" +
           std::string(id).substr(2) + R"(","payload":{"hops":1,"duckType":2,"DeviceID":")" +
           run + R"(","Message":"MSG,URGENCY:low,LAT:6.125400,LNG:102.238100,TEXT:bench )" + id +
           R"("}})";
}

// ---- baseline: the disk's fdatasync rate --------------------------------------------
double fsync_rate(const std::string& dir, double secs) {
    std::string path = dir + "/fsync-probe.bin";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0) die("open " + path + ": " + std::strerror(errno));
    std::string block(200, 'x');
    long n = 0;
    auto t0 = steady::now();
    while (seconds_since(t0) < secs) {
        if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size()) ||
            ::fdatasync(fd) != 0) {
            die(std::string("write/fdatasync: ") + std::strerror(errno));
        }
        ++n;
    }
    double rate = n / seconds_since(t0);
    ::close(fd);
    ::unlink(path.c_str());
    return rate;
}

// ---- MQTT helpers ---------------------------------------------------------------------

mosquitto* connect_client(const std::string& id, int port, bool clean, void* user) {
    mosquitto* m = mosquitto_new(id.c_str(), clean, user);
    if (!m) die("mosquitto_new");
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(m, 0);
    if (mosquitto_connect(m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS) die("mqtt connect");
    if (mosquitto_loop_start(m) != MOSQ_ERR_SUCCESS) die("mqtt loop_start");
    return m;
}

void publish_all(mosquitto* pub, const std::string& topic, const std::string& run, int n) {
    for (int i = 0; i < n; ++i) {
        std::string m = message(run, i);
        int rc;
        while ((rc = mosquitto_publish(pub, nullptr, topic.c_str(), static_cast<int>(m.size()),
                                       m.data(), 1, false)) == MOSQ_ERR_NO_CONN) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (rc != MOSQ_ERR_SUCCESS) die(std::string("publish: ") + mosquitto_strerror(rc));
    }
}

// ---- baseline: the broker's delivery rate to a null subscriber ---------------------------
// The null subscriber runs in a process of its own, as the daemon does (a subscriber in
// the publisher's process competed with it for the same threads and malloc arena). It
// reports over a pipe: 's' subscribed, 'w' the warm-up message arrived, 'd' all N arrived.
struct null_state {
    int pipe_fd = -1;
    std::string warm_marker;
    int n = 0;
    int received = 0;
    bool warm = false;
};

void tell(int fd, char c) {
    if (::write(fd, &c, 1) != 1) std::_Exit(3);
}

void null_on_message(mosquitto*, void* u, const mosquitto_message* msg) {
    auto* st = static_cast<null_state*>(u);
    std::string_view payload(static_cast<const char*>(msg->payload),
                             static_cast<std::size_t>(msg->payloadlen));
    if (payload.find(st->warm_marker) != std::string_view::npos) {
        if (!st->warm) tell(st->pipe_fd, 'w');
        st->warm = true;
        return;
    }
    if (++st->received == st->n) tell(st->pipe_fd, 'd');
}

// The child: subscribes and counts until all N arrived, with libmosquitto's loop
// (`batched` false: mosquitto_loop(), one PUBACK written per message) or a loop like
// opendms-field's (`batched`: read what has arrived, then write all its PUBACKs).
[[noreturn]] void null_subscriber(int port, const std::string& topic, null_state st,
                                  bool batched) {
    mosquitto* sub = mosquitto_new(nullptr, true, &st);
    if (!sub) std::_Exit(2);
    mosquitto_threaded_set(sub, true);  // PUBACKs queued, written by the loop after reading
    mosquitto_int_option(sub, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_message_callback_set(sub, null_on_message);
    mosquitto_subscribe_callback_set(sub, [](mosquitto*, void* u, int, int, const int*) {
        tell(static_cast<null_state*>(u)->pipe_fd, 's');
    });
    if (mosquitto_connect(sub, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS) std::_Exit(2);
    mosquitto_subscribe(sub, nullptr, topic.c_str(), 1);
    auto t0 = steady::now();
    while (st.received < st.n && seconds_since(t0) < 300) {
        if (!batched) {
            if (mosquitto_loop(sub, 50, 1) != MOSQ_ERR_SUCCESS) std::_Exit(2);
            continue;
        }
        int fd = mosquitto_socket(sub);
        if (fd < 0) std::_Exit(2);
        pollfd p{fd, POLLIN, 0};
        if (mosquitto_want_write(sub)) p.events |= POLLOUT;
        if (::poll(&p, 1, 50) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
            for (int k = 0; k < 256; ++k) {
                if (mosquitto_loop_read(sub, 1) != MOSQ_ERR_SUCCESS) std::_Exit(2);
                int waiting = 0;
                if (::ioctl(fd, FIONREAD, &waiting) != 0 || waiting <= 0) break;
            }
        }
        if (mosquitto_want_write(sub) && mosquitto_loop_write(sub, 1) != MOSQ_ERR_SUCCESS) {
            std::_Exit(2);
        }
        mosquitto_loop_misc(sub);
    }
    // The last PUBACKs out, then leave.
    for (int k = 0; k < 10 && mosquitto_want_write(sub); ++k) mosquitto_loop_write(sub, 1);
    std::_Exit(st.received == st.n ? 0 : 4);
}

/// Waits up to `secs` for the byte `want` from the child; false on anything else.
bool expect(int fd, char want, double secs) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(secs * 1000)) <= 0) return false;
    char c = 0;
    return ::read(fd, &c, 1) == 1 && c == want;
}

double broker_rate(int port, int n, const std::string& run, bool batched) {
    std::string topic = "bench/" + run;
    int fds[2];
    if (::pipe(fds) != 0) die("pipe");
    null_state st;
    st.pipe_fd = fds[1];
    st.warm_marker = run + "W";
    st.n = n;
    pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        ::close(fds[0]);
        null_subscriber(port, topic, st, batched);
    }
    ::close(fds[1]);
    if (!expect(fds[0], 's', 10)) die("the null subscriber did not subscribe");
    mosquitto* pub = connect_client("bench-pub-" + run, port, true, nullptr);
    // As before the daemon's run: one message through, then half a second of quiet, so that
    // every measurement starts with its connections up and idle.
    std::string warm = message(st.warm_marker, 0);
    mosquitto_publish(pub, nullptr, topic.c_str(), static_cast<int>(warm.size()), warm.data(), 1,
                      false);
    if (!expect(fds[0], 'w', 30)) die("the warm-up message did not arrive");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto t0 = steady::now();
    publish_all(pub, topic, run, n);
    bool done = expect(fds[0], 'd', 120);
    double secs = seconds_since(t0);
    int status = 0;
    if (!done) ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    ::close(fds[0]);
    mosquitto_disconnect(pub);
    mosquitto_loop_stop(pub, false);
    mosquitto_destroy(pub);
    if (!done) die(std::string(batched ? "batched " : "") + "null subscriber did not get all " +
                   std::to_string(n));
    return n / secs;
}

// ---- the daemon -----------------------------------------------------------------------
long rows_in(const std::string& db) {
    sqlite3* h = nullptr;
    long n = -1;
    if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 1000);
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(h, "SELECT COUNT(*) FROM cluster_data", -1, &st, nullptr) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW) {
            n = sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return n;
}

long vm_hwm_kib(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return -1;
}

struct daemon_result {
    double rate = 0;
    long peak_rss_kib = 0;
};

daemon_result daemon_rate(const options& o, const std::string& sync, int connections,
                          const std::string& run) {
    std::string db = o.dir + "/" + run + ".sqlite";
    std::string topic = "bench/" + run;
    std::vector<std::string> env = {
        "PATH=/usr/bin:/bin",
        "DB_CONNECTION=sqlite",
        "DB_DATABASE=" + db,
        "DB_SYNCHRONOUS=" + sync,
        "MQTT_HOST=127.0.0.1",
        "MQTT_PORT=" + std::to_string(o.mqtt_port),
        "MQTT_TOPIC=" + topic,
        "MQTT_CLIENT_ID=bench-field-" + run,
        "MQTT_CONNECTIONS=" + std::to_string(connections),
        "FIELD_NODE_ID=bench",
        "LOG_LEVEL=error",
        // Hybrid mode, as a field node that syncs: every message also gets its outbox entry,
        // and the pusher runs against a central over https that is down (port 1 refuses at
        // once), as on a gateway whose link is out.
        "CENTRAL_DMS_URL=https://127.0.0.1:1",
        "CENTRAL_DMS_TOKEN=bench-token",
    };
    std::string migrate = "env -i";
    for (const auto& e : env) migrate += " '" + e + "'";
    migrate += " " + o.field_bin + " migrate >/dev/null";
    if (std::system(migrate.c_str()) != 0) die("migrate failed: " + migrate);

    pid_t pid = ::fork();
    if (pid == 0) {
        std::vector<char*> envp;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        std::string bin = o.field_bin;
        char run_arg[] = "run";
        char* argv[] = {bin.data(), run_arg, nullptr};
        ::execve(bin.c_str(), argv, envp.data());
        std::_Exit(127);
    }
    mosquitto* pub = connect_client("bench-pub-" + run, o.mqtt_port, true, nullptr);
    // Warm-up: the daemon is ready when a first message is stored.
    auto t_ready = steady::now();
    std::string warm = message(run + "W", 0);
    while (rows_in(db) < 1) {
        if (seconds_since(t_ready) > 30) die("daemon did not store a warm-up message");
        mosquitto_publish(pub, nullptr, topic.c_str(), static_cast<int>(warm.size()), warm.data(), 1, false);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    long base = rows_in(db);

    auto t0 = steady::now();
    publish_all(pub, topic, run, o.messages);
    while (rows_in(db) < base + o.messages) {
        if (seconds_since(t0) > 120) die("daemon stored only " + std::to_string(rows_in(db) - base));
        std::this_thread::sleep_for(poll_period);
    }
    daemon_result r;
    r.rate = o.messages / seconds_since(t0);
    r.peak_rss_kib = vm_hwm_kib(pid);
    ::kill(pid, SIGTERM);
    int st = 0;
    ::waitpid(pid, &st, 0);
    mosquitto_disconnect(pub);
    mosquitto_loop_stop(pub, false);
    mosquitto_destroy(pub);
    for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((db + suffix).c_str());
    return r;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--field") o.field_bin = v;
        else if (k == "--mqtt-port") o.mqtt_port = std::atoi(v.c_str());
        else if (k == "--messages") o.messages = std::atoi(v.c_str());
        else if (k == "--dir") o.dir = v;
        else if (k == "--repeat") o.repeat = std::max(1, std::atoi(v.c_str()));
        else if (k == "--connections") {
            o.connections.clear();
            std::stringstream ss(v);
            std::string item;
            while (std::getline(ss, item, ',')) o.connections.push_back(std::atoi(item.c_str()));
        } else die("unknown option " + k);
    }
    if (o.field_bin.empty() || o.mqtt_port <= 0) die("usage: --field BIN --mqtt-port P [...]");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    options o = parse(argc, argv);
    mosquitto_lib_init();
    std::vector<double> fsync, broker, broker_batched;
    struct row {
        std::string sync;
        int connections;
        std::vector<double> rates;
        long peak_rss_kib = 0;
    };
    std::vector<row> rows;
    for (const char* sync : {"FULL", "NORMAL"}) {
        for (int c : o.connections) rows.push_back({sync, c, {}, 0});
    }
    // Interleave the runs so that noise from other work on the machine hits every
    // configuration alike.
    for (int r = 0; r < o.repeat; ++r) {
        std::string tag = std::to_string(::getpid()) + "r" + std::to_string(r);
        fsync.push_back(fsync_rate(o.dir, 2.0));
        broker.push_back(broker_rate(o.mqtt_port, o.messages, "B" + tag, false));
        broker_batched.push_back(broker_rate(o.mqtt_port, o.messages, "C" + tag, true));
        for (std::size_t i = 0; i < rows.size(); ++i) {
            daemon_result d = daemon_rate(o, rows[i].sync, rows[i].connections,
                                          "D" + tag + "c" + std::to_string(i));
            rows[i].rates.push_back(d.rate);
            rows[i].peak_rss_kib = std::max(rows[i].peak_rss_kib, d.peak_rss_kib);
        }
    }
    double f = median(fsync), b1 = median(broker), b2 = median(broker_batched);
    double b = std::max(b1, b2);
    std::printf("messages per run: %d, runs: %d (medians)\n\n", o.messages, o.repeat);
    std::printf("| measurement | rate (msg/s) | ratio | peak RSS |\n|---|---:|---:|---:|\n");
    std::printf("| baseline: append 200 B + fdatasync | %.0f | 1.00 | |\n", f);
    std::printf("| baseline: broker -> null subscriber, QoS 1, libmosquitto loop | %.0f | %s | |\n",
                b1, b1 >= b2 ? "1.00" : "-");
    std::printf("| baseline: broker -> null subscriber, QoS 1, batched PUBACKs | %.0f | %s | |\n",
                b2, b2 > b1 ? "1.00" : "-");
    for (const row& r : rows) {
        double m = median(r.rates);
        double base = r.sync == "FULL" ? f : b;
        std::printf("| opendms-field, synchronous=%s, %d connection(s) | %.0f | %.2f x %s | %.1f MiB |\n",
                    r.sync.c_str(), r.connections, m, m / base,
                    r.sync == "FULL" ? "fsync" : "broker (faster)", r.peak_rss_kib / 1024.0);
    }
    mosquitto_lib_cleanup();
    return 0;
}
