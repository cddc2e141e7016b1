// The CPU reference backend: host-memory buffers and plain-C loops for every op, run in fixed
// chunks on the thread pool (cpu_pool.c). Every OpenCL result is checked against these, so they
// favour clarity (and, in reductions, precision) over speed.
#define _POSIX_C_SOURCE 200809L // sysconf
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DIFFCL_HAVE_CBLAS
#include <cblas.h>
#endif

#include "core/error.h"
#include "device/backend.h"      // struct dcl_backend_i, struct dcl_op_args, DCL_OP_MAP
#include "device/cpu/cpu_pool.h" // dcl__cpu_parallel, DCL_CPU_CHUNK
#include "diffcl/rng.h"          // dcl_rng_bits_at, dcl_rng_uniform_at, dcl_rng_normal_at
#include "diffcl/version.h"      // DIFFCL_VERSION_STRING: the CPU reference's driver version

#include "device/cpu/cpu_impl.h" // the ops of other files: cpu_conv_output (cpu_fused.c)

// Ops reach memory only through p.buf->handle, never through p.buf->dev: the dispatcher also runs
// them on host-wrapping buffers (dev == NULL) for the CPU fallback.
static float *fptr(dcl_ptr p) { return (float *)p.buf->handle + p.off; }
static uint32_t *uptr(dcl_ptr p) { return (uint32_t *)p.buf->handle + p.off; }

// ---- buffers ----------------------------------------------------------------------------------

static dcl_status cpu_buffer_alloc(void *ctx, dcl_buffer *buf) {
    (void)ctx;
    if (buf->n > SIZE_MAX / 4 - 64)
        return dcl__fail(DCL_ERR_NOMEM, "tensor '%s': %zu elements do not fit in host memory",
                         buf->name, buf->n);
    // aligned_alloc wants a size that is a multiple of the alignment.
    size_t bytes = (buf->n * 4 + 63) / 64 * 64;
    if (bytes == 0) bytes = 64;
    buf->handle = aligned_alloc(64, bytes);
    if (!buf->handle)
        return dcl__fail(DCL_ERR_NOMEM, "out of host memory for tensor '%s' (%.1f MiB)", buf->name,
                         (double)bytes / (1024.0 * 1024.0));
    return DCL_OK;
}

static void cpu_buffer_free(void *ctx, dcl_buffer *buf) {
    (void)ctx;
    free(buf->handle);
    buf->handle = NULL;
}

static dcl_status cpu_buffer_write(void *ctx, dcl_buffer *buf, size_t off, size_t n,
                                   const void *src) {
    (void)ctx;
    memcpy((float *)buf->handle + off, src, n * 4);
    return DCL_OK;
}

static dcl_status cpu_buffer_read(void *ctx, const dcl_buffer *buf, size_t off, size_t n,
                                  void *dst) {
    (void)ctx;
    memcpy(dst, (const float *)buf->handle + off, n * 4);
    return DCL_OK;
}

// Each open CPU device holds the thread pool (device.c acquires it when it opens one).
static void cpu_free(void *ctx) {
    (void)ctx;
    dcl__cpu_pool_release();
}

// ---- chunked loops -----------------------------------------------------------------------------

// Every op below cuts its work into chunks that depend on its sizes only (DCL_CPU_CHUNK elements,
// a number of rows, planes or channels derived from the shape) and computes each chunk alone, so
// it gives the same bits on any number of threads (cpu_pool.h: dcl__cpu_for, dcl__cpu_grain).

// An elementwise op over a->n elements.
static void par_elements(const struct dcl_op_args *a, dcl__cpu_range_fn body) {
    dcl__cpu_for(a, a->n, DCL_CPU_CHUNK, 1, body);
}

// ---- elementwise ------------------------------------------------------------------------------

static void fill_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *out = fptr(a->out[0]);
    for (size_t i = lo; i < hi; i++) out[i] = a->p.fill.value;
}

static dcl_status cpu_fill(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, fill_range);
    return DCL_OK;
}

// memcpy, not a float loop: a copy must keep NaN payloads bit for bit.
static void copy_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    memcpy(fptr(a->out[0]) + lo, fptr(a->in[0]) + lo, (hi - lo) * 4);
}

static dcl_status cpu_copy(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    float *out = fptr(a->out[0]);
    const float *in = fptr(a->in[0]);
    // Overlapping views (never used by diffcl itself) keep memmove's meaning, on one thread.
    uintptr_t o = (uintptr_t)out, i = (uintptr_t)in, bytes = a->n * 4;
    if (o < i + bytes && i < o + bytes) memmove(out, in, a->n * 4);
    else par_elements(a, copy_range);
    return DCL_OK;
}

static void axpby_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *out = fptr(a->out[0]);
    const float *x = fptr(a->in[0]), *y = fptr(a->in[1]);
    float ca = a->p.lin.a, cb = a->p.lin.b;
    for (size_t i = lo; i < hi; i++) out[i] = ca * x[i] + cb * y[i]; // out may alias x or y
}

static dcl_status cpu_axpby(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, axpby_range);
    return DCL_OK;
}

static void lincomb3_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *out = fptr(a->out[0]);
    const float *x = fptr(a->in[0]), *y = fptr(a->in[1]), *z = fptr(a->in[2]);
    float ca = a->p.lin.a, cb = a->p.lin.b, cc = a->p.lin.c;
    for (size_t i = lo; i < hi; i++) out[i] = ca * x[i] + cb * y[i] + cc * z[i];
}

static dcl_status cpu_lincomb3(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, lincomb3_range);
    return DCL_OK;
}

// NaN stays NaN (as in PyTorch): a ReLU must not hide a diverged activation from the NaN check.
static void relu_forward_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *out = fptr(a->out[0]);
    const float *in = fptr(a->in[0]);
    for (size_t i = lo; i < hi; i++) out[i] = in[i] < 0.0f ? 0.0f : in[i];
}

