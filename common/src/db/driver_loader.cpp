// db::open(): SQLite is linked in; PostgreSQL and MySQL/MariaDB are driver modules loaded
// on first use (contract in drivers.hpp, layout in docs/architecture.md, "Database drivers").
#include <dlfcn.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "drivers.hpp"
#include "opendms/db/database.hpp"

namespace opendms::db {
namespace {

struct loaded_driver {
    std::once_flag once;
    result<const detail::driver_entry*> entry = status(errc::internal, "not loaded");
};

// The module's file name. The programs carry the directory in their RUNPATH: the build
// tree's lib/opendms when built, /usr/lib/opendms-field or /usr/lib/opendms-central when
// installed (CMakeLists.txt, deploy/packaging.cmake).
std::string module_file(const char* name) {
    return std::string("libopendms_db_") + name + ".so";
}

std::string last_dl_error() {
    const char* why = ::dlerror();
    return why ? why : "unknown error";
}

// dlopen() of a bare file name searches the RUNPATH of the object that calls it. Under
// ASan and TSan that caller is the sanitizer's runtime (it wraps dlopen), whose RUNPATH is
// not the program's, so the module is then looked for in the program's own search path
// (dlinfo(3) RTLD_DI_SERINFO: its RUNPATH with $ORIGIN expanded, then the system's).
void* open_on_search_path(const std::string& file, std::string& why) {
    // RTLD_NOW: a missing libpq symbol fails here, not in the middle of a query.
    constexpr int flags = RTLD_NOW | RTLD_LOCAL;
    if (void* handle = ::dlopen(file.c_str(), flags)) return handle;
    why = last_dl_error();
    void* self = ::dlopen(nullptr, RTLD_LAZY);
    Dl_serinfo size{};
    if (self == nullptr || ::dlinfo(self, RTLD_DI_SERINFOSIZE, &size) != 0) return nullptr;
    std::vector<std::max_align_t> storage(size.dls_size / sizeof(std::max_align_t) + 1);
    auto* info = reinterpret_cast<Dl_serinfo*>(storage.data());
    *info = size;
    if (::dlinfo(self, RTLD_DI_SERINFO, info) != 0) return nullptr;
    for (unsigned i = 0; i < info->dls_cnt; ++i) {
        const std::string path = std::string(info->dls_serpath[i].dls_name) + "/" + file;
        if (::access(path.c_str(), F_OK) != 0) continue;
        if (void* handle = ::dlopen(path.c_str(), flags)) return handle;
        why = last_dl_error();
    }
    return nullptr;
}

// The first call loads the module (once per process, whatever the outcome); every call
// then opens a connection through it or returns the load's error.
result<std::unique_ptr<connection>> open_module(loaded_driver& d, const connect_options& options,
                                                const char* name) {
    std::call_once(d.once, [&] { d.entry = detail::load_driver_module(module_file(name), name); });
    if (!d.entry) return d.entry.error();
    return (*d.entry)->open(options);
}

}  // namespace

namespace detail {

result<const driver_entry*> load_driver_module(const std::string& file, const char* name) {
    const std::string fix = "reinstall the package that ships it, or rebuild (deploy/build.sh)";
    auto fail = [&](const std::string& why) {
        return status(errc::invalid_argument, std::string("db.open: DB_CONNECTION=") + name +
                                                  " needs the driver module " + file + ", " + why +
                                                  ": " + fix);
    };
    std::string why;
    void* handle = open_on_search_path(file, why);
    if (handle == nullptr) return fail("which could not be loaded (" + why + ")");
    const std::string symbol = std::string("opendms_db_driver_") + name;
    void* found = ::dlsym(handle, symbol.c_str());
    if (found == nullptr) {
        return fail("but that file is not an OpenDMS " + std::string(name) + " driver (no " +
                    symbol + ")");
    }
    using entry_fn = const driver_entry* (*)();
    entry_fn get = nullptr;
    static_assert(sizeof(get) == sizeof(found));
    std::memcpy(&get, &found, sizeof(get));  // POSIX: object pointer to function pointer
    const driver_entry* e = get();
    if (e == nullptr || e->version == nullptr || std::strcmp(e->version, OPENDMS_VERSION) != 0 ||
        e->options_size != sizeof(connect_options) ||
        e->connection_size != sizeof(result<std::unique_ptr<connection>>) || e->open == nullptr) {
        return fail(std::string("but that file was built for another version of OpenDMS (") +
                    (e && e->version ? e->version : "?") + "; this program is " + OPENDMS_VERSION +
                    ")");
    }
    return e;
}

}  // namespace detail

result<std::unique_ptr<connection>> open(const connect_options& options) {
    switch (options.kind) {
        case dialect::sqlite:
            return detail::open_sqlite(options);
        case dialect::pgsql: {
            static loaded_driver pgsql;
            return open_module(pgsql, options, "pgsql");
        }
        case dialect::mysql: {
            static loaded_driver mysql;
            return open_module(mysql, options, "mysql");
        }
    }
    return status(errc::invalid_argument, "db.open: unknown dialect");
}

}  // namespace opendms::db
