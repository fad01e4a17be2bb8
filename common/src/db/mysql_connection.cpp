// The MySQL/MariaDB driver (MariaDB Connector/C): server-side prepared statements bound
// with MYSQL_BIND (blob parameters as MYSQL_TYPE_BLOB), results typed from the result
// metadata (binary columns read as bytes, like text).
#include <errmsg.h>
#include <mysql.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "drivers.hpp"

namespace opendms::db::detail {
namespace {

constexpr int default_port = 3306;
constexpr unsigned long initial_text_buffer = 256;

// Laravel's strict mode, so the schema behaves as it does under the Laravel OpenDMS.
constexpr const char* session_setup =
    "SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = 'ONLY_FULL_GROUP_BY,"
    "STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION'";

bool connection_lost(unsigned err) {
    switch (err) {
        case 2002:  // CR_CONNECTION_ERROR (socket)
        case 2003:  // CR_CONN_HOST_ERROR
        case 2006:  // CR_SERVER_GONE_ERROR
        case 2013:  // CR_SERVER_LOST
        case 2055:  // CR_SERVER_LOST_EXTENDED
        case 1053:  // ER_SERVER_SHUTDOWN
        case 1927:  // ER_CONNECTION_KILLED
            return true;
        default:
            return false;
    }
}

// What a server error number means for the caller. Only errors about the data or the
// statement itself are invalid_argument (retrying the same input cannot help; a store
// reports such a record as refused, and its sender never sends it again). Everything else
// the server reports is about its state, not the input, and may clear up: unavailable,
// e.g. 1205/1213 (lock wait timeout, deadlock), 1969 (MariaDB max_statement_time), 3024
// (MySQL max_execution_time), 1290/1836/1792 (read-only server or transaction), 1021/1114
// (disk or table full), 1040/1203 (too many connections), 1041/1037/1038 (out of memory),
// 1317 (interrupted), 1180/1181 (error during commit/rollback), 1030 (storage engine error).
// Client library errors (2000-2999) other than a lost connection are internal.
errc classify(unsigned err) {
    if (connection_lost(err)) return errc::unavailable;
    switch (err) {
        case 1022:  // ER_DUP_KEY
        case 1062:  // ER_DUP_ENTRY
        case 1586:  // ER_DUP_ENTRY_WITH_KEY_NAME
            return errc::conflict;
        // The data: a value the column cannot hold.
        case 1048:  // ER_BAD_NULL_ERROR
        case 1101:  // ER_BLOB_CANT_HAVE_DEFAULT
        case 1264:  // ER_WARN_DATA_OUT_OF_RANGE
        case 1265:  // WARN_DATA_TRUNCATED
        case 1292:  // ER_TRUNCATED_WRONG_VALUE (dates, numbers)
        case 1300:  // ER_INVALID_CHARACTER_STRING
        case 1364:  // ER_NO_DEFAULT_FOR_FIELD
        case 1366:  // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD (text not in the charset)
        case 1367:  // ER_ILLEGAL_VALUE_FOR_TYPE
        case 1406:  // ER_DATA_TOO_LONG
        case 1411:  // ER_WRONG_VALUE_FOR_TYPE
        case 1451:  // ER_ROW_IS_REFERENCED_2 (foreign key)
        case 1452:  // ER_NO_REFERENCED_ROW_2 (foreign key)
        case 1690:  // ER_DATA_OUT_OF_RANGE
        case 3819:  // ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
        case 4025:  // ER_CONSTRAINT_FAILED (MariaDB CHECK)
        // The statement: it does not fit this database.
        case 1046:  // ER_NO_DB_ERROR
        case 1049:  // ER_BAD_DB_ERROR
        case 1052:  // ER_NON_UNIQ_ERROR (ambiguous column)
        case 1054:  // ER_BAD_FIELD_ERROR
        case 1064:  // ER_PARSE_ERROR
        case 1109:  // ER_UNKNOWN_TABLE
        case 1136:  // ER_WRONG_VALUE_COUNT_ON_ROW
        case 1146:  // ER_NO_SUCH_TABLE
        case 1149:  // ER_SYNTAX_ERROR
        case 1210:  // ER_WRONG_ARGUMENTS
        case 1235:  // ER_NOT_SUPPORTED_YET
        case 1241:  // ER_OPERAND_COLUMNS
        case 1242:  // ER_SUBQUERY_NO_1_ROW
        case 1295:  // ER_UNSUPPORTED_PS
        case 1305:  // ER_SP_DOES_NOT_EXIST (function)
        case 1582:  // ER_WRONG_PARAMCOUNT_TO_NATIVE_FCT
        case 1583:  // ER_WRONG_PARAMETERS_TO_NATIVE_FCT
            return errc::invalid_argument;
        default:
            break;
    }
    if (err == 0 || (err >= 2000 && err < 3000)) return errc::internal;  // client library
    return errc::unavailable;
}

std::string describe_error(unsigned err, const char* message) {
    return std::string(message) + " (" + std::to_string(err) + ")";
}

result<MYSQL*> connect_mysql(const connect_options& o) {
    const std::string what = "mysql.connect " + describe_target(o, default_port);
    // mysql_init() would initialise the library on first use, which is not thread-safe.
    static const bool library_ready = mysql_library_init(0, nullptr, nullptr) == 0;
    if (!library_ready) return status(errc::internal, what + ": mysql_library_init failed");
    MYSQL* m = mysql_init(nullptr);
    if (m == nullptr) return status(errc::internal, what + ": out of memory");
    if (o.connect_timeout_s > 0) {
        unsigned int t = static_cast<unsigned int>(o.connect_timeout_s);
        mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    }
    if (o.read_timeout_s > 0) {
        unsigned int t = static_cast<unsigned int>(o.read_timeout_s);
        mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &t);
        mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &t);
    }
    my_bool no = 0;
    mysql_options(m, MYSQL_OPT_RECONNECT, &no);  // we reconnect ourselves, never mid-transaction
    unsigned int no_infile = 0;
    mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &no_infile);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    const bool by_socket = !o.socket.empty();
    const unsigned long flags = CLIENT_MULTI_STATEMENTS | CLIENT_FOUND_ROWS;
    if (!mysql_real_connect(m, by_socket ? "localhost" : o.host.c_str(), o.username.c_str(),
                            o.password.c_str(), o.database.empty() ? nullptr : o.database.c_str(),
                            static_cast<unsigned int>(o.port != 0 ? o.port : default_port),
                            by_socket ? o.socket.c_str() : nullptr, flags)) {
        std::string message = describe_error(mysql_errno(m), mysql_error(m));
        mysql_close(m);
        return status(errc::unavailable, what + ": " + message);
    }
    if (mysql_real_query(m, session_setup, std::strlen(session_setup)) != 0) {
        std::string message = describe_error(mysql_errno(m), mysql_error(m));
        mysql_close(m);
        return status(errc::internal, what + ": session set-up: " + message);
    }
    return m;
}

