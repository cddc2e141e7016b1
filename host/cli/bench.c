// `diffcl bench [ops]`: GEMM GFLOP/s at square sizes and elementwise GB/s (axpby, rng_normal) on
// each device, timed on the monotonic clock after one warm-up call.
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "diffcl/ops.h"  // dcl_gemm, dcl_axpby, dcl_rng_normal, dcl_rng_uniform
#include "diffcl/rng.h"  // DCL_RNG_TEST
#include "diffcl/unet.h" // dcl_unet_*: the default U-Net's throughput

const cli_command cli_bench_command = {
    .name = "bench",
    .summary = "measure GEMM GFLOP/s, elementwise GB/s and U-Net images/s on each device",
    .usage =
        "diffcl bench [ops|unet] [--device SPEC|all] [--sizes LIST] [--repeat N] [--elements N]\n"
        "             [--batch N]",
    .details =
        "'ops' (the default) times square GEMMs C = A B at each\n"
        "size (GFLOP/s = 2 n^3 / time) and two elementwise ops at --elements elements: axpby\n"
        "(reads two arrays, writes one: 12 bytes per element) and rng_normal (writes 4 bytes per\n"
        "element). Each op runs once to warm up (kernel build, caches), then --repeat times;\n"
        "by default it repeats until at least 3 calls and 0.5 s have passed. Times include\n"
        "waiting for the device to finish.\n"
        "\n"
        "'unet' times the default class-conditional U-Net for 28x28 grey images (what\n"
        "'diffcl train --data fashion-mnist' builds) at --batch images: a training step's\n"
        "forward + backward (images/s) and a forward alone (network evaluations/s, the cost of\n"
        "sampling).\n",
    .examples = "  diffcl bench\n"
                "  diffcl bench ops --device cl:gpu --sizes 512,4096 --repeat 20\n"
                "  diffcl bench unet --device all --batch 64\n",
    .device_help = "device to time, or 'all' for cpu and every usable OpenCL device",
    .device_def = "all",
};

#define MIN_CALLS 3
#define MIN_SECONDS 0.5
#define MAX_BATCH (1 << 20)

// The buffers of one benchmark: a and b are inputs, c the output; n is the size parameter.
typedef struct bench_bufs {
    dcl_buffer *buf[3];
    size_t n;
} bench_bufs;

typedef struct bench_case {
    const char *name;
    int is_gemm;           // 1: n x n matrices, rate in GFLOP/s; 0: n elements, rate in GB/s
    int n_bufs;            // the last one is the output
    double bytes_per_elem; // GB/s cases: bytes read and written per element
    dcl_status (*run)(dcl_device *dev, const bench_bufs *b);
} bench_case;

static dcl_status run_gemm(dcl_device *dev, const bench_bufs *b) {
    return dcl_gemm(dev, dcl_at(b->buf[2], 0), dcl_at(b->buf[0], 0), dcl_at(b->buf[1], 0), 0, 0,
                    b->n, b->n, b->n, 1.0f, 0.0f);
}

static dcl_status run_axpby(dcl_device *dev, const bench_bufs *b) {
    return dcl_axpby(dev, dcl_at(b->buf[2], 0), dcl_at(b->buf[0], 0), dcl_at(b->buf[1], 0), 0.5f,
                     0.25f, b->n);
}

static dcl_status run_rng_normal(dcl_device *dev, const bench_bufs *b) {
    return dcl_rng_normal(dev, dcl_at(b->buf[0], 0), 1, DCL_RNG_TEST, 0, 0, b->n);
}

static const bench_case gemm_case = {"gemm", 1, 3, 0, run_gemm};
static const bench_case elementwise_cases[] = {
    {"axpby", 0, 3, 12, run_axpby},
    {"rng_normal", 0, 1, 4, run_rng_normal},
};

typedef struct bench_opts {
    cli_sizes sizes;
    uint64_t repeat; // 0: adaptive
    uint64_t elements;
    uint64_t batch; // unet
} bench_opts;

