// .env parsing by phpdotenv 5's rules, and the env_map that settings read from.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "opendms/config/dotenv.hpp"

using opendms::errc;
using opendms::config::dotenv_entry;
using opendms::config::env_map;
using opendms::config::parse_dotenv;
using env_vars = std::map<std::string, std::string>;

namespace {

std::vector<dotenv_entry> parse_ok(const std::string& text, const env_vars& env = {}) {
    auto r = parse_dotenv(text, env);
    INFO(r.error().to_string());
    REQUIRE(r.is_ok());
    return *r;
}

/// The last value of each key, as a loader would keep it.
env_vars values_of(const std::string& text, const env_vars& env = {}) {
    env_vars out;
    for (const dotenv_entry& e : parse_ok(text, env)) out[e.key] = e.value;
    return out;
}

std::string value_of(const std::string& text, const std::string& key = "A",
                     const env_vars& env = {}) {
    env_vars v = values_of(text, env);
    REQUIRE(v.count(key) == 1);
    return v[key];
}

std::string parse_error(const std::string& text) {
    auto r = parse_dotenv(text);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.error().code() == errc::invalid_argument);
    return r.error().message();
}

/// A scratch directory under the system temp dir, removed at the end of the test.
struct scratch_dir {
    std::filesystem::path path;
    scratch_dir() {
        path = std::filesystem::temp_directory_path() /
               ("opendms_dotenv_test_" + std::to_string(::getpid()));
        std::filesystem::create_directories(path);
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        std::ofstream(path / name, std::ios::binary) << text;
        return (path / name).string();
    }
};

}  // namespace

TEST_CASE("a plain KEY=value entry keeps its key, value and line", "[unit]") {
    auto entries = parse_ok("APP_NAME=opendms\n");
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].key == "APP_NAME");
    CHECK(entries[0].value == "opendms");
    CHECK_FALSE(entries[0].quoted);
    CHECK(entries[0].line == 1);
}

TEST_CASE("values are read as phpdotenv 5 reads them", "[unit]") {
    struct row {
        const char* text;
        const char* expected;
    };
    const row rows[] = {
        {"A=b", "b"},
        {"A = b  ", "b"},
        {"   A=b", "b"},
        {"\tA\t=\tb", "b"},
        {"export A=b", "b"},
        {"export\tA=b", "b"},
        {"\"A\"=b", "b"},
        {"A=a=b", "a=b"},
        {"A=b # a comment", "b"},
        {"A=b#c", "b"},
        {"A=#only a comment", ""},
        {"A= # only a comment", ""},
        {"A='x y # z'", "x y # z"},
        {"A=\"x y # z\"", "x y # z"},
        {"A=\"q\" # comment", "q"},
        {"A='q'#comment", "q"},
        {"A='a\\nb'", "a\\nb"},
        {"A=\"a\\nb\"", "a\nb"},
        {"A=\"a\\tb\"", "a\tb"},
        {"A=\"a\\rb\"", "a\rb"},
        {"A=\"a\\fb\"", "a\fb"},
        {"A=\"a\\vb\"", "a\vb"},
        {"A=\"say \\\"hi\\\"\"", "say \"hi\""},
        {"A=\"back\\\\slash\"", "back\\slash"},
        {"A=\"cost \\$5\"", "cost $5"},
        {"A=\"it's\"", "it's"},
        {"A='say \"hi\"'", "say \"hi\""},
        {"A=\\q", "\\q"},
        {"A=a\"b", "a\"b"},
        {"A=$", "$"},
        {"A=a$b", "a$b"},
        {"A=${", "${"},
        {"A=", ""},
        {"A=   ", ""},
        {"A=\"\"", ""},
        {"A=''", ""},
        {"A.B_c9=x", nullptr},
    };
    for (const row& r : rows) {
        INFO(r.text);
        if (r.expected == nullptr) {
            CHECK(value_of(r.text, "A.B_c9") == "x");
        } else {
            CHECK(value_of(r.text) == r.expected);
        }
    }
}