// One result column's fetch buffer; MYSQL_BIND points into it, so it must not move.
struct column_buffer {
    enum class kind { integer, real, datetime, text };
    kind k = kind::text;
    bool is_unsigned = false;
    std::int64_t integer = 0;
    double real = 0;
    MYSQL_TIME time{};
    std::vector<char> text;
    unsigned long length = 0;
    my_bool is_null = 0;
    my_bool error = 0;
};

column_buffer::kind kind_of(enum_field_types t) {
    switch (t) {
        case MYSQL_TYPE_TINY:
        case MYSQL_TYPE_SHORT:
        case MYSQL_TYPE_LONG:
        case MYSQL_TYPE_INT24:
        case MYSQL_TYPE_LONGLONG:
        case MYSQL_TYPE_YEAR:
            return column_buffer::kind::integer;
        case MYSQL_TYPE_FLOAT:
        case MYSQL_TYPE_DOUBLE:
            return column_buffer::kind::real;
        case MYSQL_TYPE_DATETIME:
        case MYSQL_TYPE_TIMESTAMP:
            return column_buffer::kind::datetime;
        default:
            return column_buffer::kind::text;  // DECIMAL stays exact, as text
    }
}

void bind_column(column_buffer& c, MYSQL_BIND& b) {
    b.is_null = &c.is_null;
    b.error = &c.error;
    b.length = &c.length;
    switch (c.k) {
        case column_buffer::kind::integer:
            b.buffer_type = MYSQL_TYPE_LONGLONG;
            b.buffer = &c.integer;
            b.is_unsigned = c.is_unsigned;
            break;
        case column_buffer::kind::real:
            b.buffer_type = MYSQL_TYPE_DOUBLE;
            b.buffer = &c.real;
            break;
        case column_buffer::kind::datetime:
            b.buffer_type = MYSQL_TYPE_DATETIME;
            b.buffer = &c.time;
            break;
        case column_buffer::kind::text:
            c.text.resize(initial_text_buffer);
            b.buffer_type = MYSQL_TYPE_STRING;
            b.buffer = c.text.data();
            b.buffer_length = initial_text_buffer;
            break;
    }
}