// Runs c once to warm up, then `repeat` times (0: until MIN_CALLS calls and MIN_SECONDS), in
// batches with one dcl_device_finish each so the device queue stays full.
static dcl_status time_case(dcl_device *dev, const bench_case *c, const bench_bufs *b,
                            uint64_t repeat, long *calls, double *seconds) {
    dcl_status s = c->run(dev, b);
    if (s == DCL_OK) s = dcl_device_finish(dev);
    *calls = 0;
    *seconds = 0;
    long batch = repeat ? (long)repeat : 1;
    while (s == DCL_OK) {
        double t0 = cli_now();
        for (long i = 0; i < batch && s == DCL_OK; i++) s = c->run(dev, b);
        if (s == DCL_OK) s = dcl_device_finish(dev);
        *seconds += cli_now() - t0;
        *calls += batch;
        if (repeat || (*calls >= MIN_CALLS && *seconds >= MIN_SECONDS)) break;
        // Enough calls to reach the target at the rate seen so far.
        double per_call = *seconds / (double)*calls;
        double want = per_call > 0 ? (MIN_SECONDS - *seconds) / per_call : MAX_BATCH;
        batch = want < 1 ? 1 : want > MAX_BATCH ? MAX_BATCH : (long)want + 1;
        if (*calls + batch < MIN_CALLS) batch = MIN_CALLS - *calls;
    }
    return s;
}

static void free_bufs(bench_bufs *b) {
    for (int i = 0; i < 3; i++) dcl_buffer_free(b->buf[i]);
    memset(b, 0, sizeof *b);
}

// Allocates c's buffers for size n and fills the inputs with uniforms.
static dcl_status alloc_bufs(dcl_device *dev, const bench_case *c, size_t n, bench_bufs *b) {
    static const char *const names[] = {"bench.a", "bench.b", "bench.out"};
    size_t len = c->is_gemm ? n * n : n;
    dcl_status s = DCL_OK;
    memset(b, 0, sizeof *b);
    b->n = n;
    for (int i = 0; i < c->n_bufs && s == DCL_OK; i++) {
        s = dcl_buffer_alloc(&b->buf[i], dev, len, c->n_bufs == 1 ? names[2] : names[i]);
        if (s == DCL_OK && i < c->n_bufs - 1)
            s = dcl_rng_uniform(dev, dcl_at(b->buf[i], 0), 1, DCL_RNG_TEST, (uint32_t)i, 0, len);
    }
    if (s == DCL_OK) s = dcl_device_finish(dev);
    if (s != DCL_OK) free_bufs(b);
    return s;
}

// One table row: times c at size n on dev. Returns the error status (already reported) or OK.
static dcl_status bench_row(dcl_device *dev, const bench_case *c, size_t n, const bench_opts *o) {
    const dcl_device_info *d = dcl_device_get_info(dev);
    unsigned long long bytes = 4ull * (c->is_gemm ? n * n : n); // of one buffer
    if (bytes > d->max_alloc) {
        char need[32], max[32];
        cli_format_bytes(need, sizeof need, bytes);
        cli_format_bytes(max, sizeof max, (unsigned long long)d->max_alloc);
        printf("%-11s %9zu  skipped: a %s buffer exceeds the device's max allocation of %s\n",
               c->name, n, need, max);
        return DCL_OK;
    }
    // The row is printed only once it is complete, so a progress line cannot overwrite it.
    cli_progress("bench %s: %s n=%zu", d->spec, c->name, n);
    dcl_clear_error();
    bench_bufs b;
    long calls = 0;
    double seconds = 0;
    dcl_status s = alloc_bufs(dev, c, n, &b);
    if (s == DCL_OK) {
        s = time_case(dev, c, &b, o->repeat, &calls, &seconds);
        free_bufs(&b);
    }
    cli_progress_clear();
    if (s != DCL_OK) {
        printf("%-11s %9zu  ERROR (see stderr)\n", c->name, n);
        fflush(stdout);
        cli_report(s);
        return s;
    }
    double per_call = seconds / (double)calls;
    double rate = c->is_gemm ? 2.0 * (double)n * (double)n * (double)n / per_call * 1e-9
                             : c->bytes_per_elem * (double)n / per_call * 1e-9;
    printf("%-11s %9zu  %7ld  %12.4f  %10.2f %s\n", c->name, n, calls, per_call * 1e3, rate,
           c->is_gemm ? "GFLOP/s" : "GB/s");
    fflush(stdout);
    return DCL_OK;
}