static dcl_status cpu_relu_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, relu_forward_range);
    return DCL_OK;
}

// din = dout · [in > 0]; the derivative at in == 0 is taken as 0. Both inputs are read every time
// and the choice is a select, so the loop has no data-dependent branch (random signs made the
// branchy form mispredict every other element) and vectorises: the bits are dout's or +0.
static void relu_backward_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *din = fptr(a->out[0]);
    const float *in = fptr(a->in[0]), *dout = fptr(a->in[1]);
    for (size_t i = lo; i < hi; i++) {
        float d = dout[i];
        din[i] = in[i] > 0.0f ? d : 0.0f;
    }
}

static dcl_status cpu_relu_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, relu_backward_range);
    return DCL_OK;
}

// σ(x) = 1 / (1 + e^(−x)) without a libm call, so that gcc vectorises the SiLU loops (libm's
// expf is a scalar call per element: it and the division were most of SiLU's time). From
// e = e^(−|x|) ∈ (0, 1], which cannot overflow: σ(x) = 1 / (1 + e) for x ≥ 0, e / (1 + e) below.
// e^a, a = −min(|x|, 87) (87 keeps e^a a normal float; the bound is set on the bits of |x|, an
// integer select, so NaN becomes 87 there and reaches the result through x in SiLU), is the
// Cephes expf scheme: a = n ln 2 + r with |r| ≤ ln 2 / 2, e^r by its minimax polynomial
// (relative error about 1e-7), 2^n put into the exponent bits.
static inline float sigmoidf(float x) {
    union {
        float f;
        int32_t i;
    } a = {.f = x};
    a.i &= 0x7fffffff;                         // |x|
    a.i = a.i < 0x42ae0000 ? a.i : 0x42ae0000; // min(|x|, 87.0f)
    a.f = -a.f;
    // n = a log2(e) rounded to the nearest integer: adding and subtracting 1.5 · 2^23 does it.
    float n = (a.f * 1.44269504088896341f - 12582912.0f) + 12582912.0f;
    float r = a.f - n * 0.693359375f - n * -2.12194440e-4f; // ln 2 in two parts: r exact
    float p = dcl__cpu_exp_reduced(r);
    union {
        int32_t i;
        float f;
    } two_n = {.i = ((int32_t)n + 127) << 23};
    float e = p * two_n.f, s = 1.0f / (1.0f + e);
    return x >= 0.0f ? s : e * s;
}

DCL_CPU_WIDE static void silu_forward_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *out = fptr(a->out[0]);
    const float *in = fptr(a->in[0]);
    for (size_t i = lo; i < hi; i++) out[i] = in[i] * sigmoidf(in[i]);
}

static dcl_status cpu_silu_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, silu_forward_range);
    return DCL_OK;
}

// d/dx x σ(x) = σ(x) + x σ(x) (1 − σ(x)) = σ(x) (1 + x (1 − σ(x))).
DCL_CPU_WIDE static void silu_backward_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *din = fptr(a->out[0]);
    const float *in = fptr(a->in[0]), *dout = fptr(a->in[1]);
    for (size_t i = lo; i < hi; i++) {
        float s = sigmoidf(in[i]);
        din[i] = dout[i] * s * (1.0f + in[i] * (1.0f - s));
    }
}

static dcl_status cpu_silu_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, silu_backward_range);
    return DCL_OK;
}

// ---- linear algebra ---------------------------------------------------------------------------

// A GEMM is cut along the longer of M and N into blocks of rows or columns of C, each about
// GEMM_CHUNK_FLOPS, computed by its own single-threaded CBLAS call (cpu_pool.c pins OpenBLAS to
// one thread): an element of C is computed the same way whichever block and thread it falls in.
#define GEMM_CHUNK_FLOPS ((size_t)1 << 22)

// C[i0:i1, j0:j1] of C (M, N) = alpha op(A) op(B) + beta C, row-major. A is (M, K), or (K, M)
// when trans_a; B is (K, N), or (N, K) when trans_b. beta == 0 overwrites C without reading it
// (BLAS semantics), so NaN in an uninitialised C does not leak into the result.
static void gemm_block(const struct dcl_op_args *a, size_t i0, size_t i1, size_t j0, size_t j1) {
    int ta = a->p.gemm.trans_a, tb = a->p.gemm.trans_b;
    size_t M = a->p.gemm.M, N = a->p.gemm.N, K = a->p.gemm.K;
    float alpha = a->p.gemm.alpha, beta = a->p.gemm.beta;
    float *C = fptr(a->out[0]);
    const float *A = fptr(a->in[0]), *B = fptr(a->in[1]);
    size_t lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
#ifdef DIFFCL_HAVE_CBLAS
    // The wrapper keeps M, N, K below 2^31, so they fit CBLAS's int.
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)(i1 - i0), (int)(j1 - j0), (int)K, alpha, ta ? A + i0 : A + i0 * lda, (int)lda,
                tb ? B + j0 * ldb : B + j0, (int)ldb, beta, C + i0 * ldc + j0, (int)ldc);
#else
    for (size_t i = i0; i < i1; i++) {
        for (size_t j = j0; j < j1; j++) {
            float acc = 0.0f; // float, as CLBlast accumulates
            for (size_t k = 0; k < K; k++) {
                float av = ta ? A[k * lda + i] : A[i * lda + k];
                float bv = tb ? B[j * ldb + k] : B[k * ldb + j];
                acc += av * bv;
            }
            float *c = &C[i * ldc + j];
            *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
        }
    }
#endif
}

static void gemm_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    gemm_block(a, lo, hi, 0, a->p.gemm.N);
}

static void gemm_cols(const struct dcl_op_args *a, size_t lo, size_t hi) {
    gemm_block(a, 0, a->p.gemm.M, lo, hi);
}

