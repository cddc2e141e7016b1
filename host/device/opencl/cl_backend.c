// The OpenCL backend's device side: enumeration and capability probe, context and queue, buffers,
// programs built once per device from the embedded cl/ sources (with an on-disk cache of their
// binaries), kernels, launch shapes and DIFFCL_CL_SYNC.
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "device/opencl/cl_impl.h"
#include "device/opencl/cl_sources.h" // dcl_cl_sources: the embedded kernel files
#include "diffcl/log.h"
#include "io/atomic_file.h" // dcl__atomic_write: temp file + fsync + rename

extern const struct dcl_backend_i dcl__cl_backend; // cl_ops.c

// ---- errors -----------------------------------------------------------------------------------

#define DCL_CL_ERRORS(X)                                                                           \
    X(CL_DEVICE_NOT_FOUND)                                                                         \
    X(CL_DEVICE_NOT_AVAILABLE)                                                                     \
    X(CL_COMPILER_NOT_AVAILABLE)                                                                   \
    X(CL_MEM_OBJECT_ALLOCATION_FAILURE)                                                            \
    X(CL_OUT_OF_RESOURCES)                                                                         \
    X(CL_OUT_OF_HOST_MEMORY)                                                                       \
    X(CL_PROFILING_INFO_NOT_AVAILABLE)                                                             \
    X(CL_MEM_COPY_OVERLAP)                                                                         \
    X(CL_BUILD_PROGRAM_FAILURE)                                                                    \
    X(CL_MAP_FAILURE)                                                                              \
    X(CL_MISALIGNED_SUB_BUFFER_OFFSET)                                                             \
    X(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)                                                \
    X(CL_INVALID_VALUE)                                                                            \
    X(CL_INVALID_DEVICE_TYPE)                                                                      \
    X(CL_INVALID_PLATFORM)                                                                         \
    X(CL_INVALID_DEVICE)                                                                           \
    X(CL_INVALID_CONTEXT)                                                                          \
    X(CL_INVALID_QUEUE_PROPERTIES)                                                                 \
    X(CL_INVALID_COMMAND_QUEUE)                                                                    \
    X(CL_INVALID_HOST_PTR)                                                                         \
    X(CL_INVALID_MEM_OBJECT)                                                                       \
    X(CL_INVALID_BINARY)                                                                           \
    X(CL_INVALID_BUILD_OPTIONS)                                                                    \
    X(CL_INVALID_PROGRAM)                                                                          \
    X(CL_INVALID_PROGRAM_EXECUTABLE)                                                               \
    X(CL_INVALID_KERNEL_NAME)                                                                      \
    X(CL_INVALID_KERNEL_DEFINITION)                                                                \
    X(CL_INVALID_KERNEL)                                                                           \
    X(CL_INVALID_ARG_INDEX)                                                                        \
    X(CL_INVALID_ARG_VALUE)                                                                        \
    X(CL_INVALID_ARG_SIZE)                                                                         \
    X(CL_INVALID_KERNEL_ARGS)                                                                      \
    X(CL_INVALID_WORK_DIMENSION)                                                                   \
    X(CL_INVALID_WORK_GROUP_SIZE)                                                                  \
    X(CL_INVALID_WORK_ITEM_SIZE)                                                                   \
    X(CL_INVALID_GLOBAL_OFFSET)                                                                    \
    X(CL_INVALID_EVENT_WAIT_LIST)                                                                  \
    X(CL_INVALID_EVENT)                                                                            \
    X(CL_INVALID_OPERATION)                                                                        \
    X(CL_INVALID_BUFFER_SIZE)                                                                      \
    X(CL_INVALID_GLOBAL_WORK_SIZE)                                                                 \
    X(CL_PLATFORM_NOT_FOUND_KHR)

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