// Opens spec and prints its table; returns the first error status.
static dcl_status bench_device(const char *spec, const bench_opts *o) {
    dcl_device *dev = NULL;
    dcl_clear_error();
    dcl_status s = dcl_device_open(&dev, spec);
    if (s != DCL_OK) {
        cli_report(s);
        return s;
    }
    const dcl_device_info *d = dcl_device_get_info(dev);
    printf("== %s  %s  (%s%s%s)\n", d->spec, d->name, d->platform_name,
           cli_known(d->driver) ? ", driver " : "", cli_known(d->driver) ? d->driver : "");
    printf("%-11s %9s  %7s  %12s  %10s\n", "op", "size", "calls", "ms/call", "rate");
    dcl_status first = DCL_OK;
    for (int k = 0; k < o->sizes.n; k++) {
        s = bench_row(dev, &gemm_case, o->sizes.v[k], o);
        if (first == DCL_OK) first = s;
    }
    for (size_t i = 0; i < sizeof elementwise_cases / sizeof elementwise_cases[0]; i++) {
        s = bench_row(dev, &elementwise_cases[i], (size_t)o->elements, o);
        if (first == DCL_OK) first = s;
    }
    putchar('\n');
    dcl_device_free(dev);
    return first;
}

// Seconds per call of fwd (and bwd when train), after one warm-up call: at least 3 calls and 1 s.
static dcl_status time_unet(dcl_device *dev, dcl_unet *u, dcl_buffer *const *b, size_t N, int train,
                            double *per_call) {
    dcl_status s = DCL_OK;
    long calls = -1; // the first call warms up (kernel builds, allocations)
    double t0 = 0, elapsed = 0;
    while (s == DCL_OK && (calls < 3 || elapsed < 1.0)) {
        if (calls == 0) t0 = cli_now();
        s = dcl_unet_forward(u, NULL, dcl_at(b[1], 0), dcl_at(b[0], 0), dcl_at(b[2], 0),
                             dcl_at(b[3], 0), N);
        if (s == DCL_OK && train) s = dcl_unet_backward(u, dcl_at(b[4], 0), N);
        if (s == DCL_OK) s = dcl_device_finish(dev);
        calls++;
        if (calls > 0) elapsed = cli_now() - t0;
    }
    *per_call = calls > 0 ? elapsed / (double)calls : 0;
    return s;
}

