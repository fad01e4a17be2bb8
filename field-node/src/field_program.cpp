#include "opendms/field/field_program.hpp"

#include <sys/stat.h>

#include <ostream>

#include "opendms/clock.hpp"
#include "opendms/field/field_daemon.hpp"
#include "opendms/field/field_settings.hpp"
#include "opendms/field/field_status.hpp"

namespace opendms::field {
namespace {

int run_command(cli::context& ctx) {
    if (!ctx.args.empty()) {
        ctx.err << "run takes no arguments (settings come from the .env file)\n";
        return cli::exit_usage;
    }
    std::vector<config::problem> problems;
    field_settings s = load_field_settings(ctx.env, ctx.settings, problems);
    if (!problems.empty()) {  // already refused by run_main; kept for direct callers
        cli::print_problems(problems, ctx.err);
        return cli::exit_config;
    }
    return run_daemon(s, ctx.err);
}

int status_command(cli::context& ctx) {
    bool json = false;
    for (const std::string& a : ctx.args) {
        if (a != "--json") {
            ctx.err << "status: unknown argument " << a << " (use --json)\n";
            return cli::exit_usage;
        }
        json = true;
    }
    const db::connect_options& o = ctx.settings.db;
    struct stat st {};
    if (o.kind == db::dialect::sqlite && o.database != ":memory:" &&
        ::stat(o.database.c_str(), &st) != 0) {
        ctx.err << "error: the database " << o.database
                << " does not exist; run `opendms-field migrate` to create it\n";
        return cli::exit_failed;
    }
    auto c = db::open(o);
    if (!c) {
        ctx.err << "error: cannot open the database: " << c.error().message() << "\n";
        return cli::exit_failed;
    }
    auto s = read_status(**c, real_clock().now());
    if (!s) {
        ctx.err << "error: " << s.error().message()
                << " (is the database migrated? see `opendms-field migrate:status`)\n";
        return cli::exit_failed;
    }
    ctx.out << (json ? to_json(*s) : to_text(*s));
    if (json) ctx.out << "\n";
    return cli::exit_ok;
}

}  // namespace

cli::program field_program() {
    cli::program p;
    p.name = "opendms-field";
    p.summary =
        "field node: gateway messages from MQTT into the local database, then to the "
        "central server";
    p.commands = cli::common_commands();
    p.commands.push_back({"run", "",
                          "receive gateway messages from MQTT and store each before "
                          "acknowledging it (until SIGTERM)",
                          run_command});
    p.commands.push_back({"status", "[--json]",
                          "counts of records (pending, synced), outbox, quarantine and mesh "
                          "duplicates",
                          status_command});
    p.own_settings = [](const config::env_map& env, const config::settings& common,
                        std::vector<config::problem>& problems) {
        return describe(load_field_settings(env, common, problems), env);
    };
    return p;
}

}  // namespace opendms::field
