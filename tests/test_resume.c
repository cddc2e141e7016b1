// Training state on disk: N steps straight against k steps, a checkpoint, a fresh model loaded
// from it and the rest (byte-identical final checkpoints, on the CPU reference and each OpenCL
// device, for an MLP and a small U-Net); non-finite steps skipped and DCL_ERR_DIVERGED with a
// finite checkpoint; the learning-rate schedules against their closed forms.
#define _POSIX_C_SOURCE 200809L // mkdtemp

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device/test_hooks.h"  // dcl__cl_fault_arm (fault builds)
#include "diffcl/safetensors.h" // dcl_safetensors_read: the finiteness check
#include "diffcl/train.h"
#include "testlib.h"
#include "testlib_idx.h" // check_write_idx

#define N_STEPS 24
#define SIDE 8

static char tmpdir[] = "/tmp/diffcl-test-resume-XXXXXX";
static char idx_spec[400];

static dcl_model_config mlp_config(void) {
    dcl_model_config c;
    dcl_model_config_default(&c);
    c.net.mlp.width = 16, c.net.mlp.depth = 2, c.net.mlp.emb_dim = 8;
    snprintf(c.data, sizeof c.data, "spiral:n=100"); // a fixed dataset: its order is the state
    c.seed = 3;
    return c;
}

static dcl_model_config unet_config(void) {
    dcl_model_config c;
    dcl_model_config_default(&c);
    c.net.kind = DCL_NET_UNET;
    dcl_unet_config_default(&c.net.unet, 1, SIDE, SIDE);
    c.net.unet.base = 4, c.net.unet.levels = 2, c.net.unet.mult[0] = 1, c.net.unet.mult[1] = 2;
    c.net.unet.groups = 2, c.net.unet.emb_dim = 4, c.net.unet.num_classes = 3;
    c.cond_drop = 0.5;
    snprintf(c.data, sizeof c.data, "%s", idx_spec);
    c.seed = 5;
    return c;
}

static dcl_train_opts opts(int unet) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.batch = unet ? 8 : 32;
    o.lr = 3e-3, o.warmup = 5, o.ema = 0.9, o.log_every = 5;
    o.lr_schedule = DCL_LR_COSINE, o.lr_min = 1e-4, o.lr_horizon = N_STEPS;
    return o;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b && fread(b, 1, (size_t)len, f) == (size_t)len ? (size_t)len : 0;
    fclose(f);
    return b;
}

// Trains cfg for `steps` steps (from a checkpoint when resume is set) and saves to out.
static dcl_status train(const char *spec, const dcl_model_config *cfg, int unet, int steps,
                        const char *resume, const char *out, float *losses, int *n_losses) {
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_train_opts o = opts(unet);
    o.steps = steps, o.out = out, o.resume = resume;
    dcl_status s = dcl_device_open(&dev, spec);
    if (s == DCL_OK) s = dcl_dataset_open(&ds, cfg->data, cfg->seed);
    if (s == DCL_OK)
        s = resume ? dcl_model_load(&m, dev, resume, (size_t)o.batch)
                   : dcl_model_init(&m, dev, cfg, (size_t)o.batch);
    if (s == DCL_OK) {
        o.steps = steps - (int)m.cfg.step;
        s = dcl_train(dev, &m, ds, &o, NULL, NULL, losses, n_losses);
    }
    if (s != DCL_OK) fprintf(stderr, "train on %s: %s\n", spec, dcl_last_error());
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
    return s;
}

static void check_resume(const char *spec, int unet) {
    dcl_model_config c = unet ? unet_config() : mlp_config();
    char full[512], part[512], rest[512];
    snprintf(full, sizeof full, "%s/full.safetensors", tmpdir);
    float lf[N_STEPS], lr[N_STEPS];
    int nf = 0, nr = 0;
    CHECK_EQ(train(spec, &c, unet, N_STEPS, NULL, full, lf, &nf), DCL_OK);
    size_t n_full = 0, n_rest = 0;
    unsigned char *bf = slurp(full, &n_full);
    int ks[] = {1, 17, N_STEPS - 1};
    for (int i = 0; i < 3; i++) {
        snprintf(part, sizeof part, "%s/part%d.safetensors", tmpdir, ks[i]);
        snprintf(rest, sizeof rest, "%s/rest%d.safetensors", tmpdir, ks[i]);
        CHECK_EQ(train(spec, &c, unet, ks[i], NULL, part, NULL, NULL), DCL_OK);
        CHECK_EQ(train(spec, &c, unet, N_STEPS, part, rest, lr, &nr), DCL_OK);
        unsigned char *br = slurp(rest, &n_rest);
        CHECK(bf && br && n_full > 0 && n_full == n_rest && memcmp(bf, br, n_full) == 0);
        // The resumed run reports the same loss at every window it completes.
        for (int j = 0; j < nr - 1; j++) CHECK(lr[nr - 2 - j] == lf[nf - 2 - j]);
        free(br);
    }
    printf("%s %s: N = %d straight and resumed after 1, 17, %d steps: byte-identical\n", spec,
           unet ? "unet" : "mlp", N_STEPS, N_STEPS - 1);
    free(bf);
}

