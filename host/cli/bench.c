// `diffcl bench [ops|gemm|unet|train]`: the op-case table of host/crosscheck/ timed case by case
// (GB/s and GFLOP/s), square GEMMs (GFLOP/s), the default U-Net (images/s), and real training steps
// of the CLI's default models with what each step costs the device (launches, transfers, waits), on
// each device, timed on the monotonic clock after a warm-up.
#define _POSIX_C_SOURCE 200809L // mkdtemp
#include <stddef.h>             // offsetof
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/error.h"            // dcl__fail
#include "crosscheck/crosscheck.h" // dcl_check_case_*, dcl_check_perf_*: the cases bench ops times
#include "diffcl/ops.h"            // dcl_gemm, dcl_rng_normal, dcl_rng_uniform, dcl_fill
#include "diffcl/rng.h"            // DCL_RNG_TEST
#include "diffcl/train.h"          // dcl_train, dcl_model_*: bench train
#include "diffcl/unet.h"           // dcl_unet_*: a U-Net's throughput

const cli_command cli_bench_command = {
    .name = "bench",
    .summary = "time every op case (GB/s, GFLOP/s), square GEMMs and the U-Net on each device",
    .usage = "diffcl bench [ops|gemm|unet|train] [--device SPEC|all] [--size N] [--elements N]\n"
             "             [--case PREFIX] [--sizes LIST] [--repeat N] [--batch N]\n"
             "             [--model mlp|unet|both] [--steps N]",
    .details =
        "'ops' (the default) times every case of the op table that 'diffcl check' and the\n"
        "op test run (each op and variant, forward and backward), one row per case and\n"
        "device: the case's size n, the time per call in microseconds, GB/s (the least\n"
        "traffic of a call: every input read once, every output written once, an in-out\n"
        "tensor both, 4 bytes an element) and GFLOP/s for the ops made of adds and\n"
        "multiplies only (GEMM, linear combinations, sums, biases; '-' for the others). Each\n"
        "case runs at the size where its tensors hold about --elements elements in all,\n"
        "or at --size N.\n"
        "\n"
        "'gemm' times square GEMMs C = A B at each of --sizes (GFLOP/s = 2 n^3 / time).\n"
        "\n"
        "Each op runs once to warm up (kernel build, caches), then --repeat times; by default\n"
        "it repeats until at least 3 calls and 0.2 s (gemm: 0.5 s) have passed. Times include\n"
        "waiting for the device to finish.\n"
        "\n"
        "'unet' times the default class-conditional U-Net for 28x28 grey images (what\n"
        "'diffcl train --data fashion-mnist' builds) at --batch images: a training step's\n"
        "forward + backward (images/s) and a forward alone (network evaluations/s, the cost of\n"
        "sampling). --image C,H,W and the U-Net flags of 'diffcl train' (--base, --mult,\n"
        "--groups, --res-blocks, --attn, --heads) choose another network; its parameters and\n"
        "FLOPs per image are printed first.\n"
        "\n"
        "'train' runs real training steps (dcl_train: AdamW with warm-up, gradient clipping 1,\n"
        "EMA, the loss read back every 100 (mlp) or 25 (unet) steps) of the models 'diffcl\n"
        "train' builds by default: the spiral flow MLP 3x128 at batch 1024 and the\n"
        "class-conditional U-Net at batch 64 on Fashion-MNIST (from " DCL_FASHION_MNIST_DIR ";\n"
        "without it, a synthetic labelled set of 1000 images of the same shape, which the output\n"
        "says). After a warm-up run (kernel builds, allocations) it times --steps steps and\n"
        "prints training steps/s and examples/s; then the EMA model's sampling rate with the\n"
        "euler sampler (mlp: 10000 points, 100 steps; unet: --batch images, 10 steps):\n"
        "samples/s and network evaluations/s; then what one training step asks of the device\n"
        "(dcl_device_stats): ops, kernel launches, host->device writes and device->host reads\n"
        "(count and bytes) and blocking host waits, as the median step (a step without a loss\n"
        "read-back) and the mean over the timed steps. The CPU reference counts each op as one\n"
        "launch and never waits.\n",
    .examples = "  diffcl bench\n"
                "  diffcl bench ops --device all --case group_norm\n"
                "  diffcl bench ops --device cl:gpu --size 4194304 --repeat 20\n"
                "  diffcl bench gemm --device cl:gpu --sizes 512,4096\n"
                "  diffcl bench unet --device all --batch 64\n"
                "  diffcl bench unet --image 3,32,32 --base 32 --attn 16,8 --batch 32\n"
                "  diffcl bench train --model both --device all\n"
                "  diffcl bench train --model mlp --device cpu --steps 1000\n",
    .device_help = "device to time, or 'all' for cpu and every usable OpenCL device",
    .device_def = "all",
};

#define MIN_CALLS 3
#define MIN_SECONDS_OPS 0.2
#define MIN_SECONDS_GEMM 0.5
#define MAX_BATCH (1 << 20)

typedef struct bench_opts {
    uint64_t size;                            // ops: every case's n (0: from elements)
    uint64_t elements;                        // ops: words in all of a case's tensors
    const char *only;                         // ops: cases whose name starts with this
    cli_sizes sizes;                          // gemm
    uint64_t repeat;                          // 0: adaptive
    uint64_t batch;                           // unet, train (0: the model's default)
    const char *model;                        // train: mlp, unet or both
    uint64_t steps;                           // train: timed steps (0: the model's default)
    cli_sizes image, mult, attn;              // unet: C,H,W; multipliers; attention heights
    uint64_t base, groups, res_blocks, heads; // unet (0: the default)
    uint64_t classes;                         // unet: K (default 10)
} bench_opts;

