// The CPU reference's whole convolutions (conv2d_forward, conv2d_backward): im2col + GEMM one
// sample at a time, so a sample's columns stay in cache between the two (host/README.md,
// "Convolutions on the CPU").
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#ifdef DIFFCL_HAVE_CBLAS
#include <cblas.h>
#endif

#include "core/error.h"          // dcl__fail
#include "device/cpu/cpu_impl.h" // struct dcl_op_args
#include "device/cpu/cpu_pool.h" // dcl__cpu_parallel

static float *fptr(dcl_ptr p) { return (float *)p.buf->handle + p.off; }

// Samples are cut into at most MAX_CHUNKS chunks of equal size (the last one shorter), fewer when
// their scratch would pass SCRATCH_FLOATS (64 MiB; at least one chunk): a number that depends
// only on the sizes. Each chunk has its own columns and, for the weight gradient, its own partial
// sum, combined in chunk order.
#define MAX_CHUNKS ((size_t)16)
#define SCRATCH_FLOATS ((size_t)1 << 24)

struct geom {
    size_t N, C, H, W, k, stride, pad, Ho, Wo, Co;
    size_t kk, ri, ro; // C·k·k, H·W, Ho·Wo
};

static struct geom geom_of(const struct dcl_op_args *a) {
    struct geom g = {.N = a->p.conv.N, .C = a->p.conv.C, .H = a->p.conv.H, .W = a->p.conv.W};
    g.k = a->p.conv.k, g.stride = a->p.conv.stride, g.pad = a->p.conv.pad;
    g.Ho = a->p.conv.Ho, g.Wo = a->p.conv.Wo, g.Co = a->p.conv.Co;
    g.kk = g.C * g.k * g.k, g.ri = g.H * g.W, g.ro = g.Ho * g.Wo;
    return g;
}

