// The PostgreSQL driver (libpq): named prepared statements, text parameters and results
// (blob parameters in binary format; bytea results decoded to their bytes).
#include <libpq-fe.h>

#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "drivers.hpp"

namespace opendms::db::detail {
namespace {

constexpr int default_port = 5432;

// Type OIDs from pg_type.h (stable across versions).
constexpr Oid bool_oid = 16;
constexpr Oid bytea_oid = 17;
constexpr Oid int8_oid = 20;
constexpr Oid int2_oid = 21;
constexpr Oid int4_oid = 23;
constexpr Oid oid_oid = 26;
constexpr Oid float4_oid = 700;
constexpr Oid float8_oid = 701;
constexpr Oid timestamp_oid = 1114;
constexpr Oid timestamptz_oid = 1184;

struct result_deleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using pg_result = std::unique_ptr<PGresult, result_deleter>;

struct pg_statement {
    std::string name;
    std::size_t params = 0;
};

// libpq's messages span lines ("ERROR:  ...\nDETAIL:  ...\n"): one line for a status.
std::string one_line(std::string_view text) {
    std::string out;
    bool space = false;
    for (char c : text) {
        if (std::isspace(static_cast<unsigned char>(c))) {
            space = !out.empty();
        } else {
            if (space) out += ' ';
            space = false;
            out += c;
        }
    }
    return out;
}

// What a SQLSTATE means for the caller. Only errors about the data or the statement
// itself are invalid_argument (retrying the same input cannot help; a store reports such
// a record as refused, and its sender never sends it again):
//   class 22 (data exception: too long, out of range, bad text or time), class 23
//   integrity violations (not null, check, foreign key) except 23505 (unique: conflict),
//   class 42 (syntax error or access rule violation: the statement does not fit the
//   database) and 0A000 (feature not supported).
// XX (internal error, data corrupted) is internal. Everything else is about the server's
// state, not the input, and may clear up: unavailable, e.g. 08 (connection), 40001/40P01
// (serialization, deadlock), 53 (resources: disk full, out of memory, too many
// connections), 55P03 (lock_timeout), 57014 (statement_timeout or cancel), 57P01..57P05
// (shutdown, idle timeouts), 25006 (read-only transaction: a standby, or a database in
// read-only mode), 40003, 58030 (I/O error on the server), 72000.
errc classify(const char* sqlstate, bool connection_bad) {
    if (connection_bad) return errc::unavailable;
    if (sqlstate == nullptr || std::strlen(sqlstate) != 5) return errc::internal;
    const std::string_view s(sqlstate);
    const std::string_view cls = s.substr(0, 2);
    if (s == "23505") return errc::conflict;
    if (cls == "22" || cls == "23" || cls == "42" || s == "0A000") return errc::invalid_argument;
    if (cls == "XX") return errc::internal;
    return errc::unavailable;
}

// The bytes of a bytea value in its text form ('\x4142', or the old escape form).
std::string decode_bytea(const char* text) {
    std::size_t length = 0;
    unsigned char* bytes = PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &length);
    if (bytes == nullptr) throw std::bad_alloc();
    std::string out(reinterpret_cast<const char*>(bytes), length);
    PQfreemem(bytes);
    return out;
}

// "2026-02-27 10:00:00.123+00" -> "2026-02-27 10:00:00"; other forms (infinity, BC,
// years past 9999) are kept as they are.
std::string normalize_timestamp(std::string_view s) {
    if (s.size() >= 19 && s[4] == '-' && s[10] == ' ' && s[13] == ':' && s[16] == ':' &&
        (s.size() == 19 || s[19] == '.' || s[19] == '+' || s[19] == '-')) {
        return std::string(s.substr(0, 19));
    }
    return std::string(s);
}

value read_cell(const char* text, int length, Oid type) {
    const std::string_view s(text, static_cast<std::size_t>(length));
    switch (type) {
        case bool_oid:
            return s == "t";
        case int2_oid:
        case int4_oid:
        case int8_oid:
        case oid_oid: {
            std::int64_t n = 0;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
            if (ec == std::errc() && end == s.data() + s.size()) return n;
            break;
        }
        case float4_oid:
        case float8_oid:
            return std::strtod(text, nullptr);  // also "Infinity", "NaN"
        case timestamp_oid:
        case timestamptz_oid:
            return normalize_timestamp(s);
        case bytea_oid:
            return decode_bytea(text);
        default:
            break;
    }
    return std::string(s);
}

rows to_rows(const PGresult* res) {
    rows out;
    const int fields = PQnfields(res);
    const int tuples = PQntuples(res);
    out.columns.reserve(static_cast<std::size_t>(fields));
    for (int f = 0; f < fields; ++f) out.columns.emplace_back(PQfname(res, f));
    out.data.reserve(static_cast<std::size_t>(tuples));
    for (int t = 0; t < tuples; ++t) {
        row r;
        r.cells.reserve(static_cast<std::size_t>(fields));
        for (int f = 0; f < fields; ++f) {
            if (PQgetisnull(res, t, f)) {
                r.cells.emplace_back(std::monostate{});
            } else {
                r.cells.push_back(
                    read_cell(PQgetvalue(res, t, f), PQgetlength(res, t, f), PQftype(res, f)));
            }
        }
        out.data.push_back(std::move(r));
    }
    return out;
}

std::int64_t changed_rows(const PGresult* res) {
    // PQcmdTuples also counts the rows a SELECT returned; that changed nothing.
    if (std::strncmp(PQcmdStatus(const_cast<PGresult*>(res)), "SELECT", 6) == 0) return 0;
    const char* n = PQcmdTuples(const_cast<PGresult*>(res));
    return (n && *n) ? std::strtoll(n, nullptr, 10) : 0;
}

void ignore_notice(void*, const char*) {}

class pg_connection final : public connection {
public:
    pg_connection(PGconn* conn, connect_options options)
        : conn_(conn), options_(std::move(options)) {
        // libpq prints NOTICEs ("relation exists, skipping") to stderr by default.
        PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
    }
    ~pg_connection() override { PQfinish(conn_); }

