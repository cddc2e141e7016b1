// The image pipeline end to end on a tiny class-conditional U-Net and a tiny IDX data set made
// here: two training steps on the CPU reference and on every OpenCL device give the same
// parameters within tolerance; classifier-free guidance combines the conditional and
// unconditional outputs as documented; a checkpoint round trip keeps the U-Net's config and
// samples bit for bit. Exit 77 only when the build has OpenCL but the machine has no platform.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "testlib_idx.h" // check_write_idx
#include "diffcl/data.h"
#include "diffcl/ops.h" // dcl_fill
#include "diffcl/rng.h" // dcl_rng_uniform_at
#include "diffcl/train.h"

#define IMAGES 30
#define SIDE 8
#define CLASSES 3
#define BATCH 6

static char tmpdir[] = "/tmp/diffcl-test-image-train-XXXXXX";
static char spec[480];

static dcl_model_config tiny_config(void) {
    dcl_model_config c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(dcl_process_parse("flow", &c.process), DCL_OK);
    c.pred = DCL_PREDICT_VELOCITY;
    c.net.kind = DCL_NET_UNET;
    dcl_unet_config_default(&c.net.unet, 1, SIDE, SIDE);
    c.net.unet.base = 4, c.net.unet.levels = 2, c.net.unet.mult[0] = 1, c.net.unet.mult[1] = 2;
    c.net.unet.groups = 2, c.net.unet.emb_dim = 4, c.net.unet.num_classes = CLASSES;
    c.cond_drop = 0.5;
    snprintf(c.data, sizeof c.data, "%s", spec);
    c.seed = 5;
    return c;
}

// Trains two steps on spec_dev; returns the parameters (host copy, caller frees).
static float *train_two_steps(const char *dev_spec, size_t *n) {
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_model_config c = tiny_config();
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = 2, o.batch = BATCH, o.warmup = 0, o.log_every = 1, o.lr = 1e-3;
    float *p = NULL;
    dcl_status s = dcl_device_open(&dev, dev_spec);
    if (s == DCL_OK) s = dcl_dataset_open(&ds, spec, c.seed);
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, 2 * BATCH);
    if (s == DCL_OK) s = dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL);
    if (s == DCL_OK) {
        dcl_arena *a = dcl_net_params(m.net);
        *n = a->n;
        p = malloc(a->n * sizeof *p);
        if (!p || dcl_buffer_read(a->buf, 0, a->n, p) != DCL_OK) free(p), p = NULL;
    }
    if (!p) {
        fprintf(stderr, "FAIL %s: two training steps: %s\n", dev_spec, dcl_last_error());
        check_failures++;
    }
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
    return p;
}

// Guidance: the guided output equals w f(x, y) + (1 − w) f(x, ∅), each evaluated alone.
static void check_guidance(void) {
    dcl_device *dev = NULL;
    dcl_model m = {0};
    dcl_model_config c = tiny_config();
    enum { N = 4, D = SIDE * SIDE };
    dcl_buffer *x = NULL, *out = NULL, *cond = NULL, *uncond = NULL, *t = NULL, *x2 = NULL,
               *out2 = NULL, *lab = NULL;
    uint32_t labels[2 * N] = {0, 1, 2, 1, CLASSES, CLASSES, CLASSES, CLASSES};
    float hx[N * D], ho[N * D], hc[N * D], hu[N * D];
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, 2 * N);
    dcl_buffer **bufs[] = {&x, &out, &cond, &uncond};
    for (int i = 0; i < 4 && s == DCL_OK; i++) s = dcl_buffer_alloc(bufs[i], dev, N * D, "g");
    if (s == DCL_OK) s = dcl_buffer_alloc(&t, dev, 2 * N, "t");
    if (s == DCL_OK) s = dcl_buffer_alloc(&x2, dev, 2 * N * D, "x2");
    if (s == DCL_OK) s = dcl_buffer_alloc(&out2, dev, 2 * N * D, "out2");
    if (s == DCL_OK) s = dcl_buffer_alloc(&lab, dev, 2 * N, "labels");
    if (s == DCL_OK) s = dcl_buffer_write(lab, 0, 2 * N, labels);
    if (s == DCL_OK) s = dcl_rng_normal(dev, dcl_at(x, 0), 1, DCL_RNG_TEST, 9, 0, N * D);
    // Perturb the zero-initialised output layer's EMA copy so the outputs depend on the class.
    if (s == DCL_OK) s = dcl_rng_normal(dev, dcl_at(m.ema.buf, 0), 2, DCL_RNG_TEST, 0, 0, m.ema.n);
    dcl_model_denoiser d = {.model = &m,
                            .use_ema = 1,
                            .w = 3.0,
                            .labels = dcl_at(lab, 0),
                            .t = t,
                            .x2 = x2,
                            .out2 = out2};
    if (s == DCL_OK) s = dcl_model_denoise(&d, dcl_at(out, 0), dcl_at(x, 0), 0.5, N);
    d.w = 1.0;
    if (s == DCL_OK) s = dcl_model_denoise(&d, dcl_at(cond, 0), dcl_at(x, 0), 0.5, N);
    d.labels = dcl_at(lab, N); // the null class
    if (s == DCL_OK) s = dcl_model_denoise(&d, dcl_at(uncond, 0), dcl_at(x, 0), 0.5, N);
    if (s == DCL_OK) s = dcl_buffer_read(out, 0, N * D, ho);
    if (s == DCL_OK) s = dcl_buffer_read(cond, 0, N * D, hc);
    if (s == DCL_OK) s = dcl_buffer_read(uncond, 0, N * D, hu);
    if (s == DCL_OK) s = dcl_buffer_read(x, 0, N * D, hx);
    CHECK_EQ(s, DCL_OK);
    if (s != DCL_OK) fprintf(stderr, "guidance: %s\n", dcl_last_error());
    double max_diff = 0, max_gap = 0;
    for (int i = 0; s == DCL_OK && i < N * D; i++) {
        double want = 3.0 * hc[i] - 2.0 * hu[i];
        max_diff = fmax(max_diff, fabs(ho[i] - want));
        max_gap = fmax(max_gap, fabs(hc[i] - hu[i]));
    }
    printf("guidance w=3: max |out - (3 cond - 2 uncond)| %.3g; classes matter: max |cond - "
           "uncond| %.3g\n",
           max_diff, max_gap);
    CHECK(max_diff <= 1e-4 * (1 + max_gap));
    CHECK(max_gap > 1e-3); // the test would be empty if the class changed nothing
    dcl_buffer *all[] = {x, out, cond, uncond, t, x2, out2, lab};
    for (int i = 0; i < 8; i++) dcl_buffer_free(all[i]);
    if (m.net) dcl_model_free(&m);
    dcl_device_free(dev);
}