const char *dcl__cl_error_name(cl_int err) {
    switch (err) {
#define DCL_CL_ERROR_CASE(e)                                                                       \
    case e: return #e;
        DCL_CL_ERRORS(DCL_CL_ERROR_CASE)
#undef DCL_CL_ERROR_CASE
    }
    return "unknown OpenCL error";
}

dcl_status dcl__cl_fail(struct dcl_cl_ctx *ctx, cl_int err, const char *what, const char *file,
                        int line) {
    dcl_status s = err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_INVALID_BUFFER_SIZE
                       ? DCL_ERR_DEVICE_MEM
                       : DCL_ERR_OPENCL;
    return dcl__fail(s, "OpenCL error %s (%d) in %s on %s (%s) [%s:%d]", dcl__cl_error_name(err),
                     (int)err, what, ctx && ctx->info ? ctx->info->spec : "?",
                     ctx && ctx->info ? ctx->info->name : "?", file, line);
}

// ---- enumeration and probe --------------------------------------------------------------------

static void get_str(cl_device_id d, cl_device_info what, char *out, size_t size) {
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, size, out, NULL) != CL_SUCCESS) snprintf(out, size, "?");
    out[size - 1] = '\0';
}

// The capability probe: what diffcl's kernels need, judged from the device's own answers (never
// its vendor). The build of the first program at open is the final test that OpenCL C 1.2 works.
static void probe(cl_device_id d, dcl_device_info *info) {
    cl_bool available = CL_FALSE, compiler = CL_FALSE;
    cl_device_fp_config fp = 0;
    clGetDeviceInfo(d, CL_DEVICE_AVAILABLE, sizeof available, &available, NULL);
    clGetDeviceInfo(d, CL_DEVICE_COMPILER_AVAILABLE, sizeof compiler, &compiler, NULL);
    clGetDeviceInfo(d, CL_DEVICE_SINGLE_FP_CONFIG, sizeof fp, &fp, NULL);
    int major = 0, minor = 0;
    sscanf(info->c_version, "OpenCL C %d.%d", &major, &minor);
    const char *why = NULL;
    if (!available) why = "the device reports it is not available";
    else if (!compiler) why = "the device has no OpenCL C compiler";
    else if (major * 10 + minor < 12) why = "OpenCL C 1.2 is required";
    else if (!(fp & CL_FP_ROUND_TO_NEAREST) || !(fp & CL_FP_INF_NAN))
        why = "fp32 lacks round-to-nearest or Inf/NaN";
    else if (info->max_alloc < ((uint64_t)64 << 20)) why = "max allocation is below 64 MiB";
    else if (info->local_mem < 16384) why = "local memory is below 16 KiB";
    else if (info->max_wg_size < 64) why = "max work-group size is below 64";
    info->usable = why == NULL;
    snprintf(info->why_not, sizeof info->why_not, "%s", why ? why : "");
}

static void fill_info(cl_platform_id p, cl_device_id d, int pi, int di, dcl_device_info *info) {
    memset(info, 0, sizeof *info);
    info->backend = DCL_BACKEND_OPENCL;
    info->platform = pi, info->device = di;
    snprintf(info->spec, sizeof info->spec, "cl:%d:%d", pi, di);
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform_name, info->platform_name, NULL);
    info->platform_name[sizeof info->platform_name - 1] = '\0';
    get_str(d, CL_DEVICE_NAME, info->name, sizeof info->name);
    get_str(d, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    get_str(d, CL_DRIVER_VERSION, info->driver, sizeof info->driver);
    get_str(d, CL_DEVICE_VERSION, info->version, sizeof info->version);
    get_str(d, CL_DEVICE_OPENCL_C_VERSION, info->c_version, sizeof info->c_version);
    cl_device_type type = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    snprintf(info->type, sizeof info->type, "%s",
             type & CL_DEVICE_TYPE_GPU           ? "gpu"
             : type & CL_DEVICE_TYPE_CPU         ? "cpu"
             : type & CL_DEVICE_TYPE_ACCELERATOR ? "accelerator"
                                                 : "other");
    cl_uint cu = 0;
    cl_ulong gmem = 0, alloc = 0, lmem = 0;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gmem, &gmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof alloc, &alloc, NULL);
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lmem, &lmem, NULL);
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    info->compute_units = (int)cu;
    info->global_mem = gmem, info->max_alloc = alloc, info->local_mem = lmem;
    info->max_wg_size = wg;
    char ext[4096];
    get_str(d, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    info->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
    probe(d, info);
}

