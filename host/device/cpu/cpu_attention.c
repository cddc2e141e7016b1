// The CPU reference's self-attention (include/diffcl/ops.h, dcl_attention_*): blocks of query rows
// (or, in the backward's second pass, of key rows), every sum in the order of cl/attention.cl.
#include <math.h>
#include <stdlib.h>

#include "core/error.h"          // dcl__fail
#include "device/cpu/cpu_impl.h" // struct dcl_op_args
#include "device/cpu/cpu_pool.h" // dcl__cpu_parallel

// Rows are handled B at a time: a block's scores are kept as S[j·B + b] (b the row in the block),
// so the innermost loops run over the block's rows, which gcc vectorises, while each row's sums
// still run over c, then j, in order, exactly as one row at a time (and as the OpenCL kernels).
// Every output is therefore the same whatever block or chunk its row falls in; the partition into
// at most 64 chunks of whole blocks (fewer where their scratch would pass 64 MiB) only spreads
// the work, and is fixed by the sizes anyway.
#define B 16
#define MAX_CHUNKS 64
#define SCRATCH_WORDS ((size_t)16 << 20)

struct attn {
    const struct dcl_op_args *a;
    size_t blocks_per_head, blocks, chunks, d, words; // words: scratch floats per chunk
    float *scratch;
};

static float *fp(dcl_ptr p) { return (float *)p.buf->handle + p.off; }

// The views of one (n, h): q, k, v (rows of R in qkv), dout and out (rows of R in (N, C, R)),
// lse (R), and the gradient's dq, dk, dv.
struct head {
    const float *q, *k, *v, *dout, *out, *lse;
    float *oh, *dq, *dk, *dv;
};

static struct head head_at(const struct attn *t, size_t nh, int backward) {
    const struct dcl_op_args *a = t->a;
    size_t heads = a->p.attn.heads, C = a->p.attn.C, R = a->p.attn.R;
    size_t n = nh / heads, h = nh - n * heads;
    size_t part = (n * 3 * C + h * t->d) * R, o = (n * C + h * t->d) * R;
    struct head w = {0};
    const float *qkv = fp(a->in[backward ? 1 : 0]);
    w.q = qkv + part, w.k = w.q + C * R, w.v = w.k + C * R;
    if (!backward) {
        w.oh = fp(a->out[0]) + o;
        return w;
    }
    w.dout = fp(a->in[0]) + o, w.out = fp(a->in[2]) + o, w.lse = fp(a->in[3]) + nh * R;
    w.dq = fp(a->out[0]) + part, w.dk = w.dq + C * R, w.dv = w.dk + C * R;
    return w;
}

// gcc's loop vectoriser would turn the loops over c and j below into in-order ("fold-left")
// reductions, lane by lane, four times slower than what its basic-block vectoriser makes of the
// fully unrolled loop over b alone: four 4-float multiplies and adds (callgrind: 86 against 20
// instructions per (j, c)). Either way every sum keeps its order, so the results are the same.
#if defined(__GNUC__) && !defined(__clang__)
#define LANES_ONLY __attribute__((optimize("no-tree-loop-vectorize")))
#else
#define LANES_ONLY
#endif

// S[j·B + b] = (Σ_c x[c, i0 + b]·y[c, j])·scale for j < R, b < B, the sum over c in order; rows
// past the block's nb are zero. cols (d·B floats) receives the block's columns of x first, so
// that the loop over b reads contiguous floats: gcc turns it into four 4-float multiplies and
// adds on accumulators that stay in registers over c.
LANES_ONLY static void block_scores(float *restrict S, float *restrict cols,
                                    const float *restrict x, const float *restrict y, size_t i0,
                                    size_t nb, size_t d, size_t R, float scale) {
    for (size_t c = 0; c < d; c++)
        for (size_t b = 0; b < B; b++) cols[c * B + b] = b < nb ? x[c * R + i0 + b] : 0.0f;
    for (size_t j = 0; j < R; j++) {
        float acc[B] = {0};
        for (size_t c = 0; c < d; c++) {
            const float *xc = cols + c * B;
            float yj = y[c * R + j];
            for (size_t b = 0; b < B; b++) acc[b] += xc[b] * yj;
        }
        for (size_t b = 0; b < B; b++) S[j * B + b] = acc[b] * scale;
    }
}

