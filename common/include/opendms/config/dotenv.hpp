// .env files, read by Laravel's rules (vlucas/phpdotenv 5, as Laravel 11 uses it).
//
//   KEY=value            unquoted: trimmed; " #" starts a comment; ${VAR} expanded.
//                        As in phpdotenv 5, any `#` in an unquoted value starts the
//                        comment (`A=b#c` is "b") and inner whitespace is an error
//                        (`A=b c`): quote such values.
//   export KEY=value     the `export ` prefix is ignored
//   KEY='literal'        single quotes: taken as is, no escapes, no expansion
//   KEY="a\n${B}"        double quotes: \" \\ \n \r \t \f \v \$ escapes, ${VAR} expanded,
//                        may span lines
//   KEY=                 an empty string (set, but empty)
//   # comment            whole-line comment; blank lines ignored
//
// ${VAR} takes the process environment first (it overrides the file, as in Laravel),
// then keys defined earlier in the file; an unknown name expands to "". `${VAR:-default}`
// is not phpdotenv syntax and is treated as an unknown name.
//
// Laravel's env() also maps some literal values; env_map::get applies that mapping:
// `null`/`(null)` -> unset, `empty`/`(empty)` -> "" (case-insensitive, unquoted only).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "opendms/status.hpp"

namespace opendms::config {

struct dotenv_entry {
    std::string key;
    std::string value;
    bool quoted = false;  // value was written in quotes (no null/empty mapping then)
    int line = 0;         // 1-based line where the entry starts
};

/// Parses the text of a .env file. `lookup` resolves ${VAR} before earlier entries
/// (pass the process environment). On a malformed line, returns errc::invalid_argument
/// with "line N: <what is wrong>".
result<std::vector<dotenv_entry>> parse_dotenv(
    std::string_view text,
    const std::map<std::string, std::string>& process_env = {});

/// The merged view that settings are read from: the file's entries overlaid by the
/// process environment (which always wins).
class env_map {
public:
    env_map() = default;

    /// Reads `path` (a missing file is an error only when `required`) and overlays
    /// `process_env`. Errors name the file and line.
    static result<env_map> load(const std::string& path, bool required,
                                const std::map<std::string, std::string>& process_env);

    /// From entries and an environment, no file (tests).
    static env_map from(const std::vector<dotenv_entry>& entries,
                        const std::map<std::string, std::string>& process_env);

    /// The value after Laravel's mapping; nullopt when unset or "null".
    std::optional<std::string> get(const std::string& key) const;
    /// Like get(), but an empty string also counts as unset.
    std::optional<std::string> get_non_empty(const std::string& key) const;

    /// Where a key's value came from: "process environment", ".env line 12", or "default".
    std::string origin(const std::string& key) const;

    /// The file that was read, empty when none.
    const std::string& file() const { return file_; }

private:
    struct item {
        std::string value;
        bool quoted = false;
        std::string origin;
    };
    std::map<std::string, item> items_;
    std::string file_;
};

/// The current process environment as a map (environ).
std::map<std::string, std::string> process_environment();

}  // namespace opendms::config
