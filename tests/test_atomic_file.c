// Atomic file writes: replacing a file leaves the old or the new one and no temp file; modes are
// kept; abort and failures leave the target alone; a process killed mid-write never leaves a
// partial target. Symbolic links are followed (the target replaced, the link kept); devices and
// FIFOs are written in place; stale temp files of dead processes are cleaned; names up to NAME_MAX
// work; a full disk (a small tmpfs, when this runs as root) fails with the bytes needed, leaving
// the old file byte-identical and no temp file.
#define _GNU_SOURCE // mknod, makedev, mount

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "io/atomic_file.h" // dcl__atomic_file_*, dcl__atomic_write

static char tmp_dir[512];

static void path_in(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmp_dir, name);
}

// Entries of tmp_dir other than . and ..; the first other than keep goes to *other.
static int dir_entries(const char *keep, char *other, size_t cap) {
    DIR *d = opendir(tmp_dir);
    int n = 0;
    if (other && cap) other[0] = '\0';
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        n++;
        if (other && !other[0] && (!keep || strcmp(e->d_name, keep))) {
            snprintf(other, cap, "%s", e->d_name);
        }
    }
    closedir(d);
    return n;
}

static void remove_all(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    char p[1024];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        path_in(p, sizeof p, e->d_name);
        if (remove(p) != 0) rmdir(p);
    }
    closedir(d);
}

// 1 when the file holds exactly want[0..n).
static int file_is(const char *path, const void *want, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char *b = malloc(n + 1);
    size_t got = b ? fread(b, 1, n + 1, f) : 0;
    fclose(f);
    int same = b && got == n && memcmp(b, want, n) == 0;
    free(b);
    return same;
}

static void test_replace(void) {
    char path[1024], other[256];
    path_in(path, sizeof path, "f.bin");
    mode_t mask = umask(022); // single-threaded test: reading the umask by setting it is fine
    umask(mask);

    CHECK_EQ(dcl__atomic_write(path, "old", 3), DCL_OK);
    CHECK(file_is(path, "old", 3));
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0666 & ~mask); // not mkstemp's 0600
    CHECK_EQ(dir_entries("f.bin", other, sizeof other), 1);

    // An existing file's mode is kept.
    CHECK_EQ(chmod(path, 0640), 0);
    CHECK_EQ(dcl__atomic_write(path, "new content", 11), DCL_OK);
    CHECK(file_is(path, "new content", 11));
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0640);
    CHECK_EQ(dir_entries("f.bin", other, sizeof other), 1);

    // Abort after writing: the target is unchanged and the temp file is gone.
    dcl_atomic_file af = {0};
    CHECK_EQ(dcl__atomic_file_open(&af, path), DCL_OK);
    CHECK_EQ(dcl__atomic_file_write(&af, "partial", 7), DCL_OK);
    CHECK_EQ(dir_entries("f.bin", other, sizeof other), 2); // the temp file, next to the target
    CHECK(strncmp(other, "f.bin.tmp-", 10) == 0);
    dcl__atomic_file_abort(&af);
    dcl__atomic_file_abort(&af); // harmless twice
    CHECK(file_is(path, "new content", 11));
    CHECK_EQ(dir_entries("f.bin", other, sizeof other), 1);

    // Streaming in pieces, then commit; a second commit is an argument error, abort harmless.
    CHECK_EQ(dcl__atomic_file_open(&af, path), DCL_OK);
    CHECK_EQ(dcl__atomic_file_write(&af, "ab", 2), DCL_OK);
    CHECK_EQ(dcl__atomic_file_write(&af, NULL, 0), DCL_OK);
    CHECK_EQ(dcl__atomic_file_write(&af, "cd", 2), DCL_OK);
    CHECK_EQ(dcl__atomic_file_write(&af, NULL, 5), DCL_ERR_ARG);
    CHECK_EQ(dcl__atomic_file_commit(&af), DCL_OK);
    CHECK(file_is(path, "abcd", 4));
    CHECK_EQ(dcl__atomic_file_commit(&af), DCL_ERR_ARG);
    dcl__atomic_file_abort(&af);
    CHECK_EQ(dir_entries("f.bin", other, sizeof other), 1);

    // Zero bytes.
    CHECK_EQ(dcl__atomic_write(path, NULL, 0), DCL_OK);
    CHECK(file_is(path, "", 0));

    // A zeroed struct may be aborted or committed (the latter fails cleanly).
    dcl_atomic_file zero = {0};
    dcl__atomic_file_abort(&zero);
    CHECK_EQ(dcl__atomic_file_commit(&zero), DCL_ERR_ARG);
    CHECK_EQ(dcl__atomic_file_open(&zero, ""), DCL_ERR_ARG);
    dcl__atomic_file_abort(&zero);
    remove_all();
}

