// The database driver modules: a program on SQLite never maps libpq or Connector/C; the
// PostgreSQL and MySQL drivers are loaded when asked for, and a missing or foreign module
// is refused with an error that names DB_CONNECTION, the file and the fix.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include "../../common/src/db/drivers.hpp"
#include "opendms/db/database.hpp"

namespace {

using opendms::db::detail::load_driver_module;
using Catch::Matchers::Contains;

std::string own_maps() {
    std::ifstream in("/proc/self/maps");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

// First in the file: ctest runs each test case in a process of its own, and run together
// the cases go in this order, so nothing has loaded a driver yet.
TEST_CASE("libpq and Connector/C are mapped only once their driver is loaded", "[unit]") {
#ifndef OPENDMS_DRIVER_LIBS_PRELOADED  // the ASan build links them (common/CMakeLists.txt)
    const std::string before = own_maps();
    CHECK(before.find("libpq.so") == std::string::npos);
    CHECK(before.find("libmariadb.so") == std::string::npos);
    // An SQLite database does not load them either.
    opendms::db::connect_options sqlite;
    sqlite.kind = opendms::db::dialect::sqlite;
    sqlite.database = ":memory:";
    REQUIRE(opendms::db::open(sqlite));
    CHECK(own_maps().find("libpq.so") == std::string::npos);
#endif

    auto pgsql = load_driver_module("libopendms_db_pgsql.so", "pgsql");
    INFO((pgsql ? "" : pgsql.error().to_string()));
    REQUIRE(pgsql);
    CHECK(std::string((*pgsql)->version) == OPENDMS_VERSION);
    CHECK(own_maps().find("libpq.so") != std::string::npos);
#ifndef OPENDMS_DRIVER_LIBS_PRELOADED
    CHECK(own_maps().find("libmariadb.so") == std::string::npos);
#endif

    auto mysql = load_driver_module("libopendms_db_mysql.so", "mysql");
    INFO((mysql ? "" : mysql.error().to_string()));
    REQUIRE(mysql);
    CHECK(own_maps().find("libmariadb.so") != std::string::npos);
}

TEST_CASE("a driver module that is not there is refused with DB_CONNECTION, the file and the fix",
          "[unit]") {
    auto r = load_driver_module("libopendms_db_nosuch.so", "pgsql");
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Contains("DB_CONNECTION=pgsql") &&
                                        Contains("libopendms_db_nosuch.so") &&
                                        Contains("could not be loaded") &&
                                        Contains("reinstall the package"));
}

TEST_CASE("a library that is not the driver asked for is refused", "[unit]") {
    // A real shared library without the entry point.
    auto z = load_driver_module("libz.so.1", "pgsql");
    REQUIRE_FALSE(z);
    CHECK_THAT(z.error().message(), Contains("not an OpenDMS pgsql driver") &&
                                        Contains("opendms_db_driver_pgsql"));
    // The other driver: the MySQL module has no PostgreSQL entry point.
    auto wrong = load_driver_module("libopendms_db_mysql.so", "pgsql");
    REQUIRE_FALSE(wrong);
    CHECK_THAT(wrong.error().message(), Contains("not an OpenDMS pgsql driver"));
}

TEST_CASE("db::open reaches the PostgreSQL driver through its module", "[unit]") {
    // Nothing listens on port 1: the error comes from libpq inside the module, so the
    // module was found, checked and called.
    opendms::db::connect_options o;
    o.kind = opendms::db::dialect::pgsql;
    o.host = "127.0.0.1";
    o.port = 1;
    o.database = "none";
    o.username = "none";
    o.connect_timeout_s = 2;
    auto c = opendms::db::open(o);
    REQUIRE_FALSE(c);
    CHECK_THAT(c.error().message(), Contains("pgsql.connect"));
    CHECK_THAT(c.error().message(), !Contains("driver module"));
}
