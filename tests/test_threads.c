// The CPU reference gives the same bits on any number of threads: every op case of
// host/crosscheck/ at sizes that span many chunks, a few training steps of the MLP (batch 1024)
// and of a small class-conditional U-Net with sampling afterwards, each run with 1, 2 and 3
// threads and compared word for word with the 1-thread run. Also: a time embedding whose t
// repeats row after row, dcl_cpu_set_threads' range, that the runs with more threads did use the
// pool, and that a forked child can use it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "testlib_idx.h"         // check_write_idx
#include "crosscheck/case.h"     // dcl__check_cases, dcl__check_gen_word, struct problem
#include "device/cpu/cpu_pool.h" // dcl__cpu_pool_jobs
#include "diffcl/data.h"
#include "diffcl/log.h"
#include "diffcl/ops.h" // dcl_sum, dcl_fill
#include "diffcl/train.h"

// Everything one run produced: named segments of 32-bit words.
#define MAX_SEGMENTS 64

struct record {
    uint32_t *words;
    size_t n, cap;
    int n_seg;
    char name[MAX_SEGMENTS][64];
    size_t start[MAX_SEGMENTS + 1];
};

static void record_add(struct record *r, const char *name, const void *data, size_t n) {
    if (r->n_seg >= MAX_SEGMENTS) {
        fprintf(stderr, "too many segments\n");
        check_failures++;
        return;
    }
    if (r->n + n > r->cap) {
        size_t cap = (r->n + n) * 2;
        uint32_t *w = realloc(r->words, cap * 4);
        if (!w) {
            check_failures++;
            return;
        }
        r->words = w, r->cap = cap;
    }
    memcpy(r->words + r->n, data, n * 4);
    snprintf(r->name[r->n_seg], sizeof r->name[0], "%s", name);
    r->start[r->n_seg++] = r->n;
    r->n += n;
    r->start[r->n_seg] = r->n;
}

// Every segment of b equals a's bit for bit; the first differing word of each is printed.
static void record_compare(const struct record *a, const struct record *b, int threads) {
    CHECK_EQ(a->n_seg, b->n_seg);
    for (int s = 0; s < a->n_seg && s < b->n_seg; s++) {
        size_t na = a->start[s + 1] - a->start[s], nb = b->start[s + 1] - b->start[s];
        const uint32_t *x = a->words + a->start[s], *y = b->words + b->start[s];
        if (strcmp(a->name[s], b->name[s]) != 0 || na != nb) {
            fprintf(stderr, "FAIL segment %d: %s (%zu words) vs %s (%zu words)\n", s, a->name[s],
                    na, b->name[s], nb);
            check_failures++;
            continue;
        }
        size_t diff = 0, first = 0;
        for (size_t i = 0; i < na; i++)
            if (x[i] != y[i] && diff++ == 0) first = i;
        if (diff) {
            fprintf(stderr,
                    "FAIL %s: %zu of %zu words differ between 1 and %d threads; first at %zu: "
                    "%08x vs %08x\n",
                    a->name[s], diff, na, threads, first, x[first], y[first]);
            check_failures++;
        }
    }
}

// ---- the op cases -------------------------------------------------------------------------------

static size_t total_words(const struct check_case *c, size_t n) {
    struct problem p = {0};
    c->setup(c, n, &p);
    size_t words = 0;
    for (int k = 0; k < p.nt; k++) words += p.t[k].len;
    return words;
}

