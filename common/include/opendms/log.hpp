// Logging: one line per event on stderr. Under systemd (JOURNAL_STREAM set) each line
// starts with the syslog priority ("<3>") so the journal keeps levels; otherwise with
// an ISO-8601 UTC time and the level name. Never log secrets (tokens, passwords).
// Thread-safe: a line is written with one write(2).
#pragma once

#include <sstream>
#include <string>

namespace opendms::log {

enum class level { debug = 7, info = 6, notice = 5, warning = 4, error = 3 };

/// Lines below this level are dropped. Default info; LOG_LEVEL (debug|info|notice|
/// warning|error) sets it at start-up.
void set_threshold(level l);
level threshold();
/// Parses a LOG_LEVEL value; false when unknown.
bool parse_level(const std::string& text, level& out);

void write(level l, const std::string& component, const std::string& message);

}  // namespace opendms::log

// OPENDMS_LOG(info, "mqtt", "connected to " << host);  — the stream is built only when
// the level passes the threshold.
#define OPENDMS_LOG(lvl, component, stream_expr)                                        \
    do {                                                                                \
        if (static_cast<int>(::opendms::log::level::lvl) <=                             \
            static_cast<int>(::opendms::log::threshold())) {                            \
            std::ostringstream opendms_log_os_;                                         \
            opendms_log_os_ << stream_expr;                                             \
            ::opendms::log::write(::opendms::log::level::lvl, component,                \
                                  opendms_log_os_.str());                               \
        }                                                                               \
    } while (0)