// out[b] = Σ_j W[j·B + b]·y[j] over j < R in order (y one channel's row of R).
LANES_ONLY static void block_reduce(float *restrict out, const float *restrict W,
                                    const float *restrict y, size_t R) {
    float acc[B] = {0};
    for (size_t j = 0; j < R; j++) {
        const float *w = W + j * B;
        float yj = y[j];
        for (size_t b = 0; b < B; b++) acc[b] += w[b] * yj;
    }
    for (size_t b = 0; b < B; b++) out[b] = acc[b];
}

// D[b] = Σ_c dout[c, i0 + b]·out[c, i0 + b] over c in order, b < nb.
static void row_dots(float *D, const struct head *w, size_t i0, size_t nb, size_t d, size_t R) {
    for (size_t b = 0; b < nb; b++) {
        float s = 0.0f;
        for (size_t c = 0; c < d; c++) s += w->dout[c * R + i0 + b] * w->out[c * R + i0 + b];
        D[b] = s;
    }
}

static void forward_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    size_t R = t->a->p.attn.R, d = t->d;
    float scale = t->a->p.attn.scale, *lse = fp(t->a->out[1]);
    float *S = t->scratch + chunk * t->words, *cols = S + R * B;
    size_t lo = chunk * t->blocks / t->chunks, hi = (chunk + 1) * t->blocks / t->chunks;
    for (size_t blk = lo; blk < hi; blk++) {
        size_t nh = blk / t->blocks_per_head, i0 = (blk - nh * t->blocks_per_head) * B;
        size_t nb = R - i0 < B ? R - i0 : B;
        struct head w = head_at(t, nh, 0);
        block_scores(S, cols, w.q, w.k, i0, nb, d, R, scale);
        float m[B], l[B] = {0}, acc[B];
        for (size_t b = 0; b < B; b++) m[b] = S[b];
        for (size_t j = 1; j < R; j++)
            for (size_t b = 0; b < B; b++)
                if (S[j * B + b] > m[b]) m[b] = S[j * B + b];
        for (size_t j = 0; j < R; j++)
            for (size_t b = 0; b < nb; b++) {
                S[j * B + b] = expf(S[j * B + b] - m[b]);
                l[b] += S[j * B + b];
            }
        for (size_t c = 0; c < d; c++) {
            block_reduce(acc, S, w.v + c * R, R);
            for (size_t b = 0; b < nb; b++) w.oh[c * R + i0 + b] = acc[b] / l[b];
        }
        for (size_t b = 0; b < nb; b++) lse[nh * R + i0 + b] = m[b] + logf(l[b]);
    }
}

// The pass over query rows: P[i, :] = exp(S − lse_i), dS = P·(dP − D_i), dq[:, i].
static void backward_query_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    size_t R = t->a->p.attn.R, d = t->d;
    float scale = t->a->p.attn.scale;
    float *P = t->scratch + chunk * t->words, *dS = P + R * B, *cols = dS + R * B;
    size_t lo = chunk * t->blocks / t->chunks, hi = (chunk + 1) * t->blocks / t->chunks;
    for (size_t blk = lo; blk < hi; blk++) {
        size_t nh = blk / t->blocks_per_head, i0 = (blk - nh * t->blocks_per_head) * B;
        size_t nb = R - i0 < B ? R - i0 : B;
        struct head w = head_at(t, nh, 1);
        float D[B] = {0}, L[B] = {0}, acc[B];
        row_dots(D, &w, i0, nb, d, R);
        for (size_t b = 0; b < nb; b++) L[b] = w.lse[i0 + b];
        block_scores(P, cols, w.q, w.k, i0, nb, d, R, scale);
        block_scores(dS, cols, w.dout, w.v, i0, nb, d, R, 1.0f); // dP; × 1 is exact
        for (size_t j = 0; j < R; j++)
            for (size_t b = 0; b < nb; b++) {
                float p = expf(P[j * B + b] - L[b]);
                dS[j * B + b] = p * (dS[j * B + b] - D[b]);
            }
        for (size_t c = 0; c < d; c++) {
            block_reduce(acc, dS, w.k + c * R, R);
            for (size_t b = 0; b < nb; b++) w.dq[c * R + i0 + b] = acc[b] * scale;
        }
    }
}

