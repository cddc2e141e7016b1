// Device list, selection, opening, buffers and the op dispatcher (bounds checks, CPU fallback).
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "device/backend.h"      // struct dcl_device, struct dcl_buffer, struct dcl_op_args
#include "device/cpu/cpu_pool.h" // dcl__cpu_pool_acquire
#include "diffcl/log.h"

// ---- listing and selection ------------------------------------------------------------------

dcl_status dcl_device_list(dcl_device_info **out, int *n, int *n_opencl_platforms) {
    dcl_device_info *cl = NULL;
    int n_cl = 0, n_plat = 0;
#ifdef DIFFCL_HAVE_OPENCL
    dcl_status s = dcl__cl_list(&cl, &n_cl, &n_plat);
    if (s != DCL_OK) return s;
#endif
    dcl_device_info *list = calloc((size_t)n_cl + 1, sizeof *list);
    if (!list) {
        free(cl);
        return dcl__fail(DCL_ERR_NOMEM, "out of memory listing devices");
    }
    dcl__cpu_info(&list[0]);
    for (int i = 0; i < n_cl; i++) {
        list[i + 1] = cl[i];
        list[i + 1].index = i + 1;
    }
    free(cl);
    *out = list;
    *n = n_cl + 1;
    if (n_opencl_platforms) *n_opencl_platforms = n_plat;
    return DCL_OK;
}

static int contains_nocase(const char *hay, const char *needle) {
    size_t nl = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < nl && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == nl) return 1;
    }
    return 0;
}

// Appends "  SPEC  NAME (TYPE, PLATFORM)" lines for every device to buf.
static void describe_devices(char *buf, size_t size, const dcl_device_info *list, int n) {
    size_t k = strlen(buf);
    for (int i = 0; i < n && k < size; i++) {
        const dcl_device_info *d = &list[i];
        int w = snprintf(buf + k, size - k, "\n  %-8s %s (%s%s%s)%s%s", d->spec, d->name, d->type,
                         d->backend == DCL_BACKEND_OPENCL ? ", " : "",
                         d->backend == DCL_BACKEND_OPENCL ? d->platform_name : "",
                         d->usable ? "" : " not usable: ", d->usable ? "" : d->why_not);
        if (w < 0) break;
        k += (size_t)w;
    }
    if (n == 1 && k < size)
        snprintf(buf + k, size - k,
                 "\n  (no OpenCL device found: is an ICD such as pocl-opencl-icd "
                 "or a GPU driver installed? `clinfo -l` lists them)");
}

static dcl_status no_match(const dcl_device_info *list, int n, const char *spec, const char *why) {
    char msg[1536];
    snprintf(msg, sizeof msg, "device selection '%s' %s; devices on this machine:", spec, why);
    describe_devices(msg, sizeof msg, list, n);
    return dcl__fail(DCL_ERR_NO_DEVICE, "%s", msg);
}