typedef dcl_status (*bench_fn)(void *ctx);

// Runs fn once to warm up, then `repeat` times (0: until MIN_CALLS calls and min_seconds), in
// batches with one dcl_device_finish each so the device queue stays full.
static dcl_status time_calls(dcl_device *dev, bench_fn fn, void *ctx, uint64_t repeat,
                             double min_seconds, long *calls, double *seconds) {
    dcl_status s = fn(ctx);
    if (s == DCL_OK) s = dcl_device_finish(dev);
    *calls = 0;
    *seconds = 0;
    long batch = repeat ? (long)repeat : 1;
    while (s == DCL_OK) {
        double t0 = cli_now();
        for (long i = 0; i < batch && s == DCL_OK; i++) s = fn(ctx);
        if (s == DCL_OK) s = dcl_device_finish(dev);
        *seconds += cli_now() - t0;
        *calls += batch;
        if (repeat || (*calls >= MIN_CALLS && *seconds >= min_seconds)) break;
        // Enough calls to reach the target at the rate seen so far.
        double per_call = *seconds / (double)*calls;
        double want = per_call > 0 ? (min_seconds - *seconds) / per_call : MAX_BATCH;
        batch = want < 1 ? 1 : want > MAX_BATCH ? MAX_BATCH : (long)want + 1;
        if (*calls + batch < MIN_CALLS) batch = MIN_CALLS - *calls;
    }
    return s;
}

// Opens spec and prints the "== device" line; NULL (reported) when it cannot be opened.
static dcl_device *open_device(const char *spec, dcl_status *s) {
    dcl_device *dev = NULL;
    dcl_clear_error();
    *s = dcl_device_open(&dev, spec);
    if (*s != DCL_OK) {
        cli_report(*s);
        return NULL;
    }
    const dcl_device_info *d = dcl_device_get_info(dev);
    printf("== %s  %s  (%s%s%s)\n", d->spec, d->name, d->platform_name,
           cli_known(d->driver) ? ", driver " : "", cli_known(d->driver) ? d->driver : "");
    return dev;
}

// ---- ops: the op-case table -------------------------------------------------------------------

static dcl_status run_perf(void *f) { return dcl_check_perf_run(f); }

static int selected(const bench_opts *o, const char *name) {
    return !o->only || strncmp(name, o->only, strlen(o->only)) == 0;
}

static int case_name_width(const bench_opts *o) {
    int w = 4;
    for (int i = 0; i < dcl_check_case_count(); i++) {
        int l = (int)strlen(dcl_check_case_name(i));
        if (selected(o, dcl_check_case_name(i)) && l > w) w = l;
    }
    return w;
}

// One row: case i on dev. Returns the error status (already reported) or OK.
static dcl_status bench_case(dcl_device *dev, int i, int w, const bench_opts *o) {
    const char *name = dcl_check_case_name(i), *spec = dcl_device_get_info(dev)->spec;
    // The row is printed only once it is complete, so a progress line cannot overwrite it.
    cli_progress("bench %s: %d/%d %s", spec, i + 1, dcl_check_case_count(), name);
    dcl_clear_error();
    dcl_check_perf *f = NULL;
    long calls = 0;
    double seconds = 0;
    dcl_status s = dcl_check_perf_init(&f, dev, i, (size_t)o->size, (size_t)o->elements);
    if (s == DCL_OK) s = time_calls(dev, run_perf, f, o->repeat, MIN_SECONDS_OPS, &calls, &seconds);
    cli_progress_clear();
    if (s != DCL_OK) {
        printf("%-*s  %-8s  %10s  ERROR (see stderr)\n", w, name, spec, "-");
        fflush(stdout);
        cli_report(s);
        dcl_check_perf_free(f);
        return s;
    }
    const dcl_check_cost *c = dcl_check_perf_cost(f);
    double per_call = seconds / (double)calls;
    printf("%-*s  %-8s  %10zu  %7ld  %11.2f  %9.2f", w, name, spec, c->n, calls, per_call * 1e6,
           c->bytes / per_call * 1e-9);
    if (c->flops > 0) printf("  %9.2f\n", c->flops / per_call * 1e-9);
    else printf("  %9s\n", "-");
    fflush(stdout);
    dcl_check_perf_free(f);
    return DCL_OK;
}

// Opens spec and prints a row per selected case; returns the first error status.
static dcl_status bench_ops(const char *spec, const bench_opts *o) {
    dcl_status s;
    dcl_device *dev = open_device(spec, &s);
    if (!dev) return s;
    int w = case_name_width(o);
    printf("%-*s  %-8s  %10s  %7s  %11s  %9s  %9s\n", w, "case", "device", "size", "calls",
           "us/call", "GB/s", "GFLOP/s");
    dcl_status first = DCL_OK;
    for (int i = 0; i < dcl_check_case_count(); i++) {
        if (!selected(o, dcl_check_case_name(i))) continue;
        s = bench_case(dev, i, w, o);
        if (first == DCL_OK) first = s;
    }
    putchar('\n');
    fflush(stdout); // before the next device's log lines on stderr
    dcl_device_free(dev);
    return first;
}

