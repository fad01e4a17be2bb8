// The command line shared by opendms-field and opendms-central.
//
//   PROGRAM [--env-file PATH] COMMAND [options]
//
// Settings come from the .env file (default ./.env; a missing default file is fine,
// a missing --env-file is an error) overlaid by the process environment. Each program
// lists its commands; the common ones are migrate, migrate:status, migrate:rollback and
// check-config. Exit codes: 0 success, 1 the operation failed, 2 usage error,
// 78 (EX_CONFIG) the configuration is invalid.
//
// run_main never throws; it writes results to `out` and diagnostics to `err`.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "opendms/config/settings.hpp"
#include "opendms/db/database.hpp"

namespace opendms::cli {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_config = 78;

struct context {
    const config::env_map& env;
    const config::settings& settings;
    const std::vector<std::string>& args;  // the command's own arguments
    std::ostream& out;
    std::ostream& err;
};

struct command {
    std::string name;     // "migrate:rollback"
    std::string usage;    // "[--migration NAME]"
    std::string summary;  // one line for --help
    std::function<int(context&)> run;
    /// When true (most commands) the program stops with exit_config before running the
    /// command if the configuration has problems. check-config reports them itself.
    bool needs_valid_config = true;
};

struct program {
    std::string name;     // "opendms-field"
    std::string summary;  // one line
    std::vector<command> commands;
    /// The program's own settings: validates them (appending problems) and returns their
    /// NAME=value lines for check-config. Called once per run, after the shared settings.
    std::function<std::vector<std::string>(const config::env_map&, const config::settings&,
                                           std::vector<config::problem>&)>
        own_settings;
};

/// migrate, migrate:status, migrate:rollback, check-config.
std::vector<command> common_commands();

/// Parses argv, loads the settings and runs the command.
int run_main(const program& p, int argc, const char* const* argv, std::ostream& out,
             std::ostream& err, const std::map<std::string, std::string>& process_env);

/// Opens the configured database for a command that reads or changes an existing one: a
/// SQLite file that does not exist is an error naming the fix (`<program> migrate`), never
/// a new empty file. On failure prints "error: ..." on ctx.err and returns nullptr.
std::unique_ptr<db::connection> open_existing(const context& ctx, const std::string& program);

/// Reads a command's arguments when its only option is "--json": false (with the usage
/// on ctx.err) for anything else.
bool json_option(const context& ctx, const std::string& command, bool& json);

/// Prints the problems, one per line, as "config error: VARIABLE: message".
void print_problems(const std::vector<config::problem>& problems, std::ostream& err);

}  // namespace opendms::cli
