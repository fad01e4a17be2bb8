// drain_bench: how fast, and with how many bytes, a field node's backlog reaches the central
// server (issue 4, docs/performance.md). Both ends are the real programs:
//
//   central  opendms-central serve on a fresh PostgreSQL database, TLS on 127.0.0.1 with a
//            certificate made for the run (openssl), access log off
//   field    a fresh SQLite file holding N pending records (cluster_data rows with their
//            uuid and outbox entries, as ingest writes them, in the backlog lane), drained
//            by `opendms-field push --once` over HTTPS with certificate verification on
//
//   batch    CENTRAL_DMS_PROTOCOL=batch (the default batch size and gzip level unless given)
//   single   CENTRAL_DMS_PROTOCOL=single: the seed's one record per request (the baseline),
//            over the same kept-alive TLS connection, on a smaller backlog (M records)
//
// Measured per run: records/s = N / wall time of `push --once` (start to exit, every record
// synced); bytes per record = TCP payload bytes sent and received by the field node (TLS
// records and HTTP headers included; from push_state, which the client fills from the
// kernel's TCP_INFO) / N; the field process's peak RSS (wait4 ru_maxrss). Every run checks
// that the central holds exactly N rows with N distinct uuids and the field none pending.
//
// Usage: drain_bench --field BIN --central BIN --dir DIR [--records N] [--single-records M]
//                    [--repeat R] [--batch-size B] [--gzip-level G] [--pool P]
// PostgreSQL from OPENDMS_TEST_PG_* (tests/support/servers.sh). Loopback only.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/timefmt.hpp"
#include "opendms/uuid.hpp"

namespace {

using steady = std::chrono::steady_clock;
namespace db = opendms::db;

struct options {
    std::string field_bin, central_bin, dir;
    long records = 1'000'000;
    long single_records = 20'000;
    int repeat = 1;
    int batch_size = 0;   // 0: the field node's default
    int gzip_level = -1;  // -1: the default
    int pool = 8;
};

[[noreturn]] void die(const std::string& what) {
    std::cerr << "drain_bench: " << what << "\n";
    std::exit(1);
}

std::string env_or_die(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) die(std::string(name) + " is not set: run tests/perf/run_drain_bench.sh");
    return v;
}

void run_or_die(const std::string& command) {
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) die("failed: " + command);
}

int free_port() {
    for (int p = 43000 + static_cast<int>(::getpid() % 1000);; ++p) {
        std::string probe = "bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(p) + "' 2>/dev/null";
        if (std::system(probe.c_str()) != 0) return p;
    }
}

void write_env(const std::string& path, const std::map<std::string, std::string>& vars) {
    std::ofstream out(path);
    for (const auto& [k, v] : vars) out << k << "=" << v << "\n";
}

struct child_result {
    int code = -1;
    double seconds = 0;
    long max_rss_kib = 0;
    double cpu_seconds = 0;  // user + system
};

double cpu_of(const rusage& ru) {
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
    pid_t pid = ::fork();
    if (pid < 0) die("fork: " + std::string(std::strerror(errno)));
    if (pid == 0) {
        std::freopen(log.c_str(), "a", stdout);
        std::freopen(log.c_str(), "a", stderr);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        std::_Exit(127);
    }
    return pid;
}

