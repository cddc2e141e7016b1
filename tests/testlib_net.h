// The harness test_mlp.c and test_unet.c share: a test problem's host data, one model on one device
// with its input and output buffers, the loss L = Σ w ⊙ out, arena read-back, an "EMA" copy of
// the weights, and norm-wise comparison of outputs and gradient views.
#ifndef DIFFCL_TESTS_TESTLIB_NET_H
#define DIFFCL_TESTS_TESTLIB_NET_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/device.h"
#include "diffcl/mlp.h"
#include "diffcl/net.h" // dcl_net_config, dcl_net_kind_name
#include "diffcl/ops.h" // dcl_axpby
#include "diffcl/rng.h" // dcl_rng_*_at: inputs and loss weights
#include "diffcl/unet.h"

// Host data of one test problem: x (N, D), t (N), labels (N) as uint32 bits, loss weights w (N, D)
// (L = Σ w ⊙ out). Labels count 0, 1, ... (mod K + 1); the last is the null class K (all 0 for
// K = 0, which the MLP ignores).
struct data {
    size_t N, D;
    float *x, *t, *w;
    uint32_t *labels;
};

static inline int data_init(struct data *d, size_t N, size_t D, int num_classes, uint64_t seed) {
    d->N = N, d->D = D;
    d->x = malloc(N * D * sizeof *d->x), d->t = malloc(N * sizeof *d->t);
    d->w = malloc(N * D * sizeof *d->w), d->labels = malloc(N * sizeof *d->labels);
    if (!d->x || !d->t || !d->w || !d->labels) {
        fprintf(stderr, "out of host memory\n");
        check_failures++;
        return 0;
    }
    for (size_t i = 0; i < N * D; i++) d->x[i] = dcl_rng_normal_at(seed, DCL_RNG_TEST, 1, i);
    for (size_t i = 0; i < N; i++) d->t[i] = dcl_rng_uniform_at(seed, DCL_RNG_TEST, 2, i);
    for (size_t i = 0; i < N * D; i++) d->w[i] = dcl_rng_normal_at(seed, DCL_RNG_TEST, 3, i);
    for (size_t i = 0; i < N; i++) d->labels[i] = (uint32_t)(i % (size_t)(num_classes + 1));
    if (N > 1) d->labels[N - 1] = (uint32_t)num_classes;
    return 1;
}

static inline void data_free(struct data *d) {
    free(d->x), free(d->t), free(d->w), free(d->labels);
}

// One model (an MLP or a U-Net) on one device with its input, output and dout buffers.
struct net {
    dcl_device *dev;
    dcl_mlp *m;  // kind DCL_NET_MLP
    dcl_unet *u; // kind DCL_NET_UNET
    dcl_buffer *x, *t, *labels, *out, *dout;
};

static inline void net_free(struct net *n) {
    dcl_buffer_free(n->x), dcl_buffer_free(n->t), dcl_buffer_free(n->labels);
    dcl_buffer_free(n->out), dcl_buffer_free(n->dout);
    dcl_mlp_free(n->m);
    dcl_unet_free(n->u);
    if (n->dev) dcl_device_free(n->dev);
    memset(n, 0, sizeof *n);
}

// The model cfg describes on device spec, with d's inputs and loss weights (as dout) uploaded.
// On failure: counts a failure, frees what it made and returns 0.
static inline int net_init(struct net *n, const char *spec, const dcl_net_config *cfg,
                           uint64_t seed, const struct data *d, size_t max_batch) {
    memset(n, 0, sizeof *n);
    size_t nd = d->N * d->D;
    dcl_status s = dcl_device_open(&n->dev, spec);
    if (s == DCL_OK)
        s = cfg->kind == DCL_NET_UNET ? dcl_unet_init(&n->u, n->dev, &cfg->unet, seed, max_batch)
                                      : dcl_mlp_init(&n->m, n->dev, &cfg->mlp, seed, max_batch);
    if (s == DCL_OK) s = dcl_buffer_alloc(&n->x, n->dev, nd, "x");
    if (s == DCL_OK) s = dcl_buffer_alloc(&n->t, n->dev, d->N, "t");
    if (s == DCL_OK) s = dcl_buffer_alloc(&n->labels, n->dev, d->N, "labels");
    if (s == DCL_OK) s = dcl_buffer_alloc(&n->out, n->dev, nd, "out");
    if (s == DCL_OK) s = dcl_buffer_alloc(&n->dout, n->dev, nd, "dout");
    if (s == DCL_OK) s = dcl_buffer_write(n->x, 0, nd, d->x);
    if (s == DCL_OK) s = dcl_buffer_write(n->t, 0, d->N, d->t);
    if (s == DCL_OK) s = dcl_buffer_write(n->labels, 0, d->N, d->labels);
    if (s == DCL_OK) s = dcl_buffer_write(n->dout, 0, nd, d->w);
    if (s != DCL_OK) {
        fprintf(stderr, "FAIL setting up the %s on %s: %s: %s\n", dcl_net_kind_name(cfg->kind),
                spec, dcl_status_name(s), dcl_last_error());
        check_failures++;
        net_free(n);
        return 0;
    }
    return 1;
}

