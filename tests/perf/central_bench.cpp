// central_bench: `opendms-central serve` against baselines measured in the same run, on the
// same machine and the same PostgreSQL server (docs/performance.md, "Central server").
//
//   batch   POST /api/ingest batches ({"records":[...]}, B records each, every record with
//           a fresh UUIDv7 and a source_node) from C keep-alive connections into a fresh
//           migrated database: records/s from the first request of the timed part until
//           the last answer, against one `COPY cluster_data (...) FROM STDIN` (libpq) of
//           the same rows into another fresh migrated database
//   single  the seed's single-record body plus a unique uuid, K keep-alive connections
//           (one request in flight each) for T seconds: requests/s, against pgbench
//           running the same INSERT ... ON CONFLICT (uuid) DO NOTHING RETURNING id at the
//           same concurrency (-c K -j 2 -M prepared -T T)
//   idle    the server's VmRSS with I idle keep-alive connections open, each having done
//           one request, against its VmRSS after one request on one connection
// For `single` (and pgbench, and GET /healthz) it also reports the CPU time of the whole
// machine per request in the measured window (/proc/stat: server, PostgreSQL and load
// generator together, and anything else running): what a request costs, which a busy
// machine's noise moves far less than the rates. Before and after the runs it measures what
// a round trip between two processes costs the machine (process_round_trip_us()).
// Every measurement (baselines included) gets a fresh database: created, migrated with
// `opendms-central migrate`, with --prefill ROWS (default 0) rows a day old COPied in and
// ANALYZEd first (a central database in service rather than an empty one), checked (row
// count) and dropped afterwards. Every server run is a fresh `opendms-central serve`
// (CENTRAL_DB_POOL_SIZE from --pool-sizes, access log off; --server-env NAME=VALUE is
// passed in serve's environment and overrides those).
//
// Usage: central_bench --central BIN --pgbench BIN [--dir DIR] [--repeat R]
//            [--records N] [--batch-records B] [--batch-connections C] [--seconds T]
//            [--connections K] [--idle-connections I] [--pool-sizes 8,32]
//            [--server-env NAME=VALUE]... [--parts batch,single,idle] [--prefill ROWS]
// PostgreSQL: OPENDMS_TEST_PG_{HOST,PORT,USER,PASSWORD,DATABASE} (tests/support/servers.sh);
// the user must be allowed to create databases. Prints a Markdown table. Loopback only;
// every wait is bounded (a server that does not answer within 60 s stops the benchmark).
#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

struct pg_target {
    std::string host, port, user, password, maintenance_db;
};

struct options {
    std::string central_bin;
    std::string pgbench_bin;
    std::string dir = "/tmp";
    int repeat = 3;
    int records = 100000;
    int batch_records = 500;
    int batch_connections = 4;
    int seconds = 10;
    int connections = 32;
    int idle_connections = 256;
    std::vector<int> pool_sizes{8, 32};
    std::vector<std::string> server_env;
    bool batch = true, single = true, idle = true;  // --parts
    long prefill = 0;
    pg_target pg;
};

void emergency_cleanup();

// Stops the benchmark from any thread: kills a running server, drops the scratch databases.
[[noreturn]] void die(const std::string& what) {
    static std::atomic<bool> dying{false};
    std::cerr << "central_bench: " << what << std::endl;
    if (!dying.exchange(true)) emergency_cleanup();
    std::_Exit(1);
}

double seconds_since(steady::time_point t0) {
    return std::chrono::duration<double>(steady::now() - t0).count();
}

std::mt19937_64& rng() {
    thread_local std::mt19937_64 r{std::random_device{}()};
    return r;
}

// ---- records ----------------------------------------------------------------------------

// RFC 9562 UUIDv7: 48-bit Unix milliseconds, version 7, variant 10, random bits.
std::string uuid_v7() {
    auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
    std::uint64_t hi = (ms << 16) | 0x7000u | (rng()() & 0x0fffu);
    std::uint64_t lo = (rng()() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    char out[40];
    std::snprintf(out, sizeof out, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                  static_cast<unsigned>((hi >> 16) & 0xffffu), static_cast<unsigned>(hi & 0xffffu),
                  static_cast<unsigned>(lo >> 48),
                  static_cast<unsigned long long>(lo & 0xffffffffffffULL));
    return out;
}

std::string sql_time(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char out[32];
    std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S", &tm);
    return out;
}

// A gateway-shaped record (about 200 bytes of values); devices, MessageIDs and times vary
// like a busy mesh, the payload is unique so no record is a mesh duplicate of another.
struct bench_record {
    std::string duck_id, topic, message_id, payload, path, created_at, uuid, source_node;
    int hops = 2;
    int duck_type = 3;
};

bench_record make_record(long i, const std::string& node, std::time_t now) {
    static const char* const topics[] = {"status", "alert", "gps"};
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    char duck[16];
    std::snprintf(duck, sizeof duck, "DUCK%04ld", i % 100);
    bench_record r;
    r.duck_id = duck;
    r.topic = topics[i % 3];
    for (int k = 0; k < 4; ++k) r.message_id += digits[rng()() % 36];
    r.payload = "MSG,URGENCY=low,LAT=6.125400,LNG=102.238100,TEXT=bench " + std::to_string(i);
    r.path = r.duck_id + ",MAMA0002,PAPA0001";
    r.created_at = sql_time(now - 600 + i % 600);
    r.uuid = uuid_v7();
    r.source_node = node;
    return r;
}

// Our field node's record object (docs/wire-format.md), in the writer's field order.
void append_json(std::string& out, const bench_record& r) {
    out += R"({"duck_id":")" + r.duck_id + R"(","topic":")" + r.topic + R"(","message_id":")" +
           r.message_id + R"(","payload":")" + r.payload + R"(","payload_encoding":null,"path":")" +
           r.path + R"(","origin":null,"destination":null,"hops":)" + std::to_string(r.hops) +
           R"(,"duck_type":)" + std::to_string(r.duck_type) + R"(,"created_at":")" + r.created_at +
           R"(","uuid":")" + r.uuid + R"(","source_node":")" + r.source_node + R"("})";
}

// The seed's single-record body (what a Laravel field node sends) plus a uuid.
std::string seed_json(const bench_record& r) {
    return R"({"duck_id":")" + r.duck_id + R"(","topic":")" + r.topic + R"(","message_id":")" +
           r.message_id + R"(","payload":")" + r.payload + R"(","path":")" + r.path +
           R"(","hops":)" + std::to_string(r.hops) + R"(,"duck_type":)" +
           std::to_string(r.duck_type) + R"(,"created_at":")" + r.created_at + R"(","uuid":")" +
           r.uuid + R"("})";
}