static void test_failures(void) {
    char path[1024], other[256];

    // A missing folder: DCL_ERR_IO naming the path, nothing created.
    path_in(path, sizeof path, "missing/dir/f.bin");
    dcl_clear_error();
    CHECK_EQ(dcl__atomic_write(path, "x", 1), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), path) != NULL);
    printf("missing folder: %s\n", dcl_last_error());
    CHECK_EQ(dir_entries(NULL, NULL, 0), 0);

    // The target is a folder: the rename fails, the temp file is removed, the folder stays.
    path_in(path, sizeof path, "sub");
    CHECK_EQ(mkdir(path, 0700), 0);
    dcl_clear_error();
    CHECK_EQ(dcl__atomic_write(path, "x", 1), DCL_ERR_IO);
    printf("target is a folder: %s\n", dcl_last_error());
    CHECK_EQ(dir_entries("sub", other, sizeof other), 1);
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));

    // A folder without write permission (root ignores permissions: skipped then).
    if (geteuid() != 0) {
        char file[1100];
        snprintf(file, sizeof file, "%s/f.bin", path);
        CHECK_EQ(dcl__atomic_write(file, "old", 3), DCL_OK);
        CHECK_EQ(chmod(path, 0500), 0);
        CHECK_EQ(dcl__atomic_write(file, "new", 3), DCL_ERR_IO);
        printf("read-only folder: %s\n", dcl_last_error());
        CHECK(file_is(file, "old", 3));
        CHECK_EQ(chmod(path, 0700), 0);
        remove(file);
    }
    rmdir(path);
    remove_all();
}

// A child rewrites the target with two large contents in turn and is killed at a random moment:
// the target is always one of them, whole. Temp files of the killed child may remain (they carry
// its pid) and are the only other entries.
static void test_kill_mid_write(void) {
    char path[1024], other[256];
    path_in(path, sizeof path, "k.bin");
    const size_t n = 4 << 20;
    unsigned char *a = malloc(n), *b = malloc(n);
    CHECK(a && b);
    if (!a || !b) return;
    memset(a, 'A', n);
    memset(b, 'B', n);
    CHECK_EQ(dcl__atomic_write(path, a, n), DCL_OK);
    srand((unsigned)time(NULL));
    int rounds = 6, ok = 0, left = 0;
    for (int r = 0; r < rounds; r++) {
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            for (int i = 0;; i++) dcl__atomic_write(path, i % 2 ? a : b, n);
        }
        struct timespec ts = {0, (long)(5 + rand() % 60) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        ok += file_is(path, a, n) || file_is(path, b, n);
        int entries = dir_entries("k.bin", other, sizeof other);
        CHECK(entries == 1 || (entries == 2 && strncmp(other, "k.bin.tmp-", 10) == 0));
        if (entries == 2) {
            left++;
            char tmp[1024];
            path_in(tmp, sizeof tmp, other);
            remove(tmp);
        }
    }
    printf("kill mid-write: target whole after %d of %d kills (%d killed inside a write)\n", ok,
           rounds, left);
    CHECK_EQ(ok, rounds);
    free(a);
    free(b);
    remove_all();
}

static int is_link_to(const char *path, const char *want) {
    char buf[1024];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return 0;
    buf[n] = '\0';
    return strcmp(buf, want) == 0;
}

