// opendms-field: wiring only; see field_program.cpp.
#include <iostream>

#include "opendms/config/dotenv.hpp"
#include "opendms/field/field_program.hpp"

int main(int argc, char** argv) {
    return opendms::cli::run_main(opendms::field::field_program(), argc, argv, std::cout,
                                  std::cerr, opendms::config::process_environment());
}