// ---- gemm: square matrices --------------------------------------------------------------------

// C (n, n) = A (n, n) B (n, n).
typedef struct gemm_bufs {
    dcl_buffer *buf[3]; // A, B, C
    dcl_device *dev;
    size_t n;
} gemm_bufs;

static dcl_status run_gemm(void *ctx) {
    const gemm_bufs *b = ctx;
    return dcl_gemm(b->dev, dcl_at(b->buf[2], 0), dcl_at(b->buf[0], 0), dcl_at(b->buf[1], 0), 0, 0,
                    b->n, b->n, b->n, 1.0f, 0.0f);
}

static void free_gemm(gemm_bufs *b) {
    for (int i = 0; i < 3; i++) dcl_buffer_free(b->buf[i]);
    memset(b, 0, sizeof *b);
}

// Allocates A, B and C for size n and fills A and B with uniforms.
static dcl_status alloc_gemm(dcl_device *dev, size_t n, gemm_bufs *b) {
    static const char *const names[] = {"bench.a", "bench.b", "bench.out"};
    dcl_status s = DCL_OK;
    memset(b, 0, sizeof *b);
    b->dev = dev, b->n = n;
    for (int i = 0; i < 3 && s == DCL_OK; i++) {
        s = dcl_buffer_alloc(&b->buf[i], dev, n * n, names[i]);
        if (s == DCL_OK && i < 2)
            s = dcl_rng_uniform(dev, dcl_at(b->buf[i], 0), 1, DCL_RNG_TEST, (uint32_t)i, 0, n * n);
    }
    if (s == DCL_OK) s = dcl_device_finish(dev);
    if (s != DCL_OK) free_gemm(b);
    return s;
}

// One table row: a square GEMM of size n on dev. Returns the error status (already reported).
static dcl_status bench_gemm_row(dcl_device *dev, size_t n, const bench_opts *o) {
    const dcl_device_info *d = dcl_device_get_info(dev);
    unsigned long long bytes = 4ull * n * n; // of one matrix
    if (bytes > d->max_alloc) {
        char need[32], max[32];
        cli_format_bytes(need, sizeof need, bytes);
        cli_format_bytes(max, sizeof max, (unsigned long long)d->max_alloc);
        printf("%-11s %9zu  skipped: a %s buffer exceeds the device's max allocation of %s\n",
               "gemm", n, need, max);
        return DCL_OK;
    }
    cli_progress("bench %s: gemm n=%zu", d->spec, n);
    dcl_clear_error();
    gemm_bufs b;
    long calls = 0;
    double seconds = 0;
    dcl_status s = alloc_gemm(dev, n, &b);
    if (s == DCL_OK) {
        s = time_calls(dev, run_gemm, &b, o->repeat, MIN_SECONDS_GEMM, &calls, &seconds);
        free_gemm(&b);
    }
    cli_progress_clear();
    if (s != DCL_OK) {
        printf("%-11s %9zu  ERROR (see stderr)\n", "gemm", n);
        fflush(stdout);
        cli_report(s);
        return s;
    }
    double per_call = seconds / (double)calls;
    double rate = 2.0 * (double)n * (double)n * (double)n / per_call * 1e-9;
    printf("%-11s %9zu  %7ld  %12.4f  %10.2f GFLOP/s\n", "gemm", n, calls, per_call * 1e3, rate);
    fflush(stdout);
    return DCL_OK;
}

// Opens spec and prints its GEMM table; returns the first error status.
static dcl_status bench_gemm(const char *spec, const bench_opts *o) {
    dcl_status s;
    dcl_device *dev = open_device(spec, &s);
    if (!dev) return s;
    printf("%-11s %9s  %7s  %12s  %10s\n", "op", "size", "calls", "ms/call", "rate");
    dcl_status first = DCL_OK;
    for (int k = 0; k < o->sizes.n; k++) {
        s = bench_gemm_row(dev, o->sizes.v[k], o);
        if (first == DCL_OK) first = s;
    }
    putchar('\n');
    fflush(stdout); // before the next device's log lines on stderr
    dcl_device_free(dev);
    return first;
}

// ---- unet: the default network ----------------------------------------------------------------

// A U-Net and its inputs on one device, drawn once: x, out, t, labels, dout.
typedef struct unet_bench {
    dcl_device *dev;
    dcl_unet *u;
    dcl_buffer *b[5];
    size_t N;
} unet_bench;

static void unet_bench_free(unet_bench *ub) {
    for (int i = 0; i < 5; i++) dcl_buffer_free(ub->b[i]);
    dcl_unet_free(ub->u);
}