// Calls fn(platform, device, pi, di, arg) for every device of every platform; returns the number
// of platforms (0 when there is no ICD or no platform).
static int for_each_device(void (*fn)(cl_platform_id, cl_device_id, int, int, void *), void *arg) {
    cl_uint np = 0;
    if (clGetPlatformIDs(0, NULL, &np) != CL_SUCCESS || np == 0) return 0;
    cl_platform_id plats[16];
    if (np > 16) np = 16;
    if (clGetPlatformIDs(np, plats, NULL) != CL_SUCCESS) return 0;
    for (cl_uint pi = 0; pi < np; pi++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS) continue;
        cl_device_id devs[32];
        if (nd > 32) nd = 32;
        if (clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, nd, devs, NULL) != CL_SUCCESS) continue;
        for (cl_uint di = 0; di < nd; di++) fn(plats[pi], devs[di], (int)pi, (int)di, arg);
    }
    return (int)np;
}

struct list_acc {
    dcl_device_info *list;
    int n, cap;
};

static void add_info(cl_platform_id p, cl_device_id d, int pi, int di, void *arg) {
    struct list_acc *acc = arg;
    if (acc->n == acc->cap) {
        int cap = acc->cap ? 2 * acc->cap : 8;
        dcl_device_info *grown = realloc(acc->list, (size_t)cap * sizeof *grown);
        if (!grown) return;
        acc->list = grown, acc->cap = cap;
    }
    fill_info(p, d, pi, di, &acc->list[acc->n++]);
}

dcl_status dcl__cl_list(dcl_device_info **out, int *n, int *n_platforms) {
    struct list_acc acc = {0};
    *n_platforms = for_each_device(add_info, &acc);
    *out = acc.list;
    *n = acc.n;
    return DCL_OK;
}

struct find_arg {
    int pi, di;
    cl_platform_id p;
    cl_device_id d;
};

static void find_ids(cl_platform_id p, cl_device_id d, int pi, int di, void *arg) {
    struct find_arg *f = arg;
    if (pi == f->pi && di == f->di) f->p = p, f->d = d;
}

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

#ifdef DIFFCL_VERSION
#define CACHE_DIFFCL_VERSION DIFFCL_VERSION
#else
#define CACHE_DIFFCL_VERSION "unversioned"
#endif

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

