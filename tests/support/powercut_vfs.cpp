#include "powercut_vfs.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace opendms::test {

struct powercut_vfs::file_state {
    struct undo {
        sqlite3_int64 offset;
        std::string old_bytes;
    };
    std::vector<undo> log;         // since the last sync, oldest first
    sqlite3_int64 synced_size = 0;
};

namespace {

// The one active shim (SQLite's VFS callbacks carry no user pointer for files).
std::mutex g_mutex;
std::map<std::string, powercut_vfs::file_state> g_files;
std::atomic<bool> g_cut{false};
std::atomic<std::uint64_t> g_syncs{0};
sqlite3_vfs* g_real = nullptr;
sqlite3_vfs g_vfs{};

struct pc_file {
    sqlite3_file base;
    sqlite3_file* real;  // follows this struct in the same allocation
    std::string* path;   // nullptr for files without a name (temp files): not tracked
};

pc_file* self(sqlite3_file* f) { return reinterpret_cast<pc_file*>(f); }

sqlite3_int64 real_size(sqlite3_file* real) {
    sqlite3_int64 size = 0;
    if (real->pMethods->xFileSize(real, &size) != SQLITE_OK) return 0;
    return size;
}

/// Saves what [offset, offset + n) holds now within the synced part of the file.
void remember(pc_file* f, sqlite3_int64 offset, sqlite3_int64 n) {
    if (f->path == nullptr) return;
    std::lock_guard<std::mutex> lock(g_mutex);
    powercut_vfs::file_state& st = g_files[*f->path];
    const sqlite3_int64 end = std::min(offset + n, st.synced_size);
    if (offset >= end) return;
    std::string old(static_cast<std::size_t>(end - offset), '\0');
    const int rc = f->real->pMethods->xRead(f->real, old.data(), static_cast<int>(old.size()), offset);
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) return;
    st.log.push_back({offset, std::move(old)});
}

int pc_close(sqlite3_file* f) {
    pc_file* p = self(f);
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    delete p->path;
    p->path = nullptr;
    return rc;
}
int pc_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
    return self(f)->real->pMethods->xRead(self(f)->real, buf, n, off);
}
int pc_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
    if (g_cut.load()) return SQLITE_OK;  // the power is off: nothing reaches the disk
    remember(self(f), off, n);
    return self(f)->real->pMethods->xWrite(self(f)->real, buf, n, off);
}
int pc_truncate(sqlite3_file* f, sqlite3_int64 size) {
    if (g_cut.load()) return SQLITE_OK;
    pc_file* p = self(f);
    remember(p, size, real_size(p->real) - size);
    return p->real->pMethods->xTruncate(p->real, size);
}
int pc_sync(sqlite3_file* f, int flags) {
    if (g_cut.load()) return SQLITE_OK;
    pc_file* p = self(f);
    int rc = p->real->pMethods->xSync(p->real, flags);
    if (rc == SQLITE_OK && p->path != nullptr) {
        std::lock_guard<std::mutex> lock(g_mutex);
        powercut_vfs::file_state& st = g_files[*p->path];
        st.log.clear();
        st.synced_size = real_size(p->real);
        g_syncs.fetch_add(1);
    }
    return rc;
}
int pc_file_size(sqlite3_file* f, sqlite3_int64* size) {
    return self(f)->real->pMethods->xFileSize(self(f)->real, size);
}
int pc_lock(sqlite3_file* f, int l) { return self(f)->real->pMethods->xLock(self(f)->real, l); }
int pc_unlock(sqlite3_file* f, int l) { return self(f)->real->pMethods->xUnlock(self(f)->real, l); }
int pc_check_reserved(sqlite3_file* f, int* out) {
    return self(f)->real->pMethods->xCheckReservedLock(self(f)->real, out);
}
int pc_file_control(sqlite3_file* f, int op, void* arg) {
    return self(f)->real->pMethods->xFileControl(self(f)->real, op, arg);
}
int pc_sector_size(sqlite3_file* f) { return self(f)->real->pMethods->xSectorSize(self(f)->real); }
int pc_device(sqlite3_file* f) {
    return self(f)->real->pMethods->xDeviceCharacteristics(self(f)->real);
}
int pc_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
    return self(f)->real->pMethods->xShmMap(self(f)->real, page, size, extend, out);
}
int pc_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
    return self(f)->real->pMethods->xShmLock(self(f)->real, offset, n, flags);
}
void pc_shm_barrier(sqlite3_file* f) { self(f)->real->pMethods->xShmBarrier(self(f)->real); }
int pc_shm_unmap(sqlite3_file* f, int delete_flag) {
    return self(f)->real->pMethods->xShmUnmap(self(f)->real, delete_flag);
}
int pc_fetch(sqlite3_file*, sqlite3_int64, int, void** pp) {
    *pp = nullptr;  // no memory-mapped reads: every read goes through xRead
    return SQLITE_OK;
}
int pc_unfetch(sqlite3_file*, sqlite3_int64, void*) { return SQLITE_OK; }

const sqlite3_io_methods g_methods = {
    3,           pc_close,      pc_read,      pc_write,         pc_truncate,    pc_sync,
    pc_file_size, pc_lock,      pc_unlock,    pc_check_reserved, pc_file_control, pc_sector_size,
    pc_device,   pc_shm_map,    pc_shm_lock,  pc_shm_barrier,   pc_shm_unmap,   pc_fetch,
    pc_unfetch,
};

