// Internal to the OpenCL backend: its context and what its files give each other. The files, from
// the bottom up: cl_error.c (error names, failure records), cl_cache.c (the on-disk program cache),
// cl_device.c (enumeration, open context, buffers), cl_program.c (programs, kernels, launches),
// cl_ops.c (the ops, the backend table, the open that installs it). Each calls only files before
// it (and cl_fault.c's wrappers in test builds); the open applies cl_tune_file.c's tuning file.
// cl_tune.c (`diffcl tune`) runs ops through the public API, so it sits above device.c.
#ifndef DIFFCL_CL_IMPL_H
#define DIFFCL_CL_IMPL_H

#include <CL/cl.h>

#include "device/backend.h"
#include "device/opencl/cl_error.h" // dcl__cl_fail, dcl__cl_error_name, CL_TRY
#ifdef DIFFCL_FAULT_INJECTION
#include "device/opencl/cl_fault.h" // test builds: OpenCL calls go through counting wrappers
#endif

#define DCL_CL_MAX_PROGRAMS 32
#define DCL_CL_MAX_KERNELS 64
// The local size of 1-D launches unless a kernel's or the device's limit is lower (a tuning value:
// programs see it as DCL_WG_SIZE).
#define DCL_CL_WG_SIZE 256
// Bytes of staged writes the queue may hold between two waits; a write beyond it waits for the
// queue first, and a single write of more than a quarter of it is a blocking write from the caller.
#define DCL_CL_MAX_STAGED ((size_t)64 << 20)
// dcl_device_finish_behind: the largest lag (markers kept).
#define DCL_CL_MAX_MARKS 8

struct dcl_cl_kernel {
    char name[48];
    int program; // its file: index into dcl_cl_sources (kernels are keyed by file and name)
    cl_kernel kernel;
    size_t wg_size; // CL_KERNEL_WORK_GROUP_SIZE: the most work-items this kernel allows per group
};

struct dcl_cl_ctx {
    const dcl_device_info *info; // the owning device's info (for messages)
    dcl_device_stats *stats;     // the owning device's counters (launches, waits)
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    size_t max_wg_size, max_item_size0; // CL_DEVICE_MAX_WORK_GROUP_SIZE, ..._ITEM_SIZES[0]
    uint64_t local_mem;
    size_t wg_size;       // DCL_CL_WG_SIZE within the device's limits: the preamble's DCL_WG_SIZE
    char options[512];    // build options: -cl-std=CL1.2 + DIFFCL_CL_OPTIONS
    char cache_dir[1024]; // program cache folder; "" when the cache is off (DIFFCL_CL_CACHE=off)
    uint64_t cache_base;  // the cache key's hash state after everything but the program source
    unsigned cache_hits, cache_misses;        // programs loaded from / not found valid in the cache
    unsigned compiled;                        // programs compiled from source since open
    double compile_ms;                        // ... and the time that took
    int said_compiling;                       // the first compile from source was logged
    int prepared;                             // dcl_device_prepare has run
    int sync;                                 // DIFFCL_CL_SYNC: clFinish after every enqueue
    cl_program programs[DCL_CL_MAX_PROGRAMS]; // by index into dcl_cl_sources, built on first use
    struct dcl_cl_kernel kernels[DCL_CL_MAX_KERNELS];
    int n_kernels;
    cl_mem partials; // reductions' per-group results (DCL_CL_MAX_GROUPS_REDUCE words)
    cl_mem gemm_bt; // cl_ops.c: Bᵀ of a small NT GEMM's B (DCL_CL_GEMM_BT_MAX words), on first use
    cl_mem conv_scratch;   // cl_ops.c: padded planes of same convolutions (grown on demand)
    size_t conv_scratch_n; // ... its words
    size_t force_local, force_groups; // test hook: dcl__cl_set_launch
    // Staged writes (cl_device.c): host copies that queued writes read from, and spare ones.
    struct dcl_cl_stage *staged, *spare;
    size_t staged_bytes;
    cl_event marks[DCL_CL_MAX_MARKS]; // dcl__cl_finish_behind: markers, oldest first
    int n_marks;
    char tuned[512]; // what the tuning file applied at open ("" when nothing): dcl__cl_tune_applied
    // GEMM cases that run cl/gemm.cl's kernels instead of CLBlast's (cl_ops.c): bit 1 << (2·ta +
    // tb), from the tuning file or DIFFCL_CL_GEMM (cl_tune_file.c).
    unsigned own_gemm;
};

