// The OpenCL backend's devices: enumeration and capability probe, the context and queue of an
// open device and its teardown, buffers (writes staged, so they do not wait) and synchronisation.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "device/opencl/cl_impl.h"
#include "diffcl/log.h"

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

// ---- staged writes ----------------------------------------------------------------------------
//
// A write copies its source into a host block of ours and enqueues a non-blocking write from that
// block, so the caller may reuse its memory at once and the host does not wait for the device
// (OpenCL 1.2: the host memory of a non-blocking write must stay untouched until the command
// completes). The queue is in order, so every command enqueued before a wait that returned
// success (a blocking read or write, clFinish, the marker of dcl__cl_finish_behind) has completed:
// the blocks are recycled there, without an event per write.

struct dcl_cl_stage {
    struct dcl_cl_stage *next;
    size_t size;        // bytes of data
    max_align_t data[]; // the copy the queued write reads
};

// Every queued write has completed: its block may be reused.
static void stage_recycle(struct dcl_cl_ctx *ctx) {
    while (ctx->staged) {
        struct dcl_cl_stage *st = ctx->staged;
        ctx->staged = st->next;
        st->next = ctx->spare, ctx->spare = st;
    }
    ctx->staged_bytes = 0;
}

static void stage_free_all(struct dcl_cl_ctx *ctx) {
    stage_recycle(ctx);
    while (ctx->spare) {
        struct dcl_cl_stage *st = ctx->spare;
        ctx->spare = st->next;
        free(st);
    }
}

// A spare block of at least `bytes` (the smallest), else a new one; NULL when out of memory.
static struct dcl_cl_stage *stage_take(struct dcl_cl_ctx *ctx, size_t bytes) {
    struct dcl_cl_stage **best = NULL;
    for (struct dcl_cl_stage **p = &ctx->spare; *p; p = &(*p)->next)
        if ((*p)->size >= bytes && (!best || (*p)->size < (*best)->size)) best = p;
    if (best) {
        struct dcl_cl_stage *st = *best;
        *best = st->next;
        return st;
    }
    struct dcl_cl_stage *st = malloc(sizeof *st + bytes);
    if (st) st->size = bytes;
    return st;
}

// Releases the markers of dcl__cl_finish_behind without waiting for them.
static void forget_marks(struct dcl_cl_ctx *ctx) {
    for (int i = 0; i < ctx->n_marks; i++) clReleaseEvent(ctx->marks[i]);
    ctx->n_marks = 0;
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
    forget_marks(ctx);
    // Staged writes read host blocks freed below; the second try is for a failure injected into
    // the first (a failing device has dropped its commands).
    if (ctx->queue && clFinish(ctx->queue) != CL_SUCCESS) clFinish(ctx->queue);
    for (int i = 0; i < ctx->n_kernels; i++) clReleaseKernel(ctx->kernels[i].kernel);
    for (int i = 0; i < DCL_CL_MAX_PROGRAMS; i++)
        if (ctx->programs[i]) clReleaseProgram(ctx->programs[i]);
    if (ctx->partials) clReleaseMemObject(ctx->partials);
    if (ctx->gemm_bt) clReleaseMemObject(ctx->gemm_bt);
    if (ctx->conv_scratch) clReleaseMemObject(ctx->conv_scratch);
    if (ctx->queue) clReleaseCommandQueue(ctx->queue);
    if (ctx->context) clReleaseContext(ctx->context);
    stage_free_all(ctx);
    free(ctx);
}

