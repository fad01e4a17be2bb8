// .env parsing by phpdotenv 5's rules; see opendms/config/dotenv.hpp for the grammar.
//
// The text is normalised first (BOM dropped, CRLF and lone CR turned into LF), then read
// entry by entry. A double-quoted value may run over several lines, so the value reader
// works on the whole text and reports where the entry ended.
#include "opendms/config/dotenv.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace opendms::config {
namespace {

constexpr const char* process_origin = "process environment";

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

bool is_key_start(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

bool is_key_char(char c) {
    return is_key_start(c) || (c >= '0' && c <= '9') || c == '.';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (is_blank(s.front()) || s.front() == '\n')) s.remove_prefix(1);
    while (!s.empty() && (is_blank(s.back()) || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

bool valid_key(std::string_view k) {
    if (k.empty() || !is_key_start(k.front())) return false;
    for (char c : k) {
        if (!is_key_char(c)) return false;
    }
    return true;
}

/// phpdotenv resolves ${NAME} with the same name rule as keys, minus the first-letter one.
bool valid_reference(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name) {
        if (!is_key_char(c)) return false;
    }
    return true;
}

std::string normalize(std::string_view text) {
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\r') {
            out += text[i];
        } else if (i + 1 >= text.size() || text[i + 1] != '\n') {
            out += '\n';  // a lone CR ends a line too, as in phpdotenv
        }
    }
    return out;
}

/// A short, printable excerpt for messages. Used only on key-like text: values never
/// appear in messages, as they may be secrets.
std::string excerpt(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 32)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > 32) out += "...";
    return out;
}

status line_error(int line, const std::string& what) {
    return status(errc::invalid_argument, "line " + std::to_string(line) + ": " + what);
}

/// Reads one .env text. `pos_` always sits at the start of a line between entries.
class reader {
public:
    reader(std::string text, const std::map<std::string, std::string>& process_env)
        : text_(std::move(text)), env_(process_env) {}

    result<std::vector<dotenv_entry>> run() {
        while (pos_ < text_.size()) {
            if (status s = next_line(); !s) return s;
        }
        return std::move(entries_);
    }

private:
    struct value_out {
        std::string text;
        bool quoted = false;
    };

    std::size_t end_of_line(std::size_t from) const {
        std::size_t eol = text_.find('\n', from);
        return eol == std::string::npos ? text_.size() : eol;
    }

    void skip_line(std::size_t eol) {
        pos_ = eol + 1;
        ++line_;
    }

    status next_line() {
        std::size_t eol = end_of_line(pos_);
        std::string_view line(text_.data() + pos_, eol - pos_);
        std::string_view t = trim(line);
        if (t.empty() || t.front() == '#') {
            skip_line(eol);
            return status::ok();
        }
        std::size_t eq = line.find('=');
        if (eq == std::string_view::npos) {
            std::string_view word = t.substr(0, t.find_first_of(" \t"));
            return line_error(line_, "no '=' after '" + excerpt(word) + "'; write KEY=value");
        }
        result<std::string> key = parse_key(line.substr(0, eq));
        if (!key) return key.error();
        int first_line = line_;
        result<value_out> value = parse_value(pos_ + eq + 1, *key);
        if (!value) return value.error();
        known_[*key] = value->text;
        entries_.push_back({std::move(*key), std::move(value->text), value->quoted, first_line});
        return status::ok();
    }

    result<std::string> parse_key(std::string_view raw) const {
        std::string_view k = trim(raw);
        if (k.empty()) return line_error(line_, "'=' without a key before it; write KEY=value");
        if (k.size() > 7 && k.substr(0, 6) == "export" && is_blank(k[6])) k = trim(k.substr(7));
        if (k.size() >= 3 && (k.front() == '"' || k.front() == '\'') && k.back() == k.front()) {
            k = k.substr(1, k.size() - 2);
        }
        if (!valid_key(k)) {
            return line_error(line_, "invalid key name '" + excerpt(k) +
                                         "'; use letters, digits, '_' and '.', starting with a "
                                         "letter or '_'");
        }
        return std::string(k);
    }