// The U-Net of config c at batch N on dev, with what the trainer needs less the optimizer's state.
static dcl_status unet_bench_init(unet_bench *ub, dcl_device *dev, const dcl_unet_config *c,
                                  size_t N) {
    *ub = (unet_bench){.dev = dev, .N = N};
    dcl_unet_config cc = *c;
    dcl_status s = dcl_unet_check_memory(&cc, dev, N, NULL);
    if (s == DCL_OK) s = dcl_unet_init(&ub->u, dev, &cc, 1, N);
    size_t D = (size_t)c->channels * c->height * c->width, len[5] = {N * D, N * D, N, N, N * D};
    static const char *const names[5] = {"bench.x", "bench.out", "bench.t", "bench.labels",
                                         "bench.dout"};
    dcl_buffer **b = ub->b;
    for (int i = 0; i < 5 && s == DCL_OK; i++) s = dcl_buffer_alloc(&b[i], dev, len[i], names[i]);
    if (s == DCL_OK) s = dcl_rng_normal(dev, dcl_at(b[0], 0), 1, DCL_RNG_TEST, 0, 0, N * D);
    if (s == DCL_OK) s = dcl_rng_normal(dev, dcl_at(b[4], 0), 1, DCL_RNG_TEST, 1, 0, N * D);
    if (s == DCL_OK) s = dcl_rng_uniform(dev, dcl_at(b[2], 0), 1, DCL_RNG_TEST, 2, 0, N);
    if (s == DCL_OK) s = dcl_fill(dev, dcl_at(b[3], 0), 0.0f, N); // label 0 (bits 0)
    if (s != DCL_OK) unet_bench_free(ub);
    return s;
}

// Seconds per call of fwd (and bwd when train), after one warm-up call: at least 3 calls and 1 s.
static dcl_status time_unet(const unet_bench *ub, int train, double *per_call) {
    dcl_buffer *const *b = ub->b;
    dcl_status s = DCL_OK;
    long calls = -1; // the first call warms up (kernel builds, allocations)
    double t0 = 0, elapsed = 0;
    while (s == DCL_OK && (calls < 3 || elapsed < 1.0)) {
        if (calls == 0) t0 = cli_now();
        s = dcl_unet_forward(ub->u, NULL, dcl_at(b[1], 0), dcl_at(b[0], 0), dcl_at(b[2], 0),
                             dcl_at(b[3], 0), ub->N);
        if (s == DCL_OK && train) s = dcl_unet_backward(ub->u, dcl_at(b[4], 0), ub->N);
        if (s == DCL_OK) s = dcl_device_finish(ub->dev);
        calls++;
        if (calls > 0) elapsed = cli_now() - t0;
    }
    *per_call = calls > 0 ? elapsed / (double)calls : 0;
    return s;
}

dcl_status cli_unet_step_time(dcl_device *dev, const dcl_unet_config *c, size_t N,
                              double *seconds) {
    unet_bench ub;
    dcl_status s = unet_bench_init(&ub, dev, c, N);
    if (s != DCL_OK) return s;
    s = time_unet(&ub, 1, seconds);
    unet_bench_free(&ub);
    return s;
}

// The U-Net of config c (by default the class-conditional one for 1×28×28, Fashion-MNIST) at
// batch N: training (forward + backward) and sampling (forward) throughput.
static dcl_status bench_unet(const char *spec, const dcl_unet_config *cfg, size_t N) {
    dcl_device *dev = NULL;
    unet_bench ub = {0};
    const dcl_unet_config c = *cfg;
    dcl_status s = dcl_device_open(&dev, spec);
    if (s == DCL_OK) s = unet_bench_init(&ub, dev, &c, N);
    double train = 0, fwd = 0;
    if (s == DCL_OK) {
        const dcl_device_info *d = dcl_device_get_info(dev);
        size_t params = 0;
        const dcl_arena *a = dcl_unet_params(ub.u);
        for (int i = 0; i < a->count; i++) params += a->views[i].n;
        char mult[64] = "", attn[64] = "";
        for (int l = 0, k = 0; l < c.levels; l++) {
            size_t m = strlen(mult), a = strlen(attn);
            snprintf(mult + m, sizeof mult - m, "%s%d", l ? "," : "", c.mult[l]);
            if ((c.attn >> l) & 1)
                snprintf(attn + a, sizeof attn - a, "%s%d", k++ ? "," : "", c.height >> l);
        }
        printf("== %s  %s: U-Net %dx%dx%d, base %d, mult %s, res-blocks %d, attn %s, heads %d, "
               "%zu parameters, %.3f GFLOP per image forward, batch %zu, %.1f MiB\n",
               d->spec, d->name, c.channels, c.height, c.width, c.base, mult,
               c.res_blocks > 0 ? c.res_blocks : 1, c.attn ? attn : "none",
               c.heads > 0 ? c.heads : 1, params, dcl_unet_flops(&c) * 1e-9, N,
               (double)dcl_unet_device_bytes(ub.u) / 1048576.0);
        cli_progress("bench %s: unet training step", d->spec);
        s = time_unet(&ub, 1, &train);
        cli_progress("bench %s: unet forward", d->spec);
        if (s == DCL_OK) s = time_unet(&ub, 0, &fwd);
        cli_progress_clear();
        unet_bench_free(&ub);
    }
    if (s == DCL_OK) {
        double f = dcl_unet_flops(&c);
        printf("train   %8.1f images/s  (forward + backward %.1f ms per batch, %.1f GFLOP/s)\n",
               N / train, train * 1e3, 3 * f * N / train * 1e-9);
        printf("sample  %8.1f network evaluations/s  (%.1f ms per batch, %.1f GFLOP/s): %.2f "
               "images/s with ddim 50 steps and guidance (2 evaluations per step)\n\n",
               N / fwd, fwd * 1e3, f * N / fwd * 1e-9, N / fwd / 100);
    } else {
        cli_report(s);
    }
    dcl_device_free(dev);
    return s;
}