// Resolves the cache folder into ctx->cache_dir ("" = off) and hashes the key fields that all of
// the device's programs share into ctx->cache_base. The folder is created on the first store.
static void cache_init(struct dcl_cl_ctx *ctx) {
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
    h = hash_str(h, CACHE_DIFFCL_VERSION);
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

// The program of cache file `path` built for ctx's device, or NULL when there is no such file or
// it cannot be used (why is logged at verbose level).
static cl_program cache_load(struct dcl_cl_ctx *ctx, const char *path, uint64_t key,
                             const char *file) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno != ENOENT)
            dcl_log(DCL_LOG_VERBOSE, "program cache: cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    const char *why = NULL;
    char why_buf[128];
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
            if (err != CL_SUCCESS)
                snprintf(why_buf, sizeof why_buf, "building its binary failed (%s)",
                         dcl__cl_error_name(err));
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

// Stores prog's binary as cache file `path`. A failure is logged at verbose level and leaves the
// thread's last error message as it was.
static void cache_store(struct dcl_cl_ctx *ctx, cl_program prog, const char *path, uint64_t key,
                        const char *file) {
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
    const struct dcl_cl_ctx *ctx = dev->iface == &dcl__cl_backend ? dev->ctx : NULL;
    *hits = ctx ? ctx->cache_hits : 0;
    *misses = ctx ? ctx->cache_misses : 0;
}

// ---- context ----------------------------------------------------------------------------------

// Drivers report asynchronous failures here (NVIDIA: "CL_OUT_OF_RESOURCES error executing ...").
static void CL_CALLBACK context_notify(const char *errinfo, const void *priv, size_t cb,
                                       void *user) {
    (void)priv, (void)cb;
    const dcl_device_info *info = user;
    dcl_log(DCL_LOG_ERROR, "OpenCL driver (%s): %s", info->spec, errinfo);
}

void dcl__cl_free(void *p) {
    struct dcl_cl_ctx *ctx = p;
    if (!ctx) return;
    if (ctx->queue) clFinish(ctx->queue);
    for (int i = 0; i < ctx->n_kernels; i++) clReleaseKernel(ctx->kernels[i].kernel);
    for (int i = 0; i < DCL_CL_MAX_PROGRAMS; i++)
        if (ctx->programs[i]) clReleaseProgram(ctx->programs[i]);
    if (ctx->partials) clReleaseMemObject(ctx->partials);
    if (ctx->queue) clReleaseCommandQueue(ctx->queue);
    if (ctx->context) clReleaseContext(ctx->context);
    free(ctx);
}

dcl_status dcl__cl_open(dcl_device *dev, const dcl_device_info *info) {
    struct find_arg f = {info->platform, info->device, NULL, NULL};
    for_each_device(find_ids, &f);
    if (!f.d) return dcl__fail(DCL_ERR_NO_DEVICE, "OpenCL device %s is gone", info->spec);
    struct dcl_cl_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return dcl__fail(DCL_ERR_NOMEM, "out of host memory opening %s", info->spec);
    ctx->info = &dev->info;
    ctx->platform = f.p, ctx->device = f.d;
    size_t items[3] = {0};
    clGetDeviceInfo(f.d, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof items, items, NULL);
    ctx->max_wg_size = info->max_wg_size;
    ctx->max_item_size0 = items[0] ? items[0] : info->max_wg_size;
    ctx->local_mem = info->local_mem;
    const char *extra = getenv("DIFFCL_CL_OPTIONS");
    snprintf(ctx->options, sizeof ctx->options, "-cl-std=CL1.2%s%s", extra && *extra ? " " : "",
             extra && *extra ? extra : "");
    cache_init(ctx);
    const char *sync = getenv("DIFFCL_CL_SYNC");
    ctx->sync = sync && *sync && strcmp(sync, "0") != 0 && strcmp(sync, "off") != 0;
    if (ctx->sync)
        dcl_log(DCL_LOG_INFO,
                "DIFFCL_CL_SYNC=%s: %s waits for every kernel to finish (slow; pins an "
                "asynchronous error on its kernel)",
                sync, info->spec);

    dcl_status s;
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)f.p, 0};
    ctx->context = clCreateContext(props, 1, &f.d, context_notify, &dev->info, &err);
    if (err != CL_SUCCESS) {
        s = dcl__cl_fail(ctx, err, "clCreateContext", __FILE__, __LINE__);
        goto fail;
    }
    ctx->queue = clCreateCommandQueue(ctx->context, f.d, 0, &err);
    if (err != CL_SUCCESS) {
        s = dcl__cl_fail(ctx, err, "clCreateCommandQueue", __FILE__, __LINE__);
        goto fail;
    }
    ctx->partials =
        clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, DCL_CL_MAX_GROUPS_REDUCE * 4, NULL, &err);
    if (err != CL_SUCCESS) {
        s = dcl__cl_fail(ctx, err, "clCreateBuffer(reduction partials)", __FILE__, __LINE__);
        goto fail;
    }
    // The probe build: the device must compile our OpenCL C 1.2.
    struct dcl_cl_kernel *k;
    const struct dcl_op_desc *fill = &dcl__op_descs[DCL_OP_FILL];
    if ((s = dcl__cl_kernel(ctx, fill->file, fill->kernel, &k)) != DCL_OK) goto fail;
    dev->iface = &dcl__cl_backend;
    dev->ctx = ctx;
    return DCL_OK;
