// The op-case table (one row per op variant, forward and backward) and the runner that checks a
// device against the CPU reference, with sentinel guards around every tensor (ggml's pattern).
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crosscheck/crosscheck.h"
#include "core/error.h"
#include "diffcl/log.h"
#include "diffcl/ops.h" // the public op wrappers the cases call
#include "diffcl/rng.h" // dcl_rng_*_at: deterministic inputs from the seed

#define GUARD 16      // guard elements after every tensor (and the `off` ones before it)
#define MAX_TENSORS 8 // outputs and inputs of one case (group_norm_backward: 8)
#define MAX_SHOWN 5   // mismatches listed in r->detail

// How a case uses a tensor. INOUT tensors are read and written (gemm's C with beta != 0, a
// gradient that accumulates, an in-place op); OUT tensors start as NaN sentinels, so an op that
// reads its output before writing it (gemm with beta == 0 must not) turns NaN.
enum role { IN, OUT, INOUT };

// How inputs are drawn: all start from N(0, 1) of the seed's stream.
enum gen {
    GEN_NORMAL,
    GEN_KINK,      // every 16th element an exact +0 or -0 (ReLU's kink), a few ±Inf and NaN
    GEN_WIDE,      // every 8th element scaled by 30, so exp() saturates (SiLU's tails)
    GEN_NONFINITE, // every 16th element NaN (with payload), +Inf or -Inf
    GEN_UNIT,      // uniform in (0, 1) instead (diffusion times)
    GEN_POSITIVE,  // |x| + 0.5 (Adam's second moments, squared norms)
    GEN_SHIFTED,   // x + 8: a mean far from 0 next to the spread (GroupNorm's two passes)
    GEN_LABEL,     // uint32 labels 0..9, and now and then 0xffffffff (embedding: K = 7)
};

struct tensor {
    const char *name;
    size_t len; // elements the op touches
    enum role role;
    enum gen gen;
    int bits;    // compare 32-bit words exactly (uint outputs, copies, exact fills)
    double atol; // > 0: this output's own atol, where it sums far more terms than the others
};

// One instance of a case at a size n: tensors, op parameters and the tolerance.
struct problem {
    int nt;
    struct tensor t[MAX_TENSORS];
    size_t n, M, N, K, D, D2;
    int ta, tb;
    float alpha, beta, a, b, c;
    uint64_t seed, first;
    uint32_t purpose, step;
    float lr, beta1, beta2, eps, wd, clip; // adamw_step
    int64_t adam_step;
    size_t C, H, W, R, G, k, stride, pad; // images (N, C, H, W) or (N, C, R); C2 is D2
    int per_sample;
    double atol, rtol;
};

struct check_case {
    const char *name;
    void (*setup)(const struct check_case *c, size_t n, struct problem *p);
    dcl_status (*run)(dcl_device *dev, const struct problem *p, const dcl_ptr *t);
    int ta, tb;  // gemm transposes
    int variant; // case-specific: gemm shape, in-place, ...
    // Optional: rewrites inputs that must be consistent with others (GroupNorm's saved mean and
    // rstd from its input) in init[k][off...] after they were drawn.
    void (*derive)(const struct problem *p, uint32_t *const *init, size_t off);
};

static void add(struct problem *p, const char *name, size_t len, enum role role, enum gen gen) {
    p->t[p->nt++] = (struct tensor){name, len, role, gen, 0, 0};
}

// Unit roundoff of float.
static const double U = 0x1p-24;

// ---- setups: shapes, parameters and tolerances ------------------------------------------------
//
// Tolerances come from each operation's error bound with inputs ~N(0, 1) (|x| < 6 at the sizes
// used), then were checked against the largest errors measured on PoCL 3.1 (AVX2 CPU, default and
// forced launch shapes, CBLAS and plain-loop references); each comment gives both numbers.

// fill: a store of one float, exact everywhere.
static void setup_fill(const struct check_case *c, size_t n, struct problem *p) {
    (void)c;
    p->n = n, p->a = -1.7f;
    add(p, "out", n, OUT, GEN_NORMAL);
    p->t[0].bits = 1;
}

// copy: must move every word as is, NaN payloads included.
static void setup_copy(const struct check_case *c, size_t n, struct problem *p) {
    (void)c;
    p->n = n;
    add(p, "out", n, OUT, GEN_NORMAL);
    add(p, "in", n, IN, GEN_NONFINITE);
    p->t[0].bits = 1;
}

// axpby / lincomb3: one product and one add per term. With or without FMA contraction each result
// is within one rounding of each product and of each sum: |err| <= 2u Σ|coef·x| per side, and
// Σ|coef·x| <= 6 Σ|coef|. atol = 4u·6·Σ|coef| covers both sides; measured error on PoCL: 0.
static void setup_lin(const struct check_case *c, size_t n, struct problem *p) {
    p->n = n, p->a = 0.75f, p->b = -1.25f, p->c = 2.5f;
    int terms = c->variant == 3 ? 3 : 2;
    if (c->variant == 1) { // axpby in place: out is x
        add(p, "x", n, INOUT, GEN_NORMAL);
        add(p, "y", n, IN, GEN_NORMAL);
    } else {
        add(p, "out", n, OUT, GEN_NORMAL);
        add(p, "x", n, IN, GEN_NORMAL);
        add(p, "y", n, IN, GEN_NORMAL);
        if (terms == 3) add(p, "z", n, IN, GEN_NORMAL);
    }
    double coef = fabs(p->a) + fabs(p->b) + (terms == 3 ? fabs(p->c) : 0.0);
    p->atol = 4 * U * 6 * coef;
    p->rtol = 4 * U;
}

// gemm: C (M, N) = alpha op(A) op(B) + beta C, three shapes:
//   variant 0: M = n, N = 7, K = 5, beta = 0 (C starts as NaN sentinels: must be overwritten)
//   variant 1: M = 6, N = 3, K = n, alpha 0.75, beta -0.5 (long dot products, C read)
//   variant 2: M = 5, N = n, K = 9, alpha -1.25, beta 1 (wide C, gradient accumulation)
// Both sides accumulate in float, in different orders (OpenBLAS blocks, CLBlast tiles, either may
// use FMA). Each side errs by about u·S, S = Σ_k |alpha·a·b| + |beta·c| the sum of magnitudes
// (worst case K·u·S); with N(0, 1) inputs S <= |alpha|·(K + 2√K) + 4|beta|, so atol = 16u·S,
// plus rtol = 16u for the large entries of short dot products. Measured on PoCL 3.1 (CLBlast)
// against OpenBLAS / the plain loops: K = 5: 0 / 1.9e-6 (atol 9e-6); K = 9: 3.8e-6 / 2.9e-6
// (atol 2.2e-5); K = 4097: 1.5e-4 / 3.4e-5 (atol 3.0e-3, |C| ~ 50).
static void setup_gemm(const struct check_case *c, size_t n, struct problem *p) {
    p->ta = c->ta, p->tb = c->tb;
    switch (c->variant) {
    case 0: p->M = n, p->N = 7, p->K = 5, p->alpha = 1.0f, p->beta = 0.0f; break;
    case 1: p->M = 6, p->N = 3, p->K = n, p->alpha = 0.75f, p->beta = -0.5f; break;
    default: p->M = 5, p->N = n, p->K = 9, p->alpha = -1.25f, p->beta = 1.0f; break;
    }
    add(p, "C", p->M * p->N, p->beta == 0.0f ? OUT : INOUT, GEN_NORMAL);
    add(p, "A", p->M * p->K, IN, GEN_NORMAL);
    add(p, "B", p->K * p->N, IN, GEN_NORMAL);
    double K = (double)p->K;
    p->atol = 16 * U * (fabs(p->alpha) * (K + 2 * sqrt(K)) + 4 * fabs(p->beta));
    p->rtol = 16 * U;
}

