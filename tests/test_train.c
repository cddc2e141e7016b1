// End to end on a 2-D dataset: a short training run on the CPU reference and on every OpenCL
// device must bring the sliced W2 distance well below the untrained model's; a checkpoint round
// trip keeps every weight and the config; the same seed gives bitwise identical checkpoints and
// samples; and one model sampled on the CPU and on an OpenCL device gives the same samples. The
// progress callbacks of training and sampling fire once per step, in order, and change no result;
// writes to an OpenCL device, which return before the device has the data, arrive in order, and
// every failure of sampling with progress (whose waits lag behind the queue) is reported;
// a diverging run stops with DCL_ERR_MISMATCH and writes nothing.
// Exit 77 only when the build has OpenCL but the machine has no OpenCL platform.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "diffcl/data.h"
#include "diffcl/eval.h" // dcl_sw2
#include "diffcl/log.h"
#include "diffcl/train.h"
#include "device/test_hooks.h" // dcl__cl_fault_arm, dcl__cl_live_objects (fault builds)

#define N_SAMPLES 2000
#define SAMPLER_STEPS 40

static char tmpdir[] = "/tmp/diffcl-test-train-XXXXXX";

static dcl_model_config small_config(void) {
    dcl_model_config c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(dcl_process_parse("flow", &c.process), DCL_OK);
    c.pred = DCL_PREDICT_VELOCITY;
    c.net.kind = DCL_NET_MLP;
    c.net.mlp =
        (dcl_mlp_config){.dim = 2, .width = 64, .depth = 3, .emb_dim = 16, .act = DCL_ACT_RELU};
    snprintf(c.data, sizeof c.data, "gmm8");
    c.seed = 11;
    return c;
}

static dcl_train_opts small_opts(int steps) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = steps;
    o.batch = 256;
    o.lr = 3e-3;
    o.warmup = 20;
    o.ema = 0.99;
    o.log_every = 50;
    return o;
}

static const dcl_sampler_opts euler = {.kind = DCL_SAMPLER_EULER, .steps = SAMPLER_STEPS};

// SW2 of N_SAMPLES samples of m (EMA weights) against fresh data from ds.
static double model_sw2(dcl_model *m, dcl_dataset *ds, float *x, float *data) {
    if (dcl_model_sample(m, &euler, N_SAMPLES, 5, 1, NULL, x, NULL) != DCL_OK) {
        fprintf(stderr, "sampling failed: %s\n", dcl_last_error());
        check_failures++;
        return 1e9;
    }
    CHECK_EQ(dcl_dataset_fresh(ds, data, N_SAMPLES, 9), DCL_OK);
    return dcl_sw2(x, N_SAMPLES, data, N_SAMPLES, 2, 128, 3);
}

// Trains the small model on spec for steps; returns its SW2 (and the untrained one's).
static void train_and_measure(const char *spec, int steps, double bound) {
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_model_config c = small_config();
    dcl_train_opts o = small_opts(steps);
    float *x = malloc(N_SAMPLES * 2 * sizeof *x), *data = malloc(N_SAMPLES * 2 * sizeof *data);
    if (!x || !data || dcl_device_open(&dev, spec) != DCL_OK ||
        dcl_dataset_open(&ds, c.data, c.seed) != DCL_OK ||
        dcl_model_init(&m, dev, &c, N_SAMPLES) != DCL_OK) {
        fprintf(stderr, "FAIL %s: set-up: %s\n", spec, dcl_last_error());
        check_failures++;
    } else {
        double before = model_sw2(&m, ds, x, data);
        float losses[64];
        int n_losses = 0;
        dcl_status s = dcl_train(dev, &m, ds, &o, NULL, NULL, losses, &n_losses);
        CHECK_EQ(s, DCL_OK);
        if (s != DCL_OK) fprintf(stderr, "train on %s: %s\n", spec, dcl_last_error());
        CHECK_EQ(n_losses, steps / o.log_every);
        CHECK_EQ(m.cfg.step, steps);
        double after = model_sw2(&m, ds, x, data);
        printf("%-8s SW2 untrained %.3f, after %d steps %.3f (bound %.2f); loss %.3f -> %.3f\n",
               spec, before, steps, after, bound, losses[0], losses[n_losses - 1]);
        CHECK(after < bound);
        CHECK(after < 0.25 * before);
        CHECK(losses[n_losses - 1] < losses[0]);
    }
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
    free(x), free(data);
}

