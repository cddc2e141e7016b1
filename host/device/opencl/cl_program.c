// The OpenCL backend's programs and kernels: program sources (a generated #define preamble,
// cl/common.h, the op's file), builds through the on-disk cache, kernels keyed by (file, name),
// launch shapes and DIFFCL_CL_SYNC, and dcl_device_prepare.
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "device/opencl/cl_impl.h"
#include "device/opencl/cl_sources.h" // dcl_cl_sources: the embedded kernel files
#include "device/test_hooks.h"        // dcl__cl_kernel_handle
#include "diffcl/log.h"

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

// The generated head of every program: tuning values and device quirks as #defines (cl/common.h
// has their defaults), then #line so that build logs name common.h and the op's file. It is part
// of the source, so of the program cache's key. DCL_WG_SIZE is ctx->wg_size: 256 within the
// device's limits, or the size the device's tuning file gives (cl_tune_file.c, before the first
// build). No device needs a quirk today; one would be decided here from ctx->info (the device's
// own answers, never its vendor) as a #define.
static void preamble(const struct dcl_cl_ctx *ctx, char *buf, size_t size) {
    snprintf(buf, size, "#define DCL_WG_SIZE %zu\n#line 1 \"common.h\"\n", ctx->wg_size);
}

// Says once per device that kernels are being compiled, and where later runs will find them.
static void say_compiling(struct dcl_cl_ctx *ctx) {
    if (ctx->said_compiling) return;
    ctx->said_compiling = 1;
    const dcl_device_info *d = ctx->info;
    if (ctx->cache_dir[0])
        dcl_log(DCL_LOG_INFO,
                "compiling OpenCL kernels for %s (%s, %s %s): first run on this device, later "
                "runs load them from the cache in %s",
                d->spec, d->name, d->platform_name, d->driver, ctx->cache_dir);
    else
        dcl_log(DCL_LOG_INFO,
                "compiling OpenCL kernels for %s (%s, %s %s); the program cache is off, so every "
                "run compiles them",
                d->spec, d->name, d->platform_name, d->driver);
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
    // Program = preamble + common.h + the op's file (cl/README.md).
    char head[256], line[128];
    preamble(ctx, head, sizeof head);
    snprintf(line, sizeof line, "#line 1 \"%s\"\n", file);
    const char *parts[] = {head, common, "\n", line, body};
    const size_t n_parts = sizeof parts / sizeof *parts;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t key = 0;
    if (ctx->cache_dir[0]) {
        key = dcl__cl_cache_key(ctx, parts, n_parts);
        cl_program prog = dcl__cl_cache_load(ctx, key, file, parts, n_parts);
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
    say_compiling(ctx);
    cl_int err;
    cl_program prog = clCreateProgramWithSource(ctx->context, (cl_uint)n_parts, parts, NULL, &err);
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
    double ms = ms_since(&t0);
    ctx->compiled++;
    ctx->compile_ms += ms;
    dcl_log(DCL_LOG_VERBOSE, "program %s on %s: %.0f ms (source)", file, ctx->info->spec, ms);
    if (ctx->cache_dir[0]) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        dcl__cl_cache_store(ctx, prog, key, file);
        dcl_log(DCL_LOG_DEBUG, "program %s on %s: stored in the cache in %.0f ms", file,
                ctx->info->spec, ms_since(&t0));
    }
    *out = prog;
    return DCL_OK;
}

// The program of cl/<file> (index pi into dcl_cl_sources), built on first use.
static dcl_status program(struct dcl_cl_ctx *ctx, int pi, cl_program *out) {
    dcl_status s;
    if (!ctx->programs[pi] &&
        (s = build_program(ctx, dcl_cl_sources[pi].name, &ctx->programs[pi])) != DCL_OK)
        return s;
    *out = ctx->programs[pi];
    return DCL_OK;
}

static int source_index(const char *file) {
    for (int i = 0; file && i < dcl_cl_source_count; i++)
        if (strcmp(dcl_cl_sources[i].name, file) == 0) return i;
    return -1;
}

dcl_status dcl__cl_prepare(struct dcl_cl_ctx *ctx, int *compiled) {
    for (int op = 0; op < DCL_OP_COUNT; op++) {
        int pi = source_index(dcl__op_descs[op].file);
        if (pi < 0) continue; // gemm: CLBlast
        cl_program prog;
        dcl_status s = program(ctx, pi, &prog);
        if (s != DCL_OK) return s;
    }
    if (ctx->compiled && !ctx->prepared)
        dcl_log(DCL_LOG_INFO, "compiled %u kernel programs for %s in %.1f s", ctx->compiled,
                ctx->info->spec, ctx->compile_ms / 1e3);
    ctx->prepared = 1;
    if (compiled) *compiled = (int)ctx->compiled;
    return DCL_OK;
}

dcl_status dcl__cl_kernel(struct dcl_cl_ctx *ctx, const char *file, const char *name,
                          struct dcl_cl_kernel **out) {
    int pi = source_index(file);
    for (int i = 0; i < ctx->n_kernels; i++)
        if (ctx->kernels[i].program == pi && strcmp(ctx->kernels[i].name, name) == 0) {
            *out = &ctx->kernels[i];
            return DCL_OK;
        }
    if (pi < 0 || pi >= DCL_CL_MAX_PROGRAMS || ctx->n_kernels == DCL_CL_MAX_KERNELS)
        return dcl__fail(DCL_ERR_ARG, "kernel %s: no embedded file cl/%s or too many kernels", name,
                         file ? file : "(none)");
    cl_program prog;
    dcl_status s = program(ctx, pi, &prog);
    if (s != DCL_OK) return s;
    struct dcl_cl_kernel *k = &ctx->kernels[ctx->n_kernels];
    cl_int err;
    k->kernel = clCreateKernel(prog, name, &err);
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
    size_t local = ctx->force_local ? ctx->force_local : ctx->wg_size;
    local = min_size(local, limit);
    return local ? local : 1;
}

// DIFFCL_CL_SYNC: waits for the queue after `what` was enqueued and checks ev's status (when
// given; released here), so an asynchronous failure is reported against `what`.
static dcl_status sync_after(struct dcl_cl_ctx *ctx, const char *what, cl_event ev) {
    char msg[320];
    ctx->stats->waits++;
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
    ctx->stats->launches++;
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, k->kernel, 1, NULL, &global, &local, 0, NULL,
                                        ctx->sync ? &ev : NULL);
    if (err == CL_SUCCESS && !ctx->sync) return DCL_OK;
    char what[160];
    snprintf(what, sizeof what, "kernel %s (global %zu, local %zu, n %zu)", k->name, global, local,
             n);
    if (err != CL_SUCCESS) return dcl__cl_fail(ctx, err, what, __FILE__, __LINE__);
    return sync_after(ctx, what, ev);
}

dcl_status dcl__cl_prepare_device(dcl_device *dev, int *compiled) {
    return dcl__cl_prepare(dev->ctx, compiled);
}

dcl_status dcl__cl_kernel_handle(dcl_device *dev, const char *file, const char *name,
                                 void **kernel) {
    *kernel = NULL;
    if (dev->info.backend != DCL_BACKEND_OPENCL)
        return dcl__fail(DCL_ERR_ARG, "%s is not an OpenCL device", dev->info.spec);
    struct dcl_cl_kernel *k;
    dcl_status s = dcl__cl_kernel(dev->ctx, file, name, &k);
    if (s == DCL_OK) *kernel = k->kernel;
    return s;
}
