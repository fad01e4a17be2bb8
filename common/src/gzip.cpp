// gzip with zlib; see gzip.hpp.
#include "opendms/gzip.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <new>

namespace opendms {
namespace {

constexpr int gzip_window_bits = 16 + MAX_WBITS;  // a gzip header and trailer, not zlib's

// Resizes `out` to exactly `size` bytes of storage, keeping its first `used` bytes.
// std::string's own growth may double the capacity past the cap; this never does.
void grow_exactly(std::string& out, std::size_t used, std::size_t size) {
    std::string bigger;
    bigger.reserve(size);
    bigger.assign(out.data(), used);
    bigger.resize(size);
    out.swap(bigger);
}

Bytef* bytes(const char* p) { return reinterpret_cast<Bytef*>(const_cast<char*>(p)); }

}  // namespace

std::string gzip_compress(std::string_view data, int level) {
    z_stream zs{};
    if (deflateInit2(&zs, std::clamp(level, 1, 9), Z_DEFLATED, gzip_window_bits, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        throw std::bad_alloc();
    }
    std::string out;
    out.resize(deflateBound(&zs, static_cast<uLong>(std::min<std::size_t>(data.size(), ULONG_MAX))) +
               32);
    std::size_t consumed = 0;
    std::size_t produced = 0;
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        if (produced == out.size()) out.resize(out.size() * 2);
        const std::size_t in_chunk = std::min<std::size_t>(data.size() - consumed, UINT_MAX);
        const std::size_t out_chunk = std::min<std::size_t>(out.size() - produced, UINT_MAX);
        zs.next_in = bytes(data.data() + consumed);
        zs.avail_in = static_cast<uInt>(in_chunk);
        zs.next_out = reinterpret_cast<Bytef*>(&out[produced]);
        zs.avail_out = static_cast<uInt>(out_chunk);
        const bool last = consumed + in_chunk == data.size();
        rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
        consumed += in_chunk - zs.avail_in;
        produced += out_chunk - zs.avail_out;
        if (rc == Z_STREAM_ERROR) break;  // cannot happen with a valid stream
    }
    deflateEnd(&zs);
    out.resize(produced);
    return out;
}

gunzip_result gzip_decompress(std::string_view in, std::string& out, std::size_t max_bytes) {
    if (in.empty()) return {gunzip_error::empty, {}};
    z_stream zs{};
    if (inflateInit2(&zs, gzip_window_bits) != Z_OK) return {gunzip_error::no_memory, {}};
    struct end_guard {
        z_stream& zs;
        ~end_guard() { inflateEnd(&zs); }
    } guard{zs};
    const std::size_t limit = std::min(max_bytes, std::size_t{SIZE_MAX - 1}) + 1;
    std::size_t consumed = 0;
    std::size_t produced = 0;
    grow_exactly(out, 0, std::min(limit, std::max(in.size() * 4, std::size_t{64 * 1024})));
    for (;;) {
        if (produced == out.size()) {
            if (out.size() >= limit) return {gunzip_error::too_large, {}};
            grow_exactly(out, produced, std::min(limit, out.size() * 2));
        }
        // zlib counts in uInt: feed at most UINT_MAX bytes a call either way.
        const std::size_t in_chunk = std::min<std::size_t>(in.size() - consumed, UINT_MAX);
        const std::size_t out_chunk = std::min<std::size_t>(out.size() - produced, UINT_MAX);
        zs.next_in = bytes(in.data() + consumed);
        zs.avail_in = static_cast<uInt>(in_chunk);
        zs.next_out = reinterpret_cast<Bytef*>(&out[produced]);
        zs.avail_out = static_cast<uInt>(out_chunk);
        const int rc = inflate(&zs, Z_NO_FLUSH);
        consumed += in_chunk - zs.avail_in;
        produced += out_chunk - zs.avail_out;
        if (rc == Z_STREAM_END) {
            if (consumed == in.size()) break;
            inflateReset(&zs);  // another gzip member follows (RFC 1952 section 2.2)
            continue;
        }
        if (rc == Z_OK) continue;
        if (rc == Z_BUF_ERROR && zs.avail_out == 0) continue;
        if (rc == Z_BUF_ERROR) return {gunzip_error::truncated, {}};
        if (rc == Z_MEM_ERROR) return {gunzip_error::no_memory, {}};
        return {gunzip_error::corrupt, zs.msg ? zs.msg : "invalid data"};
    }
    if (produced > max_bytes) return {gunzip_error::too_large, {}};
    out.resize(produced);
    return {};
}

}  // namespace opendms
