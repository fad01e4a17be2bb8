#include "opendms/central/token_store.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace opendms::central {

namespace {

using digest = std::array<unsigned char, 32>;

digest sha256(std::string_view data) {
    digest out{};
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &length, EVP_sha256(), nullptr) != 1 ||
        length != out.size())
        throw std::runtime_error("token_store: OpenSSL's SHA-256 failed");  // a broken library
    return out;
}

std::string hex(const digest& d) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(d.size() * 2);
    for (unsigned char b : d) {
        out += digits[b >> 4];
        out += digits[b & 0x0F];
    }
    return out;
}

bool is_space(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (is_space(s.front()) || s.front() == '\r')) s.remove_prefix(1);
    while (!s.empty() && (is_space(s.back()) || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// Splits a line into whitespace-separated words.
std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_space(line[i])) ++i;
        const std::size_t start = i;
        while (i < line.size() && !is_space(line[i])) ++i;
        if (i > start) out.push_back(line.substr(start, i - start));
    }
    return out;
}

bool valid_node_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

constexpr std::string_view hash_prefix = "sha256:";

bool valid_hash(std::string_view h) {
    if (h.size() != hash_prefix.size() + 64 || h.substr(0, hash_prefix.size()) != hash_prefix)
        return false;
    for (char c : h.substr(hash_prefix.size())) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

status line_error(std::size_t line, const std::string& what) {
    return status(errc::invalid_argument, "line " + std::to_string(line) + ": " + what);
}

// The token of "Bearer <token>", or empty when the header is not of that form.
std::string_view bearer_token(std::string_view header) {
    constexpr std::string_view scheme = "bearer";
    if (header.size() <= scheme.size()) return {};
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        char c = header[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != scheme[i]) return {};
    }
    header.remove_prefix(scheme.size());
    if (header.front() != ' ') return {};
    while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
    return header;
}

}  // namespace

std::string token_hash(std::string_view token) {
    return std::string(hash_prefix) + hex(sha256(token));
}

result<std::vector<token_entry>> parse_tokens_file(std::string_view text) {
    std::vector<token_entry> entries;
    std::map<std::string, std::size_t, std::less<>> node_line;
    std::map<std::string, std::size_t, std::less<>> hash_line;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const std::size_t end = text.find('\n');
        const std::string_view line = trim(text.substr(0, end));
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (line.empty() || line.front() == '#') continue;

        const auto w = words(line);
        if (w.size() != 2)
            return line_error(line_no, "expected '<node-name> sha256:<64 hex digits>'");
        const std::string node(w[0]);
        if (!valid_node_name(node)) {
            return line_error(line_no,
                              "invalid node name '" + node + "' (1 to 64 of A-Z a-z 0-9 . _ -)");
        }
        if (!valid_hash(w[1])) {
            return line_error(line_no, "the hash of '" + node +
                                           "' must be 'sha256:' and 64 lower-case hex digits");
        }
        if (const auto it = node_line.find(node); it != node_line.end()) {
            return line_error(line_no, "duplicate node name '" + node + "' (also on line " +
                                           std::to_string(it->second) + ")");
        }
        const std::string hash(w[1].substr(hash_prefix.size()));
        // One token for two nodes would make the sender ambiguous.
        if (const auto it = hash_line.find(hash); it != hash_line.end()) {
            return line_error(line_no, "node '" + node + "' has the same token as line " +
                                           std::to_string(it->second) +
                                           "; each node needs its own token");
        }
        node_line.emplace(node, line_no);
        hash_line.emplace(hash, line_no);
        entries.push_back(token_entry{node, hash});
    }
    return entries;
}

std::string new_token() {
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
        throw std::runtime_error("new_token: OpenSSL's RAND_bytes failed");
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t bits = 0;
    int held = 0;
    for (unsigned char b : bytes) {
        bits = (bits << 8) | b;
        held += 8;
        while (held >= 6) {
            held -= 6;
            out += alphabet[(bits >> held) & 0x3F];
        }
    }
    if (held > 0) out += alphabet[(bits << (6 - held)) & 0x3F];
    return out;
}

token_store::token_store(std::optional<std::string> shared_token, std::string tokens_file)
    : tokens_file_(std::move(tokens_file)) {
    if (shared_token && !shared_token->empty()) {
        const digest d = sha256(*shared_token);
        shared_sha256_.emplace(reinterpret_cast<const char*>(d.data()), d.size());
    }
}

status token_store::load() {
    if (tokens_file_.empty()) return status::ok();
    const std::string what = "token_store.load: " + tokens_file_;
    std::ifstream in(tokens_file_, std::ios::binary);
    if (!in) {
        const int err = errno;
        return status(err == ENOENT ? errc::not_found : errc::io_error,
                      what + ": cannot open: " + std::strerror(err));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return status(errc::io_error, what + ": read failed");
    auto parsed = parse_tokens_file(text.str());
    if (!parsed) return parsed.error().context(what);
    auto table = std::make_shared<const std::vector<token_entry>>(std::move(parsed).value());
    std::lock_guard<std::mutex> lock(mutex_);
    table_ = std::move(table);
    return status::ok();
}

auth_result token_store::authenticate(std::string_view authorization) const {
    std::shared_ptr<const std::vector<token_entry>> table;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        table = table_;
    }
    auth_result out;
    if (!shared_sha256_ && tokens_file_.empty()) {
        out.outcome = auth_outcome::not_configured;
        return out;
    }
    const std::string_view token = bearer_token(authorization);
    if (token.empty()) return out;

    // Every comparison runs, whatever matches, so timing says nothing about the tokens.
    const digest d = sha256(token);
    const std::string d_hex = hex(d);
    bool shared_match = false;
    if (shared_sha256_)
        shared_match = CRYPTO_memcmp(d.data(), shared_sha256_->data(), d.size()) == 0;
    const token_entry* node_match = nullptr;
    if (table) {
        for (const auto& entry : *table) {
            const bool equal =
                entry.sha256_hex.size() == d_hex.size() &&
                CRYPTO_memcmp(entry.sha256_hex.data(), d_hex.data(), d_hex.size()) == 0;
            if (equal) node_match = &entry;
        }
    }
    // A token in the file names its node even if it is also the shared one.
    if (node_match) {
        out.outcome = auth_outcome::ok;
        out.node = node_match->node;
    } else if (shared_match) {
        out.outcome = auth_outcome::ok;
        out.node = "default";
    }
    return out;
}

std::size_t token_store::node_count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return table_ ? table_->size() : 0;
}

}  // namespace opendms::central
