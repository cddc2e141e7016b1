// The image classifier (include/diffcl/classifier.h) and its loss op: softmax_cross_entropy against
// the closed form and finite differences on every device; a short training run on real
// Fashion-MNIST (DIFFCL_TEST_FASHION_DIR, set by tests/CMakeLists.txt) far above chance; same seed,
// same weights; checkpoint round trip bitwise, rejected shapes and non-finite weights; CPU vs
// OpenCL logits and features of the trained classifier.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diffcl/classifier.h"
#include "diffcl/data.h"        // dcl_dataset_*
#include "diffcl/ops.h"         // dcl_softmax_cross_entropy
#include "diffcl/rng.h"         // dcl_rng_normal_at, DCL_RNG_TEST
#include "diffcl/safetensors.h" // dcl_safetensors_* (damaged checkpoints)
#include "testlib.h"

#define N_ROWS 6
#define K_CLASSES 5

// Logits with a row of huge values (exp would overflow without the max subtraction), a row of
// equal values and a row whose label is out of range (ignored).
static void make_logits(float *x, uint32_t *y) {
    for (int i = 0; i < N_ROWS * K_CLASSES; i++)
        x[i] = 2.0f * dcl_rng_normal_at(7, DCL_RNG_TEST, 0, (uint64_t)i);
    for (int k = 0; k < K_CLASSES; k++) x[1 * K_CLASSES + k] = 1000.0f + (float)k;
    for (int k = 0; k < K_CLASSES; k++) x[2 * K_CLASSES + k] = -3.0f;
    uint32_t labels[N_ROWS] = {0, 4, 2, 3, 0xffffffffu, 1};
    memcpy(y, labels, sizeof labels);
}

// loss and dlogits of the op on dev for logits x and labels y (host arrays).
static int run_op(dcl_device *dev, const float *x, const uint32_t *y, float *loss, float *dl) {
    size_t NK = N_ROWS * K_CLASSES;
    // One buffer at odd offsets: loss at 1, dlogits at 7 + N, logits after, labels last, written
    // from the start in one piece (Oclgrind 21.10 reports bytes written at a non-zero offset as
    // uninitialised; host/README.md "Device failures").
    size_t ol = 1, od = 7 + N_ROWS, ox = od + NK + 3, oy = ox + NK + 1, n = oy + N_ROWS;
    float *h = calloc(n, sizeof *h);
    dcl_buffer *b = NULL;
    if (!h || dcl_buffer_alloc(&b, dev, n, "xent") != DCL_OK) {
        free(h);
        return 0;
    }
    memcpy(h + ox, x, NK * sizeof *x);
    memcpy(h + oy, y, N_ROWS * sizeof *y);
    int ok = dcl_buffer_write(b, 0, n, h) == DCL_OK &&
             dcl_softmax_cross_entropy(dev, dcl_at(b, ol), dcl_at(b, od), dcl_at(b, ox),
                                       dcl_at(b, oy), N_ROWS, K_CLASSES) == DCL_OK &&
             dcl_buffer_read(b, ol, N_ROWS, loss) == DCL_OK &&
             dcl_buffer_read(b, od, NK, dl) == DCL_OK;
    dcl_buffer_free(b);
    free(h);
    return ok;
}

