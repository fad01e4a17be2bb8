// opendms-central: wiring only; see central_program.cpp.
#include <iostream>

#include "opendms/central/central_program.hpp"
#include "opendms/config/dotenv.hpp"

int main(int argc, char** argv) {
    return opendms::cli::run_main(opendms::central::central_program(), argc, argv, std::cout,
                                  std::cerr, opendms::config::process_environment());
}