const char* const copy_columns =
    "created_at, updated_at, duck_id, topic, message_id, payload, payload_encoding, path, "
    "origin, destination, hops, duck_type, uuid, source_node, received_from";

void append_copy_field(std::string& out, const std::string& v) {
    for (char c : v) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                out += c;
        }
    }
}

// One COPY text-format line with the values the server writes for the same record
// (central_store.hpp): updated_at = now, received_from = "default", the rest NULL.
void append_copy_line(std::string& out, const bench_record& r, const std::string& now) {
    for (const std::string* v :
         {&r.created_at, &now, &r.duck_id, &r.topic, &r.message_id, &r.payload}) {
        append_copy_field(out, *v);
        out += '\t';
    }
    out += "\\N\t";
    append_copy_field(out, r.path);
    out += "\t\\N\t\\N\t" + std::to_string(r.hops) + '\t' + std::to_string(r.duck_type) + '\t';
    append_copy_field(out, r.uuid);
    out += '\t';
    append_copy_field(out, r.source_node);
    out += "\tdefault\n";
}

// ---- PostgreSQL (libpq) -------------------------------------------------------------------

class pg_session {
public:
    pg_session(const pg_target& t, const std::string& db) {
        const char* keys[] = {"host", "port", "user", "password", "dbname", nullptr};
        const char* values[] = {t.host.c_str(),     t.port.c_str(), t.user.c_str(),
                                t.password.c_str(), db.c_str(),     nullptr};
        conn_ = PQconnectdbParams(keys, values, 0);
        if (PQstatus(conn_) != CONNECTION_OK) die("pg connect " + db + ": " + error());
        PQsetNoticeProcessor(
            conn_, [](void*, const char*) {}, nullptr);
    }
    ~pg_session() { PQfinish(conn_); }
    pg_session(const pg_session&) = delete;
    pg_session& operator=(const pg_session&) = delete;

    void exec(const std::string& sql) {
        if (!try_exec(sql)) die("pg: " + sql + ": " + error());
    }
    bool try_exec(const std::string& sql) {
        PGresult* r = PQexec(conn_, sql.c_str());
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        return ok;
    }
    long scalar(const std::string& sql) {
        PGresult* r = PQexec(conn_, sql.c_str());
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            PQclear(r);
            die("pg: " + sql + ": " + error());
        }
        long v = std::atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        return v;
    }
    std::string text(const std::string& sql) {
        PGresult* r = PQexec(conn_, sql.c_str());
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            PQclear(r);
            die("pg: " + sql + ": " + error());
        }
        std::string v = PQgetvalue(r, 0, 0);
        PQclear(r);
        return v;
    }
    // COPY ... FROM STDIN of `data` (text format) in one statement; returns the seconds
    // from the COPY command until its commit.
    double copy_in(const std::string& table_and_columns, const std::string& data) {
        auto t0 = steady::now();
        PGresult* r = PQexec(conn_, ("COPY " + table_and_columns + " FROM STDIN").c_str());
        bool ok = PQresultStatus(r) == PGRES_COPY_IN;
        PQclear(r);
        if (!ok) die("pg: COPY: " + error());
        const std::size_t chunk = 256 * 1024;
        for (std::size_t off = 0; off < data.size(); off += chunk) {
            int n = static_cast<int>(std::min(chunk, data.size() - off));
            if (PQputCopyData(conn_, data.data() + off, n) != 1)
                die("pg: PQputCopyData: " + error());
        }
        if (PQputCopyEnd(conn_, nullptr) != 1) die("pg: PQputCopyEnd: " + error());
        while ((r = PQgetResult(conn_)) != nullptr) {
            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            if (!ok) die("pg: COPY: " + error());
        }
        return seconds_since(t0);
    }

private:
    std::string error() const { return PQerrorMessage(conn_); }
    PGconn* conn_ = nullptr;
};

// What die() must undo: the scratch database and the server process of the current step.
struct live_state {
    std::mutex mutex;
    const pg_target* pg = nullptr;
    std::vector<std::string> databases;
    pid_t server = -1;
};
live_state& live() {
    static live_state s;
    return s;
}

void emergency_cleanup() {
    live_state& s = live();
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.server > 0) {
        ::kill(s.server, SIGKILL);
        ::waitpid(s.server, nullptr, 0);
    }
    if (!s.pg) return;
    const char* keys[] = {"host", "port", "user", "password", "dbname", nullptr};
    const char* values[] = {s.pg->host.c_str(),           s.pg->port.c_str(),
                            s.pg->user.c_str(),           s.pg->password.c_str(),
                            s.pg->maintenance_db.c_str(), nullptr};
    PGconn* c = PQconnectdbParams(keys, values, 0);
    for (const auto& db : s.databases) {
        PQclear(PQexec(c, ("DROP DATABASE IF EXISTS " + db).c_str()));
    }
    PQfinish(c);
}

std::string unique_db_name() {
    static int counter = 0;
    return "opendms_bench_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

// ---- the server under test ----------------------------------------------------------------

const std::string bench_token = "central-bench-token-0123456789abcdef";

std::string write_env_file(const options& o, const std::string& db, int pool) {
    std::string path = o.dir + "/" + db + ".env";
    std::ofstream f(path);
    f << "DB_CONNECTION=pgsql\nDB_HOST=" << o.pg.host << "\nDB_PORT=" << o.pg.port
      << "\nDB_DATABASE=" << db << "\nDB_USERNAME=" << o.pg.user
      << "\nDB_PASSWORD=" << o.pg.password << "\nCENTRAL_DMS_TOKEN=" << bench_token
      << "\nCENTRAL_LISTEN=127.0.0.1:0\nCENTRAL_ACCESS_LOG=false\nCENTRAL_DB_POOL_SIZE=" << pool
      << "\nLOG_LEVEL=info\n";
    if (!f) die("cannot write " + path);
    return path;
}

// Starts `central --env-file ENV <command>` with its output in `log`, in an environment
// that holds only PATH and, for `serve`, the --server-env settings (which override the
// file's).
pid_t spawn_central(const options& o, const std::string& env_file, const char* command,
                    const std::string& log) {
    pid_t pid = ::fork();
    if (pid < 0) die("fork: " + std::string(std::strerror(errno)));
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) std::_Exit(126);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        std::string bin = o.central_bin, flag = "--env-file", env = env_file, cmd = command;
        char* argv[] = {bin.data(), flag.data(), env.data(), cmd.data(), nullptr};
        std::vector<std::string> vars;
        if (cmd == "serve") vars = o.server_env;
        vars.push_back("PATH=/usr/bin:/bin");
        std::vector<char*> envp;
        for (auto& v : vars) envp.push_back(v.data());
        envp.push_back(nullptr);
        ::execve(bin.c_str(), argv, envp.data());
        std::_Exit(127);
    }
    return pid;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void migrate(const options& o, const std::string& env_file) {
    std::string log = env_file + ".migrate.log";
    pid_t pid = spawn_central(o, env_file, "migrate", log);
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("migrate failed:\n" + read_file(log));
}