// What a progress callback saw: how often it was called, and its last (done, total).
struct progress_seen {
    int calls, in_order;
    int64_t done, total;
};

static int on_progress(void *ctx, int64_t done, int64_t total) {
    struct progress_seen *p = ctx;
    if (done != p->done + 1) p->in_order = 0;
    p->calls++, p->done = done, p->total = total;
    return 0;
}

// Trains a few steps with seed 11 into path; returns the model's samples (caller frees). Both the
// training and the sampler report progress after every step.
static float *train_save_sample(dcl_device *dev, const char *path) {
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_model_config c = small_config();
    dcl_train_opts o = small_opts(30);
    struct progress_seen tp = {.in_order = 1}, sp = {.in_order = 1};
    o.progress = on_progress, o.progress_ctx = &tp;
    dcl_sampler_opts so = euler;
    so.progress = on_progress, so.progress_ctx = &sp;
    float *x = malloc(N_SAMPLES * 2 * sizeof *x);
    dcl_status s = x ? dcl_dataset_open(&ds, c.data, c.seed) : DCL_ERR_NOMEM;
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, N_SAMPLES);
    if (s == DCL_OK) s = dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL);
    CHECK(tp.calls == 30 && tp.in_order && tp.done == 30 && tp.total == 30);
    if (s == DCL_OK) s = dcl_model_save(&m, path);
    if (s == DCL_OK) s = dcl_model_sample(&m, &so, N_SAMPLES, 5, 1, NULL, x, NULL);
    CHECK(sp.calls == SAMPLER_STEPS && sp.in_order && sp.total == SAMPLER_STEPS);
    if (s != DCL_OK) {
        fprintf(stderr, "train/save/sample: %s\n", dcl_last_error());
        check_failures++;
        free(x);
        x = NULL;
    }
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    return x;
}

// Trains, saves and samples twice from the same seed on dev (PREFIXa.safetensors and
// PREFIXb.safetensors in tmpdir); checks that the checkpoints' bytes and the samples are the same.
// Returns whether they were. file/n and x (may be NULL) receive the first run's checkpoint bytes
// and samples, for the caller to free.
static int same_seed_twice(dcl_device *dev, const char *prefix, unsigned char **file, size_t *n,
                           float **x) {
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/%sa.safetensors", tmpdir, prefix);
    snprintf(b, sizeof b, "%s/%sb.safetensors", tmpdir, prefix);
    float *xa = train_save_sample(dev, a), *xb = train_save_sample(dev, b);
    unsigned char *fa = NULL, *fb = NULL;
    size_t na = 0, nb = 0;
    CHECK(check_read_file(a, &fa, &na) && check_read_file(b, &fb, &nb));
    int same_file = na == nb && na > 0 && memcmp(fa, fb, na) == 0;
    int same_x = xa && xb && memcmp(xa, xb, N_SAMPLES * 2 * sizeof *xa) == 0;
    CHECK(same_file);
    CHECK(same_x);
    free(fb), free(xb);
    if (file) *file = fa, *n = na;
    else free(fa);
    if (x) *x = xa;
    else free(xa);
    return same_file && same_x;
}

