// The opendms-central program: its command table. main.cpp only runs it.
#pragma once

#include "opendms/cli.hpp"

namespace opendms::central {

/// Every command of opendms-central: the common ones (migrate, migrate:status,
/// migrate:rollback, check-config) and
///   serve            run the ingest server (central_daemon.hpp) until SIGTERM;
///   status [--json]  record counts by node and pending migrations (central_status.hpp);
///   token:new NODE   a new token for a field node: prints `CENTRAL_DMS_TOKEN=<token>` (the
///                    only time it is shown) and the tokens-file line `NODE sha256:<hex>`;
///   token:hash       reads a token on stdin (not argv: visible to other users), prints
///                    `sha256:<hex>`.
/// token:* do not need a valid configuration. own_settings validates the CENTRAL_* settings
/// (central_settings.hpp), so check-config reports them and every command refuses to run
/// while one is invalid.
cli::program central_program();

}  // namespace opendms::central