TEST_CASE("whole-line comments and blank lines are skipped but counted", "[unit]") {
    auto entries = parse_ok("# header\n\n   # indented comment\nA=1\n\n#B=2\nC=3\n");
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].key == "A");
    CHECK(entries[0].line == 4);
    CHECK(entries[1].key == "C");
    CHECK(entries[1].line == 7);
}

TEST_CASE("a double-quoted value spans lines and keeps its line breaks", "[unit]") {
    auto entries =
        parse_ok("KEY=\"-----BEGIN-----\nabc\n# not a comment\n-----END-----\"\nNEXT=1\n");
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].value == "-----BEGIN-----\nabc\n# not a comment\n-----END-----");
    CHECK(entries[0].line == 1);
    CHECK(entries[1].key == "NEXT");
    CHECK(entries[1].line == 5);
}

TEST_CASE("CRLF line endings read like LF, inside multi-line values too", "[unit]") {
    auto entries = parse_ok("A=1\r\nB=\"x\r\ny\"\r\nC='z' # c\r\n");
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].value == "1");
    CHECK(entries[1].value == "x\ny");
    CHECK(entries[2].value == "z");
    CHECK(entries[2].line == 4);
}

TEST_CASE("a lone CR ends a line, as in phpdotenv", "[unit]") {
    env_vars v = values_of("A=1\rB=2\r");
    CHECK(v["A"] == "1");
    CHECK(v["B"] == "2");
}

TEST_CASE("a UTF-8 BOM at the start is not part of the first key", "[unit]") {
    auto entries = parse_ok(
        "\xEF\xBB\xBF"
        "APP_KEY=x\nB=y\n");
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].key == "APP_KEY");
    CHECK(entries[0].line == 1);
}

TEST_CASE("${VAR} expands earlier keys in unquoted and double-quoted values", "[unit]") {
    env_vars v = values_of(
        "HOST=db.local\nPORT=5432\nURL=pg://${HOST}:${PORT}/x\n"
        "QUOTED=\"at ${HOST} now\"\n");
    CHECK(v["URL"] == "pg://db.local:5432/x");
    CHECK(v["QUOTED"] == "at db.local now");
}

TEST_CASE("${VAR} takes the process environment before earlier keys", "[unit]") {
    env_vars env{{"HOST", "from-env"}, {"ONLY_ENV", "e"}};
    env_vars v = values_of("HOST=from-file\nA=${HOST}\nB=\"${ONLY_ENV}!\"\n", env);
    CHECK(v["A"] == "from-env");
    CHECK(v["B"] == "e!");
}

TEST_CASE("single quotes and escaped dollars do not expand", "[unit]") {
    env_vars env{{"X", "expanded"}};
    CHECK(value_of("A='${X}'", "A", env) == "${X}");
    CHECK(value_of("A=\"\\${X}\"", "A", env) == "${X}");
}

TEST_CASE("unknown or non-phpdotenv references expand to empty text", "[unit]") {
    CHECK(value_of("A=x${NOPE}y") == "xy");
    CHECK(value_of("A=\"${NOPE:-default}\"") == "");
    CHECK(value_of("A=${LATER}\nLATER=1") == "");  // no forward references
}

TEST_CASE("$VAR without braces and an unclosed ${ stay literal", "[unit]") {
    env_vars env{{"X", "expanded"}};
    CHECK(value_of("A=$X", "A", env) == "$X");
    CHECK(value_of("A=\"${X\"", "A", env) == "${X");
}

TEST_CASE("an expanded value is not expanded again", "[unit]") {
    env_vars env{{"X", "${Y}"}, {"Y", "deep"}};
    CHECK(value_of("A=${X}", "A", env) == "${Y}");
}

TEST_CASE("a later duplicate key wins", "[unit]") {
    auto entries = parse_ok("A=first\nA=second\n");
    REQUIRE(entries.size() == 2);
    env_map m = env_map::from(entries, {});
    CHECK(m.get("A") == std::optional<std::string>("second"));
    CHECK(m.origin("A") == "line 2");
}