class mysql_connection final : public connection {
public:
    mysql_connection(MYSQL* conn, connect_options options)
        : conn_(conn), options_(std::move(options)) {}
    ~mysql_connection() override { close(); }

    dialect kind() const noexcept override { return dialect::mysql; }
    std::size_t cached_statements() const noexcept override { return cache_.size(); }

    status execute_script(std::string_view sql) override;

    result<std::int64_t> exec(std::string_view sql, const std::vector<value>& params) override {
        return run(sql, params, nullptr, "mysql.exec");
    }

    result<rows> query(std::string_view sql, const std::vector<value>& params) override {
        rows out;
        auto r = run(sql, params, &out, "mysql.query");
        if (!r) return r.error();
        return out;
    }

    result<std::int64_t> insert(std::string_view sql, const std::vector<value>& params) override {
        auto changed = run(sql, params, nullptr, "mysql.insert");
        if (!changed) return changed.error();
        if (*changed == 0) return status(errc::not_found, "mysql.insert: no row was inserted");
        return last_insert_id_;
    }

    status begin() override { return simple("START TRANSACTION", "mysql.begin"); }
    status commit() override { return simple("COMMIT", "mysql.commit"); }
    status rollback() override;

    result<bool> table_exists(std::string_view table) override {
        return any_row(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = ?",
            {std::string(table)}, "mysql.table_exists");
    }
    result<bool> column_exists(std::string_view table, std::string_view column) override {
        return any_row(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?",
            {std::string(table), std::string(column)}, "mysql.column_exists");
    }

private:
    void close();
    status ensure_connected(const std::string& what);
    status fail(unsigned err, const char* message, const std::string& what);
    status fail_stmt(MYSQL_STMT* stmt, const std::string& what) {
        return fail(mysql_stmt_errno(stmt), mysql_stmt_error(stmt), what);
    }
    status fail_conn(const std::string& what) {
        return fail(mysql_errno(conn_), mysql_error(conn_), what);
    }
    void note_transaction_state();
    status simple(const std::string& sql, const std::string& what);
    result<MYSQL_STMT*> prepare(std::string_view sql, const std::string& what);
    status bind_params(MYSQL_STMT* stmt, const std::vector<value>& params,
                       std::vector<MYSQL_BIND>& binds, std::vector<unsigned long>& lengths,
                       std::vector<std::int64_t>& ints, const std::string& what);
    result<std::int64_t> run(std::string_view sql, const std::vector<value>& params, rows* out,
                             const std::string& what);
    status fetch_all(MYSQL_STMT* stmt, rows* out, const std::string& what);

