// status and result<T>: the one way errors travel through the core.
//
// A status is ok, or an error code plus a message that names the operation that
// failed ("outbox.append: disk full"). The code tells a caller whether trying
// again can help; exceptions are kept for start-up errors and bugs.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace opendms {

enum class errc {
    ok = 0,
    invalid_argument,  // the input is wrong; retrying the same input cannot help
    not_found,         // the thing asked for does not exist
    conflict,          // a uniqueness or state conflict (e.g. already migrated)
    unavailable,       // a server or resource is down or busy; retry later
    io_error,          // a local I/O failure (disk full, permission); may clear up
    corrupt,           // stored data is damaged; needs an operator
    internal,          // a bug or an unexpected library answer
};

/// Returns the code's stable lower-case name ("unavailable").
const char* errc_name(errc code) noexcept;

class [[nodiscard]] status {
public:
    status() = default;
    status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

    static status ok() { return {}; }

    bool is_ok() const noexcept { return code_ == errc::ok; }
    explicit operator bool() const noexcept { return is_ok(); }
    errc code() const noexcept { return code_; }
    const std::string& message() const noexcept { return message_; }

    /// True when the same call may succeed later without a change of input.
    bool retryable() const noexcept { return code_ == errc::unavailable || code_ == errc::io_error; }

    /// Prefixes the message with context: status{io_error,"disk full"}.context("outbox.append")
    /// gives "outbox.append: disk full". No effect on an ok status.
    status context(const std::string& what) const;

    /// "unavailable: outbox.append: disk full", or "ok".
    std::string to_string() const;

private:
    errc code_ = errc::ok;
    std::string message_;
};

/// A value or the status that explains why there is none.
template <typename T>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::move(value)) {}            // NOLINT: implicit by design
    result(status error) : v_(std::move(error)) {}       // NOLINT: must not be ok
    result(errc code, std::string message) : v_(status(code, std::move(message))) {}

    bool is_ok() const noexcept { return std::holds_alternative<T>(v_); }
    explicit operator bool() const noexcept { return is_ok(); }

    T& value() & { return std::get<T>(v_); }
    const T& value() const& { return std::get<T>(v_); }
    T&& value() && { return std::get<T>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    /// The error; status::ok() when there is a value.
    status error() const { return is_ok() ? status::ok() : std::get<status>(v_); }

private:
    std::variant<T, status> v_;
};

}  // namespace opendms