TEST_CASE("entries record whether the value was quoted", "[unit]") {
    auto entries = parse_ok("A=x\nB='x'\nC=\"x\"\nD=\n");
    REQUIRE(entries.size() == 4);
    CHECK_FALSE(entries[0].quoted);
    CHECK(entries[1].quoted);
    CHECK(entries[2].quoted);
    CHECK_FALSE(entries[3].quoted);
}

TEST_CASE("every malformed line is an error naming its line and the problem", "[unit]") {
    struct row {
        const char* text;
        int line;
        const char* fragment;
    };
    const row rows[] = {
        {"A=1\nNOEQUALS\n", 2, "no '='"},
        {"A=1\n=value\n", 2, "without a key"},
        {"1A=x", 1, "invalid key name '1A'"},
        {"A-B=x", 1, "invalid key name 'A-B'"},
        {"MY KEY=x", 1, "invalid key name"},
        {"A\xC3\xA9=x", 1, "invalid key name"},
        {"A=1\nB='abc\nC=2\n", 2, "unterminated single quote in B"},
        {"A=1\n\nB=\"abc\nC=2\n", 3, "unterminated double quote in B"},
        {"A=\"x\" junk", 1, "after the closing quote of A"},
        {"A='x'junk", 1, "after the closing quote of A"},
        {"A=b c", 1, "whitespace inside the unquoted value of A"},
        {"A=\"\\q\"", 1, "unknown escape sequence ('\\q') in A"},
        {"X=1\n\nA=\"line\n\\q\"", 4, "unknown escape sequence"},
        {"A=\"ends with \\\nx\"", 1, "backslash at the end of a line"},
    };
    for (const row& r : rows) {
        INFO(r.text);
        std::string message = parse_error(r.text);
        CHECK(message.rfind("line " + std::to_string(r.line) + ": ", 0) == 0);
        CHECK(message.find(r.fragment) != std::string::npos);
    }
}

TEST_CASE("error messages never repeat a value, which may be a secret", "[unit]") {
    for (const char* text : {"DB_PASSWORD=hunter2 more", "DB_PASSWORD='hunter2'more",
                             "DB_PASSWORD=\"hunter2", "DB_PASSWORD=\"hunter2\\q\""}) {
        INFO(text);
        std::string message = parse_error(text);
        CHECK(message.find("DB_PASSWORD") != std::string::npos);
        CHECK(message.find("hunter2") == std::string::npos);
    }
}

TEST_CASE("get applies Laravel's null and empty mapping to unquoted values", "[unit]") {
    auto entries = parse_ok(
        "N1=null\nN2=NULL\nN3=(null)\nN4=Null\nE1=empty\nE2=(EMPTY)\n"
        "QN='null'\nQE=\"empty\"\nT=true\nF=(false)\nBLANK=\n");
    env_map m = env_map::from(entries, {});
    for (const char* key : {"N1", "N2", "N3", "N4"}) {
        INFO(key);
        CHECK_FALSE(m.get(key).has_value());
        CHECK(m.origin(key) != "default");  // set in the file, read as unset
    }
    CHECK(m.get("E1") == std::optional<std::string>(""));
    CHECK(m.get("E2") == std::optional<std::string>(""));
    CHECK(m.get("QN") == std::optional<std::string>("null"));
    CHECK(m.get("QE") == std::optional<std::string>("empty"));
    CHECK(m.get("T") == std::optional<std::string>("true"));  // booleans stay text
    CHECK(m.get("F") == std::optional<std::string>("(false)"));
    CHECK(m.get("BLANK") == std::optional<std::string>(""));
    CHECK_FALSE(m.get("MISSING").has_value());
}

TEST_CASE("get_non_empty treats an empty value as unset", "[unit]") {
    env_map m = env_map::from(parse_ok("A=\nB=empty\nC=x\n"), {});
    CHECK_FALSE(m.get_non_empty("A").has_value());
    CHECK_FALSE(m.get_non_empty("B").has_value());
    CHECK(m.get_non_empty("C") == std::optional<std::string>("x"));
}