// Save, load: the same config and bit-identical guided samples.
static void check_round_trip(void) {
    dcl_device *dev = NULL;
    dcl_model m = {0}, l = {0};
    dcl_model_config c = tiny_config();
    char path[300];
    snprintf(path, sizeof path, "%s/unet.safetensors", tmpdir);
    enum { N = 6, D = SIDE * SIDE };
    int32_t labels[N] = {0, 1, 2, 0, 1, 2};
    dcl_guidance g = {labels, 2.0};
    dcl_sampler_opts o = {.kind = DCL_SAMPLER_DDIM, .steps = 5};
    float a[N * D], b[N * D];
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, 2 * N);
    if (s == DCL_OK) s = dcl_rng_normal(dev, dcl_at(m.ema.buf, 0), 2, DCL_RNG_TEST, 0, 0, m.ema.n);
    if (s == DCL_OK) s = dcl_model_save(&m, path);
    if (s == DCL_OK) s = dcl_model_load(&l, dev, path, 2 * N);
    if (s == DCL_OK) s = dcl_model_sample(&m, &o, N, 4, 1, &g, a, NULL);
    if (s == DCL_OK) s = dcl_model_sample(&l, &o, N, 4, 1, &g, b, NULL);
    CHECK_EQ(s, DCL_OK);
    if (s != DCL_OK) fprintf(stderr, "round trip: %s\n", dcl_last_error());
    if (s == DCL_OK) {
        CHECK_EQ(l.cfg.net.kind, DCL_NET_UNET);
        const dcl_unet_config *u = &l.cfg.net.unet, *v = &c.net.unet;
        CHECK(u->channels == v->channels && u->height == v->height && u->width == v->width);
        CHECK(u->base == v->base && u->levels == v->levels && u->groups == v->groups);
        CHECK(u->emb_dim == v->emb_dim && u->num_classes == v->num_classes);
        for (int i = 0; i < v->levels; i++) CHECK_EQ(u->mult[i], v->mult[i]);
        CHECK_NEAR(l.cfg.cond_drop, c.cond_drop, 0, 0);
        CHECK(memcmp(a, b, sizeof a) == 0);
        // A label outside the model's classes is an argument error, not a crash.
        labels[0] = CLASSES;
        CHECK_EQ(dcl_model_sample(&l, &o, N, 4, 1, &g, b, NULL), DCL_ERR_ARG);
    }
    if (m.net) dcl_model_free(&m);
    if (l.net) dcl_model_free(&l);
    dcl_device_free(dev);
}

struct reference {
    const float *p; // the CPU's parameters after two steps
    size_t n;
};

// Two training steps on spec against the CPU's.
static void on_device(const char *spec, void *ctx) {
    const struct reference *r = ctx;
    size_t n_dev = 0;
    float *p = train_two_steps(spec, &n_dev);
    if (!p) return;
    CHECK_EQ(n_dev, r->n);
    // Adam's first steps move each weight by about lr whatever the gradient's size, so a
    // gradient near 0 whose sign differs between devices moves a weight by up to 2 lr the
    // other way: the tolerance is absolute, a fraction of lr, and the count of weights
    // beyond 1e-6 is reported.
    double max_diff = 0;
    size_t beyond = 0;
    for (size_t k = 0; k < r->n && k < n_dev; k++) {
        double d = fabs((double)p[k] - r->p[k]);
        if (!(d <= max_diff)) max_diff = d;
        beyond += d > 1e-6;
    }
    printf("%-8s 2 training steps vs cpu: max |param diff| %.3g over %zu values (%zu beyond "
           "1e-6)\n",
           spec, max_diff, r->n, beyond);
    CHECK(max_diff <= 1e-4);
    free(p);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(tmpdir) || !check_write_idx(tmpdir, IMAGES, SIDE, CLASSES, spec, sizeof spec)) {
        perror("temp files");
        return 1;
    }
    check_guidance();
    check_round_trip();
    size_t n_ref = 0;
    float *ref = train_two_steps("cpu", &n_ref);

    struct reference r = {ref, n_ref};
    int rc = ref ? check_opencl_devices(on_device, &r) : check_exit();
    free(ref);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