// bias_add: one IEEE add per element, exact on every device. variant 1: in place (out is in).
static void setup_bias_add(const struct check_case *c, size_t n, struct problem *p) {
    p->N = 3, p->D = n;
    if (c->variant == 1) {
        add(p, "x", p->N * p->D, INOUT, GEN_NORMAL);
    } else {
        add(p, "out", p->N * p->D, OUT, GEN_NORMAL);
        add(p, "in", p->N * p->D, IN, GEN_NORMAL);
    }
    add(p, "bias", p->D, IN, GEN_NORMAL);
}

// bias_backward: dbias[d] += Σ_r dout[r, d]; variant 0: N = n rows, D = 5 (long sums); variant 1:
// N = 3, D = n. A float column sum against the double reference errs by about u·Σ|dout| (worst
// case N·u·Σ|dout|), Σ|dout| <= N + 2√N for N(0, 1) values: atol = 8u·(N + 2√N) + 8u·6 (the final
// += rounding). Measured on PoCL: 6.1e-5 for N = 4097 (atol 2.0e-3), 4.8e-7 for N = 3 (atol 6e-6).
static void setup_bias_backward(const struct check_case *c, size_t n, struct problem *p) {
    if (c->variant == 0) p->N = n, p->D = 5;
    else p->N = 3, p->D = n;
    add(p, "dbias", p->D, INOUT, GEN_NORMAL);
    add(p, "dout", p->N * p->D, IN, GEN_NORMAL);
    double N = (double)p->N;
    p->atol = 8 * U * (N + 2 * sqrt(N)) + 8 * U * 6;
    p->rtol = 4 * U;
}

// relu: a comparison and a select, exact (±0 may differ in sign, which |a − b| = 0 accepts).
static void setup_relu(const struct check_case *c, size_t n, struct problem *p) {
    p->n = n;
    add(p, c->variant ? "din" : "out", n, OUT, GEN_NORMAL);
    add(p, "in", n, IN, GEN_KINK);
    if (c->variant) add(p, "dout", n, IN, GEN_NORMAL);
}

// silu: x / (1 + exp(−x)). OpenCL allows exp 3 ulp and divide 2.5 ulp: forward relative error
// <= ~7 ulp per side, rtol = 16u·4 ≈ 3.8e-6. The backward σ(1 + x(1 − σ)) cancels near x ≈ −1.28
// (SiLU's minimum), where the error is absolute: ~8u·|x|·|dout| <= 8u·6·6, atol = 4e-6 (that
// covers it twice). atol also absorbs results below FLT_MIN that a device may flush to zero.
// Measured on PoCL: forward 2.2e-7 relative, backward 3.6e-7 absolute.
static void setup_silu(const struct check_case *c, size_t n, struct problem *p) {
    p->n = n;
    add(p, c->variant ? "din" : "out", n, OUT, GEN_NORMAL);
    add(p, "in", n, IN, GEN_WIDE);
    if (c->variant) add(p, "dout", n, IN, GEN_NORMAL);
    p->rtol = 64 * U;
    p->atol = c->variant ? 4e-6 : 1e-30;
}

// sum / sumsq of n values: float on the device (a tree, or serial sums when the launch has few
// work-items), double on the reference. A float sum errs by about u·Σ|x| and at worst
// (log2 n + 1)u·Σ|x| (tree) or (n − 1)u·Σ|x| (serial); Σ|x| <= n + 2√n for N(0, 1) values.
// sum: atol = 8u·(n + 2√n). sumsq, whose terms are all positive, relative: rtol = 8u·(log2 n + 1)
// for a tree plus 4u·√n for the random walk of a serial sum. Measured on PoCL (all launch shapes):
// sum 9.5e-6 (atol 4.9e-4 at n = 1000), sumsq relative 1.2e-6 (launch (1, 1), n = 1000; rtol 1.3e-5).
static void setup_reduce(const struct check_case *c, size_t n, struct problem *p) {
    p->n = n;
    add(p, "out", 1, OUT, GEN_NORMAL);
    add(p, "in", n, IN, GEN_NORMAL);
    double lg = log2((double)n) + 1;
    if (c->variant == 0) p->atol = 8 * U * ((double)n + 2 * sqrt((double)n)), p->rtol = 8 * U * lg;
    else p->atol = 8 * U, p->rtol = 8 * U * lg + 4 * U * sqrt((double)n);
}

// count_nonfinite: an integer count, exact.
static void setup_count(const struct check_case *c, size_t n, struct problem *p) {
    (void)c;
    p->n = n;
    add(p, "out", 1, OUT, GEN_NORMAL);
    add(p, "in", n, IN, GEN_NONFINITE);
    p->t[0].bits = 1;
}

// rng: variant 0 bits (exact), 1 uniform (exact: (0.5 + (u >> 9))·2^-23 is exact in float),
// 2 normal: Box-Muller with log (3 ulp), sqrt (3 ulp), sin/cos (4 ulp) on the device: r·cos θ is
// within ~10 ulp relative of r, i.e. |err| <= 4e-6·max(1, |x|) for |x| < 6 (r <= 5.7 for 23-bit
// uniforms); measured on PoCL: 2.4e-7. The stream starts at an index that is not a multiple of 4
// and exceeds 2^32.
static void setup_rng(const struct check_case *c, size_t n, struct problem *p) {
    p->n = n;
    p->purpose = DCL_RNG_NOISE, p->step = 11, p->first = 0x123456789ull * 4 + 3;
    add(p, "out", n, OUT, GEN_NORMAL);
    p->t[0].bits = c->variant < 2;
    if (c->variant == 2) p->atol = 4e-6, p->rtol = 4e-6;
}

// concat_cols: a copy, bitwise. variant 0: N = n rows of 2 + 3; variant 1: N = 3 rows of n + 5.
static void setup_concat(const struct check_case *c, size_t n, struct problem *p) {
    if (c->variant == 0) p->N = n, p->D = 2, p->D2 = 3;
    else p->N = 3, p->D = n, p->D2 = 5;
    add(p, "out", p->N * (p->D + p->D2), OUT, GEN_NORMAL);
    add(p, "a", p->N * p->D, IN, GEN_NORMAL);
    add(p, "b", p->N * p->D2, IN, GEN_NORMAL);
    p->t[0].bits = 1;
}

// time_embedding: sin/cos of arg = 1000 t freq_j with t ∈ (0, 1), so |arg| < 1000. Both sides
// compute arg with the same float steps, but exp may differ by up to 3 ulp (OpenCL 1.2) against
// glibc's expf (< 1 ulp), which moves arg by up to ~4u·|arg| <= 2.4e-4, and sin/cos add 4 ulp:
// atol = 8u·1000 + 8u ≈ 4.8e-4 bounds the worst conforming device. Measured on PoCL 3.1 (AVX2):
// 6.1e-5 (one ulp of an arg near 1000, from exp rounding differently), 1.2e-7 for E = 16.
// variant 0: N = n, E = 16; variant 1: N = 2, E = 2n.
static void setup_time_embedding(const struct check_case *c, size_t n, struct problem *p) {
    if (c->variant == 0) p->N = n, p->D = 16;
    else p->N = 2, p->D = 2 * n;
    add(p, "out", p->N * p->D, OUT, GEN_NORMAL);
    add(p, "t", p->N, IN, GEN_UNIT);
    p->atol = 8 * U * 1000 + 8 * U;
    p->rtol = 0;
}