    /// Reads the value that starts at `p` (just after '='); leaves pos_ on the next line.
    result<value_out> parse_value(std::size_t p, const std::string& key) {
        std::size_t eol = end_of_line(p);
        while (p < eol && is_blank(text_[p])) ++p;
        value_out out;
        if (p == eol || text_[p] == '#') {
            skip_line(eol);
            return out;
        }
        char first = text_[p];
        out.quoted = first == '\'' || first == '"';
        status s = first == '\''  ? single_quoted(p, key, out.text)
                   : first == '"' ? double_quoted(p, key, out.text)
                                  : unquoted(p, key, out.text);
        if (!s) return s;
        return out;
    }

    status unquoted(std::size_t p, const std::string& key, std::string& out) {
        std::size_t eol = end_of_line(p);
        while (p < eol && text_[p] != '#') {
            if (is_blank(text_[p])) {
                std::size_t q = p;
                while (q < eol && is_blank(text_[q])) ++q;
                if (q == eol || text_[q] == '#') break;
                return line_error(line_, "whitespace inside the unquoted value of " + key +
                                             "; put the value in double quotes");
            }
            if (text_[p] == '$') {
                p = expand(p, eol, out);
            } else {
                out += text_[p++];
            }
        }
        skip_line(eol);
        return status::ok();
    }

    status single_quoted(std::size_t open, const std::string& key, std::string& out) {
        std::size_t eol = end_of_line(open);
        std::size_t close = text_.find('\'', open + 1);
        if (close == std::string::npos || close > eol) {
            return line_error(line_, "unterminated single quote in " + key +
                                         "; close it on the same line (only double-quoted "
                                         "values may span lines)");
        }
        out.assign(text_, open + 1, close - open - 1);
        return after_closing_quote(close + 1, key);
    }

    status double_quoted(std::size_t open, const std::string& key, std::string& out) {
        int open_line = line_;
        std::size_t p = open + 1;
        while (true) {
            if (p >= text_.size()) {
                return line_error(open_line,
                                  "unterminated double quote in " + key + "; add the closing '\"'");
            }
            char c = text_[p];
            if (c == '"') return after_closing_quote(p + 1, key);
            if (c == '\n') ++line_;
            if (c == '\\') {
                if (status s = escape(p + 1, key, out); !s) return s;
                p += 2;
            } else if (c == '$') {
                p = expand(p, text_.size(), out, true);
            } else {
                out += c;
                ++p;
            }
        }
    }

    status escape(std::size_t p, const std::string& key, std::string& out) const {
        char c = p < text_.size() ? text_[p] : '\n';
        // Escape letters and what they stand for, by position.
        constexpr std::string_view letters = "\"\\$nrtfv";
        constexpr std::string_view meanings = "\"\\$\n\r\t\f\v";
        if (std::size_t i = letters.find(c); i != std::string_view::npos) {
            out += meanings[i];
            return status::ok();
        }
        std::string shown = c == '\n' ? "a backslash at the end of a line"
                                      : "'\\" + excerpt(std::string_view(&c, 1)) + "'";
        return line_error(line_, "unknown escape sequence (" + shown + ") in " + key +
                                     "; write \\\\ for a backslash, or use single quotes");
    }

    /// After a closing quote only blanks or a comment may follow.
    status after_closing_quote(std::size_t p, const std::string& key) {
        std::size_t eol = end_of_line(p);
        while (p < eol && is_blank(text_[p])) ++p;
        if (p < eol && text_[p] != '#') {
            return line_error(line_, "unexpected text after the closing quote of " + key +
                                         "; put it inside the quotes, or start a comment "
                                         "with '#'");
        }
        skip_line(eol);
        return status::ok();
    }

    /// At a '$': appends the expansion of ${NAME}, or the '$' itself when no reference
    /// follows. Returns the position after what was consumed.
    std::size_t expand(std::size_t p, std::size_t limit, std::string& out,
                       bool in_double_quotes = false) const {
        if (p + 1 >= limit || text_[p + 1] != '{') {
            out += '$';
            return p + 1;
        }
        std::size_t q = p + 2;
        auto stops = [&](char c) {
            return c == '\n' || c == '$' ||
                   (in_double_quotes ? c == '"' || c == '\\' : is_blank(c) || c == '#');
        };
        while (q < limit && text_[q] != '}' && !stops(text_[q])) ++q;
        if (q >= limit || text_[q] != '}') {
            out += '$';
            return p + 1;
        }
        std::string_view name(text_.data() + p + 2, q - p - 2);
        if (valid_reference(name)) out += lookup(std::string(name));
        return q + 1;
    }

