// `opendms-central serve`: wires settings, token store, pool, handler and server, and
// handles signals: SIGTERM/SIGINT -> graceful stop; SIGHUP -> re-read the tokens file
// (logged; a bad file keeps the old tokens and is reported).
//
// Start-up: refuses to start (exit 1, message with the fix "run opendms-central migrate")
// when the database is reachable and migrations are pending; starts anyway when the
// database is unreachable (/readyz says so, ingest answers 503 until it is back).
// Logs "listening on http(s)://host:port" once ready to accept (tests wait for it).
#pragma once

#include <iosfwd>

#include "opendms/central/central_settings.hpp"

namespace opendms::central {

/// Runs until a stop signal; returns the process exit code.
int run_serve(const central_settings& s, std::ostream& err);

}  // namespace opendms::central
