#include "opendms/field/field_program.hpp"

#include <signal.h>

#include <chrono>
#include <ostream>
#include <thread>

#include "opendms/clock.hpp"
#include "opendms/field/field_daemon.hpp"
#include "opendms/field/field_settings.hpp"
#include "opendms/field/database_guard.hpp"
#include "opendms/field/field_status.hpp"
#include "opendms/field/outbox_store.hpp"
#include "opendms/field/push_service.hpp"
#include "opendms/log.hpp"

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

/// The field settings of a command that needs hybrid mode; false (with the fix on err)
/// otherwise.
bool hybrid_settings(cli::context& ctx, const char* command, field_settings& s) {
    std::vector<config::problem> problems;
    s = load_field_settings(ctx.env, ctx.settings, problems);
    if (!problems.empty()) {
        cli::print_problems(problems, ctx.err);
        return false;
    }
    if (!s.push.enabled) {
        ctx.err << command << ": nothing to deliver in " << config::mode_name(ctx.settings.mode)
                << " mode; set CENTRAL_DMS_URL and CENTRAL_DMS_TOKEN (with DB_CONNECTION=sqlite) "
                   "for hybrid mode\n";
        return false;
    }
    return true;
}

/// `push --once`: steps until the outbox is empty (0) or an attempt fails (75, EX_TEMPFAIL:
/// records are still pending; the error is logged). The rate cap is honoured.
int push_once(push_service& svc, const clock& clk) {
    for (;;) {
        auto r = svc.get().step();
        if (!r) {
            OPENDMS_LOG(error, "push", r.error().message());
            return cli::exit_failed;
        }
        const std::int64_t wait = r->due_ms - clk.now_ms();
        if (r->kind == step_result::idle) return cli::exit_ok;
        if (r->kind == step_result::sent && wait > 0) return 75;  // a failure: backing off
        if (wait > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    }
}

int push_command(cli::context& ctx) {
    bool once = false;
    for (const std::string& a : ctx.args) {
        if (a != "--once") {
            ctx.err << "push: unknown argument " << a << " (use --once)\n";
            return cli::exit_usage;
        }
        once = true;
    }
    field_settings s;
    if (!hybrid_settings(ctx, "push", s)) return cli::exit_config;
    log::set_threshold(s.log_level);
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);  // taken by sigwait below
    auto svc = push_service::open(s);
    if (!svc) {
        ctx.err << "push: " << svc.error().message() << "\n";
        return cli::exit_failed;
    }
    if (once) return push_once(**svc, real_clock());
    (*svc)->start();
    int sig = 0;
    sigwait(&stop_signals, &sig);
    OPENDMS_LOG(notice, "push", "received " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": stopping");
    (*svc)->stop();
    return cli::exit_ok;
}

int requeue_command(cli::context& ctx) {
    std::optional<std::int64_t> id;
    for (std::size_t i = 0; i < ctx.args.size(); ++i) {
        const std::string& a = ctx.args[i];
        if (a == "--id" && i + 1 < ctx.args.size()) {
            try {
                id = std::stoll(ctx.args[++i]);
            } catch (const std::exception&) {
                ctx.err << "requeue: --id takes a record id (cluster_data.id)\n";
                return cli::exit_usage;
            }
        } else {
            ctx.err << "requeue: unknown argument " << a << " (use --id N)\n";
            return cli::exit_usage;
        }
    }
    auto c = cli::open_existing(ctx, "opendms-field");
    if (!c) return cli::exit_failed;
    outbox_store outbox(*c, real_clock());
    auto n = outbox.requeue(id);
    if (!n) {
        ctx.err << "error: " << n.error().message() << "\n";
        return cli::exit_failed;
    }
    ctx.out << "requeued " << *n << " parked record(s); the pusher sends them at its next attempt\n";
    return cli::exit_ok;
}

int status_command(cli::context& ctx) {
    bool json = false;
    if (!cli::json_option(ctx, "status", json)) return cli::exit_usage;
    auto c = cli::open_existing(ctx, "opendms-field");
    if (!c) return cli::exit_failed;
    auto s = read_status(*c, real_clock().now());
    if (!s) {
        ctx.err << "error: " << s.error().message()
                << " (is the database migrated? see `opendms-field migrate:status`)\n";
        return cli::exit_failed;
    }
    s->damaged_databases = list_set_aside(ctx.settings.db);
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
    p.commands.push_back({"push", "[--once]",
                          "deliver the outbox to the central server without ingesting (until "
                          "SIGTERM; --once: until the outbox is empty, exit 75 if an attempt "
                          "fails)",
                          push_command});
    p.commands.push_back({"requeue", "[--id N]",
                          "send parked records (rejected by the central server) again: all, or "
                          "the record with cluster_data id N",
                          requeue_command});
    p.own_settings = [](const config::env_map& env, const config::settings& common,
                        std::vector<config::problem>& problems) {
        return describe(load_field_settings(env, common, problems), env);
    };
    return p;
}

}  // namespace opendms::field
