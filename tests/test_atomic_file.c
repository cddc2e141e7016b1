// Atomic file writes: replacing a file leaves the old or the new one and no temp file; modes are
// kept; abort and failures leave the target alone; a process killed mid-write never leaves a
// partial target.
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int main(void) {
    if (!check_tmpdir(tmp_dir, sizeof tmp_dir, "diffcl-af")) return 1;
    test_replace();
    test_failures();
    test_kill_mid_write();
    remove_all();
    rmdir(tmp_dir);
    return check_exit();
}
