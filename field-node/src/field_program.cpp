#include "opendms/field/field_program.hpp"

namespace opendms::field {

cli::program field_program() {
    cli::program p;
    p.name = "opendms-field";
    p.summary = "field node: gateway messages from MQTT into the local database, then to the "
                "central server";
    p.commands = cli::common_commands();
    return p;
}

}  // namespace opendms::field
