// field_daemon: `opendms-field run`. Wires the MQTT subscriber to one ingest store per
// MQTT connection and runs until SIGTERM or SIGINT.
//
//   start-up   the database must be migrated (else exit 78 with the fix: run
//              `opendms-field migrate`); a server database that is down is waited for
//              (retried with backoff, logged) until it answers or a signal arrives
//   running    each message is stored (one transaction) before its PUBACK leaves; a
//              store failure is retried by the subscriber, never acknowledged; every 60 s
//              a summary line (handled, stored, duplicates, quarantined, connections)
//   stopping   SIGTERM/SIGINT: the subscriber finishes the message in hand, sends the
//              queued PUBACKs and DISCONNECT, and run_daemon returns 0. When a message
//              cannot be stored at that moment the process ends with 75 (EX_TEMPFAIL)
//              without acknowledging it (mqtt_subscriber.hpp).
//
// Threads: call from the main thread before any other thread exists. SIGTERM and SIGINT
// are blocked in every thread (the mask is inherited) and taken by sigwait in this one;
// the mask is restored on return.
#pragma once

#include <iosfwd>

#include "opendms/field/field_settings.hpp"

namespace opendms::field {

/// Exit code when a signal ends the daemon normally.
constexpr int daemon_exit_ok = 0;
/// Exit code when the database is not migrated or a setting is refused at start-up.
constexpr int daemon_exit_config = 78;
/// Exit code for any other start-up failure (the database is damaged, ...).
constexpr int daemon_exit_failed = 1;

/// Runs the field daemon; `s` must be valid (load_field_settings without problems).
/// Start-up errors are written to `err` (and logged); returns an exit code.
int run_daemon(const field_settings& s, std::ostream& err);

}  // namespace opendms::field