// Same seed twice: the same checkpoint bytes and the same samples, bit for bit; and the loaded
// checkpoint samples exactly as the model that wrote it.
static void check_determinism_and_round_trip(void) {
    dcl_device *dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, "cpu"), DCL_OK);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/a.safetensors", tmpdir);
    unsigned char *fa = NULL;
    size_t na = 0;
    float *xa = NULL;
    same_seed_twice(dev, "", &fa, &na, &xa);

    // The config alone, without a device.
    dcl_model_config rc;
    CHECK_EQ(dcl_model_read_config(a, &rc), DCL_OK);
    CHECK(rc.step == 30 && rc.net.kind == DCL_NET_MLP && strcmp(rc.data, "gmm8") == 0);

    // Sampled without a progress callback, the loaded model gives the same samples.
    dcl_model m = {0};
    dcl_status s = dcl_model_load(&m, dev, a, N_SAMPLES);
    CHECK_EQ(s, DCL_OK);
    if (s == DCL_OK) {
        dcl_model_config c = small_config();
        CHECK_EQ(m.cfg.step, 30);
        CHECK_EQ(m.cfg.seed, c.seed);
        CHECK_EQ(m.cfg.process.kind, c.process.kind);
        CHECK_EQ(m.cfg.pred, c.pred);
        CHECK_EQ(m.cfg.net.kind, DCL_NET_MLP);
        CHECK_EQ(m.cfg.net.mlp.width, c.net.mlp.width);
        CHECK(strcmp(m.cfg.data, c.data) == 0);
        float *x = malloc(N_SAMPLES * 2 * sizeof *x);
        CHECK(x && dcl_model_sample(&m, &euler, N_SAMPLES, 5, 1, NULL, x, NULL) == DCL_OK);
        CHECK(x && xa && memcmp(x, xa, N_SAMPLES * 2 * sizeof *x) == 0);
        // Saving the loaded model again gives the same bytes.
        snprintf(b, sizeof b, "%s/c.safetensors", tmpdir);
        unsigned char *fc = NULL;
        size_t nc = 0;
        CHECK_EQ(dcl_model_save(&m, b), DCL_OK);
        CHECK(check_read_file(b, &fc, &nc) && nc == na && memcmp(fa, fc, na) == 0);
        free(fc), free(x);
        dcl_model_free(&m);
    } else {
        fprintf(stderr, "load: %s\n", dcl_last_error());
    }
    // A file that is not a model is rejected with a message naming it.
    snprintf(b, sizeof b, "%s/not-a-model.safetensors", tmpdir);
    FILE *f = fopen(b, "wb");
    if (f) fputs("not a safetensors file", f), fclose(f);
    CHECK(dcl_model_load(&m, dev, b, 16) != DCL_OK);
    CHECK(strstr(dcl_last_error(), "not-a-model") != NULL);
    CHECK(dcl_model_read_config(b, &rc) != DCL_OK);
    CHECK(strstr(dcl_last_error(), "not-a-model") != NULL);
    free(fa), free(xa);
    dcl_device_free(dev);
}

// A learning rate far too large: the loss stops being finite, the steps are skipped and training
// stops with DCL_ERR_DIVERGED (not an argument error), a message that says so, and the last
// finite state saved (tests/test_resume.c checks that it holds no NaN or Inf).
static void check_divergence(void) {
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_model_config c = small_config();
    dcl_train_opts o = small_opts(20);
    char path[256];
    snprintf(path, sizeof path, "%s/diverged.safetensors", tmpdir);
    o.lr = 1e30, o.warmup = 0, o.clip = 0, o.log_every = 5, o.out = path;
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s == DCL_OK) s = dcl_dataset_open(&ds, c.data, c.seed);
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, 256);
    CHECK_EQ(s, DCL_OK);
    if (s == DCL_OK) {
        CHECK_EQ(dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL), DCL_ERR_DIVERGED);
        CHECK(strstr(dcl_last_error(), "training diverged:") != NULL);
        CHECK(strstr(dcl_last_error(), "was saved to") != NULL);
        CHECK(access(path, F_OK) == 0);
    }
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
}