// Case c at size n on dev: inputs drawn as the check draws them (a pattern of 4099 words of each
// tensor's distribution, repeated), outputs prefilled with a NaN; every tensor afterwards.
static void run_case(dcl_device *dev, const struct check_case *c, size_t n, struct record *r) {
    struct problem p = {0};
    p.seed = 0x7417u + n;
    c->setup(c, n, &p);
    dcl_buffer *buf[MAX_TENSORS] = {0};
    dcl_ptr ptr[MAX_TENSORS];
    uint32_t *init[MAX_TENSORS] = {0};
    dcl_status s = DCL_OK;
    for (int k = 0; k < p.nt && s == DCL_OK; k++) {
        size_t len = p.t[k].len ? p.t[k].len : 1;
        init[k] = malloc(len * 4);
        if (!init[k]) {
            s = DCL_ERR_NOMEM;
            break;
        }
        for (size_t j = 0; j < p.t[k].len; j++)
            init[k][j] = p.t[k].role == OUT ? 0x7fc0dcb1u
                         : j < 4099 ? dcl__check_gen_word(p.t[k].gen, p.seed, (uint32_t)k, j)
                                    : init[k][j - 4099];
    }
    if (s == DCL_OK && c->derive) c->derive(&p, init, 0);
    for (int k = 0; k < p.nt && s == DCL_OK; k++) {
        s = dcl_buffer_alloc(&buf[k], dev, p.t[k].len ? p.t[k].len : 1, p.t[k].name);
        if (s == DCL_OK) s = dcl_buffer_write(buf[k], 0, p.t[k].len, init[k]);
        ptr[k] = dcl_at(buf[k], 0);
    }
    if (s == DCL_OK) s = c->run(dev, &p, ptr);
    for (int k = 0; k < p.nt && s == DCL_OK; k++) {
        s = dcl_buffer_read(buf[k], 0, p.t[k].len, init[k]);
        char name[64];
        snprintf(name, sizeof name, "%s.n%zu.%s", c->name, n, p.t[k].name);
        if (s == DCL_OK) record_add(r, name, init[k], p.t[k].len);
    }
    if (s != DCL_OK) {
        fprintf(stderr, "FAIL case %s n=%zu: %s: %s\n", c->name, n, dcl_status_name(s),
                dcl_last_error());
        check_failures++;
    }
    for (int k = 0; k < p.nt; k++) {
        dcl_buffer_free(buf[k]);
        free(init[k]);
    }
}

// Case i at the size where its tensors hold about 2^18 words (many chunks of every kind), and at
// a ragged size a little above it.
static void run_cases(dcl_device *dev, struct record *r, int i) {
    const struct check_case *c = &dcl__check_cases[i];
    size_t n = 64;
    while (n < ((size_t)1 << 22) && total_words(c, n) < ((size_t)1 << 18)) n *= 2;
    run_case(dev, c, n, r);
    run_case(dev, c, n + n / 3 + 7, r);
}

// A sum whose value shows where its chunks begin: ones, with 2^60 near the start and −2^60 at the
// end. In double, a one added to 2^60 is lost (it is below half an ulp, 2^8), while a chunk's
// partial sum of ones is exact and survives, rounded to a multiple of 2^8 where it meets ±2^60: the
// result changes with every chunk boundary. (Plain inputs cannot show it: a double sum of floats
// is exact enough that any order rounds to the same float.)
static void run_boundary_sums(dcl_device *dev, struct record *r, int i) {
    (void)i;
    static const size_t sizes[] = {70001, 300001, 1u << 22};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float *x = malloc(n * sizeof *x), out = 0;
        dcl_buffer *b = NULL, *o = NULL;
        dcl_status s = x ? DCL_OK : DCL_ERR_NOMEM;
        if (s == DCL_OK) {
            for (size_t j = 0; j < n; j++) x[j] = 1.0f;
            x[5] = 0x1p60f, x[n - 1] = -0x1p60f;
            s = dcl_buffer_alloc(&b, dev, n, "x");
        }
        if (s == DCL_OK) s = dcl_buffer_alloc(&o, dev, 1, "sum");
        if (s == DCL_OK) s = dcl_buffer_write(b, 0, n, x);
        if (s == DCL_OK) s = dcl_sum(dev, dcl_at(o, 0), dcl_at(b, 0), n);
        if (s == DCL_OK) s = dcl_buffer_read(o, 0, 1, &out);
        char name[64];
        snprintf(name, sizeof name, "boundary_sum.n%zu", n);
        if (s == DCL_OK) record_add(r, name, &out, 1);
        else check_failures++;
        dcl_buffer_free(b), dcl_buffer_free(o);
        free(x);
    }
}