TEST_CASE("the process environment overrides the file, even with an empty value", "[unit]") {
    auto entries = parse_ok("A=file\nB=file\nC=file\n");
    env_map m = env_map::from(entries, {{"A", "env"}, {"B", ""}, {"D", "null"}});
    CHECK(m.get("A") == std::optional<std::string>("env"));
    CHECK(m.get("B") == std::optional<std::string>(""));
    CHECK(m.get("C") == std::optional<std::string>("file"));
    CHECK_FALSE(m.get("D").has_value());  // env() maps null from the environment too
    CHECK(m.origin("A") == "process environment");
    CHECK(m.origin("C") == "line 3");
    CHECK(m.origin("NOT_SET") == "default");
}

TEST_CASE("a process variable in matching quotes loses them, as in Laravel's env()", "[unit]") {
    env_map m = env_map::from({}, {{"A", "'quoted'"}, {"B", "\"x\""}, {"C", "'half"}});
    CHECK(m.get("A") == std::optional<std::string>("quoted"));
    CHECK(m.get("B") == std::optional<std::string>("x"));
    CHECK(m.get("C") == std::optional<std::string>("'half"));
}

TEST_CASE("load reads a file and names it in each origin", "[unit]") {
    scratch_dir dir;
    std::string path = dir.write(".env", "# c\nDB_CONNECTION=pgsql\nDB_HOST=file-host\n");
    auto m = env_map::load(path, true, {{"DB_HOST", "env-host"}});
    INFO(m.error().to_string());
    REQUIRE(m.is_ok());
    CHECK(m->file() == path);
    CHECK(m->get("DB_CONNECTION") == std::optional<std::string>("pgsql"));
    CHECK(m->origin("DB_CONNECTION") == path + " line 2");
    CHECK(m->get("DB_HOST") == std::optional<std::string>("env-host"));
    CHECK(m->origin("DB_HOST") == "process environment");
}

TEST_CASE("load of a missing optional file gives the process environment alone", "[unit]") {
    scratch_dir dir;
    auto m = env_map::load((dir.path / "absent.env").string(), false, {{"A", "1"}});
    REQUIRE(m.is_ok());
    CHECK(m->file().empty());
    CHECK(m->get("A") == std::optional<std::string>("1"));
}

TEST_CASE("load of a missing required file is not_found and names the file", "[unit]") {
    scratch_dir dir;
    std::string path = (dir.path / "absent.env").string();
    auto m = env_map::load(path, true, {});
    REQUIRE_FALSE(m.is_ok());
    CHECK(m.error().code() == errc::not_found);
    CHECK(m.error().message().find(path) != std::string::npos);
}

TEST_CASE("load of a malformed file names the file and the line", "[unit]") {
    scratch_dir dir;
    std::string path = dir.write("bad.env", "A=1\nB=2\nC=\"open\n");
    auto m = env_map::load(path, false, {});
    REQUIRE_FALSE(m.is_ok());
    CHECK(m.error().code() == errc::invalid_argument);
    CHECK(m.error().message().find(path + ": line 3: ") != std::string::npos);
}

TEST_CASE("load of a directory is an I/O error, even when the file is optional", "[unit]") {
    scratch_dir dir;
    auto m = env_map::load(dir.path.string(), false, {});
    REQUIRE_FALSE(m.is_ok());
    CHECK(m.error().code() == errc::io_error);
    CHECK(m.error().message().find(dir.path.string()) != std::string::npos);
}

TEST_CASE("process_environment reads environ, keeping '=' inside values", "[unit]") {
    REQUIRE(::setenv("OPENDMS_DOTENV_TEST_VAR", "a=b=c", 1) == 0);
    auto env = opendms::config::process_environment();
    ::unsetenv("OPENDMS_DOTENV_TEST_VAR");
    REQUIRE(env.count("OPENDMS_DOTENV_TEST_VAR") == 1);
    CHECK(env["OPENDMS_DOTENV_TEST_VAR"] == "a=b=c");
    CHECK(opendms::config::process_environment().count("OPENDMS_DOTENV_TEST_VAR") == 0);
}
