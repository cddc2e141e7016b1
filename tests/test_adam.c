// dcl_adamw_step on the CPU reference and on every usable OpenCL device against a double-precision
// host implementation of torch.optim.AdamW (with gradient-norm clipping) over several steps, with
// and without weight decay and clipping. The squared norm comes from dcl_sumsq on the device, as
// in training. Exit 77 only when the build has OpenCL but the machine has no OpenCL platform.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/device.h"
#include "diffcl/ops.h"
#include "diffcl/rng.h" // dcl_rng_normal_at: parameters and gradients

#define STEPS 5

struct config {
    const char *name;
    float lr, beta1, beta2, eps, wd, clip;
    int clipped; // whether clipping must apply on every step (checked on the host)
};

// Gradients have norm ~0.1·√n (~3.2 at n = 1000): clip 0.5 always applies, clip 100 never.
static const struct config configs[] = {
    {"adam", 1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, 0},
    {"adamw", 1e-2f, 0.9f, 0.999f, 1e-8f, 0.05f, 0.0f, 0},
    {"adamw+clip", 3e-3f, 0.8f, 0.99f, 1e-6f, 0.1f, 0.5f, 1},
    {"adam+noclip", 1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f, 100.0f, 0},
};

// Element i of step s's gradient, in float as the device sees it.
static float grad_at(int s, size_t i) {
    return 0.1f * dcl_rng_normal_at(7, DCL_RNG_TEST, 10 + (uint32_t)s, i);
}

// The reference: torch.optim.AdamW's single-tensor step in double, from the same float inputs.
static void reference(const struct config *c, size_t n, double *p, double *m, double *v) {
    for (size_t i = 0; i < n; i++) p[i] = dcl_rng_normal_at(7, DCL_RNG_TEST, 1, i), m[i] = v[i] = 0;
    for (int s = 1; s <= STEPS; s++) {
        double gsq = 0;
        for (size_t i = 0; i < n; i++) gsq += (double)grad_at(s, i) * grad_at(s, i);
        double norm = sqrt(gsq), scale = c->clip > 0 && norm > c->clip ? c->clip / norm : 1.0;
        CHECK((scale < 1.0) == c->clipped);
        double b1 = c->beta1, b2 = c->beta2, lr = c->lr;
        double bc1 = 1 - pow(b1, s), bc2 = 1 - pow(b2, s);
        for (size_t i = 0; i < n; i++) {
            double g = scale * grad_at(s, i);
            p[i] *= 1 - lr * c->wd;
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + c->eps);
        }
    }
}