child_result run_child(const std::vector<std::string>& argv, const std::string& log) {
    const auto t0 = steady::now();
    pid_t pid = spawn(argv, log);
    int status = 0;
    rusage ru{};
    if (::wait4(pid, &status, 0, &ru) != pid) die("wait4");
    child_result r;
    r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.max_rss_kib = ru.ru_maxrss;
    r.cpu_seconds = cpu_of(ru);
    return r;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

db::connect_options pg(const std::string& database) {
    db::connect_options o;
    o.kind = db::dialect::pgsql;
    o.host = env_or_die("OPENDMS_TEST_PG_HOST");
    o.port = std::atoi(env_or_die("OPENDMS_TEST_PG_PORT").c_str());
    o.username = env_or_die("OPENDMS_TEST_PG_USER");
    o.password = env_or_die("OPENDMS_TEST_PG_PASSWORD");
    o.database = database;
    return o;
}

std::unique_ptr<db::connection> open_or_die(const db::connect_options& o) {
    auto c = db::open(o);
    if (!c) die("open " + o.database + ": " + c.error().to_string());
    return std::move(*c);
}

std::int64_t scalar(db::connection& c, const std::string& sql) {
    auto r = c.query(sql, {});
    if (!r || r->empty()) die("query failed: " + sql + ": " + r.error().to_string());
    return (*r)[0].get_int(0).value_or(-1);
}

/// N pending records in the field database, as ingest writes them, queued as backlog.
void seed_field(const std::string& path, long n) {
    db::connect_options o;
    o.kind = db::dialect::sqlite;
    o.database = path;
    o.sqlite_synchronous = "OFF";  // seeding only; the drain runs with the default FULL
    auto c = open_or_die(o);
    const std::int64_t base_ms = 1764028800000;  // 2025-11-25: days old, so backlog
    if (!c->begin()) die("begin");
    for (long i = 0; i < n; ++i) {
        const std::string t = opendms::format_sql_time((base_ms / 1000) + i / 100);
        char device[16], message_id[8];
        std::snprintf(device, sizeof device, "DUCK%04ld", i % 500);
        std::snprintf(message_id, sizeof message_id, "%04lX", (i * 7919) % 0xFFFF);
        auto id = c->insert(
            "insert into cluster_data (created_at, updated_at, duck_id, topic, message_id, payload, "
            "path, hops, duck_type, synced, uuid, source_node) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            {t, t, std::string(device), std::string(i % 7 == 0 ? "gps" : "status"), std::string(message_id),
             "MSG,URGENCY=low,LAT=6.125400,LNG=102.238100,TEXT=drain bench " + std::to_string(i),
             std::string(device) + ",MAMA0002,PAPA0001", std::int64_t{2}, std::int64_t{3}, false,
             opendms::new_uuid_v7(base_ms + i), std::string("bench-node")});
        if (!id) die("seed: " + id.error().to_string());
        auto q = c->exec("insert into outbox (cluster_data_id, lane, created_at) values (?, 1, ?)", {*id, t});
        if (!q) die("seed outbox: " + q.error().to_string());
    }
    if (!c->commit()) die("commit");
}

struct run_result {
    long records = 0;
    double seconds = 0;
    double rate = 0;
    double sent_per_record = 0, received_per_record = 0;
    double rss_mib = 0;
    double field_cpu_us = 0, central_cpu_us = 0;  // CPU time per record
};