    result<bool> any_row(std::string_view sql, const std::vector<value>& params, const char* what) {
        auto r = query(sql, params);
        if (!r) return r.error().context(what);
        return !r->empty();
    }

    MYSQL* conn_;
    connect_options options_;
    statement_cache<MYSQL_STMT*> cache_{statement_cache_capacity};
    bool broken_ = false;          // the connection was lost; reconnect before use
    bool in_transaction_ = false;  // last known; kept while the connection is down
    std::int64_t last_insert_id_ = 0;
};

void mysql_connection::close() {
    if (conn_ == nullptr) return;
    std::vector<MYSQL_STMT*> stmts = cache_.take_all();
    // On a lost connection, close it first: that detaches the statements, which are
    // then freed without a round trip that could wait for a timeout.
    if (broken_) mysql_close(conn_);
    for (MYSQL_STMT* s : stmts) mysql_stmt_close(s);
    if (!broken_) mysql_close(conn_);
    conn_ = nullptr;
}

status mysql_connection::ensure_connected(const std::string& what) {
    if (!broken_) return status::ok();
    if (in_transaction_) {
        return status(errc::unavailable,
                      what + ": the connection was lost inside a transaction; call rollback()");
    }
    close();
    auto fresh = connect_mysql(options_);
    if (!fresh) return fresh.error().context(what + ": reconnect");
    conn_ = *fresh;
    broken_ = false;
    return status::ok();
}

status mysql_connection::fail(unsigned err, const char* message, const std::string& what) {
    if (connection_lost(err)) {
        broken_ = true;
    } else {
        note_transaction_state();
    }
    return status(classify(err), what + ": " + describe_error(err, message));
}

void mysql_connection::note_transaction_state() {
    unsigned int server_status = 0;
    if (mariadb_get_infov(conn_, MARIADB_CONNECTION_SERVER_STATUS, &server_status) == 0) {
        in_transaction_ = (server_status & SERVER_STATUS_IN_TRANS) != 0;
    }
}

status mysql_connection::simple(const std::string& sql, const std::string& what) {
    if (status s = ensure_connected(what); !s) return s;
    if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return fail_conn(what);
    note_transaction_state();
    return status::ok();
}

status mysql_connection::rollback() {
    if (!broken_ && conn_ != nullptr && mysql_real_query(conn_, "ROLLBACK", 8) != 0) {
        status s = fail_conn("mysql.rollback");
        if (!broken_) return s;
    }
    // A lost connection took the transaction with it: nothing is left to undo.
    in_transaction_ = false;
    return status::ok();
}

status mysql_connection::execute_script(std::string_view sql) {
    const std::string what = "mysql.script";
    if (is_blank_sql(sql)) return status::ok();
    if (status s = ensure_connected(what); !s) return s;
    // The server runs the statements in order and stops at the first failure; every
    // result must be drained before the connection can be used again.
    if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return fail_conn(what);
    for (;;) {
        if (MYSQL_RES* r = mysql_store_result(conn_)) {
            mysql_free_result(r);
        } else if (mysql_field_count(conn_) != 0) {
            return fail_conn(what);
        }
        const int more = mysql_next_result(conn_);
        if (more == -1) break;
        if (more > 0) {
            // A script ending in a comment after its last ';' leaves an empty statement.
            if (mysql_errno(conn_) == 1065) break;  // ER_EMPTY_QUERY
            return fail_conn(what);
        }
    }
    note_transaction_state();
    return status::ok();
}

result<MYSQL_STMT*> mysql_connection::prepare(std::string_view sql, const std::string& what) {
    if (MYSQL_STMT** cached = cache_.find(sql)) return *cached;
    MYSQL_STMT* stmt = mysql_stmt_init(conn_);
    if (stmt == nullptr) return fail_conn(what);
    if (mysql_stmt_prepare(stmt, sql.data(), sql.size()) != 0) {
        status s = fail_stmt(stmt, what);
        mysql_stmt_close(stmt);
        return s;
    }
    if (auto evicted = cache_.put(std::string(sql), stmt)) mysql_stmt_close(*evicted);
    return stmt;
}

