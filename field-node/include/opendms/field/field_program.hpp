// The opendms-field program: its command table. main.cpp only runs it.
#pragma once

#include "opendms/cli.hpp"

namespace opendms::field {

/// Every command of opendms-field: the common ones (migrate, migrate:status,
/// migrate:rollback, check-config) and
///   run              the daemon: MQTT ingest, and delivery in hybrid mode (field_daemon.hpp)
///   push [--once]    delivery alone (push_service.hpp); --once: until the outbox is empty,
///                    exit 75 when an attempt fails
///   requeue [--id N] un-park records the central rejected (outbox_store.hpp)
///   status [--json]  counts and delivery state (field_status.hpp)
cli::program field_program();

}  // namespace opendms::field
