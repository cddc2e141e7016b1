// The OpenCL backend's on-disk program cache: binaries of built programs, keyed by a hash of
// everything they depend on, loaded and stored with their own header and checksum.
#define _POSIX_C_SOURCE 200809L // fdopen, lstat, O_CLOEXEC

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "device/opencl/cl_impl.h"
#include "diffcl/version.h"    // DIFFCL_VERSION_STRING: part of the cache key
#include "device/test_hooks.h" // dcl__cl_cache_stats
#include "diffcl/log.h"
#include "io/atomic_file.h" // dcl__atomic_write: temp file + fsync + rename

// ---- on-disk program cache --------------------------------------------------------------------
//
// Program binaries (CL_PROGRAM_BINARIES after a source build) are kept in DIR/<key>.bin, the key
// being 16 hex digits of a 64-bit FNV-1a hash of everything the binary depends on: the file
// format, diffcl's version, the host's pointer size, the platform's name and version, the device's
// name, vendor, version, OpenCL C version, work-group and local-memory limits, the driver version,
// the build options and the full program source. A file is
//
//   offset  0  "DCLPROG1"
//           8  key, u64 little-endian (equal to the file name's)
//          16  binary length L, u64 little-endian (the file is exactly 32 + L bytes)
//          24  FNV-1a 64 of the L binary bytes, u64 little-endian
//          32  the binary
//
// so a truncated, corrupted or misplaced file is rejected before the driver sees it. An entry that
// cannot be used for any reason (its header, the driver rejecting the binary, a failed build) is
// logged at verbose level and the program is built from source and stored again. Failures to
// store are logged at verbose level, never errors. Stores are atomic (temp file, fsync, rename),
// so processes may share the folder.

#define CACHE_FORMAT 1 // bump when the file layout or the key's fields change
#define CACHE_HEADER 32
#define CACHE_MAX_FILE ((long)1 << 30) // a larger file is not one of ours

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// Hashes a field as its length (8 bytes) then its bytes, so that no two lists of fields hash the
// same input by moving bytes across a boundary.
static uint64_t hash_field(uint64_t h, const void *data, size_t n) {
    unsigned char len[8];
    put_u64(len, n);
    return fnv1a(fnv1a(h, len, 8), data, n);
}

static uint64_t hash_str(uint64_t h, const char *s) { return hash_field(h, s, strlen(s)); }

static uint64_t hash_u64(uint64_t h, uint64_t v) {
    unsigned char b[8];
    put_u64(b, v);
    return hash_field(h, b, 8);
}

void dcl__cl_cache_init(struct dcl_cl_ctx *ctx) {
    const dcl_device_info *d = ctx->info;
    char *dir = ctx->cache_dir;
    size_t size = sizeof ctx->cache_dir;
    dir[0] = '\0';
    const char *mode = getenv("DIFFCL_CL_CACHE");
    if (mode && (strcmp(mode, "off") == 0 || strcmp(mode, "0") == 0)) {
        dcl_log(DCL_LOG_VERBOSE, "program cache off for %s (DIFFCL_CL_CACHE=%s)", d->spec, mode);
        return;
    }
    const char *env = getenv("DIFFCL_CL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    int n;
    if (env && *env) n = snprintf(dir, size, "%s", env);
    else if (xdg && xdg[0] == '/') n = snprintf(dir, size, "%s/diffcl", xdg); // XDG: absolute only
    else if (home && *home) n = snprintf(dir, size, "%s/.cache/diffcl", home);
    else {
        dcl_log(DCL_LOG_VERBOSE,
                "program cache off: none of DIFFCL_CL_CACHE_DIR, XDG_CACHE_HOME, HOME is set");
        return;
    }
    if (n < 0 || (size_t)n + 24 > size) { // room for "/<16 hex digits>.bin"
        dcl_log(DCL_LOG_VERBOSE, "program cache off: its folder's path is too long");
        dir[0] = '\0';
        return;
    }
    // A cached binary is code that the device runs (on PoCL: the host CPU), so only a folder that
    // no other user can write to is trusted.
    struct stat st;
    if (stat(dir, &st) == 0 &&
        (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
        dcl_log(DCL_LOG_INFO,
                "program cache %s not used: it is not a folder that only this user owns and can "
                "write to (chmod 700 it, or set DIFFCL_CL_CACHE_DIR)",
                dir);
        dir[0] = '\0';
        return;
    }
    char platform_version[256] = "";
    clGetPlatformInfo(ctx->platform, CL_PLATFORM_VERSION, sizeof platform_version - 1,
                      platform_version, NULL);
    uint64_t h = hash_u64(FNV_OFFSET, CACHE_FORMAT);
    h = hash_str(h, DIFFCL_VERSION_STRING);
    h = hash_u64(h, sizeof(void *));
    const char *strs[] = {d->platform_name, platform_version, d->name,   d->vendor,
                          d->version,       d->c_version,     d->driver, ctx->options};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) h = hash_str(h, strs[i]);
    h = hash_u64(hash_u64(h, d->max_wg_size), d->local_mem);
    ctx->cache_base = h;
    dcl_log(DCL_LOG_VERBOSE, "program cache for %s: %s", d->spec, dir);
}

// mkdir -p with mode 0700 for the folders it creates; 0 or an errno value.
static int make_dirs(const char *dir) {
    char path[sizeof((struct dcl_cl_ctx *)0)->cache_dir];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) return errno;
        *p = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(dir, &st) != 0) return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