// forward_process: two products and one add per output, in the same order on both sides; as
// axpby, |err| <= 2u·Σ|coef·x| per side with |coef|, |x| < 6: atol = 4u·72, rtol 4u. Measured on
// PoCL: 0. variant 0: N = n, D = 3; variant 1: N = 2, D = n.
static void setup_forward_process(const struct check_case *c, size_t n, struct problem *p) {
    if (c->variant == 0) p->N = n, p->D = 3;
    else p->N = 2, p->D = n;
    add(p, "xt", p->N * p->D, OUT, GEN_NORMAL);
    add(p, "target", p->N * p->D, OUT, GEN_NORMAL);
    add(p, "x0", p->N * p->D, IN, GEN_NORMAL);
    add(p, "eps", p->N * p->D, IN, GEN_NORMAL);
    add(p, "coef", p->N * 4, IN, GEN_NORMAL);
    p->atol = 4 * U * 72, p->rtol = 4 * U;
}

// mse_backward: (scale·w)(pred − target) with scale from the host: three IEEE roundings in the
// same order on both sides, so exact; rtol 4u for margin, atol 1e-30 for results a device
// flushes to zero. Measured on PoCL: 0. variant 0: N = n, D = 3; variant 1: N = 2, D = n.
static void setup_mse_backward(const struct check_case *c, size_t n, struct problem *p) {
    if (c->variant == 0) p->N = n, p->D = 3;
    else p->N = 2, p->D = n;
    add(p, "dout", p->N * p->D, OUT, GEN_NORMAL);
    add(p, "pred", p->N * p->D, IN, GEN_NORMAL);
    add(p, "target", p->N * p->D, IN, GEN_NORMAL);
    add(p, "w", p->N, IN, GEN_UNIT);
    p->atol = 1e-30, p->rtol = 4 * U;
}

// adamw_step at step 3 (bias corrections 0.271 and 0.003) with v, gsq >= 0.5 (so the update
// is at most ~0.02 and nothing cancels). The device's sqrt (3 ulp) and divides (2.5 ulp each, the
// clip scale's included) against correctly rounded host ones: m and v within ~8u relative, the
// update within ~16u relative of 0.02; params within u of |p|. rtol 64u, atol 64u·0.02·4 ≈ 3e-7
// covers it with margin. Measured on PoCL: 0. variant 0: no decay, no clip; 1: decay 0.1 and a
// clip of 1e-3 that always applies; 2: decay 0.1 and a clip of 1e6 that never does.
static void setup_adamw(const struct check_case *c, size_t n, struct problem *p) {
    p->n = n;
    p->lr = 0.01f, p->beta1 = 0.9f, p->beta2 = 0.999f, p->eps = 1e-8f, p->adam_step = 3;
    p->wd = c->variant ? 0.1f : 0.0f;
    p->clip = c->variant == 1 ? 1e-3f : c->variant == 2 ? 1e6f : 0.0f;
    add(p, "params", n, INOUT, GEN_NORMAL);
    add(p, "m", n, INOUT, GEN_NORMAL);
    add(p, "v", n, INOUT, GEN_POSITIVE);
    add(p, "grads", n, IN, GEN_NORMAL);
    add(p, "gsq", 1, IN, GEN_POSITIVE);
    p->atol = 64 * U * 0.02 * 4, p->rtol = 64 * U;
}

// ---- images and class embedding --------------------------------------------------------------
//
// Each case grows one dimension with n and keeps the others small and odd, so every op sees
// ragged sizes while n = 257 stays quick under Oclgrind (at most ~20k elements).

static uint32_t float_bits(float f);
static float bits_float(uint32_t u);

// im2col and col2im geometries: variant 0: 3×3, stride 1, pad 1 (W = n); 1: 3×3, stride 2,
// pad 1 (H = n); 2: 1×1 (C = n); 3: 4×4, stride 3, pad 2 (W = n + 1; rows and columns that see
// only padding).
static void conv_shape(int variant, size_t n, struct problem *p) {
    switch (variant) {
    case 0: p->N = 1, p->C = 2, p->H = 4, p->W = n, p->k = 3, p->stride = 1, p->pad = 1; break;
    case 1: p->N = 2, p->C = 2, p->H = n, p->W = 6, p->k = 3, p->stride = 2, p->pad = 1; break;
    case 2: p->N = 3, p->C = n, p->H = 2, p->W = 3, p->k = 1, p->stride = 1, p->pad = 0; break;
    default: p->N = 2, p->C = 2, p->H = 3, p->W = n + 1, p->k = 4, p->stride = 3, p->pad = 2; break;
    }
}

static size_t conv_cols(const struct problem *p) {
    size_t Ho = (p->H + 2 * p->pad - p->k) / p->stride + 1;
    size_t Wo = (p->W + 2 * p->pad - p->k) / p->stride + 1;
    return p->C * p->k * p->k * p->N * Ho * Wo;
}

// im2col: a gather of copies and zeros, bitwise (non-finite inputs keep their payloads).
static void setup_im2col(const struct check_case *c, size_t n, struct problem *p) {
    conv_shape(c->variant, n, p);
    add(p, "col", conv_cols(p), OUT, GEN_NORMAL);
    add(p, "in", p->N * p->C * p->H * p->W, IN, GEN_NONFINITE);
    p->t[0].bits = 1;
}

// col2im: each pixel adds at most ⌈k/s⌉² col entries with float adds in (ky, kx) order on both
// sides, so the results agree bitwise; atol = 2u·6·k² bounds a device that reassociates.
// Measured on PoCL: 0.
static void setup_col2im(const struct check_case *c, size_t n, struct problem *p) {
    conv_shape(c->variant, n, p);
    add(p, "din", p->N * p->C * p->H * p->W, OUT, GEN_NORMAL);
    add(p, "col", conv_cols(p), IN, GEN_NORMAL);
    p->atol = 2 * U * 6 * (double)(p->k * p->k);
}

// swap01: a copy, bitwise. variant 0: A = n; 1: B = n; 2: R = n.
static void setup_swap01(const struct check_case *c, size_t n, struct problem *p) {
    size_t A = 4, B = 3, R = 5;
    if (c->variant == 0) A = n;
    else if (c->variant == 1) B = n, R = 3;
    else A = 2, R = n;
    p->M = A, p->N = B, p->R = R;
    add(p, "out", A * B * R, OUT, GEN_NORMAL);
    add(p, "in", A * B * R, IN, GEN_NONFINITE);
    p->t[0].bits = 1;
}

