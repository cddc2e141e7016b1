// The OpenCL backend's tuning (`diffcl tune`): a search over CLBlast's GEMM parameters and the
// preamble's DCL_WG_SIZE for the shapes the models use, the tuning file that keeps the result in
// the program cache folder, and applying that file when a device opens.
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <clblast_c.h>

#include "core/error.h"
#include "device/opencl/cl_impl.h"
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
//   faster_than_cpu 0           the model GEMMs ran faster than on the CPU reference
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
enum { K_XGEMM, K_DIRECT, K_ROUTINE, K_COUNT };
#define MAX_PARAMS 16
static const struct tune_kernel {
    const char *name;
    int n;
    const char *params[MAX_PARAMS];
    size_t defaults[MAX_PARAMS]; // the database's "default" entry: the search starts there
} kernels[K_COUNT] = {
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

struct tuning {
    size_t wg_size;      // 0: not tuned
    int faster_than_cpu; // the model GEMMs ran faster on this device than on the CPU reference
    int has[K_COUNT];
    size_t v[K_COUNT][MAX_PARAMS];
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
    for (int i = 0; i < kernels[k].n; i++) {
        size_t len = strlen(kernels[k].params[i]);
        while (*s == ' ') s++;
        if (strncmp(s, kernels[k].params[i], len) != 0 || s[len] != '=') return 0;
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
        } else if (strcmp(line, "faster_than_cpu") == 0) {
            t->faster_than_cpu = strcmp(arg, "1") == 0;
            if (strcmp(arg, "0") != 0 && strcmp(arg, "1") != 0) why = "bad faster_than_cpu";
        } else {
            int k = 0;
            while (k < K_COUNT && strcmp(line, kernels[k].name) != 0) k++;
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

static dcl_status tuning_store(const dcl_device_info *d, const struct tuning *t, char *path,
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
    size_t n =
        (size_t)snprintf(text, sizeof text, TUNE_MAGIC "\n%swg_size %zu\nfaster_than_cpu %d\n", key,
                         t->wg_size, t->faster_than_cpu);
    for (int k = 0; k < K_COUNT && n < sizeof text; k++) {
        if (!t->has[k]) continue;
        n += (size_t)snprintf(text + n, sizeof text - n, "%s", kernels[k].name);
        for (int i = 0; i < kernels[k].n && n < sizeof text; i++)
            n += (size_t)snprintf(text + n, sizeof text - n, " %s=%zu", kernels[k].params[i],
                                  t->v[k][i]);
        if (n < sizeof text) n += (size_t)snprintf(text + n, sizeof text - n, "\n");
    }
    if (n < sizeof text) n += (size_t)snprintf(text + n, sizeof text - n, "end\n");
    if (n >= sizeof text) return dcl__fail(DCL_ERR_IO, "tuning file %s would be too long", path);
    return dcl__atomic_write(path, text, n);
}

static int override(struct dcl_cl_ctx *ctx, int k, const size_t *v) {
    CLBlastStatusCode st =
        CLBlastOverrideParameters(ctx->device, kernels[k].name, CLBlastPrecisionSingle,
                                  (size_t)kernels[k].n, (const char **)kernels[k].params, v);
    if (st != CLBlastSuccess)
        dcl_log(DCL_LOG_VERBOSE, "CLBlastOverrideParameters(%s) on %s: CLBlast status %d",
                kernels[k].name, ctx->info->spec, (int)st);
    return st == CLBlastSuccess;
}

// Describes what ctx applied into ctx->tuned (the test hook's answer).
static void describe(struct dcl_cl_ctx *ctx, const struct tuning *t) {
    char *b = ctx->tuned;
    size_t size = sizeof ctx->tuned, n = (size_t)snprintf(b, size, "wg_size=%zu", ctx->wg_size);
    for (int k = 0; k < K_COUNT && n < size; k++) {
        if (!t->has[k]) continue;
        n += (size_t)snprintf(b + n, size - n, " %s:", kernels[k].name);
        for (int i = 0; i < kernels[k].n && n < size; i++)
            n += (size_t)snprintf(b + n, size - n, "%s%zu", i ? "," : "", t->v[k][i]);
    }
}

void dcl__cl_tune_apply(struct dcl_cl_ctx *ctx) {
    ctx->tuned[0] = '\0';
    const char *mode = getenv("DIFFCL_CL_TUNE");
    if (mode && (strcmp(mode, "off") == 0 || strcmp(mode, "0") == 0)) {
        dcl_log(DCL_LOG_VERBOSE, "tuning of %s not applied (DIFFCL_CL_TUNE=%s)", ctx->info->spec,
                mode);
        return;
    }
    struct tuning t;
    if (!tuning_load(ctx->info, &t)) return;
    if (t.wg_size && t.wg_size <= ctx->max_wg_size && t.wg_size <= ctx->max_item_size0)
        ctx->wg_size = t.wg_size;
    for (int k = 0; k < K_COUNT; k++)
        if (t.has[k] && !override(ctx, k, t.v[k])) t.has[k] = 0;
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

// ---- the search --------------------------------------------------------------------------------

// A GEMM the models run, with how often it runs per training step. M, N, K as dcl_gemm takes them.
struct shape {
    size_t M, N, K;
    int ta, tb, weight;
};

// The spiral MLP (3×128, 2-d data, 32-d time embedding, batch 1024: host/nn/layers.c's Linear
// forward NT, weight gradient TN, input gradient NN) and the Fashion-MNIST U-Net's 3×3
// convolutions at 28×28 with 16 channels and at 14×14 with 32, over n images (forward
// co × n·Ho·Wo × ci·9 NN, weight gradient NT, column gradient TN; the U-Net runs 4 of each per
// step at batch 64, so a search over n = 8 counts each 32 times). `scale` divides both batches.
static int model_shapes(struct shape *s, size_t scale, size_t n) {
    size_t b = 1024 / scale, w = 4 * 64 / n;
    n /= scale;
    if (n < 1) n = 1;
    const struct shape list[] = {
        {b, 128, 128, 0, 1, 2},           {b, 128, 34, 0, 1, 1},
        {128, 128, b, 1, 0, 2},           {128, 34, b, 1, 0, 1},
        {b, 128, 128, 0, 0, 2},           {16, n * 784, 144, 0, 0, (int)w},
        {16, 144, n * 784, 0, 1, (int)w}, {144, n * 784, 16, 1, 0, (int)w},
        {32, n * 196, 288, 0, 0, (int)w}, {32, 288, n * 196, 0, 1, (int)w},
        {288, n * 196, 32, 1, 0, (int)w},
    };
    int count = (int)(sizeof list / sizeof *list);
    memcpy(s, list, sizeof list);
    return count;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

struct bench {
    dcl_device *dev;
    dcl_buffer *a, *b, *c;
    int reps; // timed calls per shape after one warm-up call; the fastest counts
};

// Milliseconds of one GEMM of shape s (the fastest of b->reps calls after a warm-up call, which
// builds the kernels); a negative value when the call fails (a candidate CLBlast rejects).
static double time_gemm(struct bench *b, const struct shape *s) {
    double best = -1;
    for (int r = 0; r <= b->reps; r++) {
        double t0 = now_ms();
        dcl_status st = dcl_gemm(b->dev, dcl_at(b->c, 0), dcl_at(b->a, 0), dcl_at(b->b, 0), s->ta,
                                 s->tb, s->M, s->N, s->K, 1.0f, 0.0f);
        if (st == DCL_OK) st = dcl_device_finish(b->dev);
        if (st != DCL_OK) {
            dcl_log(DCL_LOG_VERBOSE, "candidate rejected: %s", dcl_last_error());
            dcl_clear_error();
            return -1;
        }
        double ms = now_ms() - t0;
        if (r > 0 && (best < 0 || ms < best)) best = ms;
    }
    return best;
}

// Weighted total over shapes (per-shape times into ms[] when not NULL); negative on a failure.
static double time_set(struct bench *b, const struct shape *s, int n, double *ms) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        double t = time_gemm(b, &s[i]);
        if (t < 0) return -1;
        if (ms) ms[i] = t;
        total += t * s[i].weight;
    }
    return total;
}

static int multiple(size_t a, size_t b) { return b && a % b == 0; }

// CLBlast's constraints on a candidate (its src/tuning/kernels/xgemm.hpp and xgemm_direct.hpp):
// integer work per thread and per loading thread, an unrollable inner loop, and the device's
// work-group and local-memory limits.
static int valid(const struct dcl_cl_ctx *ctx, int k, const size_t *v) {
    if (k == K_XGEMM) {
        size_t KWG = v[2], KWI = v[3], MDIMA = v[4], MDIMC = v[5], MWG = v[6], NDIMB = v[7],
               NDIMC = v[8], NWG = v[9], SA = v[10], SB = v[11], VWM = v[14], VWN = v[15];
        return multiple(KWG, KWI) && multiple(MWG, MDIMC * VWM) && multiple(NWG, NDIMC * VWN) &&
               multiple(MWG, MDIMA * VWM) && multiple(NWG, NDIMB * VWN) &&
               multiple(KWG, MDIMC * NDIMC / MDIMA) && multiple(KWG, MDIMC * NDIMC / NDIMB) &&
               MDIMC * NDIMC <= ctx->max_wg_size &&
               4 * (SA * KWG * MWG + SB * KWG * NWG) <= ctx->local_mem;
    }
    size_t KWID = v[0], MDIMAD = v[1], MDIMCD = v[2], NDIMBD = v[3], NDIMCD = v[4], VWMD = v[7],
           VWND = v[8], WGD = v[9];
    return multiple(WGD, KWID) && multiple(WGD, MDIMCD * VWMD) && multiple(WGD, NDIMCD * VWND) &&
           multiple(WGD, MDIMAD * VWMD) && multiple(WGD, NDIMBD * VWND) &&
           multiple(WGD, MDIMCD * NDIMCD / MDIMAD) && multiple(WGD, MDIMCD * NDIMCD / NDIMBD) &&
           MDIMCD * NDIMCD <= ctx->max_wg_size && 4 * 2 * WGD * (WGD + 1) <= ctx->local_mem;
}

// One axis of the coordinate search: up to 3 parameters set together, and their value tuples.
struct axis {
    int n, idx[3];
    int n_values;
    size_t values[8][3];
};

// Where each search starts besides CLBlast's defaults: on CPU devices (PoCL) the best found by
// hand, large tiles with 8-wide vectors and no local memory, beat the defaults by 3-6x; the search
// keeps whichever start is fastest on this device.
static const size_t xgemm_seeds[][MAX_PARAMS] = {
    {0, 1, 32, 2, 8, 8, 128, 8, 8, 128, 0, 0, 0, 0, 8, 8},
    {0, 1, 32, 2, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 4, 4},
};
static const size_t direct_seeds[][MAX_PARAMS] = {
    {2, 8, 8, 8, 8, 0, 0, 8, 8, 64},
    {2, 4, 4, 4, 4, 0, 0, 8, 8, 32},
};

// Xgemm (GEMMK 0): local memory, tile, threads (MDIMA = MDIMC, NDIMB = NDIMC), vector widths, KWG,
// strided access. --quick tries the first half of each axis's values.
static const struct axis xgemm_axes[] = {
    {2, {10, 11}, 3, {{0, 0}, {1, 1}, {0, 1}}},
    {2, {6, 9}, 6, {{128, 128}, {64, 64}, {64, 128}, {128, 64}, {32, 32}, {256, 128}}},
    {2, {5, 4}, 5, {{8, 8}, {16, 16}, {4, 4}, {32, 32}, {2, 2}}}, // MDIMC, MDIMA
    {2, {8, 7}, 5, {{8, 8}, {16, 16}, {4, 4}, {32, 32}, {2, 2}}}, // NDIMC, NDIMB
    {2, {14, 15}, 6, {{8, 8}, {4, 4}, {8, 4}, {4, 8}, {2, 2}, {16, 16}}},
    {1, {2}, 3, {{32}, {16}, {64}}},
    {2, {12, 13}, 3, {{0, 0}, {1, 1}, {1, 0}}},
};
static const struct axis direct_axes[] = {
    {2, {5, 6}, 2, {{0, 0}, {1, 1}}},
    {1, {9}, 4, {{64}, {32}, {16}, {128}}},
    {2, {2, 1}, 4, {{8, 8}, {4, 4}, {16, 16}, {32, 32}}}, // MDIMCD, MDIMAD
    {2, {4, 3}, 4, {{8, 8}, {4, 4}, {16, 16}, {32, 32}}}, // NDIMCD, NDIMBD
    {2, {7, 8}, 6, {{8, 8}, {4, 4}, {8, 4}, {4, 8}, {2, 2}, {16, 16}}},
    {1, {0}, 3, {{2}, {8}, {16}}},
};

struct search {
    struct dcl_cl_ctx *ctx;
    struct bench *b;
    const dcl_tune_opts *o;
    int tried, rejected; // candidates timed and refused, all kernels
    int used;            // candidates timed for the current kernel
};

// Times candidate cand of kernel k on s[0, n): the weighted total in ms, negative when CLBlast
// refuses it. Counts it against the kernel's budget.
static double try_candidate(struct search *S, int k, const size_t *cand, const struct shape *s,
                            int n) {
    S->tried++, S->used++;
    double t = override(S->ctx, k, cand) ? time_set(S->b, s, n, NULL) : -1;
    if (t < 0) S->rejected++;
    else dcl_log(DCL_LOG_VERBOSE, "  %s candidate %d: %.2f ms", kernels[k].name, S->used, t);
    return t;
}

// Searches kernel k over shapes s[0, n): the seeds, then (unless quick) one pass of coordinate
// descent from the fastest start, each axis's values in turn, keeping a value only when at least 2% faster. best is v's
// time; returns the best time, v receives the best parameters (and CLBlast has them).
static double search_kernel(struct search *S, int k, const size_t (*seeds)[MAX_PARAMS], int n_seeds,
                            const struct axis *axes, int n_axes, const struct shape *s, int n,
                            size_t *v, double best) {
    S->used = 0;
    int budget = S->o->max_candidates;
    for (int i = 0; i < n_seeds && !(budget && S->used >= budget); i++) {
        if (!valid(S->ctx, k, seeds[i])) continue;
        double t = try_candidate(S, k, seeds[i], s, n);
        if (t >= 0 && t < best * 0.98) best = t, memcpy(v, seeds[i], sizeof seeds[i]);
    }
    // One pass over the axes: on a CPU device each candidate costs a CLBlast program build.
    for (int ai = 0; ai < n_axes; ai++) {
        const struct axis *a = &axes[ai];
        int n_values = S->o->quick ? 0 : a->n_values; // --quick: the seeds only
        for (int vi = 0; vi < n_values; vi++) {
            if (budget && S->used >= budget) goto out;
            size_t cand[MAX_PARAMS];
            memcpy(cand, v, sizeof cand);
            int same = 1;
            for (int p = 0; p < a->n; p++) {
                same &= cand[a->idx[p]] == a->values[vi][p];
                cand[a->idx[p]] = a->values[vi][p];
            }
            if (same || !valid(S->ctx, k, cand)) continue;
            double t = try_candidate(S, k, cand, s, n);
            if (t >= 0 && t < best * 0.98) best = t, memcpy(v, cand, sizeof cand);
        }
    }
out:
    override(S->ctx, k, v);
    return best;
}

// Releases every program and kernel of ctx so that the next op builds them with the current
// ctx->wg_size (the preamble is part of the source, so the program cache keeps both).
static void drop_programs(struct dcl_cl_ctx *ctx) {
    clFinish(ctx->queue);
    for (int i = 0; i < ctx->n_kernels; i++) clReleaseKernel(ctx->kernels[i].kernel);
    ctx->n_kernels = 0;
    for (int i = 0; i < DCL_CL_MAX_PROGRAMS; i++)
        if (ctx->programs[i]) clReleaseProgram(ctx->programs[i]), ctx->programs[i] = NULL;
    ctx->prepared = 0;
}

// Milliseconds of the elementwise kernels an MLP step runs most (ReLU, bias add and gradient,
// axpby) at the current work-group size; the fastest of 3 rounds after a warm-up.
static double time_elementwise(struct bench *b, size_t rows) {
    size_t n = rows * 128;
    double best = -1;
    for (int r = 0; r <= 3; r++) {
        double t0 = now_ms();
        dcl_status st = dcl_relu_forward(b->dev, dcl_at(b->c, 0), dcl_at(b->a, 0), n);
        if (st == DCL_OK)
            st = dcl_bias_add(b->dev, dcl_at(b->c, 0), dcl_at(b->c, 0), dcl_at(b->b, 0), rows, 128);
        if (st == DCL_OK)
            st = dcl_bias_backward(b->dev, dcl_at(b->b, 0), dcl_at(b->a, 0), rows, 128);
        if (st == DCL_OK)
            st =
                dcl_axpby(b->dev, dcl_at(b->c, 0), dcl_at(b->c, 0), dcl_at(b->a, 0), 0.5f, 0.5f, n);
        if (st == DCL_OK) st = dcl_device_finish(b->dev);
        if (st != DCL_OK) return -1;
        double ms = now_ms() - t0;
        if (r > 0 && (best < 0 || ms < best)) best = ms;
    }
    return best;
}

dcl_status dcl__cl_tune(dcl_device *dev, const dcl_tune_opts *o, dcl_tune_result *r) {
    struct dcl_cl_ctx *ctx = dev->ctx;
    memset(r, 0, sizeof *r);
    size_t scale = o->scale ? o->scale : 1, sq = o->square ? o->square : 1024;
    // The search times the U-Net's GEMMs over 8 images (counted 8 times); the before/after
    // figures and the choice between CLBlast's two kernels use the whole batch of 64.
    struct shape s[16], real[17], square = {sq, sq, sq, 0, 0, 1};
    int n = model_shapes(s, scale, 8);
    model_shapes(real, scale, 64);
    size_t na = sq * sq, nb = sq * sq, nc = sq * sq;
    for (int i = 0; i < n; i++) {
        size_t a = real[i].M * real[i].K, bb = real[i].K * real[i].N, c = real[i].M * real[i].N;
        na = a > na ? a : na, nb = bb > nb ? bb : nb, nc = c > nc ? c : nc;
    }
    struct bench b = {dev, NULL, NULL, NULL, o->quick ? 1 : 2};
    dcl_status st;
    if ((st = dcl_buffer_alloc(&b.a, dev, na, "tune.A")) != DCL_OK ||
        (st = dcl_buffer_alloc(&b.b, dev, nb, "tune.B")) != DCL_OK ||
        (st = dcl_buffer_alloc(&b.c, dev, nc, "tune.C")) != DCL_OK ||
        (st = dcl_fill(dev, dcl_at(b.a, 0), 0.25f, na)) != DCL_OK ||
        (st = dcl_fill(dev, dcl_at(b.b, 0), -0.5f, nb)) != DCL_OK ||
        (st = dcl_fill(dev, dcl_at(b.c, 0), 0.0f, nc)) != DCL_OK)
        goto done;

    // Before: whatever is in place (CLBlast's database, or a tuning this process applied).
    double flop = 2.0 * (double)sq * (double)sq * (double)sq;
    double sq_ms = time_gemm(&b, &square), model_ms = time_set(&b, real, n, NULL);
    if (sq_ms < 0 || model_ms < 0) {
        st = dcl__fail(DCL_ERR_BLAS, "tune: CLBlast's GEMM fails on %s before tuning",
                       dev->info.spec);
        goto done;
    }
    r->square = sq;
    r->square_gflops_before = flop / sq_ms / 1e6;
    r->model_ms_before = model_ms;
    double before_ms = sq_ms + model_ms;
    dcl_log(DCL_LOG_INFO, "tune %s: before: GEMM n=%zu %.1f GFLOP/s, model GEMMs %.1f ms per step",
            dev->info.spec, sq, r->square_gflops_before, model_ms);

    struct tuning t = {0};
    struct search S = {ctx, &b, o, 0, 0, 0};
    for (int k = 0; k < K_COUNT; k++) memcpy(t.v[k], kernels[k].defaults, sizeof t.v[k]);

    // XgemmDirect on the model shapes (every GEMM forced direct), Xgemm on the square (forced
    // indirect), then the size at which CLBlast switches from one to the other.
    size_t all_direct = 1u << 20, all_indirect = 1;
    override(ctx, K_ROUTINE, &all_direct);
    override(ctx, K_DIRECT, t.v[K_DIRECT]);
    double d0 = time_set(&b, s, n, NULL);
    if (d0 < 0) d0 = 1e30;
    dcl_log(DCL_LOG_INFO, "tune %s: XgemmDirect on %d model shapes ...", dev->info.spec, n);
    search_kernel(&S, K_DIRECT, direct_seeds, 2, direct_axes,
                  (int)(sizeof direct_axes / sizeof *direct_axes), s, n, t.v[K_DIRECT], d0);
    override(ctx, K_ROUTINE, &all_indirect);
    override(ctx, K_XGEMM, t.v[K_XGEMM]);
    double x0 = time_gemm(&b, &square);
    if (x0 < 0) x0 = 1e30;
    dcl_log(DCL_LOG_INFO, "tune %s: Xgemm on n=%zu ...", dev->info.spec, sq);
    search_kernel(&S, K_XGEMM, xgemm_seeds, 2, xgemm_axes,
                  (int)(sizeof xgemm_axes / sizeof *xgemm_axes), &square, 1, t.v[K_XGEMM], x0);
    t.has[K_XGEMM] = t.has[K_DIRECT] = t.has[K_ROUTINE] = 1;

    // Each shape (and the square) both ways with the winners; the switch size minimises the sum.
    struct shape *all = real;
    all[n] = square;
    double direct_ms[17], indirect_ms[17];
    override(ctx, K_ROUTINE, &all_direct);
    if (time_set(&b, all, n + 1, direct_ms) < 0) goto failed;
    override(ctx, K_ROUTINE, &all_indirect);
    if (time_set(&b, all, n + 1, indirect_ms) < 0) goto failed;
    double best_total = -1;
    for (int c = -1; c <= n; c++) {
        // Threshold just above shape c's M·N·K (c = -1: every shape indirect).
        size_t th = 1;
        if (c >= 0) {
            double mnk = (double)all[c].M * (double)all[c].N * (double)all[c].K;
            while ((double)th * th * th <= mnk) th++;
        }
        double total = 0;
        for (int i = 0; i <= n; i++) {
            double mnk = (double)all[i].M * (double)all[i].N * (double)all[i].K;
            total += all[i].weight * (mnk < (double)th * th * th ? direct_ms[i] : indirect_ms[i]);
        }
        if (best_total < 0 || total < best_total) best_total = total, t.v[K_ROUTINE][0] = th;
    }
    override(ctx, K_ROUTINE, t.v[K_ROUTINE]);

    // DCL_WG_SIZE for the elementwise kernels: 32, 64, 128, 256 within the device's limits.
    size_t wg0 = ctx->wg_size, best_wg = wg0;
    double best_ew = -1;
    for (size_t wg = 32; wg <= 256; wg *= 2) {
        if (wg > ctx->max_wg_size || wg > ctx->max_item_size0) break;
        if (o->max_candidates && wg != 32 && wg != wg0) continue; // tests: two sizes
        ctx->wg_size = wg;
        drop_programs(ctx);
        double ms = time_elementwise(&b, 1024 / scale);
        dcl_log(DCL_LOG_VERBOSE, "  DCL_WG_SIZE %zu: %.3f ms", wg, ms);
        if (ms >= 0 && (best_ew < 0 || ms < best_ew * 0.98)) best_ew = ms, best_wg = wg;
    }
    // The open device keeps the size it was opened with; the file takes effect at the next open.
    ctx->wg_size = wg0;
    drop_programs(ctx);
    t.wg_size = best_wg;

    // After, with every override in place; and the model GEMMs on the CPU reference.
    sq_ms = time_gemm(&b, &square), model_ms = time_set(&b, real, n, NULL);
    if (sq_ms < 0 || model_ms < 0) goto failed;
    r->square_gflops_after = flop / sq_ms / 1e6;
    r->model_ms_after = model_ms;
    r->wg_size = best_wg;
    r->candidates = S.tried, r->rejected = S.rejected;
    dcl_device *cpu = NULL;
    if (dcl_device_open(&cpu, "cpu") == DCL_OK) {
        struct bench c = {cpu, NULL, NULL, NULL, b.reps};
        if (dcl_buffer_alloc(&c.a, cpu, na, "tune.A") == DCL_OK &&
            dcl_buffer_alloc(&c.b, cpu, nb, "tune.B") == DCL_OK &&
            dcl_buffer_alloc(&c.c, cpu, nc, "tune.C") == DCL_OK &&
            dcl_fill(cpu, dcl_at(c.a, 0), 0.25f, na) == DCL_OK &&
            dcl_fill(cpu, dcl_at(c.b, 0), -0.5f, nb) == DCL_OK)
            r->cpu_model_ms = time_set(&c, real, n, NULL);
        dcl_buffer_free(c.a), dcl_buffer_free(c.b), dcl_buffer_free(c.c);
        dcl_device_free(cpu);
    }
    dcl_clear_error();
    // The search starts from CLBlast's generic defaults; a device with its own entry in CLBlast's
    // database may already have been faster. Then the file keeps CLBlast's parameters.
    r->clblast_overridden = sq_ms + model_ms <= before_ms * 1.05;
    if (!r->clblast_overridden) {
        memset(t.has, 0, sizeof t.has);
        dcl_log(DCL_LOG_INFO,
                "tune %s: CLBlast's own parameters were as fast; the tuning file "
                "keeps them",
                dev->info.spec);
    }
    t.faster_than_cpu = r->cpu_model_ms > 0 && model_ms < r->cpu_model_ms;
    r->faster_than_cpu = t.faster_than_cpu;
    dcl_log(DCL_LOG_INFO,
            "tune %s: after: GEMM n=%zu %.1f GFLOP/s (%.2fx), model GEMMs %.1f ms per step "
            "(cpu: %.1f ms), DCL_WG_SIZE %zu; %d candidates, %d rejected",
            dev->info.spec, sq, r->square_gflops_after,
            r->square_gflops_after / r->square_gflops_before, model_ms, r->cpu_model_ms, best_wg,
            S.tried, S.rejected);
    st = tuning_store(&dev->info, &t, r->path, sizeof r->path);
    goto done;
failed:
    st = dcl__fail(DCL_ERR_BLAS, "tune: CLBlast's GEMM failed on %s with the tuned parameters",
                   dev->info.spec);
done:
    dcl_buffer_free(b.a), dcl_buffer_free(b.b), dcl_buffer_free(b.c);
    return st;
}