dcl_status dcl__cl_ctx_open(struct dcl_cl_ctx **out, dcl_device *dev) {
    const dcl_device_info *info = &dev->info;
    struct find_arg f = {info->platform, info->device, NULL, NULL};
    for_each_device(find_ids, &f);
    if (!f.d) return dcl__fail(DCL_ERR_NO_DEVICE, "OpenCL device %s is gone", info->spec);
    struct dcl_cl_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return dcl__fail(DCL_ERR_NOMEM, "out of host memory opening %s", info->spec);
    ctx->info = &dev->info;
    ctx->stats = &dev->stats;
    ctx->platform = f.p, ctx->device = f.d;
    size_t items[3] = {0};
    clGetDeviceInfo(f.d, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof items, items, NULL);
    ctx->max_wg_size = info->max_wg_size;
    ctx->max_item_size0 = items[0] ? items[0] : info->max_wg_size;
    ctx->local_mem = info->local_mem;
    ctx->wg_size = DCL_CL_WG_SIZE;
    if (ctx->wg_size > ctx->max_wg_size) ctx->wg_size = ctx->max_wg_size;
    if (ctx->wg_size > ctx->max_item_size0) ctx->wg_size = ctx->max_item_size0;
    if (ctx->wg_size == 0) ctx->wg_size = 1;
    const char *extra = getenv("DIFFCL_CL_OPTIONS");
    snprintf(ctx->options, sizeof ctx->options, "-cl-std=CL1.2%s%s", extra && *extra ? " " : "",
             extra && *extra ? extra : "");
    dcl__cl_cache_init(ctx);
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
    *out = ctx;
    return DCL_OK;
fail:
    dcl__cl_free(ctx);
    return s;
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

// Staged (see above), except with DIFFCL_CL_SYNC, which reports a failure against the write
// itself, and for a write of more than a quarter of DCL_CL_MAX_STAGED (loading a large model):
// those are blocking writes from src.
dcl_status dcl__cl_buffer_write(void *p, dcl_buffer *buf, size_t off, size_t n, const void *src) {
    struct dcl_cl_ctx *ctx = p;
    size_t bytes = n * 4;
    if (ctx->sync || bytes > DCL_CL_MAX_STAGED / 4) {
        ctx->stats->waits++; // blocking
        CL_TRY(ctx,
               clEnqueueWriteBuffer(ctx->queue, (cl_mem)buf->handle, CL_TRUE, off * 4, bytes, src,
                                    0, NULL, NULL),
               "clEnqueueWriteBuffer");
        stage_recycle(ctx);
        return DCL_OK;
    }
    if (ctx->staged_bytes + bytes > DCL_CL_MAX_STAGED) { // the host is far ahead of the device
        ctx->stats->waits++;
        CL_TRY(ctx, clFinish(ctx->queue), "clFinish");
        stage_recycle(ctx);
    }
    struct dcl_cl_stage *st = stage_take(ctx, bytes);
    if (!st)
        return dcl__fail(DCL_ERR_NOMEM, "out of host memory staging a write of tensor '%s'",
                         buf->name);
    memcpy(st->data, src, bytes);
    cl_int err = clEnqueueWriteBuffer(ctx->queue, (cl_mem)buf->handle, CL_FALSE, off * 4, bytes,
                                      st->data, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        st->next = ctx->spare, ctx->spare = st; // nothing was queued
        return dcl__cl_fail(ctx, err, "clEnqueueWriteBuffer", __FILE__, __LINE__);
    }
    st->next = ctx->staged, ctx->staged = st;
    ctx->staged_bytes += bytes;
    return DCL_OK;
}

dcl_status dcl__cl_buffer_read(void *p, const dcl_buffer *buf, size_t off, size_t n, void *dst) {
    struct dcl_cl_ctx *ctx = p;
    ctx->stats->waits++; // blocking
    CL_TRY(ctx,
           clEnqueueReadBuffer(ctx->queue, (cl_mem)buf->handle, CL_TRUE, off * 4, n * 4, dst, 0,
                               NULL, NULL),
           "clEnqueueReadBuffer");
    stage_recycle(ctx);
    return DCL_OK;
}

dcl_status dcl__cl_finish(void *p) {
    struct dcl_cl_ctx *ctx = p;
    ctx->stats->waits++;
    forget_marks(ctx);
    CL_TRY(ctx, clFinish(ctx->queue), "clFinish");
    stage_recycle(ctx);
    return DCL_OK;
}

// A marker after the work queued so far; then a wait for the marker placed `lag` calls ago, so the
// queue keeps `lag` calls' worth of work and never drains.
dcl_status dcl__cl_finish_behind(void *p, int lag) {
    struct dcl_cl_ctx *ctx = p;
    if (lag < 1) return dcl__cl_finish(ctx);
    if (lag >= DCL_CL_MAX_MARKS) lag = DCL_CL_MAX_MARKS - 1;
    cl_event ev = NULL;
    cl_int err = clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &ev);
    if (err != CL_SUCCESS)
        return dcl__cl_fail(ctx, err, "clEnqueueMarkerWithWaitList", __FILE__, __LINE__);
    ctx->marks[ctx->n_marks++] = ev;
    while (ctx->n_marks > lag) {
        cl_event oldest = ctx->marks[0];
        ctx->stats->waits++;
        err = clWaitForEvents(1, &oldest);
        cl_int status = CL_COMPLETE;
        if (err == CL_SUCCESS)
            err = clGetEventInfo(oldest, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status,
                                 NULL);
        clReleaseEvent(oldest);
        memmove(ctx->marks, ctx->marks + 1, (size_t)--ctx->n_marks * sizeof *ctx->marks);
        if (err == CL_SUCCESS && status < 0) err = status;
        if (err != CL_SUCCESS) {
            forget_marks(ctx);
            return dcl__cl_fail(ctx, err, "clWaitForEvents (the work of an earlier step)", __FILE__,
                                __LINE__);
        }
    }
    return DCL_OK;
}
