#include "opendms/cli.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iomanip>
#include <ostream>

#include "opendms/db/migrations.hpp"

namespace opendms::cli {
namespace {

using config::problem;

struct invocation {
    std::string env_file = ".env";
    bool env_file_given = false;
    std::string command;
    std::vector<std::string> args;
    bool help = false;
    bool version = false;
};

void print_help(const program& p, std::ostream& out) {
    out << p.name << " " << OPENDMS_VERSION << ": " << p.summary << "\n\n"
        << "Usage: " << p.name << " [--env-file PATH] COMMAND [options]\n\n"
        << "Settings are read from PATH (default ./.env) and the process environment,\n"
        << "which overrides the file. See docs/configuration.md.\n\nCommands:\n";
    for (const command& c : p.commands) {
        std::string head = c.name + (c.usage.empty() ? "" : " " + c.usage);
        out << "  " << std::left << std::setw(34) << head << c.summary << "\n";
    }
    out << "\nOptions:\n"
        << "  --env-file PATH                   read settings from PATH instead of ./.env\n"
        << "  --help                            this text\n"
        << "  --version                         the program's version\n";
}

result<invocation> parse_args(int argc, const char* const* argv) {
    invocation inv;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (inv.command.empty()) {
            if (a == "--help" || a == "-h" || a == "help") {
                inv.help = true;
            } else if (a == "--version") {
                inv.version = true;
            } else if (a == "--env-file") {
                if (i + 1 >= argc) return status(errc::invalid_argument, "--env-file needs a path");
                inv.env_file = argv[++i];
                inv.env_file_given = true;
            } else if (a.rfind("--env-file=", 0) == 0) {
                inv.env_file = a.substr(11);
                inv.env_file_given = true;
            } else if (!a.empty() && a[0] == '-') {
                return status(errc::invalid_argument, "unknown option " + a);
            } else {
                inv.command = a;
            }
        } else {
            inv.args.push_back(a);
        }
    }
    return inv;
}

result<std::unique_ptr<db::connection>> connect(const context& ctx) {
    auto c = db::open(ctx.settings.db);
    if (!c) {
        return c.error().context(std::string("connect to ") +
                                 db::dialect_name(ctx.settings.db.kind) + " database '" +
                                 ctx.settings.db.database + "'");
    }
    return c;
}

int fail(const context& ctx, const status& s) {
    ctx.err << "error: " << s.message() << "\n";
    return exit_failed;
}

int run_migrate(context& ctx) {
    if (!ctx.args.empty()) {
        ctx.err << "migrate takes no arguments\n";
        return exit_usage;
    }
    auto c = connect(ctx);
    if (!c) return fail(ctx, c.error());
    db::migrator m(**c);
    auto applied = m.migrate();
    if (!applied) return fail(ctx, applied.error());
    if (applied->empty()) ctx.out << "Nothing to migrate.\n";
    for (const std::string& name : *applied) ctx.out << "Migrated: " << name << "\n";
    return exit_ok;
}

int run_migrate_status(context& ctx) {
    auto c = connect(ctx);
    if (!c) return fail(ctx, c.error());
    db::migrator m(**c);
    auto st = m.state();
    if (!st) return fail(ctx, st.error());
    ctx.out << std::left << std::setw(64) << "Migration" << std::setw(8) << "Batch" << "Status\n";
    for (const db::migration_state& s : *st) {
        ctx.out << std::setw(64) << s.name << std::setw(8)
                << (s.applied ? std::to_string(s.batch) : "") << (s.applied ? "Ran" : "Pending")
                << "\n";
    }
    return exit_ok;
}

int run_migrate_rollback(context& ctx) {
    std::string one;
    for (std::size_t i = 0; i < ctx.args.size(); ++i) {
        const std::string& a = ctx.args[i];
        if (a == "--migration" && i + 1 < ctx.args.size()) {
            one = ctx.args[++i];
        } else if (a.rfind("--migration=", 0) == 0) {
            one = a.substr(12);
        } else if (a.rfind("--path=", 0) == 0) {
            // Laravel's form: --path=database/migrations/NAME.php
            std::string p = a.substr(7);
            p = p.substr(p.find_last_of('/') == std::string::npos ? 0 : p.find_last_of('/') + 1);
            if (p.size() > 4 && p.compare(p.size() - 4, 4, ".php") == 0) p.resize(p.size() - 4);
            one = p;
        } else {
            ctx.err << "migrate:rollback: unknown argument " << a
                    << " (use --migration NAME)\n";
            return exit_usage;
        }
    }
    auto c = connect(ctx);
    if (!c) return fail(ctx, c.error());
    db::migrator m(**c);
    if (!one.empty()) {
        if (status s = m.rollback_one(one); !s) return fail(ctx, s);
        ctx.out << "Rolled back: " << one << "\n";
        return exit_ok;
    }
    auto done = m.rollback_last_batch();
    if (!done) return fail(ctx, done.error());
    if (done->empty()) ctx.out << "Nothing to rollback.\n";
    for (const std::string& name : *done) ctx.out << "Rolled back: " << name << "\n";
    return exit_ok;
}

// Looks at the database without creating anything: a SQLite file that does not exist
// yet is reported, not made.
void check_database(const context& ctx, std::vector<problem>& problems) {
    const db::connect_options& o = ctx.settings.db;
    if (o.kind == db::dialect::sqlite && o.database != ":memory:") {
        struct stat st {};
        if (::stat(o.database.c_str(), &st) != 0) {
            std::string dir = o.database.find('/') == std::string::npos
                                  ? "."
                                  : o.database.substr(0, o.database.find_last_of('/'));
            if (dir.empty()) dir = "/";
            if (::access(dir.c_str(), W_OK) != 0) {
                problems.push_back({"DB_DATABASE", "the directory '" + dir +
                                                       "' does not exist or is not writable; "
                                                       "create it or point DB_DATABASE elsewhere"});
            } else {
                ctx.out << "database: " << o.database
                        << " does not exist yet; `migrate` creates it\n";
            }
            return;
        }
    }
    auto c = db::open(o);
    if (!c) {
        problems.push_back({o.kind == db::dialect::sqlite ? "DB_DATABASE" : "DB_HOST",
                            "cannot open the database: " + c.error().message() +
                                "; check DB_HOST, DB_PORT, DB_DATABASE, DB_USERNAME and "
                                "DB_PASSWORD"});
        return;
    }
    db::migrator m(**c);
    auto st = m.state();
    if (!st) {
        problems.push_back({"DB_DATABASE", "cannot read the migrations: " + st.error().message()});
        return;
    }
    auto pending = std::count_if(st->begin(), st->end(),
                                 [](const db::migration_state& s) { return !s.applied; });
    ctx.out << "database: reachable, " << pending << " migration(s) pending"
            << (pending ? " (run `migrate`)" : "") << "\n";
}

int run_check_config(context& ctx, const std::vector<problem>& load_problems,
                     const std::vector<std::string>& own_lines) {
    ctx.out << "env file: " << (ctx.env.file().empty() ? "(none)" : ctx.env.file()) << "\n";
    ctx.out << "mode: " << config::mode_name(ctx.settings.mode) << "\n";
    for (const std::string& line : config::describe(ctx.settings, ctx.env)) {
        ctx.out << "  " << line << "\n";
    }
    for (const std::string& line : own_lines) ctx.out << "  " << line << "\n";
    std::vector<problem> problems = load_problems;
    if (problems.empty()) check_database(ctx, problems);
    if (problems.empty()) {
        ctx.out << "configuration: ok\n";
        return exit_ok;
    }
    print_problems(problems, ctx.err);
    return exit_config;
}

}  // namespace

