// The op cases: one row per op variant, forward and backward, each with the setup that shapes it
// at a size n and derives its tolerance, and the adapter that calls the op's public wrapper; and
// the inputs they draw. The runner that compares a device with the reference is run.c.
#include <math.h>
#include <stdlib.h>

#include "crosscheck/case.h"
#include "crosscheck/crosscheck.h" // dcl_check_case_count, dcl_check_case_name
#include "diffcl/ops.h"            // the public op wrappers the cases call
#include "diffcl/rng.h"            // dcl_rng_*_at: deterministic inputs from the seed

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
    p->flops = (double)(terms == 3 ? 5 : 3) * (double)n; // a product per term, an add between
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
    p->flops = 2 * (double)p->M * (double)p->N * K; // the usual count: one multiply-add per term
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
    p->flops = (double)(p->N * p->D);
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
    p->flops = (double)(p->N * p->D);
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
    p->flops = (double)((c->variant ? 2 : 1) * n);
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
    p->flops = 6 * (double)(p->N * p->D);
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
    p->flops =
        2 * (double)(p->N * p->D) + (double)p->N; // a subtract and a product; scale·w per row
}

// softmax_cross_entropy with logits of GEN_WIDE (every 8th ×30: the max subtraction must keep
// exp finite) and labels 0..9 plus 0xffffffff (ignored rows); variant 0: N = n rows of K = 10
// classes, variant 1: N = 3 rows of K = n (most labels valid once n > 9). The device's exp and
// log may err by 3 ulp (OpenCL 1.2) against glibc's < 1 ulp, and S = Σ of K terms in [0, 1]
// (S in [1, K]) by (K − 1)u relative, the same order on both sides. loss = log S − (x_y − m),
// where x_y − m is the same rounding on both sides: |err| <= 2((K + 6)u + 3u·ln K) + 2u|loss|,
// atol = 4u(K + 6 + 3 ln K), rtol 4u. dlogits = (e/S − [k = y])/N: e/S within (K + 9)u
// relative of a value <= 1 on each side, so its own atol is 4u(K + 10)/N.
// Measured on PoCL: see the row's results in tests/test_ops (loss 4.8e-7, dlogits 6e-8 at K = 10).
static void setup_softmax_cross_entropy(const struct check_case *c, size_t n, struct problem *p) {
    if (c->variant == 0) p->N = n, p->K = 10;
    else p->N = 3, p->K = n;
    double K = (double)p->K, N = (double)p->N;
    add(p, "loss", p->N, OUT, GEN_NORMAL);
    add(p, "dlogits", p->N * p->K, OUT, GEN_NORMAL);
    add(p, "logits", p->N * p->K, IN, GEN_WIDE);
    add(p, "labels", p->N, IN, GEN_LABEL);
    p->atol = 4 * U * (K + 6 + 3 * log(K)), p->rtol = 4 * U;
    p->t[1].atol = 4 * U * (K + 10) / N;
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
    p->flops = (double)len;
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
    p->flops = (double)(p->N * p->C * p->R);
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
    // The least traffic: the labels, dout or out, and the table's rows that labels pick (read, and
    // written back by the backward), at most min(N, K) of them.
    double rows = (double)(p->N < p->K ? p->N : p->K) * (double)p->D;
    p->bytes = 4 * (N + N * (double)p->D + (backward ? 2 : 1) * rows);
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
static dcl_status run_softmax_cross_entropy(dcl_device *dev, const struct problem *p,
                                            const dcl_ptr *t) {
    return dcl_softmax_cross_entropy(dev, t[0], t[1], t[2], t[3], p->N, p->K);
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

// ---- fused ops ----------------------------------------------------------------------------------

// conv_output: a swap01 and up to three IEEE adds per element in a fixed order, with no products,
// so it is exact on every device: compared exactly (atol 0; variant 3, a plain swap, bitwise with
// NaN payloads). per_sample holds the terms present: 1 bias (C), 2 sbias (N, C), 4 res.
// variant 0: all three, R = n; 1: bias only (a plain convolution), N = n; 2: bias and res with res
// in place (out is res), C = n; 3: no term, R = n.
static void setup_conv_output(const struct check_case *c, size_t n, struct problem *p) {
    static const int has[4] = {7, 1, 5, 0};
    switch (c->variant) {
    case 0: p->N = 2, p->C = 3, p->R = n; break;
    case 1: p->N = n, p->C = 3, p->R = 5; break;
    case 2: p->N = 3, p->C = n, p->R = 4; break;
    default: p->N = 2, p->C = 5, p->R = n; break;
    }
    int h = p->per_sample = has[c->variant];
    size_t len = p->N * p->C * p->R;
    if (c->variant == 2) add(p, "x", len, INOUT, GEN_NORMAL);
    else add(p, "out", len, OUT, GEN_NORMAL);
    add(p, "cnhw", len, IN, c->variant == 3 ? GEN_NONFINITE : GEN_NORMAL);
    if (h & 1) add(p, "bias", p->C, IN, GEN_NORMAL);
    if (h & 2) add(p, "sbias", p->N * p->C, IN, GEN_NORMAL);
    if ((h & 4) && c->variant != 2) add(p, "res", len, IN, GEN_NORMAL);
    p->t[0].bits = c->variant == 3;
    p->flops = (double)(((h & 1) + (h >> 1 & 1) + (h >> 2 & 1)) * len);
}

static dcl_status run_conv_output(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    dcl_ptr none = {NULL, 0}, bias = none, sbias = none, res = none;
    int h = p->per_sample, k = 2;
    if (h & 1) bias = t[k++];
    if (h & 2) sbias = t[k++];
    if (h & 4) res = p->t[0].role == INOUT ? t[0] : t[k++];
    return dcl_conv_output(dev, t[0], t[1], bias, sbias, res, p->N, p->C, p->R);
}

// conv2d_forward / conv2d_backward: whole convolutions, on the geometries of conv_shape with
// Co = D output channels. Each output is a dot product of length L (C·k·k forward; N·Ho·Wo for
// dw, at most Co·k² terms for din) accumulated in float in the device's order (OpenBLAS blocks on
// the CPU), plus up to three adds (bias, sbias, res) or the accumulation into dw: as gemm,
// atol = 16u·S with S = L + 2√L + 12 the sum of magnitudes, rtol = 16u. Forward variants: 0
// all three terms, W = n; 1 bias only, stride 2, N = n (many sample chunks); 2 no term, 1×1,
// C = n; 3 res in place (out is res), 4×4 stride 3 pad 2. Backward: 0, 1, 3 with din, 2 dw only.
static size_t conv2d_setup(const struct check_case *c, size_t n, struct problem *p) {
    if (c->variant == 1)
        p->N = n, p->C = 2, p->H = 5, p->W = 6, p->k = 3, p->stride = 2, p->pad = 1;
    else conv_shape(c->variant, n, p);
    p->D = c->variant == 2 ? 4 : 3 + (size_t)c->variant;
    size_t Ho = (p->H + 2 * p->pad - p->k) / p->stride + 1;
    size_t Wo = (p->W + 2 * p->pad - p->k) / p->stride + 1;
    return Ho * Wo;
}

static void conv2d_tolerance(struct problem *p, double L, double flops) {
    p->atol = 16 * U * (L + 2 * sqrt(L) + 12);
    p->rtol = 16 * U;
    p->flops = flops;
}

static void setup_conv2d_forward(const struct check_case *c, size_t n, struct problem *p) {
    static const int has[4] = {7, 1, 0, 4};
    size_t ro = conv2d_setup(c, n, p), Co = p->D, kk = p->C * p->k * p->k;
    size_t len = p->N * Co * ro;
    int h = p->per_sample = has[c->variant];
    if (c->variant == 3) add(p, "x", len, INOUT, GEN_NORMAL);
    else add(p, "out", len, OUT, GEN_NORMAL);
    add(p, "in", p->N * p->C * p->H * p->W, IN, GEN_NORMAL);
    add(p, "w", Co * kk, IN, GEN_NORMAL);
    if (h & 1) add(p, "bias", Co, IN, GEN_NORMAL);
    if (h & 2) add(p, "sbias", p->N * Co, IN, GEN_NORMAL);
    if ((h & 4) && c->variant != 3) add(p, "res", len, IN, GEN_NORMAL);
    conv2d_tolerance(p, (double)kk, 2.0 * (double)len * (double)kk);
}

static void setup_conv2d_backward(const struct check_case *c, size_t n, struct problem *p) {
    size_t ro = conv2d_setup(c, n, p), Co = p->D, kk = p->C * p->k * p->k;
    p->per_sample = c->variant != 2; // din wanted
    add(p, "dw", Co * kk, INOUT, GEN_NORMAL);
    if (p->per_sample) add(p, "din", p->N * p->C * p->H * p->W, OUT, GEN_NORMAL);
    add(p, "dout", p->N * Co * ro, IN, GEN_NORMAL);
    add(p, "in", p->N * p->C * p->H * p->W, IN, GEN_NORMAL);
    add(p, "w", Co * kk, IN, GEN_NORMAL);
    double L = (double)(p->N * ro > Co * p->k * p->k ? p->N * ro : Co * p->k * p->k);
    conv2d_tolerance(p, L, 2.0 * (double)(p->N * Co * ro * kk) * (p->per_sample ? 2 : 1));
}

static dcl_status run_conv2d_forward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    dcl_ptr none = {NULL, 0}, bias = none, sbias = none, res = none;
    int h = p->per_sample, k = 3;
    if (h & 1) bias = t[k++];
    if (h & 2) sbias = t[k++];
    if (h & 4) res = p->t[0].role == INOUT ? t[0] : t[k++];
    return dcl_conv2d_forward(dev, t[0], t[1], t[2], bias, sbias, res, p->N, p->C, p->H, p->W, p->D,
                              p->k, p->stride, p->pad);
}

static dcl_status run_conv2d_backward(dcl_device *dev, const struct problem *p, const dcl_ptr *t) {
    dcl_ptr none = {NULL, 0};
    int k = p->per_sample ? 2 : 1;
    return dcl_conv2d_backward(dev, t[0], p->per_sample ? t[1] : none, t[k], t[k + 1], t[k + 2],
                               p->N, p->C, p->H, p->W, p->D, p->k, p->stride, p->pad);
}

// ---- self-attention ----------------------------------------------------------------------------
//
// attention_forward / attention_backward on qkv (N, 3C, R) with heads = G. variant 0: heads 2,
// C = 8 (d = 4); 1: one head, C = 6 (d = 6); R = n up to 64, then 33 + n % 32 (R = 64 at
// n = 255, 34 at 257 and 4097, 41 at 1000). Variant 2: heads 2, C = 40 (d = 20: the OpenCL
// kernels' private blocks of 16 channels and a ragged last one), at R = n up to 24, then
// 9 + n % 16 (24 at 255, 10 at 257). N = 3 + n/1024 grows the batch instead, so large n stay
// cheap: the cost is N·R²·d per head, and under Oclgrind the backward's takes the most.
static void attention_shape(const struct check_case *c, size_t n, struct problem *p) {
    static const size_t heads[3] = {2, 1, 2}, C[3] = {8, 6, 40};
    p->G = heads[c->variant % 3], p->C = C[c->variant % 3];
    if (c->variant % 3 == 2) p->R = n <= 24 ? n : 9 + n % 16;
    else p->R = n <= 64 ? n : 33 + n % 32;
    p->N = 3 + n / 1024;
}

// The device computes every score, max, and sum in a fixed order (FP_CONTRACT OFF); the CPU
// reference's scores are GEMMs (cpu_attention.c: blocked, FMA), a few ulp of |S| < ~3 from the
// device's, which moves each weight exp(S − m) by as many u relative. With exp and log (3 ulp in
// OpenCL 1.2, 1 to 2 on the CPU) and the divide (2.5 ulp), each weight is within ~4u relative. A
// sum of R such terms then rounds differently on each side, a random walk of ~2√R·u relative to
// its sum of magnitudes, so ε = (4 + 2√R)u bounds the relative error of every P-weighted sum, per
// side.
static double attention_eps(const struct problem *p) { return (4 + 2 * sqrt((double)p->R)) * U; }

// attention_forward: out, a P-weighted mean of values |v| < 6, within 6ε per side plus the
// divide: atol 12ε, rtol 8u; lse = m + log l with l within ε: atol 2ε (+ rtol 8u for log's ulps
// of |lse|). Measured on PoCL 3.1: 4.8e-7, one ulp of an lse near 4 (atol 1.4e-5 at R = 64);
// 9.5e-7 against the GEMM-based CPU reference.
static void setup_attention_forward(const struct check_case *c, size_t n, struct problem *p) {
    attention_shape(c, n, p);
    size_t len = p->N * p->C * p->R;
    add(p, "out", len, OUT, GEN_NORMAL);
    add(p, "lse", p->N * p->G * p->R, OUT, GEN_NORMAL);
    add(p, "qkv", 3 * len, IN, GEN_NORMAL);
    double eps = attention_eps(p);
    p->atol = 12 * eps, p->rtol = 8 * U;
    p->t[1].atol = 2 * eps;
    // Per (n, head): R² scores and R² weighted values of d multiply-adds each.
    p->flops = 4.0 * (double)(p->N * p->C) * (double)p->R * (double)p->R;
}

// The backward's saved state, as the forward leaves it: out and lse of qkv (tensor 2) computed in
// double and rounded to float (tensors 3 and 4).
static void derive_attention(const struct problem *p, uint32_t *const *init, size_t off) {
    size_t heads = p->G, C = p->C, R = p->R, d = C / heads;
    double scale = 1 / sqrt((double)d), *e = malloc(R * sizeof *e);
    if (!e) return; // the inputs stay random: the comparison fails, loudly
    for (size_t n = 0; n < p->N; n++)
        for (size_t h = 0; h < heads; h++)
            for (size_t i = 0; i < R; i++) {
                const uint32_t *q = init[2] + off + (n * 3 * C + h * d) * R, *k = q + C * R,
                               *v = k + C * R;
                double m = -INFINITY, l = 0;
                for (size_t j = 0; j < R; j++) {
                    double s = 0;
                    for (size_t ch = 0; ch < d; ch++)
                        s += (double)bits_float(q[ch * R + i]) * bits_float(k[ch * R + j]);
                    e[j] = s * scale;
                    if (e[j] > m) m = e[j];
                }
                for (size_t j = 0; j < R; j++) l += e[j] = exp(e[j] - m);
                for (size_t ch = 0; ch < d; ch++) {
                    double o = 0;
                    for (size_t j = 0; j < R; j++) o += e[j] * bits_float(v[ch * R + j]);
                    init[3][off + (n * C + h * d + ch) * R + i] = float_bits((float)(o / l));
                }
                init[4][off + (n * heads + h) * R + i] = float_bits((float)(m + log(l)));
            }
    free(e);
}

// attention_backward with the consistent out and lse of derive_attention. P = exp(S − lse), dP
// and D agree within a few u (as the forward's S), so every gradient is a sum of R terms within
// ε (as the forward's) of each other: dq[c, i] = Σ_j P·(dP − D)·k/√d with |dP − D| <~ 6√d (dot
// products of d unit normals) and |k| < 6 weighs Σ_j P = 1 by at most 36; dk and dv weigh the
// columns of P, whose sums stay below ~4 at these sizes (random scores): atol 2·4·36ε = 288ε,
// rtol 64u.
// Measured on PoCL 3.1: 2.4e-7 (atol 3.4e-4 at R = 64); 1.9e-6 against the GEMM-based CPU
// reference, whose D is Σ_j P·dP (the same value as Σ_c dout·out, up to rounding).
static void setup_attention_backward(const struct check_case *c, size_t n, struct problem *p) {
    attention_shape(c, n, p);
    size_t len = p->N * p->C * p->R;
    add(p, "dqkv", 3 * len, OUT, GEN_NORMAL);
    add(p, "dout", len, IN, GEN_NORMAL);
    add(p, "qkv", 3 * len, IN, GEN_NORMAL);
    add(p, "out", len, IN, GEN_NORMAL);                // derived
    add(p, "lse", p->N * p->G * p->R, IN, GEN_NORMAL); // derived
    p->atol = 288 * attention_eps(p), p->rtol = 64 * U;
    // Per (n, head): S and dP recomputed by both passes, dq, dk and dv: 7·R²·d multiply-adds.
    p->flops = 14.0 * (double)(p->N * p->C) * (double)p->R * (double)p->R;
}

static dcl_status run_attention_forward(dcl_device *dev, const struct problem *p,
                                        const dcl_ptr *t) {
    return dcl_attention_forward(dev, t[0], t[1], t[2], p->N, p->G, p->C, p->R);
}

static dcl_status run_attention_backward(dcl_device *dev, const struct problem *p,
                                         const dcl_ptr *t) {
    return dcl_attention_backward(dev, t[0], t[1], t[2], t[3], t[4], p->N, p->G, p->C, p->R);
}

// Every op of DCL_OP_MAP has at least one row named after it ("gemm" → "gemm_nn"); tests/test_ops.c
// checks that. {name, setup, run, trans_a, trans_b, variant, derive}
const struct check_case dcl__check_cases[] = {
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
    {"softmax_cross_entropy", setup_softmax_cross_entropy, run_softmax_cross_entropy, 0, 0, 0,
     NULL},
    {"softmax_cross_entropy_wide", setup_softmax_cross_entropy, run_softmax_cross_entropy, 0, 0, 1,
     NULL},
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
    {"conv_output", setup_conv_output, run_conv_output, 0, 0, 0, NULL},
    {"conv_output_bias_batch", setup_conv_output, run_conv_output, 0, 0, 1, NULL},
    {"conv_output_residual_inplace", setup_conv_output, run_conv_output, 0, 0, 2, NULL},
    {"conv_output_swap", setup_conv_output, run_conv_output, 0, 0, 3, NULL},
    {"conv2d_forward", setup_conv2d_forward, run_conv2d_forward, 0, 0, 0, NULL},
    {"conv2d_forward_batch", setup_conv2d_forward, run_conv2d_forward, 0, 0, 1, NULL},
    {"conv2d_forward_1x1", setup_conv2d_forward, run_conv2d_forward, 0, 0, 2, NULL},
    {"conv2d_forward_residual_inplace", setup_conv2d_forward, run_conv2d_forward, 0, 0, 3, NULL},
    {"conv2d_backward", setup_conv2d_backward, run_conv2d_backward, 0, 0, 0, NULL},
    {"conv2d_backward_batch", setup_conv2d_backward, run_conv2d_backward, 0, 0, 1, NULL},
    {"conv2d_backward_1x1_dw", setup_conv2d_backward, run_conv2d_backward, 0, 0, 2, NULL},
    {"conv2d_backward_k4s3p2", setup_conv2d_backward, run_conv2d_backward, 0, 0, 3, NULL},
    {"attention_forward", setup_attention_forward, run_attention_forward, 0, 0, 0, NULL},
    {"attention_forward_head", setup_attention_forward, run_attention_forward, 0, 0, 1, NULL},
    {"attention_forward_d20", setup_attention_forward, run_attention_forward, 0, 0, 2, NULL},
    {"attention_backward", setup_attention_backward, run_attention_backward, 0, 0, 0,
     derive_attention},
    {"attention_backward_head", setup_attention_backward, run_attention_backward, 0, 0, 1,
     derive_attention},
    {"attention_backward_d20", setup_attention_backward, run_attention_backward, 0, 0, 2,
     derive_attention},
};

const int dcl__check_n_cases = (int)(sizeof dcl__check_cases / sizeof dcl__check_cases[0]);

int dcl_check_case_count(void) { return dcl__check_n_cases; }

const char *dcl_check_case_name(int i) {
    return i >= 0 && i < dcl__check_n_cases ? dcl__check_cases[i].name : NULL;
}

// ---- inputs -----------------------------------------------------------------------------------

// Element i of tensor k, drawn from the seed's stream (step k keeps tensors independent).
uint32_t dcl__check_gen_word(enum gen g, uint64_t seed, uint32_t k, size_t i) {
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
