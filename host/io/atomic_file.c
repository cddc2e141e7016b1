// Atomic file writes: an O_EXCL temp file in the target's folder, write, fflush + fsync, rename over
// the target, fsync the folder. Failures remove the temp file and leave the old target as it was.
//
// Why each step (POSIX rename(2) and fsync(2)): rename replaces the target so that every reader
// sees either the old file or the new one, but only within one file system (across two it fails
// with EXDEV, and copying instead would not be atomic), hence a temp file in the target's own
// folder. The fsync before the rename makes the new bytes durable first; without it a crash can
// leave the new name on a file whose data never reached the disk. The rename itself is a change to
// the folder, durable only once the folder is fsynced.
//
// What is not a regular file is never replaced: a symbolic link is followed to the file it names
// (that file is replaced, the link stays), and a device, FIFO or socket (/dev/null, /dev/stdout) is
// written in place, as a shell's `>` would. Temp files of processes that no longer exist (killed
// during a write) are removed when the same target is written again.
#define _GNU_SOURCE // fallocate's FALLOC_FL_KEEP_SIZE (Linux); everything else is POSIX.1-2008

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/error.h" // dcl__fail
#include "io/atomic_file.h"

// Room for ".tmp-<pid>-<n>" and the NUL.
#define TMP_SUFFIX_MAX 48
// Symbolic links followed before giving up (Linux's own limit, MAXSYMLINKS, is 40).
#define MAX_LINKS 40

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

// Fails with DCL_ERR_IO, naming what was being done to which path and the errno text.
static dcl_status io_fail(const char *what, const char *path, int err) {
    return dcl__fail(DCL_ERR_IO, "%s %s: %s", what, path, strerror(err));
}

// The folder of path ("." for a bare name, "/" for "/x"), malloc'ed.
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return dup_string(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (dir) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return dir;
}

// As io_fail; a full disk or quota also says how many bytes the file needs and how many the file
// system has left.
static dcl_status write_fail(const dcl_atomic_file *af, const char *what, int err) {
    if (err != ENOSPC && err != EDQUOT) return io_fail(what, af->path, err);
    char *dir = folder_of(af->path);
    struct statvfs vfs;
    unsigned long long avail = 0;
    int known = dir && statvfs(dir, &vfs) == 0;
    if (known) avail = (unsigned long long)vfs.f_bavail * (unsigned long long)vfs.f_frsize;
    // What the temp file already holds is freed when it is removed: it counts as available.
    struct stat st;
    if (known && af->f && !af->direct && fstat(fileno(af->f), &st) == 0)
        avail += (unsigned long long)st.st_blocks * 512u;
    free(dir);
    uint64_t need = af->expected > af->written ? af->expected : af->written;
    char have[64] = "";
    if (known) snprintf(have, sizeof have, ", %llu available", avail);
    return dcl__fail(DCL_ERR_IO, "%s %s: %s (%s%" PRIu64 " bytes needed%s)", what, af->path,
                     strerror(err), af->expected ? "" : "at least ", need, have);
}

static void release(dcl_atomic_file *af) {
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

void dcl__atomic_file_abort(dcl_atomic_file *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp_path) remove(af->tmp_path);
    release(af);
}

// Makes the rename durable. Some file systems cannot fsync a folder (EINVAL); the rename itself
// has happened, so only a real I/O error is reported.
static dcl_status sync_folder(const char *path) {
    char *dir = folder_of(path);
    if (!dir) return dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path);
    dcl_status s = DCL_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        s = io_fail("opening the folder of", path, errno);
    } else {
        if (fsync(fd) != 0 && errno != EINVAL) s = io_fail("syncing the folder of", path, errno);
        close(fd);
    }
    free(dir);
    return s;
}