// A time embedding whose t repeats in runs (as a sampler's batch does; the CPU copies such rows)
// across chunk boundaries, with ±0 and NaN: every row must equal the row computed alone.
static void run_time_embedding_runs(dcl_device *dev, struct record *r, int i) {
    (void)i;
    size_t N = 5000, E = 32;
    float *t = malloc(N * sizeof *t), *all = malloc(N * E * sizeof *all), one[32];
    dcl_buffer *bt = NULL, *bo = NULL;
    dcl_status s = t && all ? DCL_OK : DCL_ERR_NOMEM;
    for (size_t n = 0; s == DCL_OK && n < N; n++)
        t[n] = n % 700 == 3 ? -0.0f : n % 700 == 4 ? 0.0f : n % 900 == 5 ? NAN : (n / 37) * 1e-3f;
    if (s == DCL_OK) s = dcl_buffer_alloc(&bt, dev, N, "t");
    if (s == DCL_OK) s = dcl_buffer_alloc(&bo, dev, N * E, "temb");
    if (s == DCL_OK) s = dcl_buffer_write(bt, 0, N, t);
    if (s == DCL_OK) s = dcl_time_embedding(dev, dcl_at(bo, 0), dcl_at(bt, 0), N, E);
    if (s == DCL_OK) s = dcl_buffer_read(bo, 0, N * E, all);
    size_t bad = 0;
    for (size_t n = 0; s == DCL_OK && n < N; n += 7) { // every 7th row, alone
        s = dcl_time_embedding(dev, dcl_at(bo, 0), dcl_at(bt, n), 1, E);
        if (s == DCL_OK) s = dcl_buffer_read(bo, 0, E, one);
        if (s == DCL_OK && memcmp(one, all + n * E, sizeof one) != 0 && bad++ < 5)
            fprintf(stderr, "FAIL time embedding row %zu (t = %g) differs from the row alone\n", n,
                    (double)t[n]);
    }
    CHECK_EQ(s, DCL_OK);
    CHECK_EQ(bad, 0);
    if (s == DCL_OK) record_add(r, "time_embedding_runs", all, N * E);
    dcl_buffer_free(bt), dcl_buffer_free(bo);
    free(t), free(all);
}

#if defined(__GNUC__)
// OpenBLAS's own thread count, when the CBLAS is OpenBLAS (weak: NULL otherwise).
extern void openblas_set_num_threads(int num_threads) __attribute__((weak));
#endif

// The GEMM cases on 1 diffcl thread (one CBLAS call per chunk) with OpenBLAS itself on 1, 2 and
// 3 threads: diffcl pins OpenBLAS to one thread, but the result should not depend on it either
// (OpenBLAS splits M and N among its threads, never K). Skipped without OpenBLAS.
static void across_blas_threads(void) {
#if defined(__GNUC__)
    if (!openblas_set_num_threads) return;
    struct record r[3];
    memset(r, 0, sizeof r);
    int failed = check_failures;
    CHECK_EQ(dcl_cpu_set_threads(1), DCL_OK);
    for (int t = 1; t <= 3; t++) {
        dcl_device *dev = NULL;
        if (dcl_device_open(&dev, "cpu") != DCL_OK) {
            check_failures++;
            break;
        }
        openblas_set_num_threads(t); // after the open, which pins it to 1
        for (int i = 0; i < dcl__check_n_cases; i++)
            if (strncmp(dcl__check_cases[i].name, "gemm", 4) == 0) run_cases(dev, &r[t - 1], i);
        dcl_device_free(dev);
    }
    record_compare(&r[0], &r[1], 2);
    record_compare(&r[0], &r[2], 3);
    for (int t = 0; t < 3; t++) free(r[t].words);
    printf("%-4s GEMM cases with OpenBLAS on 1, 2 and 3 threads\n",
           check_failures == failed ? "ok" : "FAIL");
#endif
}

// ---- training ------------------------------------------------------------------------------------

static char tmpdir[256];
static char idx_spec[480]; // fits dcl_model_config.data

static void record_model(dcl_model *m, struct record *r, const char *prefix) {
    dcl_arena *p = dcl_net_params(m->net);
    float *h = malloc((p->n > m->ema.n ? p->n : m->ema.n) * sizeof *h);
    char name[64];
    if (h && dcl_buffer_read(p->buf, 0, p->n, h) == DCL_OK) {
        snprintf(name, sizeof name, "%s.params", prefix);
        record_add(r, name, h, p->n);
    } else check_failures++;
    if (h && dcl_buffer_read(m->ema.buf, 0, m->ema.n, h) == DCL_OK) {
        snprintf(name, sizeof name, "%s.ema", prefix);
        record_add(r, name, h, m->ema.n);
    } else check_failures++;
    free(h);
}