    dialect kind() const noexcept override { return dialect::pgsql; }
    std::size_t cached_statements() const noexcept override { return cache_.size(); }

    status start_session(const std::string& what);
    bool connected() const { return PQstatus(conn_) == CONNECTION_OK; }
    std::string error_message() const { return one_line(PQerrorMessage(conn_)); }

    status execute_script(std::string_view sql) override {
        if (is_blank_sql(sql)) return status::ok();
        return simple(std::string(sql), "pgsql.script").error();
    }

    result<std::int64_t> exec(std::string_view sql, const std::vector<value>& params) override {
        auto res = run(sql, params, "pgsql.exec");
        if (!res) return res.error();
        return changed_rows(res->get());
    }

    result<rows> query(std::string_view sql, const std::vector<value>& params) override {
        auto res = run(sql, params, "pgsql.query");
        if (!res) return res.error();
        return to_rows(res->get());
    }

    result<std::int64_t> insert(std::string_view sql, const std::vector<value>& params) override;

    status begin() override { return simple("BEGIN", "pgsql.begin").error(); }
    status commit() override;
    status rollback() override;

    result<bool> table_exists(std::string_view table) override {
        return any_row(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = ?",
            {std::string(table)}, "pgsql.table_exists");
    }
    result<bool> column_exists(std::string_view table, std::string_view column) override {
        return any_row(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? "
            "AND column_name = ?",
            {std::string(table), std::string(column)}, "pgsql.column_exists");
    }

private:
    status ensure_connected(const std::string& what);
    result<const pg_statement*> prepare(std::string_view sql, const std::string& what);
    result<pg_result> run(std::string_view sql, const std::vector<value>& params,
                          const std::string& what);
    result<pg_result> simple(const std::string& sql, const std::string& what);
    status fail(const PGresult* res, const std::string& what);
    void note_transaction_state();
    void release(const pg_statement& s);

    result<bool> any_row(std::string_view sql, const std::vector<value>& params, const char* what) {
        auto r = query(sql, params);
        if (!r) return r.error().context(what);
        return !r->empty();
    }