// The file a chain of symbolic links at path ends at (malloc'ed; path itself when it is not a
// link, including when nothing exists there). A relative link is relative to its own folder. NULL
// with *err set when a link cannot be read or the chain is longer than MAX_LINKS.
static char *resolve_links(const char *path, int *err) {
    char *cur = dup_string(path);
    for (int hops = 0; cur; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
        char target[PATH_MAX];
        ssize_t n = hops < MAX_LINKS ? readlink(cur, target, sizeof target - 1) : -1;
        if (n < 0) {
            *err = hops < MAX_LINKS ? errno : ELOOP;
            free(cur);
            return NULL;
        }
        target[n] = '\0';
        const char *slash = strrchr(cur, '/');
        size_t keep = target[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = malloc(keep + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, keep);
            memcpy(next + keep, target, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    *err = ENOMEM;
    return NULL;
}

// The longest file name the folder of path accepts (NAME_MAX, usually 255).
static size_t name_max(const char *path) {
    char *dir = folder_of(path);
    long v = dir ? pathconf(dir, _PC_NAME_MAX) : -1;
    free(dir);
    return v > 0 ? (size_t)v : 255;
}

// Whether entry is a temp file of the target whose name (last component) is base: "base" or, when
// that was too long, a prefix of it that fills max bytes, then ".tmp-<pid>-<n>". Sets *pid.
static int is_temp_of(const char *entry, const char *base, size_t max, long *pid) {
    const char *dot = strstr(entry, ".tmp-");
    for (const char *next = dot; next; next = strstr(dot + 1, ".tmp-")) dot = next;
    if (!dot) return 0;
    size_t plen = (size_t)(dot - entry), blen = strlen(base);
    int whole = plen == blen, cut = plen < blen && strlen(entry) == max;
    if (!(whole || cut) || memcmp(entry, base, plen) != 0) return 0;
    char *end;
    errno = 0;
    *pid = strtol(dot + 5, &end, 10);
    if (errno || end == dot + 5 || *end != '-' || *pid <= 0) return 0;
    const char *n = end + 1;
    strtoul(n, &end, 10);
    return end != n && *end == '\0' && *n >= '0' && *n <= '9';
}

// Removes temp files of path left by processes that no longer exist (kill -9 during a write).
// A temp file of a live process, or one of this process, is left alone. Best effort: failures
// are ignored (the write itself does not depend on it).
static void clean_stale(const char *path, size_t max) {
    char *dir = folder_of(path);
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    DIR *d = dir ? opendir(dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        long pid;
        if (!is_temp_of(e->d_name, base, max, &pid) || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; // alive (or not ours to judge)
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d) closedir(d);
    free(dir);
}

// Creates a new temp file "<path>.tmp-<pid>-<n>" with O_EXCL, so an existing file (a stale temp
// of a killed process whose pid came back) is never reused. When the name would be longer than
// the folder allows, the target's name is cut so that it fits. open applies the umask to 0666
// itself; mkstemp would create 0600, and reading the umask means setting it, which races with
// other threads of the process.
static int create_temp(dcl_atomic_file *af, size_t max) {
    static atomic_uint counter;
    const char *slash = strrchr(af->path, '/');
    size_t at = slash ? (size_t)(slash - af->path) + 1 : 0, blen = strlen(af->path) - at;
    int fd = -1;
    for (int attempt = 0; attempt < 1000; attempt++) {
        unsigned k = atomic_fetch_add(&counter, 1u);
        char suffix[TMP_SUFFIX_MAX];
        int sn = snprintf(suffix, sizeof suffix, ".tmp-%ld-%u", (long)getpid(), k);
        size_t keep = blen + (size_t)sn <= max ? blen : max > (size_t)sn ? max - (size_t)sn : 0;
        memcpy(af->tmp_path, af->path, at + keep);
        memcpy(af->tmp_path + at + keep, suffix, (size_t)sn + 1);
        fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) break;
    }
    return fd;
}

// A device, FIFO or socket at path: opened for writing in place (blocking, as a shell's `>`
// would, until a FIFO has a reader).
static dcl_status open_direct(dcl_atomic_file *af, const char *path) {
    af->path = dup_string(path);
    if (!af->path) return dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path);
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        dcl_status s = io_fail("cannot open", path, errno);
        release(af);
        return s;
    }
    if (fstat(fd, &st) != 0 || S_ISREG(st.st_mode) || !(af->f = fdopen(fd, "wb"))) {
        // Became a regular file since the stat: written in place it could be left half-written.
        dcl_status s = io_fail("cannot open", path, S_ISREG(st.st_mode) ? EAGAIN : errno);
        close(fd);
        release(af);
        return s;
    }
    af->direct = 1;
    return DCL_OK;
}

dcl_status dcl__atomic_file_open(dcl_atomic_file *af, const char *path) {
    if (!af) return dcl__fail(DCL_ERR_ARG, "atomic write: no file struct given");
    memset(af, 0, sizeof *af);
    if (!path || !*path) return dcl__fail(DCL_ERR_ARG, "atomic write: no path given");
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return open_direct(af, path);
    int err = 0;
    af->path = resolve_links(path, &err);
    if (!af->path) {
        dcl_status s = err == ENOMEM ? dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path)
                                     : io_fail("cannot follow the link", path, err);
        release(af);
        return s;
    }
    size_t n = strlen(af->path);
    af->tmp_path = n < SIZE_MAX - TMP_SUFFIX_MAX ? malloc(n + TMP_SUFFIX_MAX) : NULL;
    if (!af->tmp_path) {
        release(af);
        return dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path);
    }
    size_t max = name_max(af->path);
    clean_stale(af->path, max);
    int fd = create_temp(af, max);
    if (fd < 0) {
        dcl_status s = io_fail("cannot create a temp file for", af->path, errno);
        free(af->tmp_path), af->tmp_path = NULL; // nothing was created
        release(af);
        return s;
    }
    // Keep an existing target's permission bits; a new file keeps what open gave it.
    if (stat(af->path, &st) == 0 && S_ISREG(st.st_mode) && fchmod(fd, st.st_mode & 0777) != 0) {
        dcl_status s = io_fail("cannot set the mode of the temp file for", af->path, errno);
        close(fd);
        dcl__atomic_file_abort(af);
        return s;
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        dcl_status s = io_fail("cannot open the temp file for", af->path, errno);
        close(fd);
        dcl__atomic_file_abort(af);
        return s;
    }
    return DCL_OK;
}