static void test_links_and_special_files(void) {
    char path[1024], target[1024], other[256];
    // A link (relative, then a chain of two) is followed: the file it names is replaced.
    path_in(target, sizeof target, "real.bin");
    path_in(path, sizeof path, "link.bin");
    CHECK_EQ(dcl__atomic_write(target, "old", 3), DCL_OK);
    CHECK_EQ(symlink("real.bin", path), 0);
    CHECK_EQ(dcl__atomic_write(path, "via link", 8), DCL_OK);
    CHECK(is_link_to(path, "real.bin"));
    CHECK(file_is(target, "via link", 8));
    char chain[1024];
    path_in(chain, sizeof chain, "chain.bin");
    CHECK_EQ(symlink(path, chain), 0);
    CHECK_EQ(dcl__atomic_write(chain, "chained", 7), DCL_OK);
    CHECK(is_link_to(chain, path) && is_link_to(path, "real.bin"));
    CHECK(file_is(target, "chained", 7));
    CHECK_EQ(dir_entries(NULL, NULL, 0), 3); // no temp file left
    // A dangling link: its target is created.
    remove(target);
    CHECK_EQ(dcl__atomic_write(path, "new", 3), DCL_OK);
    CHECK(is_link_to(path, "real.bin") && file_is(target, "new", 3));
    // A loop of links fails, naming the path.
    char loop_a[1024], loop_b[1024];
    path_in(loop_a, sizeof loop_a, "loop_a");
    path_in(loop_b, sizeof loop_b, "loop_b");
    CHECK_EQ(symlink("loop_b", loop_a), 0);
    CHECK_EQ(symlink("loop_a", loop_b), 0);
    CHECK_EQ(dcl__atomic_write(loop_a, "x", 1), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), "loop_a") != NULL);
    remove_all();

    // A FIFO is written in place (a reader gets the bytes) and stays a FIFO.
    path_in(path, sizeof path, "fifo");
    CHECK_EQ(mkfifo(path, 0600), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char buf[64] = {0};
        int fd = open(path, O_RDONLY);
        ssize_t got = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        _exit(got == 9 && strcmp(buf, "to a fifo") == 0 ? 0 : 1);
    }
    CHECK_EQ(dcl__atomic_write(path, "to a fifo", 9), DCL_OK);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct stat st;
    CHECK(lstat(path, &st) == 0 && S_ISFIFO(st.st_mode));
    CHECK_EQ(dir_entries("fifo", other, sizeof other), 1);
    // A character device (a null device made here, as root) and a link to it stay what they are.
    path_in(path, sizeof path, "null");
    if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0) {
        CHECK_EQ(dcl__atomic_write(path, "gone", 4), DCL_OK);
        CHECK(lstat(path, &st) == 0 && S_ISCHR(st.st_mode));
        path_in(target, sizeof target, "to_null");
        CHECK_EQ(symlink("null", target), 0);
        CHECK_EQ(dcl__atomic_write(target, "gone", 4), DCL_OK);
        CHECK(lstat(path, &st) == 0 && S_ISCHR(st.st_mode) && is_link_to(target, "null"));
        CHECK_EQ(dir_entries(NULL, NULL, 0), 3);
    } else {
        printf("note: mknod: %s; the character-device case is skipped\n", strerror(errno));
    }
    remove_all();
}

// Temp files of dead processes are removed when the target is written again; a live process's
// and another target's are kept.
static void test_stale_temps(void) {
    char path[1024], p[1024], name[300];
    fflush(NULL);
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    path_in(path, sizeof path, "s.bin");
    const char *keep[2] = {"s.bin.tmp-%ld-0", "t.bin.tmp-%ld-3"};
    long keep_pid[2] = {(long)getppid(), (long)dead};
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, keep[i], keep_pid[i]);
        path_in(p, sizeof p, name);
        CHECK_EQ(dcl__atomic_write(p, "keep", 4), DCL_OK);
    }
    snprintf(name, sizeof name, "s.bin.tmp-%ld-7", (long)dead);
    path_in(p, sizeof p, name);
    CHECK_EQ(dcl__atomic_write(p, "stale", 5), DCL_OK);
    CHECK_EQ(dir_entries(NULL, NULL, 0), 3);
    CHECK_EQ(dcl__atomic_write(path, "new", 3), DCL_OK);
    CHECK(access(p, F_OK) != 0);             // the dead process's temp is gone
    CHECK_EQ(dir_entries(NULL, NULL, 0), 3); // s.bin and the two kept
    remove_all();
}