    PGconn* conn_;
    connect_options options_;
    statement_cache<pg_statement> cache_{statement_cache_capacity};
    std::uint64_t next_statement_ = 0;
    bool in_transaction_ = false;  // last known; kept while the connection is down
};

void pg_connection::note_transaction_state() {
    switch (PQtransactionStatus(conn_)) {
        case PQTRANS_IDLE:
            in_transaction_ = false;
            break;
        case PQTRANS_INTRANS:
        case PQTRANS_INERROR:
            in_transaction_ = true;
            break;
        default:
            break;  // unknown (connection lost) or busy: keep what we knew
    }
}

status pg_connection::fail(const PGresult* res, const std::string& what) {
    const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    std::string message = res ? PQresultErrorMessage(res) : "";
    if (message.empty()) message = PQerrorMessage(conn_);
    note_transaction_state();
    return status(classify(state, !connected()), what + ": " + one_line(message));
}

status pg_connection::start_session(const std::string& what) {
    // Timestamps must read back as UTC "YYYY-MM-DD HH:MM:SS" whatever the server's default.
    return simple("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'", what).error();
}

status pg_connection::ensure_connected(const std::string& what) {
    if (connected()) return status::ok();
    if (in_transaction_) {
        return status(errc::unavailable,
                      what + ": the connection was lost inside a transaction; call rollback()");
    }
    cache_.take_all();  // the server forgot them with the session
    PQreset(conn_);
    if (!connected()) {
        return status(errc::unavailable, what + ": reconnect to " +
                                             describe_target(options_, default_port) + ": " +
                                             error_message());
    }
    return start_session(what);
}

void pg_connection::release(const pg_statement& s) {
    // DEALLOCATE inside a failed transaction would fail; the name then lives on
    // harmlessly until the session ends.
    if (!connected() || PQtransactionStatus(conn_) == PQTRANS_INERROR) return;
    pg_result res(PQexec(conn_, ("DEALLOCATE " + s.name).c_str()));
}

result<const pg_statement*> pg_connection::prepare(std::string_view sql, const std::string& what) {
    if (const pg_statement* cached = cache_.find(sql)) return cached;
    rewritten_sql rewritten = rewrite_placeholders(sql);
    pg_statement stmt{"opendms_" + std::to_string(++next_statement_), rewritten.params};
    // paramTypes omitted: the server infers each parameter's type from its use.
    pg_result res(PQprepare(conn_, stmt.name.c_str(), rewritten.text.c_str(), 0, nullptr));
    if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) return fail(res.get(), what);
    if (auto evicted = cache_.put(std::string(sql), std::move(stmt))) release(*evicted);
    return cache_.find(sql);
}

result<pg_result> pg_connection::run(std::string_view sql, const std::vector<value>& params,
                                     const std::string& what) {
    if (status s = ensure_connected(what); !s) return s;
    auto prepared = prepare(sql, what);
    if (!prepared) return prepared.error();
    const pg_statement& stmt = **prepared;
    if (params.size() != stmt.params) {
        return status(errc::invalid_argument, what + ": " + std::to_string(params.size()) +
                                                  " parameters given, the statement has " +
                                                  std::to_string(stmt.params));
    }
    std::vector<std::string> texts(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    // Lengths and formats matter only for binary (blob) parameters; text ones end at NUL.
    std::vector<int> lengths(params.size(), 0);
    std::vector<int> formats(params.size(), 0);
    for (std::size_t i = 0; i < params.size(); ++i) {
        const value& v = params[i];
        if (auto raw = std::get_if<blob>(&v)) {
            if (raw->bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
                return status(errc::invalid_argument,
                              what + ": parameter " + std::to_string(i + 1) + " is too large");
            }
            // The binary form of bytea is the bytes themselves.
            values[i] = raw->bytes.data();
            lengths[i] = static_cast<int>(raw->bytes.size());
            formats[i] = 1;
            continue;
        }
        if (auto n = std::get_if<std::int64_t>(&v)) {
            texts[i] = std::to_string(*n);
        } else if (auto d = std::get_if<double>(&v)) {
            texts[i] = format_double(*d);
        } else if (auto b = std::get_if<bool>(&v)) {
            texts[i] = *b ? "t" : "f";
        } else if (auto s = std::get_if<std::string>(&v)) {
            // Text parameters end at the first NUL: refuse rather than store a prefix.
            if (s->find('\0') != std::string::npos) {
                return status(errc::invalid_argument,
                              what + ": parameter " + std::to_string(i + 1) +
                                  " contains a NUL byte, which PostgreSQL text cannot store");
            }
            values[i] = s->c_str();
            continue;
        } else {
            continue;  // NULL
        }
        values[i] = texts[i].c_str();
    }
    pg_result res(PQexecPrepared(conn_, stmt.name.c_str(), static_cast<int>(params.size()),
                                 values.data(), lengths.data(), formats.data(), 0));
    const ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        status failure = fail(res.get(), what);
        const char* state = res ? PQresultErrorField(res.get(), PG_DIAG_SQLSTATE) : nullptr;
        // 0A000 "cached plan must not change result type" (the table changed under a
        // SELECT *) and 26000 (statement gone): prepare afresh next time.
        if (state && (std::strcmp(state, "0A000") == 0 || std::strcmp(state, "26000") == 0)) {
            if (auto dropped = cache_.take(sql)) release(*dropped);
        }
        return failure;
    }
    note_transaction_state();
    return res;
}