// bench unet's network from the flags: the default class-conditional U-Net for the image shape,
// with the U-Net flags of `diffcl train`. Shapes the network refuses are usage errors.
static int unet_config(const bench_opts *o, dcl_unet_config *c) {
    if (o->image.n && o->image.n != 3)
        return cli_usage_error("bench", "--image takes C,H,W (3 numbers), got %d", o->image.n);
    int C = o->image.n ? (int)o->image.v[0] : 1, H = o->image.n ? (int)o->image.v[1] : 28;
    int W = o->image.n ? (int)o->image.v[2] : 28;
    dcl_unet_config_default(c, C, H, W);
    c->num_classes = (int)o->classes;
    if (o->base) c->base = (int)o->base, c->emb_dim = (int)o->base;
    if (o->groups) c->groups = (int)o->groups;
    if (o->mult.n > DCL_UNET_MAX_LEVELS)
        return cli_usage_error("bench", "--mult takes at most %d levels", DCL_UNET_MAX_LEVELS);
    if (o->mult.n) c->levels = o->mult.n;
    for (int l = 0; l < o->mult.n; l++) c->mult[l] = (int)o->mult.v[l];
    if (o->res_blocks) c->res_blocks = (int)o->res_blocks;
    if (o->heads) c->heads = (int)o->heads;
    size_t params;
    if (dcl_unet_param_count(c, &params) != DCL_OK)
        return cli_usage_error("bench", "%s", dcl_last_error());
    for (int i = 0; i < o->attn.n; i++) {
        int l = 0;
        while (l < c->levels && (size_t)(c->height >> l) != o->attn.v[i]) l++;
        if (l == c->levels) {
            char have[64];
            dcl_unet_attn_heights(c, have, sizeof have);
            return cli_usage_error("bench", "--attn %zu: the network's heights are %s",
                                   o->attn.v[i], have);
        }
        c->attn |= 1u << l;
    }
    if (dcl_unet_param_count(c, &params) != DCL_OK)
        return cli_usage_error("bench", "%s", dcl_last_error());
    return CLI_PARSED;
}

// ---- train: real training steps of the CLI's default models -----------------------------------

#define SYNTH_IMAGES 1000
#define MLP_SAMPLE_N 10000
#define MLP_SAMPLE_STEPS 100
#define UNET_SAMPLE_STEPS 10

// The U-Net's training images: Fashion-MNIST when installed, else a synthetic set of its shape.
typedef struct bench_train_data {
    dcl_dataset *ds;
    int synthetic;
} bench_train_data;

static dcl_status write_idx(const char *path, const uint8_t *header, size_t hn, const uint8_t *body,
                            size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return dcl__fail(DCL_ERR_IO, "cannot write %s", path);
    int ok = fwrite(header, 1, hn, f) == hn && fwrite(body, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? DCL_OK : dcl__fail(DCL_ERR_IO, "cannot write %s", path);
}

// SYNTH_IMAGES labelled 28×28 grey images (smooth per-class patterns plus hashed noise) written as
// an IDX pair to a temporary folder, opened, then deleted.
static dcl_status open_synthetic(dcl_dataset **ds) {
    char dir[] = "/tmp/diffcl-bench-XXXXXX", img[64], lab[64], spec[160];
    if (!mkdtemp(dir)) return dcl__fail(DCL_ERR_IO, "cannot create a temporary folder in /tmp");
    snprintf(img, sizeof img, "%s/images", dir);
    snprintf(lab, sizeof lab, "%s/labels", dir);
    uint8_t *px = malloc((size_t)SYNTH_IMAGES * 784), labels[SYNTH_IMAGES];
    dcl_status s = px ? DCL_OK : dcl__fail(DCL_ERR_NOMEM, "out of host memory");
    for (uint32_t i = 0; px && i < SYNTH_IMAGES; i++) {
        labels[i] = (uint8_t)(i % 10);
        for (uint32_t p = 0; p < 784; p++) {
            uint32_t r = p / 28, c = p % 28, h = (i * 2654435761u) ^ (p * 2246822519u);
            h ^= h >> 15, h *= 2654435761u, h ^= h >> 13;
            uint32_t v = ((r * (labels[i] + 1) + c * 3) * 9 + (h & 63)) & 255;
            px[(size_t)i * 784 + p] = (uint8_t)v;
        }
    }
    const uint8_t ih[16] = {0, 0,  8, 3, 0, 0, SYNTH_IMAGES >> 8, SYNTH_IMAGES & 255, 0, 0,
                            0, 28, 0, 0, 0, 28};
    const uint8_t lh[8] = {0, 0, 8, 1, 0, 0, SYNTH_IMAGES >> 8, SYNTH_IMAGES & 255};
    if (s == DCL_OK) s = write_idx(img, ih, sizeof ih, px, (size_t)SYNTH_IMAGES * 784);
    if (s == DCL_OK) s = write_idx(lab, lh, sizeof lh, labels, SYNTH_IMAGES);
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lab);
    if (s == DCL_OK) s = dcl_dataset_open(ds, spec, 0);
    free(px);
    remove(img), remove(lab), rmdir(dir);
    return s;
}

// Fashion-MNIST when its files are there (a damaged file is an error), else the synthetic set.
static dcl_status open_image_data(bench_train_data *d) {
    d->synthetic = access(DCL_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) != 0;
    return d->synthetic ? open_synthetic(&d->ds) : dcl_dataset_open(&d->ds, "fashion-mnist", 0);
}

// Per-step device counters: the trainer's progress callback records each step's difference.
typedef struct step_stats {
    dcl_device *dev;
    dcl_device_stats last;
    dcl_device_stats *steps; // one per timed step
    int64_t n, cap;
} step_stats;

