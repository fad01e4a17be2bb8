// opendms-field: wiring only; see field_program.cpp.
#include <malloc.h>

#include <iostream>

#include "opendms/config/dotenv.hpp"
#include "opendms/field/field_program.hpp"

int main(int argc, char** argv) {
    // One malloc arena for all threads. glibc gives each thread that allocates its own
    // arena (up to 8 per core), and each keeps the memory it touched: on a gateway with an
    // MQTT thread per connection, the writer and the pusher, that was 1.5 MiB of resident
    // memory for no gain; the daemon's threads hand work to each other and rarely
    // allocate at the same time (docs/performance.md, "Field ingest").
    ::mallopt(M_ARENA_MAX, 1);
    return opendms::cli::run_main(opendms::field::field_program(), argc, argv, std::cout,
                                  std::cerr, opendms::config::process_environment());
}
