// powercut_vfs: a power cut, emulated below SQLite. A VFS shim over SQLite's "unix" VFS
// that remembers, for every file, what each write since the file's last xSync overwrote
// (an undo log) and how long the file was at that sync. cut() then puts every file back
// to its state at its last sync (and deletes the -shm files, which are volatile memory):
// what a disk that loses its write cache would hold. From the cut on, the shim drops
// every write and sync, so the connection can be closed without touching the files.
//
// Limits (stated in docs/reliability.md): directory entries are taken as durable (a file
// created and never synced keeps its synced size, 0); sectors are never torn; the disk
// keeps the order of synced writes.
//
// Use: install() registers it as SQLite's default VFS (so db::open uses it); uninstall()
// restores the previous default. One instance at a time; not thread-safe beyond what
// SQLite's own locking gives (tests use one connection on one thread).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace opendms::test {

class powercut_vfs {
public:
    powercut_vfs();
    ~powercut_vfs();  // uninstall()
    powercut_vfs(const powercut_vfs&) = delete;
    powercut_vfs& operator=(const powercut_vfs&) = delete;

    void install();
    void uninstall();

    /// The power cut: files back to their last synced state; writes dropped from now on.
    void cut();
    bool is_cut() const { return cut_; }

    /// xSync calls that reached the disk so far (any file).
    std::uint64_t syncs() const;

    struct file_state;  // per path: undo log and synced size (internal)

private:
    bool installed_ = false;
    bool cut_ = false;
};

}  // namespace opendms::test