// --prefill rows as COPY text: a day older than the measured records (outside every mesh
// duplicate window), the same devices.
const std::string& prefill_rows(const options& o) {
    static const std::string text = [&] {
        std::string out;
        std::time_t day_ago = std::time(nullptr) - 86400;
        std::string updated = sql_time(day_ago);
        for (long i = 0; i < o.prefill; ++i) {
            append_copy_line(out, make_record(i, "prefill", day_ago), updated);
        }
        return out;
    }();
    return text;
}

// A fresh database for one measurement: created, migrated with `opendms-central migrate`,
// optionally prefilled (--prefill: rows a day old, then ANALYZE, like a central database in
// service), and dropped at the end.
struct scratch_db {
    scratch_db(const options& o, std::string db_name) : opts(o), name(std::move(db_name)) {
        {
            std::lock_guard<std::mutex> lock(live().mutex);
            live().pg = &o.pg;
            live().databases.push_back(name);
        }
        {
            pg_session admin(o.pg, o.pg.maintenance_db);
            admin.exec("CREATE DATABASE " + name);
        }
        std::string env = write_env_file(o, name, 1);
        migrate(o, env);
        ::unlink(env.c_str());
        ::unlink((env + ".migrate.log").c_str());
        if (o.prefill > 0) {
            pg_session s(o.pg, name);
            s.copy_in(std::string("cluster_data (") + copy_columns + ")", prefill_rows(o));
            s.exec("ANALYZE cluster_data");
        }
    }
    // Without FORCE: DROP DATABASE itself stops an autovacuum worker (which a non-superuser
    // may not terminate with FORCE) and fails only while a client is still connected
    // (the server under test has exited, pgbench has returned: retried briefly).
    ~scratch_db() {
        pg_session admin(opts.pg, opts.pg.maintenance_db);
        const std::string drop = "DROP DATABASE IF EXISTS " + name;
        for (int attempt = 0; !admin.try_exec(drop); ++attempt) {
            if (attempt == 20) die("pg: " + drop + " still fails after 10 s");
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
        std::lock_guard<std::mutex> lock(live().mutex);
        auto& dbs = live().databases;
        dbs.erase(std::remove(dbs.begin(), dbs.end(), name), dbs.end());
    }
    scratch_db(const scratch_db&) = delete;
    scratch_db& operator=(const scratch_db&) = delete;
    /// Rows added since the database was prepared.
    long rows() {
        pg_session s(opts.pg, name);
        return s.scalar("SELECT COUNT(*) FROM cluster_data") - opts.prefill;
    }
    const options& opts;
    std::string name;
};

long proc_status_kib(pid_t pid, const char* field) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
    }
    return -1;
}

class central_server {
public:
    central_server(const options& o, const std::string& db, int pool) {
        env_file_ = write_env_file(o, db, pool);
        log_ = env_file_ + ".serve.log";
        pid_ = spawn_central(o, env_file_, "serve", log_);
        {
            std::lock_guard<std::mutex> lock(live().mutex);
            live().server = pid_;
        }
        const std::string marker = "listening on http://127.0.0.1:";
        auto t0 = steady::now();
        for (;;) {
            std::string text = read_file(log_);
            auto at = text.find(marker);
            if (at != std::string::npos) {
                port_ = static_cast<unsigned short>(std::atoi(text.c_str() + at + marker.size()));
                if (port_ != 0) break;
            }
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                live().server = -1;
                die("opendms-central serve exited during start-up:\n" + text);
            }
            if (seconds_since(t0) > 30)
                die("opendms-central serve not listening after 30 s:\n" + text);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    ~central_server() {
        if (pid_ <= 0) return;
        {
            std::lock_guard<std::mutex> lock(live().mutex);
            live().server = -1;
        }
        ::kill(pid_, SIGTERM);
        auto t0 = steady::now();
        int st = 0;
        while (::waitpid(pid_, &st, WNOHANG) == 0) {
            if (seconds_since(t0) > 40) {
                std::cerr << "central_bench: serve ignored SIGTERM for 40 s; killing it\n";
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &st, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ::unlink(log_.c_str());
        ::unlink(env_file_.c_str());
    }
    central_server(const central_server&) = delete;
    central_server& operator=(const central_server&) = delete;

    unsigned short port() const { return port_; }
    pid_t pid() const { return pid_; }
    long rss_kib() const { return proc_status_kib(pid_, "VmRSS:"); }
    long hwm_kib() const { return proc_status_kib(pid_, "VmHWM:"); }

private:
    std::string env_file_, log_;
    pid_t pid_ = -1;
    unsigned short port_ = 0;
};

// ---- HTTP/1.1 keep-alive client -----------------------------------------------------------

std::string post_ingest(unsigned short port, const std::string& body) {
    return "POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
           "\r\nAuthorization: Bearer " + bench_token +
           "\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

struct http_response {
    int status = 0;
    std::string body;
};

// One blocking socket; one request in flight at a time (no pipelining, like a real client).
class http_conn {
public:
    explicit http_conn(unsigned short port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) die("socket: " + std::string(std::strerror(errno)));
        int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            die("connect 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
        }
    }
    ~http_conn() { ::close(fd_); }
    http_conn(const http_conn&) = delete;
    http_conn& operator=(const http_conn&) = delete;

    int fd() const { return fd_; }

    bool send_all(const std::string& bytes) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            off += static_cast<std::size_t>(n);
        }
        return true;
    }
    /// One recv(); false on end of stream or error.
    bool read_some() {
        char buf[16384];
        ssize_t n;
        do {
            n = ::recv(fd_, buf, sizeof buf, 0);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) return false;
        in_.append(buf, static_cast<std::size_t>(n));
        return true;
    }
    /// A whole response when one has arrived (and removes it from the buffer).
    std::optional<http_response> take_response() {
        auto head_end = in_.find("\r\n\r\n");
        if (head_end == std::string::npos) return std::nullopt;
        std::string head = in_.substr(0, head_end + 2);
        for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::size_t length = 0;
        auto cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos) length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
        if (in_.size() < head_end + 4 + length) return std::nullopt;
        http_response r;
        r.status = in_.size() > 12 ? std::atoi(in_.c_str() + 9) : 0;
        r.body = in_.substr(head_end + 4, length);
        in_.erase(0, head_end + 4 + length);
        return r;
    }
    /// Blocks until a whole response arrives; nullopt when the server closed first.
    std::optional<http_response> read_response() {
        for (;;) {
            if (auto r = take_response()) return r;
            if (!read_some()) return std::nullopt;
        }
    }
    /// True when the server has closed this connection (or sent something unasked).
    bool closed_by_peer() const {
        pollfd p{fd_, POLLIN | POLLRDHUP, 0};
        return ::poll(&p, 1, 0) > 0;
    }

private:
    int fd_ = -1;
    std::string in_;
};