std::unique_ptr<db::connection> open_existing(const context& ctx, const std::string& program) {
    const db::connect_options& o = ctx.settings.db;
    struct stat st {};
    if (o.kind == db::dialect::sqlite && o.database != ":memory:" &&
        ::stat(o.database.c_str(), &st) != 0) {
        ctx.err << "error: the database " << o.database << " does not exist; run `" << program
                << " migrate` to create it\n";
        return nullptr;
    }
    auto c = db::open(o);
    if (!c) {
        ctx.err << "error: cannot open the database: " << c.error().message() << "\n";
        return nullptr;
    }
    return std::move(*c);
}

bool json_option(const context& ctx, const std::string& command, bool& json) {
    json = false;
    for (const std::string& a : ctx.args) {
        if (a != "--json") {
            ctx.err << command << ": unknown argument " << a << " (use --json)\n";
            return false;
        }
        json = true;
    }
    return true;
}

void print_problems(const std::vector<problem>& problems, std::ostream& err) {
    for (const problem& p : problems) err << "config error: " << p.variable << ": " << p.message << "\n";
}

std::vector<command> common_commands() {
    return {
        {"migrate", "", "apply every pending migration in one batch", run_migrate},
        {"migrate:status", "", "list the migrations and whether each has run", run_migrate_status},
        {"migrate:rollback", "[--migration NAME]",
         "roll back the last batch, or one named migration", run_migrate_rollback},
        {"check-config", "",
         "print the mode and settings (secrets masked) and every problem found",
         nullptr, false},
    };
}

int run_main(const program& p, int argc, const char* const* argv, std::ostream& out,
             std::ostream& err, const std::map<std::string, std::string>& process_env) {
    auto inv = parse_args(argc, argv);
    if (!inv) {
        err << p.name << ": " << inv.error().message() << " (see --help)\n";
        return exit_usage;
    }
    if (inv->version) {
        out << p.name << " " << OPENDMS_VERSION << "\n";
        return exit_ok;
    }
    if (inv->help || inv->command.empty()) {
        print_help(p, inv->help ? out : err);
        return inv->help ? exit_ok : exit_usage;
    }
    auto cmd = std::find_if(p.commands.begin(), p.commands.end(),
                            [&](const command& c) { return c.name == inv->command; });
    if (cmd == p.commands.end()) {
        err << p.name << ": unknown command '" << inv->command << "' (see --help)\n";
        return exit_usage;
    }
    if (std::find(inv->args.begin(), inv->args.end(), "--help") != inv->args.end()) {
        out << "Usage: " << p.name << " [--env-file PATH] " << cmd->name << " " << cmd->usage
            << "\n  " << cmd->summary << "\n";
        return exit_ok;
    }

    auto env = config::env_map::load(inv->env_file, inv->env_file_given, process_env);
    if (!env) {
        err << "config error: " << inv->env_file << ": " << env.error().message() << "\n";
        return exit_config;
    }
    std::vector<problem> problems;
    config::settings s = config::load_settings(*env, problems);
    std::vector<std::string> own_lines;
    if (p.own_settings) own_lines = p.own_settings(*env, s, problems);
    context ctx{*env, s, inv->args, out, err};
    if (cmd->name == "check-config") return run_check_config(ctx, problems, own_lines);
    if (cmd->needs_valid_config && !problems.empty()) {
        print_problems(problems, err);
        err << p.name << ": not started; fix the settings above (check with `" << p.name
            << " check-config`)\n";
        return exit_config;
    }
    return cmd->run(ctx);
}

}  // namespace opendms::cli
