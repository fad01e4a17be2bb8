#include "opendms/central/central_program.hpp"

#include <sys/stat.h>

#include <iostream>
#include <string>

#include "opendms/central/central_daemon.hpp"
#include "opendms/central/central_settings.hpp"
#include "opendms/central/central_status.hpp"
#include "opendms/central/token_store.hpp"
#include "opendms/db/migrations.hpp"

namespace opendms::central {
namespace {

bool is_node_name(const std::string& name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

int serve_command(cli::context& ctx) {
    if (!ctx.args.empty()) {
        ctx.err << "serve takes no arguments (settings come from the .env file)\n";
        return cli::exit_usage;
    }
    std::vector<config::problem> problems;
    central_settings s = load_central_settings(ctx.env, ctx.settings, problems);
    if (!problems.empty()) {  // already refused by run_main; kept for direct callers
        cli::print_problems(problems, ctx.err);
        return cli::exit_config;
    }
    return run_serve(s, ctx.err);
}

/// Pending migrations, or -1 when they cannot be read.
long pending_migrations(db::connection& c) {
    auto state = db::migrator(c).state();
    if (!state) return -1;
    long pending = 0;
    for (const db::migration_state& m : *state) pending += m.applied ? 0 : 1;
    return pending;
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
                << " does not exist; run `opendms-central migrate` to create it\n";
        return cli::exit_failed;
    }
    auto c = db::open(o);
    if (!c) {
        ctx.err << "error: cannot open the database: " << c.error().message() << "\n";
        return cli::exit_failed;
    }
    long pending = pending_migrations(**c);
    auto s = read_central_status(**c);
    if (!s) {
        ctx.err << "error: " << s.error().message()
                << (pending != 0 ? " (is the database migrated? see `opendms-central "
                                   "migrate:status`)"
                                 : "")
                << "\n";
        return cli::exit_failed;
    }
    if (json) {
        std::string body = to_json(*s);
        body.pop_back();  // the closing brace: one more member follows
        ctx.out << body << ",\"pending_migrations\":" << pending << "}\n";
    } else {
        ctx.out << to_text(*s) << "pending migrations: "
                << (pending < 0 ? std::string("unknown") : std::to_string(pending)) << "\n";
    }
    return cli::exit_ok;
}

int token_new_command(cli::context& ctx) {
    if (ctx.args.size() != 1 || !is_node_name(ctx.args[0])) {
        ctx.err << "token:new takes one node name: 1 to 64 characters from A-Z, a-z, 0-9, "
                   "'.', '_' and '-'\n";
        return cli::exit_usage;
    }
    std::string token = new_token();
    ctx.out << "CENTRAL_DMS_TOKEN=" << token << "\n"
            << ctx.args[0] << " " << token_hash(token) << "\n";
    ctx.err << "The first line goes into " << ctx.args[0]
            << "'s .env (the token is shown only now). Add the second line to "
               "CENTRAL_DMS_TOKENS_FILE and send SIGHUP to opendms-central.\n";
    return cli::exit_ok;
}

int token_hash_command(cli::context& ctx) {
    if (!ctx.args.empty()) {
        ctx.err << "token:hash reads the token on standard input (never as an argument, which "
                   "other users can see)\n";
        return cli::exit_usage;
    }
    std::string token;
    std::getline(std::cin, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) {
        ctx.err << "token:hash: no token on standard input\n";
        return cli::exit_failed;
    }
    ctx.out << token_hash(token) << "\n";
    return cli::exit_ok;
}

}  // namespace

cli::program central_program() {
    cli::program p;
    p.name = "opendms-central";
    p.summary = "central server: receives records from field nodes over HTTPS and stores them";
    p.commands = cli::common_commands();
    p.commands.push_back({"serve", "",
                          "serve POST /api/ingest, /healthz, /readyz and /metrics (until "
                          "SIGTERM; SIGHUP re-reads the tokens file)",
                          serve_command});
    p.commands.push_back({"status", "[--json]",
                          "counts of records, originals and mesh duplicates, by node",
                          status_command});
    p.commands.push_back({"token:new", "NODE",
                          "make a token for a field node and print its tokens-file line",
                          token_new_command, false});
    p.commands.push_back({"token:hash", "",
                          "read a token on standard input and print its sha256: hash",
                          token_hash_command, false});
    p.own_settings = [](const config::env_map& env, const config::settings& common,
                        std::vector<config::problem>& problems) {
        return describe(load_central_settings(env, common, problems), env);
    };
    return p;
}

}  // namespace opendms::central