// Trains c for `steps` steps of `batch` on dev; records the losses, the weights and EMA weights,
// and n_samples samples (Euler, 4 steps) of the result.
static void run_training(dcl_device *dev, const dcl_model_config *c, int steps, size_t batch,
                         size_t n_samples, size_t dim, struct record *r, const char *prefix) {
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = steps, o.batch = batch, o.warmup = 0, o.log_every = 1, o.lr = 3e-3, o.ema = 0.9;
    float losses[64];
    int n_losses = 0;
    float *x = malloc(n_samples * dim * sizeof *x);
    dcl_sampler_opts so = {.kind = DCL_SAMPLER_EULER, .steps = 4};
    size_t max_batch = batch > n_samples ? batch : n_samples;
    dcl_status s = x ? DCL_OK : DCL_ERR_NOMEM;
    if (s == DCL_OK) s = dcl_dataset_open(&ds, c->data, c->seed);
    if (s == DCL_OK) s = dcl_model_init(&m, dev, c, max_batch);
    if (s == DCL_OK) s = dcl_train(dev, &m, ds, &o, NULL, NULL, losses, &n_losses);
    if (s == DCL_OK) s = dcl_model_sample(&m, &so, n_samples, 3, 1, NULL, x, NULL);
    if (s == DCL_OK) {
        char name[64];
        snprintf(name, sizeof name, "%s.losses", prefix);
        record_add(r, name, losses, (size_t)n_losses);
        record_model(&m, r, prefix);
        snprintf(name, sizeof name, "%s.samples", prefix);
        record_add(r, name, x, n_samples * dim);
    } else {
        fprintf(stderr, "FAIL %s: %s: %s\n", prefix, dcl_status_name(s), dcl_last_error());
        check_failures++;
    }
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    free(x);
}

static void run_mlp(dcl_device *dev, struct record *r, int i) {
    (void)i;
    dcl_model_config c;
    dcl_model_config_default(&c); // the CLI's: flow matching, MLP 3x128, spiral
    c.seed = 7;
    run_training(dev, &c, 4, 1024, 3000, 2, r, "mlp");
}

#define SIDE 16

static void run_unet(dcl_device *dev, struct record *r, int i) {
    (void)i;
    dcl_model_config c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(dcl_process_parse("vp-cosine", &c.process), DCL_OK);
    c.pred = DCL_PREDICT_EPS;
    c.net.kind = DCL_NET_UNET;
    dcl_unet_config_default(&c.net.unet, 1, SIDE, SIDE);
    c.net.unet.base = 8, c.net.unet.levels = 2, c.net.unet.mult[0] = 1, c.net.unet.mult[1] = 2;
    c.net.unet.groups = 4, c.net.unet.emb_dim = 16, c.net.unet.num_classes = 3;
    c.cond_drop = 0.25;
    snprintf(c.data, sizeof c.data, "%s", idx_spec);
    c.seed = 5;
    run_training(dev, &c, 3, 24, 8, SIDE * SIDE, r, "unet");
}

