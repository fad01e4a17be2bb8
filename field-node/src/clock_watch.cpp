#include "opendms/field/clock_watch.hpp"

#include <cstdlib>

namespace opendms::field {

std::optional<std::int64_t> clock_watch::observe(std::int64_t wall_ms, std::int64_t steady_ms) {
    std::optional<std::int64_t> jump;
    if (started_) {
        const std::int64_t drift = (wall_ms - wall_ms_) - (steady_ms - steady_ms_);
        if (std::llabs(drift) > tolerance_ms_) jump = drift;
    }
    started_ = true;
    wall_ms_ = wall_ms;
    steady_ms_ = steady_ms;
    return jump;
}

}  // namespace opendms::field