static dcl_status cpu_gemm(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t M = a->p.gemm.M, N = a->p.gemm.N, K = a->p.gemm.K;
    int by_rows = M >= N;
    size_t len = by_rows ? M : N, other = by_rows ? N : M;
    size_t per = 2 * other * (K ? K : 1); // FLOPs of one row (or column) of C
    size_t grain = (GEMM_CHUNK_FLOPS / per + 15) / 16 * 16;
    if (grain < 16) grain = 16;
    if (grain >= len) gemm_block(a, 0, M, 0, N);
    else dcl__cpu_for(a, len, grain, DCL_CPU_MIN_PARALLEL, by_rows ? gemm_rows : gemm_cols);
    return DCL_OK;
}

// out[r, d] = in[r, d] + bias[d]; out may be in.
static void bias_add_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t D = a->p.bias.D;
    float *out = fptr(a->out[0]);
    const float *in = fptr(a->in[0]), *bias = fptr(a->in[1]);
    for (size_t r = lo; r < hi; r++)
        for (size_t d = 0; d < D; d++) out[r * D + d] = in[r * D + d] + bias[d];
}

static dcl_status cpu_bias_add(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t D = a->p.bias.D;
    dcl__cpu_for(a, a->p.bias.N, dcl__cpu_grain(D), D, bias_add_rows);
    return DCL_OK;
}

// dbias[d] += Σ_r dout[r, d]: a parameter gradient, so it accumulates. The column sum is in
// double (reference precision), rows in order; the OpenCL kernel's float sum is compared against
// it. A chunk is a block of BIAS_COLS columns, summed row by row (contiguous reads).
#define BIAS_COLS 32

static void bias_backward_cols(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t N = a->p.bias.N, D = a->p.bias.D, w = hi - lo;
    float *dbias = fptr(a->out[0]);
    const float *dout = fptr(a->in[0]);
    double acc[BIAS_COLS] = {0};
    for (size_t r = 0; r < N; r++) {
        const float *row = dout + r * D + lo;
        for (size_t d = 0; d < w; d++) acc[d] += row[d];
    }
    for (size_t d = 0; d < w; d++) dbias[lo + d] = (float)(dbias[lo + d] + acc[d]);
}

static dcl_status cpu_bias_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    dcl__cpu_for(a, a->p.bias.D, BIAS_COLS, a->p.bias.N, bias_backward_cols);
    return DCL_OK;
}

// ---- rows: concatenation, time embedding ------------------------------------------------------

// out (N, D1 + D2) = [a (N, D1), b (N, D2)] row by row; a pure copy, so bitwise.
static void concat_cols_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t D1 = a->p.rows.D, D2 = a->p.rows.D2;
    float *out = fptr(a->out[0]);
    const float *x = fptr(a->in[0]), *y = fptr(a->in[1]);
    for (size_t r = lo; r < hi; r++) {
        memcpy(out + r * (D1 + D2), x + r * D1, D1 * 4);
        memcpy(out + r * (D1 + D2) + D1, y + r * D2, D2 * 4);
    }
}

static dcl_status cpu_concat_cols(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t D = a->p.rows.D + a->p.rows.D2;
    dcl__cpu_for(a, a->p.rows.N, dcl__cpu_grain(D), D, concat_cols_rows);
    return DCL_OK;
}

// out (N, E): [sin(arg_j), cos(arg_j)] with arg_j = 1000 t freq_j, freq_j = exp(−ln(10⁴) j/half).
// Every step is float and in the order of cl/embedding.cl, so the two sides differ only by the
// devices' exp, sin and cos. freq_j depends on j alone, so a chunk computes the first TEMB_FREQS
// once; a row whose t has the bits of the row before (a sampler's batch shares one t) copies it.
#define TEMB_FREQS 128

static float temb_freq(size_t j, size_t half) {
    return expf(-9.21034037f * (float)j / (float)half);
}

static void time_embedding_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t E = a->p.rows.D, half = E / 2, nf = half < TEMB_FREQS ? half : TEMB_FREQS;
    float *out = fptr(a->out[0]);
    const float *t = fptr(a->in[0]);
    float freq[TEMB_FREQS];
    for (size_t j = 0; j < nf; j++) freq[j] = temb_freq(j, half);
    for (size_t r = lo; r < hi; r++) {
        float *o = out + r * E;
        if (r > lo && memcmp(&t[r], &t[r - 1], sizeof *t) == 0) {
            memcpy(o, o - E, E * sizeof *o);
            continue;
        }
        for (size_t j = 0; j < half; j++) {
            float arg = 1000.0f * t[r] * (j < nf ? freq[j] : temb_freq(j, half));
            o[j] = sinf(arg);
            o[half + j] = cosf(arg);
        }
    }
}

static dcl_status cpu_time_embedding(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    // sin, cos and exp cost about as much as 8 elements of a linear op.
    size_t E = a->p.rows.D;
    dcl__cpu_for(a, a->p.rows.N, dcl__cpu_grain(8 * E), 8 * E, time_embedding_rows);
    return DCL_OK;
}

// ---- diffusion and training -------------------------------------------------------------------

// xt = c0 x0 + c1 ε, target = c2 x0 + c3 ε with coef (N, 4) per row.
static void forward_process_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t D = a->p.rows.D;
    float *xt = fptr(a->out[0]), *target = fptr(a->out[1]);
    const float *x0 = fptr(a->in[0]), *eps = fptr(a->in[1]), *coef = fptr(a->in[2]);
    for (size_t r = lo; r < hi; r++) {
        const float *c = coef + r * 4;
        for (size_t d = 0; d < D; d++) {
            size_t i = r * D + d;
            xt[i] = c[0] * x0[i] + c[1] * eps[i];
            target[i] = c[2] * x0[i] + c[3] * eps[i];
        }
    }
}

static dcl_status cpu_forward_process(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t D = a->p.rows.D;
    dcl__cpu_for(a, a->p.rows.N, dcl__cpu_grain(D), D, forward_process_rows);
    return DCL_OK;
}