fail:
    dcl__cl_free(ctx);
    return s;
}

void dcl__cl_set_launch(dcl_device *dev, size_t local, size_t max_groups) {
    if (dev->iface != &dcl__cl_backend) return;
    struct dcl_cl_ctx *ctx = dev->ctx;
    ctx->force_local = local;
    ctx->force_groups = max_groups;
}

// ---- programs and kernels ---------------------------------------------------------------------

// Reads cl/<name> from DIFFCL_CL_DIR when set, else from the embedded table. *owned is the
// malloc'd text to free (NULL for embedded text).
static dcl_status source_text(const char *name, const char **text, char **owned, int *index) {
    *owned = NULL;
    *index = -1;
    for (int i = 0; i < dcl_cl_source_count; i++)
        if (strcmp(dcl_cl_sources[i].name, name) == 0) *index = i;
    const char *dir = getenv("DIFFCL_CL_DIR");
    if (dir && *dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *fp = fopen(path, "rb");
        if (!fp) return dcl__fail(DCL_ERR_IO, "DIFFCL_CL_DIR: cannot open %s", path);
        char *buf = NULL;
        long len = -1;
        if (fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
            (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, fp) == (size_t)len) {
            buf[len] = '\0';
            fclose(fp);
            *text = *owned = buf;
            return DCL_OK;
        }
        free(buf);
        fclose(fp);
        return dcl__fail(DCL_ERR_IO, "DIFFCL_CL_DIR: cannot read %s", path);
    }
    if (*index < 0) return dcl__fail(DCL_ERR_ARG, "no kernel file cl/%s is embedded", name);
    *text = dcl_cl_sources[*index].text;
    return DCL_OK;
}

static double ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

// Builds cl/<file> for ctx's device: from the program cache when it holds a valid binary, else
// from source (then stored in the cache).
static dcl_status build_program(struct dcl_cl_ctx *ctx, const char *file, cl_program *out) {
    const char *common, *body;
    char *common_owned, *body_owned;
    int ci, bi;
    dcl_status s = source_text("common.h", &common, &common_owned, &ci);
    if (s != DCL_OK) return s;
    if ((s = source_text(file, &body, &body_owned, &bi)) != DCL_OK) {
        free(common_owned);
        return s;
    }
    // Program = preamble (#line for readable build logs) + common.h + the op's file.
    const char *parts[] = {"#line 1 \"common.h\"\n", common, "\n", "", body};
    char line[128];
    snprintf(line, sizeof line, "#line 1 \"%s\"\n", file);
    parts[3] = line;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t key = 0;
    char path[sizeof ctx->cache_dir + 32];
    if (ctx->cache_dir[0]) {
        key = ctx->cache_base;
        for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) key = hash_str(key, parts[i]);
        snprintf(path, sizeof path, "%s/%016" PRIx64 ".bin", ctx->cache_dir, key);
        cl_program prog = cache_load(ctx, path, key, file);
        if (prog) {
            free(common_owned);
            free(body_owned);
            ctx->cache_hits++;
            dcl_log(DCL_LOG_VERBOSE, "program %s on %s: %.0f ms (cache)", file, ctx->info->spec,
                    ms_since(&t0));
            *out = prog;
            return DCL_OK;
        }
        ctx->cache_misses++;
    }
    cl_int err;
    cl_program prog = clCreateProgramWithSource(ctx->context, 5, parts, NULL, &err);
    free(common_owned);
    free(body_owned);
    if (err != CL_SUCCESS)
        return dcl__cl_fail(ctx, err, "clCreateProgramWithSource", __FILE__, __LINE__);
    err = clBuildProgram(prog, 1, &ctx->device, ctx->options, NULL, NULL);
    if (err != CL_SUCCESS) {
        size_t len = 0;
        char log[4096] = "";
        clGetProgramBuildInfo(prog, ctx->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, &len);
        log[sizeof log - 1] = '\0';
        clReleaseProgram(prog);
        return dcl__fail(DCL_ERR_BUILD,
                         "building cl/%s for %s (%s, driver %s) with options '%s' "
                         "failed (%s):\n%s",
                         file, ctx->info->spec, ctx->info->name, ctx->info->driver, ctx->options,
                         dcl__cl_error_name(err), log);
    }
    dcl_log(DCL_LOG_VERBOSE, "program %s on %s: %.0f ms (source)", file, ctx->info->spec,
            ms_since(&t0));
    if (ctx->cache_dir[0]) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cache_store(ctx, prog, path, key, file);
        dcl_log(DCL_LOG_DEBUG, "program %s on %s: stored in the cache in %.0f ms", file,
                ctx->info->spec, ms_since(&t0));
    }
    *out = prog;
    return DCL_OK;
}