// The op against the closed form in double, and dlogits against central differences of the op's
// own mean loss (h = 1/64, an exact step; the other rows' losses cancel exactly, so the
// difference errs by ~2·1e-7/(2h) plus h²/6·|f'''| < 1e-4).
static void check_op(const char *spec) {
    dcl_device *dev = NULL;
    if (dcl_device_open(&dev, spec) != DCL_OK) {
        fprintf(stderr, "open %s: %s\n", spec, dcl_last_error());
        check_failures++;
        return;
    }
    float x[N_ROWS * K_CLASSES], loss[N_ROWS], dl[N_ROWS * K_CLASSES];
    float lp[N_ROWS], lm[N_ROWS], scratch[N_ROWS * K_CLASSES];
    uint32_t y[N_ROWS];
    make_logits(x, y);
    CHECK(run_op(dev, x, y, loss, dl));
    double worst = 0;
    for (int r = 0; r < N_ROWS; r++) {
        const float *xr = x + r * K_CLASSES;
        if (y[r] >= K_CLASSES) {
            CHECK_EQ(loss[r] == 0.0f, 1);
            for (int k = 0; k < K_CLASSES; k++) CHECK_EQ(dl[r * K_CLASSES + k] == 0.0f, 1);
            continue;
        }
        double m = xr[0], S = 0;
        for (int k = 1; k < K_CLASSES; k++) m = xr[k] > m ? xr[k] : m;
        for (int k = 0; k < K_CLASSES; k++) S += exp((double)xr[k] - m);
        double want = log(S) - ((double)xr[y[r]] - m);
        CHECK_NEAR(loss[r], want, 1e-6, 1e-6);
        for (int k = 0; k < K_CLASSES; k++) {
            double g = (exp((double)xr[k] - m) / S - (k == (int)y[r])) / N_ROWS;
            CHECK_NEAR(dl[r * K_CLASSES + k], g, 1e-7, 1e-5);
            // Finite differences of Σ loss / N.
            const float h = 1.0f / 64;
            memcpy(scratch, x, sizeof x);
            scratch[r * K_CLASSES + k] = x[r * K_CLASSES + k] + h;
            float dummy[N_ROWS * K_CLASSES];
            CHECK(run_op(dev, scratch, y, lp, dummy));
            scratch[r * K_CLASSES + k] = x[r * K_CLASSES + k] - h;
            CHECK(run_op(dev, scratch, y, lm, dummy));
            double fd = ((double)lp[r] - (double)lm[r]) / (2.0 * h) / N_ROWS;
            double err = fabs(fd - dl[r * K_CLASSES + k]);
            if (err > worst) worst = err;
            CHECK_NEAR(dl[r * K_CLASSES + k], fd, 2e-5, 0);
        }
    }
    // The huge row: finite, and its softmax that of 0..4.
    CHECK(isfinite(loss[1]));
    printf("softmax_cross_entropy on %s: closed form ok, worst |fd − dlogits| = %.2e\n", spec,
           worst);
    dcl_device_free(dev);
}

// ---- the classifier -----------------------------------------------------------------------------

struct trained {
    char path[1024];        // checkpoint of the trained classifier
    float *x;               // (n, 1, 28, 28) test images
    int32_t *labels;        // (n)
    size_t n;               // test images kept on the host
    float *logits;          // (n, K) CPU logits
    float *feats;           // (n, F) CPU features
    int have;               // the real-data part ran
    float x3[3 * 32 * 784]; // three batches of 32 training images
    uint32_t y3[3 * 32];    // their labels
    double loss3[3];        // the mean loss of each of three steps on them, on the CPU
};

static dcl_status upload(dcl_device *dev, dcl_buffer **b, const float *x, size_t n) {
    dcl_status s = dcl_buffer_alloc(b, dev, n, "test.x");
    if (s == DCL_OK) s = dcl_buffer_write(*b, 0, n, x);
    return s;
}

// Three training steps from seed 5 on t's batches, on dev: each step's mean loss.
static int three_steps(dcl_device *dev, const struct trained *t, double loss[3]) {
    dcl_classifier_config cfg;
    dcl_classifier_config_default(&cfg, 1, 28, 28, 10);
    dcl_classifier_train_opts o;
    dcl_classifier_train_opts_default(&o);
    dcl_classifier *c = NULL;
    dcl_buffer *b = NULL;
    int ok = dcl_classifier_init(&c, dev, &cfg, 5, 32) == DCL_OK &&
             dcl_buffer_alloc(&b, dev, 32 * 784 + 32 + 3, "test.batch") == DCL_OK;
    for (int k = 0; ok && k < 3; k++) {
        float sum = 0;
        ok = dcl_buffer_write(b, 0, 32 * 784, t->x3 + k * 32 * 784) == DCL_OK &&
             dcl_buffer_write(b, 32 * 784, 32, t->y3 + k * 32) == DCL_OK &&
             dcl_classifier_train_step(c, &o, 1e-3, dcl_at(b, 0), dcl_at(b, 32 * 784), 32,
                                       dcl_at(b, 32 * 784 + 32 + k)) == DCL_OK &&
             dcl_buffer_read(b, 32 * 784 + 32 + k, 1, &sum) == DCL_OK;
        loss[k] = sum / 32.0;
    }
    if (!ok) fprintf(stderr, "three_steps: %s\n", dcl_last_error());
    dcl_buffer_free(b);
    dcl_classifier_free(c);
    return ok;
}