dcl_status dcl__atomic_file_reserve(dcl_atomic_file *af, uint64_t bytes) {
    if (!af || !af->f) return dcl__fail(DCL_ERR_ARG, "atomic write: file is not open");
    af->expected = bytes;
    if (af->direct || bytes == 0 || bytes > (uint64_t)INT64_MAX) return DCL_OK;
#ifdef __linux__
    // FALLOC_FL_KEEP_SIZE: the blocks are reserved but the file stays as long as what is written.
    if (fallocate(fileno(af->f), FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) != 0 &&
        (errno == ENOSPC || errno == EDQUOT)) {
        af->failed = 1;
        return write_fail(af, "writing", errno);
    }
#endif
    return DCL_OK;
}

dcl_status dcl__atomic_file_write(dcl_atomic_file *af, const void *data, size_t n) {
    if (!af || !af->f) return dcl__fail(DCL_ERR_ARG, "atomic write: file is not open");
    if (af->failed) return DCL_ERR_IO; // the first failure's message stays
    if (n && !data) return dcl__fail(DCL_ERR_ARG, "atomic write to %s: no data", af->path);
    errno = 0; // so a short write without errno is not blamed on an older error
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = 1;
        af->written += n;
        return write_fail(af, "writing", errno ? errno : EIO);
    }
    af->written += n;
    return DCL_OK;
}

// Whether fsync's error only says that this kind of file cannot be synced (a device, a FIFO).
static int unsyncable(int err) { return err == EINVAL || err == EROFS || err == ENOTSUP; }

dcl_status dcl__atomic_file_commit(dcl_atomic_file *af) {
    if (!af || !af->f) return dcl__fail(DCL_ERR_ARG, "atomic write: file is not open");
    if (af->failed) {
        dcl__atomic_file_abort(af);
        return DCL_ERR_IO; // dcl__atomic_file_write recorded the message
    }
    dcl_status s = DCL_OK;
    errno = 0;
    if (fflush(af->f) != 0 || ferror(af->f)) {
        s = write_fail(af, "writing", errno ? errno : EIO);
    } else if (!af->direct && af->expected > af->written &&
               ftruncate(fileno(af->f), (off_t)af->written) != 0) {
        s = write_fail(af, "writing", errno); // frees blocks reserved beyond what was written
    } else if (fsync(fileno(af->f)) != 0 && !(af->direct && unsyncable(errno))) {
        s = write_fail(af, "syncing", errno);
    }
    FILE *f = af->f;
    af->f = NULL;
    errno = 0;
    if (fclose(f) != 0 && s == DCL_OK) s = write_fail(af, "closing", errno ? errno : EIO);
    if (af->direct) {
        release(af);
        return s;
    }
    if (s == DCL_OK && rename(af->tmp_path, af->path) != 0) {
        s = io_fail("cannot replace", af->path, errno);
    }
    if (s != DCL_OK) {
        dcl__atomic_file_abort(af);
        return s;
    }
    s = sync_folder(af->path);
    release(af);
    return s;
}

dcl_status dcl__atomic_write(const char *path, const void *data, size_t n) {
    dcl_atomic_file af = {0};
    dcl_status s = dcl__atomic_file_open(&af, path);
    if (s != DCL_OK) return s;
    s = dcl__atomic_file_reserve(&af, n);
    if (s == DCL_OK) s = dcl__atomic_file_write(&af, data, n);
    if (s != DCL_OK) {
        dcl__atomic_file_abort(&af);
        return s;
    }
    return dcl__atomic_file_commit(&af);
}
