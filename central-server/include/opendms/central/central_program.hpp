// The opendms-central program: its command table. main.cpp only runs it.
#pragma once

#include "opendms/cli.hpp"

namespace opendms::central {

/// Every command of opendms-central (the common ones for now; `serve` and `status`
/// are added by the central-server work).
cli::program central_program();

}  // namespace opendms::central
