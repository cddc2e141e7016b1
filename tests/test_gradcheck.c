// Finite-difference checks of every backward op on the CPU reference: for a scalar loss
// L = Σ w ⊙ out with random w, the backward op's gradient must match central differences of L
// computed (in double, on the host) from the forward op run at perturbed inputs.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
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
    dcl_device_free(dev);
    return check_exit();
}