// A child forked after the pool started (the child has none of its threads) runs pooled ops and
// exits; a pool that waited for its parent's workers would hang it until the alarm kills it.
static void check_fork(void) {
    CHECK_EQ(dcl_cpu_set_threads(2), DCL_OK);
    dcl_device *dev = NULL;
    dcl_buffer *b = NULL, *o = NULL;
    size_t n = (size_t)1 << 20;
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s == DCL_OK) s = dcl_buffer_alloc(&b, dev, n, "x");
    if (s == DCL_OK) s = dcl_buffer_alloc(&o, dev, 1, "sum");
    if (s == DCL_OK) s = dcl_fill(dev, dcl_at(b, 0), 1.0f, n); // starts the pool's worker
    CHECK_EQ(s, DCL_OK);
    pid_t pid = s == DCL_OK ? fork() : -1;
    if (pid == 0) {
        alarm(20);
        float sum = 0;
        s = dcl_fill(dev, dcl_at(b, 0), 2.0f, n);
        if (s == DCL_OK) s = dcl_sum(dev, dcl_at(o, 0), dcl_at(b, 0), n);
        if (s == DCL_OK) s = dcl_buffer_read(o, 0, 1, &sum);
        _exit(s == DCL_OK && sum == 2.0f * (float)n ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("%-4s pooled ops in a child forked after the pool started\n",
           WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAIL");
    dcl_buffer_free(b), dcl_buffer_free(o);
    dcl_device_free(dev);
}

// ---- main -----------------------------------------------------------------------------------------

typedef void (*run_fn)(dcl_device *dev, struct record *r, int i);

static size_t pool_jobs[4]; // jobs on the pool, by thread count

// Runs fn(dev, r, i) with 1, 2 and 3 threads, each on a freshly opened CPU device, and compares
// the runs with 2 and 3 threads with the run with 1 bit for bit.
static void across_threads(run_fn fn, int i) {
    struct record r[3];
    memset(r, 0, sizeof r);
    for (int t = 1; t <= 3; t++) {
        CHECK_EQ(dcl_cpu_set_threads(t), DCL_OK);
        CHECK_EQ(dcl_cpu_threads(), t);
        dcl_device *dev = NULL;
        if (dcl_device_open(&dev, "cpu") != DCL_OK) {
            fprintf(stderr, "FAIL cannot open the CPU reference: %s\n", dcl_last_error());
            check_failures++;
            break;
        }
        size_t jobs = dcl__cpu_pool_jobs();
        fn(dev, &r[t - 1], i);
        pool_jobs[t] += dcl__cpu_pool_jobs() - jobs;
        dcl_device_free(dev);
    }
    record_compare(&r[0], &r[1], 2);
    record_compare(&r[0], &r[2], 3);
    for (int t = 0; t < 3; t++) free(r[t].words);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    CHECK_EQ(dcl_cpu_set_threads(-1), DCL_ERR_ARG);
    CHECK_EQ(dcl_cpu_set_threads(100000), DCL_ERR_ARG);
    if (!check_tmpdir(tmpdir, sizeof tmpdir, "diffcl-test-threads") ||
        !check_write_idx(tmpdir, 48, SIDE, 3, idx_spec, sizeof idx_spec)) {
        fprintf(stderr, "FAIL cannot write the image set under %s\n", tmpdir);
        return 1;
    }
    dcl_log_set_level(DCL_LOG_ERROR);
    int failed = check_failures;
    for (int i = 0; i < dcl__check_n_cases; i++) {
        across_threads(run_cases, i);
        printf("%-4s %s\n", check_failures == failed ? "ok" : "FAIL", dcl__check_cases[i].name);
        failed = check_failures;
    }
    across_threads(run_boundary_sums, 0);
    printf("%-4s sums whose value depends on every chunk boundary\n",
           check_failures == failed ? "ok" : "FAIL");
    failed = check_failures;
    across_threads(run_time_embedding_runs, 0);
    printf("%-4s time embedding of repeated t: each row as computed alone\n",
           check_failures == failed ? "ok" : "FAIL");
    failed = check_failures;
    across_threads(run_mlp, 0);
    printf("%-4s MLP: 4 training steps of batch 1024, 3000 samples\n",
           check_failures == failed ? "ok" : "FAIL");
    failed = check_failures;
    across_threads(run_unet, 0);
    printf("%-4s U-Net: 3 training steps of batch 24 (16x16), 8 samples\n",
           check_failures == failed ? "ok" : "FAIL");
    across_blas_threads();
    check_fork();
    printf("jobs on the pool with 1, 2, 3 threads: %zu, %zu, %zu\n", pool_jobs[1], pool_jobs[2],
           pool_jobs[3]);
    // One thread runs every chunk inline; more must have used the pool.
    CHECK_EQ(pool_jobs[1], 0);
    CHECK(pool_jobs[2] > 100);
    CHECK_EQ(pool_jobs[2], pool_jobs[3]);
    CHECK_EQ(dcl_cpu_set_threads(0), DCL_OK); // back to the default
    CHECK(dcl_cpu_threads() >= 1);
    char path[600];
    snprintf(path, sizeof path, "%s/images.idx", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/labels.idx", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return check_exit();
}