struct load_stats {
    long ok = 0;       // 200 answers
    long failed = 0;   // other answers and dropped connections
    long counted = 0;  // 200 answers inside the measured window
    long records = 0;  // records reported stored (batch form)
    double busy_cpu_s = 0;  // the machine's CPU time in the measured window (timed_load)
    std::string first_failure;

    void merge(const load_stats& o) {
        ok += o.ok;
        failed += o.failed;
        counted += o.counted;
        records += o.records;
        if (first_failure.empty()) first_failure = o.first_failure;
    }
};

// The next request to send on some connection; false: stop sending.
using request_source = std::function<bool(std::string& request)>;
using response_sink = std::function<void(const http_response&, load_stats&)>;

// Drives `conns` from the calling thread until `next` stops and every answer is in.
load_stats drive(const std::vector<http_conn*>& conns, const request_source& next,
                 const response_sink& sink) {
    load_stats st;
    std::vector<bool> busy(conns.size(), false);
    std::string req;
    auto start = [&](std::size_t i) { busy[i] = next(req) && conns[i]->send_all(req); };
    for (std::size_t i = 0; i < conns.size(); ++i) start(i);
    std::vector<pollfd> pfds;
    std::vector<std::size_t> which;
    for (;;) {
        pfds.clear();
        which.clear();
        for (std::size_t i = 0; i < conns.size(); ++i) {
            if (!busy[i]) continue;
            pfds.push_back({conns[i]->fd(), POLLIN, 0});
            which.push_back(i);
        }
        if (pfds.empty()) return st;
        int n = ::poll(pfds.data(), pfds.size(), 60'000);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("no answer from the server within 60 s");
        for (std::size_t k = 0; k < pfds.size(); ++k) {
            if (pfds[k].revents == 0) continue;
            std::size_t i = which[k];
            if (!conns[i]->read_some()) {
                ++st.failed;
                if (st.first_failure.empty()) st.first_failure = "connection closed by the server";
                busy[i] = false;
                continue;
            }
            if (auto r = conns[i]->take_response()) {
                sink(*r, st);
                start(i);
            }
        }
    }
}

// Runs `threads` threads, connection i on thread i % threads; returns the merged stats.
load_stats drive_threads(const std::vector<std::unique_ptr<http_conn>>& conns, int threads,
                         const request_source& next, const response_sink& sink) {
    std::vector<load_stats> per(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            std::vector<http_conn*> mine;
            for (std::size_t i = static_cast<std::size_t>(t); i < conns.size();
                 i += static_cast<std::size_t>(threads)) {
                mine.push_back(conns[i].get());
            }
            per[static_cast<std::size_t>(t)] = drive(mine, next, sink);
        });
    }
    for (auto& th : pool) th.join();
    load_stats all;
    for (const auto& p : per) all.merge(p);
    return all;
}

void note_failure(const http_response& r, load_stats& st) {
    ++st.failed;
    if (st.first_failure.empty()) {
        st.first_failure = "HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300);
    }
}

long json_int(const std::string& body, const std::string& key) {
    auto at = body.find("\"" + key + "\":");
    return at == std::string::npos ? -1 : std::atol(body.c_str() + at + key.size() + 3);
}

std::vector<std::unique_ptr<http_conn>> open_conns(unsigned short port, int n) {
    std::vector<std::unique_ptr<http_conn>> conns;
    for (int i = 0; i < n; ++i) conns.push_back(std::make_unique<http_conn>(port));
    return conns;
}

// ---- the benchmarks -------------------------------------------------------------------------

struct run_result {
    double rate = 0;
    double cpu_us = 0;  // the machine's CPU per request or transaction (single, pgbench)
    long peak_rss_kib = 0;
    double requests_per_transaction = 0;  // group commit, from the server's /metrics
};

