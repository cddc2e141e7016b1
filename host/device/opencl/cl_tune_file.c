// The OpenCL backend's tuning file (what `diffcl tune` found, kept in the program cache folder) and
// applying it when a device opens. The search itself is in cl_tune.c: it runs ops through the
// public API, so it sits above device.c, and nothing below calls it.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <clblast_c.h>

#include "core/error.h"
#include "device/opencl/cl_tune.h"
#include "device/test_hooks.h" // dcl__cl_tune_applied
#include "diffcl/log.h"
#include "diffcl/ops.h"     // dcl_gemm, dcl_fill, dcl_relu_forward, dcl_axpby, dcl_bias_*
#include "io/atomic_file.h" // dcl__atomic_write: temp file + fsync + rename

// ---- the tuning file ---------------------------------------------------------------------------
//
// DIR/tune-<16 hex digits>.txt, DIR being the program cache folder (DIFFCL_CL_CACHE_DIR, else
// $XDG_CACHE_HOME/diffcl, else ~/.cache/diffcl) and the digits an FNV-1a 64 hash of the key lines.
// Plain text, one field per line:
//
//   diffcl-tune 1
//   device NAME                 the key (five lines): a file whose key lines differ from the
//   vendor VENDOR               device's is foreign and ignored, so a driver or CLBlast update
//   driver VERSION              makes the search run again
//   platform NAME
//   clblast MAJOR.MINOR.PATCH
//   wg_size 128                 the preamble's DCL_WG_SIZE
//   faster_than_cpu 0           ran faster than the CPU reference (dcl_tune_result says on what)
//   own_gemm 7                  GEMM cases that run cl/gemm.cl instead of CLBlast: bit 1 << (2·ta
//                               + tb), so 1 NN, 2 NT, 4 TN (TT always runs in CLBlast)
//   Xgemm GEMMK=0 KREG=1 ...    one line per CLBlast kernel overridden, with every parameter
//   XgemmDirect KWID=2 ...      CLBlast's database lists for it, in its order
//   GemmRoutine XGEMM_MIN_INDIRECT_SIZE=896
//   end
//
// A file that does not parse, misses "end" or names a value CLBlast rejects is ignored with a
// message at verbose level. CLBlast keeps one set of parameters per (device, kernel) for the whole
// process (CLBlastOverrideParameters), so a tuning applies to every GEMM shape.

#define TUNE_MAGIC "diffcl-tune 1"
#define TUNE_MAX_FILE 4096

// CLBlast's kernels and their parameters, in the order of its database (src/database/kernels/ of
// https://github.com/CNugteren/CLBlast); CLBlastOverrideParameters needs every one of them.
const struct tune_kernel dcl__tune_kernels[K_COUNT] = {
    [K_XGEMM] = {"Xgemm",
                 16,
                 {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG",
                  "SA", "SB", "STRM", "STRN", "VWM", "VWN"},
                 {0, 1, 32, 2, 8, 8, 32, 8, 8, 32, 1, 1, 0, 0, 4, 4}},
    [K_DIRECT] = {"XgemmDirect",
                  10,
                  {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND",
                   "WGD"},
                  {2, 8, 8, 8, 8, 1, 1, 1, 1, 16}},
    [K_ROUTINE] = {"GemmRoutine", 1, {"XGEMM_MIN_INDIRECT_SIZE"}, {896}},
};

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; // a separator, so fields cannot run into each other
}

// The key lines of info's device (each ends in '\n').
static void key_lines(const dcl_device_info *d, char *buf, size_t size) {
    snprintf(buf, size, "device %s\nvendor %s\ndriver %s\nplatform %s\nclblast %d.%d.%d\n", d->name,
             d->vendor, d->driver, d->platform_name, CLBLAST_VERSION_MAJOR, CLBLAST_VERSION_MINOR,
             CLBLAST_VERSION_PATCH);
}

