// Finite-difference checks of every backward op on the CPU reference: for a scalar loss
// L = Σ w ⊙ out with random w, the backward op's gradient must match central differences of L
// computed (in double, on the host) from the forward op run at perturbed inputs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/device.h"
#include "diffcl/ops.h"
#include "diffcl/rng.h" // dcl_rng_normal_at: inputs and loss weights

static dcl_device *dev;

// A host array mirrored in a device buffer of n elements.
struct tensor {
    float *h;
    dcl_buffer *b;
    size_t n;
};

static int tensor_init(struct tensor *t, size_t n, uint32_t stream) {
    t->n = n;
    t->h = malloc(n * sizeof *t->h);
    if (!t->h || dcl_buffer_alloc(&t->b, dev, n, "gradcheck") != DCL_OK) {
        fprintf(stderr, "allocation failed: %s\n", dcl_last_error());
        free(t->h);
        t->h = NULL, t->b = NULL;
        check_failures++;
        return 0;
    }
    for (size_t i = 0; i < n; i++) t->h[i] = dcl_rng_normal_at(42, DCL_RNG_TEST, stream, i);
    return 1;
}

static void tensor_free(struct tensor *t) {
    free(t->h);
    dcl_buffer_free(t->b);
    t->h = NULL, t->b = NULL;
}

static void put(struct tensor *t) { CHECK(dcl_buffer_write(t->b, 0, t->n, t->h) == DCL_OK); }
static void get(struct tensor *t) { CHECK(dcl_buffer_read(t->b, 0, t->n, t->h) == DCL_OK); }
static dcl_ptr P(struct tensor *t) { return dcl_at(t->b, 0); }

// L = Σ w ⊙ out, accumulated in double.
static double loss(const struct tensor *w, const struct tensor *out) {
    double l = 0;
    for (size_t i = 0; i < out->n; i++) l += (double)w->h[i] * out->h[i];
    return l;
}

// A forward pass: reads the current host values of its inputs and leaves out->h filled.
typedef void (*forward_fn)(void *ctx);

// For each element j of x: (L(x_j + h) − L(x_j − h)) / 2h against grad[j], with
// |fd − grad| <= tol·(1 + |grad|). Perturbs x->h in place and restores it.
static void check_against_fd(const char *what, struct tensor *x, const float *grad, forward_fn fwd,
                             void *ctx, const struct tensor *w, const struct tensor *out, float h,
                             double tol) {
    double worst = 0;
    for (size_t j = 0; j < x->n; j++) {
        float keep = x->h[j];
        x->h[j] = keep + h;
        fwd(ctx);
        double lp = loss(w, out);
        x->h[j] = keep - h;
        fwd(ctx);
        double lm = loss(w, out);
        x->h[j] = keep;
        // The actual step (keep ± h rounded to float), not the nominal h.
        double fd = (lp - lm) / ((double)(keep + h) - (double)(keep - h));
        double err = fabs(fd - grad[j]) / (1 + fabs((double)grad[j]));
        if (err > worst) worst = err;
        if (err > tol) {
            fprintf(stderr, "%s: element %zu: backward %.7g, finite difference %.7g\n", what, j,
                    (double)grad[j], fd);
            check_failures++;
        }
    }
    printf("%-28s %3zu elements, worst |fd − grad| / (1 + |grad|) = %.2e (tol %.0e)\n", what, x->n,
           worst, tol);
}

// ---- elementwise activations --------------------------------------------------------------------

struct act {
    struct tensor in, out;
    int silu;
};

static void act_forward(void *p) {
    struct act *a = p;
    put(&a->in);
    dcl_status s = a->silu ? dcl_silu_forward(dev, P(&a->out), P(&a->in), a->in.n)
                           : dcl_relu_forward(dev, P(&a->out), P(&a->in), a->in.n);
    CHECK(s == DCL_OK);
    get(&a->out);
}

// relu is piecewise linear: with inputs at least 0.1 away from the kink and h = 1e-2, the central
// difference is exact up to float rounding of out (~1e-7·|w|/h): tol 1e-4. silu with h = 1e-2:
// truncation h²/6·|silu'''| <= 2e-5, rounding ~6e-8·|silu|·|w|/h ~ 2e-5: tol 2e-4.
static void check_activation(int silu) {
    const size_t n = 64;
    struct act a = {.silu = silu};
    struct tensor dout, din;
    if (!tensor_init(&a.in, n, 1) || !tensor_init(&a.out, n, 2) || !tensor_init(&dout, n, 3) ||
        !tensor_init(&din, n, 4))
        goto done;
    for (size_t i = 0; i < n; i++) {
        a.in.h[i] *= 2.5f; // cover SiLU's curved part and its tails
        if (!silu && fabsf(a.in.h[i]) < 0.1f) a.in.h[i] += a.in.h[i] < 0 ? -0.1f : 0.1f;
    }
    put(&a.in), put(&dout);
    // The backward op with dout = w gives dL/din.
    dcl_status s = silu ? dcl_silu_backward(dev, P(&din), P(&a.in), P(&dout), n)
                        : dcl_relu_backward(dev, P(&din), P(&a.in), P(&dout), n);
    CHECK(s == DCL_OK);
    get(&din);
    check_against_fd(silu ? "silu_backward" : "relu_backward", &a.in, din.h, act_forward, &a, &dout,
                     &a.out, 1e-2f, silu ? 2e-4 : 1e-4);
    if (silu) {
        // A tighter check of the formula: central differences of SiLU evaluated in double on the
        // host (h = 1e-5: truncation ~1e-11, rounding ~1e-11), against the float backward (a few
        // ulp): tol 1e-5.
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double x = a.in.h[i], hd = 1e-5;
            double fd =
                ((x + hd) / (1 + exp(-(x + hd))) - (x - hd) / (1 + exp(-(x - hd)))) / (2 * hd);
            double err = fabs(dout.h[i] * fd - din.h[i]) / (1 + fabs((double)din.h[i]));
            if (err > worst) worst = err;
            CHECK_NEAR(din.h[i], dout.h[i] * fd, 1e-5, 1e-5);
        }
        printf("%-28s %3zu elements, worst vs double-precision host differences %.2e (tol 1e-05)\n",
               "silu_backward", n, worst);
    } else {
        // At the kink the derivative is taken as 0, and a negative input blocks the gradient.
        float in2[3] = {0.0f, -0.0f, -1.0f}, g[3] = {1, 1, 1}, r[3] = {7, 7, 7};
        CHECK(dcl_buffer_write(a.in.b, 0, 3, in2) == DCL_OK);
        CHECK(dcl_buffer_write(dout.b, 0, 3, g) == DCL_OK);
        CHECK(dcl_relu_backward(dev, P(&din), P(&a.in), P(&dout), 3) == DCL_OK);
        CHECK(dcl_buffer_read(din.b, 0, 3, r) == DCL_OK);
        for (int i = 0; i < 3; i++) CHECK(r[i] == 0.0f);
    }