// Requests per store transaction so far (opendms_store_requests_total /
// opendms_store_transactions_total in /metrics); 0 when the server does not say.
double requests_per_transaction(unsigned short port) {
    http_conn c(port);
    if (!c.send_all("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) return 0;
    auto r = c.read_response();
    if (!r || r->status != 200) return 0;
    auto value = [&](const std::string& name) {
        auto at = r->body.find("\n" + name + " ");
        return at == std::string::npos ? 0.0 : std::atof(r->body.c_str() + at + name.size() + 2);
    };
    const double transactions = value("opendms_store_transactions_total");
    return transactions > 0 ? value("opendms_store_requests_total") / transactions : 0;
}

struct batch_data {
    std::vector<std::string> warm_bodies;  // one batch per connection, not timed
    std::vector<std::string> bodies;       // the timed batches
    std::string copy_text;                 // the same rows (warm-up included) for COPY
    long rows = 0;
};

batch_data make_batches(const options& o) {
    batch_data d;
    std::time_t now = std::time(nullptr);
    std::string now_text = sql_time(now);
    long i = 0;
    auto batch = [&](int n) {
        std::string body = R"({"records":[)";
        for (int k = 0; k < n; ++k, ++i) {
            bench_record r = make_record(i, "bench-node-" + std::to_string(i % 4), now);
            if (k > 0) body += ',';
            append_json(body, r);
            append_copy_line(d.copy_text, r, now_text);
        }
        return body + "]}";
    };
    for (int c = 0; c < o.batch_connections; ++c) d.warm_bodies.push_back(batch(o.batch_records));
    for (long left = o.records; left > 0; left -= o.batch_records) {
        d.bodies.push_back(batch(static_cast<int>(std::min<long>(left, o.batch_records))));
    }
    d.rows = i;
    return d;
}

double copy_rate(const options& o, const batch_data& d) {
    scratch_db db(o, unique_db_name());
    double secs;
    {
        pg_session s(o.pg, db.name);
        secs = s.copy_in(std::string("cluster_data (") + copy_columns + ")", d.copy_text);
    }
    if (db.rows() != d.rows) die("COPY stored " + std::to_string(db.rows()) + " rows");
    return static_cast<double>(d.rows) / secs;
}

run_result batch_rate(const options& o, const batch_data& d, int pool) {
    scratch_db db(o, unique_db_name());
    run_result res;
    long expected_rows = 0;
    {
        central_server server(o, db.name, pool);
        auto conns = open_conns(server.port(), o.batch_connections);
        auto sink = [&](const http_response& r, load_stats& st) {
            long stored = json_int(r.body, "stored");
            if (r.status != 200 || stored < 0) return note_failure(r, st);
            ++st.ok;
            ++st.counted;
            st.records += stored;
        };
        std::atomic<std::size_t> warm_next{0};
        load_stats warm = drive_threads(
            conns, o.batch_connections,
            [&](std::string& req) {
                std::size_t k = warm_next.fetch_add(1);
                if (k >= d.warm_bodies.size()) return false;
                req = post_ingest(server.port(), d.warm_bodies[k]);
                return true;
            },
            sink);
        if (warm.failed > 0) die("batch warm-up failed: " + warm.first_failure);
        // Requests are built before the clock starts: the client's cost is not the server's.
        std::vector<std::string> requests;
        for (const auto& b : d.bodies) requests.push_back(post_ingest(server.port(), b));
        std::atomic<std::size_t> next{0};
        auto t0 = steady::now();
        load_stats st = drive_threads(
            conns, o.batch_connections,
            [&](std::string& req) {
                std::size_t k = next.fetch_add(1);
                if (k >= requests.size()) return false;
                req = requests[k];
                return true;
            },
            sink);
        double secs = seconds_since(t0);
        if (st.failed > 0) die("batch ingest failed: " + st.first_failure);
        res.rate = static_cast<double>(st.records) / secs;
        res.peak_rss_kib = server.hwm_kib();
        res.requests_per_transaction = requests_per_transaction(server.port());
        expected_rows = warm.records + st.records;
    }
    if (expected_rows != d.rows || db.rows() != d.rows) {
        die("batch ingest: " + std::to_string(d.rows) + " records sent, " +
            std::to_string(expected_rows) + " reported stored, " + std::to_string(db.rows()) +
            " rows in the database");
    }
    return res;
}

// What a round trip between two processes costs this machine, in µs of wall time: one byte
// each way over a Unix socket pair, to a forked child and back (the median of 5 samples of
// 5000). Every HTTP request and every database round trip pays this at least once on each
// side, so it says how dear the kernel's entries and context switches are here. It moves
// from machine to machine far more than the CPU's speed does (a guest whose hypervisor
// isolates page tables pays several times what a bare machine pays), and with it how much
// pgbench, one round trip per transaction, pays against a server that groups requests.
double process_round_trip_us() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
    const pid_t child = ::fork();
    if (child < 0) die("fork");
    if (child == 0) {
        ::close(sv[0]);
        char c = 0;
        while (::read(sv[1], &c, 1) == 1 && ::write(sv[1], &c, 1) == 1) {
        }
        ::_exit(0);
    }
    ::close(sv[1]);
    constexpr int per_sample = 5000;
    std::vector<double> samples;
    for (int k = 0; k < 5; ++k) {
        const auto start = steady::now();
        for (int i = 0; i < per_sample; ++i) {
            char c = 'x';
            if (::write(sv[0], &c, 1) != 1 || ::read(sv[0], &c, 1) != 1) die("round trip");
        }
        samples.push_back(std::chrono::duration<double, std::micro>(steady::now() - start).count() /
                          per_sample);
    }
    ::close(sv[0]);
    ::waitpid(child, nullptr, 0);
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
}

// The busy CPU time of the whole machine so far, every core, in seconds: /proc/stat's
// first line, user, nice, system, irq and softirq (guest time is part of user time; steal,
// time the hypervisor gave to other machines, is not ours).
double machine_busy_s() {
    std::ifstream f("/proc/stat");
    std::string cpu;
    long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
    if (!(f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq) ||
        cpu != "cpu") {
        die("cannot read /proc/stat");
    }
    return static_cast<double>(user + nice + system + irq + softirq) /
           static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The machine's busy CPU time between `from` and `until`, sampled on a thread of its own.
class cpu_window {
public:
    cpu_window(steady::time_point from, steady::time_point until)
        : thread_([this, from, until] {
              std::this_thread::sleep_until(from);
              const double start = machine_busy_s();
              std::this_thread::sleep_until(until);
              busy_s_ = machine_busy_s() - start;
          }) {}
    cpu_window(const cpu_window&) = delete;
    cpu_window& operator=(const cpu_window&) = delete;
    ~cpu_window() { wait(); }

    /// Waits for the window's end; CPU seconds.
    double busy_s() {
        wait();
        return busy_s_;
    }

private:
    void wait() {
        if (thread_.joinable()) thread_.join();
    }

    double busy_s_ = 0;
    std::thread thread_;
};

// The pgbench script: the server's single-record upsert, with the same kind of values
// (100 devices, a time-ordered unique uuid, the row's columns as central_store writes them).
// No colon inside the literals: pgbench would read ":name" there as a variable.
std::string write_pgbench_script(const options& o) {
    std::string path = o.dir + "/central_bench_upsert.sql";
    std::ofstream f(path);
    f << "\\set d random(0, 99)\n"
         "\\set m random(0, 65535)\n"
         "\\set i random(0, 999999999)\n"
         "INSERT INTO cluster_data (created_at, updated_at, duck_id, topic, message_id, payload,\n"
         "    payload_encoding, path, origin, destination, hops, duck_type, uuid, source_node,\n"
         "    received_from)\n"
         "VALUES (date_trunc('second', now()), date_trunc('second', now()),\n"
         "    'DUCK' || lpad(:d::text, 4, '0'), 'status', lpad(upper(to_hex(:m::int)), 4, '0'),\n"
         "    'MSG,URGENCY=low,LAT=6.125400,LNG=102.238100,TEXT=bench ' || :i::text, NULL,\n"
         "    'DUCK' || lpad(:d::text, 4, '0') || ',MAMA0002,PAPA0001', NULL, NULL, 2, 3,\n"
         "    substr(lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)::bigint), 12, "
         "'0'), 1, 8)\n"
         "    || '-' || substr(lpad(to_hex((extract(epoch from clock_timestamp()) * 1000)"
         "::bigint), 12, '0'), 9, 4)\n"
         "    || substr(gen_random_uuid()::text, 14), NULL, 'default')\n"
         "ON CONFLICT (uuid) DO NOTHING RETURNING id;\n";
    if (!f) die("cannot write " + path);
    return path;
}

// pgbench's transactions/s and the machine's CPU per transaction, measured from its second
// second to half a second before its end (its connections are open by then).
run_result pgbench_rate(const options& o, const std::string& script) {
    scratch_db db(o, unique_db_name());
    std::string cmd = "PGPASSWORD='" + o.pg.password + "' '" + o.pgbench_bin + "' -h " + o.pg.host +
                      " -p " + o.pg.port + " -U " + o.pg.user + " -n -M prepared -c " +
                      std::to_string(o.connections) + " -j 2 -T " + std::to_string(o.seconds) +
                      " -f '" + script + "' " + db.name + " 2>&1";
    const auto started = steady::now();
    const auto from = started + std::chrono::seconds(1);
    const auto until = std::max(started + std::chrono::milliseconds(o.seconds * 1000 - 500),
                                from + std::chrono::milliseconds(500));
    cpu_window cpu(from, until);
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) die("popen pgbench");
    std::string out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    int st = ::pclose(p);
    auto at = out.find("tps = ");
    if (st != 0 || at == std::string::npos) die("pgbench failed:\n" + out);
    double tps = std::atof(out.c_str() + at + 6);
    auto failed = out.find("number of failed transactions: ");
    if (failed != std::string::npos && std::atol(out.c_str() + failed + 31) != 0) {
        die("pgbench had failed transactions:\n" + out);
    }
    run_result res;
    res.rate = tps;
    const double window_s = std::chrono::duration<double>(until - from).count();
    res.cpu_us = tps > 0 ? cpu.busy_s() * 1e6 / (tps * window_s) : 0;
    return res;
}

// K connections, one request in flight each, for 1 s of warm-up and then T measured
// seconds; `make` builds each request, `expect` is a text every good answer's body holds.
load_stats timed_load(const options& o, unsigned short port,
                      const std::function<std::string()>& make, const std::string& expect) {
    auto conns = open_conns(port, o.connections);
    auto measure_from = steady::now() + std::chrono::seconds(1);
    auto until = measure_from + std::chrono::seconds(o.seconds);
    cpu_window cpu(measure_from, until);
    load_stats result = drive_threads(
        conns, 2,
        [&](std::string& req) {
            if (steady::now() >= until) return false;
            req = make();
            return true;
        },
        [&](const http_response& r, load_stats& s) {
            if (r.status != 200 || r.body.find(expect) == std::string::npos) {
                return note_failure(r, s);
            }
            ++s.ok;
            auto t = steady::now();
            if (t >= measure_from && t < until) ++s.counted;
        });
    result.busy_cpu_s = cpu.busy_s();
    return result;
}

// Microseconds of the machine's CPU per request.
double cpu_us_per_request(const load_stats& st) {
    return st.counted > 0 ? st.busy_cpu_s * 1e6 / static_cast<double>(st.counted) : 0;
}

run_result single_rate(const options& o, int pool) {
    scratch_db db(o, unique_db_name());
    run_result res;
    long ok = 0;
    {
        central_server server(o, db.name, pool);
        std::atomic<long> seq{0};
        std::time_t now = std::time(nullptr);
        load_stats st = timed_load(
            o, server.port(),
            [&] { return post_ingest(server.port(), seed_json(make_record(seq++, "", now))); },
            "Record ingested");
        if (st.failed > 0) die("single-record ingest failed: " + st.first_failure);
        res.rate = static_cast<double>(st.counted) / o.seconds;
        res.cpu_us = cpu_us_per_request(st);
        res.peak_rss_kib = server.hwm_kib();
        res.requests_per_transaction = requests_per_transaction(server.port());
        ok = st.ok;
    }
    if (db.rows() != ok) {
        die("single-record ingest: " + std::to_string(ok) + " answered 200, " +
            std::to_string(db.rows()) + " rows in the database");
    }
    return res;
}

// The HTTP layer alone: GET /healthz (answered without the database or a worker thread),
// same connections and duration as `single`. Not a goal: it shows how much of a
// single-record request is HTTP.
run_result healthz_rate(const options& o, int pool) {
    scratch_db db(o, unique_db_name());
    central_server server(o, db.name, pool);
    const std::string req =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n\r\n";
    load_stats st = timed_load(
        o, server.port(), [&] { return req; }, "ok");
    if (st.failed > 0) die("GET /healthz failed: " + st.first_failure);
    run_result res;
    res.rate = static_cast<double>(st.counted) / o.seconds;
    res.cpu_us = cpu_us_per_request(st);
    return res;
}

struct idle_result {
    long base_rss_kib = 0;  // after one request on one (closed) connection
    long idle_rss_kib = 0;  // with the idle connections open
    long idle_hwm_kib = 0;
    int alive = 0;  // idle connections still open when measured
};

idle_result idle_rss(const options& o, int pool) {
    scratch_db db(o, unique_db_name());
    central_server server(o, db.name, pool);
    long seq = 0;
    std::time_t now = std::time(nullptr);
    auto one_request = [&](http_conn& c) {
        if (!c.send_all(post_ingest(server.port(), seed_json(make_record(seq++, "", now))))) {
            die("idle: send failed");
        }
        auto r = c.read_response();
        if (!r || r->status != 200) die("idle: request failed: " + (r ? r->body : "closed"));
    };
    {
        http_conn first(server.port());
        one_request(first);
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    idle_result res;
    res.base_rss_kib = server.rss_kib();
    auto conns = open_conns(server.port(), o.idle_connections);
    for (auto& c : conns) one_request(*c);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    res.idle_rss_kib = server.rss_kib();
    res.idle_hwm_kib = server.hwm_kib();
    for (auto& c : conns) res.alive += c->closed_by_peer() ? 0 : 1;
    return res;
}

// ---- main -----------------------------------------------------------------------------------

struct series {
    std::vector<double> v;
    double median() const {
        auto s = v;
        std::sort(s.begin(), s.end());
        return s.size() % 2 ? s[s.size() / 2] : (s[s.size() / 2 - 1] + s[s.size() / 2]) / 2;
    }
    double min() const { return *std::min_element(v.begin(), v.end()); }
    double max() const { return *std::max_element(v.begin(), v.end()); }
};

std::vector<int> int_list(const std::string& v) {
    std::vector<int> out;
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(std::atoi(item.c_str()));
    return out;
}

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v && *v ? v : fallback;
}

options parse(int argc, char** argv) {
    options o;
    if (argc % 2 == 0) die("every option takes a value");
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        int* number = k == "--repeat"              ? &o.repeat
                      : k == "--records"           ? &o.records
                      : k == "--batch-records"     ? &o.batch_records
                      : k == "--batch-connections" ? &o.batch_connections
                      : k == "--seconds"           ? &o.seconds
                      : k == "--connections"       ? &o.connections
                      : k == "--idle-connections"  ? &o.idle_connections
                                                   : nullptr;
        if (number) {
            *number = std::max(1, std::atoi(v.c_str()));
        } else if (k == "--prefill") {
            o.prefill = std::max(0L, std::atol(v.c_str()));
        } else if (k == "--central") {
            o.central_bin = v;
        } else if (k == "--pgbench") {
            o.pgbench_bin = v;
        } else if (k == "--dir") {
            o.dir = v;
        } else if (k == "--pool-sizes") {
            o.pool_sizes = int_list(v);
        } else if (k == "--server-env") {
            o.server_env.push_back(v);
        } else if (k == "--parts") {
            o.batch = v.find("batch") != std::string::npos;
            o.single = v.find("single") != std::string::npos;
            o.idle = v.find("idle") != std::string::npos;
        } else {
            die("unknown option " + k);
        }
    }
    if (o.central_bin.empty() || o.pgbench_bin.empty() || o.pool_sizes.empty()) {
        die("usage: central_bench --central BIN --pgbench BIN [...] (see the file's header)");
    }
    o.pg.host = env_or("OPENDMS_TEST_PG_HOST", "127.0.0.1");
    o.pg.port = env_or("OPENDMS_TEST_PG_PORT", "5432");
    o.pg.user = env_or("OPENDMS_TEST_PG_USER", "opendms");
    o.pg.password = env_or("OPENDMS_TEST_PG_PASSWORD", "");
    o.pg.maintenance_db = env_or("OPENDMS_TEST_PG_DATABASE", "opendms_test");
    return o;
}