// Tolerances, from the float errors of one step compounded over STEPS. m and v carry a few
// roundings per step (~4u relative each) plus the clip scale's error, which follows the device's
// float Σ g² (sumsq's bound at n = 1000: 1.3e-5 relative, so 6.5e-6 on the scale and 1.3e-5 on
// v): rtol 3e-5. m sums gradients of both signs over the steps, so where it nearly cancels its
// error is relative to the terms, not to m: atol 1e-6·max|m| (and the same for v). params round
// a few times per step (rtol 1e-6) and the update lr·m̂/(√v̂ + eps) (at most ~4 lr here)
// inherits the 3e-5 relative error of m and v: atol 3e-5·4·lr. Measured on the CPU reference and
// PoCL 3.1: at most ~0.4 of these tolerances (printed as error / tolerance).
static void check_device(const char *spec, size_t n) {
    dcl_device *dev;
    if (dcl_device_open(&dev, spec) != DCL_OK) {
        fprintf(stderr, "FAIL %s: cannot open: %s\n", spec, dcl_last_error());
        check_failures++;
        return;
    }
    float *h = malloc(n * sizeof *h), *got[3] = {malloc(n * 4), malloc(n * 4), malloc(n * 4)};
    double *want[3] = {malloc(n * 8), malloc(n * 8), malloc(n * 8)};
    dcl_buffer *p = NULL, *m = NULL, *v = NULL, *g = NULL, *gsq = NULL;
    if (!h || !got[0] || !got[1] || !got[2] || !want[0] || !want[1] || !want[2]) goto done;
    CHECK(dcl_buffer_alloc(&p, dev, n, "params") == DCL_OK);
    CHECK(dcl_buffer_alloc(&m, dev, n, "m") == DCL_OK);
    CHECK(dcl_buffer_alloc(&v, dev, n, "v") == DCL_OK);
    CHECK(dcl_buffer_alloc(&g, dev, n, "grads") == DCL_OK);
    CHECK(dcl_buffer_alloc(&gsq, dev, 1, "gsq") == DCL_OK);
    if (!p || !m || !v || !g || !gsq) goto done;

    // step 0 and bad betas are refused.
    CHECK(dcl_adamw_step(dev, dcl_at(p, 0), dcl_at(m, 0), dcl_at(v, 0), dcl_at(g, 0),
                         dcl_at(gsq, 0), n, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0, 0) == DCL_ERR_ARG);
    CHECK(dcl_adamw_step(dev, dcl_at(p, 0), dcl_at(m, 0), dcl_at(v, 0), dcl_at(g, 0),
                         dcl_at(gsq, 0), n, 1e-3f, 1.0f, 0.999f, 1e-8f, 0, 0, 1) == DCL_ERR_ARG);

    for (size_t ci = 0; ci < sizeof configs / sizeof *configs; ci++) {
        const struct config *c = &configs[ci];
        for (size_t i = 0; i < n; i++) h[i] = dcl_rng_normal_at(7, DCL_RNG_TEST, 1, i);
        CHECK(dcl_buffer_write(p, 0, n, h) == DCL_OK);
        CHECK(dcl_fill(dev, dcl_at(m, 0), 0.0f, n) == DCL_OK);
        CHECK(dcl_fill(dev, dcl_at(v, 0), 0.0f, n) == DCL_OK);
        for (int s = 1; s <= STEPS; s++) {
            for (size_t i = 0; i < n; i++) h[i] = grad_at(s, i);
            CHECK(dcl_buffer_write(g, 0, n, h) == DCL_OK);
            CHECK(dcl_sumsq(dev, dcl_at(gsq, 0), dcl_at(g, 0), n) == DCL_OK);
            CHECK(dcl_adamw_step(dev, dcl_at(p, 0), dcl_at(m, 0), dcl_at(v, 0), dcl_at(g, 0),
                                 dcl_at(gsq, 0), n, c->lr, c->beta1, c->beta2, c->eps, c->wd,
                                 c->clip, s) == DCL_OK);
        }
        CHECK(dcl_buffer_read(p, 0, n, got[0]) == DCL_OK);
        CHECK(dcl_buffer_read(m, 0, n, got[1]) == DCL_OK);
        CHECK(dcl_buffer_read(v, 0, n, got[2]) == DCL_OK);
        reference(c, n, want[0], want[1], want[2]);

        static const char *what[3] = {"params", "m", "v"};
        double atol[3] = {3e-5 * 4 * c->lr, 0, 0}, rtol[3] = {1e-6, 3e-5, 3e-5};
        for (int k = 1; k < 3; k++) {
            for (size_t i = 0; i < n; i++)
                if (fabs(want[k][i]) > atol[k]) atol[k] = fabs(want[k][i]);
            atol[k] *= 1e-6;
        }
        double worst[3] = {0, 0, 0}; // largest |a − b| / (atol + rtol·|ref|)
        int bad = 0;
        for (int k = 0; k < 3; k++) {
            for (size_t i = 0; i < n; i++) {
                double e = fabs(got[k][i] - want[k][i]);
                double r = e / (atol[k] + rtol[k] * fabs(want[k][i]));
                if (!(r <= worst[k])) worst[k] = r; // NaN sticks
                if (!(r <= 1.0) && bad++ < 5)
                    fprintf(stderr, "  %s %s %s[%zu]: got %.9g want %.9g\n", spec, c->name, what[k],
                            i, (double)got[k][i], want[k][i]);
            }
        }
        if (bad) check_failures++;
        printf("%-4s %-8s %-12s n=%zu %d steps: error / tolerance: params %.3f, m %.3f, v %.3f\n",
               bad ? "FAIL" : "ok", spec, c->name, n, STEPS, worst[0], worst[1], worst[2]);
    }
done:
    dcl_buffer_free(p), dcl_buffer_free(m), dcl_buffer_free(v), dcl_buffer_free(g);
    dcl_buffer_free(gsq);
    free(h);
    for (int k = 0; k < 3; k++) free(got[k]), free(want[k]);
    dcl_device_free(dev);
}

static void on_device(const char *spec, void *n) { check_device(spec, *(size_t *)n); }

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    size_t n = small ? 257 : 1000;
    check_device("cpu", n);

    return check_opencl_devices(on_device, &n);
}