// Logits (n, K) and features (n, F) of c on x.
static int infer(dcl_classifier *c, const float *x, size_t n, float *logits, float *feats) {
    dcl_device *dev = dcl_buffer_device(dcl_classifier_params(c)->buf);
    size_t D = 28 * 28, K = 10, F = dcl_classifier_feature_dim(c);
    dcl_buffer *bx = NULL, *bl = NULL, *bf = NULL;
    int ok = upload(dev, &bx, x, n * D) == DCL_OK &&
             dcl_buffer_alloc(&bl, dev, n * K, "test.logits") == DCL_OK &&
             dcl_buffer_alloc(&bf, dev, n * F, "test.feats") == DCL_OK &&
             dcl_classifier_logits(c, NULL, dcl_at(bx, 0), n, dcl_at(bl, 0)) == DCL_OK &&
             dcl_classifier_features(c, dcl_at(bx, 0), n, dcl_at(bf, 0)) == DCL_OK &&
             dcl_buffer_read(bl, 0, n * K, logits) == DCL_OK &&
             dcl_buffer_read(bf, 0, n * F, feats) == DCL_OK;
    if (!ok) fprintf(stderr, "infer: %s\n", dcl_last_error());
    dcl_buffer_free(bx), dcl_buffer_free(bl), dcl_buffer_free(bf);
    return ok;
}

static void read_params(dcl_classifier *c, float *out) {
    dcl_arena *p = dcl_classifier_params(c);
    CHECK(dcl_buffer_read(p->buf, 0, p->n, out) == DCL_OK);
}