// Every tensor of a checkpoint is finite.
static int all_finite(const char *path) {
    dcl_st_file *f;
    if (dcl_safetensors_read(&f, path) != DCL_OK) return 0;
    int ok = 1;
    for (int i = 0; i < dcl_safetensors_count(f); i++) {
        const dcl_st_tensor *t = dcl_safetensors_tensor(f, i);
        for (uint64_t j = 0; j < dcl_st_tensor_numel(t); j++) ok &= isfinite(t->data[j]) != 0;
    }
    dcl_safetensors_free(f);
    return ok;
}

// A rate far too large: every step after the first few is skipped, DCL_ERR_DIVERGED after
// max_skips in a row, and the checkpoint written is the last finite state.
static void check_divergence(void) {
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_model_config c = mlp_config();
    dcl_train_opts o = opts(0);
    char path[512];
    snprintf(path, sizeof path, "%s/diverged.safetensors", tmpdir);
    o.lr = 1e30, o.warmup = 0, o.clip = 0, o.steps = 100, o.max_skips = 4, o.out = path;
    o.lr_schedule = DCL_LR_CONSTANT;
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s == DCL_OK) s = dcl_dataset_open(&ds, c.data, c.seed);
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, 32);
    CHECK_EQ(s, DCL_OK);
    if (s == DCL_OK) {
        CHECK_EQ(dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL), DCL_ERR_DIVERGED);
        CHECK(strstr(dcl_last_error(), "4 steps in a row") != NULL);
        CHECK(strstr(dcl_last_error(), "was saved to") != NULL);
        CHECK(all_finite(path));
        dcl_train_info info;
        CHECK_EQ(dcl_train_info_read(path, &info), DCL_OK);
        CHECK(info.step < 100);
    }
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
}

// A non-finite step in the middle of a healthy run is skipped and the run goes on: the result
// equals the run that skips it from the start.  (One example of 3e38 in a CSV set makes the squared error overflow.)
static void check_skip(void) {
    char csv[256], spec[300], out[512];
    snprintf(csv, sizeof csv, "%s/points.csv", tmpdir);
    FILE *f = fopen(csv, "w");
    CHECK(f != NULL);
    if (!f) return;
    for (int i = 0; i < 64; i++) fprintf(f, "%g,%g\n", i == 7 ? 3e38 : 0.1 * i, 0.05 * i);
    fclose(f);
    snprintf(spec, sizeof spec, "csv:%s", csv);
    snprintf(out, sizeof out, "%s/skip.safetensors", tmpdir);
    dcl_model_config c = mlp_config();
    snprintf(c.data, sizeof c.data, "%s", spec);
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_train_opts o = opts(0);
    o.batch = 4, o.steps = 40, o.out = out, o.max_skips = 40;
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s == DCL_OK) s = dcl_dataset_open(&ds, c.data, c.seed);
    if (s != DCL_OK) { // a reader that refuses NaN coordinates: nothing to plant
        printf("csv with NaN refused (%s); skip test not run\n", dcl_last_error());
        dcl_device_free(dev);
        return;
    }
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, 4);
    CHECK_EQ(s, DCL_OK);
    if (s == DCL_OK) {
        CHECK_EQ(dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL), DCL_OK);
        dcl_train_info info;
        CHECK_EQ(dcl_train_info_read(out, &info), DCL_OK);
        CHECK(info.skipped > 0 && info.skipped < 40);
        CHECK(all_finite(out));
        printf("an overflowing example: %lld of 40 steps skipped, the checkpoint finite\n",
               (long long)info.skipped);
    }
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
}

