// Internal to the OpenCL backend: its context, the error helpers and the kernel launch helpers
// shared by cl_backend.c (devices, buffers, programs and their on-disk cache) and cl_ops.c (the
// ops).
#ifndef DIFFCL_CL_IMPL_H
#define DIFFCL_CL_IMPL_H

#include <CL/cl.h>

#include "device/backend.h"
#ifdef DIFFCL_FAULT_INJECTION
#include "device/opencl/cl_fault.h" // test builds: OpenCL calls go through counting wrappers
#endif

#define DCL_CL_MAX_PROGRAMS 32
#define DCL_CL_MAX_KERNELS 64

struct dcl_cl_kernel {
    char name[48];
    int program; // its file: index into dcl_cl_sources (kernels are keyed by file and name)
    cl_kernel kernel;
    size_t wg_size; // CL_KERNEL_WORK_GROUP_SIZE: the most work-items this kernel allows per group
};

struct dcl_cl_ctx {
    const dcl_device_info *info; // the owning device's info (for messages)
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    size_t max_wg_size, max_item_size0; // CL_DEVICE_MAX_WORK_GROUP_SIZE, ..._ITEM_SIZES[0]
    uint64_t local_mem;
    char options[512];    // build options: -cl-std=CL1.2 + DIFFCL_CL_OPTIONS
    char cache_dir[1024]; // program cache folder; "" when the cache is off (DIFFCL_CL_CACHE=off)
    uint64_t cache_base;  // the cache key's hash state after everything but the program source
    unsigned cache_hits, cache_misses;        // programs loaded from / not found valid in the cache
    int sync;                                 // DIFFCL_CL_SYNC: clFinish after every enqueue
    cl_program programs[DCL_CL_MAX_PROGRAMS]; // by index into dcl_cl_sources, built on first use
    struct dcl_cl_kernel kernels[DCL_CL_MAX_KERNELS];
    int n_kernels;
    cl_mem partials; // reductions' per-group results (DCL_CL_MAX_GROUPS_REDUCE words)
    size_t force_local, force_groups; // test hook: dcl__cl_set_launch
};

// Reductions use at most this many groups (and so that many partial results).
#define DCL_CL_MAX_GROUPS_REDUCE 256

const char *dcl__cl_error_name(cl_int err);

// Records "OpenCL error NAME (code) in WHAT on DEVICE" and returns the matching status.
dcl_status dcl__cl_fail(struct dcl_cl_ctx *ctx, cl_int err, const char *what, const char *file,
                        int line);

// Returns the failure from a function when an OpenCL call fails.
#define CL_TRY(ctx, call, what)                                                                    \
    do {                                                                                           \
        cl_int err_ = (call);                                                                      \
        if (err_ != CL_SUCCESS) return dcl__cl_fail((ctx), err_, (what), __FILE__, __LINE__);      \
    } while (0)

// The kernel `name` from cl/<file>, building the file's program on first use.
dcl_status dcl__cl_kernel(struct dcl_cl_ctx *ctx, const char *file, const char *name,
                          struct dcl_cl_kernel **out);

// Local size for a 1-D launch of k: the test override, else min(256, the kernel's and the device's
// limits). Always within the kernel's and device's limits.
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

// Test hook: programs loaded from the on-disk cache (hits) and cache lookups that found no valid
// entry (misses) since dev was opened; both 0 for a device that is not OpenCL or with the cache
// off.
void dcl__cl_cache_stats(const dcl_device *dev, unsigned *hits, unsigned *misses);

// Buffers, synchronisation and teardown (cl_backend.c), referenced by the backend table (cl_ops.c).
dcl_status dcl__cl_buffer_alloc(void *ctx, dcl_buffer *buf);
void dcl__cl_buffer_free(void *ctx, dcl_buffer *buf);
dcl_status dcl__cl_buffer_write(void *ctx, dcl_buffer *buf, size_t off, size_t n, const void *src);
dcl_status dcl__cl_buffer_read(void *ctx, const dcl_buffer *buf, size_t off, size_t n, void *dst);
dcl_status dcl__cl_finish(void *ctx);
void dcl__cl_free(void *ctx);

static inline cl_mem dcl__cl_mem(dcl_ptr p) { return (cl_mem)p.buf->handle; }

#endif
