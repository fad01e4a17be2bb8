// pg_array: a PostgreSQL array literal ('{"a","b\"c",NULL}') built element by element, so a
// whole column of a batch travels as ONE text parameter (`?::text[]`, `?::int4[]`) and a
// batch of any size is one statement with a fixed text (one prepared statement, no
// per-size variants).
//
// Format (PostgreSQL "Array Value Input"): every text element is double-quoted, with `"`
// and `\` escaped by a backslash, so commas, braces, spaces, the word NULL and the empty
// string are taken literally; SQL NULL is the unquoted NULL. Integers are written bare.
// Any other byte is copied as it is: a NUL byte cannot be sent in a text parameter (the
// driver refuses it, errc::invalid_argument) and invalid UTF-8 is refused by the server
// (SQLSTATE 22021); both fail the whole statement as a data error, never silently.
//
// Pure; not thread-safe (one builder per statement).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace opendms::central {

class pg_array {
public:
    pg_array() : text_("{") {}

    void add(std::string_view text);
    void add(std::int64_t n);
    void add_bool(bool b);  // t or f
    void add_null();
    void add(const std::optional<std::string>& text) {
        if (text) {
            add(std::string_view(*text));
        } else {
            add_null();
        }
    }
    void add(const std::optional<std::int64_t>& n) {
        if (n) {
            add(*n);
        } else {
            add_null();
        }
    }

    std::size_t size() const noexcept { return size_; }
    /// The literal, e.g. {"a",NULL,"b"}; {} when empty. The builder is left empty.
    std::string take();

private:
    void separate();

    std::string text_;
    std::size_t size_ = 0;
};

}  // namespace opendms::central
