// Sampling trajectories on a device against the CPU reference: the same small model, seed and
// sampler on both, compared after every step, so a kernel that is slightly wrong at one step is
// named by that step, while the benign drift of rounding stays far below the tolerance.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crosscheck/crosscheck.h"
#include "core/error.h"
#include "diffcl/eval.h" // dcl_sw2
#include "diffcl/model.h"
#include "diffcl/ops.h" // dcl_rng_normal

#define POINTS 512
#define STEPS 20

// Per-step tolerance on the largest difference, growing with the step: rounding differences of
// the MLP (~1e-6 of its outputs) accumulate about linearly over a deterministic trajectory, so
// 2e-5 per step is 20× what PoCL shows, and a bias of 1e-4 of x per step still exceeds it.
#define STEP_ATOL 2e-5
// The final samples' sliced W2 distance: with the step tolerance above the samples differ by at
// most 4e-4 each, which bounds the distance; 1e-3 flags a changed distribution.
#define SW2_ATOL 1e-3

// A small MLP flow model with its initial (random, but identical on every device) weights: an
// untrained network still gives every layer a say in each step.
static dcl_status make_model(dcl_device *dev, dcl_model *m) {
    dcl_model_config c;
    memset(&c, 0, sizeof c);
    dcl_status s = dcl_process_parse("flow", &c.process);
    c.pred = DCL_PREDICT_VELOCITY;
    c.net.kind = DCL_NET_MLP;
    c.net.mlp = (dcl_mlp_config){.dim = 2, .width = 64, .depth = 3, .emb_dim = 16};
    c.seed = 3;
    snprintf(c.data, sizeof c.data, "spiral");
    if (s == DCL_OK) s = dcl_model_init(m, dev, &c, POINTS);
    return s;
}

// Samples N points with the sampler from the small model or the checkpoint at path.
static dcl_status trajectory(dcl_device *dev, const char *path, dcl_sampler_kind kind, size_t N,
                             size_t D, float *traj) {
    dcl_model m = {0};
    float *x = malloc(N * D * sizeof *x);
    dcl_sampler_opts o = {.kind = kind, .steps = STEPS, .eta = kind == DCL_SAMPLER_DDIM ? 0.5 : 0};
    dcl_status s = !x     ? dcl__fail(DCL_ERR_NOMEM, "check: no host memory")
                   : path ? dcl_model_load(&m, dev, path, N)
                          : make_model(dev, &m);
    if (s == DCL_OK) s = dcl_model_sample(&m, &o, N, 11, 1, NULL, x, traj);
    if (m.net) dcl_model_free(&m);
    free(x);
    return s;
}

dcl_status dcl_check_samplers(dcl_device *dev, dcl_device *cpu, const char *model,
                              dcl_check_row_fn fn, void *ctx) {
    static const dcl_sampler_kind kinds[] = {DCL_SAMPLER_DDPM,     DCL_SAMPLER_DDIM,
                                             DCL_SAMPLER_EULER,    DCL_SAMPLER_HEUN,
                                             DCL_SAMPLER_DPMPP_2M, DCL_SAMPLER_DPMPP_2M_SDE};
    size_t N = POINTS, D = 2;
    dcl_status s = cpu ? DCL_OK : dcl__fail(DCL_ERR_ARG, "check: no reference device");
    if (s == DCL_OK && model) {
        // The checkpoint's own data: 8 samples of an image model, POINTS of points.
        dcl_model probe = {0};
        s = dcl_model_load(&probe, cpu, model, 1);
        if (s == DCL_OK) D = dcl_net_dim(&probe.cfg.net), dcl_model_free(&probe);
        if (D > 2) N = 8;
    }
    size_t n = (size_t)(STEPS + 1) * N * D, P = N * D;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (s == DCL_OK && (!a || !b)) s = dcl__fail(DCL_ERR_NOMEM, "check: no host memory");
    for (size_t i = 0; s == DCL_OK && i < sizeof kinds / sizeof kinds[0]; i++) {
        s = trajectory(cpu, model, kinds[i], N, D, a);
        if (s == DCL_OK) s = trajectory(dev, model, kinds[i], N, D, b);
        if (s != DCL_OK) break;
        dcl_check_result r;
        memset(&r, 0, sizeof r);
        snprintf(r.name, sizeof r.name, "sample.%s.%d-steps", dcl_sampler_name(kinds[i]), STEPS);
        r.n = STEPS, r.elements = n, r.atol = (float)(STEP_ATOL * STEPS), r.pass = 1;
        int first_bad = 0;
        double scale = 0, worst_step = 0;
        for (int k = 1; k <= STEPS; k++) {
            double d = 0;
            for (size_t j = 0; j < P; j++) {
                size_t idx = (size_t)k * P + j;
                double e = fabs((double)a[idx] - b[idx]);
                if (!(e <= d)) d = e; // NaN sticks
                scale = fmax(scale, fabs(a[idx]));
            }
            if (!(d <= r.max_abs)) r.max_abs = d, worst_step = k;
            if (!first_bad && !(d <= STEP_ATOL * k)) first_bad = k;
        }
        r.max_rel = scale > 0 ? r.max_abs / scale : r.max_abs;
        if (first_bad) {
            r.pass = 0;
            snprintf(r.detail, sizeof r.detail,
                     "first step over its tolerance (%g x step): step %d of %d; largest "
                     "difference %.3g at step %.0f",
                     STEP_ATOL, first_bad, STEPS, r.max_abs, worst_step);
        }
        fn(ctx, &r);
        // The final samples as distributions: long chains may drift apart point by point while
        // still sampling the same distribution (benign), which the sliced W2 distance between
        // the two sample sets shows; a broken kernel moves the distribution.
        const float *fa = a + (size_t)STEPS * P, *fb = b + (size_t)STEPS * P;
        memset(&r, 0, sizeof r);
        snprintf(r.name, sizeof r.name, "sample.%s.sw2", dcl_sampler_name(kinds[i]));
        r.n = N, r.elements = P, r.atol = (float)SW2_ATOL;
        r.max_abs = dcl_sw2(fa, N, fb, N, D, 64, 5);
        double rms = 0; // relative to the samples' own scale
        for (size_t j = 0; j < P; j++) rms += (double)fa[j] * fa[j];
        rms = sqrt(rms / (double)P);
        r.max_rel = rms > 0 ? r.max_abs / rms : r.max_abs;
        r.pass = r.max_abs <= SW2_ATOL;
        if (!r.pass)
            snprintf(r.detail, sizeof r.detail,
                     "sliced W2 between the device's and the CPU's final samples %.3g > %g",
                     r.max_abs, SW2_ATOL);
        fn(ctx, &r);
    }
    free(a), free(b);
    return s;
}