    std::string lookup(const std::string& name) const {
        if (auto it = env_.find(name); it != env_.end()) return it->second;
        if (auto it = known_.find(name); it != known_.end()) return it->second;
        return {};
    }

    std::string text_;
    const std::map<std::string, std::string>& env_;
    std::map<std::string, std::string> known_;  // earlier entries, for ${NAME}
    std::vector<dotenv_entry> entries_;
    std::size_t pos_ = 0;
    int line_ = 1;
};

enum class read_outcome { ok, missing, failed };

read_outcome read_file(const std::string& path, std::string& out, std::string& error) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        error = std::strerror(errno);
        return errno == ENOENT ? read_outcome::missing : read_outcome::failed;
    }
    char buf[8192];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    bool failed = std::ferror(f) != 0;
    if (failed) error = std::strerror(errno);
    std::fclose(f);
    return failed ? read_outcome::failed : read_outcome::ok;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
        if (x != b[i]) return false;
    }
    return true;
}

}  // namespace

result<std::vector<dotenv_entry>> parse_dotenv(
    std::string_view text, const std::map<std::string, std::string>& process_env) {
    return reader(normalize(text), process_env).run();
}

env_map env_map::from(const std::vector<dotenv_entry>& entries,
                      const std::map<std::string, std::string>& process_env) {
    env_map m;
    for (const dotenv_entry& e : entries) {
        m.items_[e.key] = item{e.value, e.quoted, "line " + std::to_string(e.line)};
    }
    for (const auto& [key, value] : process_env) m.items_[key] = item{value, false, process_origin};
    return m;
}

result<env_map> env_map::load(const std::string& path, bool required,
                              const std::map<std::string, std::string>& process_env) {
    std::string text;
    std::string error;
    switch (read_file(path, text, error)) {
        case read_outcome::missing:
            if (required) return status(errc::not_found, "dotenv.load: " + path + ": " + error);
            return from({}, process_env);
        case read_outcome::failed:
            return status(errc::io_error, "dotenv.load: " + path + ": " + error);
        case read_outcome::ok:
            break;
    }
    result<std::vector<dotenv_entry>> entries = parse_dotenv(text, process_env);
    if (!entries) return entries.error().context("dotenv.load: " + path);
    env_map m = from(*entries, process_env);
    m.file_ = path;
    for (auto& entry : m.items_) {
        if (entry.second.origin != process_origin) {
            entry.second.origin = path + " " + entry.second.origin;
        }
    }
    return m;
}

std::optional<std::string> env_map::get(const std::string& key) const {
    auto it = items_.find(key);
    if (it == items_.end()) return std::nullopt;
    const item& i = it->second;
    if (i.quoted) return i.value;
    if (iequals(i.value, "null") || iequals(i.value, "(null)")) return std::nullopt;
    if (iequals(i.value, "empty") || iequals(i.value, "(empty)")) return std::string();
    // Laravel's env() also strips one pair of matching quotes (seen in process variables).
    const std::string& v = i.value;
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
        return v.substr(1, v.size() - 2);
    }
    return v;
}

std::optional<std::string> env_map::get_non_empty(const std::string& key) const {
    std::optional<std::string> v = get(key);
    if (v && v->empty()) return std::nullopt;
    return v;
}

std::string env_map::origin(const std::string& key) const {
    auto it = items_.find(key);
    return it == items_.end() ? "default" : it->second.origin;
}

std::map<std::string, std::string> process_environment() {
    std::map<std::string, std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string_view kv(*e);
        std::size_t eq = kv.find('=');
        if (eq == std::string_view::npos || eq == 0) continue;
        // emplace keeps the first of duplicate names, as getenv() does.
        env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
    return env;
}

}  // namespace opendms::config