// channel_bias_add: one IEEE add per element, exact. variant 0: bias (C), R = n; 1: bias (N, C),
// C = n; 2: bias (C), N = n, in place; 3: bias (N, C), R = n, in place.
static void setup_channel_bias_add(const struct check_case *c, size_t n, struct problem *p) {
    switch (c->variant) {
    case 0: p->N = 2, p->C = 3, p->R = n; break;
    case 1: p->N = 3, p->C = n, p->R = 5; break;
    case 2: p->N = n, p->C = 3, p->R = 4; break;
    default: p->N = 2, p->C = 5, p->R = n; break;
    }
    p->per_sample = c->variant & 1;
    size_t len = p->N * p->C * p->R;
    if (c->variant >= 2) {
        add(p, "x", len, INOUT, GEN_NORMAL);
    } else {
        add(p, "out", len, OUT, GEN_NORMAL);
        add(p, "in", len, IN, GEN_NORMAL);
    }
    add(p, "bias", p->per_sample ? p->N * p->C : p->C, IN, GEN_NORMAL);
}

// channel_bias_backward: sums of L = N·R (per_sample 0, +=) or L = R (per_sample 1, =) values in
// float on the device (a tree over a serial part whose length depends on the launch) against
// double on the reference: as bias_backward, atol = 8u·(L + 2√L) + 8u·6, rtol 4u. Measured on
// PoCL: 4.6e-5 (L = 12291, atol 6.0e-3), 1.4e-6 (L = 7, atol 8.7e-6).
// variant 0: C sums over N = 3, R = n; 1: N = n, R = 3 (strided); 2: per sample, R = n;
// 3: per sample, N = n/8 + 1 (rows of 7: many short work-groups, slow under Oclgrind).
static void setup_channel_bias_backward(const struct check_case *c, size_t n, struct problem *p) {
    switch (c->variant) {
    case 0: p->N = 3, p->C = 4, p->R = n; break;
    case 1: p->N = n, p->C = 5, p->R = 3; break;
    case 2: p->N = 2, p->C = 3, p->R = n; break;
    default: p->N = n / 8 + 1, p->C = 4, p->R = 7; break; // n / 8: one barrier tree per row
    }
    p->per_sample = c->variant >= 2;
    add(p, "dbias", p->per_sample ? p->N * p->C : p->C, p->per_sample ? OUT : INOUT, GEN_NORMAL);
    add(p, "dout", p->N * p->C * p->R, IN, GEN_NORMAL);
    double L = (double)(p->per_sample ? p->R : p->N * p->R);
    p->atol = 8 * U * (L + 2 * sqrt(L)) + 8 * U * 6;
    p->rtol = 4 * U;
}

// GroupNorm shapes: variant 0: N = 2, C = 8, G = 2, R = n (long groups); 1: N = n/8 + 1, C = 6,
// G = 3, R = 5 (many short groups, each a work-group with its barriers: slow under Oclgrind);
// 2: G = C (instance norm), R = n + 1; 3: G = 1 (layer norm), R = n.
static void group_norm_shape(int variant, size_t n, struct problem *p) {
    switch (variant) {
    case 0: p->N = 2, p->C = 8, p->G = 2, p->R = n; break;
    case 1: p->N = n / 8 + 1, p->C = 6, p->G = 3, p->R = 5; break;
    case 2: p->N = 3, p->C = 4, p->G = 4, p->R = n + 1; break;
    default: p->N = 2, p->C = 3, p->G = 1, p->R = n; break;
    }
    p->eps = 1e-5f;
}

// group_norm_forward on x = 8 + N(0, 1) (a mean eight spreads from 0, which a one-pass
// E[x²] − E[x]² in float would turn into errors of ~64u·M). The device's float mean errs by
// δμ <~ u·(serial part + log2 M)·8, which moves every output by δμ·rstd·|gamma| (rstd ~ 1,
// |gamma| < 4); the variance's relative error (~u·√M, squares add no cancellation) moves it by
// that times |x̂·gamma| (|x̂| < 5), and rsqrt adds 2 ulp. The mean dominates, and most under the
// serial launch (1, 1): one work-item sums all M <= 4·4097 values, a random walk of
// ~u·8·√M ≈ 6e-5 in Σx/M at worst-case-free rounding, times |gamma| < 4. atol 1e-4, rtol 64u
// ≈ 3.8e-6 (mean ~8 and rstd ~1 are compared under the same rule). Measured on PoCL: out
// 1.5e-5 (launch (1, 1), M = 16388, from a mean 5.7e-6 off), rstd 4.8e-7; 4.6e-6 at the
// default launch.
static void setup_group_norm_forward(const struct check_case *c, size_t n, struct problem *p) {
    group_norm_shape(c->variant, n, p);
    size_t len = p->N * p->C * p->R;
    add(p, "out", len, OUT, GEN_NORMAL);
    add(p, "mean", p->N * p->G, OUT, GEN_NORMAL);
    add(p, "rstd", p->N * p->G, OUT, GEN_NORMAL);
    add(p, "in", len, IN, GEN_SHIFTED);
    add(p, "gamma", p->C, IN, GEN_NORMAL);
    add(p, "beta", p->C, IN, GEN_NORMAL);
    p->atol = 1e-4, p->rtol = 64 * U;
}

// The backward's saved statistics, consistent with its input as the forward would leave them:
// mean and rstd of each group in double, rounded to float. Tensors: 4 in, 5 mean, 6 rstd.
static void derive_group_norm(const struct problem *p, uint32_t *const *init, size_t off) {
    size_t M = p->C / p->G * p->R;
    for (size_t row = 0; row < p->N * p->G; row++) {
        const uint32_t *x = init[4] + off + row * M;
        double mu = 0, var = 0;
        for (size_t j = 0; j < M; j++) mu += bits_float(x[j]);
        mu /= (double)M;
        for (size_t j = 0; j < M; j++) var += (bits_float(x[j]) - mu) * (bits_float(x[j]) - mu);
        var /= (double)M;
        init[5][off + row] = float_bits((float)mu);
        init[6][off + row] = float_bits((float)(1 / sqrt(var + p->eps)));
    }
}

// group_norm_backward with consistent statistics (derive_group_norm). din: the device's float
// sums Σg and Σg·x̂ over M elements err by ~u·(serial part + log2 M)·Σ|g|, divided by M; with
// |g| = |gamma·dout| < 24, |x̂| < 5 and rstd ~ 1 that moves din by < ~1e-5: atol 2e-5.
// dgamma and dbeta sum L = N·R terms dout·x̂ and dout, products of independent unit normals
// with E|·| <= 0.8: as channel_bias_backward, atol 8u·(L + 2√L) + 8u·6. rtol 64u for both.
// Measured on PoCL: din 1.7e-6 (atol 2e-5); dgamma 9.5e-5, dbeta 9.2e-5 (L = 8194, atol 3.9e-3).
static void setup_group_norm_backward(const struct check_case *c, size_t n, struct problem *p) {
    group_norm_shape(c->variant, n, p);
    size_t len = p->N * p->C * p->R;
    add(p, "din", len, OUT, GEN_NORMAL);
    add(p, "dgamma", p->C, INOUT, GEN_NORMAL);
    add(p, "dbeta", p->C, INOUT, GEN_NORMAL);
    add(p, "dout", len, IN, GEN_NORMAL);
    add(p, "in", len, IN, GEN_SHIFTED);
    add(p, "mean", p->N * p->G, IN, GEN_NORMAL); // derived
    add(p, "rstd", p->N * p->G, IN, GEN_NORMAL); // derived
    add(p, "gamma", p->C, IN, GEN_NORMAL);
    double L = (double)(p->N * p->R);
    p->atol = 2e-5, p->rtol = 64 * U;
    p->t[1].atol = p->t[2].atol = 8 * U * (L + 2 * sqrt(L)) + 8 * U * 6;
}

