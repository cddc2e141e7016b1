// Writing a file atomically: the bytes go to a temp file in the target's folder, which is flushed,
// fsynced and renamed over the target, then the folder is fsynced. A reader sees the old file or
// the complete new one, never a partial write; a failure before the rename leaves the old target
// untouched. A symbolic link is followed (the file it names is replaced; the link stays); a device,
// FIFO or socket is written in place instead (there is nothing to replace, and replacing
// /dev/null by a regular file would break the machine).
#ifndef DIFFCL_IO_ATOMIC_FILE_H
#define DIFFCL_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "diffcl/status.h"

// One write in progress. Zero-initialise, then open; end with commit or abort (both may be called
// on a zeroed or already finished struct, and abort after a failed commit is harmless).
typedef struct dcl_atomic_file {
    FILE *f;           // The temp file; write to it between open and commit.
    char *path;        // The target, symbolic links resolved.
    char *tmp_path;    // "<path>.tmp-<pid>-<n>" (the name cut to fit NAME_MAX), created with
                       // O_EXCL in the same folder; NULL when direct.
    int failed;        // Set by dcl__atomic_file_write on a failed write; commit then fails.
    int direct;        // The target is a device, FIFO or socket, written in place (no rename).
    uint64_t written;  // Bytes written so far.
    uint64_t expected; // Bytes the whole file will take, when the writer said (reserve); 0 if not.
} dcl_atomic_file;

// Creates the temp file next to path (after following symbolic links), first removing temp files
// of the same target left by processes that no longer exist. The new file keeps the permission
// bits of an existing regular target, or gets 0666 minus the umask (applied by open, so the
// process umask is never changed). A device, FIFO or socket at path (or a link to one, such as
// /dev/stdout) is opened for writing in place; a FIFO blocks until it has a reader. DCL_ERR_IO
// names the path and strerror on failure.
dcl_status dcl__atomic_file_open(dcl_atomic_file *af, const char *path);
// Says the whole file will take `bytes` and reserves them on the disk where the file system can
// (Linux fallocate), so a full disk fails before anything is written. DCL_ERR_IO on a full disk
// or quota, with the bytes needed and available; the caller then aborts. Optional: every
// ENOSPC message says the bytes needed (or "at least" what was written so far without it).
dcl_status dcl__atomic_file_reserve(dcl_atomic_file *af, uint64_t bytes);
// Writes n bytes to the temp file; DCL_ERR_IO (naming the target) on a short write.
dcl_status dcl__atomic_file_write(dcl_atomic_file *af, const void *data, size_t n);
// fflush, fsync, close, rename over the target, fsync the folder. A failure up to the rename
// removes the temp file and leaves the old target untouched; a failure to sync the folder after
// the rename is still DCL_ERR_IO (the new file is in place but may not survive a power loss).
// DCL_ERR_IO names the path and strerror.
dcl_status dcl__atomic_file_commit(dcl_atomic_file *af);
// Closes and removes the temp file, leaving the target as it was.
void dcl__atomic_file_abort(dcl_atomic_file *af);

// The whole sequence for bytes already in memory.
dcl_status dcl__atomic_write(const char *path, const void *data, size_t n);

#endif
