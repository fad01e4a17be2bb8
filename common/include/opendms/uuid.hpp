// UUIDv7 (RFC 9562): the permanent identity a node gives each record it first stores.
//
// Layout: 48-bit Unix time in milliseconds (big-endian), version 7, 12 random bits,
// variant 0b10, 62 random bits. Keys made close together sort close together, so index
// inserts stay sequential (random v4 keys halve SQLite insert rates by a million rows).
// Order inside one millisecond is random: the time prefix orders records, not the key.
//
// All functions are thread-safe (OpenSSL 3's RAND_bytes is).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace opendms {

/// Unix time in milliseconds, UTC.
using unix_ms = std::int64_t;

/// A new UUIDv7 for the given time, lower-case "xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx".
/// Times outside [0, 2^48) ms are clamped to that range. The random bits come from
/// OpenSSL's RAND_bytes; if that fails, from std::random_device (never a constant).
std::string new_uuid_v7(unix_ms now_ms);
/// The same, at the system clock's current time.
std::string new_uuid_v7();

/// True for the 36-character 8-4-4-4-12 hexadecimal form (either case, any version).
bool is_uuid(std::string_view text) noexcept;

/// 74 random bits' worth of input for make_uuid_v7 (the version and variant bits of
/// byte 0 and byte 2 are overwritten).
using uuid_random_bits = std::array<std::uint8_t, 10>;

/// The pure layout step: the UUIDv7 for this time and these random bytes (bytes 6..15 of
/// the UUID come from `random`). Deterministic, for tests and RFC 9562's example vector.
std::string make_uuid_v7(unix_ms now_ms, const uuid_random_bits& random);

namespace detail {
/// A random source: fills `len` bytes and returns 1 on success.
using random_fill_fn = int (*)(unsigned char* buf, int len);
/// Fills random bits from `primary`, or from std::random_device when it fails. The seam
/// lets a test force the fallback; production passes fill_from_kernel.
uuid_random_bits draw_uuid_random_bits(random_fill_fn primary);
/// The kernel's CSPRNG (getrandom(2)), as a random_fill_fn.
int fill_from_kernel(unsigned char* buf, int len);
}  // namespace detail

}  // namespace opendms