static void check_schedule(void) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.lr = 1e-2, o.lr_min = 1e-4, o.warmup = 10;
    const int64_t H = 110;
    for (int k = 0; k < 3; k++) {
        o.lr_schedule = k;
        CHECK_NEAR(dcl_train_lr(&o, 0, H), 1e-3, 0, 1e-12);
        CHECK_NEAR(dcl_train_lr(&o, 9, H), 1e-2, 0, 1e-12);
        CHECK_NEAR(dcl_train_lr(&o, 500, H), k == DCL_LR_CONSTANT ? 1e-2 : 1e-4, 0, 1e-12);
    }
    o.lr_schedule = DCL_LR_COSINE; // p = (60 − 10) / 100 = 0.5: halfway, cos = 0
    CHECK_NEAR(dcl_train_lr(&o, 60, H), 1e-4 + (1e-2 - 1e-4) * 0.5, 0, 1e-12);
    CHECK_NEAR(dcl_train_lr(&o, 35, H),
               1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + cos(3.14159265358979323846 / 4)), 0, 1e-12);
    o.lr_schedule = DCL_LR_LINEAR;
    CHECK_NEAR(dcl_train_lr(&o, 35, H), 1e-2 + (1e-4 - 1e-2) * 0.25, 0, 1e-12);
    int kind;
    CHECK_EQ(dcl_lr_schedule_parse("cosine", &kind), DCL_OK);
    CHECK_EQ(kind, DCL_LR_COSINE);
    CHECK_EQ(dcl_lr_schedule_parse("step", &kind), DCL_ERR_ARG);
    char name[256];
    dcl_train_checkpoint_name("runs/a.safetensors", 500, name, sizeof name);
    CHECK(strcmp(name, "runs/a-step00000500.safetensors") == 0);
}

#if defined(DIFFCL_HAVE_OPENCL) && defined(DIFFCL_FAULT_INJECTION)
// The state saved after a device failure (a named device: no fallback) resumes like any other: a
// failing OpenCL call halfway and at 80% of a run, then --resume on the same device, gives the
// straight run's checkpoint byte for byte.
static void check_resume_after_failure(const char *spec) {
    dcl_model_config c = mlp_config();
    char full[512], failed[512], rest[512];
    snprintf(full, sizeof full, "%s/full.safetensors", tmpdir);
    snprintf(failed, sizeof failed, "%s/failed.safetensors", tmpdir);
    snprintf(rest, sizeof rest, "%s/rest.safetensors", tmpdir);
    long c0 = dcl__cl_fault_calls();
    CHECK_EQ(train(spec, &c, 0, N_STEPS, NULL, full, NULL, NULL), DCL_OK);
    long calls = dcl__cl_fault_calls() - c0;
    size_t n_full = 0, n_rest = 0;
    unsigned char *bf = slurp(full, &n_full);
    const double at[] = {0.5, 0.8};
    for (int i = 0; i < 2; i++) {
        remove(failed);
        dcl__cl_fault_arm((long)(at[i] * (double)calls), -5); // CL_OUT_OF_RESOURCES
        dcl_status s = train(spec, &c, 0, N_STEPS, NULL, failed, NULL, NULL);
        int fired = dcl__cl_fault_fired();
        dcl__cl_fault_arm(0, 0);
        CHECK(fired && dcl_status_is_device_failure(s));
        dcl_train_info info;
        CHECK_EQ(dcl_train_info_read(failed, &info), DCL_OK);
        CHECK(info.step < N_STEPS);
        CHECK_EQ(train(spec, &c, 0, N_STEPS, failed, rest, NULL, NULL), DCL_OK);
        unsigned char *br = slurp(rest, &n_rest);
        CHECK(bf && br && n_full == n_rest && memcmp(bf, br, n_full) == 0);
        printf("%s: a device failure at step %lld of %d saved a state that resumes bitwise\n", spec,
               (long long)info.step, N_STEPS);
        free(br);
    }
    free(bf);
}
#else
static void check_resume_after_failure(const char *spec) { (void)spec; }
#endif

static void on_device(const char *spec, void *ctx) {
    (void)ctx;
    check_resume(spec, 0);
    check_resume(spec, 1);
    check_resume_after_failure(spec);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(tmpdir) || !check_write_idx(tmpdir, 30, SIDE, 3, idx_spec, sizeof idx_spec)) {
        perror("mkdtemp");
        return 1;
    }
    check_schedule();
    check_divergence();
    check_skip();
    check_resume("cpu", 0);
    check_resume("cpu", 1);
    int rc = check_opencl_devices(on_device, NULL);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