status mysql_connection::bind_params(MYSQL_STMT* stmt, const std::vector<value>& params,
                                     std::vector<MYSQL_BIND>& binds,
                                     std::vector<unsigned long>& lengths,
                                     std::vector<std::int64_t>& ints, const std::string& what) {
    const unsigned long expected = mysql_stmt_param_count(stmt);
    if (expected != params.size()) {
        return status(errc::invalid_argument, what + ": " + std::to_string(params.size()) +
                                                  " parameters given, the statement has " +
                                                  std::to_string(expected));
    }
    if (params.empty()) return status::ok();
    binds.assign(params.size(), MYSQL_BIND{});
    lengths.assign(params.size(), 0);
    ints.assign(params.size(), 0);
    for (std::size_t i = 0; i < params.size(); ++i) {
        MYSQL_BIND& b = binds[i];
        const value& v = params[i];
        if (auto n = std::get_if<std::int64_t>(&v)) {
            ints[i] = *n;
            b.buffer_type = MYSQL_TYPE_LONGLONG;
            b.buffer = &ints[i];
        } else if (auto d = std::get_if<double>(&v)) {
            // The connector only reads the buffer; the parameters outlive the execute.
            b.buffer_type = MYSQL_TYPE_DOUBLE;
            b.buffer = const_cast<double*>(d);
        } else if (auto s = std::get_if<std::string>(&v)) {
            lengths[i] = s->size();
            b.buffer_type = MYSQL_TYPE_STRING;
            b.buffer = const_cast<char*>(s->data());
            b.buffer_length = s->size();
            b.length = &lengths[i];
        } else if (auto flag = std::get_if<bool>(&v)) {
            ints[i] = *flag ? 1 : 0;
            b.buffer_type = MYSQL_TYPE_LONGLONG;
            b.buffer = &ints[i];
        } else if (auto raw = std::get_if<blob>(&v)) {
            // Binary: sent without character set conversion or validation.
            lengths[i] = raw->bytes.size();
            b.buffer_type = MYSQL_TYPE_BLOB;
            b.buffer = const_cast<char*>(raw->bytes.data());
            b.buffer_length = raw->bytes.size();
            b.length = &lengths[i];
        } else {
            b.buffer_type = MYSQL_TYPE_NULL;
        }
    }
    if (mysql_stmt_bind_param(stmt, binds.data()) != 0) return fail_stmt(stmt, what);
    return status::ok();
}

value read_column(MYSQL_STMT* stmt, column_buffer& c, unsigned int index, const std::string& what,
                  status& error) {
    if (c.is_null) return std::monostate{};
    switch (c.k) {
        case column_buffer::kind::integer:
            if (c.is_unsigned && c.integer < 0) {  // BIGINT UNSIGNED past INT64_MAX
                return std::to_string(static_cast<std::uint64_t>(c.integer));
            }
            return c.integer;
        case column_buffer::kind::real:
            return c.real;
        case column_buffer::kind::datetime: {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%04u-%02u-%02u %02u:%02u:%02u", c.time.year,
                          c.time.month, c.time.day, c.time.hour, c.time.minute, c.time.second);
            return std::string(buf);
        }
        case column_buffer::kind::text:
            break;
    }
    if (c.length <= c.text.size()) return std::string(c.text.data(), c.length);
    // Longer than the buffer: fetch this cell whole.
    std::string whole(c.length, '\0');
    MYSQL_BIND b{};
    unsigned long length = 0;
    b.buffer_type = MYSQL_TYPE_STRING;
    b.buffer = whole.data();
    b.buffer_length = c.length;
    b.length = &length;
    if (mysql_stmt_fetch_column(stmt, &b, index, 0) != 0) {
        error = status(errc::internal, what + ": fetch_column: " + mysql_stmt_error(stmt));
    }
    return whole;
}