// Writes return before the device has copied anything (OpenCL stages them): the source may be
// changed at once, and reads, waits and dcl_device_finish_behind see every write in order.
static void check_staged_writes(const char *spec) {
    enum { N = 4096, ROUNDS = 64 };
    dcl_device *dev = NULL;
    dcl_buffer *buf = NULL;
    float *h = malloc(N * sizeof *h), *back = malloc(N * sizeof *back);
    dcl_status s = h && back ? dcl_device_open(&dev, spec) : DCL_ERR_NOMEM;
    if (s == DCL_OK) s = dcl_buffer_alloc(&buf, dev, N, "staged");
    // Round r writes r + i / N to element i of a window that moves, from the same host array.
    for (int r = 0; r < ROUNDS && s == DCL_OK; r++) {
        size_t off = (size_t)r * (N / ROUNDS), n = N - off;
        for (size_t i = 0; i < n; i++) h[i] = (float)r + (float)(off + i) / N;
        s = dcl_buffer_write(buf, off, n, h);
        if (s == DCL_OK && r % 7 == 3) s = dcl_device_finish_behind(dev, r % 4);
        if (s == DCL_OK && r == ROUNDS / 2) s = dcl_device_finish_behind(dev, 100); // clamped
    }
    for (size_t i = 0; i < N; i++) h[i] = -1.0f;
    if (s == DCL_OK) s = dcl_buffer_read(buf, 0, N, back);
    CHECK_EQ(s, DCL_OK);
    int bad = 0;
    for (size_t i = 0; s == DCL_OK && i < N; i++) {
        size_t r = i / (N / ROUNDS); // the last round whose window holds i
        bad += back[i] != (float)r + (float)i / N;
    }
    CHECK_EQ(bad, 0);
    if (s == DCL_OK) s = dcl_device_finish_behind(dev, 2);
    if (s == DCL_OK) s = dcl_device_finish(dev);
    CHECK_EQ(s, DCL_OK);
    printf("%-8s staged writes: %d rounds, %d elements wrong\n", spec, ROUNDS, bad);
    dcl_buffer_free(buf);
    dcl_device_free(dev);
    free(h), free(back);
}

// The same seed twice on spec: the same checkpoint bytes and samples (staged writes and the
// sampler's lagging waits change no result).
static void check_device_determinism(const char *spec) {
    dcl_device *dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, spec), DCL_OK);
    if (!dev) return;
    printf("%-8s same seed twice: %s\n", spec,
           same_seed_twice(dev, "dev-", NULL, NULL, NULL) ? "identical" : "DIFFER");
    dcl_device_free(dev);
}

// One checkpoint sampled on the CPU and on spec: the same samples within tolerance (the ODE
// solver takes SAMPLER_STEPS steps, each adding rounding differences of the ops).
static void check_same_samples(const char *spec) {
    char path[256];
    snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
    dcl_device *cpu = NULL, *dev = NULL;
    dcl_model mc = {0}, md = {0};
    float *xc = malloc(N_SAMPLES * 2 * sizeof *xc), *xd = malloc(N_SAMPLES * 2 * sizeof *xd);
    dcl_status s = xc && xd ? dcl_device_open(&cpu, "cpu") : DCL_ERR_NOMEM;
    if (s == DCL_OK) s = dcl_device_open(&dev, spec);
    if (s == DCL_OK) s = dcl_model_load(&mc, cpu, path, N_SAMPLES);
    if (s == DCL_OK) s = dcl_model_load(&md, dev, path, N_SAMPLES);
    if (s == DCL_OK) s = dcl_model_sample(&mc, &euler, N_SAMPLES, 5, 1, NULL, xc, NULL);
    // On the device with a progress callback: it waits for the step two before each, and changes
    // nothing else.
    struct progress_seen sp = {.in_order = 1};
    dcl_sampler_opts so = euler;
    so.progress = on_progress, so.progress_ctx = &sp;
    if (s == DCL_OK) s = dcl_model_sample(&md, &so, N_SAMPLES, 5, 1, NULL, xd, NULL);
    CHECK(s != DCL_OK || (sp.calls == SAMPLER_STEPS && sp.in_order));
    CHECK_EQ(s, DCL_OK);
    if (s == DCL_OK) { // without the callback (no waits at all): the same bits
        float *xn = malloc(N_SAMPLES * 2 * sizeof *xn);
        CHECK(xn && dcl_model_sample(&md, &euler, N_SAMPLES, 5, 1, NULL, xn, NULL) == DCL_OK);
        CHECK(xn && memcmp(xn, xd, N_SAMPLES * 2 * sizeof *xn) == 0);
        free(xn);
    }
    if (s == DCL_OK) {
        double max_abs = 0;
        for (size_t i = 0; i < N_SAMPLES * 2; i++) {
            double d = fabs((double)xc[i] - xd[i]);
            if (!(d <= max_abs)) max_abs = d; // NaN propagates as a failure
        }
        printf("%-8s samples vs cpu: max |diff| %.3g over %d points (tolerance 1e-3)\n", spec,
               max_abs, N_SAMPLES);
        CHECK(max_abs <= 1e-3);
    } else {
        fprintf(stderr, "%s: %s\n", spec, dcl_last_error());
    }
    if (mc.net) dcl_model_free(&mc);
    if (md.net) dcl_model_free(&md);
    dcl_device_free(cpu);
    dcl_device_free(dev);
    free(xc), free(xd);
}

