// `diffcl bench [ops|gemm|unet]`: the op-case table of host/crosscheck/ timed case by case (GB/s
// and GFLOP/s), square GEMMs (GFLOP/s) and the default U-Net (images/s) on each device, timed on
// the monotonic clock after one warm-up call.
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "crosscheck/crosscheck.h" // dcl_check_case_*, dcl_check_perf_*: the cases bench ops times
#include "diffcl/ops.h"            // dcl_gemm, dcl_rng_normal, dcl_rng_uniform, dcl_fill
#include "diffcl/rng.h"            // DCL_RNG_TEST
#include "diffcl/unet.h"           // dcl_unet_*: the default U-Net's throughput

const cli_command cli_bench_command = {
    .name = "bench",
    .summary = "time every op case (GB/s, GFLOP/s), square GEMMs and the U-Net on each device",
    .usage = "diffcl bench [ops|gemm|unet] [--device SPEC|all] [--size N] [--elements N]\n"
             "             [--case PREFIX] [--sizes LIST] [--repeat N] [--batch N]",
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
        "sampling).\n",
    .examples = "  diffcl bench\n"
                "  diffcl bench ops --device all --case group_norm\n"
                "  diffcl bench ops --device cl:gpu --size 4194304 --repeat 20\n"
                "  diffcl bench gemm --device cl:gpu --sizes 512,4096\n"
                "  diffcl bench unet --device all --batch 64\n",
    .device_help = "device to time, or 'all' for cpu and every usable OpenCL device",
    .device_def = "all",
};

#define MIN_CALLS 3
#define MIN_SECONDS_OPS 0.2
#define MIN_SECONDS_GEMM 0.5
#define MAX_BATCH (1 << 20)

typedef struct bench_opts {
    uint64_t size;     // ops: every case's n (0: from elements)
    uint64_t elements; // ops: words in all of a case's tensors
    const char *only;  // ops: cases whose name starts with this
    cli_sizes sizes;   // gemm
    uint64_t repeat;   // 0: adaptive
    uint64_t batch;    // unet
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

// Takes the optional subject off argv into *subject_out; returns CLI_PARSED or a usage error.
static int parse_subject(int *argc, char ***argv, const char **subject_out) {
    static const char *const subjects[] = {"ops", "gemm", "unet"};
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
            "bench", "unknown bench subject '%s' (the subjects are: ops, gemm, unet)", subject);
    }
    *subject_out = subject;
    // Drop the subject: argv[1] becomes the command name cli_parse skips.
    (*argv)[1] = (*argv)[0];
    *argc -= 1;
    *argv += 1;
    return CLI_PARSED;
}

int cli_cmd_bench(int argc, char **argv) {
    bench_opts o = {0, DCL_CHECK_PERF_ELEMENTS, NULL, {{256, 1024, 2048}, 3}, 0, 64};
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
        {"batch", 0, CLI_OPT_U64, &o.batch, "N", "unet: images per batch", "64", 1, 4096},
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

    cli_targets t;
    dcl_status s = cli_targets_init(&t, common.device ? common.device : "all", 1);
    if (s != DCL_OK) return cli_report(s);
    dcl_status first = DCL_OK;
    for (int i = 0; i < t.n; i++) {
        if (strcmp(subject, "unet") == 0) s = bench_unet(t.specs[i], (size_t)o.batch);
        else if (strcmp(subject, "gemm") == 0) s = bench_gemm(t.specs[i], &o);
        else s = bench_ops(t.specs[i], &o);
        if (first == DCL_OK) first = s;
    }
    cli_targets_free(&t);
    return cli_exit_code(first);
}