run_result drain(const options& o, const std::string& protocol, long n, int run) {
    const std::string tag = protocol + "-" + std::to_string(run);
    const std::string dir = o.dir + "/" + tag;
    run_or_die("mkdir -p " + dir);
    const std::string central_db = "opendms_drain_" + std::to_string(::getpid()) + "_" + tag;
    std::string database = central_db;
    std::replace(database.begin(), database.end(), '-', '_');
    auto admin = open_or_die(pg(env_or_die("OPENDMS_TEST_PG_DATABASE")));
    if (!admin->execute_script("drop database if exists " + database) ||
        !admin->execute_script("create database " + database)) {
        die("cannot create database " + database);
    }
    const int port = free_port();
    const db::connect_options pgo = pg(database);
    const std::string token = "drain-bench-token-0123456789abcdef";
    write_env(dir + "/central.env",
              {{"DB_CONNECTION", "pgsql"}, {"DB_HOST", pgo.host}, {"DB_PORT", std::to_string(pgo.port)},
               {"DB_DATABASE", database}, {"DB_USERNAME", pgo.username}, {"DB_PASSWORD", pgo.password},
               {"CENTRAL_LISTEN", "127.0.0.1:" + std::to_string(port)}, {"CENTRAL_DMS_TOKEN", token},
               {"CENTRAL_TLS_CERT", o.dir + "/pki/server.pem"}, {"CENTRAL_TLS_KEY", o.dir + "/pki/server.key"},
               {"CENTRAL_ACCESS_LOG", "false"}, {"CENTRAL_DB_POOL_SIZE", std::to_string(o.pool)},
               {"LOG_LEVEL", "warning"}});
    if (run_child({o.central_bin, "--env-file", dir + "/central.env", "migrate"}, dir + "/central.log").code != 0) {
        die("central migrate failed: " + read_file(dir + "/central.log"));
    }
    pid_t central = spawn({o.central_bin, "--env-file", dir + "/central.env", "serve"}, dir + "/central.log");
    const std::string probe = "bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) + "' 2>/dev/null";
    for (int i = 0; std::system(probe.c_str()) != 0; ++i) {
        if (i > 200) die("the central did not start: " + read_file(dir + "/central.log"));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }

    std::map<std::string, std::string> field_env = {
        {"DB_CONNECTION", "sqlite"}, {"DB_DATABASE", dir + "/field.sqlite"},
        {"CENTRAL_DMS_URL", "https://localhost:" + std::to_string(port)},
        {"CENTRAL_DMS_TOKEN", token}, {"CENTRAL_DMS_CA_FILE", o.dir + "/pki/ca.pem"},
        {"CENTRAL_DMS_PROTOCOL", protocol}, {"FIELD_NODE_ID", "bench-node"}, {"LOG_LEVEL", "warning"}};
    if (o.batch_size > 0) field_env["CENTRAL_DMS_BATCH_SIZE"] = std::to_string(o.batch_size);
    if (o.gzip_level >= 0) field_env["CENTRAL_DMS_GZIP_LEVEL"] = std::to_string(o.gzip_level);
    write_env(dir + "/field.env", field_env);
    if (run_child({o.field_bin, "--env-file", dir + "/field.env", "migrate"}, dir + "/field.log").code != 0) {
        die("field migrate failed: " + read_file(dir + "/field.log"));
    }
    seed_field(dir + "/field.sqlite", n);

    child_result push = run_child({o.field_bin, "--env-file", dir + "/field.env", "push", "--once"},
                                  dir + "/field.log");
    ::kill(central, SIGTERM);
    int status = 0;
    rusage central_ru{};
    ::wait4(central, &status, 0, &central_ru);
    if (push.code != 0) die(tag + ": push --once exited " + std::to_string(push.code) + ": " + read_file(dir + "/field.log"));

    db::connect_options fo;
    fo.kind = db::dialect::sqlite;
    fo.database = dir + "/field.sqlite";
    auto field = open_or_die(fo);
    auto at_central = open_or_die(pgo);
    const std::int64_t pending = scalar(*field, "select count(*) from cluster_data where synced = 0");
    const std::int64_t rows = scalar(*at_central, "select count(*) from cluster_data");
    const std::int64_t uuids = scalar(*at_central, "select count(distinct uuid) from cluster_data");
    if (pending != 0 || rows != n || uuids != n) {
        die(tag + ": not delivered exactly once: pending " + std::to_string(pending) + ", central rows " +
            std::to_string(rows) + ", distinct uuids " + std::to_string(uuids) + " of " + std::to_string(n));
    }
    run_result r;
    r.records = n;
    r.seconds = push.seconds;
    r.rate = static_cast<double>(n) / push.seconds;
    r.sent_per_record = static_cast<double>(scalar(*field, "select bytes_sent from push_state")) / n;
    r.received_per_record = static_cast<double>(scalar(*field, "select bytes_received from push_state")) / n;
    r.rss_mib = static_cast<double>(push.max_rss_kib) / 1024.0;
    r.field_cpu_us = push.cpu_seconds * 1e6 / static_cast<double>(n);
    r.central_cpu_us = cpu_of(central_ru) * 1e6 / static_cast<double>(n);
    at_central.reset();
    (void)admin->execute_script("drop database if exists " + database);
    run_or_die("rm -rf " + dir);
    std::fprintf(stderr,
                 "drain_bench:   %s: %ld records in %.2f s = %.0f records/s, %.1f + %.1f bytes/record, "
                 "peak RSS %.1f MiB, CPU per record: field %.1f us, central %.1f us\n",
                 tag.c_str(), n, r.seconds, r.rate, r.sent_per_record, r.received_per_record, r.rss_mib,
                 r.field_cpu_us, r.central_cpu_us);
    return r;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--field") o.field_bin = v;
        else if (k == "--central") o.central_bin = v;
        else if (k == "--dir") o.dir = v;
        else if (k == "--records") o.records = std::atol(v.c_str());
        else if (k == "--single-records") o.single_records = std::atol(v.c_str());
        else if (k == "--repeat") o.repeat = std::max(1, std::atoi(v.c_str()));
        else if (k == "--batch-size") o.batch_size = std::atoi(v.c_str());
        else if (k == "--gzip-level") o.gzip_level = std::atoi(v.c_str());
        else if (k == "--pool") o.pool = std::atoi(v.c_str());
        else die("unknown argument " + k);
    }
    if (o.field_bin.empty() || o.central_bin.empty() || o.dir.empty()) {
        die("usage: drain_bench --field BIN --central BIN --dir DIR [--records N] [--single-records M] "
            "[--repeat R] [--batch-size B] [--gzip-level G] [--pool P]");
    }
    run_or_die("mkdir -p " + o.dir + "/pki");
    run_or_die("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=drain-bench-ca -keyout " + o.dir +
               "/pki/ca.key -out " + o.dir + "/pki/ca.pem");
    run_or_die("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout " + o.dir +
               "/pki/server.key -out " + o.dir + "/pki/server.csr");
    std::ofstream(o.dir + "/pki/ext.cnf") << "subjectAltName=DNS:localhost\n";
    run_or_die("openssl x509 -req -in " + o.dir + "/pki/server.csr -CA " + o.dir + "/pki/ca.pem -CAkey " + o.dir +
               "/pki/ca.key -CAcreateserial -days 2 -extfile " + o.dir + "/pki/ext.cnf -out " + o.dir +
               "/pki/server.pem");

    std::vector<run_result> batch, single;
    for (int run = 1; run <= o.repeat; ++run) {
        std::fprintf(stderr, "drain_bench: run %d of %d\n", run, o.repeat);
        single.push_back(drain(o, "single", o.single_records, run));
        batch.push_back(drain(o, "batch", o.records, run));
    }
    auto med = [](const std::vector<run_result>& v, double run_result::*f) {
        std::vector<double> x;
        for (const auto& r : v) x.push_back(r.*f);
        return median(x);
    };
    const double s_rate = med(single, &run_result::rate), b_rate = med(batch, &run_result::rate);
    const double s_bytes = med(single, &run_result::sent_per_record) + med(single, &run_result::received_per_record);
    const double b_bytes = med(batch, &run_result::sent_per_record) + med(batch, &run_result::received_per_record);
    std::printf("runs: %d; batch: %ld records; single: %ld records; PostgreSQL central over TLS on 127.0.0.1\n\n",
                o.repeat, o.records, o.single_records);
    std::printf("| mode | records | rate (median) | ratio | bytes/record sent + received | ratio | field peak RSS | CPU/record field, central |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    std::printf("| baseline: single records (the seed's form), keep-alive | %ld | %.0f records/s | 1.00 | %.1f + %.1f = %.1f | 1.00 | %.1f MiB | %.0f us, %.0f us |\n",
                o.single_records, s_rate, med(single, &run_result::sent_per_record),
                med(single, &run_result::received_per_record), s_bytes, med(single, &run_result::rss_mib),
                med(single, &run_result::field_cpu_us), med(single, &run_result::central_cpu_us));
    std::printf("| batches (gzip) | %ld | %.0f records/s | %.1f x | %.1f + %.1f = %.1f | %.3f x | %.1f MiB | %.1f us, %.1f us |\n",
                o.records, b_rate, b_rate / s_rate, med(batch, &run_result::sent_per_record),
                med(batch, &run_result::received_per_record), b_bytes, b_bytes / s_bytes,
                med(batch, &run_result::rss_mib), med(batch, &run_result::field_cpu_us),
                med(batch, &run_result::central_cpu_us));
    return 0;
}
