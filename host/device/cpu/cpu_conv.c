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

// col (C·k·k, Ho·Wo) of one sample x (C, H, W): dcl_im2col with N = 1.
static void im2col1(const struct geom *g, float *col, const float *x) {
    size_t k = g->k, s = g->stride, pad = g->pad, H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
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
// order starting from 0, as dcl_col2im.
static void col2im1(const struct geom *g, float *dx, const float *col) {
    size_t k = g->k, s = g->stride, pad = g->pad, H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
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

// A "same" convolution: stride 1, pad p on each side with 2p = k − 1, so Ho = H and Wo = W. Its
// input, copied once per sample into a zero-bordered plane of Wp = W + 2p columns and Hp = H + 2p
// rows, is read in place by k·k GEMMs, one per tap (ky, kx), with no column matrix: output
// position i = oy·Wp + ox (ox < W; the 2p positions ox ≥ W of each row are computed and dropped)
// reads the padded plane at i + ky·Wp + kx, so tap (ky, kx)'s operand is the padded input
// shifted by that offset, a (C, Np) matrix of row stride Hp·Wp, Np = (H − 1)·Wp + W.
//   forward: y_pw (Co, H·Wp) = Σ_taps wt[tap] (Co, C) · x_pad shifted, taps in (ky, kx) order
//   dw:      dwt[tap] (Co, C) (+)= dy_pad (Co, Np) · (x_pad shifted)ᵀ, dy zero-bordered too, so
//            the dropped positions add 0
//   dx:      dx_pw (C, H·Wp) = Σ_taps wt[flipped tap]ᵀ · dy_pad shifted (the transposed
//            convolution is a same convolution of dy with the flipped kernel), taps in the order
//            that adds each pixel's terms in (ky, kx) order, as col2im
// wt is w (Co, C, k, k) reordered to (k·k, Co, C), once per call. The GEMMs' K is C (or Co), so
// OpenBLAS packs the operands straight from the padded planes, which stay in L1/L2.
// Below TAPS_MIN_C input channels the tap GEMMs are rank-1 or -2 updates (the U-Net's first
// convolution has C = 1): one im2col GEMM of K = C·k·k is then faster (0.33 against 0.99 ms for
// 64 samples 1 → 16 channels at 28×28, 0.62 against 1.12 at C = 2; the taps win from C = 4).
#define TAPS_MIN_C 4

static int same_conv(const struct geom *g) {
    return g->stride == 1 && 2 * g->pad + 1 == g->k && g->Ho == g->H && g->Wo == g->W;
}

// A 1×1 convolution of stride 1 without padding: a sample (C, H·W) is its own column matrix, so
// it needs no im2col (and no col2im: its input gradient is the GEMM's result).
static int pointwise(const struct geom *g) { return same_conv(g) && g->k == 1; }

// One call's work: the op, its geometry and the chunks' scratch.
struct job {
    const struct dcl_op_args *a;
    struct geom g;
    int taps;          // the same-convolution path (not 1×1)
    size_t Wp, Pp, Np; // taps: padded row, padded plane, columns of a tap's GEMM
    size_t per_chunk;  // samples per chunk
    float *wt;         // taps: w as (k·k, Co, C)
    float *scratch;    // per chunk, see job_init
    size_t stride;     // floats of scratch per chunk
    size_t dw_off;     // backward: the chunk's partial dw, at this offset of its scratch
};

// Copies planes (rows × cols, contiguous) into a bordered layout: row r at dst + r·ld.
static void put_rows(float *dst, size_t ld, const float *src, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++) memcpy(dst + r * ld, src + r * cols, cols * sizeof *dst);
}

static void forward_chunk(void *arg, size_t chunk) {
    const struct job *j = arg;
    const struct dcl_op_args *a = j->a;
    const struct geom *g = &j->g;
    float *col = j->scratch + chunk * j->stride;
    float *tmp = col + (j->taps ? g->C * j->Pp : pointwise(g) ? 0 : g->kk * g->ro);
    const float *in = fptr(a->in[0]), *w = fptr(a->in[1]);
    const float *bias = a->in_len[2] ? fptr(a->in[2]) : NULL;
    const float *sbias = a->in_len[3] ? fptr(a->in[3]) : NULL;
    const float *res = a->in_len[4] ? fptr(a->in[4]) : NULL;
    float *out = fptr(a->out[0]);
    int has = (bias ? 1 : 0) | (sbias ? 2 : 0) | (res ? 4 : 0);
    size_t n0 = chunk * j->per_chunk, n1 = n0 + j->per_chunk < g->N ? n0 + j->per_chunk : g->N;
    size_t k = g->k, p = g->pad, Wp = j->Wp, Pp = j->Pp, CC = g->Co * g->C;
    if (j->taps) memset(col, 0, g->C * Pp * sizeof *col); // the borders stay 0
    for (size_t n = n0; n < n1; n++) {
        const float *x = in + n * g->C * g->ri;
        if (j->taps) {
            // tmp (Co, H·Wp) = Σ_taps wt[tap] · x_pad shifted
            for (size_t c = 0; c < g->C; c++)
                put_rows(col + c * Pp + p * Wp + p, Wp, x + c * g->ri, g->H, g->W);
            for (size_t t = 0; t < k * k; t++)
                sgemm(0, 0, g->Co, j->Np, g->C, j->wt + t * CC, g->C, col + t / k * Wp + t % k, Pp,
                      t ? 1.0f : 0.0f, tmp, g->H * Wp);
        } else {
            const float *cols = x;
            if (!pointwise(g)) im2col1(g, col, x), cols = col;
            // tmp (Co, Ho·Wo) = w (Co, C·k·k) · col (C·k·k, Ho·Wo)
            sgemm(0, 0, g->Co, g->ro, g->kk, w, g->kk, cols, g->ro, 0.0f, tmp, g->ro);
        }
        for (size_t c = 0; c < g->Co; c++) {
            size_t nc = n * g->Co + c, R = g->ro;
            float *o = out + nc * R;
            const float *y = res ? res + nc * R : NULL;
            float b = bias ? bias[c] : 0.0f, s = sbias ? sbias[nc] : 0.0f;
            if (j->taps) // the rows of tmp (Co, H·Wp), their first W entries
                dcl__cpu_conv_output_rows(o, tmp + c * g->H * Wp, Wp, y, b, s, g->H, g->W, has);
            else dcl__cpu_conv_output_plane(o, tmp + c * R, y, b, s, R, has);
        }
    }
}

// The taps path of one sample: dwt (k·k, Co, C) (+)= its weight gradient, din_n = its input
// gradient (when din). xp, dyp: the chunk's padded planes (C and Co of them, borders 0); dxt:
// (C, H·Wp).
static void backward_taps(const struct job *j, size_t n, int first, float *xp, float *dyp,
                          float *dxt, float *dwt) {
    const struct dcl_op_args *a = j->a;
    const struct geom *g = &j->g;
    const float *dout = fptr(a->in[0]), *in = fptr(a->in[1]);
    float *din = a->out_len[1] ? fptr(a->out[1]) : NULL;
    size_t k = g->k, p = g->pad, Wp = j->Wp, Pp = j->Pp, Np = j->Np, CC = g->Co * g->C;
    for (size_t c = 0; c < g->C; c++)
        put_rows(xp + c * Pp + p * Wp + p, Wp, in + (n * g->C + c) * g->ri, g->H, g->W);
    for (size_t c = 0; c < g->Co; c++)
        put_rows(dyp + c * Pp + p * Wp + p, Wp, dout + (n * g->Co + c) * g->ro, g->H, g->W);
    const float *dy = dyp + p * Wp + p; // dy (Co, Np) in padded-width positions, 0 between rows
    for (size_t t = 0; t < k * k; t++)
        sgemm(0, 1, g->Co, g->C, Np, dy, Pp, xp + t / k * Wp + t % k, Pp, first ? 0.0f : 1.0f,
              dwt + t * CC, g->C);
    if (!din) return;
    // dx_pw = Σ over taps t' of wt[k·k − 1 − t']ᵀ · dy_pad shifted by t', t' from the last, so
    // that a pixel's terms come in the (ky, kx) order of the kernel taps.
    for (size_t u = 0; u < k * k; u++) {
        size_t t = k * k - 1 - u; // the shift t' = (ky', kx'), the kernel tap u = flipped t'
        sgemm(1, 0, g->C, Np, g->Co, j->wt + u * CC, g->C, dyp + t / k * Wp + t % k, Pp,
              u ? 1.0f : 0.0f, dxt, g->H * Wp);
    }
    float *dx = din + n * g->C * g->ri;
    for (size_t c = 0; c < g->C; c++)
        for (size_t y = 0; y < g->H; y++)
            memcpy(dx + c * g->ri + y * g->W, dxt + (c * g->H + y) * Wp, g->W * sizeof *dx);
}

static void backward_chunk(void *arg, size_t chunk) {
    const struct job *j = arg;
    const struct dcl_op_args *a = j->a;
    const struct geom *g = &j->g;
    float *col = j->scratch + chunk * j->stride, *dw = col + j->dw_off;
    const float *dout = fptr(a->in[0]), *in = fptr(a->in[1]), *w = fptr(a->in[2]);
    float *din = a->out_len[1] ? fptr(a->out[1]) : NULL;
    size_t n0 = chunk * j->per_chunk, n1 = n0 + j->per_chunk < g->N ? n0 + j->per_chunk : g->N;
    if (j->taps) {
        float *xp = col, *dyp = xp + g->C * j->Pp, *dxt = dyp + g->Co * j->Pp;
        memset(col, 0, (g->C + g->Co) * j->Pp * sizeof *col); // the borders stay 0
        for (size_t n = n0; n < n1; n++) backward_taps(j, n, n == n0, xp, dyp, dxt, dw);
        return;
    }
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

// Sets up the chunks, their scratch and (taps) wt. Per chunk: the taps path's padded planes (C,
// and Co for the backward) and its (Co or C, H·Wp) output, or im2col's columns (none when 1×1)
// and (Co, ro); then, backward, the partial dw (Co·kk floats).
static dcl_status job_init(struct job *j, const struct dcl_op_args *a, int backward,
                           size_t *n_chunks) {
    *j = (struct job){.a = a, .g = geom_of(a)};
    const struct geom *g = &j->g;
    const size_t lim = (size_t)1 << 31; // CBLAS's int
    j->taps = same_conv(g) && g->k > 1 && g->C >= TAPS_MIN_C && g->H && g->W;
    j->Wp = g->W + 2 * g->pad, j->Pp = (g->H + 2 * g->pad) * j->Wp;
    j->Np = j->taps ? (g->H - 1) * j->Wp + g->W : 0;
    if (g->kk >= lim || g->ro >= lim || g->Co >= lim || j->Pp >= lim)
        return dcl__fail(DCL_ERR_ARG, "op %s: a sample's GEMM (%zu × %zu × %zu) passes 2^31",
                         dcl__op_name(a->op), g->Co, g->ro, g->kk);
    size_t floats;
    if (j->taps)
        floats = (backward ? (g->C + g->Co) * j->Pp + g->C * g->H * j->Wp
                           : g->C * j->Pp + g->Co * g->H * j->Wp);
    else floats = (pointwise(g) ? 0 : g->kk * g->ro) + (backward ? 0 : g->Co * g->ro);
    j->dw_off = floats;
    if (backward) floats += g->Co * g->kk;
    j->stride = (floats + 15) & ~(size_t)15;
    size_t N = g->N, fit = SCRATCH_FLOATS / j->stride;
    size_t chunks = fit < MAX_CHUNKS ? (fit ? fit : 1) : MAX_CHUNKS;
    if (chunks > N) chunks = N;
    j->per_chunk = chunks ? (N + chunks - 1) / chunks : 1;
    *n_chunks = chunks ? (N + j->per_chunk - 1) / j->per_chunk : 0;
    size_t nwt = j->taps ? g->Co * g->kk : 0;
    j->scratch = *n_chunks ? malloc((*n_chunks * j->stride + nwt) * sizeof(float)) : NULL;
    if (*n_chunks && !j->scratch)
        return dcl__fail(DCL_ERR_NOMEM, "op %s: out of host memory for %zu chunks of columns",
                         dcl__op_name(a->op), *n_chunks);
    if (nwt) {
        const float *w = fptr(a->in[a->op == DCL_OP_CONV2D_FORWARD ? 1 : 2]);
        size_t kk2 = g->k * g->k;
        j->wt = j->scratch + *n_chunks * j->stride;
        for (size_t co = 0; co < g->Co; co++)
            for (size_t c = 0; c < g->C; c++)
                for (size_t t = 0; t < kk2; t++)
                    j->wt[(t * g->Co + co) * g->C + c] = w[(co * g->C + c) * kk2 + t];
    }
    return DCL_OK;
}

dcl_status dcl__cpu_conv2d_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    struct job j;
    size_t chunks = 0;
    TRY(job_init(&j, a, 0, &chunks));
    size_t work = a->out_len[0] * (j.g.kk ? j.g.kk : 1);
    dcl__cpu_parallel(chunks, work, forward_chunk, &j);
    free(j.scratch);
    return DCL_OK;
}

dcl_status dcl__cpu_conv2d_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    struct job j;
    size_t chunks = 0, nw = a->out_len[0];
    TRY(job_init(&j, a, 1, &chunks));
    size_t work = a->in_len[0] * (j.g.kk ? j.g.kk : 1) * (a->out_len[1] ? 2 : 1);
    dcl__cpu_parallel(chunks, work, backward_chunk, &j);
    // dw += the chunks' partial sums, added together in chunk order first (into chunk 0's, one
    // chunk at a time, which reads each partial once in order); the taps path keeps them as
    // (k·k, Co, C).
    float *dw = fptr(a->out[0]), *sum = j.scratch + j.dw_off;
    for (size_t ch = 1; ch < chunks; ch++) {
        const float *part = sum + ch * j.stride;
        for (size_t i = 0; i < nw; i++) sum[i] += part[i];
    }
    size_t kk2 = j.g.k * j.g.k, C = j.g.C, Co = j.g.Co;
    if (chunks && j.taps)
        for (size_t co = 0, i = 0; co < Co; co++)
            for (size_t c = 0; c < C; c++)
                for (size_t t = 0; t < kk2; t++, i++) dw[i] += sum[(t * Co + co) * C + c];
    else if (chunks)
        for (size_t i = 0; i < nw; i++) dw[i] += sum[i];
    free(j.scratch);
    return DCL_OK;
}