// Parses a non-negative decimal integer that fills all of s; -1 otherwise.
static long parse_index(const char *s, size_t len) {
    if (len == 0 || len > 6) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

// First usable OpenCL device whose type is `type` (NULL: any type); -1 if none.
static int first_cl(const dcl_device_info *list, int n, const char *type) {
    for (int i = 0; i < n; i++)
        if (list[i].backend == DCL_BACKEND_OPENCL && list[i].usable &&
            (!type || strcmp(list[i].type, type) == 0))
            return i;
    return -1;
}

// DIFFCL_AUTO=opencl makes auto prefer an OpenCL device of any type to the CPU reference.
static dcl_status auto_prefers_opencl(int *prefer) {
    const char *env = getenv("DIFFCL_AUTO");
    *prefer = env && strcmp(env, "opencl") == 0;
    if (env && *env && !*prefer)
        return dcl__fail(DCL_ERR_ARG,
                         "DIFFCL_AUTO='%s' is not valid; use opencl (auto prefers an "
                         "OpenCL device even when it is a CPU) or leave it unset",
                         env);
    return DCL_OK;
}

// auto's rule, as a rank (lower wins, list order breaks ties; -1: never): a usable GPU or
// accelerator OpenCL device (0); the CPU reference (2); a usable OpenCL device of another type,
// such as PoCL on the host's cores, only when it is preferred (DIFFCL_AUTO=opencl) or its tuning
// file (`diffcl tune`) measured it faster than the CPU reference (1) — on the same cores the CPU
// reference, with no kernel launches and OpenBLAS's GEMM, is otherwise the faster one.
static int auto_rank(const dcl_device_info *d, int prefer_cl) {
    if (d->backend == DCL_BACKEND_CPU) return 2;
    if (!d->usable) return -1;
    if (!strcmp(d->type, "gpu") || !strcmp(d->type, "accelerator")) return 0;
#ifdef DIFFCL_HAVE_OPENCL
    if (!prefer_cl && dcl__cl_tune_faster(d)) return 1;
#endif
    return prefer_cl ? 1 : -1;
}

const char *dcl_device_auto_why(const dcl_device_info *list, int n, int index) {
    int prefer_cl = 0, any_cl = 0;
    if (auto_prefers_opencl(&prefer_cl) != DCL_OK) dcl_clear_error();
    for (int i = 0; i < n; i++) any_cl |= list[i].backend == DCL_BACKEND_OPENCL && list[i].usable;
    if (index < 0 || index >= n) return "auto picks nothing";
    int r = auto_rank(&list[index], prefer_cl);
    if (r == 0) return "a GPU or accelerator OpenCL device wins";
    if (r == 1 && prefer_cl) return "DIFFCL_AUTO=opencl prefers an OpenCL device";
    if (r == 1) return "its tuning file (diffcl tune) measured it faster than the CPU reference";
    if (!any_cl) return "no usable OpenCL device";
    return "the only OpenCL devices are CPUs, where the CPU reference is faster on the same cores "
           "(unless diffcl tune measures otherwise; DIFFCL_AUTO=opencl prefers them)";
}

dcl_status dcl_device_select(const dcl_device_info *list, int n, const char *spec, int *index) {
    if (!spec || !*spec) spec = "auto";
    if (strlen(spec) > 64)
        return dcl__fail(DCL_ERR_ARG, "device selection is too long (%zu characters)",
                         strlen(spec));
    int found = -1;
    if (strcmp(spec, "auto") == 0) {
        int prefer_cl;
        dcl_status s = auto_prefers_opencl(&prefer_cl);
        if (s != DCL_OK) return s;
        for (int i = 0; i < n; i++)
            if (auto_rank(&list[i], prefer_cl) >= 0 &&
                (found < 0 || auto_rank(&list[i], prefer_cl) < auto_rank(&list[found], prefer_cl)))
                found = i;
        if (found < 0) found = 0; // list[0] is always the CPU reference
    } else if (strcmp(spec, "cpu") == 0) {
        found = 0;
    } else if (strcmp(spec, "cl") == 0) {
        if ((found = first_cl(list, n, NULL)) < 0)
            return no_match(list, n, spec, "found no usable OpenCL device");
    } else if (strncmp(spec, "cl:", 3) == 0 && spec[3]) {
        const char *rest = spec + 3, *colon = strchr(rest, ':');
        if (!strcmp(rest, "gpu") || !strcmp(rest, "cpu") || !strcmp(rest, "accelerator")) {
            if ((found = first_cl(list, n, rest)) < 0)
                return no_match(list, n, spec, "found no usable OpenCL device of that type");
        } else if (colon) {
            long p = parse_index(rest, (size_t)(colon - rest)),
                 d = parse_index(colon + 1, strlen(colon + 1));
            if (p < 0 || d < 0)
                return dcl__fail(DCL_ERR_ARG,
                                 "device selection '%s': expected cl:P:D with platform "
                                 "and device indices, e.g. cl:0:0",
                                 spec);
            for (int i = 0; i < n && found < 0; i++)
                if (list[i].backend == DCL_BACKEND_OPENCL && list[i].platform == p &&
                    list[i].device == d)
                    found = i;
            if (found < 0) return no_match(list, n, spec, "names no existing device");
            if (!list[found].usable)
                return no_match(list, n, spec, "names a device that is not usable");
        } else {
            for (int i = 0; i < n && found < 0; i++)
                if (list[i].backend == DCL_BACKEND_OPENCL && list[i].usable &&
                    (contains_nocase(list[i].name, rest) ||
                     contains_nocase(list[i].platform_name, rest)))
                    found = i;
            if (found < 0) return no_match(list, n, spec, "matches no usable OpenCL device name");
        }
    } else {
        return dcl__fail(DCL_ERR_ARG,
                         "device selection '%s' is not valid; use auto, cpu, cl, cl:gpu, "
                         "cl:cpu, cl:accelerator, cl:P:D or cl:NAME",
                         spec);
    }
    *index = found;
    return DCL_OK;
}

// ---- opening ----------------------------------------------------------------------------------

// DIFFCL_CPU_OPS=gemm,silu_backward (or "all") runs those ops on the CPU reference.
static dcl_status parse_cpu_ops(dcl_device *dev) {
    const char *env = getenv("DIFFCL_CPU_OPS");
    if (!env || !*env) return DCL_OK;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", env);
    for (char *tok = strtok(buf, ", "); tok; tok = strtok(NULL, ", ")) {
        if (strcmp(tok, "all") == 0) {
            memset(dev->force_cpu, 1, sizeof dev->force_cpu);
            continue;
        }
        int op = dcl__op_from_name(tok);
        if (op < 0) {
            char names[1024] = "";
            for (int i = 0; i < DCL_OP_COUNT; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                         dcl__op_descs[i].name);
            return dcl__fail(DCL_ERR_ARG, "DIFFCL_CPU_OPS names unknown op '%s'; ops are: all, %s",
                             tok, names);
        }
        dev->force_cpu[op] = 1;
    }
    dcl_log(DCL_LOG_INFO, "DIFFCL_CPU_OPS=%s: those ops run on the CPU reference", env);
    return DCL_OK;
}

static dcl_status open_entry(dcl_device *dev, const dcl_device_info *info) {
    memset(dev, 0, sizeof *dev);
    dev->info = *info;
    if (info->backend == DCL_BACKEND_CPU) {
        dev->iface = &dcl__cpu_backend;
        dcl__cpu_pool_acquire(); // released by the backend's free
        return DCL_OK;
    }
#ifdef DIFFCL_HAVE_OPENCL
    return dcl__cl_open(dev, info);
#else
    return dcl__fail(DCL_ERR_UNSUPPORTED, "diffcl was built without OpenCL (DIFFCL_OPENCL=OFF)");
#endif
}

dcl_status dcl_device_open(dcl_device **out, const char *spec) {
    *out = NULL;
    const char *from = "requested "; // where spec came from, for the log line
    if (!spec || !*spec) {
        spec = getenv("DIFFCL_DEVICE");
        from = "DIFFCL_DEVICE=";
        if (!spec || !*spec) spec = "auto", from = "default ";
    }
    dcl_device_info *list = NULL;
    int n;
    dcl_status s = dcl_device_list(&list, &n, NULL);
    if (s != DCL_OK) return s;
    int idx;
    if ((s = dcl_device_select(list, n, spec, &idx)) != DCL_OK) {
        free(list);
        return s;
    }
    dcl_device *dev = calloc(1, sizeof *dev);
    if (!dev) {
        free(list);
        return dcl__fail(DCL_ERR_NOMEM, "out of memory opening a device");
    }
    if (strcmp(spec, "auto") != 0) {
        s = open_entry(dev, &list[idx]);
    } else {
        // "auto" may move on when a device fails to open, and says so: its candidates in the
        // order of auto_rank, the CPU reference (which always opens) last.
        int prefer_cl = 0;
        auto_prefers_opencl(&prefer_cl); // dcl_device_select has checked it
        s = DCL_ERR_NO_DEVICE;
        for (int rank = 0; rank < 3 && s != DCL_OK; rank++) {
            for (int i = 0; i < n && s != DCL_OK; i++) {
                const dcl_device_info *d = &list[i];
                if (auto_rank(d, prefer_cl) != rank) continue;
                if (s != DCL_ERR_NO_DEVICE)
                    dcl_log(DCL_LOG_ERROR, "%s; auto tries %s next", dcl_last_error(), d->spec);
                s = open_entry(dev, d);
            }
        }
    }
    free(list);
    dev->by_auto = strcmp(spec, "auto") == 0;
    if (s == DCL_OK) s = parse_cpu_ops(dev);
    if (s != DCL_OK) {
        dcl_device_free(dev);
        return s;
    }
    dcl_log(DCL_LOG_INFO, "device %s: %s (%s%s%s) [%s%s]", dev->info.spec, dev->info.name,
            dev->info.type, dev->info.backend == DCL_BACKEND_OPENCL ? ", " : "",
            dev->info.backend == DCL_BACKEND_OPENCL ? dev->info.platform_name : "", from, spec);
    *out = dev;
    return DCL_OK;
}

void dcl_device_free(dcl_device *dev) {
    if (!dev) return;
    if (dev->iface && dev->iface->free) dev->iface->free(dev->ctx);
    free(dev);
}

dcl_status dcl_device_open_fallback(const dcl_device *dev, dcl_device **out) {
    *out = NULL;
    if (!dev->by_auto || dev->info.backend == DCL_BACKEND_CPU) return DCL_OK;
    dcl_device_info info;
    dcl__cpu_info(&info);
    dcl_device *cpu = calloc(1, sizeof *cpu);
    if (!cpu) return dcl__fail(DCL_ERR_NOMEM, "out of memory opening the CPU reference");
    open_entry(cpu, &info); // opening the CPU reference cannot fail
    *out = cpu;
    return DCL_OK;
}

const dcl_device_info *dcl_device_get_info(const dcl_device *dev) { return &dev->info; }

dcl_status dcl_device_finish(dcl_device *dev) {
    return dev->iface->finish ? dev->iface->finish(dev->ctx) : DCL_OK;
}

void dcl_device_stats_get(const dcl_device *dev, dcl_device_stats *out) { *out = dev->stats; }
void dcl_device_stats_reset(dcl_device *dev) { memset(&dev->stats, 0, sizeof dev->stats); }
dcl_status dcl_device_finish_behind(dcl_device *dev, int lag) {
    return dev->iface->finish_behind ? dev->iface->finish_behind(dev->ctx, lag) : DCL_OK;
}

dcl_status dcl_device_prepare(dcl_device *dev, int *compiled) {
    if (compiled) *compiled = 0;
#ifdef DIFFCL_HAVE_OPENCL
    if (dev->info.backend == DCL_BACKEND_OPENCL) return dcl__cl_prepare_device(dev, compiled);
#else
    (void)dev;
#endif
    return DCL_OK; // the CPU reference has nothing to build
}

#ifndef DIFFCL_HAVE_OPENCL // with OpenCL: host/device/opencl/cl_tune.c
dcl_status dcl_device_tune(dcl_device *dev, const dcl_tune_opts *opts, dcl_tune_result *result) {
    (void)opts;
    if (result) memset(result, 0, sizeof *result);
    return dcl__fail(DCL_ERR_UNSUPPORTED, "%s has nothing to tune: tune an OpenCL device",
                     dev->info.spec);
}
#endif

// ---- buffers ----------------------------------------------------------------------------------

static double mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

dcl_status dcl_buffer_alloc(dcl_buffer **out, dcl_device *dev, size_t n, const char *name) {
    *out = NULL;
    if (!name) name = "(unnamed)";
    uint64_t bytes = (uint64_t)n * 4;
    if (n > UINT32_MAX || bytes > dev->info.max_alloc)
        return dcl__fail(DCL_ERR_DEVICE_MEM,
                         "tensor '%s' needs %.1f MiB but device %s (%s) allows at most %.1f MiB "
                         "per buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE); use a smaller batch or model",
                         name, mib(bytes), dev->info.spec, dev->info.name,
                         mib(dev->info.max_alloc));
    dcl_buffer *buf = calloc(1, sizeof *buf);
    if (!buf) return dcl__fail(DCL_ERR_NOMEM, "out of host memory for tensor '%s'", name);
    buf->dev = dev;
    buf->n = n ? n : 1; // OpenCL has no empty buffers
    snprintf(buf->name, sizeof buf->name, "%s", name);
    dcl_status s = dev->iface->buffer_alloc(dev->ctx, buf);
    if (s != DCL_OK) {
        free(buf);
        return s;
    }
    buf->n = n;
    *out = buf;
    return DCL_OK;
}

void dcl_buffer_free(dcl_buffer *buf) {
    if (!buf) return;
    buf->dev->iface->buffer_free(buf->dev->ctx, buf);
    free(buf);
}

size_t dcl_buffer_size(const dcl_buffer *buf) { return buf->n; }
const char *dcl_buffer_name(const dcl_buffer *buf) { return buf->name; }
dcl_device *dcl_buffer_device(const dcl_buffer *buf) { return buf->dev; }

static dcl_status check_range(const dcl_buffer *buf, size_t off, size_t n, const char *what) {
    if (off > buf->n || n > buf->n - off)
        return dcl__fail(DCL_ERR_ARG, "%s of tensor '%s': elements [%zu, %zu) are outside its %zu",
                         what, buf->name, off, off + n, buf->n);
    return DCL_OK;
}

dcl_status dcl_buffer_write(dcl_buffer *buf, size_t off, size_t n, const void *src) {
    dcl_status s = check_range(buf, off, n, "write");
    if (s != DCL_OK || n == 0) return s;
    buf->dev->stats.writes++, buf->dev->stats.write_bytes += (uint64_t)n * 4;
    return buf->dev->iface->buffer_write(buf->dev->ctx, buf, off, n, src);
}

dcl_status dcl_buffer_read(const dcl_buffer *buf, size_t off, size_t n, void *dst) {
    dcl_status s = check_range(buf, off, n, "read");
    if (s != DCL_OK || n == 0) return s;
    buf->dev->stats.reads++, buf->dev->stats.read_bytes += (uint64_t)n * 4;
    return buf->dev->iface->buffer_read(buf->dev->ctx, buf, off, n, dst);
}

// ---- dispatch ---------------------------------------------------------------------------------

static dcl_status check_view(dcl_device *dev, const struct dcl_op_args *a, dcl_ptr p, size_t len,
                             const char *role, int k) {
    const char *op = dcl__op_name(a->op);
    if (!p.buf) return dcl__fail(DCL_ERR_ARG, "op %s: %s %d is a NULL buffer", op, role, k);
    if (p.buf->dev != dev)
        return dcl__fail(DCL_ERR_ARG, "op %s: tensor '%s' lives on device %s, not on %s", op,
                         p.buf->name, p.buf->dev ? p.buf->dev->info.spec : "(host)",
                         dev->info.spec);
    if (p.off > p.buf->n || len > p.buf->n - p.off)
        return dcl__fail(DCL_ERR_ARG,
                         "op %s: %s tensor '%s' view [%zu, %zu) exceeds its %zu elements", op, role,
                         p.buf->name, p.off, p.off + len, p.buf->n);
    return DCL_OK;
}

// Runs a on the CPU reference: copies each view to the host, runs, copies the outputs back.
// Outputs are read too, since ops such as bias_backward accumulate into them.
static dcl_status run_on_cpu(dcl_device *dev, const struct dcl_op_args *a) {
    if (dev->iface == &dcl__cpu_backend) return dcl__cpu_backend.ops[a->op](NULL, a);
    dcl_log(DCL_LOG_DEBUG, "op %s runs on the CPU reference", dcl__op_name(a->op));
    struct dcl_op_args h = *a;
    dcl_buffer host[DCL_MAX_OUT + DCL_MAX_IN] = {{0}};
    dcl_status s = DCL_OK;
    int k = 0;
    for (int i = 0; i < a->n_out + a->n_in && s == DCL_OK; i++, k++) {
        int is_out = i < a->n_out;
        dcl_ptr p = is_out ? a->out[i] : a->in[i - a->n_out];
        size_t len = is_out ? a->out_len[i] : a->in_len[i - a->n_out];
        host[k].n = len;
        snprintf(host[k].name, sizeof host[k].name, "%s", p.buf->name);
        host[k].handle = malloc((len ? len : 1) * 4);
        if (!host[k].handle) s = dcl__fail(DCL_ERR_NOMEM, "out of host memory for CPU fallback");
        else if (len) s = dcl_buffer_read(p.buf, p.off, len, host[k].handle);
        if (is_out) h.out[i] = dcl_at(&host[k], 0);
        else h.in[i - a->n_out] = dcl_at(&host[k], 0);
    }
    if (s == DCL_OK) s = dcl__cpu_backend.ops[a->op](NULL, &h);
    for (int i = 0; i < a->n_out && s == DCL_OK; i++)
        if (a->out_len[i])
            s = dcl_buffer_write(a->out[i].buf, a->out[i].off, a->out_len[i], host[i].handle);
    for (int i = 0; i < k; i++) free(host[i].handle);
    return s;
}

dcl_status dcl__op_run(dcl_device *dev, const struct dcl_op_args *a) {
    dcl_status s;
    size_t work = 0;
    for (int i = 0; i < a->n_out; i++) {
        if ((s = check_view(dev, a, a->out[i], a->out_len[i], "output", i)) != DCL_OK) return s;
        work += a->out_len[i];
    }
    for (int i = 0; i < a->n_in; i++)
        if ((s = check_view(dev, a, a->in[i], a->in_len[i], "input", i)) != DCL_OK) return s;
    if (work == 0) return DCL_OK;
    dev->stats.ops++;
    if (dev->iface == &dcl__cpu_backend) dev->stats.launches++; // the CPU reference: op = launch
    dcl_status (*fn)(void *, const struct dcl_op_args *) = dev->iface->ops[a->op];
    if (!fn || dev->force_cpu[a->op]) return run_on_cpu(dev, a);
    if ((s = fn(dev->ctx, a)) != DCL_OK)
        dcl__fail_context(s, "op %s (%zu output elements)", dcl__op_name(a->op), work);
    return s;
}
