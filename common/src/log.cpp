#include "opendms/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <ctime>

namespace opendms::log {
namespace {

std::atomic<int> g_threshold{static_cast<int>(level::info)};

const char* name(level l) {
    switch (l) {
        case level::debug: return "debug";
        case level::info: return "info";
        case level::notice: return "notice";
        case level::warning: return "warning";
        case level::error: return "error";
    }
    return "?";
}

}  // namespace

void set_threshold(level l) { g_threshold.store(static_cast<int>(l)); }
level threshold() { return static_cast<level>(g_threshold.load()); }

bool parse_level(const std::string& text, level& out) {
    for (level l : {level::debug, level::info, level::notice, level::warning, level::error}) {
        if (text == name(l)) {
            out = l;
            return true;
        }
    }
    return false;
}

void write(level l, const std::string& component, const std::string& message) {
    std::string line;
    if (std::getenv("JOURNAL_STREAM") != nullptr) {
        line = "<" + std::to_string(static_cast<int>(l)) + ">" + component + ": " + message;
    } else {
        std::time_t t = std::time(nullptr);
        std::tm tm{};
        gmtime_r(&t, &tm);
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        line = std::string(stamp) + " " + name(l) + " " + component + ": " + message;
    }
    line += '\n';
    // One write per line keeps lines whole when several threads log at once.
    ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
}

}  // namespace opendms::log