std::string mib(double kib) {
    char out[32];
    std::snprintf(out, sizeof out, "%.1f MiB", kib / 1024.0);
    return out;
}

// A row of the throughput table; without `ratio`, `against` fills the ratio column ("" is
// a baseline: 1.00).
void print_row(const std::string& what, const series& rate, const char* unit, const series* ratio,
               const char* against, long peak_kib) {
    std::printf("| %s | %.0f %s | %.0f–%.0f |", what.c_str(), rate.median(), unit, rate.min(),
                rate.max());
    if (ratio) {
        std::printf(" %.2f × %s (%.2f–%.2f) |", ratio->median(), against, ratio->min(),
                    ratio->max());
    } else {
        std::printf(" %s |", *against ? against : "1.00");
    }
    std::printf(" %s |\n", peak_kib > 0 ? mib(static_cast<double>(peak_kib)).c_str() : "");
}

struct results {
    series copy, pgbench, healthz, idle_base, idle_rss, idle_hwm;
    series pgbench_cpu, healthz_cpu;  // µs of the machine's CPU per transaction / request
    std::vector<series> batch, batch_ratio, single, single_ratio, batch_group, single_group;
    std::vector<series> single_cpu, single_cpu_ratio;  // the same; pgbench's / ours
    std::vector<long> batch_hwm, single_hwm;
    int min_alive = 0;
};