// The cache folder, as cl_cache.c resolves it; 0 when there is none (or DIFFCL_CL_CACHE=off).
static int tune_dir(char *dir, size_t size) {
    const char *mode = getenv("DIFFCL_CL_CACHE");
    if (mode && (strcmp(mode, "off") == 0 || strcmp(mode, "0") == 0)) return 0;
    const char *env = getenv("DIFFCL_CL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    int n;
    if (env && *env) n = snprintf(dir, size, "%s", env);
    else if (xdg && xdg[0] == '/') n = snprintf(dir, size, "%s/diffcl", xdg);
    else if (home && *home) n = snprintf(dir, size, "%s/.cache/diffcl", home);
    else return 0;
    return n > 0 && (size_t)n + 32 < size;
}

static int tune_path(const dcl_device_info *d, char *path, size_t size) {
    char dir[1024], key[768];
    if (!tune_dir(dir, sizeof dir)) return 0;
    key_lines(d, key, sizeof key);
    int n = snprintf(path, size, "%s/tune-%016llx.txt", dir,
                     (unsigned long long)fnv1a(0xcbf29ce484222325ull, key));
    return n > 0 && (size_t)n < size;
}

// Parses "NAME=VALUE ..." for kernel k into v; 0 on any mismatch with CLBlast's parameter list.
static int parse_params(int k, const char *s, size_t *v) {
    for (int i = 0; i < dcl__tune_kernels[k].n; i++) {
        size_t len = strlen(dcl__tune_kernels[k].params[i]);
        while (*s == ' ') s++;
        if (strncmp(s, dcl__tune_kernels[k].params[i], len) != 0 || s[len] != '=') return 0;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(s + len + 1, &end, 10);
        if (errno || end == s + len + 1 || x > (1u << 24)) return 0;
        v[i] = (size_t)x;
        s = end;
    }
    while (*s == ' ') s++;
    return *s == '\0';
}

// Reads and checks d's tuning file into t. 1: found and valid; 0: none, foreign or corrupt (said
// at verbose level).
static int tuning_load(const dcl_device_info *d, struct tuning *t) {
    char path[1100], key[768], text[TUNE_MAX_FILE + 1];
    memset(t, 0, sizeof *t);
    if (!tune_path(d, path, sizeof path)) return 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t len = fread(text, 1, TUNE_MAX_FILE + 1, fp);
    fclose(fp);
    const char *why = NULL;
    key_lines(d, key, sizeof key);
    size_t magic = strlen(TUNE_MAGIC "\n"), klen = strlen(key);
    if (len > TUNE_MAX_FILE) why = "it is too large";
    else if (len < magic || memcmp(text, TUNE_MAGIC "\n", magic) != 0) why = "it has no header";
    else if (len < magic + klen || memcmp(text + magic, key, klen) != 0)
        why = "it was written for another device, driver or CLBlast";
    if (why) goto bad;
    text[len] = '\0';
    int ended = 0;
    for (char *line = text + magic + klen, *next; *line && !ended; line = next) {
        next = strchr(line, '\n');
        if (!next) {
            why = "its last line is cut off";
            goto bad;
        }
        *next++ = '\0';
        char *sp = strchr(line, ' ');
        const char *arg = sp ? sp + 1 : "";
        if (sp) *sp = '\0';
        char *end;
        if (strcmp(line, "end") == 0) {
            ended = 1;
        } else if (strcmp(line, "wg_size") == 0) {
            t->wg_size = strtoul(arg, &end, 10);
            if (*end || t->wg_size == 0 || (t->wg_size & (t->wg_size - 1)) ||
                t->wg_size > d->max_wg_size)
                why = "its wg_size is not a power of two within the device's limit";
        } else if (strcmp(line, "own_gemm") == 0) {
            t->own_gemm = (unsigned)strtoul(arg, &end, 10);
            if (*end || end == arg || t->own_gemm > 7) why = "its own_gemm is not in 0..7";
        } else if (strcmp(line, "faster_than_cpu") == 0) {
            t->faster_than_cpu = strcmp(arg, "1") == 0;
            if (strcmp(arg, "0") != 0 && strcmp(arg, "1") != 0) why = "bad faster_than_cpu";
        } else {
            int k = 0;
            while (k < K_COUNT && strcmp(line, dcl__tune_kernels[k].name) != 0) k++;
            if (k == K_COUNT) why = "it has a line this version does not know";
            else if (!parse_params(k, arg, t->v[k])) why = "a kernel's parameters do not parse";
            else t->has[k] = 1;
        }
        if (why) goto bad;
    }
    if (!ended) {
        why = "it has no end line";
        goto bad;
    }
    return 1;
bad:
    dcl_log(DCL_LOG_VERBOSE, "tuning file %s ignored: %s", path, why);
    memset(t, 0, sizeof *t);
    return 0;
}

dcl_status dcl__tuning_store(const dcl_device_info *d, const struct tuning *t, char *path,
                             size_t size) {
    char dir[1024], text[TUNE_MAX_FILE], key[768];
    if (!tune_dir(dir, sizeof dir) || !tune_path(d, path, size))
        return dcl__fail(DCL_ERR_IO, "no folder for the tuning file: set DIFFCL_CL_CACHE_DIR (and "
                                     "DIFFCL_CL_CACHE must not be off)");
    // Creates the folder and its parents, readable by this user only (as the program cache).
    for (char *p = dir + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return dcl__fail(DCL_ERR_IO, "cannot create %s for the tuning file: %s", dir,
                             strerror(errno));
        *p = c;
        if (!c) break;
    }
    key_lines(d, key, sizeof key);
    size_t n = (size_t)snprintf(text, sizeof text,
                                TUNE_MAGIC "\n%swg_size %zu\nfaster_than_cpu %d\nown_gemm %u\n",
                                key, t->wg_size, t->faster_than_cpu, t->own_gemm);
    for (int k = 0; k < K_COUNT && n < sizeof text; k++) {
        if (!t->has[k]) continue;
        n += (size_t)snprintf(text + n, sizeof text - n, "%s", dcl__tune_kernels[k].name);
        for (int i = 0; i < dcl__tune_kernels[k].n && n < sizeof text; i++)
            n += (size_t)snprintf(text + n, sizeof text - n, " %s=%zu",
                                  dcl__tune_kernels[k].params[i], t->v[k][i]);
        if (n < sizeof text) n += (size_t)snprintf(text + n, sizeof text - n, "\n");
    }
    if (n < sizeof text) n += (size_t)snprintf(text + n, sizeof text - n, "end\n");
    if (n >= sizeof text) return dcl__fail(DCL_ERR_IO, "tuning file %s would be too long", path);
    return dcl__atomic_write(path, text, n);
}

int dcl__tune_override(struct dcl_cl_ctx *ctx, int k, const size_t *v) {
    CLBlastStatusCode st = CLBlastOverrideParameters(
        ctx->device, dcl__tune_kernels[k].name, CLBlastPrecisionSingle,
        (size_t)dcl__tune_kernels[k].n, (const char **)dcl__tune_kernels[k].params, v);
    if (st != CLBlastSuccess)
        dcl_log(DCL_LOG_VERBOSE, "CLBlastOverrideParameters(%s) on %s: CLBlast status %d",
                dcl__tune_kernels[k].name, ctx->info->spec, (int)st);
    return st == CLBlastSuccess;
}

// Describes what ctx applied into ctx->tuned (the test hook's answer).
static void describe(struct dcl_cl_ctx *ctx, const struct tuning *t) {
    char *b = ctx->tuned;
    size_t size = sizeof ctx->tuned,
           n = (size_t)snprintf(b, size, "wg_size=%zu own_gemm=%u", ctx->wg_size, ctx->own_gemm);
    for (int k = 0; k < K_COUNT && n < size; k++) {
        if (!t->has[k]) continue;
        n += (size_t)snprintf(b + n, size - n, " %s:", dcl__tune_kernels[k].name);
        for (int i = 0; i < dcl__tune_kernels[k].n && n < size; i++)
            n += (size_t)snprintf(b + n, size - n, "%s%zu", i ? "," : "", t->v[k][i]);
    }
}

// DIFFCL_CL_GEMM=own or clblast: every GEMM case through cl/gemm.cl or CLBlast, whatever the
// tuning file says (benchmarks and tests); unset or anything else: the file decides.
static void gemm_override(struct dcl_cl_ctx *ctx) {
    const char *g = getenv("DIFFCL_CL_GEMM");
    if (g && (strcmp(g, "own") == 0 || strcmp(g, "clblast") == 0)) {
        ctx->own_gemm = strcmp(g, "own") == 0 ? 7u : 0u;
        dcl_log(DCL_LOG_VERBOSE, "GEMMs on %s through %s (DIFFCL_CL_GEMM)", ctx->info->spec,
                ctx->own_gemm ? "cl/gemm.cl" : "CLBlast");
    }
}

void dcl__cl_tune_apply(struct dcl_cl_ctx *ctx) {
    ctx->tuned[0] = '\0';
    const char *mode = getenv("DIFFCL_CL_TUNE");
    if (mode && (strcmp(mode, "off") == 0 || strcmp(mode, "0") == 0)) {
        dcl_log(DCL_LOG_VERBOSE, "tuning of %s not applied (DIFFCL_CL_TUNE=%s)", ctx->info->spec,
                mode);
        gemm_override(ctx);
        return;
    }
    struct tuning t;
    if (!tuning_load(ctx->info, &t)) {
        gemm_override(ctx);
        return;
    }
    if (t.wg_size && t.wg_size <= ctx->max_wg_size && t.wg_size <= ctx->max_item_size0)
        ctx->wg_size = t.wg_size;
    ctx->own_gemm = t.own_gemm;
    gemm_override(ctx);
    for (int k = 0; k < K_COUNT; k++)
        if (t.has[k] && !dcl__tune_override(ctx, k, t.v[k])) t.has[k] = 0;
    describe(ctx, &t);
    dcl_log(DCL_LOG_VERBOSE, "tuning applied to %s: %s", ctx->info->spec, ctx->tuned);
}

int dcl__cl_tune_faster(const dcl_device_info *d) {
    const char *mode = getenv("DIFFCL_CL_TUNE");
    if (mode && (strcmp(mode, "off") == 0 || strcmp(mode, "0") == 0)) return 0;
    struct tuning t;
    return tuning_load(d, &t) && t.faster_than_cpu;
}

void dcl__cl_tune_applied(const dcl_device *dev, char *buf, size_t size) {
    const struct dcl_cl_ctx *ctx = dev->ctx;
    snprintf(buf, size, "%s", dev->info.backend == DCL_BACKEND_OPENCL ? ctx->tuned : "");
}