// Releases a statement's result however reading it ends, so that the connection is
// never left with unread rows ("commands out of sync").
struct free_result_on_exit {
    MYSQL_STMT* stmt;
    ~free_result_on_exit() { mysql_stmt_free_result(stmt); }
};

status mysql_connection::fetch_all(MYSQL_STMT* stmt, rows* out, const std::string& what) {
    free_result_on_exit guard{stmt};
    std::unique_ptr<MYSQL_RES, decltype(&mysql_free_result)> meta(mysql_stmt_result_metadata(stmt),
                                                                  &mysql_free_result);
    if (!meta) return fail_stmt(stmt, what);
    const unsigned int count = mysql_num_fields(meta.get());
    MYSQL_FIELD* fields = mysql_fetch_fields(meta.get());
    std::vector<column_buffer> columns(count);
    std::vector<MYSQL_BIND> binds(count, MYSQL_BIND{});
    for (unsigned int i = 0; i < count; ++i) {
        columns[i].k = kind_of(fields[i].type);
        columns[i].is_unsigned = (fields[i].flags & UNSIGNED_FLAG) != 0;
        bind_column(columns[i], binds[i]);
        if (out) out->columns.emplace_back(fields[i].name, fields[i].name_length);
    }
    if (mysql_stmt_bind_result(stmt, binds.data()) != 0) return fail_stmt(stmt, what);
    if (mysql_stmt_store_result(stmt) != 0) return fail_stmt(stmt, what);
    status error = status::ok();
    for (;;) {
        const int rc = mysql_stmt_fetch(stmt);
        if (rc == MYSQL_NO_DATA) break;
        if (rc == 1) {
            error = fail_stmt(stmt, what);
            break;
        }
        if (!out) continue;
        row r;
        r.cells.reserve(count);
        for (unsigned int i = 0; i < count; ++i) {
            r.cells.push_back(read_column(stmt, columns[i], i, what, error));
        }
        out->data.push_back(std::move(r));
    }
    return error;
}

result<std::int64_t> mysql_connection::run(std::string_view sql, const std::vector<value>& params,
                                           rows* out, const std::string& what) {
    if (status s = ensure_connected(what); !s) return s;
    MYSQL_STMT* stmt = nullptr;
    std::vector<MYSQL_BIND> binds;
    std::vector<unsigned long> lengths;
    std::vector<std::int64_t> ints;
    for (int attempt = 0;; ++attempt) {
        auto prepared = prepare(sql, what);
        if (!prepared) return prepared.error();
        stmt = *prepared;
        if (status s = bind_params(stmt, params, binds, lengths, ints, what); !s) return s;
        if (mysql_stmt_execute(stmt) == 0) break;
        // The table changed under a SELECT *: its result has new columns. Only a
        // statement with a result set gets here, so running it again is safe.
        if (mysql_stmt_errno(stmt) == CR_NEW_STMT_METADATA && attempt == 0) {
            if (auto stale = cache_.take(sql)) mysql_stmt_close(*stale);
            continue;
        }
        return fail_stmt(stmt, what);
    }
    std::int64_t changed = 0;
    if (mysql_stmt_field_count(stmt) > 0) {
        // Every row must be read (or discarded) before the next statement can run.
        if (status s = fetch_all(stmt, out, what); !s) return s;
    } else {
        changed = static_cast<std::int64_t>(mysql_stmt_affected_rows(stmt));
        last_insert_id_ = static_cast<std::int64_t>(mysql_stmt_insert_id(stmt));
    }
    note_transaction_state();
    return changed;
}

}  // namespace

result<std::unique_ptr<connection>> open_mysql(const connect_options& o) {
    auto conn = connect_mysql(o);
    if (!conn) return conn.error();
    return std::unique_ptr<connection>(std::make_unique<mysql_connection>(*conn, o));
}

}  // namespace opendms::db::detail

OPENDMS_DB_DRIVER(mysql, opendms::db::detail::open_mysql)
