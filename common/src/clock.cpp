#include "opendms/clock.hpp"

#include <chrono>

namespace opendms {

unix_seconds system_clock_source::now() const { return now_ms() / 1000; }

std::int64_t system_clock_source::now_ms() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

clock& real_clock() {
    static system_clock_source c;
    return c;
}

}  // namespace opendms