// dout = (scale w[r]) (pred − target), scale = 2 / (N·D) from the wrapper (overwrites).
static void mse_backward_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t D = a->p.rows.D;
    float scale = a->p.rows.scale;
    float *dout = fptr(a->out[0]);
    const float *pred = fptr(a->in[0]), *target = fptr(a->in[1]), *w = fptr(a->in[2]);
    for (size_t r = lo; r < hi; r++) {
        float sw = scale * w[r];
        for (size_t d = 0; d < D; d++) dout[r * D + d] = sw * (pred[r * D + d] - target[r * D + d]);
    }
}

static dcl_status cpu_mse_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t D = a->p.rows.D;
    dcl__cpu_for(a, a->p.rows.N, dcl__cpu_grain(D), D, mse_backward_rows);
    return DCL_OK;
}

// AdamW in torch.optim.AdamW's order (see ops.h), float arithmetic in cl/adam.cl's order.
static void adamw_step_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *p = fptr(a->out[0]), *m = fptr(a->out[1]), *v = fptr(a->out[2]);
    const float *g = fptr(a->in[0]);
    float b1 = a->p.adamw.beta1, b2 = a->p.adamw.beta2, clip = a->p.adamw.clip;
    float norm = sqrtf(fptr(a->in[1])[0]);
    float scale = clip > 0.0f && norm > clip ? clip / norm : 1.0f;
    for (size_t i = lo; i < hi; i++) {
        float gi = scale * g[i];
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * (gi * gi);
        float denom = sqrtf(vi) / a->p.adamw.bc2_sqrt + a->p.adamw.eps;
        m[i] = mi, v[i] = vi;
        p[i] = p[i] * a->p.adamw.decay - a->p.adamw.step_size * (mi / denom);
    }
}

static dcl_status cpu_adamw_step(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    par_elements(a, adamw_step_range);
    return DCL_OK;
}

// ---- reductions (double accumulation: the reference should be the more accurate side) ---------

// A reduction sums each chunk in order into its own partial, then the partials in chunk order. At
// most REDUCE_PARTS chunks of at least DCL_CPU_CHUNK elements: n alone fixes them, so the sum is
// the same on any number of threads (and, up to DCL_CPU_CHUNK elements, the plain running sum).
#define REDUCE_PARTS 256

enum reduce_kind { REDUCE_SUM, REDUCE_SUMSQ, REDUCE_NONFINITE };

struct reduce_job {
    const float *in;
    size_t n, grain;
    enum reduce_kind kind;
    double part[REDUCE_PARTS];
};

static void reduce_chunk(void *arg, size_t c) {
    struct reduce_job *j = arg;
    size_t lo = c * j->grain, hi = j->n - lo > j->grain ? lo + j->grain : j->n;
    const float *in = j->in;
    double acc = 0.0;
    if (j->kind == REDUCE_SUM)
        for (size_t i = lo; i < hi; i++) acc += in[i];
    else if (j->kind == REDUCE_SUMSQ)
        for (size_t i = lo; i < hi; i++) acc += (double)in[i] * in[i];
    else {
        uint32_t count = 0;
        for (size_t i = lo; i < hi; i++) count += !isfinite(in[i]);
        acc = count; // exact: a chunk has far fewer than 2^53 elements
    }
    j->part[c] = acc;
}

static double reduce(const struct dcl_op_args *a, enum reduce_kind kind) {
    struct reduce_job job = {.in = fptr(a->in[0]), .n = a->n, .kind = kind}, *j = &job;
    j->grain = (a->n + REDUCE_PARTS - 1) / REDUCE_PARTS;
    if (j->grain < DCL_CPU_CHUNK) j->grain = DCL_CPU_CHUNK;
    size_t parts = (a->n + j->grain - 1) / j->grain;
    dcl__cpu_parallel(parts, a->n, reduce_chunk, j);
    double total = 0.0;
    for (size_t c = 0; c < parts; c++) total += j->part[c];
    return total;
}

static dcl_status cpu_sum(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    fptr(a->out[0])[0] = (float)reduce(a, REDUCE_SUM);
    return DCL_OK;
}

static dcl_status cpu_sumsq(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    fptr(a->out[0])[0] = (float)reduce(a, REDUCE_SUMSQ);
    return DCL_OK;
}

// out[0] is a uint32 count, written into the buffer's 32-bit word as is (wrapping as a uint32
// running count would).
static dcl_status cpu_count_nonfinite(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    uptr(a->out[0])[0] = (uint32_t)(uint64_t)reduce(a, REDUCE_NONFINITE);
    return DCL_OK;
}

// ---- random numbers (host/core/philox.c: element first + i of the stream) --------------------

// A Philox draw costs about as much as 8 elements of a linear op.
#define RNG_COST 8

static void rng_bits_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    uint32_t *out = uptr(a->out[0]);
    for (size_t i = lo; i < hi; i++)
        out[i] =
            dcl_rng_bits_at(a->p.rng.seed, a->p.rng.purpose, a->p.rng.step, a->p.rng.first + i);
}

static dcl_status cpu_rng_bits(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    dcl__cpu_for(a, a->n, DCL_CPU_CHUNK / RNG_COST, RNG_COST, rng_bits_range);
    return DCL_OK;
}

static void rng_uniform_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *out = fptr(a->out[0]);
    for (size_t i = lo; i < hi; i++)
        out[i] =
            dcl_rng_uniform_at(a->p.rng.seed, a->p.rng.purpose, a->p.rng.step, a->p.rng.first + i);
}

static dcl_status cpu_rng_uniform(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    dcl__cpu_for(a, a->n, DCL_CPU_CHUNK / RNG_COST, RNG_COST, rng_uniform_range);
    return DCL_OK;
}