result<pg_result> pg_connection::simple(const std::string& sql, const std::string& what) {
    if (status s = ensure_connected(what); !s) return s;
    pg_result res(PQexec(conn_, sql.c_str()));
    const ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        return fail(res.get(), what);
    }
    note_transaction_state();
    return res;
}

result<std::int64_t> pg_connection::insert(std::string_view sql, const std::vector<value>& params) {
    const std::string returning = std::string(trim_statement_end(sql)) + " RETURNING id";
    auto res = run(returning, params, "pgsql.insert");
    if (!res) return res.error();
    rows r = to_rows(res->get());
    if (r.empty()) return status(errc::not_found, "pgsql.insert: no row was inserted");
    auto id = r[0].get_int(0);
    if (!id) return status(errc::internal, "pgsql.insert: the id returned is not an integer");
    return *id;
}

status pg_connection::commit() {
    auto res = simple("COMMIT", "pgsql.commit");
    if (!res) return res.error();
    // COMMIT of a failed transaction "succeeds" with the tag ROLLBACK.
    if (std::strcmp(PQcmdStatus(res->get()), "ROLLBACK") == 0) {
        return status(errc::internal,
                      "pgsql.commit: the transaction had failed and was rolled back");
    }
    return status::ok();
}

status pg_connection::rollback() {
    if (connected()) {
        pg_result res(PQexec(conn_, "ROLLBACK"));
        const ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && connected()) return fail(res.get(), "pgsql.rollback");
    }
    // A lost connection took the transaction with it: nothing is left to undo.
    in_transaction_ = false;
    return status::ok();
}

}  // namespace

result<std::unique_ptr<connection>> open_pgsql(const connect_options& o) {
    std::vector<std::pair<std::string, std::string>> settings = {
        {"host", o.socket.empty() ? o.host : o.socket},
        {"port", std::to_string(o.port != 0 ? o.port : default_port)},
        {"dbname", o.database},
        {"user", o.username},
        {"password", o.password},
        {"connect_timeout", o.connect_timeout_s > 0 ? std::to_string(o.connect_timeout_s) : ""},
        {"application_name", "opendms"},
        {"client_encoding", "UTF8"},
        // Notice a server that vanished without closing the connection.
        {"keepalives", "1"},
        {"keepalives_idle", "30"},
        {"keepalives_interval", "10"},
        {"keepalives_count", "3"},
    };
    std::vector<const char*> keys;
    std::vector<const char*> values;
    for (const auto& [k, v] : settings) {
        if (v.empty()) continue;  // libpq's default (or PGPASSWORD, ~/.pgpass)
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    PGconn* raw = PQconnectdbParams(keys.data(), values.data(), 0);
    if (raw == nullptr) return status(errc::internal, "pgsql.connect: out of memory");
    auto conn = std::make_unique<pg_connection>(raw, o);
    const std::string what = "pgsql.connect " + describe_target(o, default_port);
    if (!conn->connected()) return status(errc::unavailable, what + ": " + conn->error_message());
    if (status s = conn->start_session(what); !s) return s;
    return std::unique_ptr<connection>(std::move(conn));
}

}  // namespace opendms::db::detail

OPENDMS_DB_DRIVER(pgsql, opendms::db::detail::open_pgsql)