dcl_status dcl__cl_kernel(struct dcl_cl_ctx *ctx, const char *file, const char *name,
                          struct dcl_cl_kernel **out) {
    int pi = -1;
    for (int i = 0; file && i < dcl_cl_source_count; i++)
        if (strcmp(dcl_cl_sources[i].name, file) == 0) pi = i;
    for (int i = 0; i < ctx->n_kernels; i++)
        if (ctx->kernels[i].program == pi && strcmp(ctx->kernels[i].name, name) == 0) {
            *out = &ctx->kernels[i];
            return DCL_OK;
        }
    if (pi < 0 || pi >= DCL_CL_MAX_PROGRAMS || ctx->n_kernels == DCL_CL_MAX_KERNELS)
        return dcl__fail(DCL_ERR_ARG, "kernel %s: no embedded file cl/%s or too many kernels", name,
                         file ? file : "(none)");
    dcl_status s;
    if (!ctx->programs[pi] && (s = build_program(ctx, file, &ctx->programs[pi])) != DCL_OK)
        return s;
    struct dcl_cl_kernel *k = &ctx->kernels[ctx->n_kernels];
    cl_int err;
    k->kernel = clCreateKernel(ctx->programs[pi], name, &err);
    if (err != CL_SUCCESS) return dcl__cl_fail(ctx, err, name, __FILE__, __LINE__);
    err = clGetKernelWorkGroupInfo(k->kernel, ctx->device, CL_KERNEL_WORK_GROUP_SIZE,
                                   sizeof k->wg_size, &k->wg_size, NULL);
    if (err != CL_SUCCESS) {
        clReleaseKernel(k->kernel);
        return dcl__cl_fail(ctx, err, "clGetKernelWorkGroupInfo", __FILE__, __LINE__);
    }
    snprintf(k->name, sizeof k->name, "%s", name);
    k->program = pi;
    ctx->n_kernels++;
    *out = k;
    return DCL_OK;
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

size_t dcl__cl_local_size(struct dcl_cl_ctx *ctx, const struct dcl_cl_kernel *k) {
    size_t limit = min_size(min_size(k->wg_size, ctx->max_wg_size), ctx->max_item_size0);
    size_t local = ctx->force_local ? ctx->force_local : 256;
    local = min_size(local, limit);
    return local ? local : 1;
}

// DIFFCL_CL_SYNC: waits for the queue after `what` was enqueued and checks ev's status (when
// given; released here), so an asynchronous failure is reported against `what`.
static dcl_status sync_after(struct dcl_cl_ctx *ctx, const char *what, cl_event ev) {
    char msg[320];
    cl_int err = clFinish(ctx->queue), status = CL_COMPLETE;
    if (err == CL_SUCCESS && ev)
        err = clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL);
    if (ev) clReleaseEvent(ev);
    if (err == CL_SUCCESS && status >= 0) return DCL_OK;
    snprintf(msg, sizeof msg, "%s (%s with DIFFCL_CL_SYNC=1)", what,
             err != CL_SUCCESS ? "at the clFinish after it" : "its event status");
    return dcl__cl_fail(ctx, err != CL_SUCCESS ? err : status, msg, __FILE__, __LINE__);
}

