#include "opendms/central/central_program.hpp"

namespace opendms::central {

cli::program central_program() {
    cli::program p;
    p.name = "opendms-central";
    p.summary = "central server: receives records from field nodes over HTTPS and stores them";
    p.commands = cli::common_commands();
    return p;
}

}  // namespace opendms::central