static int on_step(void *ctx, int64_t done, int64_t total) {
    (void)done, (void)total;
    step_stats *st = ctx;
    dcl_device_stats now;
    dcl_device_stats_get(st->dev, &now);
    if (st->n < st->cap) {
        dcl_device_stats *d = &st->steps[st->n++];
        d->ops = now.ops - st->last.ops, d->launches = now.launches - st->last.launches;
        d->writes = now.writes - st->last.writes;
        d->write_bytes = now.write_bytes - st->last.write_bytes;
        d->reads = now.reads - st->last.reads, d->read_bytes = now.read_bytes - st->last.read_bytes;
        d->waits = now.waits - st->last.waits;
    }
    st->last = now;
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// The median over the steps of the counter at byte offset off of dcl_device_stats.
static uint64_t median_field(const step_stats *st, size_t off, uint64_t *tmp) {
    for (int64_t i = 0; i < st->n; i++)
        tmp[i] = *(const uint64_t *)((const char *)&st->steps[i] + off);
    qsort(tmp, (size_t)st->n, sizeof *tmp, cmp_u64);
    return st->n ? tmp[st->n / 2] : 0;
}

static void print_step_row(const char *what, const dcl_device_stats *d, double div) {
    char wb[32], rb[32];
    cli_format_bytes(wb, sizeof wb, (unsigned long long)((double)d->write_bytes / div + 0.5));
    cli_format_bytes(rb, sizeof rb, (unsigned long long)((double)d->read_bytes / div + 0.5));
    printf("  %-22s ops %7.1f  launches %7.1f  writes %5.2f (%s)  reads %5.2f (%s)  "
           "waits %5.2f\n",
           what, (double)d->ops / div, (double)d->launches / div, (double)d->writes / div, wb,
           (double)d->reads / div, rb, (double)d->waits / div);
}

// The median step and the mean over all timed steps.
static void print_step_stats(const step_stats *st, const dcl_device_stats *total) {
    uint64_t *tmp = malloc((size_t)(st->n ? st->n : 1) * sizeof *tmp);
    if (!tmp) return;
    dcl_device_stats med = {
        .ops = median_field(st, offsetof(dcl_device_stats, ops), tmp),
        .launches = median_field(st, offsetof(dcl_device_stats, launches), tmp),
        .writes = median_field(st, offsetof(dcl_device_stats, writes), tmp),
        .write_bytes = median_field(st, offsetof(dcl_device_stats, write_bytes), tmp),
        .reads = median_field(st, offsetof(dcl_device_stats, reads), tmp),
        .read_bytes = median_field(st, offsetof(dcl_device_stats, read_bytes), tmp),
        .waits = median_field(st, offsetof(dcl_device_stats, waits), tmp),
    };
    free(tmp);
    printf("per training step (device counters):\n");
    print_step_row("median step", &med, 1);
    print_step_row("mean, with read-backs", total, st->n ? (double)st->n : 1);
}

// Trains m for `steps` steps (the CLI's options); *seconds is the wall time of the dcl_train call,
// which ends with the loss read back (so the device has finished).
static dcl_status train_steps(dcl_device *dev, dcl_model *m, dcl_dataset *ds, int batch, int steps,
                              step_stats *st, double *seconds) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = steps, o.batch = batch;
    o.log_every = m->cfg.net.kind == DCL_NET_UNET ? 25 : 100; // as `diffcl train`
    o.progress = st ? on_step : NULL, o.progress_ctx = st;
    cli_mpi_train_opts(&o); // MPI: under mpirun, this rank's shard of the batch
    if (st) dcl_device_stats_get(dev, &st->last);
    double t0 = cli_now();
    dcl_status s = dcl_train(dev, m, ds, &o, NULL, NULL, NULL, NULL);
    *seconds = cli_now() - t0;
    return s;
}

