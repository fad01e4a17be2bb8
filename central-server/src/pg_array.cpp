// pg_array: PostgreSQL array literals (contract in pg_array.hpp).
#include "opendms/central/pg_array.hpp"

#include <utility>

namespace opendms::central {

void pg_array::separate() {
    if (size_++ > 0) text_ += ',';
}

void pg_array::add(std::string_view text) {
    separate();
    text_.reserve(text_.size() + text.size() + 2);
    text_ += '"';
    for (char c : text) {
        if (c == '"' || c == '\\') text_ += '\\';
        text_ += c;
    }
    text_ += '"';
}

void pg_array::add(std::int64_t n) {
    separate();
    text_ += std::to_string(n);
}

void pg_array::add_bool(bool b) {
    separate();
    text_ += b ? 't' : 'f';
}

void pg_array::add_null() {
    separate();
    text_ += "NULL";
}

std::string pg_array::take() {
    text_ += '}';
    std::string out = std::move(text_);
    text_ = "{";
    size_ = 0;
    return out;
}

}  // namespace opendms::central