uint64_t dcl__cl_cache_key(const struct dcl_cl_ctx *ctx, const char *const *parts, size_t n) {
    uint64_t key = ctx->cache_base;
    for (size_t i = 0; i < n; i++) key = hash_str(key, parts[i]);
    return key;
}

// The entry of `key`: DIR/<16 hex digits>.bin.
static void cache_path(const struct dcl_cl_ctx *ctx, uint64_t key, char *path, size_t size) {
    snprintf(path, size, "%s/%016" PRIx64 ".bin", ctx->cache_dir, key);
}

static int is_ident(char c) { return c == '_' || isalnum((unsigned char)c); }

// The first kernel named in the source parts ("kernel void NAME(" or "__kernel void NAME(", the
// way every cl/ file declares them) that prog cannot create, copied into missing; 0 if none.
// A binary that holds another program (a consistent header on a swapped entry) fails here, so it
// is a cache miss rather than CL_INVALID_KERNEL_NAME on every run.
static int lacks_kernel(cl_program prog, const char *const *parts, size_t n_parts, char *missing,
                        size_t size) {
    for (size_t i = 0; i < n_parts; i++) {
        for (const char *p = parts[i]; (p = strstr(p, "kernel")) != NULL; p += 6) {
            const char *b = p - parts[i] >= 2 && p[-1] == '_' && p[-2] == '_' ? p - 2 : p;
            if (b > parts[i] && is_ident(b[-1])) continue; // part of a longer word
            const char *q = p + 6;
            if (!isspace((unsigned char)*q)) continue;
            while (isspace((unsigned char)*q)) q++;
            if (strncmp(q, "void", 4) != 0 || !isspace((unsigned char)q[4])) continue;
            q += 4;
            while (isspace((unsigned char)*q)) q++;
            size_t len = 0;
            while (is_ident(q[len])) len++;
            if (!len || len >= size) continue;
            memcpy(missing, q, len);
            missing[len] = '\0';
            cl_int err;
            cl_kernel k = clCreateKernel(prog, missing, &err);
            if (k) clReleaseKernel(k);
            if (err != CL_SUCCESS) return 1;
        }
    }
    return 0;
}

// Opens a cache entry for reading: a regular file only, never blocking (a FIFO planted in the
// folder would otherwise hang every run in fopen).
static FILE *open_entry(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno != ENOENT)
            dcl_log(DCL_LOG_VERBOSE, "program cache: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    FILE *fp = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        dcl_log(DCL_LOG_VERBOSE, "program cache: ignoring %s: not a regular file", path);
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0) fp = fdopen(fd, "rb");
    if (!fp) close(fd);
    return fp;
}