// One model on one device: warm-up, timed training steps, sampling rate, per-step counters.
static dcl_status bench_train_model(dcl_device *dev, int unet, const bench_opts *o,
                                    const bench_train_data *data) {
    const dcl_device_info *d = dcl_device_get_info(dev);
    dcl_model_config c;
    dcl_model_config_default(&c);
    dcl_dataset *spiral = NULL, *ds = data->ds;
    int batch = o->batch ? (int)o->batch : unet ? 64 : 1024;
    int steps = o->steps ? (int)o->steps : unet ? 10 : 300, warm = unet ? 2 : 20;
    size_t sample_n = unet ? (size_t)batch : MLP_SAMPLE_N;
    int sample_steps = unet ? UNET_SAMPLE_STEPS : MLP_SAMPLE_STEPS;
    dcl_status s = DCL_OK;
    if (unet) {
        int C, H, W;
        dcl_dataset_image_shape(ds, &C, &H, &W);
        c.net.kind = DCL_NET_UNET;
        dcl_unet_config_default(&c.net.unet, C, H, W);
        c.net.unet.num_classes = dcl_dataset_num_classes(ds);
        c.cond_drop = 0.1;
        snprintf(c.data, sizeof c.data, "%s", data->synthetic ? "synthetic" : "fashion-mnist");
    } else {
        s = dcl_dataset_open(&spiral, "spiral", 0);
        ds = spiral;
    }
    dcl_model m = {0};
    step_stats st = {.dev = dev, .cap = steps};
    st.steps = calloc((size_t)steps, sizeof *st.steps);
    float *x = malloc(sample_n * dcl_net_dim(&c.net) * sizeof *x);
    if (s == DCL_OK && (!st.steps || !x)) s = dcl__fail(DCL_ERR_NOMEM, "out of host memory");
    if (s == DCL_OK)
        s = dcl_model_init(&m, dev, &c, (size_t)batch > sample_n ? (size_t)batch : sample_n);
    if (s == DCL_OK) {
        if (unet)
            printf("== %s  %s: U-Net 1x28x28 base %d, mult %d,%d,%d, %d classes, %zu parameters, "
                   "%s, batch %d\n",
                   d->spec, d->name, c.net.unet.base, c.net.unet.mult[0], c.net.unet.mult[1],
                   c.net.unet.mult[2], c.net.unet.num_classes, dcl_model_parameter_count(&m),
                   data->synthetic ? "synthetic images (Fashion-MNIST is not installed: "
                                     "tools/setup.sh)"
                                   : "Fashion-MNIST",
                   batch);
        else
            printf("== %s  %s: MLP %dx%d, spiral, flow/velocity, %zu parameters, batch %d\n",
                   d->spec, d->name, c.net.mlp.depth, c.net.mlp.width,
                   dcl_model_parameter_count(&m), batch);
        fflush(stdout);
    }
    double secs = 0, sample_secs = 0;
    dcl_device_stats before, after;
    if (s == DCL_OK) {
        cli_progress("bench %s: %s warm-up", d->spec, unet ? "unet" : "mlp");
        s = train_steps(dev, &m, ds, batch, warm, NULL, &secs);
    }
    if (s == DCL_OK) {
        cli_progress("bench %s: %s training, %d steps", d->spec, unet ? "unet" : "mlp", steps);
        dcl_device_stats_get(dev, &before);
        s = train_steps(dev, &m, ds, batch, steps, &st, &secs);
        dcl_device_stats_get(dev, &after);
    }
    if (s == DCL_OK) {
        // One warm-up draw at the full size, then the timed one (the EMA weights, as `sample`).
        cli_progress("bench %s: %s sampling", d->spec, unet ? "unet" : "mlp");
        dcl_sampler_opts so = {.kind = DCL_SAMPLER_EULER, .steps = 1};
        s = dcl_model_sample(&m, &so, sample_n, 1, 1, NULL, x, NULL);
        so.steps = sample_steps;
        double t0 = cli_now();
        if (s == DCL_OK) s = dcl_model_sample(&m, &so, sample_n, 1, 1, NULL, x, NULL);
        sample_secs = cli_now() - t0;
    }
    cli_progress_clear();
    if (s == DCL_OK) {
        dcl_device_stats total = {
            after.ops - before.ops,       after.launches - before.launches,
            after.writes - before.writes, after.write_bytes - before.write_bytes,
            after.reads - before.reads,   after.read_bytes - before.read_bytes,
            after.waits - before.waits};
        double evals = (double)sample_n * sample_steps;
        printf("train   %10.2f steps/s  %10.1f %s/s  (%d steps after %d warm-up, %.2f s)\n",
               steps / secs, steps * (double)batch / secs, unet ? "images" : "examples", steps,
               warm, secs);
        cli_mpi_bench_report(secs, steps); // MPI: the all-reduce's share
        printf("sample  %10.1f samples/s  %10.1f evaluations/s  (euler %d steps, %zu %s, EMA "
               "weights, %.2f s)\n",
               (double)sample_n / sample_secs, evals / sample_secs, sample_steps, sample_n,
               unet ? "images, unconditional" : "points", sample_secs);
        print_step_stats(&st, &total);
        putchar('\n');
    } else {
        cli_report(s);
    }
    fflush(stdout);
    free(x);
    free(st.steps);
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(spiral);
    return s;
}

// Opens spec and benchmarks the models --model names; returns the first error status.
static dcl_status bench_train(const char *spec, const bench_opts *o, const bench_train_data *data) {
    dcl_device *dev = NULL;
    dcl_clear_error();
    dcl_status s = dcl_device_open(&dev, spec), first = s;
    if (s != DCL_OK) {
        cli_report(s);
        return s;
    }
    if (strcmp(o->model, "unet") != 0) first = bench_train_model(dev, 0, o, data);
    if (strcmp(o->model, "mlp") != 0) {
        s = bench_train_model(dev, 1, o, data);
        if (first == DCL_OK) first = s;
    }
    dcl_device_free(dev);
    return first;
}

// Takes the optional subject off argv into *subject_out; returns CLI_PARSED or a usage error.
static int parse_subject(int *argc, char ***argv, const char **subject_out) {
    static const char *const subjects[] = {"ops", "gemm", "unet", "train"};
    *subject_out = "ops";
    if (*argc < 2 || (*argv)[1][0] == '-') return CLI_PARSED;
    const char *subject = (*argv)[1];
    int known = 0;
    for (int i = 0; i < CLI_COUNT(subjects); i++) known |= strcmp(subject, subjects[i]) == 0;
    if (!known) {
        const char *hint = cli_suggest(subject, subjects, CLI_COUNT(subjects));
        if (hint)
            return cli_usage_error("bench", "unknown bench subject '%s' (did you mean '%s'?)",
                                   subject, hint);
        return cli_usage_error(
            "bench", "unknown bench subject '%s' (the subjects are: ops, gemm, unet, train)",
            subject);
    }
    *subject_out = subject;
    // Drop the subject: argv[1] becomes the command name cli_parse skips.
    (*argv)[1] = (*argv)[0];
    *argc -= 1;
    *argv += 1;
    return CLI_PARSED;
}

