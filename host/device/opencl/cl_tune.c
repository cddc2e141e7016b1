// `diffcl tune` for OpenCL devices (dcl_device_tune): a search over CLBlast's GEMM parameters and
// the preamble's DCL_WG_SIZE for the shapes the models use, timed through the public API (so this
// file sits above device.c; only callers of dcl_device_tune use it). The file it writes and its
// application at open are in cl_tune_file.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <clblast_c.h>

#include "core/error.h"
#include "device/opencl/cl_tune.h"
#include "diffcl/log.h"
#include "diffcl/ops.h" // dcl_gemm, dcl_fill, dcl_relu_forward, dcl_axpby, dcl_bias_*

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
    double t = dcl__tune_override(S->ctx, k, cand) ? time_set(S->b, s, n, NULL) : -1;
    if (t < 0) S->rejected++;
    else
        dcl_log(DCL_LOG_VERBOSE, "  %s candidate %d: %.2f ms", dcl__tune_kernels[k].name, S->used,
                t);
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
    dcl__tune_override(S->ctx, k, v);
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

static dcl_status cl_tune(dcl_device *dev, const dcl_tune_opts *o, dcl_tune_result *r) {
    struct dcl_cl_ctx *ctx = dev->ctx;
    memset(r, 0, sizeof *r);
    size_t scale = o->scale ? o->scale : 1, sq = o->square ? o->square : 1024;
    // The search times the U-Net's GEMMs over 8 images (counted 8 times); the before/after
    // figures and the choice between CLBlast's two kernels use the whole batch of 64.
    struct shape s[16], real[17] = {{0}}, square = {sq, sq, sq, 0, 0, 1};
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
    ctx->own_gemm = 0; // the search times CLBlast's kernels
    for (int k = 0; k < K_COUNT; k++) memcpy(t.v[k], dcl__tune_kernels[k].defaults, sizeof t.v[k]);

    // XgemmDirect on the model shapes (every GEMM forced direct), Xgemm on the square (forced
    // indirect), then the size at which CLBlast switches from one to the other.
    size_t all_direct = 1u << 20, all_indirect = 1;
    dcl__tune_override(ctx, K_ROUTINE, &all_direct);
    dcl__tune_override(ctx, K_DIRECT, t.v[K_DIRECT]);
    double d0 = time_set(&b, s, n, NULL);
    if (d0 < 0) d0 = 1e30;
    dcl_log(DCL_LOG_INFO, "tune %s: XgemmDirect on %d model shapes ...", dev->info.spec, n);
    search_kernel(&S, K_DIRECT, direct_seeds, 2, direct_axes,
                  (int)(sizeof direct_axes / sizeof *direct_axes), s, n, t.v[K_DIRECT], d0);
    dcl__tune_override(ctx, K_ROUTINE, &all_indirect);
    dcl__tune_override(ctx, K_XGEMM, t.v[K_XGEMM]);
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
    dcl__tune_override(ctx, K_ROUTINE, &all_direct);
    if (time_set(&b, all, n + 1, direct_ms) < 0) goto failed;
    dcl__tune_override(ctx, K_ROUTINE, &all_indirect);
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
    dcl__tune_override(ctx, K_ROUTINE, t.v[K_ROUTINE]);

    // cl/gemm.cl against CLBlast with the winners, per transposition case (NN, NT, TN) over the
    // shapes of that case: the faster one runs that case from now on. A device that cannot run
    // cl/gemm.cl keeps CLBlast.
    double blas_ms[17], own_ms[17], sum[2][4] = {{0}};
    if (time_set(&b, all, n + 1, blas_ms) < 0) goto failed;
    ctx->own_gemm = 7;
    if (time_set(&b, all, n + 1, own_ms) < 0) {
        dcl_log(DCL_LOG_INFO,
                "tune %s: cl/gemm.cl failed here (-v says why); CLBlast keeps every GEMM",
                dev->info.spec);
        for (int i = 0; i <= n; i++) own_ms[i] = blas_ms[i]; // never strictly faster
    }
    for (int i = 0; i <= n; i++) {
        int c = 2 * all[i].ta + all[i].tb;
        sum[0][c] += all[i].weight * blas_ms[i], sum[1][c] += all[i].weight * own_ms[i];
    }
    t.own_gemm = 0;
    for (int c = 0; c < 3; c++) {
        if (sum[1][c] < sum[0][c]) t.own_gemm |= 1u << c;
        dcl_log(DCL_LOG_VERBOSE, "  GEMM %s: CLBlast %.2f ms, cl/gemm.cl %.2f ms",
                (const char *[]){"NN", "NT", "TN"}[c], sum[0][c], sum[1][c]);
    }
    ctx->own_gemm = t.own_gemm;

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
    r->own_gemm = t.own_gemm;
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
    if (o->step_time) { // the whole step, which GEMMs alone misjudge (convolutions without them)
        // The faster of two alternating rounds on each side, the device with its new work-group
        // size (as the next open will have it).
        dcl_device *cpu = NULL;
        double best[2] = {0, 0};
        dcl_status ds = dcl_device_open(&cpu, "cpu");
        ctx->wg_size = best_wg;
        drop_programs(ctx);
        for (int round = 0; round < 4 && ds == DCL_OK; round++) {
            double sec = 0;
            ds = o->step_time(round % 2 ? cpu : dev, o->step_arg, &sec);
            double *b = &best[round % 2];
            if (ds == DCL_OK && (*b == 0 || sec < *b)) *b = sec;
        }
        ctx->wg_size = wg0;
        drop_programs(ctx);
        if (ds == DCL_OK) r->step_ms = best[0] * 1e3, r->cpu_step_ms = best[1] * 1e3;
        dcl_device_free(cpu);
        dcl_clear_error();
        t.faster_than_cpu = r->cpu_step_ms > 0 && r->step_ms < r->cpu_step_ms;
        dcl_log(DCL_LOG_INFO, "tune %s: a training step %.1f ms (cpu: %.1f ms)", dev->info.spec,
                r->step_ms, r->cpu_step_ms);
    }
    r->faster_than_cpu = t.faster_than_cpu;
    dcl_log(DCL_LOG_INFO,
            "tune %s: after: GEMM n=%zu %.1f GFLOP/s (%.2fx), model GEMMs %.1f ms per step "
            "(cpu: %.1f ms), DCL_WG_SIZE %zu, cl/gemm.cl for cases %u (1 NN, 2 NT, 4 TN); %d "
            "candidates, %d rejected",
            dev->info.spec, sq, r->square_gflops_after,
            r->square_gflops_after / r->square_gflops_before, model_ms, r->cpu_model_ms, best_wg,
            t.own_gemm, S.tried, S.rejected);
    st = dcl__tuning_store(&dev->info, &t, r->path, sizeof r->path);
    goto done;
failed:
    st = dcl__fail(DCL_ERR_BLAS, "tune: CLBlast's GEMM failed on %s with the tuned parameters",
                   dev->info.spec);
done:
    dcl_buffer_free(b.a), dcl_buffer_free(b.b), dcl_buffer_free(b.c);
    return st;
}

dcl_status dcl_device_tune(dcl_device *dev, const dcl_tune_opts *opts, dcl_tune_result *result) {
    dcl_tune_result ignored;
    dcl_tune_opts defaults = {0};
    if (!result) result = &ignored;
    memset(result, 0, sizeof *result);
    if (dev->info.backend == DCL_BACKEND_OPENCL)
        return cl_tune(dev, opts ? opts : &defaults, result);
    return dcl__fail(DCL_ERR_UNSUPPORTED, "%s has nothing to tune: tune an OpenCL device",
                     dev->info.spec);
}
