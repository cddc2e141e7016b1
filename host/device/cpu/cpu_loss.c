// The CPU reference's loss ops (include/diffcl/ops.h): the softmax cross-entropy of a classifier,
// loss and gradient in one pass, float arithmetic in the order of cl/loss.cl.
#include <math.h>
#include <stdint.h>

#include "device/cpu/cpu_impl.h" // struct dcl_op_args
#include "device/cpu/cpu_pool.h" // dcl__cpu_for, dcl__cpu_grain

// Rows [lo, hi): max, Σ exp(x − max) in order, then the loss and (e/S − onehot)·scale. The
// exponentials are kept in dlogits between the two passes.
static void softmax_cross_entropy_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t K = a->p.rows.D;
    float scale = a->p.rows.scale;
    float *loss = (float *)a->out[0].buf->handle + a->out[0].off;
    float *dl = (float *)a->out[1].buf->handle + a->out[1].off;
    const float *x = (const float *)a->in[0].buf->handle + a->in[0].off;
    const uint32_t *labels = (const uint32_t *)a->in[1].buf->handle + a->in[1].off;
    for (size_t r = lo; r < hi; r++) {
        const float *xr = x + r * K;
        float *dr = dl + r * K;
        uint32_t y = labels[r];
        if (y >= K) {
            loss[r] = 0.0f;
            for (size_t k = 0; k < K; k++) dr[k] = 0.0f;
            continue;
        }
        float m = xr[0];
        for (size_t k = 1; k < K; k++)
            if (xr[k] > m) m = xr[k];
        float S = 0.0f;
        for (size_t k = 0; k < K; k++) {
            dr[k] = expf(xr[k] - m);
            S += dr[k];
        }
        loss[r] = logf(S) - (xr[y] - m);
        for (size_t k = 0; k < K; k++) dr[k] = (dr[k] / S - (k == y ? 1.0f : 0.0f)) * scale;
    }
}

dcl_status dcl__cpu_softmax_cross_entropy(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t K = a->p.rows.D;
    dcl__cpu_for(a, a->p.rows.N, dcl__cpu_grain(K), K, softmax_cross_entropy_rows);
    return DCL_OK;
}