int cli_cmd_bench(int argc, char **argv) {
    bench_opts o = {.elements = DCL_CHECK_PERF_ELEMENTS,
                    .sizes = {{256, 1024, 2048}, 3},
                    .model = "both",
                    .classes = 10};
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"size", 0, CLI_OPT_U64, &o.size, "N", "ops: run every case at size n", "per case", 1,
         1u << 24},
        {"elements", 0, CLI_OPT_U64, &o.elements, "N",
         "ops: each case's size gives its tensors about N elements in all", "16777216", 1,
         (uint64_t)1 << 30},
        {"case", 0, CLI_OPT_STRING, &o.only, "PREFIX",
         "ops: only the cases whose name starts with PREFIX", "every case", 0, 0},
        {"sizes", 0, CLI_OPT_SIZES, &o.sizes, "LIST", "gemm: square GEMM sizes n", "256,1024,2048",
         1, 65536},
        {"repeat", 0, CLI_OPT_U64, &o.repeat, "N", "timed calls per op after the warm-up",
         "adaptive: at least 3 calls and 0.2 s (gemm 0.5 s)", 1, 1000000},
        {"batch", 0, CLI_OPT_U64, &o.batch, "N", "unet, train: examples per batch",
         "64 (unet), 1024 (mlp)", 1, 1u << 20},
        {"model", 0, CLI_OPT_STRING, &o.model, "NAME", "train: mlp, unet or both", "both", 0, 0},
        {"steps", 0, CLI_OPT_U64, &o.steps, "N", "train: timed training steps after the warm-up",
         "300 (mlp), 10 (unet)", 1, 1000000},
        {"image", 0, CLI_OPT_SIZES, &o.image, "C,H,W", "unet: image channels, height, width",
         "1,28,28", 1, 4096},
        {"base", 0, CLI_OPT_U64, &o.base, "C", "unet: channels at full resolution", "16", 1, 4096},
        {"mult", 0, CLI_OPT_SIZES, &o.mult, "LIST", "unet: channel multiplier per resolution",
         "1,2,2", 1, 64},
        {"groups", 0, CLI_OPT_U64, &o.groups, "G", "unet: GroupNorm groups", "8", 1, 4096},
        {"res-blocks", 0, CLI_OPT_U64, &o.res_blocks, "N", "unet: residual blocks per resolution",
         "1", 1, DCL_UNET_MAX_RES_BLOCKS},
        {"attn", 0, CLI_OPT_SIZES, &o.attn, "LIST",
         "unet: self-attention at these resolutions (heights)", NULL, 1, 65536},
        {"heads", 0, CLI_OPT_U64, &o.heads, "N", "unet: attention heads", "1", 1, 4096},
        {"classes", 0, CLI_OPT_U64, &o.classes, "K", "unet: classes of the class embedding", "10",
         0, 100000},
    };
    const char *subject;
    int rc = parse_subject(&argc, &argv, &subject);
    if (rc != CLI_PARSED) return rc;
    cli_common common = {0};
    rc = cli_parse(&cli_bench_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (o.only) {
        int any = 0;
        for (int i = 0; i < dcl_check_case_count(); i++)
            any |= selected(&o, dcl_check_case_name(i));
        if (!any)
            return cli_usage_error("bench",
                                   "--case %s: no op case starts with '%s' (cases are named "
                                   "after their ops: gemm_nn, axpby, group_norm_forward, ...)",
                                   o.only, o.only);
    }

    if (strcmp(o.model, "mlp") && strcmp(o.model, "unet") && strcmp(o.model, "both"))
        return cli_usage_error("bench", "--model '%s': use mlp, unet or both", o.model);
    if (strcmp(subject, "unet") == 0 && o.batch > 4096)
        return cli_usage_error("bench", "unet: --batch is at most 4096");

    dcl_unet_config uc;
    rc = unet_config(&o, &uc);
    if (rc != CLI_PARSED) return rc;

    if (strcmp(subject, "train") == 0) cli_mpi_bench_begin(); // MPI: rank 0 alone prints
    bench_train_data data = {0};
    dcl_status s = DCL_OK;
    if (strcmp(subject, "train") == 0 && strcmp(o.model, "mlp") != 0) {
        s = open_image_data(&data);
        if (s != DCL_OK) return cli_report(s);
    }
    cli_targets t;
    s = cli_targets_init(&t, common.device ? common.device : "all", 1);
    if (s != DCL_OK) {
        dcl_dataset_free(data.ds);
        return cli_report(s);
    }
    dcl_status first = DCL_OK;
    for (int i = 0; i < t.n; i++) {
        if (strcmp(subject, "unet") == 0)
            s = bench_unet(t.specs[i], &uc, o.batch ? (size_t)o.batch : 64);
        else if (strcmp(subject, "train") == 0) s = bench_train(t.specs[i], &o, &data);
        else if (strcmp(subject, "gemm") == 0) s = bench_gemm(t.specs[i], &o);
        else s = bench_ops(t.specs[i], &o);
        if (first == DCL_OK) first = s;
    }
    cli_targets_free(&t);
    dcl_dataset_free(data.ds);
    return cli_mpi_end(cli_exit_code(first));
}
