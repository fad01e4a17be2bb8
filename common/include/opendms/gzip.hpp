// gzip (RFC 1952) with zlib: the field node compresses batch bodies, the central server
// inflates them (and compresses its replies), each under a size cap.
//
// Pure functions of their inputs; thread-safe (each call owns its z_stream).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace opendms {

/// The gzip of `data` at zlib `level` (1 fastest .. 9 smallest; 6 is zlib's default).
/// Throws std::bad_alloc only when memory runs out.
std::string gzip_compress(std::string_view data, int level = 6);

enum class gunzip_error {
    none,
    empty,      // no bytes at all
    truncated,  // the stream ends before its trailer
    corrupt,    // not gzip, or a damaged stream (detail says how)
    too_large,  // it inflates to more than max_bytes (a gzip bomb stops here)
    no_memory,  // zlib could not allocate its state
};

struct gunzip_result {
    gunzip_error error = gunzip_error::none;
    std::string detail;  // zlib's message for `corrupt`
};

/// Inflates `in` (one or more concatenated gzip members) into `out`, never holding more
/// than max_bytes + 1 bytes of output: one byte past the cap is how a bomb is told from a
/// body of exactly max_bytes. On error `out` holds no meaningful data.
gunzip_result gzip_decompress(std::string_view in, std::string& out, std::size_t max_bytes);

}  // namespace opendms
