// The opendms-field program: its command table. main.cpp only runs it.
#pragma once

#include "opendms/cli.hpp"

namespace opendms::field {

/// Every command of opendms-field (the common ones for now; the daemon's `run`,
/// `status` and `push` are added by the ingest and pusher work).
cli::program field_program();

}  // namespace opendms::field