// upsample2x: variant 0: W = n; 1: H = n. The forward copies (bitwise); the backward adds four
// values in the same order on both sides (exact; atol 2u·4·6 for a device that reassociates).
// Measured on PoCL: 0.
static void setup_upsample2x(const struct check_case *c, size_t n, struct problem *p) {
    int backward = c->variant >= 2;
    if (c->variant % 2 == 0) p->N = 2, p->C = 3, p->H = 2, p->W = n;
    else p->N = 1, p->C = 2, p->H = n, p->W = 3;
    size_t small = p->N * p->C * p->H * p->W;
    add(p, backward ? "din" : "out", backward ? small : 4 * small, OUT, GEN_NORMAL);
    add(p, backward ? "dout" : "in", backward ? 4 * small : small, IN,
        backward ? GEN_NORMAL : GEN_NONFINITE);
    p->t[0].bits = !backward;
    p->atol = 2 * U * 4 * 6;
}

// concat_channels / split_channels: copies, bitwise. variant 0: C2 = n; 1: N = n; 2: C1 = n, R = 1.
static void setup_channels(const struct check_case *c, size_t n, struct problem *p) {
    int split = c->variant >= 3;
    switch (c->variant % 3) {
    case 0: p->N = 2, p->C = 3, p->D2 = n, p->R = 5; break;
    case 1: p->N = n, p->C = 2, p->D2 = 1, p->R = 3; break;
    default: p->N = 2, p->C = n, p->D2 = 4, p->R = 1; break;
    }
    size_t la = p->N * p->C * p->R, lb = p->N * p->D2 * p->R;
    if (split) {
        add(p, "da", la, OUT, GEN_NORMAL);
        add(p, "db", lb, OUT, GEN_NORMAL);
        add(p, "dout", la + lb, IN, GEN_NONFINITE);
        p->t[0].bits = p->t[1].bits = 1;
    } else {
        add(p, "out", la + lb, OUT, GEN_NORMAL);
        add(p, "a", la, IN, GEN_NONFINITE);
        add(p, "b", lb, IN, GEN_NONFINITE);
        p->t[0].bits = 1;
    }
}

// embedding with K = 7 classes and labels 0..9 plus 0xffffffff (out of range: zero rows, no
// gradient). variant 0: N = n, E = 5; 1: N = 3, E = n; 2: K = n classes, N = 6, E = 3.
// The forward copies rows and zeros (bitwise). The backward sums at most N dout values per entry
// in float (in order) against double, then adds: atol 8u·(N + 2√N) + 8u·6, rtol 4u, as
// bias_backward. Measured on PoCL: 1.9e-5 (N = 4097, atol 2.0e-3), 2.4e-7 (N = 3 or 6).
static void setup_embedding(const struct check_case *c, size_t n, struct problem *p) {
    int backward = c->variant >= 3;
    switch (c->variant % 3) {
    case 0: p->N = n, p->K = 7, p->D = 5; break;
    case 1: p->N = 3, p->K = 7, p->D = n; break;
    default: p->N = 6, p->K = n, p->D = 3; break;
    }
    if (backward) {
        add(p, "dtable", p->K * p->D, INOUT, GEN_NORMAL);
        add(p, "dout", p->N * p->D, IN, GEN_NORMAL);
    } else {
        add(p, "out", p->N * p->D, OUT, GEN_NORMAL);
        add(p, "table", p->K * p->D, IN, GEN_NONFINITE);
        p->t[0].bits = 1;
    }
    add(p, "labels", p->N, IN, GEN_LABEL);
    double N = (double)p->N;
    p->atol = 8 * U * (N + 2 * sqrt(N)) + 8 * U * 6, p->rtol = 4 * U;
}

// ---- runs: the op through its public wrapper --------------------------------------------------

static dcl_status run_fill(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_fill(dev, t[0], p->a, p->n);
}
static dcl_status run_copy(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_copy(dev, t[0], t[1], p->n);
}
static dcl_status run_axpby(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_axpby(dev, t[0], t[1], t[2], p->a, p->b, p->n);
}
static dcl_status run_axpby_inplace(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_axpby(dev, t[0], t[0], t[1], p->a, p->b, p->n);
}
static dcl_status run_lincomb3(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_lincomb3(dev, t[0], t[1], t[2], t[3], p->a, p->b, p->c, p->n);
}
static dcl_status run_gemm(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_gemm(dev, t[0], t[1], t[2], p->ta, p->tb, p->M, p->N, p->K, p->alpha, p->beta);
}
static dcl_status run_bias_add(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_bias_add(dev, t[0], t[1], t[2], p->N, p->D);
}
static dcl_status run_bias_add_inplace(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_bias_add(dev, t[0], t[0], t[1], p->N, p->D);
}
static dcl_status run_bias_backward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_bias_backward(dev, t[0], t[1], p->N, p->D);
}
static dcl_status run_relu_forward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_relu_forward(dev, t[0], t[1], p->n);
}
static dcl_status run_relu_backward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_relu_backward(dev, t[0], t[1], t[2], p->n);
}
static dcl_status run_silu_forward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_silu_forward(dev, t[0], t[1], p->n);
}
static dcl_status run_silu_backward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_silu_backward(dev, t[0], t[1], t[2], p->n);
}
static dcl_status run_sum(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_sum(dev, t[0], t[1], p->n);
}
static dcl_status run_sumsq(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_sumsq(dev, t[0], t[1], p->n);
}
static dcl_status run_count_nonfinite(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_count_nonfinite(dev, t[0], t[1], p->n);
}
static dcl_status run_rng_bits(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_rng_bits(dev, t[0], p->seed, p->purpose, p->step, p->first, p->n);
}
static dcl_status run_rng_uniform(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_rng_uniform(dev, t[0], p->seed, p->purpose, p->step, p->first, p->n);
}
static dcl_status run_rng_normal(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_rng_normal(dev, t[0], p->seed, p->purpose, p->step, p->first, p->n);
}

static dcl_status run_concat_cols(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_concat_cols(dev, t[0], t[1], t[2], p->N, p->D, p->D2);
}
static dcl_status run_time_embedding(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_time_embedding(dev, t[0], t[1], p->N, p->D);
}
static dcl_status run_forward_process(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_forward_process(dev, t[0], t[1], t[2], t[3], t[4], p->N, p->D);
}
static dcl_status run_mse_backward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_mse_backward(dev, t[0], t[1], t[2], t[3], p->N, p->D);
}
static dcl_status run_adamw_step(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_adamw_step(dev, t[0], t[1], t[2], t[3], t[4], p->n, p->lr, p->beta1, p->beta2,
                          p->eps, p->wd, p->clip, p->adam_step);
}