// The model's own-weights forward of the first N rows into out (the U-Net with d's labels).
static inline dcl_status net_forward(struct net *n, size_t N) {
    dcl_ptr out = dcl_at(n->out, 0), x = dcl_at(n->x, 0), t = dcl_at(n->t, 0);
    if (n->u) return dcl_unet_forward(n->u, NULL, out, x, t, dcl_at(n->labels, 0), N);
    return dcl_mlp_forward(n->m, out, x, t, N);
}

// L = Σ w ⊙ f(x, t[, labels]) with the current parameters, in double; out (N, D) is scratch.
static inline double net_loss(struct net *n, const struct data *d, float *out) {
    CHECK(net_forward(n, d->N) == DCL_OK);
    CHECK(dcl_buffer_read(n->out, 0, d->N * d->D, out) == DCL_OK);
    double l = 0;
    for (size_t i = 0; i < d->N * d->D; i++) l += (double)d->w[i] * out[i];
    return l;
}

// L with element `at` of the arena p set to v (left there: the caller restores it).
static inline double net_loss_at(struct net *n, const struct data *d, const dcl_arena *p, size_t at,
                                 float v, float *out) {
    CHECK(dcl_buffer_write(p->buf, at, 1, &v) == DCL_OK);
    return net_loss(n, d, out);
}

// Reads a whole arena (padding included) into a malloc'd host array.
static inline float *read_arena(const dcl_arena *a) {
    float *h = malloc(a->n * sizeof *h);
    if (!h || dcl_buffer_read(a->buf, 0, a->n, h) != DCL_OK) {
        fprintf(stderr, "reading arena: %s\n", dcl_last_error());
        check_failures++;
        free(h);
        return NULL;
    }
    return h;
}

// An "EMA" arena of p's layout on dev holding 0.75 × p's weights (free with dcl_arena_free).
static inline void ema_init(dcl_arena *ema, dcl_device *dev, const dcl_arena *p) {
    CHECK(dcl_arena_init_like(ema, p, "ema") == DCL_OK);
    CHECK(dcl_axpby(dev, dcl_at(ema->buf, 0), dcl_at(p->buf, 0), dcl_at(p->buf, 0), 0.75f, 0.0f,
                    p->n) == DCL_OK);
}

// Largest |a − b| over n elements, relative to the largest |ref| (norm-wise, as the error of a
// GEMM chain is: each entry errs by about u times the magnitudes it sums).
static inline double normwise(const float *a, const float *ref, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(ref[i])) return INFINITY;
        double e = fabs((double)a[i] - ref[i]);
        if (e > d) d = e;
        if (fabs(ref[i]) > r) r = fabs(ref[i]);
    }
    return r > 0 ? d / r : d;
}

// The worst norm-wise error of gradient arena g against ref over the views of p; prints every
// view beyond tol and the first of them.
static inline double grads_normwise(const char *what, const float *g, const float *ref,
                                    const dcl_arena *p, double tol) {
    double worst = 0;
    const char *first = NULL;
    for (int k = 0; k < p->count; k++) {
        double e = normwise(g + p->views[k].off, ref + p->views[k].off, p->views[k].n);
        if (e > tol && !first) first = p->views[k].name;
        if (e > tol)
            fprintf(stderr, "FAIL %s: gradient %s differs norm-wise by %.3g\n", what,
                    p->views[k].name, e);
        if (e > worst) worst = e;
    }
    if (first) fprintf(stderr, "FAIL %s: first view that disagrees: %s\n", what, first);
    return worst;
}

#endif