void print_settings(const options& o) {
    pg_session s(o.pg, o.pg.maintenance_db);
    std::printf("PostgreSQL %s (both sides use this server): ",
                s.text("SHOW server_version").c_str());
    for (const char* setting :
         {"fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_connections"}) {
        std::printf("%s=%s ", setting, s.text(std::string("SHOW ") + setting).c_str());
    }
    std::printf("\n");
}

void print_throughput(const options& o, const results& r) {
    std::printf(
        "| measurement | rate (median) | range | ratio (median, range) | peak RSS |\n"
        "|---|---:|---:|---:|---:|\n");
    if (o.batch) {
        print_row("baseline: COPY cluster_data FROM STDIN, 1 connection", r.copy, "rows/s", nullptr,
                  "", 0);
        for (std::size_t p = 0; p < o.pool_sizes.size(); ++p) {
            print_row("opendms-central, batches of " + std::to_string(o.batch_records) + ", " +
                          std::to_string(o.batch_connections) + " connections, pool " +
                          std::to_string(o.pool_sizes[p]),
                      r.batch[p], "records/s", &r.batch_ratio[p], "COPY", r.batch_hwm[p]);
        }
    }
    if (o.single) {
        print_row("baseline: pgbench -c " + std::to_string(o.connections) +
                      " -j 2 -M prepared, single-row INSERT ... ON CONFLICT DO NOTHING",
                  r.pgbench, "tx/s", nullptr, "", 0);
        for (std::size_t p = 0; p < o.pool_sizes.size(); ++p) {
            print_row("opendms-central, single record, " + std::to_string(o.connections) +
                          " keep-alive connections, pool " + std::to_string(o.pool_sizes[p]),
                      r.single[p], "req/s", &r.single_ratio[p], "pgbench", r.single_hwm[p]);
        }
        print_row("for scale: opendms-central, GET /healthz (no database), " +
                      std::to_string(o.connections) + " keep-alive connections",
                  r.healthz, "req/s", nullptr, "–", 0);
    }
}

// Group commit at work: how many requests a store transaction carried, on average.
void print_grouping(const options& o, const results& r) {
    std::printf("\nrequests per store transaction (median of runs):");
    for (std::size_t p = 0; p < o.pool_sizes.size(); ++p) {
        if (o.batch)
            std::printf(" batch, pool %d: %.1f;", o.pool_sizes[p], r.batch_group[p].median());
        if (o.single) {
            std::printf(" single, pool %d: %.1f;", o.pool_sizes[p], r.single_group[p].median());
        }
    }
    std::printf("\n");
}

