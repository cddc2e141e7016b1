// The CPU reference's self-attention (include/diffcl/ops.h, dcl_attention_*): one query row (or,
// in the backward's second pass, one key row) at a time, every sum in the order of cl/attention.cl.
#include <math.h>
#include <stdlib.h>

#include "core/error.h"          // dcl__fail
#include "device/cpu/cpu_impl.h" // struct dcl_op_args
#include "device/cpu/cpu_pool.h" // dcl__cpu_parallel

// Each output row is computed by the same loops whatever chunk it falls in, so the partition only
// spreads the work; it is still fixed by the sizes: at most 64 chunks, fewer where their scratch
// (3·R floats each) would pass 64 MiB.
#define MAX_CHUNKS 64
#define SCRATCH_WORDS ((size_t)16 << 20)

struct attn {
    const struct dcl_op_args *a;
    size_t rows, chunks, d;
    float *scratch; // 3·R floats per chunk
};

static float *fp(dcl_ptr p) { return (float *)p.buf->handle + p.off; }

// The head's part of a (N, 3C, R) tensor: channel h·d of part `part` (0 q, 1 k, 2 v) of sample n.
static size_t part_off(const struct attn *t, size_t n, size_t h, int part) {
    size_t C = t->a->p.attn.C, R = t->a->p.attn.R;
    return (n * 3 * C + (size_t)part * C + h * t->d) * R;
}

// s[j] = (Σ_c x[c, i]·y[c, j])·scale for j < R, c < d, the sum over c in order. x, y rows of R.
static void scores(float *s, const float *x, const float *y, size_t i, size_t d, size_t R,
                   float scale) {
    for (size_t j = 0; j < R; j++) s[j] = 0.0f;
    for (size_t c = 0; c < d; c++) {
        float xc = x[c * R + i];
        const float *yc = y + c * R;
        for (size_t j = 0; j < R; j++) s[j] += xc * yc[j];
    }
    for (size_t j = 0; j < R; j++) s[j] *= scale;
}

// Rows [lo, hi) of one chunk; a row is r = (n·heads + h)·R + i.
static void forward_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    const struct dcl_op_args *a = t->a;
    size_t heads = a->p.attn.heads, C = a->p.attn.C, R = a->p.attn.R, d = t->d;
    float scale = a->p.attn.scale;
    float *out = fp(a->out[0]), *lse = fp(a->out[1]);
    const float *qkv = fp(a->in[0]);
    float *e = t->scratch + chunk * 3 * R;
    size_t lo = chunk * t->rows / t->chunks, hi = (chunk + 1) * t->rows / t->chunks;
    for (size_t r = lo; r < hi; r++) {
        size_t nh = r / R, i = r - nh * R, n = nh / heads, h = nh - n * heads;
        const float *q = qkv + part_off(t, n, h, 0), *k = qkv + part_off(t, n, h, 1);
        const float *v = qkv + part_off(t, n, h, 2);
        scores(e, q, k, i, d, R, scale);
        float m = e[0];
        for (size_t j = 1; j < R; j++)
            if (e[j] > m) m = e[j];
        float l = 0.0f;
        for (size_t j = 0; j < R; j++) {
            e[j] = expf(e[j] - m);
            l += e[j];
        }
        float *o = out + (n * C + h * d) * R + i;
        for (size_t c = 0; c < d; c++) {
            const float *vc = v + c * R;
            float acc = 0.0f;
            for (size_t j = 0; j < R; j++) acc += e[j] * vc[j];
            o[c * R] = acc / l;
        }
        lse[r] = m + logf(l);
    }
}

// D_i = Σ_c dout[c, i]·out[c, i], c in order. dout, out: the head's rows of R.
static float row_dot(const float *dout, const float *out, size_t i, size_t d, size_t R) {
    float D = 0.0f;
    for (size_t c = 0; c < d; c++) D += dout[c * R + i] * out[c * R + i];
    return D;
}

struct heads_views {
    const float *q, *k, *v, *dout, *out, *lse;
    float *dq, *dk, *dv;
};

static struct heads_views views(const struct attn *t, size_t n, size_t h) {
    const struct dcl_op_args *a = t->a;
    size_t C = a->p.attn.C, R = a->p.attn.R;
    const float *qkv = fp(a->in[1]);
    float *dqkv = fp(a->out[0]);
    size_t o = (n * C + h * t->d) * R;
    return (struct heads_views){
        .q = qkv + part_off(t, n, h, 0),
        .k = qkv + part_off(t, n, h, 1),
        .v = qkv + part_off(t, n, h, 2),
        .dout = fp(a->in[0]) + o,
        .out = fp(a->in[2]) + o,
        .lse = fp(a->in[3]) + (n * a->p.attn.heads + h) * R,
        .dq = dqkv + part_off(t, n, h, 0),
        .dk = dqkv + part_off(t, n, h, 1),
        .dv = dqkv + part_off(t, n, h, 2),
    };
}

