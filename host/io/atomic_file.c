// Atomic file writes: an O_EXCL temp file in the target's folder, write, fflush + fsync, rename over
// the target, fsync the folder. Failures remove the temp file and leave the old target as it was.
//
// Why each step (POSIX rename(2) and fsync(2)): rename replaces the target so that every reader
// sees either the old file or the new one, but only within one file system (across two it fails
// with EXDEV, and copying instead would not be atomic), hence a temp file in the target's own
// folder. The fsync before the rename makes the new bytes durable first; without it a crash can
// leave the new name on a file whose data never reached the disk. The rename itself is a change to
// the folder, durable only once the folder is fsynced.
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h" // dcl__fail
#include "io/atomic_file.h"

// Room for ".tmp-<pid>-<n>" and the NUL.
#define TMP_SUFFIX_MAX 48

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

static void release(dcl_atomic_file *af) {
    free(af->path);
    free(af->tmp_path);
    af->f = NULL;
    af->path = NULL;
    af->tmp_path = NULL;
    af->failed = 0;
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
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = dup_string(".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path); // "/x" lives in "/"
        dir = malloc(n + 1);
        if (dir) {
            memcpy(dir, path, n);
            dir[n] = '\0';
        }
    }
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

// Creates a new temp file "<path>.tmp-<pid>-<n>" with O_EXCL, so an existing file (a stale temp
// of a killed process whose pid came back) is never reused. open applies the umask to 0666 itself;
// mkstemp would create 0600, and reading the umask means setting it, which races with other
// threads of the process.
static int create_temp(dcl_atomic_file *af, size_t path_len) {
    static atomic_uint counter;
    int fd = -1;
    for (int attempt = 0; attempt < 1000; attempt++) {
        unsigned k = atomic_fetch_add(&counter, 1u);
        snprintf(af->tmp_path + path_len, TMP_SUFFIX_MAX, ".tmp-%ld-%u", (long)getpid(), k);
        fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) break;
    }
    return fd;
}

dcl_status dcl__atomic_file_open(dcl_atomic_file *af, const char *path) {
    if (!af) return dcl__fail(DCL_ERR_ARG, "atomic write: no file struct given");
    memset(af, 0, sizeof *af);
    if (!path || !*path) return dcl__fail(DCL_ERR_ARG, "atomic write: no path given");
    size_t n = strlen(path);
    af->path = dup_string(path);
    af->tmp_path = n < SIZE_MAX - TMP_SUFFIX_MAX ? malloc(n + TMP_SUFFIX_MAX) : NULL;
    if (!af->path || !af->tmp_path) {
        release(af);
        return dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path);
    }
    memcpy(af->tmp_path, path, n);

    int fd = create_temp(af, n);
    if (fd < 0) {
        dcl_status s = io_fail("cannot create a temp file for", path, errno);
        release(af); // nothing was created
        return s;
    }
    // Keep an existing target's permission bits; a new file keeps what open gave it.
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && fchmod(fd, st.st_mode & 0777) != 0) {
        dcl_status s = io_fail("cannot set the mode of the temp file for", path, errno);
        close(fd);
        dcl__atomic_file_abort(af);
        return s;
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        dcl_status s = io_fail("cannot open the temp file for", path, errno);
        close(fd);
        dcl__atomic_file_abort(af);
        return s;
    }
    return DCL_OK;
}

dcl_status dcl__atomic_file_write(dcl_atomic_file *af, const void *data, size_t n) {
    if (!af || !af->f) return dcl__fail(DCL_ERR_ARG, "atomic write: file is not open");
    if (af->failed) return DCL_ERR_IO; // the first failure's message stays
    if (n && !data) return dcl__fail(DCL_ERR_ARG, "atomic write to %s: no data", af->path);
    errno = 0; // so a short write without errno is not blamed on an older error
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = 1;
        return io_fail("writing", af->path, errno ? errno : EIO);
    }
    return DCL_OK;
}

dcl_status dcl__atomic_file_commit(dcl_atomic_file *af) {
    if (!af || !af->f) return dcl__fail(DCL_ERR_ARG, "atomic write: file is not open");
    if (af->failed) {
        dcl__atomic_file_abort(af);
        return DCL_ERR_IO; // dcl__atomic_file_write recorded the message
    }
    dcl_status s = DCL_OK;
    errno = 0;
    if (fflush(af->f) != 0 || ferror(af->f)) {
        s = io_fail("writing", af->path, errno ? errno : EIO);
    } else if (fsync(fileno(af->f)) != 0) {
        s = io_fail("syncing", af->path, errno);
    }
    FILE *f = af->f;
    af->f = NULL;
    errno = 0;
    if (fclose(f) != 0 && s == DCL_OK) s = io_fail("closing", af->path, errno ? errno : EIO);
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
    s = dcl__atomic_file_write(&af, data, n);
    if (s != DCL_OK) {
        dcl__atomic_file_abort(&af);
        return s;
    }
    return dcl__atomic_file_commit(&af);
}
