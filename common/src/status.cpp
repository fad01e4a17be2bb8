#include "opendms/status.hpp"

namespace opendms {

const char* errc_name(errc code) noexcept {
    switch (code) {
        case errc::ok: return "ok";
        case errc::invalid_argument: return "invalid_argument";
        case errc::not_found: return "not_found";
        case errc::conflict: return "conflict";
        case errc::unavailable: return "unavailable";
        case errc::io_error: return "io_error";
        case errc::corrupt: return "corrupt";
        case errc::internal: return "internal";
    }
    return "unknown";
}

status status::context(const std::string& what) const {
    if (is_ok()) return *this;
    return status(code_, what + ": " + message_);
}

std::string status::to_string() const {
    if (is_ok()) return "ok";
    return std::string(errc_name(code_)) + ": " + message_;
}

}  // namespace opendms