static void rng_normal_range(const struct dcl_op_args *a, size_t lo, size_t hi) {
    float *out = fptr(a->out[0]);
    for (size_t i = lo; i < hi; i++)
        out[i] =
            dcl_rng_normal_at(a->p.rng.seed, a->p.rng.purpose, a->p.rng.step, a->p.rng.first + i);
}

static dcl_status cpu_rng_normal(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    dcl__cpu_for(a, a->n, DCL_CPU_CHUNK / RNG_COST, RNG_COST, rng_normal_range);
    return DCL_OK;
}

// ---- images (NCHW) ------------------------------------------------------------------------------

// The output columns ox whose input column x = ox·s − pad + kx lies inside [0, W): [*lo, *hi).
static void inside_range(size_t W, size_t Wo, size_t s, size_t pad, size_t kx, size_t *lo,
                         size_t *hi) {
    // x >= 0  <=>  ox·s >= pad − kx;  x < W  <=>  ox·s < W + pad − kx.
    *lo = pad > kx ? (pad - kx + s - 1) / s : 0;
    *hi = W + pad > kx ? (W + pad - kx + s - 1) / s : 0;
    if (*hi > Wo) *hi = Wo;
    if (*lo > *hi) *lo = *hi;
}

// col (C·k·k, N·Ho·Wo) from in (N, C, H, W), zero outside the image. Loops run over one input
// plane (n, c) at a time so it stays in cache while its k² rows are written; a chunk is a block
// of channels c (their k² rows of col).
static void im2col_channels(const struct dcl_op_args *a, size_t c0, size_t c1) {
    size_t N = a->p.img.N, C = a->p.img.C, H = a->p.img.H, W = a->p.img.W, k = a->p.img.k;
    size_t Ho = a->p.img.Ho, Wo = a->p.img.Wo, P = N * Ho * Wo;
    size_t s = a->p.img.stride, pad = a->p.img.pad;
    float *col = fptr(a->out[0]);
    const float *in = fptr(a->in[0]);
    for (size_t c = c0; c < c1; c++)
        for (size_t n = 0; n < N; n++) {
            const float *plane = in + (n * C + c) * H * W;
            for (size_t ky = 0; ky < k; ky++)
                for (size_t kx = 0; kx < k; kx++) {
                    float *row = col + ((c * k + ky) * k + kx) * P + n * Ho * Wo;
                    size_t lo, hi;
                    inside_range(W, Wo, s, pad, kx, &lo, &hi);
                    for (size_t oy = 0; oy < Ho; oy++) {
                        float *dst = row + oy * Wo;
                        size_t y = oy * s + ky; // + pad: the padded row
                        if (y < pad || y - pad >= H) {
                            memset(dst, 0, Wo * sizeof *dst);
                            continue;
                        }
                        const float *src = plane + (y - pad) * W;
                        for (size_t ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                        for (size_t ox = lo, x = lo * s + kx - pad; ox < hi; ox++, x += s)
                            dst[ox] = src[x];
                        for (size_t ox = hi; ox < Wo; ox++) dst[ox] = 0.0f;
                    }
                }
        }
}

// Elements of col one channel writes (the chunking unit of im2col and col2im).
static size_t col_per_channel(const struct dcl_op_args *a) {
    return a->p.img.k * a->p.img.k * a->p.img.N * a->p.img.Ho * a->p.img.Wo;
}

static dcl_status cpu_im2col(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = col_per_channel(a);
    dcl__cpu_for(a, a->p.img.C, dcl__cpu_grain(per), per, im2col_channels);
    return DCL_OK;
}

// din (N, C, H, W) = the adjoint of im2col. Each pixel receives its col entries in (ky, kx) order
// starting from 0, exactly the additions of cl/conv.cl's gather (acc = 0; acc += ... in (ky, kx)
// order), so the two agree bitwise; written as a scatter over one plane at a time for speed. A
// chunk is a block of channels c (their planes in every sample).
static void col2im_channels(const struct dcl_op_args *a, size_t c0, size_t c1) {
    size_t N = a->p.img.N, C = a->p.img.C, H = a->p.img.H, W = a->p.img.W, k = a->p.img.k;
    size_t Ho = a->p.img.Ho, Wo = a->p.img.Wo, s = a->p.img.stride, pad = a->p.img.pad;
    size_t P = N * Ho * Wo;
    float *din = fptr(a->out[0]);
    const float *col = fptr(a->in[0]);
    for (size_t c = c0; c < c1; c++)
        for (size_t n = 0; n < N; n++) {
            float *plane = din + (n * C + c) * H * W;
            memset(plane, 0, H * W * sizeof *plane);
            for (size_t ky = 0; ky < k; ky++)
                for (size_t kx = 0; kx < k; kx++) {
                    const float *row = col + ((c * k + ky) * k + kx) * P + n * Ho * Wo;
                    size_t lo, hi;
                    inside_range(W, Wo, s, pad, kx, &lo, &hi);
                    for (size_t oy = 0; oy < Ho; oy++) {
                        size_t y = oy * s + ky;
                        if (y < pad || y - pad >= H) continue;
                        float *dst = plane + (y - pad) * W;
                        const float *src = row + oy * Wo;
                        for (size_t ox = lo, x = lo * s + kx - pad; ox < hi; ox++, x += s)
                            dst[x] += src[ox];
                    }
                }
        }
}

static dcl_status cpu_col2im(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = col_per_channel(a);
    dcl__cpu_for(a, a->p.img.C, dcl__cpu_grain(per), per, col2im_channels);
    return DCL_OK;
}

// out (B, A, R) = in (A, B, R) with the first two axes swapped; a copy, so bitwise.
static void swap01_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t A = a->p.swap.A, B = a->p.swap.B, R = a->p.swap.R;
    float *out = fptr(a->out[0]);
    const float *in = fptr(a->in[0]);
    for (size_t i = lo; i < hi; i++)
        for (size_t j = 0; j < B; j++) memcpy(out + (j * A + i) * R, in + (i * B + j) * R, R * 4);
}

