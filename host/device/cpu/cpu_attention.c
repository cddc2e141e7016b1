// The CPU reference's self-attention (include/diffcl/ops.h, dcl_attention_*): per head, blocks of
// query rows whose scores are GEMMs (CBLAS when found, plain loops otherwise) and a softmax pass.
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef DIFFCL_HAVE_CBLAS
#include <cblas.h>
#endif

#include "core/error.h"          // dcl__fail
#include "device/cpu/cpu_impl.h" // struct dcl_op_args
#include "device/cpu/cpu_pool.h" // dcl__cpu_parallel

// The method. A head's queries are taken qb rows at a time (qb from R alone: about QBLOCK_FLOATS
// scores, a multiple of 16, so that a block's scores stay in the core's L2 cache). Everything a
// block needs is a few single-threaded GEMMs (one CBLAS call each, as host/device/cpu/cpu_conv.c
// makes them) around one pass over its scores S (qb, R), row-major:
//   forward:  S = Q_bᵀK·scale; P = exp(S − m) row by row, l = Σ_j P; out_b = V·P_bᵀ / l;
//             lse = m + log l.
//   backward: S and dP = G_bᵀV (G = dout); P = exp(S − lse), D_i = Σ_j P_ij·dP_ij and
//             dS = P·(dP − D) in place; dq_b = K·dS_bᵀ·scale; dk += Q_b·dS_b·scale and
//             dv += G_b·P_b over the head's query blocks in order (β = 1 after the first).
// D is Σ_c G[c, i]·out[c, i] in cl/attention.cl, the same value; taken from the very P and dP it
// is subtracted from, a row's dS sums to 0 up to rounding, and at R = 1 (P = 1) exactly, so that
// dq = dk = 0 there. Each score and weight is computed once per op: 2·R²·d multiply-adds forward,
// 5·R²·d backward (a second pass over key rows, as the kernels make, would recompute S and dP),
// and no R × R array is kept. exp is a polynomial (exp_le88) whose loops vectorise, and the
// passes over S are also built for AVX2 and AVX-512 (ROW_CLONES).
// The forward's work items are (head, query block), the backward's whole heads (its dk and dv sum
// over every query block in order); at most MAX_CHUNKS chunks of consecutive items, a number
// fixed by the sizes. A call's shapes depend only on the sizes and its block, never on the chunk
// or thread, so every output is the same bits on any number of threads (OpenBLAS computes a call
// alone, pinned to one thread by cpu_pool.c). The sums are not cl/attention.cl's order (the GEMMs
// block them and use FMA), so the two agree within the check's tolerances, not bitwise.
// Measured (N = 32, one head, 2 threads, loaded machine): R = 256, d = 16 forward 16.9 → 3.2 ms,
// backward 49.9 → 12.0 ms against the former sixteen-rows-at-a-time loops in the kernels' order.
#define QBLOCK_FLOATS ((size_t)1 << 14)
#define MAX_CHUNKS 64
#define SCRATCH_WORDS ((size_t)16 << 20)

// Lanes of the row reductions (max and sum): eight partial results, combined in a fixed order.
#define LANES 8

struct attn {
    const struct dcl_op_args *a;
    size_t R, d, qb, qblocks, items, chunks, words; // words: scratch floats per chunk
    float *scratch;
};

static float *fp(dcl_ptr p) { return (float *)p.buf->handle + p.off; }

// The views of one (n, h): q, k, v (rows of R in qkv), dout (rows of R in (N, C, R)), lse (R),
// and the forward's out or the gradient's dq, dk, dv. (The backward does not read the forward's
// out: its D comes from P and dP, see the top of the file.)
struct head {
    const float *q, *k, *v, *dout, *lse;
    float *oh, *dq, *dk, *dv;
};

static struct head head_at(const struct attn *t, size_t nh, int backward) {
    const struct dcl_op_args *a = t->a;
    size_t heads = a->p.attn.heads, C = a->p.attn.C, R = t->R;
    size_t n = nh / heads, h = nh - n * heads;
    size_t part = (n * 3 * C + h * t->d) * R, o = (n * C + h * t->d) * R;
    struct head w = {0};
    const float *qkv = fp(a->in[backward ? 1 : 0]);
    w.q = qkv + part, w.k = w.q + C * R, w.v = w.k + C * R;
    if (!backward) {
        w.oh = fp(a->out[0]) + o;
        return w;
    }
    w.dout = fp(a->in[0]) + o, w.lse = fp(a->in[3]) + nh * R;
    w.dq = fp(a->out[0]) + part, w.dk = w.dq + C * R, w.dv = w.dk + C * R;
    return w;
}