done:
    tensor_free(&a.in), tensor_free(&a.out), tensor_free(&dout), tensor_free(&din);
}

// ---- bias -----------------------------------------------------------------------------------------

struct bias {
    struct tensor in, bias, out;
    size_t N, D;
};

static void bias_forward(void *p) {
    struct bias *b = p;
    put(&b->bias);
    CHECK(dcl_bias_add(dev, P(&b->out), P(&b->in), P(&b->bias), b->N, b->D) == DCL_OK);
    get(&b->out);
}

// bias_add is linear in bias, so a large step (h = 1/8) costs no truncation error; what remains is
// rounding of out, ~6e-8·N·|out|·|w|/h ~ 1e-5: tol 1e-4. bias_backward accumulates, so dbias starts at 0.25 and must end at
// 0.25 + dL/dbias.
static void check_bias(void) {
    struct bias b = {.N = 7, .D = 5};
    struct tensor dout, dbias;
    if (!tensor_init(&b.in, b.N * b.D, 1) || !tensor_init(&b.bias, b.D, 2) ||
        !tensor_init(&b.out, b.N * b.D, 3) || !tensor_init(&dout, b.N * b.D, 4) ||
        !tensor_init(&dbias, b.D, 5))
        goto done;
    put(&b.in), put(&dout);
    for (size_t d = 0; d < b.D; d++) dbias.h[d] = 0.25f;
    put(&dbias);
    CHECK(dcl_bias_backward(dev, P(&dbias), P(&dout), b.N, b.D) == DCL_OK);
    get(&dbias);
    for (size_t d = 0; d < b.D; d++) dbias.h[d] -= 0.25f;
    check_against_fd("bias_backward (+= 0.25)", &b.bias, dbias.h, bias_forward, &b, &dout, &b.out,
                     0.125f, 1e-4);
done:
    tensor_free(&b.in), tensor_free(&b.bias), tensor_free(&b.out), tensor_free(&dout),
        tensor_free(&dbias);
}

// ---- gemm -----------------------------------------------------------------------------------------

// C (M, N) = op(A) op(B); a->trans_b selects the linear-layer form C = X Wᵀ.
struct mm {
    struct tensor A, B, C;
    size_t M, N, K;
    int trans_b;
};

static void mm_forward(void *p) {
    struct mm *m = p;
    put(&m->A), put(&m->B);
    CHECK(dcl_gemm(dev, P(&m->C), P(&m->A), P(&m->B), 0, m->trans_b, m->M, m->N, m->K, 1.0f,
                   0.0f) == DCL_OK);
    get(&m->C);
}

// C = A·B (trans_b 0): dA = dC·Bᵀ (gemm nt), dB = Aᵀ·dC (gemm tn).
// C = X·Wᵀ (trans_b 1, W (N, K)): dX = dC·W (gemm nn), dW = dCᵀ·X (gemm tn).
// C is linear in A and in B, so a large step (h = 1/8) costs no truncation error; what remains is
// rounding of the N (or M) entries of C that the element touches, ~N·ulp(|C|)·|w|/2h ~ 1e-5: tol 1e-4.
static void check_gemm(int trans_b) {
    struct mm m = {.M = 4, .N = 3, .K = 5, .trans_b = trans_b};
    struct tensor dC, dA, dB;
    if (!tensor_init(&m.A, m.M * m.K, 1) || !tensor_init(&m.B, m.K * m.N, 2) ||
        !tensor_init(&m.C, m.M * m.N, 3) || !tensor_init(&dC, m.M * m.N, 4) ||
        !tensor_init(&dA, m.M * m.K, 5) || !tensor_init(&dB, m.K * m.N, 6))
        goto done;
    put(&m.A), put(&m.B), put(&dC);
    for (size_t i = 0; i < dA.n; i++) dA.h[i] = NAN; // beta = 0 must overwrite
    for (size_t i = 0; i < dB.n; i++) dB.h[i] = NAN;
    put(&dA), put(&dB);
    if (!trans_b) {
        CHECK(dcl_gemm(dev, P(&dA), P(&dC), P(&m.B), 0, 1, m.M, m.K, m.N, 1, 0) == DCL_OK);
        CHECK(dcl_gemm(dev, P(&dB), P(&m.A), P(&dC), 1, 0, m.K, m.N, m.M, 1, 0) == DCL_OK);
    } else {
        CHECK(dcl_gemm(dev, P(&dA), P(&dC), P(&m.B), 0, 0, m.M, m.K, m.N, 1, 0) == DCL_OK);
        CHECK(dcl_gemm(dev, P(&dB), P(&dC), P(&m.A), 1, 0, m.N, m.K, m.M, 1, 0) == DCL_OK);
    }
    get(&dA), get(&dB);
    check_against_fd(trans_b ? "gemm X·Wᵀ: dX = dC·W" : "gemm A·B: dA = dC·Bᵀ", &m.A, dA.h,
                     mm_forward, &m, &dC, &m.C, 0.125f, 1e-4);
    check_against_fd(trans_b ? "gemm X·Wᵀ: dW = dCᵀ·X" : "gemm A·B: dB = Aᵀ·dC", &m.B, dB.h,
                     mm_forward, &m, &dC, &m.C, 0.125f, 1e-4);
done:
    tensor_free(&m.A), tensor_free(&m.B), tensor_free(&m.C);
    tensor_free(&dC), tensor_free(&dA), tensor_free(&dB);
}

// ---- softmax cross-entropy ----------------------------------------------------------------------

// L = Σ_r (logsumexp(x_r) − x_r[y_r]) / N in double on the host, with element j of x moved by
// delta; rows whose label is >= K count 0.
static double xent_loss(const struct tensor *x, const uint32_t *y, size_t N, size_t K, size_t j,
                        double delta) {
    double l = 0;
    for (size_t r = 0; r < N; r++) {
        if (y[r] >= K) continue;
        double m = -INFINITY, S = 0, v[16];
        for (size_t k = 0; k < K; k++) {
            v[k] = x->h[r * K + k] + (r * K + k == j ? delta : 0);
            m = v[k] > m ? v[k] : m;
        }
        for (size_t k = 0; k < K; k++) S += exp(v[k] - m);
        l += log(S) + m - v[y[r]];
    }
    return l / (double)N;
}

