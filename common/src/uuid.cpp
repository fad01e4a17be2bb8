#include "opendms/uuid.hpp"

#include <sys/random.h>

#include <cerrno>

#include <algorithm>
#include <chrono>
#include <random>

namespace opendms {

namespace {

constexpr unix_ms max_uuid_ms = (std::int64_t{1} << 48) - 1;

bool is_hex(char c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_dash_position(std::size_t i) noexcept {
    return i == 8 || i == 13 || i == 18 || i == 23;
}

}  // namespace

namespace detail {

uuid_random_bits draw_uuid_random_bits(random_fill_fn primary) {
    uuid_random_bits bits{};
    if (primary && primary(bits.data(), static_cast<int>(bits.size())) == 1) return bits;
    // getrandom() fails only when the kernel's source does; random_device reads the same
    // source through another path (/dev/urandom) and throws if it cannot.
    std::random_device device;
    std::uniform_int_distribution<unsigned> byte(0, 255);
    for (auto& b : bits) b = static_cast<std::uint8_t>(byte(device));
    return bits;
}

int fill_from_kernel(unsigned char* out, int n) {
    // The kernel's CSPRNG, one system call a UUID. Not OpenSSL's RAND_bytes: its first use
    // initialises OpenSSL's providers and DRBG, which cost a field node with TLS off
    // about 2 MiB of resident memory (docs/performance.md). Up to 256 bytes never come
    // back short once the pool is initialised; EINTR is retried.
    std::size_t done = 0;
    while (done < static_cast<std::size_t>(n)) {
        const ssize_t got = ::getrandom(out + done, static_cast<std::size_t>(n) - done, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        done += static_cast<std::size_t>(got);
    }
    return 1;
}

}  // namespace detail

std::string make_uuid_v7(unix_ms now_ms, const uuid_random_bits& random) {
    const auto ms = static_cast<std::uint64_t>(now_ms < 0 ? 0 : std::min(now_ms, max_uuid_ms));
    std::array<std::uint8_t, 16> b{};
    for (std::size_t i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
    for (std::size_t i = 0; i < random.size(); ++i) b[6 + i] = random[i];
    b[6] = static_cast<std::uint8_t>(0x70 | (b[6] & 0x0F));  // version 7
    b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3F));  // variant 0b10

    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(digits[b[i] >> 4]);
        out.push_back(digits[b[i] & 0x0F]);
    }
    return out;
}

std::string new_uuid_v7(unix_ms now_ms) {
    return make_uuid_v7(now_ms, detail::draw_uuid_random_bits(&detail::fill_from_kernel));
}

std::string new_uuid_v7() {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return new_uuid_v7(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

bool is_uuid(std::string_view text) noexcept {
    if (text.size() != 36) return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (is_dash_position(i) ? text[i] != '-' : !is_hex(text[i])) return false;
    }
    return true;
}

}  // namespace opendms