// C (M, N) = alpha op(A) op(B) + beta C, row-major, single-threaded; K >= 1. Without CBLAS: plain
// loops, each element's sum over k in order, with op(B) copied to tmp (K·N + N floats) first when
// transposed, so that the inner loop runs over contiguous floats of a row of C.
static void sgemm(int ta, int tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                  size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc,
                  float *tmp) {
#ifdef DIFFCL_HAVE_CBLAS
    (void)tmp; // attention_run keeps every size below 2^31 (CBLAS's int)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
    float *acc = tmp;
    if (tb) {
        float *bt = tmp + N;
        for (size_t j = 0; j < N; j++)
            for (size_t k = 0; k < K; k++) bt[k * N + j] = B[j * ldb + k];
        B = bt, ldb = N;
    }
    for (size_t i = 0; i < M; i++) {
        for (size_t j = 0; j < N; j++) acc[j] = 0.0f;
        for (size_t k = 0; k < K; k++) {
            float x = ta ? A[k * lda + i] : A[i * lda + k];
            const float *b = B + k * ldb;
            for (size_t j = 0; j < N; j++) acc[j] += x * b[j];
        }
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (size_t j = 0; j < N; j++) c[j] = alpha * acc[j];
        else
            for (size_t j = 0; j < N; j++) c[j] = alpha * acc[j] + beta * c[j];
    }
#endif
}

// e^x for x <= 88, without a libm call, so that the loops below vectorise (expf was one call per
// score). The Cephes expf scheme, as sigmoidf in cpu_backend.c: x = n ln 2 + r, |r| <= ln 2 / 2,
// e^r by its minimax polynomial (relative error about 1e-7), 2^n put into the exponent bits. n is
// rounded by adding 1.5·2^23, whose low bits then hold it, so no float is converted to an int
// (NaN stays NaN through p). Below −87.3 (where e^x is no longer a normal float) the result is 0.
static inline float exp_le88(float x) {
    float a = x < -87.3f ? -87.3f : x;
    union {
        float f;
        uint32_t u;
    } t = {.f = a * 1.44269504088896341f + 12582912.0f};
    float n = t.f - 12582912.0f;
    float r = a - n * 0.693359375f - n * -2.12194440e-4f; // ln 2 in two parts: r exact
    float p = dcl__cpu_exp_reduced(r);
    union {
        uint32_t u;
        float f;
    } two_n = {.u = (t.u - 0x4b400000u + 127u) << 23};
    float e = p * two_n.f;
    return x < -87.3f ? 0.0f : e;
}

// row[j] = e^(row[j] − m), m = max_j row[j]; returns m and sets *l = Σ_j e^(row[j] − m), both in
// lanes of LANES columns combined in a fixed order.
static inline float softmax_row(float *row, size_t R, float *l) {
    float mx[LANES], acc[LANES];
    for (size_t k = 0; k < LANES; k++) mx[k] = row[0], acc[k] = 0.0f;
    size_t j = 0;
    for (; j + LANES <= R; j += LANES)
        for (size_t k = 0; k < LANES; k++) mx[k] = row[j + k] > mx[k] ? row[j + k] : mx[k];
    for (size_t k = 0; j + k < R; k++) mx[k] = row[j + k] > mx[k] ? row[j + k] : mx[k];
    float m = mx[0];
    for (size_t k = 1; k < LANES; k++) m = mx[k] > m ? mx[k] : m;
    for (j = 0; j < R; j++) row[j] = exp_le88(row[j] - m);
    for (j = 0; j + LANES <= R; j += LANES)
        for (size_t k = 0; k < LANES; k++) acc[k] += row[j + k];
    for (size_t k = 0; j + k < R; k++) acc[k] += row[j + k];
    *l = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    return m;
}

// Σ_j x[j]·y[j] in lanes of LANES columns combined in a fixed order.
static inline float dot_lanes(const float *x, const float *y, size_t R) {
    float acc[LANES] = {0};
    size_t j = 0;
    for (; j + LANES <= R; j += LANES)
        for (size_t k = 0; k < LANES; k++) acc[k] += x[j + k] * y[j + k];
    for (size_t k = 0; j + k < R; k++) acc[k] += x[j + k] * y[j + k];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// The passes over a block's scores, most of the time that is not GEMM. On x86-64 Linux, gcc also
// builds them for AVX2 and AVX-512 and picks one when the library loads (target_clones): the same
// float operations lane by lane (ISO C: no contraction into FMA), so the same bits on any of them.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define ROW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ROW_CLONES
#endif

// S (nb, R) → P = e^(S − m) row by row; l (nb) the rows' sums, lse (nb) = m + log l.
ROW_CLONES static void softmax_rows(float *S, size_t nb, size_t R, float *l, float *lse) {
    for (size_t b = 0; b < nb; b++) {
        float m = softmax_row(S + b * R, R, &l[b]);
        lse[b] = m + logf(l[b]);
    }
}

// P (nb, R) holds S, dS (nb, R) dP: P = e^(S − lse) and dS = P·(dP − D), D = Σ_j P·dP, in place.
ROW_CLONES static void grad_rows(float *P, float *dS, size_t nb, size_t R, const float *lse) {
    for (size_t b = 0; b < nb; b++) {
        float *p = P + b * R, *ds = dS + b * R, L = lse[b];
        for (size_t j = 0; j < R; j++) p[j] = exp_le88(p[j] - L);
        float D = dot_lanes(p, ds, R);
        for (size_t j = 0; j < R; j++) ds[j] = p[j] * (ds[j] - D);
    }
}

static void forward_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    size_t R = t->R, d = t->d, qb = t->qb;
    float scale = t->a->p.attn.scale, *lse = fp(t->a->out[1]);
    float *S = t->scratch + chunk * t->words, *l = S + qb * R, *tmp = l + qb;
    size_t lo = chunk * t->items / t->chunks, hi = (chunk + 1) * t->items / t->chunks;
    for (size_t it = lo; it < hi; it++) {
        size_t nh = it / t->qblocks, i0 = (it - nh * t->qblocks) * qb;
        size_t nb = R - i0 < qb ? R - i0 : qb;
        struct head w = head_at(t, nh, 0);
        sgemm(1, 0, nb, R, d, scale, w.q + i0, R, w.k, R, 0.0f, S, R, tmp);
        softmax_rows(S, nb, R, l, lse + nh * R + i0);
        sgemm(0, 1, d, nb, R, 1.0f, w.v, R, S, R, 0.0f, w.oh + i0, R, tmp);
        for (size_t c = 0; c < d; c++)
            for (size_t b = 0; b < nb; b++) w.oh[c * R + i0 + b] /= l[b];
    }
}