// softmax_cross_entropy's dlogits must be dL/dlogits of the mean loss. Central differences with
// h = 1/64 err by h²/6 times the third derivative (< 1e-5/N for these logits); the float softmax
// is within ~(K + 9)u of the exact one: tol |fd − g| <= 2e-5 / N. Each row's loss is within
// 8u·(1 + |loss|) of the double value. A label >= K gives a zero row.
static void check_softmax_cross_entropy(void) {
    const size_t N = 4, K = 7;
    uint32_t y[4] = {3, 0, 0xffffffffu, 6};
    struct tensor x, loss, dl, lab;
    if (!tensor_init(&x, N * K, 1) || !tensor_init(&loss, N, 2) || !tensor_init(&dl, N * K, 3) ||
        !tensor_init(&lab, N, 4))
        goto done;
    memcpy(lab.h, y, sizeof y);
    for (size_t i = 0; i < dl.n; i++) dl.h[i] = NAN; // must be overwritten
    put(&x), put(&lab), put(&dl);
    CHECK(dcl_softmax_cross_entropy(dev, P(&loss), P(&dl), P(&x), P(&lab), N, K) == DCL_OK);
    get(&loss), get(&dl);
    double worst = 0, h = 1.0 / 64;
    for (size_t j = 0; j < N * K; j++) {
        double fd = (xent_loss(&x, y, N, K, j, h) - xent_loss(&x, y, N, K, j, -h)) / (2 * h);
        double err = fabs(fd - dl.h[j]);
        if (err > worst) worst = err;
        CHECK_NEAR(dl.h[j], fd, 2e-5 / (double)N, 0);
    }
    for (size_t r = 0; r < N; r++) {
        // Row r's own loss: the mean over a batch where only row r counts, times N.
        uint32_t yr[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
        yr[r] = y[r];
        double want = xent_loss(&x, yr, N, K, N * K, 0) * (double)N;
        CHECK_NEAR(loss.h[r], want, 8 * 0x1p-24, 8 * 0x1p-24);
    }
    printf("%-28s %3zu elements, worst |fd − grad| = %.2e (tol %.0e)\n", "softmax_cross_entropy",
           N * K, worst, 2e-5 / (double)N);
done:
    tensor_free(&x), tensor_free(&loss), tensor_free(&dl), tensor_free(&lab);
}

// ---- mse ------------------------------------------------------------------------------------------

// L = Σ_r w[r] Σ_d (pred − target)² / (N·D) in double on the host, with element j of pred
// (which = 0) or of target (which = 1) moved by delta in double, so steps are exact.
static double mse_loss(const struct tensor *pred, const struct tensor *target,
                       const struct tensor *w, size_t N, size_t D, int which, size_t j,
                       double delta) {
    double l = 0;
    for (size_t r = 0; r < N; r++)
        for (size_t d = 0; d < D; d++) {
            size_t i = r * D + d;
            double p = pred->h[i] + (which == 0 && i == j ? delta : 0);
            double t = target->h[i] + (which == 1 && i == j ? delta : 0);
            l += w->h[r] * (p - t) * (p - t);
        }
    return l / ((double)N * (double)D);
}

// mse_backward must be dL/dpred (and −dL/dtarget). L is quadratic and evaluated in double with
// exact steps, so the central difference with h = 1/16 is exact up to double rounding
// (~1e-16·|L|/h); the float dout is four roundings (scale, ·w, pred − target, product) from the
// exact value, <= 4u = 2.4e-7 relative: tol |fd − g| <= 1e-12 + 3e-7·|fd|.
static void check_mse(void) {
    const size_t N = 5, D = 3;
    struct tensor pred, target, w, dout;
    if (!tensor_init(&pred, N * D, 1) || !tensor_init(&target, N * D, 2) ||
        !tensor_init(&w, N, 3) || !tensor_init(&dout, N * D, 4))
        goto done;
    for (size_t r = 0; r < N; r++) w.h[r] = fabsf(w.h[r]) + 0.25f; // time weights are positive
    for (size_t i = 0; i < dout.n; i++) dout.h[i] = NAN;           // must be overwritten
    put(&pred), put(&target), put(&w), put(&dout);
    CHECK(dcl_mse_backward(dev, P(&dout), P(&pred), P(&target), P(&w), N, D) == DCL_OK);
    get(&dout);
    double worst = 0, h = 0.0625;
    for (int which = 0; which < 2; which++) {
        for (size_t j = 0; j < N * D; j++) {
            double lp = mse_loss(&pred, &target, &w, N, D, which, j, h);
            double lm = mse_loss(&pred, &target, &w, N, D, which, j, -h);
            double fd = (lp - lm) / (2 * h);
            double g = which ? -(double)dout.h[j] : dout.h[j];
            double err = fabs(fd - g) / (1e-12 + fabs(fd));
            if (err > worst) worst = err;
            CHECK_NEAR(g, fd, 1e-12, 3e-7);
        }
    }
    printf("%-28s %3zu elements, worst |fd − grad| / |fd| = %.2e (tol 3e-07)\n",
           "mse_backward (pred, target)", 2 * N * D, worst);
    // The scale on its own: with w = 1 the gradient is 2 (pred − target) / (N·D).
    for (size_t r = 0; r < N; r++) w.h[r] = 1.0f;
    put(&w);
    CHECK(dcl_mse_backward(dev, P(&dout), P(&pred), P(&target), P(&w), N, D) == DCL_OK);
    get(&dout);
    for (size_t i = 0; i < N * D; i++)
        CHECK_NEAR(dout.h[i], 2.0 / (double)(N * D) * ((double)pred.h[i] - target.h[i]), 1e-30,
                   3e-7);
done:
    tensor_free(&pred), tensor_free(&target), tensor_free(&w), tensor_free(&dout);
}

// ---- images (NCHW) ------------------------------------------------------------------------------

// Sets every element of t to NaN on the host and the device: an op that overwrites must not read.
static void poison(struct tensor *t) {
    for (size_t i = 0; i < t->n; i++) t->h[i] = NAN;
    put(t);
}

// im2col and swap01 are linear maps and col2im / swap01 with A, B exchanged their adjoints: the
// backward of L = Σ w ⊙ f(x) is adjoint(w). A linear f has no truncation error, so h = 1/8 leaves
// the rounding of col2im's float sums of up to k² = 16 values of |w| < 4, at most ~15u·64 ≈ 6e-6
// (measured 2.7e-7): tol 1e-5; swap01 copies, so only L's double rounding remains: tol 1e-6.
struct lin {
    struct tensor x, out;
    size_t N, C, H, W, k, stride, pad; // im2col
    size_t A, B, R;                    // swap01 (when k == 0)
};

static void lin_forward(void *p) {
    struct lin *l = p;
    put(&l->x);
    dcl_status s = l->k ? dcl_im2col(dev, P(&l->out), P(&l->x), l->N, l->C, l->H, l->W, l->k,
                                     l->stride, l->pad)
                        : dcl_swap01(dev, P(&l->out), P(&l->x), l->A, l->B, l->R);
    CHECK(s == DCL_OK);
    get(&l->out);
}

static void check_im2col(size_t k, size_t stride, size_t pad) {
    struct lin l = {.N = 2, .C = 2, .H = 5, .W = 4, .k = k, .stride = stride, .pad = pad};
    size_t Ho = (l.H + 2 * pad - k) / stride + 1, Wo = (l.W + 2 * pad - k) / stride + 1;
    size_t cols = l.C * k * k * l.N * Ho * Wo;
    struct tensor w, din;
    if (!tensor_init(&l.x, l.N * l.C * l.H * l.W, 1) || !tensor_init(&l.out, cols, 2) ||
        !tensor_init(&w, cols, 3) || !tensor_init(&din, l.N * l.C * l.H * l.W, 4))
        goto done;
    put(&w), poison(&din);
    CHECK(dcl_col2im(dev, P(&din), P(&w), l.N, l.C, l.H, l.W, k, stride, pad) == DCL_OK);
    get(&din);
    char what[64];
    snprintf(what, sizeof what, "col2im (k %zu, stride %zu, pad %zu)", k, stride, pad);
    check_against_fd(what, &l.x, din.h, lin_forward, &l, &w, &l.out, 0.125f, 1e-5);
done:
    tensor_free(&l.x), tensor_free(&l.out), tensor_free(&w), tensor_free(&din);
}

static void check_swap01(void) {
    struct lin l = {.A = 3, .B = 4, .R = 5};
    struct tensor w, din;
    size_t n = l.A * l.B * l.R;
    if (!tensor_init(&l.x, n, 1) || !tensor_init(&l.out, n, 2) || !tensor_init(&w, n, 3) ||
        !tensor_init(&din, n, 4))
        goto done;
    put(&w), poison(&din);
    CHECK(dcl_swap01(dev, P(&din), P(&w), l.B, l.A, l.R) == DCL_OK);
    get(&din);
    check_against_fd("swap01 (B, A) as backward", &l.x, din.h, lin_forward, &l, &w, &l.out, 0.125f,
                     1e-6);
done:
    tensor_free(&l.x), tensor_free(&l.out), tensor_free(&w), tensor_free(&din);
}

// channel_bias_add is linear in bias: h = 1/8, tol 1e-4 as check_bias. per_sample 0 accumulates
// (dbias starts at 0.25), per_sample 1 overwrites (dbias starts as NaN).
struct cbias {
    struct tensor in, bias, out;
    size_t N, C, R;
    int per_sample;
};

static void cbias_forward(void *p) {
    struct cbias *b = p;
    put(&b->bias);
    CHECK(dcl_channel_bias_add(dev, P(&b->out), P(&b->in), P(&b->bias), b->N, b->C, b->R,
                               b->per_sample) == DCL_OK);
    get(&b->out);
}

static void check_channel_bias(int per_sample) {
    struct cbias b = {.N = 3, .C = 4, .R = 5, .per_sample = per_sample};
    size_t nb = per_sample ? b.N * b.C : b.C, n = b.N * b.C * b.R;
    struct tensor dout, dbias;
    if (!tensor_init(&b.in, n, 1) || !tensor_init(&b.bias, nb, 2) || !tensor_init(&b.out, n, 3) ||
        !tensor_init(&dout, n, 4) || !tensor_init(&dbias, nb, 5))
        goto done;
    put(&b.in), put(&dout);
    if (per_sample) {
        poison(&dbias);
    } else {
        for (size_t i = 0; i < nb; i++) dbias.h[i] = 0.25f;
        put(&dbias);
    }
    CHECK(dcl_channel_bias_backward(dev, P(&dbias), P(&dout), b.N, b.C, b.R, per_sample) == DCL_OK);
    get(&dbias);
    if (!per_sample)
        for (size_t i = 0; i < nb; i++) dbias.h[i] -= 0.25f;
    check_against_fd(per_sample ? "channel_bias_backward (= n,c)" : "channel_bias_backward (+= c)",
                     &b.bias, dbias.h, cbias_forward, &b, &dout, &b.out, 0.125f, 1e-4);
done:
    tensor_free(&b.in), tensor_free(&b.bias), tensor_free(&b.out), tensor_free(&dout),
        tensor_free(&dbias);
}

// conv_output (out = swap01(cnhw) + bias + sbias + res, fused) is linear in each input; its
// backward is the U-Net's: swap01 back for cnhw, channel_bias_backward per channel (+=) and per
// sample (=) for bias and sbias, dout itself for res. Float adds of up to four terms: h = 1/8,
// tol 1e-4 as check_channel_bias.
struct convout {
    struct tensor cnhw, bias, sbias, res, out;
    size_t N, C, R;
};

static void convout_forward(void *p) {
    struct convout *c = p;
    put(&c->cnhw), put(&c->bias), put(&c->sbias), put(&c->res);
    CHECK(dcl_conv_output(dev, P(&c->out), P(&c->cnhw), P(&c->bias), P(&c->sbias), P(&c->res), c->N,
                          c->C, c->R) == DCL_OK);
    get(&c->out);
}

static void check_conv_output(void) {
    struct convout c = {.N = 3, .C = 4, .R = 5};
    size_t n = c.N * c.C * c.R;
    struct tensor dout, dcnhw, dbias, dsbias;
    if (!tensor_init(&c.cnhw, n, 1) || !tensor_init(&c.bias, c.C, 2) ||
        !tensor_init(&c.sbias, c.N * c.C, 3) || !tensor_init(&c.res, n, 4) ||
        !tensor_init(&c.out, n, 5) || !tensor_init(&dout, n, 6) || !tensor_init(&dcnhw, n, 7) ||
        !tensor_init(&dbias, c.C, 8) || !tensor_init(&dsbias, c.N * c.C, 9))
        goto done;
    put(&dout), poison(&dcnhw), poison(&dsbias);
    for (size_t i = 0; i < c.C; i++) dbias.h[i] = 0.0f;
    put(&dbias);
    CHECK(dcl_swap01(dev, P(&dcnhw), P(&dout), c.N, c.C, c.R) == DCL_OK);
    CHECK(dcl_channel_bias_backward(dev, P(&dbias), P(&dout), c.N, c.C, c.R, 0) == DCL_OK);
    CHECK(dcl_channel_bias_backward(dev, P(&dsbias), P(&dout), c.N, c.C, c.R, 1) == DCL_OK);
    get(&dcnhw), get(&dbias), get(&dsbias);
    check_against_fd("conv_output: cnhw", &c.cnhw, dcnhw.h, convout_forward, &c, &dout, &c.out,
                     0.125f, 1e-4);
    check_against_fd("conv_output: bias", &c.bias, dbias.h, convout_forward, &c, &dout, &c.out,
                     0.125f, 1e-4);
    check_against_fd("conv_output: sbias", &c.sbias, dsbias.h, convout_forward, &c, &dout, &c.out,
                     0.125f, 1e-4);
    check_against_fd("conv_output: res", &c.res, dout.h, convout_forward, &c, &dout, &c.out, 0.125f,
                     1e-4);
done:
    tensor_free(&c.cnhw), tensor_free(&c.bias), tensor_free(&c.sbias), tensor_free(&c.res),
        tensor_free(&c.out), tensor_free(&dout), tensor_free(&dcnhw), tensor_free(&dbias),
        tensor_free(&dsbias);
}

// conv2d_forward (a whole convolution, bias + sbias + res as conv_output) is linear in in and in
// w; conv2d_backward gives dw (accumulated onto 0) and din. 3×3, stride 1, pad 1, 3 samples (3
// chunks of samples, whose partial dw are combined): h = 1/8, the rounding of the Co·R entries
// one element touches, each a float sum of 18 products: tol 1e-4 as check_gemm.
struct conv2d {
    struct tensor in, w, bias, out;
    size_t N, C, H, W, Co;
};

static void conv2d_forward(void *p) {
    struct conv2d *c = p;
    dcl_ptr none = {NULL, 0};
    put(&c->in), put(&c->w), put(&c->bias);
    CHECK(dcl_conv2d_forward(dev, P(&c->out), P(&c->in), P(&c->w), P(&c->bias), none, none, c->N,
                             c->C, c->H, c->W, c->Co, 3, 1, 1) == DCL_OK);
    get(&c->out);
}

static void check_conv2d(void) {
    struct conv2d c = {.N = 3, .C = 2, .H = 5, .W = 4, .Co = 3};
    size_t nx = c.N * c.C * c.H * c.W, nw = c.Co * c.C * 9, ny = c.N * c.Co * c.H * c.W;
    struct tensor dout, din, dw;
    if (!tensor_init(&c.in, nx, 1) || !tensor_init(&c.w, nw, 2) || !tensor_init(&c.bias, c.Co, 3) ||
        !tensor_init(&c.out, ny, 4) || !tensor_init(&dout, ny, 5) || !tensor_init(&din, nx, 6) ||
        !tensor_init(&dw, nw, 7))
        goto done;
    for (size_t i = 0; i < nw; i++) dw.h[i] = 0.0f;
    put(&c.in), put(&c.w), put(&dout), put(&dw), poison(&din);
    CHECK(dcl_conv2d_backward(dev, P(&dw), P(&din), P(&dout), P(&c.in), P(&c.w), c.N, c.C, c.H, c.W,
                              c.Co, 3, 1, 1) == DCL_OK);
    get(&dw), get(&din);
    check_against_fd("conv2d: in", &c.in, din.h, conv2d_forward, &c, &dout, &c.out, 0.125f, 1e-4);
    check_against_fd("conv2d: w", &c.w, dw.h, conv2d_forward, &c, &dout, &c.out, 0.125f, 1e-4);
done:
    tensor_free(&c.in), tensor_free(&c.w), tensor_free(&c.bias), tensor_free(&c.out),
        tensor_free(&dout), tensor_free(&din), tensor_free(&dw);
}

// GroupNorm: L = Σ w ⊙ out is smooth in in. The CPU forward computes in double and rounds out to
// float, so L carries ~√48·u·|w·out| ≈ 3e-7 of rounding noise, ~3e-5 in a difference with
// h = 1e-2; the truncation h²/6·|∂³L| with |∂³L| <~ 10 (rstd ~ 1/2) adds ~2e-4: tol 1e-3.
// L is linear in beta and in gamma: h = 1/8, tol 1e-4.
struct gn {
    struct tensor in, gamma, beta, out, mean, rstd;
    size_t N, C, R, G;
};

static void gn_forward(void *p) {
    struct gn *g = p;
    put(&g->in), put(&g->gamma), put(&g->beta);
    CHECK(dcl_group_norm_forward(dev, P(&g->out), P(&g->mean), P(&g->rstd), P(&g->in), P(&g->gamma),
                                 P(&g->beta), g->N, g->C, g->R, g->G, 1e-5f) == DCL_OK);
    get(&g->out);
}

static void check_group_norm(void) {
    struct gn g = {.N = 2, .C = 4, .R = 6, .G = 2};
    size_t n = g.N * g.C * g.R, M = g.C / g.G * g.R;
    struct tensor w, din, dgamma, dbeta;
    if (!tensor_init(&g.in, n, 1) || !tensor_init(&g.gamma, g.C, 2) ||
        !tensor_init(&g.beta, g.C, 3) || !tensor_init(&g.out, n, 4) ||
        !tensor_init(&g.mean, g.N * g.G, 5) || !tensor_init(&g.rstd, g.N * g.G, 6) ||
        !tensor_init(&w, n, 7) || !tensor_init(&din, n, 8) || !tensor_init(&dgamma, g.C, 9) ||
        !tensor_init(&dbeta, g.C, 10))
        goto done;
    for (size_t i = 0; i < n; i++) g.in.h[i] = 3.0f + 2.0f * g.in.h[i]; // mean 3, spread 2
    gn_forward(&g);
    get(&g.mean), get(&g.rstd);
    // The saved statistics are each group's mean and 1/√(var + eps), rounded to float.
    for (size_t row = 0; row < g.N * g.G; row++) {
        double mu = 0, var = 0;
        for (size_t j = 0; j < M; j++) mu += g.in.h[row * M + j];
        mu /= (double)M;
        for (size_t j = 0; j < M; j++) var += pow(g.in.h[row * M + j] - mu, 2);
        var /= (double)M;
        CHECK_NEAR(g.mean.h[row], mu, 1e-6, 1e-6);
        CHECK_NEAR(g.rstd.h[row], 1 / sqrt(var + 1e-5), 1e-6, 1e-6);
    }
    put(&w), poison(&din);
    for (size_t c = 0; c < g.C; c++) dgamma.h[c] = dbeta.h[c] = 0.25f;
    put(&dgamma), put(&dbeta);
    CHECK(dcl_group_norm_backward(dev, P(&din), P(&dgamma), P(&dbeta), P(&w), P(&g.in), P(&g.mean),
                                  P(&g.rstd), P(&g.gamma), g.N, g.C, g.R, g.G) == DCL_OK);
    get(&din), get(&dgamma), get(&dbeta);
    for (size_t c = 0; c < g.C; c++) dgamma.h[c] -= 0.25f, dbeta.h[c] -= 0.25f;
    check_against_fd("group_norm_backward: din", &g.in, din.h, gn_forward, &g, &w, &g.out, 1e-2f,
                     1e-3);
    check_against_fd("group_norm_backward: dgamma +=", &g.gamma, dgamma.h, gn_forward, &g, &w,
                     &g.out, 0.125f, 1e-4);
    check_against_fd("group_norm_backward: dbeta +=", &g.beta, dbeta.h, gn_forward, &g, &w, &g.out,
                     0.125f, 1e-4);
done:
    tensor_free(&g.in), tensor_free(&g.gamma), tensor_free(&g.beta), tensor_free(&g.out);
    tensor_free(&g.mean), tensor_free(&g.rstd), tensor_free(&w), tensor_free(&din);
    tensor_free(&dgamma), tensor_free(&dbeta);
}

// upsample2x and concat_channels are linear copies: h = 1/8. upsample2x_backward's four-term
// float sums err by at most 3u·16 ≈ 3e-6 (measured 1e-7): tol 1e-5; split_channels copies: 1e-6.
struct copyop {
    struct tensor a, b, out;
    size_t N, C, H, W, C2; // upsample: (N, C, H, W); concat: C1 = C, C2, R = H·W
    int concat;
};

static void copyop_forward(void *p) {
    struct copyop *o = p;
    put(&o->a);
    if (o->concat) put(&o->b);
    dcl_status s = o->concat
                       ? dcl_concat_channels(dev, P(&o->out), P(&o->a), P(&o->b), o->N, o->C, o->C2,
                                             o->H * o->W)
                       : dcl_upsample2x_forward(dev, P(&o->out), P(&o->a), o->N, o->C, o->H, o->W);
    CHECK(s == DCL_OK);
    get(&o->out);
}

static void check_upsample(void) {
    struct copyop o = {.N = 2, .C = 2, .H = 3, .W = 5};
    size_t n = o.N * o.C * o.H * o.W;
    struct tensor w, din;
    if (!tensor_init(&o.a, n, 1) || !tensor_init(&o.out, 4 * n, 2) || !tensor_init(&w, 4 * n, 3) ||
        !tensor_init(&din, n, 4))
        goto done;
    put(&w), poison(&din);
    CHECK(dcl_upsample2x_backward(dev, P(&din), P(&w), o.N, o.C, o.H, o.W) == DCL_OK);
    get(&din);
    check_against_fd("upsample2x_backward", &o.a, din.h, copyop_forward, &o, &w, &o.out, 0.125f,
                     1e-5);
done:
    tensor_free(&o.a), tensor_free(&o.out), tensor_free(&w), tensor_free(&din);
}

static void check_split(void) {
    struct copyop o = {.N = 2, .C = 3, .C2 = 2, .H = 2, .W = 3, .concat = 1};
    size_t R = o.H * o.W, na = o.N * o.C * R, nb = o.N * o.C2 * R;
    struct tensor w, da, db;
    if (!tensor_init(&o.a, na, 1) || !tensor_init(&o.b, nb, 2) ||
        !tensor_init(&o.out, na + nb, 3) || !tensor_init(&w, na + nb, 4) ||
        !tensor_init(&da, na, 5) || !tensor_init(&db, nb, 6))
        goto done;
    put(&w), poison(&da), poison(&db);
    CHECK(dcl_split_channels(dev, P(&da), P(&db), P(&w), o.N, o.C, o.C2, R) == DCL_OK);
    get(&da), get(&db);
    check_against_fd("split_channels: da", &o.a, da.h, copyop_forward, &o, &w, &o.out, 0.125f,
                     1e-6);
    check_against_fd("split_channels: db", &o.b, db.h, copyop_forward, &o, &w, &o.out, 0.125f,
                     1e-6);
done:
    tensor_free(&o.a), tensor_free(&o.b), tensor_free(&o.out);
    tensor_free(&w), tensor_free(&da), tensor_free(&db);
}

// ---- class embedding ----------------------------------------------------------------------------

// L is linear in the table: h = 1/8, tol 1e-4. Labels repeat and one is out of range (K): its row
// of out is zero and it adds nothing to dtable, which starts at 0.25 (accumulates).
struct emb {
    struct tensor table, out;
    dcl_buffer *labels;
    size_t N, K, E;
};

static void emb_forward(void *p) {
    struct emb *e = p;
    put(&e->table);
    CHECK(dcl_embedding_forward(dev, P(&e->out), P(&e->table), dcl_at(e->labels, 0), e->N, e->K,
                                e->E) == DCL_OK);
    get(&e->out);
}

static void check_embedding(void) {
    struct emb e = {.N = 6, .K = 4, .E = 3, .labels = NULL};
    const uint32_t labels[6] = {2, 0, 2, 4, 3, 2}; // 4 = K: a zero row; class 1 unused
    struct tensor w, dtable;
    if (!tensor_init(&e.table, e.K * e.E, 1) || !tensor_init(&e.out, e.N * e.E, 2) ||
        !tensor_init(&w, e.N * e.E, 3) || !tensor_init(&dtable, e.K * e.E, 4) ||
        dcl_buffer_alloc(&e.labels, dev, e.N, "labels") != DCL_OK)
        goto done;
    CHECK(dcl_buffer_write(e.labels, 0, e.N, labels) == DCL_OK);
    put(&w);
    for (size_t i = 0; i < dtable.n; i++) dtable.h[i] = 0.25f;
    put(&dtable);
    CHECK(dcl_embedding_backward(dev, P(&dtable), P(&w), dcl_at(e.labels, 0), e.N, e.K, e.E) ==
          DCL_OK);
    get(&dtable);
    for (size_t i = 0; i < dtable.n; i++) dtable.h[i] -= 0.25f;
    check_against_fd("embedding_backward (+=)", &e.table, dtable.h, emb_forward, &e, &w, &e.out,
                     0.125f, 1e-4);
    emb_forward(&e);
    for (size_t j = 0; j < e.E; j++) CHECK(e.out.h[3 * e.E + j] == 0.0f);
    for (size_t j = 0; j < e.E; j++) CHECK(dtable.h[1 * e.E + j] == 0.0f);
done:
    dcl_buffer_free(e.labels);
    tensor_free(&e.table), tensor_free(&e.out), tensor_free(&w), tensor_free(&dtable);
}

// ---- self-attention ------------------------------------------------------------------------------

struct attn {
    struct tensor qkv, out, lse;
    size_t N, heads, C, R;
};

static void attn_forward(void *p) {
    struct attn *a = p;
    put(&a->qkv);
    CHECK(dcl_attention_forward(dev, P(&a->out), P(&a->lse), P(&a->qkv), a->N, a->heads, a->C,
                                a->R) == DCL_OK);
    get(&a->out);
}

// The forward in double on the host: out and lse of every (n, h, i) against the op's, within
// float rounding (scores |S| < ~10, R <= 64: tol 2e-6 relative to 1 + |x|).
static void check_attention_reference(struct attn *a) {
    size_t d = a->C / a->heads, R = a->R;
    get(&a->lse);
    double worst = 0;
    for (size_t n = 0; n < a->N; n++)
        for (size_t h = 0; h < a->heads; h++)
            for (size_t i = 0; i < R; i++) {
                const float *q = a->qkv.h + (n * 3 * a->C + h * d) * R, *k = q + a->C * R,
                            *v = k + a->C * R;
                double s[64], m = -INFINITY, l = 0;
                for (size_t j = 0; j < R; j++) {
                    s[j] = 0;
                    for (size_t c = 0; c < d; c++) s[j] += (double)q[c * R + i] * k[c * R + j];
                    s[j] /= sqrt((double)d);
                    m = fmax(m, s[j]);
                }
                for (size_t j = 0; j < R; j++) l += s[j] = exp(s[j] - m);
                for (size_t c = 0; c < d; c++) {
                    double o = 0;
                    for (size_t j = 0; j < R; j++) o += s[j] / l * v[c * R + j];
                    double got = a->out.h[(n * a->C + h * d + c) * R + i];
                    worst = fmax(worst, fabs(got - o) / (1 + fabs(o)));
                }
                double L = m + log(l), got = a->lse.h[(n * a->heads + h) * R + i];
                worst = fmax(worst, fabs(got - L) / (1 + fabs(L)));
            }
    CHECK(worst <= 2e-6);
    printf("%-28s worst |op − double| / (1 + |x|) = %.2e (tol 2e-06)\n", "attention_forward",
           worst);
}

// L = Σ w ⊙ out through softmax(q·k/√d)·v, inputs of scale 1.5 (scores up to ~10), h = 1e-2:
// truncation h²/6 times L's third derivative (~10 here) ~ 2e-4, rounding ~u·Σ|w·out|/h
// ~ 6e-8·60/1e-2 ≈ 4e-4 at worst: tol 2e-3. Two shapes: two heads of d = 3 over R = 7
// positions, and one head of d = 4 over R = 1 (P = 1: dq = dk = 0 and dv = dout, asserted exactly).
static void check_attention(size_t N, size_t heads, size_t C, size_t R) {
    struct attn a = {.N = N, .heads = heads, .C = C, .R = R};
    size_t n = N * C * R;
    struct tensor w, dqkv;
    if (!tensor_init(&a.qkv, 3 * n, 1) || !tensor_init(&a.out, n, 2) ||
        !tensor_init(&a.lse, N * heads * R, 3) || !tensor_init(&w, n, 4) ||
        !tensor_init(&dqkv, 3 * n, 5))
        goto done;
    for (size_t i = 0; i < a.qkv.n; i++) a.qkv.h[i] *= 1.5f;
    attn_forward(&a);
    check_attention_reference(&a);
    put(&w), poison(&dqkv);
    CHECK(dcl_attention_backward(dev, P(&dqkv), P(&w), P(&a.qkv), P(&a.out), P(&a.lse), N, heads, C,
                                 R) == DCL_OK);
    get(&dqkv);
    char what[64];
    snprintf(what, sizeof what, "attention_backward R=%zu", R);
    check_against_fd(what, &a.qkv, dqkv.h, attn_forward, &a, &w, &a.out, 1e-2f, 2e-3);
    if (R == 1)
        for (size_t s = 0; s < N; s++)
            for (size_t c = 0; c < 3 * C; c++) {
                float g = dqkv.h[s * 3 * C + c];
                CHECK(c < 2 * C ? g == 0.0f : g == w.h[s * C + c - 2 * C]);
            }
done:
    tensor_free(&a.qkv), tensor_free(&a.out), tensor_free(&a.lse), tensor_free(&w);
    tensor_free(&dqkv);
}

// Closed forms. With every key of a head equal, the scores of a row are all equal whatever the
// query, so P is uniform and out is the mean of the values; queries ~1e3 make scores ~1e3 to 1e4,
// far past exp's range, which only the max subtraction keeps finite, and lse = S + log R. With
// heads = 1 and R = 1, out = v exactly (P = 1) and lse = q·k/√C.
static void check_attention_closed_form(void) {
    enum { N = 2, HEADS = 2, C = 6, R = 9, D = C / HEADS };
    float qkv[N * 3 * C * R], out[N * C * R], lse[N * HEADS * R];
    for (size_t i = 0; i < sizeof qkv / sizeof *qkv; i++)
        qkv[i] = dcl_rng_normal_at(7, DCL_RNG_TEST, 1, i);
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++)
            for (size_t r = 0; r < R; r++) {
                qkv[(n * 3 * C + c) * R + r] *= 1000.0f;                         // queries
                qkv[(n * 3 * C + C + c) * R + r] = qkv[(n * 3 * C + C + c) * R]; // keys
            }
    const size_t nq = sizeof qkv / 4, no = sizeof out / 4, nl = sizeof lse / 4;
    dcl_buffer *b = NULL;
    if (dcl_buffer_alloc(&b, dev, nq + no + nl, "closed form") != DCL_OK) {
        check_failures++;
        return;
    }
    dcl_ptr pq = dcl_at(b, 0), po = dcl_at(b, nq), pl = dcl_at(b, nq + no);
    CHECK(dcl_buffer_write(b, 0, nq, qkv) == DCL_OK);
    CHECK(dcl_attention_forward(dev, po, pl, pq, N, HEADS, C, R) == DCL_OK);
    CHECK(dcl_buffer_read(b, nq, no, out) == DCL_OK);
    CHECK(dcl_buffer_read(b, nq + no, nl, lse) == DCL_OK);
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++) {
            const float *v = qkv + (n * 3 * C + 2 * C + c) * R;
            double mean = 0;
            for (size_t j = 0; j < R; j++) mean += v[j] / (double)R;
            for (size_t i = 0; i < R; i++) CHECK_NEAR(out[(n * C + c) * R + i], mean, 1e-6, 1e-6);
        }
    // S rounds to float (a dot product of D terms ~1e3): ~D·u·Σ|q·k| <~ 2e-3 absolute.
    for (size_t n = 0; n < N; n++)
        for (size_t h = 0; h < HEADS; h++)
            for (size_t i = 0; i < R; i++) {
                double s = 0;
                for (size_t c = 0; c < D; c++)
                    s += (double)qkv[(n * 3 * C + h * D + c) * R + i] *
                         qkv[(n * 3 * C + C + h * D + c) * R];
                s /= sqrt((double)D);
                CHECK_NEAR(lse[(n * HEADS + h) * R + i], s + log((double)R), 4e-3, 1e-6);
            }
    // heads = 1, R = 1 on the same buffer read as (N, 3C, 1).
    CHECK(dcl_attention_forward(dev, po, pl, pq, N, 1, C, 1) == DCL_OK);
    CHECK(dcl_buffer_read(b, nq, N * C, out) == DCL_OK);
    CHECK(dcl_buffer_read(b, nq + no, N, lse) == DCL_OK);
    for (size_t n = 0; n < N; n++) {
        double s = 0;
        for (size_t c = 0; c < C; c++) {
            CHECK(out[n * C + c] == qkv[n * 3 * C + 2 * C + c]);
            s += (double)qkv[n * 3 * C + c] * qkv[n * 3 * C + C + c];
        }
        CHECK_NEAR(lse[n], s / sqrt((double)C), 4e-3, 1e-6);
    }
    dcl_buffer_free(b);
}