// Training on the real data (CPU reference): accuracy, determinism, checkpoint round trip.
static void check_training(struct trained *t, const char *dir, const char *tmp) {
    char spec[1200], test_spec[1200];
    snprintf(spec, sizeof spec,
             "idx:%s/train-images-idx3-ubyte.gz,%s/train-labels-idx1-ubyte.gz,n=20000", dir, dir);
    snprintf(test_spec, sizeof test_spec,
             "idx:%s/t10k-images-idx3-ubyte.gz,%s/t10k-labels-idx1-ubyte.gz,n=1000", dir, dir);
    dcl_dataset *ds = NULL, *test = NULL;
    dcl_device *cpu = NULL;
    dcl_classifier *c = NULL, *loaded = NULL;
    CHECK(dcl_device_open(&cpu, "cpu") == DCL_OK);
    if (dcl_dataset_open(&ds, spec, 1) != DCL_OK ||
        dcl_dataset_open(&test, test_spec, 1) != DCL_OK) {
        fprintf(stderr, "%s\n", dcl_last_error());
        check_failures++;
        goto done;
    }
    dcl_classifier_config cfg;
    dcl_classifier_config_default(&cfg, 1, 28, 28, 10);
    dcl_classifier_train_opts o;
    dcl_classifier_train_opts_default(&o);
    o.steps = 120, o.batch = 64, o.warmup = 10, o.log_every = 40;
    CHECK(dcl_classifier_init(&c, cpu, &cfg, 3, 64) == DCL_OK);
    if (!c) goto done;
    CHECK(dcl_classifier_train(c, ds, &o, NULL, NULL) == DCL_OK);
    CHECK_EQ(dcl_classifier_step(c), 120);
    size_t N = dcl_dataset_size(test);
    int64_t correct[10], count[10], right = 0;
    CHECK(dcl_classifier_evaluate(c, dcl_dataset_points(test), dcl_dataset_labels(test), N, correct,
                                  count, NULL, NULL) == DCL_OK);
    for (int k = 0; k < 10; k++) right += correct[k];
    double acc = (double)right / (double)N;
    printf("120 steps of 64 on 20000 Fashion-MNIST images: test accuracy %.1f%% on %zu images "
           "(chance 10%%)\n",
           100 * acc, N);
    CHECK(acc > 0.6);

    // Three steps on fixed batches, for the OpenCL devices to repeat.
    int32_t lab3[3 * 32];
    for (int k = 0; k < 3; k++)
        CHECK(dcl_dataset_batch_labels(ds, t->x3 + k * 32 * 784, lab3 + k * 32, 32, 1000 + k) ==
              DCL_OK);
    for (int i = 0; i < 3 * 32; i++) t->y3[i] = (uint32_t)lab3[i];
    CHECK(three_steps(cpu, t, t->loss3));

    // Same seed, same data: bitwise the same weights (three steps).
    dcl_classifier *a = NULL, *b = NULL;
    o.steps = 3, o.warmup = 1;
    CHECK(dcl_classifier_init(&a, cpu, &cfg, 9, 64) == DCL_OK);
    CHECK(dcl_classifier_init(&b, cpu, &cfg, 9, 64) == DCL_OK);
    if (a && b) {
        CHECK(dcl_classifier_train(a, ds, &o, NULL, NULL) == DCL_OK);
        CHECK(dcl_classifier_train(b, ds, &o, NULL, NULL) == DCL_OK);
        size_t n = dcl_classifier_params(a)->n;
        float *pa = malloc(n * 4), *pb = malloc(n * 4);
        read_params(a, pa), read_params(b, pb);
        CHECK(memcmp(pa, pb, n * 4) == 0);
        free(pa), free(pb);
    }
    dcl_classifier_free(a), dcl_classifier_free(b);

    // Round trip: the same weights bit for bit, the same logits, the step kept.
    snprintf(t->path, sizeof t->path, "%s/clf.safetensors", tmp);
    CHECK(dcl_classifier_save(c, t->path, spec) == DCL_OK);
    CHECK(dcl_classifier_load(&loaded, cpu, t->path, 64) == DCL_OK);
    if (!loaded) goto done;
    CHECK_EQ(dcl_classifier_step(loaded), 120);
    size_t n = dcl_classifier_params(c)->n;
    float *p1 = malloc(n * 4), *p2 = malloc(n * 4);
    read_params(c, p1), read_params(loaded, p2);
    CHECK(memcmp(p1, p2, n * 4) == 0);
    free(p1), free(p2);
    t->n = 256, t->x = malloc(t->n * 784 * 4), t->labels = malloc(t->n * 4);
    t->logits = malloc(t->n * 10 * 4), t->feats = malloc(t->n * 64 * 4);
    float *l2 = malloc(t->n * 10 * 4), *f2 = malloc(t->n * 64 * 4);
    memcpy(t->x, dcl_dataset_points(test), t->n * 784 * 4);
    memcpy(t->labels, dcl_dataset_labels(test), t->n * 4);
    // The same weights in the same chunks of max_batch 64 (a CPU GEMM rounds by its block, which
    // follows the chunk size): the same logits and features bit for bit.
    CHECK(infer(c, t->x, t->n, t->logits, t->feats));
    CHECK(infer(loaded, t->x, t->n, l2, f2));
    CHECK(memcmp(t->logits, l2, t->n * 10 * 4) == 0);
    CHECK(memcmp(t->feats, f2, t->n * 64 * 4) == 0);
    // Predictions are the logits' argmax.
    int32_t *pred = malloc(t->n * 4);
    dcl_buffer *bx = NULL;
    CHECK(upload(cpu, &bx, t->x, t->n * 784) == DCL_OK);
    CHECK(dcl_classifier_predict(loaded, dcl_at(bx, 0), t->n, pred) == DCL_OK);
    for (size_t i = 0; i < t->n; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++) best = l2[i * 10 + k] > l2[i * 10 + best] ? k : best;
        CHECK_EQ(pred[i], best);
    }
    dcl_buffer_free(bx);
    free(pred), free(l2), free(f2);
    t->have = 1;

    // Damaged checkpoints: a NaN weight, a wrong shape, a missing tensor.
    dcl_st_file *f = NULL;
    CHECK(dcl_safetensors_read(&f, t->path) == DCL_OK);
    if (f) {
        int nt = dcl_safetensors_count(f);
        dcl_st_tensor ts[32];
        float *copy = NULL;
        for (int i = 0; i < nt && i < 32; i++) ts[i] = *dcl_safetensors_tensor(f, i);
        const char *meta[] = {"diffcl_classifier", dcl_safetensors_meta(f, "diffcl_classifier")};
        char bad[600];
        snprintf(bad, sizeof bad, "%s/bad.safetensors", tmp);
        size_t m = (size_t)dcl_st_tensor_numel(&ts[0]);
        copy = malloc(m * 4);
        memcpy(copy, ts[0].data, m * 4);
        copy[m / 2] = NAN;
        const float *orig = ts[0].data;
        ts[0].data = copy;
        CHECK(dcl_safetensors_write(bad, ts, nt, meta, 1) == DCL_OK);
        dcl_classifier *r = NULL;
        CHECK(dcl_classifier_load(&r, cpu, bad, 8) == DCL_ERR_FORMAT);
        CHECK(r == NULL);
        printf("NaN weight: %s\n", dcl_last_error());
        ts[0].data = orig;
        ts[0].shape[0] += 1; // a wrong shape (data long enough: the copy of a larger tensor)
        free(copy);
        copy = calloc(m * 2, 4);
        ts[0].data = copy;
        CHECK(dcl_safetensors_write(bad, ts, nt, meta, 1) == DCL_OK);
        CHECK(dcl_classifier_load(&r, cpu, bad, 8) == DCL_ERR_FORMAT);
        printf("wrong shape: %s\n", dcl_last_error());
        ts[0].data = orig, ts[0].shape[0] -= 1;
        CHECK(dcl_safetensors_write(bad, ts + 1, nt - 1, meta, 1) == DCL_OK);
        CHECK(dcl_classifier_load(&r, cpu, bad, 8) == DCL_ERR_FORMAT);
        printf("missing tensor: %s\n", dcl_last_error());
        const char *meta2[] = {"diffcl_classifier", "{\"version\": 1}"};
        CHECK(dcl_safetensors_write(bad, ts, nt, meta2, 1) == DCL_OK);
        CHECK(dcl_classifier_load(&r, cpu, bad, 8) == DCL_ERR_FORMAT);
        printf("bad config: %s\n", dcl_last_error());
        remove(bad);
        free(copy);
        dcl_safetensors_free(f);
    }