static void backward_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    size_t R = t->R, d = t->d, qb = t->qb;
    float scale = t->a->p.attn.scale;
    float *P = t->scratch + chunk * t->words, *dS = P + qb * R, *tmp = dS + qb * R;
    size_t heads = t->items / t->qblocks;
    size_t lo = chunk * heads / t->chunks, hi = (chunk + 1) * heads / t->chunks;
    for (size_t nh = lo; nh < hi; nh++) {
        struct head w = head_at(t, nh, 1);
        for (size_t i0 = 0; i0 < R; i0 += qb) {
            size_t nb = R - i0 < qb ? R - i0 : qb;
            sgemm(1, 0, nb, R, d, scale, w.q + i0, R, w.k, R, 0.0f, P, R, tmp);
            sgemm(1, 0, nb, R, d, 1.0f, w.dout + i0, R, w.v, R, 0.0f, dS, R, tmp);
            grad_rows(P, dS, nb, R, w.lse + i0);
            float beta = i0 ? 1.0f : 0.0f;
            sgemm(0, 1, d, nb, R, scale, w.k, R, dS, R, 0.0f, w.dq + i0, R, tmp);
            sgemm(0, 0, d, R, nb, scale, w.q + i0, R, dS, R, beta, w.dk, R, tmp);
            sgemm(0, 0, d, R, nb, 1.0f, w.dout + i0, R, P, R, beta, w.dv, R, tmp);
        }
    }
}

// Rows of a query block: about QBLOCK_FLOATS scores, a multiple of 16, at least 16, at most R.
static size_t query_rows(size_t R) {
    size_t qb = QBLOCK_FLOATS / R / 16 * 16;
    if (qb < 16) qb = 16;
    return qb < R ? qb : R;
}

static dcl_status attention_run(const struct dcl_op_args *a, int backward) {
    size_t N = a->p.attn.N, heads = a->p.attn.heads, C = a->p.attn.C, R = a->p.attn.R;
    struct attn t = {.a = a, .R = R, .d = C / heads};
    if (N * heads * R == 0) return DCL_OK;
    t.qb = query_rows(R);
    t.qblocks = (R + t.qb - 1) / t.qb;
    t.items = N * heads * t.qblocks;
#ifdef DIFFCL_HAVE_CBLAS
    if (R > INT_MAX)
        return dcl__fail(DCL_ERR_ARG, "op %s: %zu positions are more than CBLAS can index (%d)",
                         dcl__op_name(a->op), R, INT_MAX);
    size_t tmp = 0;
#else
    size_t tmp = (t.qb + 1) * R; // sgemm's op(B) and its row of sums
#endif
    t.words = (backward ? 2 * t.qb * R : t.qb * R + t.qb) + tmp;
    size_t units = backward ? N * heads : t.items, fit = SCRATCH_WORDS / t.words;
    t.chunks = units < MAX_CHUNKS ? units : MAX_CHUNKS;
    if (t.chunks > fit) t.chunks = fit ? fit : 1;
    t.scratch = malloc(t.chunks * t.words * sizeof *t.scratch);
    if (!t.scratch)
        return dcl__fail(DCL_ERR_NOMEM, "op %s: no host memory for %zu floats of scratch",
                         dcl__op_name(a->op), t.chunks * t.words);
    dcl__cpu_parallel(t.chunks, N * heads * R * R * t.d, backward ? backward_chunk : forward_chunk,
                      &t);
    free(t.scratch);
    return DCL_OK;
}

dcl_status dcl__cpu_attention_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    return attention_run(a, 0);
}

dcl_status dcl__cpu_attention_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    return attention_run(a, 1);
}