static dcl_status run_im2col(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_im2col(dev, t[0], t[1], p->N, p->C, p->H, p->W, p->k, p->stride, p->pad);
}
static dcl_status run_col2im(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_col2im(dev, t[0], t[1], p->N, p->C, p->H, p->W, p->k, p->stride, p->pad);
}
static dcl_status run_swap01(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_swap01(dev, t[0], t[1], p->M, p->N, p->R);
}
static dcl_status run_channel_bias_add(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    if (p->t[0].role == INOUT) // in place
        return dcl_channel_bias_add(dev, t[0], t[0], t[1], p->N, p->C, p->R, p->per_sample);
    return dcl_channel_bias_add(dev, t[0], t[1], t[2], p->N, p->C, p->R, p->per_sample);
}
static dcl_status run_channel_bias_backward(dcl_device *dev, const struct problem *p,
                                            const dcl_ptr *t) {
    return dcl_channel_bias_backward(dev, t[0], t[1], p->N, p->C, p->R, p->per_sample);
}
static dcl_status run_group_norm_forward(dcl_device *dev, const struct problem *p,
                                         const dcl_ptr *t) {
    return dcl_group_norm_forward(dev, t[0], t[1], t[2], t[3], t[4], t[5], p->N, p->C, p->R, p->G,
                                  p->eps);
}
static dcl_status run_group_norm_backward(dcl_device *dev, const struct problem *p,
                                          const dcl_ptr *t) {
    return dcl_group_norm_backward(dev, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], p->N, p->C,
                                   p->R, p->G);
}
static dcl_status run_upsample2x_forward(dcl_device *dev, const struct problem *p,
                                         const dcl_ptr *t) {
    return dcl_upsample2x_forward(dev, t[0], t[1], p->N, p->C, p->H, p->W);
}
static dcl_status run_upsample2x_backward(dcl_device *dev, const struct problem *p,
                                          const dcl_ptr *t) {
    return dcl_upsample2x_backward(dev, t[0], t[1], p->N, p->C, p->H, p->W);
}
static dcl_status run_concat_channels(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_concat_channels(dev, t[0], t[1], t[2], p->N, p->C, p->D2, p->R);
}
static dcl_status run_split_channels(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    return dcl_split_channels(dev, t[0], t[1], t[2], p->N, p->C, p->D2, p->R);
}
static dcl_status run_embedding_forward(dcl_device *dev, const struct problem *p,
                                        const dcl_ptr *t) {
    return dcl_embedding_forward(dev, t[0], t[1], t[2], p->N, p->K, p->D);
}
static dcl_status run_embedding_backward(dcl_device *dev, const struct problem *p,
                                         const dcl_ptr *t) {
    return dcl_embedding_backward(dev, t[0], t[1], t[2], p->N, p->K, p->D);
}

// Every op of DCL_OP_MAP has at least one row named after it ("gemm" → "gemm_nn"); tests/test_ops.c
// checks that. {name, setup, run, trans_a, trans_b, variant, derive}
static const struct check_case cases[] = {
    {"fill", setup_fill, run_fill, 0, 0, 0, NULL},
    {"copy", setup_copy, run_copy, 0, 0, 0, NULL},
    {"axpby", setup_lin, run_axpby, 0, 0, 0, NULL},
    {"axpby_inplace", setup_lin, run_axpby_inplace, 0, 0, 1, NULL},
    {"lincomb3", setup_lin, run_lincomb3, 0, 0, 3, NULL},
    {"gemm_nn", setup_gemm, run_gemm, 0, 0, 0, NULL},
    {"gemm_nt", setup_gemm, run_gemm, 0, 1, 0, NULL},
    {"gemm_tn", setup_gemm, run_gemm, 1, 0, 0, NULL},
    {"gemm_tt", setup_gemm, run_gemm, 1, 1, 0, NULL},
    {"gemm_nn_beta", setup_gemm, run_gemm, 0, 0, 1, NULL},
    {"gemm_nt_beta", setup_gemm, run_gemm, 0, 1, 1, NULL},
    {"gemm_tn_beta", setup_gemm, run_gemm, 1, 0, 1, NULL},
    {"gemm_tt_beta", setup_gemm, run_gemm, 1, 1, 1, NULL},
    {"gemm_nn_wide", setup_gemm, run_gemm, 0, 0, 2, NULL},
    {"gemm_tn_wide", setup_gemm, run_gemm, 1, 0, 2, NULL},
    {"bias_add", setup_bias_add, run_bias_add, 0, 0, 0, NULL},
    {"bias_add_inplace", setup_bias_add, run_bias_add_inplace, 0, 0, 1, NULL},
    {"bias_backward", setup_bias_backward, run_bias_backward, 0, 0, 0, NULL},
    {"bias_backward_wide", setup_bias_backward, run_bias_backward, 0, 0, 1, NULL},
    {"relu_forward", setup_relu, run_relu_forward, 0, 0, 0, NULL},
    {"relu_backward", setup_relu, run_relu_backward, 0, 0, 1, NULL},
    {"silu_forward", setup_silu, run_silu_forward, 0, 0, 0, NULL},
    {"silu_backward", setup_silu, run_silu_backward, 0, 0, 1, NULL},
    {"sum", setup_reduce, run_sum, 0, 0, 0, NULL},
    {"sumsq", setup_reduce, run_sumsq, 0, 0, 1, NULL},
    {"count_nonfinite", setup_count, run_count_nonfinite, 0, 0, 0, NULL},
    {"concat_cols", setup_concat, run_concat_cols, 0, 0, 0, NULL},
    {"concat_cols_wide", setup_concat, run_concat_cols, 0, 0, 1, NULL},
    {"time_embedding", setup_time_embedding, run_time_embedding, 0, 0, 0, NULL},
    {"time_embedding_wide", setup_time_embedding, run_time_embedding, 0, 0, 1, NULL},
    {"forward_process", setup_forward_process, run_forward_process, 0, 0, 0, NULL},
    {"forward_process_wide", setup_forward_process, run_forward_process, 0, 0, 1, NULL},
    {"mse_backward", setup_mse_backward, run_mse_backward, 0, 0, 0, NULL},
    {"mse_backward_wide", setup_mse_backward, run_mse_backward, 0, 0, 1, NULL},
    {"adamw_step", setup_adamw, run_adamw_step, 0, 0, 0, NULL},
    {"adamw_step_clip", setup_adamw, run_adamw_step, 0, 0, 1, NULL},
    {"adamw_step_noclip", setup_adamw, run_adamw_step, 0, 0, 2, NULL},
    {"rng_bits", setup_rng, run_rng_bits, 0, 0, 0, NULL},
    {"rng_uniform", setup_rng, run_rng_uniform, 0, 0, 1, NULL},
    {"rng_normal", setup_rng, run_rng_normal, 0, 0, 2, NULL},
    {"im2col", setup_im2col, run_im2col, 0, 0, 0, NULL},
    {"im2col_stride2", setup_im2col, run_im2col, 0, 0, 1, NULL},
    {"im2col_1x1", setup_im2col, run_im2col, 0, 0, 2, NULL},
    {"im2col_k4s3p2", setup_im2col, run_im2col, 0, 0, 3, NULL},
    {"col2im", setup_col2im, run_col2im, 0, 0, 0, NULL},
    {"col2im_stride2", setup_col2im, run_col2im, 0, 0, 1, NULL},
    {"col2im_1x1", setup_col2im, run_col2im, 0, 0, 2, NULL},
    {"col2im_k4s3p2", setup_col2im, run_col2im, 0, 0, 3, NULL},
    {"swap01", setup_swap01, run_swap01, 0, 0, 0, NULL},
    {"swap01_wide_b", setup_swap01, run_swap01, 0, 0, 1, NULL},
    {"swap01_wide_r", setup_swap01, run_swap01, 0, 0, 2, NULL},
    {"channel_bias_add", setup_channel_bias_add, run_channel_bias_add, 0, 0, 0, NULL},
    {"channel_bias_add_sample", setup_channel_bias_add, run_channel_bias_add, 0, 0, 1, NULL},
    {"channel_bias_add_inplace", setup_channel_bias_add, run_channel_bias_add, 0, 0, 2, NULL},
    {"channel_bias_add_sample_inplace", setup_channel_bias_add, run_channel_bias_add, 0, 0, 3,
     NULL},
    {"channel_bias_backward", setup_channel_bias_backward, run_channel_bias_backward, 0, 0, 0,
     NULL},
    {"channel_bias_backward_batch", setup_channel_bias_backward, run_channel_bias_backward, 0, 0, 1,
     NULL},
    {"channel_bias_backward_sample", setup_channel_bias_backward, run_channel_bias_backward, 0, 0,
     2, NULL},
    {"channel_bias_backward_sample_batch", setup_channel_bias_backward, run_channel_bias_backward,
     0, 0, 3, NULL},
    {"group_norm_forward", setup_group_norm_forward, run_group_norm_forward, 0, 0, 0, NULL},
    {"group_norm_forward_batch", setup_group_norm_forward, run_group_norm_forward, 0, 0, 1, NULL},
    {"group_norm_forward_instance", setup_group_norm_forward, run_group_norm_forward, 0, 0, 2,
     NULL},
    {"group_norm_forward_layer", setup_group_norm_forward, run_group_norm_forward, 0, 0, 3, NULL},
    {"group_norm_backward", setup_group_norm_backward, run_group_norm_backward, 0, 0, 0,
     derive_group_norm},
    {"group_norm_backward_batch", setup_group_norm_backward, run_group_norm_backward, 0, 0, 1,
     derive_group_norm},
    {"group_norm_backward_instance", setup_group_norm_backward, run_group_norm_backward, 0, 0, 2,
     derive_group_norm},
    {"group_norm_backward_layer", setup_group_norm_backward, run_group_norm_backward, 0, 0, 3,
     derive_group_norm},
    {"upsample2x_forward", setup_upsample2x, run_upsample2x_forward, 0, 0, 0, NULL},
    {"upsample2x_forward_tall", setup_upsample2x, run_upsample2x_forward, 0, 0, 1, NULL},
    {"upsample2x_backward", setup_upsample2x, run_upsample2x_backward, 0, 0, 2, NULL},
    {"upsample2x_backward_tall", setup_upsample2x, run_upsample2x_backward, 0, 0, 3, NULL},
    {"concat_channels", setup_channels, run_concat_channels, 0, 0, 0, NULL},
    {"concat_channels_batch", setup_channels, run_concat_channels, 0, 0, 1, NULL},
    {"concat_channels_wide", setup_channels, run_concat_channels, 0, 0, 2, NULL},
    {"split_channels", setup_channels, run_split_channels, 0, 0, 3, NULL},
    {"split_channels_batch", setup_channels, run_split_channels, 0, 0, 4, NULL},
    {"split_channels_wide", setup_channels, run_split_channels, 0, 0, 5, NULL},
    {"embedding_forward", setup_embedding, run_embedding_forward, 0, 0, 0, NULL},
    {"embedding_forward_wide", setup_embedding, run_embedding_forward, 0, 0, 1, NULL},
    {"embedding_forward_classes", setup_embedding, run_embedding_forward, 0, 0, 2, NULL},
    {"embedding_backward", setup_embedding, run_embedding_backward, 0, 0, 3, NULL},
    {"embedding_backward_wide", setup_embedding, run_embedding_backward, 0, 0, 4, NULL},
    {"embedding_backward_classes", setup_embedding, run_embedding_backward, 0, 0, 5, NULL},
};