// Words of the convolution planes at open (4 MiB; cl_ops.c doubles them where a layer needs more).
#define DCL_CL_PLANES_INIT ((size_t)1 << 20)
// Reductions use at most this many groups (and so that many partial results).
#define DCL_CL_MAX_GROUPS_REDUCE 256
// An NT GEMM whose B (N, K) has at most this many elements (a layer's weights) runs as a
// transposition into ctx->gemm_bt and gemm_rows on CPU-like devices (cl_ops.c own_gemm).
#define DCL_CL_GEMM_BT_MAX (1u << 16)

// ---- cl_cache.c: the on-disk program cache (a miss or a failure to store is never an error)

// Resolves the cache folder into ctx->cache_dir ("" = off) and hashes the key fields that all of
// the device's programs share into ctx->cache_base. The folder is created on the first store.
void dcl__cl_cache_init(struct dcl_cl_ctx *ctx);
// The key of a program whose source is the concatenation of parts[0, n).
uint64_t dcl__cl_cache_key(const struct dcl_cl_ctx *ctx, const char *const *parts, size_t n);
// The built program of entry key, or NULL when there is none or it cannot be used (why is logged
// at verbose level): not a regular file, a bad header or checksum, a binary the driver rejects,
// or one that lacks a kernel the source parts[0, n) declare. file names the program in messages.
cl_program dcl__cl_cache_load(struct dcl_cl_ctx *ctx, uint64_t key, const char *file,
                              const char *const *parts, size_t n);
// Stores prog's binary as entry key. A failure is logged at verbose level and leaves the thread's
// last error message as it was.
void dcl__cl_cache_store(struct dcl_cl_ctx *ctx, cl_program prog, uint64_t key, const char *file);

// ---- cl_device.c: contexts, buffers

// A context, queue and scratch for dev (dev->info filled), without any program built yet.
dcl_status dcl__cl_ctx_open(struct dcl_cl_ctx **out, dcl_device *dev);
dcl_status dcl__cl_buffer_alloc(void *ctx, dcl_buffer *buf);
void dcl__cl_buffer_free(void *ctx, dcl_buffer *buf);
dcl_status dcl__cl_buffer_write(void *ctx, dcl_buffer *buf, size_t off, size_t n, const void *src);
dcl_status dcl__cl_buffer_read(void *ctx, const dcl_buffer *buf, size_t off, size_t n, void *dst);
dcl_status dcl__cl_finish(void *ctx);
dcl_status dcl__cl_finish_behind(void *ctx, int lag);
void dcl__cl_free(void *ctx);

// ---- cl_program.c: programs, kernels, launches

// The kernel `name` from cl/<file>, building the file's program on first use.
dcl_status dcl__cl_kernel(struct dcl_cl_ctx *ctx, const char *file, const char *name,
                          struct dcl_cl_kernel **out);

// Local size for a 1-D launch of k: the test override (dcl__cl_set_launch), else ctx->wg_size;
// always within the kernel's and the device's limits.
size_t dcl__cl_local_size(struct dcl_cl_ctx *ctx, const struct dcl_cl_kernel *k);

// Enqueues k over n items as `groups` groups of `local` work-items (the kernels stride over the
// grid, so any grid is correct). groups 0 means ceil(n / local), capped.
dcl_status dcl__cl_launch(struct dcl_cl_ctx *ctx, struct dcl_cl_kernel *k, size_t n, size_t local,
                          size_t groups);

// Call right after an op enqueues work by other means than dcl__cl_launch (CLBlast): with
// DIFFCL_CL_SYNC=1 it waits for the queue, so an asynchronous failure is reported against this
// call, named by the printf-style `what` ("CLBlastSgemm(M=%zu ...)") and the device. Otherwise it
// returns DCL_OK at once (`what` is not even formatted). dcl__cl_launch does this itself.
dcl_status dcl__cl_after_enqueue(struct dcl_cl_ctx *ctx, const char *what, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// Builds every program the op table names (from the cache or from source); *compiled receives the
// number of programs compiled from source since the device was opened (may be NULL).
dcl_status dcl__cl_prepare(struct dcl_cl_ctx *ctx, int *compiled);

// ---- cl_tune_file.c: the tuning file (`diffcl tune`)

// Applies the device's tuning file, when there is a valid one and DIFFCL_CL_TUNE is not off:
// ctx->wg_size (so call it before the first program is built) and CLBlast's GEMM parameters
// (CLBlastOverrideParameters). Anything wrong with the file is said at verbose level, never an
// error.
void dcl__cl_tune_apply(struct dcl_cl_ctx *ctx);

static inline cl_mem dcl__cl_mem(dcl_ptr p) { return (cl_mem)p.buf->handle; }

#endif