static dcl_status cpu_swap01(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = a->p.swap.B * a->p.swap.R;
    dcl__cpu_for(a, a->p.swap.A, dcl__cpu_grain(per), per, swap01_rows);
    return DCL_OK;
}

// out[n, c, r] = in[n, c, r] + bias[c] or + bias[n, c]; out may be in. A chunk is a block of
// (n, c) planes.
static void channel_bias_add_planes(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t C = a->p.chan.C, R = a->p.chan.R;
    float *out = fptr(a->out[0]);
    const float *in = fptr(a->in[0]), *bias = fptr(a->in[1]);
    for (size_t p = lo; p < hi; p++) {
        float b = bias[a->p.chan.per_sample ? p : p % C];
        for (size_t r = 0; r < R; r++) out[p * R + r] = in[p * R + r] + b;
    }
}

static dcl_status cpu_channel_bias_add(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t R = a->p.chan.R;
    dcl__cpu_for(a, a->p.chan.N * a->p.chan.C, dcl__cpu_grain(R), R, channel_bias_add_planes);
    return DCL_OK;
}

// Sums that run side by side: a double sum is a chain of dependent adds (4 cycles each), so the
// loops below advance SIDE independent sums at once (rows, channels or samples), each still in
// its own order, which gives the same bits as one at a time, several times faster.
#define SIDE 4

// per_sample 0: dbias[c] += Σ_{n,r} dout; per_sample 1: dbias[n, c] = Σ_r dout. Sums in double,
// per channel: a chunk is a block of channels. The per-sample sums of SIDE samples run side by
// side, then add to the channel's total in sample order.
static void channel_bias_backward_channels(const struct dcl_op_args *a, size_t c0, size_t c1) {
    size_t N = a->p.chan.N, C = a->p.chan.C, R = a->p.chan.R;
    float *dbias = fptr(a->out[0]);
    const float *dout = fptr(a->in[0]);
    for (size_t c = c0; c < c1; c++) {
        double total = 0.0;
        for (size_t n = 0; n < N; n += SIDE) {
            size_t k = N - n < SIDE ? N - n : SIDE;
            double acc[SIDE] = {0.0};
            const float *x = dout + (n * C + c) * R; // sample n + q at x + q·C·R
            if (k == SIDE)
                for (size_t r = 0; r < R; r++)
                    for (size_t q = 0; q < SIDE; q++) acc[q] += x[q * C * R + r];
            else
                for (size_t q = 0; q < k; q++)
                    for (size_t r = 0; r < R; r++) acc[q] += x[q * C * R + r];
            for (size_t q = 0; q < k; q++) {
                if (a->p.chan.per_sample) dbias[(n + q) * C + c] = (float)acc[q];
                total += acc[q];
            }
        }
        if (!a->p.chan.per_sample) dbias[c] = (float)(dbias[c] + total);
    }
}

static dcl_status cpu_channel_bias_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = a->p.chan.N * a->p.chan.R;
    dcl__cpu_for(a, a->p.chan.C, dcl__cpu_grain(per), per, channel_bias_backward_channels);
    return DCL_OK;
}

// A row's sum (or sum of squared deviations from mu) in double as LANES partial sums, element j
// into lane j mod LANES, the lanes then added pairwise in a fixed tree: independent chains that
// gcc vectorises along the row (a single chain is one dependent add, 4 cycles, per element). The
// grouping depends on M alone, so the result does not depend on the thread count.
#define LANES 16

static inline double lanes_total(double *s) {
    for (size_t w = LANES / 2; w; w /= 2)
        for (size_t q = 0; q < w; q++) s[q] += s[q + w];
    return s[0];
}

static inline double row_sum(const float *x, size_t M) {
    double s[LANES] = {0.0};
    size_t j = 0;
    for (; j + LANES <= M; j += LANES)
        for (size_t q = 0; q < LANES; q++) s[q] += x[j + q];
    for (size_t q = 0; j < M; j++, q++) s[q] += x[j];
    return lanes_total(s);
}

static inline double row_sqdev(const float *x, size_t M, double mu) {
    double s[LANES] = {0.0};
    size_t j = 0;
    for (; j + LANES <= M; j += LANES)
        for (size_t q = 0; q < LANES; q++) s[q] += (x[j + q] - mu) * (x[j + q] - mu);
    for (size_t q = 0; j < M; j++, q++) s[q] += (x[j] - mu) * (x[j] - mu);
    return lanes_total(s);
}

// GroupNorm forward: two passes in double over each (n, group) block of M = C/G·R consecutive
// elements (mean, then the mean square deviation), so the reference is the accurate side. A chunk
// is a block of (n, group) rows.
DCL_CPU_WIDE static void group_norm_forward_rows(const struct dcl_op_args *a, size_t lo,
                                                 size_t hi) {
    size_t C = a->p.chan.C, R = a->p.chan.R, G = a->p.chan.G;
    size_t Cg = C / G, M = Cg * R;
    float *out = fptr(a->out[0]), *mean = fptr(a->out[1]), *rstd = fptr(a->out[2]);
    const float *in = fptr(a->in[0]), *gamma = fptr(a->in[1]), *beta = fptr(a->in[2]);
    for (size_t row = lo; row < hi; row++) {
        const float *x = in + row * M;
        double m = M ? row_sum(x, M) / (double)M : 0.0;
        double var = M ? row_sqdev(x, M, m) / (double)M : 0.0;
        double rs = 1.0 / sqrt(var + a->p.chan.eps);
        size_t c0 = (row % G) * Cg;
        mean[row] = (float)m, rstd[row] = (float)rs;
        for (size_t c = 0; c < Cg; c++) {
            const float *xc = x + c * R;
            float *o = out + row * M + c * R;
            double g = gamma[c0 + c], b = beta[c0 + c];
            for (size_t r = 0; r < R; r++) o[r] = (float)((xc[r] - m) * rs * g + b);
        }
    }
}