// The pass over query rows: P[i, :] from lse, dS[i, :] and dq[:, i].
static void backward_query_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    const struct dcl_op_args *a = t->a;
    size_t heads = a->p.attn.heads, R = a->p.attn.R, d = t->d;
    float scale = a->p.attn.scale;
    float *p = t->scratch + chunk * 3 * R, *dp = p + R;
    size_t lo = chunk * t->rows / t->chunks, hi = (chunk + 1) * t->rows / t->chunks;
    for (size_t r = lo; r < hi; r++) {
        size_t nh = r / R, i = r - nh * R, n = nh / heads, h = nh - n * heads;
        struct heads_views w = views(t, n, h);
        scores(p, w.q, w.k, i, d, R, scale);
        float L = w.lse[i];
        for (size_t j = 0; j < R; j++) p[j] = expf(p[j] - L);
        float D = row_dot(w.dout, w.out, i, d, R);
        scores(dp, w.dout, w.v, i, d, R, 1.0f); // dP[i, j]; × 1 is exact
        for (size_t j = 0; j < R; j++) dp[j] = p[j] * (dp[j] - D);
        for (size_t c = 0; c < d; c++) {
            const float *kc = w.k + c * R;
            float acc = 0.0f;
            for (size_t j = 0; j < R; j++) acc += dp[j] * kc[j];
            w.dq[c * R + i] = acc * scale;
        }
    }
}

// The pass over key rows: P[:, j] and dS[:, j] (D_i of the head cached once per (n, h) the chunk
// meets), then dk[:, j] and dv[:, j].
static void backward_key_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    const struct dcl_op_args *a = t->a;
    size_t heads = a->p.attn.heads, R = a->p.attn.R, d = t->d;
    float scale = a->p.attn.scale;
    float *p = t->scratch + chunk * 3 * R, *dp = p + R, *D = dp + R;
    size_t lo = chunk * t->rows / t->chunks, hi = (chunk + 1) * t->rows / t->chunks;
    size_t cached = (size_t)-1;
    for (size_t r = lo; r < hi; r++) {
        size_t nh = r / R, j = r - nh * R, n = nh / heads, h = nh - n * heads;
        struct heads_views w = views(t, n, h);
        if (nh != cached) {
            for (size_t i = 0; i < R; i++) D[i] = row_dot(w.dout, w.out, i, d, R);
            cached = nh;
        }
        scores(p, w.k, w.q, j, d, R, scale); // S[i, j] for every i, the same sums as by rows
        for (size_t i = 0; i < R; i++) p[i] = expf(p[i] - w.lse[i]);
        scores(dp, w.v, w.dout, j, d, R, 1.0f); // dP[i, j]
        for (size_t i = 0; i < R; i++) dp[i] = p[i] * (dp[i] - D[i]);
        for (size_t c = 0; c < d; c++) {
            const float *qc = w.q + c * R, *gc = w.dout + c * R;
            float acck = 0.0f, accv = 0.0f;
            for (size_t i = 0; i < R; i++) {
                acck += dp[i] * qc[i];
                accv += p[i] * gc[i];
            }
            w.dk[c * R + j] = acck * scale;
            w.dv[c * R + j] = accv;
        }
    }
}

static dcl_status attention_run(const struct dcl_op_args *a, void (*fn[])(void *, size_t),
                                int passes) {
    size_t N = a->p.attn.N, heads = a->p.attn.heads, C = a->p.attn.C, R = a->p.attn.R;
    struct attn t = {.a = a, .rows = N * heads * R, .d = C / heads};
    if (t.rows == 0) return DCL_OK;
    size_t fit = SCRATCH_WORDS / (3 * R);
    t.chunks = t.rows < MAX_CHUNKS ? t.rows : MAX_CHUNKS;
    if (t.chunks > fit) t.chunks = fit ? fit : 1;
    t.scratch = malloc(t.chunks * 3 * R * sizeof *t.scratch);
    if (!t.scratch)
        return dcl__fail(DCL_ERR_NOMEM, "op %s: no host memory for %zu rows of scratch",
                         dcl__op_name(a->op), t.chunks * 3);
    for (int pass = 0; pass < passes; pass++)
        dcl__cpu_parallel(t.chunks, t.rows * R * t.d, fn[pass], &t);
    free(t.scratch);
    return DCL_OK;
}

dcl_status dcl__cpu_attention_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    void (*fn[])(void *, size_t) = {forward_chunk};
    return attention_run(a, fn, 1);
}

dcl_status dcl__cpu_attention_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    void (*fn[])(void *, size_t) = {backward_query_chunk, backward_key_chunk};
    return attention_run(a, fn, 2);
}