// The pass over key rows j0 … j0 + B − 1, gathering over every query i: P[i, j] and dS[i, j]
// (D_i of the head computed once per (n, h) the chunk meets), then dk[:, j] and dv[:, j].
static void backward_key_chunk(void *arg, size_t chunk) {
    const struct attn *t = arg;
    size_t R = t->a->p.attn.R, d = t->d;
    float scale = t->a->p.attn.scale;
    float *P = t->scratch + chunk * t->words, *dS = P + R * B, *D = dS + R * B, *cols = D + R;
    size_t lo = chunk * t->blocks / t->chunks, hi = (chunk + 1) * t->blocks / t->chunks;
    size_t cached = (size_t)-1;
    for (size_t blk = lo; blk < hi; blk++) {
        size_t nh = blk / t->blocks_per_head, j0 = (blk - nh * t->blocks_per_head) * B;
        size_t nb = R - j0 < B ? R - j0 : B;
        struct head w = head_at(t, nh, 1);
        if (nh != cached) {
            for (size_t i0 = 0; i0 < R; i0 += B)
                row_dots(D + i0, &w, i0, R - i0 < B ? R - i0 : B, d, R);
            cached = nh;
        }
        float acck[B], accv[B];
        block_scores(P, cols, w.k, w.q, j0, nb, d, R, scale); // S[i, j] as the query pass sums it
        block_scores(dS, cols, w.v, w.dout, j0, nb, d, R, 1.0f);
        for (size_t i = 0; i < R; i++)
            for (size_t b = 0; b < nb; b++) {
                float p = expf(P[i * B + b] - w.lse[i]);
                P[i * B + b] = p;
                dS[i * B + b] = p * (dS[i * B + b] - D[i]);
            }
        for (size_t c = 0; c < d; c++) {
            block_reduce(acck, dS, w.q + c * R, R);
            block_reduce(accv, P, w.dout + c * R, R);
            for (size_t b = 0; b < nb; b++) {
                w.dk[c * R + j0 + b] = acck[b] * scale;
                w.dv[c * R + j0 + b] = accv[b];
            }
        }
    }
}

static dcl_status attention_run(const struct dcl_op_args *a, void (*fn[])(void *, size_t),
                                int passes, size_t arrays) {
    size_t N = a->p.attn.N, heads = a->p.attn.heads, C = a->p.attn.C, R = a->p.attn.R;
    struct attn t = {.a = a, .blocks_per_head = (R + B - 1) / B, .d = C / heads};
    t.blocks = N * heads * t.blocks_per_head;
    if (t.blocks == 0) return DCL_OK;
    t.words = (arrays * B + 1) * R + t.d * B; // arrays of R·B floats, D (R), cols (d·B)
    size_t fit = SCRATCH_WORDS / t.words;
    t.chunks = t.blocks < MAX_CHUNKS ? t.blocks : MAX_CHUNKS;
    if (t.chunks > fit) t.chunks = fit ? fit : 1;
    t.scratch = malloc(t.chunks * t.words * sizeof *t.scratch);
    if (!t.scratch)
        return dcl__fail(DCL_ERR_NOMEM, "op %s: no host memory for %zu floats of scratch",
                         dcl__op_name(a->op), t.chunks * t.words);
    for (int pass = 0; pass < passes; pass++)
        dcl__cpu_parallel(t.chunks, N * heads * R * R * t.d, fn[pass], &t);
    free(t.scratch);
    return DCL_OK;
}

dcl_status dcl__cpu_attention_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    void (*fn[])(void *, size_t) = {forward_chunk};
    return attention_run(a, fn, 1, 1);
}

dcl_status dcl__cpu_attention_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    void (*fn[])(void *, size_t) = {backward_query_chunk, backward_key_chunk};
    return attention_run(a, fn, 2, 2);
}
