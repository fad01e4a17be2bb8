// Base64 (RFC 4648 section 4, the standard alphabet with '=' padding), for payloads that
// hold binary data. Pure functions; any thread.
#pragma once

#include <string>
#include <string_view>

#include "opendms/status.hpp"

namespace opendms {

/// The canonical base64 of `bytes` (any bytes, NUL included): padded, no line breaks.
std::string base64_encode(std::string_view bytes);

/// Decodes canonical base64 only, so that base64_encode(decoded) == text always holds:
/// the length is a multiple of 4, only A-Z a-z 0-9 + / appear, '=' only as one or two
/// final padding characters, and the bits the padding leaves unused are zero. No
/// whitespace, no URL-safe alphabet. "" decodes to "".
/// Fails with errc::invalid_argument, naming the first offending offset
/// ("base64_decode: invalid character at offset 3").
result<std::string> base64_decode(std::string_view text);

}  // namespace opendms