// The default class-conditional U-Net for 1×28×28 (Fashion-MNIST) at batch N: training (forward
// + backward) and sampling (forward) throughput.
static dcl_status bench_unet(const char *spec, size_t N) {
    dcl_device *dev = NULL;
    dcl_unet *u = NULL;
    dcl_buffer *b[5] = {0}; // x, out, t, labels, dout
    dcl_unet_config c;
    dcl_unet_config_default(&c, 1, 28, 28);
    c.num_classes = 10;
    dcl_status s = dcl_device_open(&dev, spec);
    if (s == DCL_OK) s = dcl_unet_init(&u, dev, &c, 1, N);
    size_t D = 28 * 28, len[5] = {N * D, N * D, N, N, N * D};
    static const char *const names[5] = {"bench.x", "bench.out", "bench.t", "bench.labels",
                                         "bench.dout"};
    for (int i = 0; i < 5 && s == DCL_OK; i++) s = dcl_buffer_alloc(&b[i], dev, len[i], names[i]);
    if (s == DCL_OK) s = dcl_rng_normal(dev, dcl_at(b[0], 0), 1, DCL_RNG_TEST, 0, 0, N * D);
    if (s == DCL_OK) s = dcl_rng_normal(dev, dcl_at(b[4], 0), 1, DCL_RNG_TEST, 1, 0, N * D);
    if (s == DCL_OK) s = dcl_rng_uniform(dev, dcl_at(b[2], 0), 1, DCL_RNG_TEST, 2, 0, N);
    if (s == DCL_OK) s = dcl_fill(dev, dcl_at(b[3], 0), 0.0f, N); // label 0 (bits 0)
    double train = 0, fwd = 0;
    if (s == DCL_OK) {
        const dcl_device_info *d = dcl_device_get_info(dev);
        size_t params = 0;
        const dcl_arena *a = dcl_unet_params(u);
        for (int i = 0; i < a->count; i++) params += a->views[i].n;
        printf("== %s  %s: U-Net 1x28x28, base %d, mult %d,%d,%d, %zu parameters, %.3f GFLOP "
               "per image forward, batch %zu\n",
               d->spec, d->name, c.base, c.mult[0], c.mult[1], c.mult[2], params,
               dcl_unet_flops(&c) * 1e-9, N);
        cli_progress("bench %s: unet training step", d->spec);
        s = time_unet(dev, u, b, N, 1, &train);
        cli_progress("bench %s: unet forward", d->spec);
        if (s == DCL_OK) s = time_unet(dev, u, b, N, 0, &fwd);
        cli_progress_clear();
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
    for (int i = 0; i < 5; i++) dcl_buffer_free(b[i]);
    dcl_unet_free(u);
    dcl_device_free(dev);
    return s;
}

// Takes the optional subject off argv into *subject; returns CLI_PARSED or a usage error.
static int parse_subject(int *argc, char ***argv, const char **subject_out) {
    *subject_out = "ops";
    if (*argc < 2 || (*argv)[1][0] == '-') return CLI_PARSED;
    const char *subject = (*argv)[1];
    static const char *const subjects[] = {"ops", "unet"};
    if (strcmp(subject, "ops") != 0 && strcmp(subject, "unet") != 0) {
        const char *hint = cli_suggest(subject, subjects, 2);
        if (hint)
            return cli_usage_error("bench", "unknown bench subject '%s' (did you mean '%s'?)",
                                   subject, hint);
        return cli_usage_error("bench", "unknown bench subject '%s' (the subjects are: ops, unet)",
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
    bench_opts o = {{{256, 1024, 2048}, 3}, 0, 16u << 20, 64};
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"sizes", 0, CLI_OPT_SIZES, &o.sizes, "LIST", "square GEMM sizes n", "256,1024,2048", 1,
         65536},
        {"repeat", 0, CLI_OPT_U64, &o.repeat, "N", "timed calls per op after the warm-up",
         "adaptive: at least 3 calls and 0.5 s", 1, 1000000},
        {"elements", 0, CLI_OPT_U64, &o.elements, "N", "elements of the elementwise ops",
         "16777216", 1, (uint64_t)1 << 32},
        {"batch", 0, CLI_OPT_U64, &o.batch, "N", "unet: images per batch", "64", 1, 4096},
    };
    const char *subject;
    int rc = parse_subject(&argc, &argv, &subject);
    if (rc != CLI_PARSED) return rc;
    cli_common common = {0};
    rc = cli_parse(&cli_bench_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;

    cli_targets t;
    dcl_status s = cli_targets_init(&t, common.device ? common.device : "all", 1);
    if (s != DCL_OK) return cli_report(s);
    dcl_status first = DCL_OK;
    for (int i = 0; i < t.n; i++) {
        s = strcmp(subject, "unet") == 0 ? bench_unet(t.specs[i], (size_t)o.batch)
                                         : bench_device(t.specs[i], &o);
        if (first == DCL_OK) first = s;
    }
    cli_targets_free(&t);
    return cli_exit_code(first);
}