static dcl_status cpu_group_norm_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t M = a->p.chan.C / a->p.chan.G * a->p.chan.R;
    dcl__cpu_for(a, a->p.chan.N * a->p.chan.G, dcl__cpu_grain(3 * M), 3 * M,
                 group_norm_forward_rows);
    return DCL_OK;
}

// GroupNorm backward with the saved (float) mean and rstd, sums in double:
// din = rstd (g − Σg/M − x̂ Σ g x̂/M), g = gamma·dout; dgamma += Σ dout x̂; dbeta += Σ dout.
// din by blocks of (n, group) rows, then dgamma and dbeta by blocks of channels; each sum in
// LANES lanes (row_sum).
DCL_CPU_WIDE static void group_norm_backward_rows(const struct dcl_op_args *a, size_t lo,
                                                  size_t hi) {
    size_t C = a->p.chan.C, R = a->p.chan.R, G = a->p.chan.G;
    size_t Cg = C / G, M = Cg * R;
    float *din = fptr(a->out[0]);
    const float *dout = fptr(a->in[0]), *in = fptr(a->in[1]), *mean = fptr(a->in[2]);
    const float *rstd = fptr(a->in[3]), *gamma = fptr(a->in[4]);
    for (size_t row = lo; row < hi; row++) {
        double mu = mean[row], rs = rstd[row], sg[LANES] = {0.0}, sgx[LANES] = {0.0};
        const float *gm = gamma + row % G * Cg, *x = in + row * M, *dy = dout + row * M;
        for (size_t c = 0; c < Cg; c++) { // each channel's R elements into the lanes from lane 0
            const float *xc = x + c * R, *dyc = dy + c * R;
            double gc = gm[c];
            size_t r = 0;
            for (; r + LANES <= R; r += LANES)
                for (size_t q = 0; q < LANES; q++) {
                    double g = gc * dyc[r + q];
                    sg[q] += g;
                    sgx[q] += g * ((xc[r + q] - mu) * rs);
                }
            for (size_t q = 0; r < R; r++, q++) {
                double g = gc * dyc[r];
                sg[q] += g;
                sgx[q] += g * ((xc[r] - mu) * rs);
            }
        }
        double s_g = lanes_total(sg) / (double)M, s_gx = lanes_total(sgx) / (double)M;
        for (size_t c = 0; c < Cg; c++) {
            size_t base = c * R;
            double gc = gm[c];
            float *o = din + row * M + base;
            for (size_t r = 0; r < R; r++) {
                double g = gc * dy[base + r];
                o[r] = (float)(rs * (g - s_g - (x[base + r] - mu) * rs * s_gx));
            }
        }
    }
}

DCL_CPU_WIDE static void group_norm_backward_channels(const struct dcl_op_args *a, size_t lo,
                                                      size_t hi) {
    size_t N = a->p.chan.N, C = a->p.chan.C, R = a->p.chan.R, G = a->p.chan.G, Cg = C / G;
    float *dgamma = fptr(a->out[1]), *dbeta = fptr(a->out[2]);
    const float *dout = fptr(a->in[0]), *in = fptr(a->in[1]), *mean = fptr(a->in[2]);
    const float *rstd = fptr(a->in[3]);
    for (size_t c = lo; c < hi; c++) {
        double sdg[LANES] = {0.0}, sdb[LANES] = {0.0};
        for (size_t n = 0; n < N; n++) { // each sample's plane into the lanes from lane 0
            size_t row = n * G + c / Cg;
            double mu = mean[row], rs = rstd[row];
            const float *x = in + (n * C + c) * R, *dy = dout + (n * C + c) * R;
            size_t r = 0;
            for (; r + LANES <= R; r += LANES)
                for (size_t q = 0; q < LANES; q++) {
                    sdg[q] += dy[r + q] * ((x[r + q] - mu) * rs);
                    sdb[q] += dy[r + q];
                }
            for (size_t q = 0; r < R; r++, q++) {
                sdg[q] += dy[r] * ((x[r] - mu) * rs);
                sdb[q] += dy[r];
            }
        }
        dgamma[c] = (float)(dgamma[c] + lanes_total(sdg));
        dbeta[c] = (float)(dbeta[c] + lanes_total(sdb));
    }
}
static dcl_status cpu_group_norm_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t N = a->p.chan.N, C = a->p.chan.C, R = a->p.chan.R, G = a->p.chan.G;
    size_t M = C / G * R;
    dcl__cpu_for(a, N * G, dcl__cpu_grain(4 * M), 4 * M, group_norm_backward_rows);
    dcl__cpu_for(a, C, dcl__cpu_grain(2 * N * R), 2 * N * R, group_norm_backward_channels);
    return DCL_OK;
}

// out (N, C, 2H, 2W): each input pixel copied to a 2×2 block. A chunk is a block of planes.
static void upsample2x_forward_planes(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t H = a->p.img.H, W = a->p.img.W;
    float *out = fptr(a->out[0]);
    const float *in = fptr(a->in[0]);
    for (size_t p = lo; p < hi; p++)
        for (size_t y = 0; y < 2 * H; y++)
            for (size_t x = 0; x < 2 * W; x++)
                out[(p * 2 * H + y) * 2 * W + x] = in[(p * H + y / 2) * W + x / 2];
}

static dcl_status cpu_upsample2x_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = 4 * a->p.img.H * a->p.img.W;
    dcl__cpu_for(a, a->p.img.N * a->p.img.C, dcl__cpu_grain(per), per, upsample2x_forward_planes);
    return DCL_OK;
}