dcl_status dcl__cl_after_enqueue(struct dcl_cl_ctx *ctx, const char *what, ...) {
    if (!ctx->sync) return DCL_OK;
    char buf[256];
    va_list ap;
    va_start(ap, what);
    vsnprintf(buf, sizeof buf, what, ap);
    va_end(ap);
    return sync_after(ctx, buf, NULL);
}

dcl_status dcl__cl_launch(struct dcl_cl_ctx *ctx, struct dcl_cl_kernel *k, size_t n, size_t local,
                          size_t groups) {
    if (groups == 0) groups = min_size((n + local - 1) / local, 65536);
    if (ctx->force_groups) groups = min_size(groups, ctx->force_groups);
    if (groups == 0) groups = 1;
    size_t global = groups * local;
    cl_event ev = NULL;
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, k->kernel, 1, NULL, &global, &local, 0, NULL,
                                        ctx->sync ? &ev : NULL);
    if (err == CL_SUCCESS && !ctx->sync) return DCL_OK;
    char what[160];
    snprintf(what, sizeof what, "kernel %s (global %zu, local %zu, n %zu)", k->name, global, local,
             n);
    if (err != CL_SUCCESS) return dcl__cl_fail(ctx, err, what, __FILE__, __LINE__);
    return sync_after(ctx, what, ev);
}

// ---- buffers and synchronisation ---------------------------------------------------------------

dcl_status dcl__cl_buffer_alloc(void *p, dcl_buffer *buf) {
    struct dcl_cl_ctx *ctx = p;
    cl_int err;
    cl_mem mem = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, buf->n * 4, NULL, &err);
    if (err != CL_SUCCESS) {
        char what[128];
        snprintf(what, sizeof what, "clCreateBuffer(tensor '%s', %zu bytes)", buf->name,
                 buf->n * 4);
        return dcl__cl_fail(ctx, err, what, __FILE__, __LINE__);
    }
    buf->handle = mem;
    return DCL_OK;
}

void dcl__cl_buffer_free(void *p, dcl_buffer *buf) {
    (void)p;
    if (buf->handle) clReleaseMemObject((cl_mem)buf->handle);
}

dcl_status dcl__cl_buffer_write(void *p, dcl_buffer *buf, size_t off, size_t n, const void *src) {
    struct dcl_cl_ctx *ctx = p;
    CL_TRY(ctx,
           clEnqueueWriteBuffer(ctx->queue, (cl_mem)buf->handle, CL_TRUE, off * 4, n * 4, src, 0,
                                NULL, NULL),
           "clEnqueueWriteBuffer");
    return DCL_OK;
}

dcl_status dcl__cl_buffer_read(void *p, const dcl_buffer *buf, size_t off, size_t n, void *dst) {
    struct dcl_cl_ctx *ctx = p;
    CL_TRY(ctx,
           clEnqueueReadBuffer(ctx->queue, (cl_mem)buf->handle, CL_TRUE, off * 4, n * 4, dst, 0,
                               NULL, NULL),
           "clEnqueueReadBuffer");
    return DCL_OK;
}

dcl_status dcl__cl_finish(void *p) {
    struct dcl_cl_ctx *ctx = p;
    CL_TRY(ctx, clFinish(ctx->queue), "clFinish");
    return DCL_OK;
}