// C (M, N) = op(A) op(B) + beta C, row-major, single-threaded (the pool runs one per chunk).
// beta == 0 overwrites C; K == 0 gives beta C (0 when beta == 0).
static void sgemm(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    if (!M || !N) return;
    if (!K) {
        for (size_t i = 0; i < M; i++)
            for (size_t j = 0; j < N; j++)
                C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
#ifdef DIFFCL_HAVE_CBLAS
    // job_init keeps every dimension of a sample's GEMMs below 2^31 (CBLAS's int).
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            float acc = 0.0f; // float, as cpu_backend.c's GEMM without CBLAS
            for (size_t k = 0; k < K; k++)
                acc +=
                    (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
            float *c = &C[i * ldc + j];
            *c = beta == 0.0f ? acc : acc + beta * *c;
        }
#endif
}

// The output columns ox whose input column x = ox·s − pad + kx lies inside [0, W): [*lo, *hi).
static void inside_range(size_t W, size_t Wo, size_t s, size_t pad, size_t kx, size_t *lo,
                         size_t *hi) {
    *lo = pad > kx ? (pad - kx + s - 1) / s : 0;
    *hi = W + pad > kx ? (W + pad - kx + s - 1) / s : 0;
    if (*hi > Wo) *hi = Wo;
    if (*lo > *hi) *lo = *hi;
}

// A "same" convolution (stride 1, Ho = H, Wo = W): the column row of tap (ky, kx) is the input
// plane shifted by d = (ky − pad)·W + (kx − pad), row i of the plane being col row entry i − d,
// except for the rows above or below the plane and the columns [0, lo) and [hi, W) of each row,
// which lie in the padding. So a tap is one contiguous copy (or add) of the rows [y0, y1) that
// lie inside, whose entries in the padding columns are then zeroed.
static int same_conv(const struct geom *g) {
    return g->stride == 1 && g->Ho == g->H && g->Wo == g->W && g->pad < g->k;
}

// A 1×1 convolution of stride 1 without padding: a sample (C, H·W) is its own column matrix, so
// it needs no im2col (and no col2im: its input gradient is the GEMM's result).
static int pointwise(const struct geom *g) {
    return g->k == 1 && g->stride == 1 && g->pad == 0 && g->Ho == g->H && g->Wo == g->W;
}

struct tap {
    size_t y0, y1, lo, hi; // rows [y0, y1) and columns [lo, hi) of the output read the plane
    size_t i0, i1;         // the entries [i0, i1) of the col row the shifted copy covers
    ptrdiff_t d;           // col row entry i reads plane entry i + d
};

static struct tap tap_of(const struct geom *g, size_t ky, size_t kx) {
    struct tap t;
    size_t H = g->H, W = g->W, pad = g->pad;
    inside_range(H, H, 1, pad, ky, &t.y0, &t.y1);
    inside_range(W, W, 1, pad, kx, &t.lo, &t.hi);
    t.d = ((ptrdiff_t)ky - (ptrdiff_t)pad) * (ptrdiff_t)W + (ptrdiff_t)kx - (ptrdiff_t)pad;
    ptrdiff_t i0 = (ptrdiff_t)(t.y0 * W), i1 = (ptrdiff_t)(t.y1 * W), n = (ptrdiff_t)(H * W);
    if (i0 + t.d < 0) i0 = -t.d;
    if (i1 + t.d > n) i1 = n - t.d;
    if (i0 > n) i0 = n;
    if (i1 < i0) i1 = i0;
    t.i0 = (size_t)i0, t.i1 = (size_t)i1;
    return t;
}

// Zeroes the entries of the rows [y0, y1) of a col row that lie in the padding columns.
static void zero_edges(float *row, size_t W, const struct tap *t) {
    for (size_t oy = t->y0; oy < t->y1; oy++) {
        float *r = row + oy * W;
        for (size_t ox = 0; ox < t->lo; ox++) r[ox] = 0.0f;
        for (size_t ox = t->hi; ox < W; ox++) r[ox] = 0.0f;
    }
}

// col (C·k·k, Ho·Wo) of one sample x (C, H, W): dcl_im2col with N = 1.
static void im2col1(const struct geom *g, float *col, const float *x) {
    size_t k = g->k, s = g->stride, pad = g->pad, H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
    if (same_conv(g)) {
        for (size_t ky = 0; ky < k; ky++)
            for (size_t kx = 0; kx < k; kx++) {
                struct tap t = tap_of(g, ky, kx);
                for (size_t c = 0; c < g->C; c++) {
                    float *row = col + ((c * k + ky) * k + kx) * g->ro;
                    const float *plane = x + c * g->ri;
                    memset(row, 0, t.i0 * sizeof *row);
                    memcpy(row + t.i0, plane + ((ptrdiff_t)t.i0 + t.d),
                           (t.i1 - t.i0) * sizeof *row);
                    memset(row + t.i1, 0, (g->ro - t.i1) * sizeof *row);
                    zero_edges(row, W, &t);
                }
            }
        return;
    }
    for (size_t c = 0; c < g->C; c++) {
        const float *plane = x + c * g->ri;
        for (size_t ky = 0; ky < k; ky++)
            for (size_t kx = 0; kx < k; kx++) {
                float *row = col + ((c * k + ky) * k + kx) * g->ro;
                size_t lo, hi;
                inside_range(W, Wo, s, pad, kx, &lo, &hi);
                for (size_t oy = 0; oy < Ho; oy++) {
                    float *dst = row + oy * Wo;
                    size_t y = oy * s + ky; // + pad: the padded row
                    if (y < pad || y - pad >= H) {
                        for (size_t ox = 0; ox < Wo; ox++) dst[ox] = 0.0f;
                        continue;
                    }
                    // Rows are short (Wo of 7 to 28 in the U-Net): inline loops, no memcpy call.
                    const float *src = plane + (y - pad) * W + lo * s + kx - pad;
                    for (size_t ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                    if (s == 1)
                        for (size_t ox = lo; ox < hi; ox++) dst[ox] = src[ox - lo];
                    else
                        for (size_t ox = lo; ox < hi; ox++, src += s) dst[ox] = *src;
                    for (size_t ox = hi; ox < Wo; ox++) dst[ox] = 0.0f;
                }
            }
    }
}

// dx (C, H, W) = col2im of one sample's col: each pixel receives its col entries in (ky, kx)
// order starting from 0, as dcl_col2im. A same convolution adds each tap's shifted rows in one
// contiguous pass after zeroing its padding entries in col (scratch): those land on other
// pixels, and adding +0 leaves a sum that started from +0 unchanged, so the bits are the same.
static void col2im1(const struct geom *g, float *dx, float *col) {
    size_t k = g->k, s = g->stride, pad = g->pad, H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
    if (same_conv(g)) {
        for (size_t c = 0; c < g->C; c++) {
            float *plane = dx + c * g->ri;
            memset(plane, 0, g->ri * sizeof *plane);
            for (size_t ky = 0; ky < k; ky++)
                for (size_t kx = 0; kx < k; kx++) {
                    struct tap t = tap_of(g, ky, kx);
                    float *row = col + ((c * k + ky) * k + kx) * g->ro;
                    zero_edges(row, W, &t);
                    float *restrict dst = plane + ((ptrdiff_t)t.i0 + t.d);
                    const float *restrict src = row + t.i0;
                    for (size_t i = 0, n = t.i1 - t.i0; i < n; i++) dst[i] += src[i];
                }
        }
        return;
    }
    for (size_t c = 0; c < g->C; c++) {
        float *plane = dx + c * g->ri;
        memset(plane, 0, g->ri * sizeof *plane);
        for (size_t ky = 0; ky < k; ky++)
            for (size_t kx = 0; kx < k; kx++) {
                const float *row = col + ((c * k + ky) * k + kx) * g->ro;
                size_t lo, hi;
                inside_range(W, Wo, s, pad, kx, &lo, &hi);
                for (size_t oy = 0; oy < Ho; oy++) {
                    size_t y = oy * s + ky;
                    if (y < pad || y - pad >= H) continue;
                    float *dst = plane + (y - pad) * W + lo * s + kx - pad;
                    const float *src = row + oy * Wo;
                    if (s == 1)
                        for (size_t ox = lo; ox < hi; ox++) dst[ox - lo] += src[ox];
                    else
                        for (size_t ox = lo; ox < hi; ox++, dst += s) *dst += src[ox];
                }
            }
    }
}

// One call's work: the op, its geometry and the chunks' scratch.
struct job {
    const struct dcl_op_args *a;
    struct geom g;
    size_t per_chunk; // samples per chunk
    float *scratch;   // per chunk: col (kk·ro), then tmp (Co·ro) or the partial dw (Co·kk)
    size_t stride;    // floats of scratch per chunk
};

static void forward_chunk(void *arg, size_t chunk) {
    const struct job *j = arg;
    const struct dcl_op_args *a = j->a;
    const struct geom *g = &j->g;
    float *col = j->scratch + chunk * j->stride, *tmp = col + g->kk * g->ro;
    const float *in = fptr(a->in[0]), *w = fptr(a->in[1]);
    const float *bias = a->in_len[2] ? fptr(a->in[2]) : NULL;
    const float *sbias = a->in_len[3] ? fptr(a->in[3]) : NULL;
    const float *res = a->in_len[4] ? fptr(a->in[4]) : NULL;
    float *out = fptr(a->out[0]);
    int has = (bias ? 1 : 0) | (sbias ? 2 : 0) | (res ? 4 : 0);
    size_t n0 = chunk * j->per_chunk, n1 = n0 + j->per_chunk < g->N ? n0 + j->per_chunk : g->N;
    int pw = pointwise(g);
    for (size_t n = n0; n < n1; n++) {
        const float *x = in + n * g->C * g->ri, *cols = pw ? x : col;
        if (!pw) im2col1(g, col, x);
        // tmp (Co, Ho·Wo) = w (Co, C·k·k) · col (C·k·k, Ho·Wo)
        sgemm(0, 0, g->Co, g->ro, g->kk, w, g->kk, cols, g->ro, 0.0f, tmp, g->ro);
        for (size_t c = 0; c < g->Co; c++) {
            size_t nc = n * g->Co + c, R = g->ro;
            float *o = out + nc * R;
            const float *x = tmp + c * R, *y = res ? res + nc * R : NULL;
            float b = bias ? bias[c] : 0.0f, s = sbias ? sbias[nc] : 0.0f;
            dcl__cpu_conv_output_plane(o, x, y, b, s, R, has);
        }
    }
}

static void backward_chunk(void *arg, size_t chunk) {
    const struct job *j = arg;
    const struct dcl_op_args *a = j->a;
    const struct geom *g = &j->g;
    float *col = j->scratch + chunk * j->stride, *dw = col + g->kk * g->ro;
    const float *dout = fptr(a->in[0]), *in = fptr(a->in[1]), *w = fptr(a->in[2]);
    float *din = a->out_len[1] ? fptr(a->out[1]) : NULL;
    size_t n0 = chunk * j->per_chunk, n1 = n0 + j->per_chunk < g->N ? n0 + j->per_chunk : g->N;
    int pw = pointwise(g);
    for (size_t n = n0; n < n1; n++) {
        const float *dy = dout + n * g->Co * g->ro, *x = in + n * g->C * g->ri;
        const float *cols = pw ? x : col;
        if (!pw) im2col1(g, col, x);
        // dw (Co, C·k·k) (+)= dy (Co, Ho·Wo) · colᵀ, the chunk's samples in order
        sgemm(0, 1, g->Co, g->kk, g->ro, dy, g->ro, cols, g->ro, n == n0 ? 0.0f : 1.0f, dw, g->kk);
        if (!din) continue;
        // col (C·k·k, Ho·Wo) = wᵀ · dy, folded back onto the input positions (a pointwise
        // convolution's is din itself)
        float *dx = din + n * g->C * g->ri;
        sgemm(1, 0, g->kk, g->ro, g->Co, w, g->kk, dy, g->ro, 0.0f, pw ? dx : col, g->ro);
        if (!pw) col2im1(g, dx, col);
    }
}

// Sets up the chunks and their scratch (extra floats per chunk after the columns).
static dcl_status job_init(struct job *j, const struct dcl_op_args *a, size_t extra,
                           size_t *n_chunks) {
    j->a = a, j->g = geom_of(a);
    const size_t lim = (size_t)1 << 31; // CBLAS's int
    if (j->g.kk >= lim || j->g.ro >= lim || j->g.Co >= lim)
        return dcl__fail(DCL_ERR_ARG, "op %s: a sample's GEMM (%zu × %zu × %zu) passes 2^31",
                         dcl__op_name(a->op), j->g.Co, j->g.ro, j->g.kk);
    j->stride = (j->g.kk * j->g.ro + extra + 15) & ~(size_t)15;
    size_t N = j->g.N, fit = SCRATCH_FLOATS / j->stride;
    size_t chunks = fit < MAX_CHUNKS ? (fit ? fit : 1) : MAX_CHUNKS;
    if (chunks > N) chunks = N;
    j->per_chunk = chunks ? (N + chunks - 1) / chunks : 1;
    *n_chunks = chunks ? (N + j->per_chunk - 1) / j->per_chunk : 0;
    j->scratch = *n_chunks ? malloc(*n_chunks * j->stride * sizeof(float)) : NULL;
    if (*n_chunks && !j->scratch)
        return dcl__fail(DCL_ERR_NOMEM, "op %s: out of host memory for %zu chunks of columns",
                         dcl__op_name(a->op), *n_chunks);
    return DCL_OK;
}

dcl_status dcl__cpu_conv2d_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    struct job j;
    size_t chunks = 0;
    TRY(job_init(&j, a, a->p.conv.Co * a->p.conv.Ho * a->p.conv.Wo, &chunks));
    size_t work = a->out_len[0] * (j.g.kk ? j.g.kk : 1);
    dcl__cpu_parallel(chunks, work, forward_chunk, &j);
    free(j.scratch);
    return DCL_OK;
}

dcl_status dcl__cpu_conv2d_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    struct job j;
    size_t chunks = 0, nw = a->out_len[0];
    TRY(job_init(&j, a, nw, &chunks));
    size_t work = a->in_len[0] * (j.g.kk ? j.g.kk : 1) * (a->out_len[1] ? 2 : 1);
    dcl__cpu_parallel(chunks, work, backward_chunk, &j);
    // dw += the chunks' partial sums, added together in chunk order first.
    float *dw = fptr(a->out[0]);
    size_t off = j.g.kk * j.g.ro;
    for (size_t i = 0; i < nw && chunks; i++) {
        float acc = j.scratch[off + i];
        for (size_t c = 1; c < chunks; c++) acc += j.scratch[c * j.stride + off + i];
        dw[i] += acc;
    }
    free(j.scratch);
    return DCL_OK;
}