// Names up to the folder's NAME_MAX: the temp name is cut to fit, and a cut stale temp is cleaned.
static void test_long_names(void) {
    long max = pathconf(tmp_dir, _PC_NAME_MAX);
    if (max <= 0 || max > 1000) max = 255;
    char name[1100], path[2048];
    for (long len = max - 20; len <= max; len += 10) {
        memset(name, 'a', (size_t)len);
        name[len] = '\0';
        snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
        CHECK_EQ(dcl__atomic_write(path, "long", 4), DCL_OK);
        CHECK(file_is(path, "long", 4));
        dcl_atomic_file af = {0};
        CHECK_EQ(dcl__atomic_file_open(&af, path), DCL_OK);
        const char *slash = af.tmp_path ? strrchr(af.tmp_path, '/') : NULL;
        CHECK(slash && strlen(slash + 1) <= (size_t)max);
        dcl__atomic_file_abort(&af);
        CHECK_EQ(dir_entries(NULL, NULL, 0), 1);
        remove_all();
    }
}

// A full disk: a 64 KiB tmpfs (mounted here when allowed, else skipped).
static void test_disk_full(void) {
    char mnt[600], path[700], other[256];
    path_in(mnt, sizeof mnt, "tmpfs");
    CHECK_EQ(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        printf("note: cannot mount a tmpfs (%s); the disk-full case is skipped\n", strerror(errno));
        rmdir(mnt);
        return;
    }
    snprintf(path, sizeof path, "%s/full.bin", mnt);
    const size_t old_n = 20000, new_n = 200000;
    unsigned char *old = malloc(old_n), *big = calloc(new_n, 1);
    memset(old, 'o', old_n);
    CHECK_EQ(dcl__atomic_write(path, old, old_n), DCL_OK);
    // All at once (reserved first), then streamed without a reserve.
    dcl_clear_error();
    CHECK_EQ(dcl__atomic_write(path, big, new_n), DCL_ERR_IO);
    printf("disk full: %s\n", dcl_last_error());
    CHECK(strstr(dcl_last_error(), "200000 bytes needed") != NULL);
    CHECK(strstr(dcl_last_error(), "available") != NULL);
    CHECK(file_is(path, old, old_n));
    dcl_atomic_file af = {0};
    CHECK_EQ(dcl__atomic_file_open(&af, path), DCL_OK);
    dcl_status s = DCL_OK;
    for (size_t k = 0; k < new_n && s == DCL_OK; k += 10000)
        s = dcl__atomic_file_write(&af, big + k, 10000);
    if (s == DCL_OK) s = dcl__atomic_file_commit(&af);
    else dcl__atomic_file_abort(&af);
    CHECK_EQ(s, DCL_ERR_IO);
    printf("disk full, streamed: %s\n", dcl_last_error());
    CHECK(strstr(dcl_last_error(), "bytes needed") != NULL);
    CHECK(file_is(path, old, old_n));
    DIR *d = opendir(mnt);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK_EQ(n, 1); // no temp file left
    (void)other;
    CHECK_EQ(umount(mnt), 0);
    rmdir(mnt);
    free(old), free(big);
}

int main(void) {
    if (!check_tmpdir(tmp_dir, sizeof tmp_dir, "diffcl-af")) return 1;
    test_replace();
    test_failures();
    test_kill_mid_write();
    test_links_and_special_files();
    test_stale_temps();
    test_long_names();
    test_disk_full();
    remove_all();
    rmdir(tmp_dir);
    return check_exit();
}