done:
    dcl_classifier_free(loaded), dcl_classifier_free(c);
    dcl_dataset_free(test), dcl_dataset_free(ds);
    dcl_device_free(cpu);
}

// The trained classifier loaded on an OpenCL device: logits and features against the CPU's. The
// network is GEMMs of up to 576 terms, GroupNorm and SiLU; float roundings differ (CLBlast vs
// OpenBLAS, exp), and the measured difference on PoCL is ~1e-5 of |logit|.
static void check_device(const char *spec, void *ctx) {
    struct trained *t = ctx;
    check_op(spec);
    if (!t->have) return;
    dcl_device *dev = NULL;
    dcl_classifier *c = NULL;
    CHECK(dcl_device_open(&dev, spec) == DCL_OK);
    if (dev) CHECK(dcl_classifier_load(&c, dev, t->path, 128) == DCL_OK);
    if (c) {
        float *l = malloc(t->n * 10 * 4), *f = malloc(t->n * 64 * 4);
        CHECK(infer(c, t->x, t->n, l, f));
        double wl = 0, wf = 0;
        for (size_t i = 0; i < t->n * 10; i++) {
            CHECK_NEAR(l[i], t->logits[i], 1e-3, 1e-3);
            wl = fmax(wl, fabs(l[i] - t->logits[i]));
        }
        for (size_t i = 0; i < t->n * 64; i++) {
            CHECK_NEAR(f[i], t->feats[i], 1e-4, 1e-3);
            wf = fmax(wf, fabs(f[i] - t->feats[i]));
        }
        printf("logits and features of %zu images on %s vs cpu: max |diff| %.2e, %.2e\n", t->n,
               spec, wl, wf);
        free(l), free(f);
    }
    // Training steps on the device: the same losses as the CPU's (the first is a forward only;
    // the next ones follow AdamW updates of about ±lr wherever a gradient is not tiny).
    double loss[3];
    if (dev && three_steps(dev, t, loss)) {
        for (int k = 0; k < 3; k++) CHECK_NEAR(loss[k], t->loss3[k], 1e-5, 1e-4);
        printf("three training steps on %s: losses %.6f %.6f %.6f (cpu %.6f %.6f %.6f)\n", spec,
               loss[0], loss[1], loss[2], t->loss3[0], t->loss3[1], t->loss3[2]);
    }
    dcl_classifier_free(c);
    dcl_device_free(dev);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_op("cpu");
    struct trained t = {0};
    const char *dir = getenv("DIFFCL_TEST_FASHION_DIR");
    char path[1024], tmp[256];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir ? dir : "");
    if (!dir || access(path, R_OK) != 0) {
        printf("Fashion-MNIST not found (DIFFCL_TEST_FASHION_DIR=%s): training checks skipped\n",
               dir ? dir : "");
    } else if (check_tmpdir(tmp, sizeof tmp, "test_classifier")) {
        check_training(&t, dir, tmp);
    }
    int rc = check_opencl_devices(check_device, &t);
    if (t.have) remove(t.path), rmdir(tmp);
    free(t.x), free(t.labels), free(t.logits), free(t.feats);
    return rc;
}