#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

int dcl_check_case_count(void) { return N_CASES; }

const char *dcl_check_case_name(int i) { return i >= 0 && i < N_CASES ? cases[i].name : NULL; }

// ---- inputs -----------------------------------------------------------------------------------

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Element i of tensor k, drawn from the seed's stream (step k keeps tensors independent).
static uint32_t gen_word(enum gen g, uint64_t seed, uint32_t k, size_t i) {
    float x = dcl_rng_normal_at(seed, DCL_RNG_TEST, k, i);
    uint32_t r = dcl_rng_bits_at(seed, DCL_RNG_TEST, 100 + k, i);
    switch (g) {
    case GEN_NORMAL: break;
    case GEN_KINK:
        if (r % 16 == 0) x = (r & 16) ? -0.0f : 0.0f;
        if (r % 64 == 1) x = (r & 64) ? -INFINITY : INFINITY;
        if (r % 64 == 2) x = NAN; // relu keeps NaN (forward) and zeroes its gradient
        break;
    case GEN_WIDE:
        if (r % 8 == 0) x *= 30.0f;
        break;
    case GEN_UNIT: return float_bits(dcl_u01(r));
    case GEN_POSITIVE: return float_bits(fabsf(x) + 0.5f);
    case GEN_SHIFTED: return float_bits(x + 8.0f);
    case GEN_LABEL: return r % 64 == 63 ? 0xffffffffu : r % 10;
    case GEN_NONFINITE:
        if (r % 16 == 0) return 0x7fc00000u | (r >> 20) | ((r & 32) ? 0x80000000u : 0); // NaN
        if (r % 16 == 1) x = INFINITY;
        if (r % 16 == 2) x = -INFINITY;
        break;
    }
    return float_bits(x);
}

// ---- the runner -------------------------------------------------------------------------------

// The word that fills tensor k's guards (and an OUT tensor's own elements before the op). Each is
// chosen so that a stray access shows: an input's guards are NaN with a payload of its own, so an
// out-of-bounds read poisons a sum or a count; an output's guards are another NaN, which no value
// computed from inputs (which carries the input's payload, or none) reproduces; an in-out
// tensor's guards are an ordinary number, so an in-place op writing one past the end computes
// something else from it (a NaN there would pass through a*x + b*y unchanged).
static uint32_t guard_word(enum role role, int k) {
    if (role == IN) return 0x7fc0e000u + (uint32_t)k;
    if (role == OUT) return 0x7fc0dcb1u;
    return 0xc49a522bu; // -1234.5677f
}

static dcl_device *reference;

static void reference_free(void) {
    dcl_device_free(reference);
    reference = NULL;
}

static dcl_status reference_device(dcl_device **out) {
    if (!reference) {
        // The comparison's own reference device is not the user's pick: open it without the
        // "device cpu: ..." line, which would read as if the user had chosen the CPU.
        int level = dcl_log_get_level();
        if (level == DCL_LOG_INFO) dcl_log_set_level(DCL_LOG_ERROR);
        dcl_status s = dcl_device_open(&reference, "cpu");
        dcl_log_set_level(level);
        if (s != DCL_OK) return dcl__fail_context(s, "opening the CPU reference for op checks");
        atexit(reference_free);
    }
    *out = reference;
    return DCL_OK;
}

// Appends printf-style text to r->detail, silently truncating.
static void note(dcl_check_result *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void note(dcl_check_result *r, const char *fmt, ...) {
    size_t k = strlen(r->detail);
    if (k + 1 >= sizeof r->detail) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail + k, sizeof r->detail - k, fmt, ap);
    va_end(ap);
}