#if defined(DIFFCL_HAVE_OPENCL) && defined(DIFFCL_FAULT_INJECTION)
// Sampling with a progress callback (markers, waits on them, the final wait), the k-th OpenCL call
// made to fail for every k: the failure is reported, and once the device has finished, the OpenCL
// objects alive are those before the run (no marker or buffer leaks).
static void check_sampling_faults(const char *spec) {
    enum { N = 16, STEPS = 3 }; // step 3 waits for step 1's marker
    char path[256];
    snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
    dcl_device *dev = NULL;
    dcl_model m = {0};
    float x[N * 2];
    struct progress_seen sp = {.in_order = 1};
    dcl_sampler_opts so = {.kind = DCL_SAMPLER_EULER, .steps = STEPS};
    so.progress = on_progress, so.progress_ctx = &sp;
    dcl_status s = dcl_device_open(&dev, spec);
    if (s == DCL_OK) s = dcl_model_load(&m, dev, path, N);
    if (s == DCL_OK) s = dcl_model_sample(&m, &so, N, 5, 1, NULL, x, NULL); // builds the programs
    CHECK_EQ(s, DCL_OK);
    long base = dcl__cl_live_objects(NULL, 0), k, unseen = 0, leaks = 0;
    int level = dcl_log_get_level();
    dcl_log_set_level(DCL_LOG_SILENT); // hundreds of expected failures
    for (k = 1; s == DCL_OK; k++) {
        dcl__cl_fault_arm(k, -5); // CL_OUT_OF_RESOURCES
        dcl_status r = dcl_model_sample(&m, &so, N, 5, 1, NULL, x, NULL);
        int fired = dcl__cl_fault_fired();
        dcl__cl_fault_arm(0, 0);
        dcl_device_finish(dev); // releases the markers a failed run left
        leaks += dcl__cl_live_objects(NULL, 0) != base;
        if (!fired) break;
        unseen += r == DCL_OK || !strstr(dcl_last_error(), spec);
    }
    dcl_log_set_level(level);
    CHECK(k > 3 * STEPS); // the sweep reached the steps' markers and waits
    CHECK_EQ(unseen, 0);
    CHECK_EQ(leaks, 0);
    printf("%-8s sampling with progress, OpenCL call 1 .. %ld failing: %ld unreported, %ld leaks\n",
           spec, k - 1, unseen, leaks);
    if (m.net) dcl_model_free(&m);
    dcl_device_free(dev);
}
#else
static void check_sampling_faults(const char *spec) { (void)spec; }
#endif

struct run {
    int steps;
    double bound;
};

static void on_device(const char *spec, void *ctx) {
    const struct run *r = ctx;
    train_and_measure(spec, r->steps, r->bound);
    check_same_samples(spec);
    check_staged_writes(spec);
    check_device_determinism(spec);
    check_sampling_faults(spec);
}

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int steps = small ? 100 : 600;
    double bound = small ? 0.5 : 0.2;
    train_and_measure("cpu", steps, bound);
    check_determinism_and_round_trip();
    check_divergence();

    struct run r = {steps, bound};
    int rc = check_opencl_devices(on_device, &r);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
