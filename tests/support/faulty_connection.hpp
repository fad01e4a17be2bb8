// faulty_connection: a db::connection that forwards every call to a real connection and
// fails the Nth counted call with a chosen error, for fail-at-N loops (SQLite's "How SQLite
// Is Tested", LevelDB's ErrorEnv, Beast's test::fail_count):
//
//     for (std::uint64_t n = 1;; ++n) {
//         test::faulty_connection f(real, test::fault{n});
//         auto r = operation_under_test(f);
//         if (!f.fired()) { REQUIRE(r); break; }   // n is past the last call: done
//         REQUIRE_FALSE(r);                        // and the state must be as before
//     }
//
// Counted calls: begin, commit, exec, insert, query, execute_script, table_exists and
// column_exists, in the order they are made, starting at 1. rollback() is never counted
// and never failed: it is the recovery path under test, so it always reaches the real
// connection. kind() and cached_statements() are forwarded as they are.
//
// By default the failing call does not reach the real connection (a failure before any
// effect, as a full disk refusing a write). fault_timing::after runs the real call first
// and then reports the failure: an ambiguous outcome, as when a COMMIT reached the disk but
// its answer was lost. A sticky fault fails every counted call from the Nth on (a disk that
// stays full) until disarm().
//
// The injected status has the fault's code and "<operation>: <message> (injected at call
// N)", e.g. "faulty.commit: disk full (injected at call 5)"; the default is errc::io_error
// "disk full", what SQLITE_FULL becomes.
//
// Ownership and threads: borrows `inner`, which must outlive it; one thread at a time,
// like any connection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/db/database.hpp"
#include "opendms/status.hpp"

namespace opendms::test {

enum class fault_timing {
    before,  // fail instead of making the call
    after,   // make the call, then report failure whatever it returned
};

/// One counted call: its operation ("begin", "query", ...) and, for statements, the SQL.
struct call_record {
    std::string operation;
    std::string sql;
};

struct fault {
    std::uint64_t at = 0;  // the counted call to fail (1 = the first); 0 = never
    errc code = errc::io_error;
    std::string message = "disk full";
    fault_timing timing = fault_timing::before;
    bool sticky = false;  // fail every counted call from `at` on
};

class faulty_connection final : public db::connection {
public:
    explicit faulty_connection(db::connection& inner, fault f = {});

    /// Replaces the fault and restarts the count at 0.
    void arm(fault f);
    /// No further failures; the count goes on.
    void disarm();

    /// Counted calls made so far (failed ones included).
    std::uint64_t calls() const noexcept { return calls_; }
    /// Calls that were made to fail.
    std::uint64_t failures() const noexcept { return failures_; }
    /// True once a failure was injected since the last arm().
    bool fired() const noexcept { return failures_ > 0; }
    /// Every counted call since the last arm(), in order.
    const std::vector<call_record>& log() const noexcept { return log_; }

    db::dialect kind() const noexcept override { return inner_.kind(); }
    std::size_t cached_statements() const noexcept override { return inner_.cached_statements(); }

    status execute_script(std::string_view sql) override;
    result<std::int64_t> exec(std::string_view sql, const std::vector<db::value>& params) override;
    result<db::rows> query(std::string_view sql, const std::vector<db::value>& params) override;
    result<std::int64_t> insert(std::string_view sql,
                                const std::vector<db::value>& params) override;
    status begin() override;
    status commit() override;
    status rollback() override;
    result<bool> table_exists(std::string_view table) override;
    result<bool> column_exists(std::string_view table, std::string_view column) override;

private:
    // Counts a call; true when this one must fail.
    bool should_fail(const char* operation, std::string_view sql);
    status injected(const char* operation) const;

    template <typename T, typename Call>
    T counted(const char* operation, std::string_view sql, Call&& call);

    db::connection& inner_;
    fault fault_;
    bool armed_ = true;
    std::uint64_t calls_ = 0;
    std::uint64_t failures_ = 0;
    std::vector<call_record> log_;
};

}  // namespace opendms::test