cl_program dcl__cl_cache_load(struct dcl_cl_ctx *ctx, uint64_t key, const char *file,
                              const char *const *parts, size_t n_parts) {
    char path[sizeof ctx->cache_dir + 32];
    cache_path(ctx, key, path, sizeof path);
    FILE *fp = open_entry(path);
    if (!fp) return NULL;
    const char *why = NULL;
    char why_buf[160];
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0)
        why = "cannot read it";
    else if (len <= CACHE_HEADER) why = "it is shorter than its header";
    else if (len > CACHE_MAX_FILE) why = "it is too large";
    else if (!(buf = malloc((size_t)len))) why = "out of host memory";
    else if (fread(buf, 1, (size_t)len, fp) != (size_t)len) why = "cannot read it";
    else if (memcmp(buf, "DCLPROG1", 8) != 0) why = "no DCLPROG1 header";
    else if (get_u64(buf + 8) != key) why = "the key in its header is not its name's";
    else if (get_u64(buf + 16) != (uint64_t)(len - CACHE_HEADER))
        why = "its length does not match its header (truncated?)";
    else if (get_u64(buf + 24) != fnv1a(FNV_OFFSET, buf + CACHE_HEADER, (size_t)len - CACHE_HEADER))
        why = "checksum mismatch (corrupted)";
    fclose(fp);
    cl_program prog = NULL;
    if (!why) {
        size_t n = (size_t)len - CACHE_HEADER;
        const unsigned char *bin = buf + CACHE_HEADER;
        cl_int bin_status = CL_SUCCESS, err;
        prog =
            clCreateProgramWithBinary(ctx->context, 1, &ctx->device, &n, &bin, &bin_status, &err);
        if (err == CL_SUCCESS && bin_status != CL_SUCCESS) err = bin_status;
        if (err == CL_SUCCESS) {
            err = clBuildProgram(prog, 1, &ctx->device, ctx->options, NULL, NULL);
            char name[64];
            if (err != CL_SUCCESS) {
                snprintf(why_buf, sizeof why_buf, "building its binary failed (%s)",
                         dcl__cl_error_name(err));
            } else if (lacks_kernel(prog, parts, n_parts, name, sizeof name)) {
                err = CL_INVALID_KERNEL_NAME;
                snprintf(why_buf, sizeof why_buf,
                         "its binary has no kernel %s (another program's?)", name);
            }
        } else {
            snprintf(why_buf, sizeof why_buf, "the driver rejects its binary (%s)",
                     dcl__cl_error_name(err));
        }
        if (err != CL_SUCCESS) {
            if (prog) clReleaseProgram(prog);
            prog = NULL;
            why = why_buf;
        }
    }
    free(buf);
    if (why)
        dcl_log(DCL_LOG_VERBOSE, "program cache: ignoring %s (cl/%s on %s): %s", path, file,
                ctx->info->spec, why);
    return prog;
}

void dcl__cl_cache_store(struct dcl_cl_ctx *ctx, cl_program prog, uint64_t key, const char *file) {
    char path[sizeof ctx->cache_dir + 32];
    cache_path(ctx, key, path, sizeof path);
    const char *why = NULL;
    char why_buf[2048];
    unsigned char *buf = NULL;
    size_t n = 0;
    cl_uint n_devices = 0;
    if (clGetProgramInfo(prog, CL_PROGRAM_NUM_DEVICES, sizeof n_devices, &n_devices, NULL) !=
            CL_SUCCESS ||
        n_devices != 1)
        why = "the program does not report one device";
    else if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, NULL) != CL_SUCCESS ||
             n == 0)
        why = "the driver offers no binary";
    else if (n > (size_t)(CACHE_MAX_FILE - CACHE_HEADER)) why = "the binary is too large";
    else if (!(buf = malloc(CACHE_HEADER + n))) why = "out of host memory";
    if (!why) {
        unsigned char *bin = buf + CACHE_HEADER;
        if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS)
            why = "clGetProgramInfo(CL_PROGRAM_BINARIES) failed";
    }
    if (!why) {
        memcpy(buf, "DCLPROG1", 8);
        put_u64(buf + 8, key);
        put_u64(buf + 16, n);
        put_u64(buf + 24, fnv1a(FNV_OFFSET, buf + CACHE_HEADER, n));
        char saved[sizeof why_buf];
        snprintf(saved, sizeof saved, "%s", dcl_last_error());
        int e = make_dirs(ctx->cache_dir);
        // Whatever is not a regular file at the entry's name (a FIFO, a link, a device) is
        // removed first: the atomic writer would write into it in place, or follow the link.
        struct stat st;
        if (!e && lstat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) &&
            unlink(path) != 0)
            e = errno;
        if (e) {
            snprintf(why_buf, sizeof why_buf, "cannot create the folder: %s", strerror(e));
            why = why_buf;
        } else if (dcl__atomic_write(path, buf, CACHE_HEADER + n) != DCL_OK) {
            snprintf(why_buf, sizeof why_buf, "%s", dcl_last_error());
            why = why_buf;
        }
        dcl__fail(DCL_OK, "%s", saved);
    }
    free(buf);
    if (why)
        dcl_log(DCL_LOG_VERBOSE, "program cache: not storing cl/%s for %s in %s: %s", file,
                ctx->info->spec, ctx->cache_dir, why);
    else
        dcl_log(DCL_LOG_DEBUG, "program cache: stored cl/%s for %s as %s (%zu bytes)", file,
                ctx->info->spec, path, n);
}

void dcl__cl_cache_stats(const dcl_device *dev, unsigned *hits, unsigned *misses) {
    const struct dcl_cl_ctx *ctx = dev->info.backend == DCL_BACKEND_OPENCL ? dev->ctx : NULL;
    *hits = ctx ? ctx->cache_hits : 0;
    *misses = ctx ? ctx->cache_misses : 0;
}