// din (N, C, H, W) = the 2×2 block sums of dout, added in row-major order as cl/upsample.cl does.
static void upsample2x_backward_planes(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t H = a->p.img.H, W = a->p.img.W;
    float *din = fptr(a->out[0]);
    const float *dout = fptr(a->in[0]);
    for (size_t p = lo; p < hi; p++)
        for (size_t y = 0; y < H; y++)
            for (size_t x = 0; x < W; x++) {
                const float *d = dout + (p * 2 * H + 2 * y) * 2 * W + 2 * x;
                din[(p * H + y) * W + x] = d[0] + d[1] + d[2 * W] + d[2 * W + 1];
            }
}

static dcl_status cpu_upsample2x_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = 4 * a->p.img.H * a->p.img.W;
    dcl__cpu_for(a, a->p.img.N * a->p.img.C, dcl__cpu_grain(per), per, upsample2x_backward_planes);
    return DCL_OK;
}

// out (N, C1 + C2, R) = [a, b] along channels: per sample, a's block then b's block.
static void concat_channels_samples(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t A = a->p.chan.C * a->p.chan.R, B = a->p.chan.C2 * a->p.chan.R;
    float *out = fptr(a->out[0]);
    const float *x = fptr(a->in[0]), *y = fptr(a->in[1]);
    for (size_t n = lo; n < hi; n++) {
        memcpy(out + n * (A + B), x + n * A, A * 4);
        memcpy(out + n * (A + B) + A, y + n * B, B * 4);
    }
}

static dcl_status cpu_concat_channels(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = (a->p.chan.C + a->p.chan.C2) * a->p.chan.R;
    dcl__cpu_for(a, a->p.chan.N, dcl__cpu_grain(per), per, concat_channels_samples);
    return DCL_OK;
}

static void split_channels_samples(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t A = a->p.chan.C * a->p.chan.R, B = a->p.chan.C2 * a->p.chan.R;
    float *da = fptr(a->out[0]), *db = fptr(a->out[1]);
    const float *dout = fptr(a->in[0]);
    for (size_t n = lo; n < hi; n++) {
        memcpy(da + n * A, dout + n * (A + B), A * 4);
        memcpy(db + n * B, dout + n * (A + B) + A, B * 4);
    }
}

static dcl_status cpu_split_channels(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = (a->p.chan.C + a->p.chan.C2) * a->p.chan.R;
    dcl__cpu_for(a, a->p.chan.N, dcl__cpu_grain(per), per, split_channels_samples);
    return DCL_OK;
}

// ---- class embedding ----------------------------------------------------------------------------

// out[n] = table[labels[n]], a zero row for labels >= K.
static void embedding_forward_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t K = a->p.embed.K, E = a->p.embed.E;
    float *out = fptr(a->out[0]);
    const float *table = fptr(a->in[0]);
    const uint32_t *labels = uptr(a->in[1]);
    for (size_t n = lo; n < hi; n++) {
        if (labels[n] < K) memcpy(out + n * E, table + labels[n] * E, E * 4);
        else memset(out + n * E, 0, E * 4);
    }
}

static dcl_status cpu_embedding_forward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t E = a->p.embed.E;
    dcl__cpu_for(a, a->p.embed.N, dcl__cpu_grain(E), E, embedding_forward_rows);
    return DCL_OK;
}

// dtable[k, e] += Σ_{n: labels[n] = k} dout[n, e], the sum in double, n in order. A chunk is a
// block of table rows k.
static void embedding_backward_rows(const struct dcl_op_args *a, size_t lo, size_t hi) {
    size_t N = a->p.embed.N, E = a->p.embed.E;
    float *dtable = fptr(a->out[0]);
    const float *dout = fptr(a->in[0]);
    const uint32_t *labels = uptr(a->in[1]);
    for (size_t k = lo; k < hi; k++)
        for (size_t e = 0; e < E; e++) {
            double acc = 0.0;
            for (size_t n = 0; n < N; n++)
                if (labels[n] == k) acc += dout[n * E + e];
            dtable[k * E + e] = (float)(dtable[k * E + e] + acc);
        }
}

static dcl_status cpu_embedding_backward(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t per = a->p.embed.N * a->p.embed.E;
    dcl__cpu_for(a, a->p.embed.K, dcl__cpu_grain(per), per, embedding_backward_rows);
    return DCL_OK;
}

// ---- the table --------------------------------------------------------------------------------

// Every op of DCL_OP_MAP, by name: cpu_<name> (tests/test_ops.c checks that none is NULL).
#define DCL_CPU_OP(NAME, name, ...) [DCL_OP_##NAME] = cpu_##name,
const struct dcl_backend_i dcl__cpu_backend = {
    .name = "cpu",
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .finish = NULL, // every op completes before it returns
    .free = cpu_free,
    .ops = {DCL_OP_MAP(DCL_CPU_OP)},
};
#undef DCL_CPU_OP

void dcl__cpu_info(dcl_device_info *info) {
    memset(info, 0, sizeof *info);
    info->backend = DCL_BACKEND_CPU;
    info->index = 0;
    info->platform = info->device = -1;
    snprintf(info->spec, sizeof info->spec, "cpu");
#ifdef DIFFCL_HAVE_CBLAS
    snprintf(info->name, sizeof info->name, "diffcl CPU reference (OpenBLAS)");
#else
    snprintf(info->name, sizeof info->name, "diffcl CPU reference (plain loops)");
#endif
    snprintf(info->platform_name, sizeof info->platform_name, "diffcl");
    snprintf(info->type, sizeof info->type, "reference");
    snprintf(info->vendor, sizeof info->vendor, "diffcl");
    snprintf(info->driver, sizeof info->driver, "%s", DIFFCL_VERSION_STRING); // the library's
    snprintf(info->version, sizeof info->version, "-");
    snprintf(info->c_version, sizeof info->c_version, "-");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    info->compute_units = cpus > 0 ? (int)cpus : 1;
    info->global_mem = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
    info->max_alloc = info->global_mem ? info->global_mem : UINT64_MAX; // unknown: let malloc say
    info->local_mem = 0;
    info->max_wg_size = 1;
    info->fp64 = 1;
    info->usable = 1;
}
