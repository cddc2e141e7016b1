// The closed-form denoiser of a Gaussian mixture (tutorial §3.3's two points, generalised to K
// isotropic Gaussians), as a dcl_denoiser_fn for sampler tests.
#include <math.h>
#include <stdlib.h>

#include "core/error.h"          // dcl__fail
#include "diffusion/diffusion.h" // dcl__target_from_x0
#include "diffusion/oracle.h"

#define MAX_K 64 // components
#define MAX_D 64 // dimensions (the oracle is for low-dimensional tests)

// Per-time constants of each component k: the logit offset log w_k − D/2 log v_k, 1/(2 v_k) and
// the posterior gain g_k = a s_k²/v_k, with v_k = a² s_k² + b².
struct oracle_t {
    double a, offset[MAX_K], inv2v[MAX_K], gain[MAX_K];
};

static void oracle_at(const dcl_oracle *o, double t, struct oracle_t *c) {
    double b;
    dcl_process_ab(&o->process, t, &c->a, &b);
    for (int k = 0; k < o->K; k++) {
        double s2 = o->stds[k] * o->stds[k], v = c->a * c->a * s2 + b * b;
        c->offset[k] = log(o->weights[k]) - 0.5 * (double)o->D * log(v);
        c->inv2v[k] = 1 / (2 * v);
        c->gain[k] = c->a * s2 / v;
    }
}

static void oracle_x0(const dcl_oracle *o, const struct oracle_t *c, const double *x, double *x0) {
    double r[MAX_K], rmax = -INFINITY, z = 0;
    for (int k = 0; k < o->K; k++) {
        const double *mu = o->means + (size_t)k * o->D;
        double d2 = 0;
        for (size_t d = 0; d < o->D; d++) d2 += (x[d] - c->a * mu[d]) * (x[d] - c->a * mu[d]);
        r[k] = c->offset[k] - d2 * c->inv2v[k];
        if (r[k] > rmax) rmax = r[k];
    }
    for (int k = 0; k < o->K; k++) z += (r[k] = exp(r[k] - rmax));
    for (size_t d = 0; d < o->D; d++) x0[d] = 0;
    for (int k = 0; k < o->K; k++) {
        const double *mu = o->means + (size_t)k * o->D;
        for (size_t d = 0; d < o->D; d++)
            x0[d] += r[k] / z * (mu[d] + c->gain[k] * (x[d] - c->a * mu[d]));
    }
}

void dcl__oracle_x0(const dcl_oracle *o, double t, const double *x, double *x0) {
    struct oracle_t c;
    DCL_ASSERT(o->K >= 1 && o->K <= MAX_K);
    oracle_at(o, t, &c);
    oracle_x0(o, &c, x, x0);
}

dcl_status dcl__oracle_denoise(void *ctx, dcl_ptr out, dcl_ptr x, double t, size_t N) {
    dcl_oracle *o = ctx;
    size_t n = N * o->D;
    if (o->K < 1 || o->K > MAX_K)
        return dcl__fail(DCL_ERR_ARG, "oracle: K must be in 1..%d, got %d", MAX_K, o->K);
    if (o->D < 1 || o->D > MAX_D)
        return dcl__fail(DCL_ERR_ARG, "oracle: D must be in 1..%d, got %zu", MAX_D, o->D);
    if (o->host_n < 2 * n) {
        float *h = realloc(o->host, 2 * n * sizeof *h);
        if (!h) return dcl__fail(DCL_ERR_NOMEM, "oracle: no memory for %zu points", N);
        o->host = h, o->host_n = 2 * n;
    }
    float *hx = o->host, *hf = o->host + n;
    dcl_status s = dcl_buffer_read(x.buf, x.off, n, hx);
    if (s != DCL_OK) return s;
    double c[2], xd[MAX_D], x0[MAX_D];
    struct oracle_t ct;
    dcl__target_from_x0(&o->process, o->pred, t, o->prev_dt, c);
    oracle_at(o, t, &ct);
    for (size_t i = 0; i < N; i++) {
        for (size_t d = 0; d < o->D; d++) xd[d] = hx[i * o->D + d];
        oracle_x0(o, &ct, xd, x0);
        for (size_t d = 0; d < o->D; d++) hf[i * o->D + d] = (float)(c[0] * xd[d] + c[1] * x0[d]);
    }
    return dcl_buffer_write(out.buf, out.off, n, hf);
}

void dcl__oracle_free(dcl_oracle *o) {
    free(o->host);
    o->host = NULL, o->host_n = 0;
}