int pc_open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
    pc_file* p = self(f);
    p->real = reinterpret_cast<sqlite3_file*>(p + 1);
    p->path = nullptr;
    std::memset(p->real, 0, static_cast<std::size_t>(g_real->szOsFile));
    int rc = g_real->xOpen(g_real, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        p->base.pMethods = nullptr;
        return rc;
    }
    p->base.pMethods = &g_methods;
    if (name != nullptr) {
        p->path = new std::string(name);
        std::lock_guard<std::mutex> lock(g_mutex);
        if (g_files.find(name) == g_files.end()) {
            g_files[name].synced_size = real_size(p->real);  // what exists is durable
        }
    }
    return SQLITE_OK;
}

int pc_delete(sqlite3_vfs*, const char* name, int sync_dir) {
    if (g_cut.load()) return SQLITE_OK;
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_files.erase(name);
    }
    return g_real->xDelete(g_real, name, sync_dir);
}
int pc_access(sqlite3_vfs*, const char* name, int flags, int* out) {
    return g_real->xAccess(g_real, name, flags, out);
}
int pc_full_pathname(sqlite3_vfs*, const char* name, int n, char* out) {
    return g_real->xFullPathname(g_real, name, n, out);
}
void* pc_dlopen(sqlite3_vfs*, const char* f) { return g_real->xDlOpen(g_real, f); }
void pc_dlerror(sqlite3_vfs*, int n, char* out) { g_real->xDlError(g_real, n, out); }
void (*pc_dlsym(sqlite3_vfs*, void* h, const char* s))(void) { return g_real->xDlSym(g_real, h, s); }
void pc_dlclose(sqlite3_vfs*, void* h) { g_real->xDlClose(g_real, h); }
int pc_randomness(sqlite3_vfs*, int n, char* out) { return g_real->xRandomness(g_real, n, out); }
int pc_sleep(sqlite3_vfs*, int us) { return g_real->xSleep(g_real, us); }
int pc_current_time(sqlite3_vfs*, double* t) { return g_real->xCurrentTime(g_real, t); }
int pc_last_error(sqlite3_vfs*, int n, char* out) { return g_real->xGetLastError(g_real, n, out); }
int pc_current_time64(sqlite3_vfs*, sqlite3_int64* t) { return g_real->xCurrentTimeInt64(g_real, t); }

void restore_file(const std::string& path, const powercut_vfs::file_state& st) {
    int fd = ::open(path.c_str(), O_WRONLY);
    if (fd < 0) return;
    for (auto it = st.log.rbegin(); it != st.log.rend(); ++it) {
        (void)::pwrite(fd, it->old_bytes.data(), it->old_bytes.size(), static_cast<off_t>(it->offset));
    }
    (void)::ftruncate(fd, static_cast<off_t>(st.synced_size));
    ::close(fd);
}

}  // namespace

powercut_vfs::powercut_vfs() = default;

powercut_vfs::~powercut_vfs() { uninstall(); }

void powercut_vfs::install() {
    if (installed_) return;
    g_real = sqlite3_vfs_find("unix");
    if (g_real == nullptr) throw std::runtime_error("powercut_vfs: no unix VFS");
    g_files.clear();
    g_cut.store(false);
    g_syncs.store(0);
    g_vfs = sqlite3_vfs{};
    g_vfs.iVersion = 2;
    g_vfs.szOsFile = static_cast<int>(sizeof(pc_file)) + g_real->szOsFile;
    g_vfs.mxPathname = g_real->mxPathname;
    g_vfs.zName = "powercut";
    g_vfs.xOpen = pc_open;
    g_vfs.xDelete = pc_delete;
    g_vfs.xAccess = pc_access;
    g_vfs.xFullPathname = pc_full_pathname;
    g_vfs.xDlOpen = pc_dlopen;
    g_vfs.xDlError = pc_dlerror;
    g_vfs.xDlSym = pc_dlsym;
    g_vfs.xDlClose = pc_dlclose;
    g_vfs.xRandomness = pc_randomness;
    g_vfs.xSleep = pc_sleep;
    g_vfs.xCurrentTime = pc_current_time;
    g_vfs.xGetLastError = pc_last_error;
    g_vfs.xCurrentTimeInt64 = pc_current_time64;
    if (sqlite3_vfs_register(&g_vfs, 1) != SQLITE_OK) throw std::runtime_error("powercut_vfs: register");
    installed_ = true;
    cut_ = false;
}

void powercut_vfs::uninstall() {
    if (!installed_) return;
    sqlite3_vfs_unregister(&g_vfs);
    sqlite3_vfs_register(g_real, 1);
    installed_ = false;
}

void powercut_vfs::cut() {
    g_cut.store(true);
    cut_ = true;
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& [path, st] : g_files) {
        restore_file(path, st);
        // The WAL index is shared memory (the unix VFS maps "<db>-shm" itself): it does not
        // survive a power cut; SQLite rebuilds it from the WAL on the next open.
        ::unlink((path + "-shm").c_str());
    }
}

std::uint64_t powercut_vfs::syncs() const { return g_syncs.load(); }

}  // namespace opendms::test
