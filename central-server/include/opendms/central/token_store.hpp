// token_store: who may ingest. The seed's shared token (CENTRAL_DMS_TOKEN) and/or per-node
// tokens (CENTRAL_DMS_TOKENS_FILE), re-read on SIGHUP.
//
// Tokens file, one node per line; blank lines and lines starting with '#' are ignored:
//     <node-name> sha256:<64 lower-case hex digits of SHA-256(token)>
// node-name is [A-Za-z0-9._-]{1,64} and unique in the file. Only hashes are stored, so the
// file does not reveal tokens; tokens are long random strings (`opendms-central token:new`
// makes one), so a fast hash is enough. A request authenticated by CENTRAL_DMS_TOKEN is
// attributed to the node name "default".
//
// authenticate() compares SHA-256 digests with CRYPTO_memcmp against every entry, never
// stopping early, so its time does not depend on where or whether the token matches.
// The header is "Authorization: Bearer <token>" (the scheme case-insensitive, one or more
// spaces; the token is everything after them, and must not be empty).
//
// Thread safety: authenticate() and load() may run concurrently from any threads; load()
// swaps in the new table atomically (a shared_ptr under a mutex). A failed load() keeps
// the previous table (a typo in the file never locks every node out).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/status.hpp"

namespace opendms::central {

struct token_entry {
    std::string node;         // node name
    std::string sha256_hex;   // 64 lower-case hex digits
};

/// "sha256:" + lower-case hex SHA-256 of the token.
std::string token_hash(std::string_view token);

/// Parses a tokens file's text. errc::invalid_argument naming the line number and what is
/// wrong ("line 3: duplicate node name 'n1'"); nothing partial is returned.
result<std::vector<token_entry>> parse_tokens_file(std::string_view text);

/// A new random token (32 bytes from OpenSSL's RAND_bytes, base64url without padding).
std::string new_token();

enum class auth_outcome {
    not_configured,   // neither a shared token nor a tokens file: 503 (the seed's answer)
    unauthenticated,  // missing, malformed or wrong: 401
    ok,
};

struct auth_result {
    auth_outcome outcome = auth_outcome::unauthenticated;
    std::string node;  // set when ok: the tokens file's node name, or "default"
};

class token_store {
public:
    /// shared_token: CENTRAL_DMS_TOKEN (nullopt or empty: none). tokens_file: a path, or
    /// empty for none. Call load() before the first authenticate().
    token_store(std::optional<std::string> shared_token, std::string tokens_file);

    /// (Re)reads the tokens file (ok at once when there is none). On failure the previous
    /// table stays in use and the status names the file and the problem.
    status load();

    /// Checks an Authorization header value (empty when the header is absent).
    auth_result authenticate(std::string_view authorization) const;

    /// Number of per-node entries currently loaded.
    std::size_t node_count() const;

private:
    std::optional<std::string> shared_sha256_;  // raw 32-byte digest of the shared token
    std::string tokens_file_;
    mutable std::mutex mutex_;
    std::shared_ptr<const std::vector<token_entry>> table_;
};

}  // namespace opendms::central