// What a request costs the machine, whatever else slowed the run down.
void print_cpu(const options& o, const results& r) {
    std::printf(
        "\n| CPU of the whole machine per request (server, PostgreSQL, load generator) | "
        "median | range | pgbench's ÷ ours (median, range) |\n|---|---:|---:|---:|\n");
    auto row = [](const std::string& what, const series& v, const series* ratio) {
        std::printf("| %s | %.0f µs | %.0f–%.0f µs |", what.c_str(), v.median(), v.min(),
                    v.max());
        if (ratio) {
            std::printf(" %.2f (%.2f–%.2f) |\n", ratio->median(), ratio->min(), ratio->max());
        } else {
            std::printf(" |\n");
        }
    };
    row("baseline: pgbench, per transaction", r.pgbench_cpu, nullptr);
    for (std::size_t p = 0; p < o.pool_sizes.size(); ++p) {
        row("opendms-central, single record, pool " + std::to_string(o.pool_sizes[p]),
            r.single_cpu[p], &r.single_cpu_ratio[p]);
    }
    row("for scale: GET /healthz", r.healthz_cpu, nullptr);
}

void print_memory(const options& o, const results& r) {
    auto row = [](const std::string& what, const series& v) {
        std::printf("| %s | %s | %s–%s |\n", what.c_str(), mib(v.median()).c_str(),
                    mib(v.min()).c_str(), mib(v.max()).c_str());
    };
    std::printf("\n| server memory, pool %d | median | range |\n|---|---:|---:|\n",
                o.pool_sizes.front());
    row("VmRSS after one request on one connection", r.idle_base);
    row("VmRSS with " + std::to_string(o.idle_connections) + " idle keep-alive connections (" +
            std::to_string(r.min_alive) + " still open when measured)",
        r.idle_rss);
    row("VmHWM (peak) of that server", r.idle_hwm);
    std::printf("\nper idle connection: %.1f KiB (median)\n",
                (r.idle_rss.median() - r.idle_base.median()) / o.idle_connections);
}

void progress(const std::string& what, double value, const char* unit) {
    std::fprintf(stderr, "central_bench:   %s: %.0f %s\n", what.c_str(), value, unit);
}

void run_once(const options& o, const std::string& script, results& r) {
    if (o.batch) {
        batch_data d = make_batches(o);
        double c = copy_rate(o, d);
        progress("COPY", c, "rows/s");
        r.copy.v.push_back(c);
        for (std::size_t p = 0; p < o.pool_sizes.size(); ++p) {
            run_result b = batch_rate(o, d, o.pool_sizes[p]);
            progress("batch, pool " + std::to_string(o.pool_sizes[p]), b.rate, "records/s");
            r.batch[p].v.push_back(b.rate);
            r.batch_ratio[p].v.push_back(b.rate / c);
            r.batch_hwm[p] = std::max(r.batch_hwm[p], b.peak_rss_kib);
            r.batch_group[p].v.push_back(b.requests_per_transaction);
        }
    }
    if (o.single) {
        run_result pg = pgbench_rate(o, script);
        const double t = pg.rate;
        progress("pgbench", t, "tx/s");
        r.pgbench.v.push_back(t);
        r.pgbench_cpu.v.push_back(pg.cpu_us);
        for (std::size_t p = 0; p < o.pool_sizes.size(); ++p) {
            run_result s = single_rate(o, o.pool_sizes[p]);
            progress("single, pool " + std::to_string(o.pool_sizes[p]), s.rate, "req/s");
            r.single[p].v.push_back(s.rate);
            r.single_ratio[p].v.push_back(s.rate / t);
            r.single_hwm[p] = std::max(r.single_hwm[p], s.peak_rss_kib);
            r.single_group[p].v.push_back(s.requests_per_transaction);
            r.single_cpu[p].v.push_back(s.cpu_us);
            r.single_cpu_ratio[p].v.push_back(s.cpu_us > 0 ? pg.cpu_us / s.cpu_us : 0);
        }
        run_result h = healthz_rate(o, o.pool_sizes.front());
        progress("GET /healthz", h.rate, "req/s");
        r.healthz.v.push_back(h.rate);
        r.healthz_cpu.v.push_back(h.cpu_us);
    }
    if (o.idle) {
        idle_result i = idle_rss(o, o.pool_sizes.front());
        progress("VmRSS, idle connections", static_cast<double>(i.idle_rss_kib), "KiB");
        r.idle_base.v.push_back(static_cast<double>(i.base_rss_kib));
        r.idle_rss.v.push_back(static_cast<double>(i.idle_rss_kib));
        r.idle_hwm.v.push_back(static_cast<double>(i.idle_hwm_kib));
        r.min_alive = std::min(r.min_alive, i.alive);
    }
}

}  // namespace

int main(int argc, char** argv) {
    options o = parse(argc, argv);
    print_settings(o);
    const double round_trip_before = process_round_trip_us();
    std::string script = write_pgbench_script(o);
    std::size_t pools = o.pool_sizes.size();
    results r;
    r.batch.resize(pools);
    r.batch_ratio.resize(pools);
    r.single.resize(pools);
    r.single_ratio.resize(pools);
    r.batch_group.resize(pools);
    r.single_group.resize(pools);
    r.single_cpu.resize(pools);
    r.single_cpu_ratio.resize(pools);
    r.batch_hwm.assign(pools, 0);
    r.single_hwm.assign(pools, 0);
    r.min_alive = o.idle_connections;
    // Interleaved: noise from other work on the machine hits every configuration alike.
    for (int k = 0; k < o.repeat; ++k) {
        std::cerr << "central_bench: run " << k + 1 << " of " << o.repeat << "\n";
        run_once(o, script, r);
    }
    ::unlink(script.c_str());
    const double round_trip_after = process_round_trip_us();

    std::printf(
        "runs: %d; prefill: %ld rows; batch: %d records in batches of %d over %d connections "
        "(after %d warm-up batches); single: %d connections for %d s (after 1 s of warm-up)\n\n",
        o.repeat, o.prefill, o.records, o.batch_records, o.batch_connections, o.batch_connections,
        o.connections, o.seconds);
    std::printf(
        "machine: a round trip between two processes (Unix socket, 1 byte each way) costs "
        "%.1f µs before the runs and %.1f µs after them\n\n",
        round_trip_before, round_trip_after);
    if (o.batch || o.single) print_throughput(o, r);
    if (o.batch || o.single) print_grouping(o, r);
    if (o.single) print_cpu(o, r);
    if (o.idle) print_memory(o, r);
    return 0;
}