// Compares one output region element by element; returns the number of mismatches. An OUT
// element still holding the guard word g was never written (by the device, or by the reference:
// a NaN on both sides would otherwise compare equal); raw-bit outputs are exempt, since random
// bits may take any value.
static size_t compare(dcl_check_result *r, const struct problem *p, const struct tensor *t,
                      const uint32_t *got, const uint32_t *want, uint32_t g, size_t *shown) {
    size_t bad = 0;
    for (size_t i = 0; i < t->len; i++) {
        int ok;
        float a = bits_float(got[i]), b = bits_float(want[i]);
        if (t->role == OUT && !t->bits && (got[i] == g || want[i] == g)) {
            ok = 0;
        } else if (t->bits) {
            ok = got[i] == want[i];
        } else if (!isfinite(a) || !isfinite(b)) {
            ok = (isnan(a) && isnan(b)) || a == b; // same non-finite class in the same place
        } else {
            double d = fabs((double)a - (double)b);
            if (d > r->max_abs) r->max_abs = d;
            if (b != 0.0f && d / fabs((double)b) > r->max_rel) r->max_rel = d / fabs((double)b);
            ok = d <= (t->atol > 0 ? t->atol : p->atol) + p->rtol * fabs((double)b);
        }
        if (ok) continue;
        if (bad++ == 0 && *shown == 0) note(r, "mismatches:");
        if (*shown < MAX_SHOWN) {
            (*shown)++;
            if (t->bits) note(r, " %s[%zu] dev=0x%08x ref=0x%08x;", t->name, i, got[i], want[i]);
            else if (t->role == OUT && (got[i] == g || want[i] == g))
                note(r, " %s[%zu] %s never written;", t->name, i, got[i] == g ? "dev" : "ref");
            else note(r, " %s[%zu] dev=%.9g ref=%.9g;", t->name, i, a, b);
        }
    }
    return bad;
}

// Reports the first word of [lo, hi) that is not the guard word g; returns 1 if any.
static int guard_damaged(dcl_check_result *r, const struct tensor *t, const uint32_t *buf,
                         size_t lo, size_t hi, uint32_t g, const char *where) {
    for (size_t i = lo; i < hi; i++) {
        if (buf[i] == g) continue;
        note(r, " %s: guard %s written at buffer element %zu (0x%08x);", t->name, where, i, buf[i]);
        return 1;
    }
    return 0;
}

// Host copies and device buffers of one run; freed on every path by free_run.
struct run {
    uint32_t *init[MAX_TENSORS], *got[MAX_TENSORS], *want[MAX_TENSORS];
    dcl_buffer *dbuf[MAX_TENSORS], *rbuf[MAX_TENSORS];
};

static void free_run(struct run *u) {
    for (int k = 0; k < MAX_TENSORS; k++) {
        free(u->init[k]), free(u->got[k]), free(u->want[k]);
        dcl_buffer_free(u->dbuf[k]), dcl_buffer_free(u->rbuf[k]);
    }
}

// Allocates the buffers of p on dev, writes the initial words, runs the case and reads every
// buffer back whole (guards included) into out[k].
static dcl_status run_on(dcl_device *dev, const struct check_case *c, const struct problem *p,
                         size_t off, uint32_t *const *init, dcl_buffer **bufs, uint32_t **out) {
    dcl_ptr ptr[MAX_TENSORS];
    dcl_status s = DCL_OK;
    for (int k = 0; k < p->nt && s == DCL_OK; k++) {
        size_t total = off + p->t[k].len + GUARD;
        s = dcl_buffer_alloc(&bufs[k], dev, total, p->t[k].name);
        if (s == DCL_OK) s = dcl_buffer_write(bufs[k], 0, total, init[k]);
        ptr[k] = dcl_at(bufs[k], off);
    }
    if (s == DCL_OK && (s = c->run(dev, p, ptr)) != DCL_OK)
        return dcl__fail_context(s, "op case %s (n=%zu, off=%zu) on %s", c->name, p->n, off,
                                 dcl_device_get_info(dev)->spec);
    for (int k = 0; k < p->nt && s == DCL_OK; k++)
        s = dcl_buffer_read(bufs[k], 0, off + p->t[k].len + GUARD, out[k]);
    return s;
}

dcl_status dcl_check_case_run(dcl_device *dev, int i, size_t n, size_t off, uint64_t seed,
                              dcl_check_result *r) {
    memset(r, 0, sizeof *r);
    if (i < 0 || i >= N_CASES)
        return dcl__fail(DCL_ERR_ARG, "op case %d does not exist (there are %d)", i, N_CASES);
    const struct check_case *c = &cases[i];
    snprintf(r->name, sizeof r->name, "%s", c->name);
    r->n = n;
    if (!dev) return dcl__fail(DCL_ERR_ARG, "op case %s: no device", c->name);
    if (n < 1 || n > ((size_t)1 << 24) || off > ((size_t)1 << 24))
        return dcl__fail(DCL_ERR_ARG, "op case %s: size %zu or offset %zu out of range [1, 2^24]",
                         c->name, n, off);

    struct problem p = {0};
    p.seed = seed;
    c->setup(c, n, &p);
    r->atol = (float)p.atol, r->rtol = (float)p.rtol;

    dcl_device *ref = NULL;
    dcl_status s = reference_device(&ref);
    if (s != DCL_OK) return s;

    struct run u;
    memset(&u, 0, sizeof u);
    for (int k = 0; k < p.nt && s == DCL_OK; k++) {
        size_t total = off + p.t[k].len + GUARD;
        u.init[k] = malloc(total * 4), u.got[k] = malloc(total * 4), u.want[k] = malloc(total * 4);
        if (!u.init[k] || !u.got[k] || !u.want[k]) {
            s = dcl__fail(DCL_ERR_NOMEM, "op case %s: out of host memory", c->name);
            break;
        }
        uint32_t g = guard_word(p.t[k].role, k);
        for (size_t j = 0; j < total; j++) u.init[k][j] = g;
        if (p.t[k].role != OUT)
            for (size_t j = 0; j < p.t[k].len; j++)
                u.init[k][off + j] = gen_word(p.t[k].gen, seed, (uint32_t)k, j);
    }
    if (s == DCL_OK && c->derive) c->derive(&p, u.init, off);
    if (s == DCL_OK) s = run_on(ref, c, &p, off, u.init, u.rbuf, u.want);
    if (s == DCL_OK) s = run_on(dev, c, &p, off, u.init, u.dbuf, u.got);
    if (s != DCL_OK) {
        note(r, "%s", dcl_last_error());
        free_run(&u);
        return s;
    }

    size_t bad = 0, shown = 0;
    for (int k = 0; k < p.nt; k++) {
        const struct tensor *t = &p.t[k];
        size_t total = off + t->len + GUARD;
        if (t->role == IN) {
            // Inputs must come back untouched, guards and all.
            for (size_t j = 0; j < total; j++) {
                if (u.got[k][j] == u.init[k][j]) continue;
                note(r, " input %s modified at buffer element %zu;", t->name, j);
                bad++;
                break;
            }
            continue;
        }
        r->elements += t->len;
        uint32_t g = guard_word(t->role, k);
        bad += compare(r, &p, t, u.got[k] + off, u.want[k] + off, g, &shown);
        bad += (size_t)guard_damaged(r, t, u.got[k], 0, off, g, "before");
        bad += (size_t)guard_damaged(r, t, u.got[k], off + t->len, total, g, "after");
    }
    r->pass = bad == 0;
    free_run(&u);
    return DCL_OK;
}