// ---- argument checks ----------------------------------------------------------------------------

// The image ops refuse sizes they cannot run, with DCL_ERR_ARG, before touching any data.
static void check_rejects(void) {
    dcl_buffer *b = NULL;
    if (dcl_buffer_alloc(&b, dev, 64, "rejects") != DCL_OK) {
        check_failures++;
        return;
    }
    dcl_ptr p = dcl_at(b, 0), q = dcl_at(b, 32);
    CHECK(dcl_group_norm_forward(dev, p, p, p, p, p, p, 1, 6, 2, 4, 1e-5f) == DCL_ERR_ARG);
    CHECK(dcl_group_norm_forward(dev, p, p, p, p, p, p, 1, 6, 2, 0, 1e-5f) == DCL_ERR_ARG);
    CHECK(dcl_group_norm_forward(dev, p, p, p, p, p, p, 1, 6, 0, 3, 1e-5f) == DCL_ERR_ARG);
    CHECK(dcl_group_norm_forward(dev, p, p, p, p, p, p, 1, 6, 2, 3, -1.0f) == DCL_ERR_ARG);
    CHECK(dcl_group_norm_backward(dev, p, p, p, p, p, p, p, p, 1, 6, 2, 4) == DCL_ERR_ARG);
    CHECK(dcl_im2col(dev, q, p, 1, 1, 1, 4, 3, 1, 0) == DCL_ERR_ARG);      // 3×3 on 1 row, no pad
    CHECK(dcl_im2col(dev, q, p, 1, 1, 4, 4, 3, 0, 1) == DCL_ERR_ARG);      // stride 0
    CHECK(dcl_col2im(dev, p, q, 1, 1, 4, 4, 0, 1, 1) == DCL_ERR_ARG);      // kernel size 0
    CHECK(dcl_im2col(dev, q, p, 1, 1, 4, 4, 3, 1, 1) == DCL_ERR_ARG);      // col needs 144 > 32
    CHECK(dcl_swap01(dev, dcl_at(b, 4), p, 2, 3, 2) == DCL_ERR_ARG);       // out overlaps in
    CHECK(dcl_upsample2x_forward(dev, q, p, 1, 1, 4, 4) == DCL_ERR_ARG);   // out needs 64 > 32
    CHECK(dcl_attention_forward(dev, q, q, p, 1, 4, 6, 1) == DCL_ERR_ARG); // 4 heads, 6 channels
    CHECK(dcl_attention_forward(dev, q, q, p, 1, 0, 6, 1) == DCL_ERR_ARG); // no head
    CHECK(dcl_attention_backward(dev, p, q, q, q, q, 1, 1, 0, 1) == DCL_ERR_ARG); // no channel
    CHECK(dcl_attention_forward(dev, q, q, p, 1, 2, 8, 4) == DCL_ERR_ARG); // qkv needs 96 > 64
    dcl_buffer_free(b);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;           // --small changes nothing: the sizes are already small
    setvbuf(stdout, NULL, _IOLBF, 0); // keep summaries and failure details in order
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s != DCL_OK) {
        fprintf(stderr, "cannot open the CPU reference: %s\n", dcl_last_error());
        return 1;
    }
    check_activation(0);
    check_activation(1);
    check_bias();
    check_gemm(0);
    check_gemm(1);
    check_mse();
    check_softmax_cross_entropy();
    check_im2col(3, 1, 1);
    check_im2col(3, 2, 1);
    check_im2col(1, 1, 0);
    check_im2col(4, 3, 2);
    check_swap01();
    check_channel_bias(0);
    check_channel_bias(1);
    check_conv_output();
    check_conv2d();
    check_group_norm();
    check_upsample();
    check_split();
    check_embedding();
    check_attention(2, 2, 6, 7);
    check_attention(3, 1, 4, 1);
    check_attention_closed_form();
    check_rejects();
    dcl_device_free(dev);
    return check_exit();
}
