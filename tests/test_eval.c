// Evaluation distances: sliced W2 of a set with itself, of a shifted Gaussian (|Δ|/√D), with
// n != m, and against a hand-computed 1-D case; the memorised fraction on a constructed example.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/eval.h"
#include "diffcl/rng.h"          // dcl_rng_normal_at
#include "diffusion/diffusion.h" // dcl__sym_eigen

// n points of N(shift, I) in D dimensions from Philox stream (seed, DCL_RNG_TEST, step).
static float *gaussian(size_t n, size_t D, const double *shift, uint64_t seed, uint32_t step) {
    float *x = malloc(n * D * sizeof *x);
    for (size_t i = 0; i < n * D; i++)
        x[i] = (float)(shift[i % D] + dcl_rng_normal_at(seed, DCL_RNG_TEST, step, i));
    return x;
}

static void check_sw2(int small) {
    const size_t D = 2, n = small ? 1000 : 2000;
    const double zero[2] = {0, 0}, delta[2] = {1.2, -1.6}; // |Δ| = 2
    float *a = gaussian(n, D, zero, 1, 0);
    // A set with itself: every projection matches exactly.
    CHECK_NEAR(dcl_sw2(a, n, a, n, D, 64, 3), 0, 0, 0);

    // The same points shifted by Δ: each projection is shifted by θ·Δ, so SW2² is the mean of
    // (θ·Δ)² over the directions, |Δ|²/D for uniform directions. Monte Carlo error over
    // n_proj = 500 directions in D = 2: (θ·Δ)² = |Δ|² cos² φ has mean |Δ|²/2 and std |Δ|²/√8, so
    // one standard error of SW2² is 0.71/√500 ≈ 3.2% relative, of SW2 half that, 1.6%; the
    // tolerance 8% is about 5 of those.
    float *b = malloc(n * D * sizeof *b);
    for (size_t i = 0; i < n * D; i++) b[i] = a[i] + (float)delta[i % D];
    double expected = 2 / sqrt((double)D);
    CHECK_NEAR(dcl_sw2(a, n, b, n, D, 500, 5), expected, 0, 0.08);

    // Independent samples of the two Gaussians: add the finite-sample W2 between two draws of the
    // same law (small at this n: measured below against an unshifted second draw).
    float *c = gaussian(n, D, delta, 1, 1), *z = gaussian(n, D, zero, 1, 2);
    double noise = dcl_sw2(a, n, z, n, D, 500, 5);
    printf("sw2: shift %.4f (expected %.4f), independent draws %.4f, same law %.4f\n",
           dcl_sw2(a, n, b, n, D, 500, 5), expected, dcl_sw2(a, n, c, n, D, 500, 5), noise);
    CHECK(noise < 0.15); // 0.07 at n = 2000, 0.10 at n = 1000 (--small)
    CHECK_NEAR(dcl_sw2(a, n, c, n, D, 500, 5), expected, 0.1, 0.08);

    // n != m: a subset of different size of the same set, and a shifted set of another size.
    size_t m = n / 3 + 7;
    float *d = gaussian(m, D, delta, 1, 3);
    double sw_nm = dcl_sw2(a, n, d, m, D, 500, 5), sw_mn = dcl_sw2(d, m, a, n, D, 500, 5);
    printf("sw2: n = %zu vs m = %zu: %.4f (reversed %.4f)\n", n, m, sw_nm, sw_mn);
    CHECK_NEAR(sw_nm, expected, 0.15, 0.08);
    CHECK_NEAR(sw_nm, sw_mn, 1e-12, 1e-12); // symmetric
    // A set against itself repeated twice (n vs 2n): the same empirical law, distance 0.
    float *aa = malloc(2 * n * D * sizeof *aa);
    memcpy(aa, a, n * D * sizeof *a);
    memcpy(aa + n * D, a, n * D * sizeof *a);
    CHECK_NEAR(dcl_sw2(a, n, aa, 2 * n, D, 64, 3), 0, 1e-12, 0);

    // 1-D by hand: {0, 1} against {0, 1, 2}: quantile steps on (0, 1/3], (1/3, 1/2], (1/2, 2/3],
    // (2/3, 1] are (0 vs 0), (0 vs 1), (1 vs 1), (1 vs 2), so W2² = 1/6 + 1/3 = 1/2. In D = 1 every
    // direction is ±1, so SW2 = √(1/2).
    const float p[2] = {1, 0}, q[3] = {2, 0, 1};
    CHECK_NEAR(dcl_sw2(p, 2, q, 3, 1, 16, 1), sqrt(0.5), 1e-12, 0);

    CHECK(isnan(dcl_sw2(a, 0, b, n, D, 10, 1)));
    CHECK(isnan(dcl_sw2(a, n, b, n, D, 0, 1)));
    free(a), free(b), free(c), free(d), free(z), free(aa);
}

static void check_memorised(void) {
    // Train points on a unit grid; samples: 3 exactly on train points, 2 within 0.05, 5 far away.
    const float train[4 * 2] = {0, 0, 1, 0, 0, 1, 1, 1};
    const float samples[10 * 2] = {0,     0,     1,     1,     0,  1, // on train points
                                   1.03f, 0.02f, 0.01f, 0.98f,        // within 0.05
                                   0.5f,  0.5f,  2,     2,     -1, 0.3f, 0.5f, 0, 0.2f, 0.8f};
    CHECK_NEAR(dcl_memorised_fraction(samples, 10, train, 4, 2, 0.05), 0.5, 1e-12, 0);
    CHECK_NEAR(dcl_memorised_fraction(samples, 10, train, 4, 2, 1e-6), 0.3, 1e-12, 0);
    CHECK_NEAR(dcl_memorised_fraction(samples, 10, train, 4, 2, 10), 1.0, 1e-12, 0);
    CHECK_NEAR(dcl_memorised_fraction(samples, 0, train, 4, 2, 1), 0, 0, 0);
    CHECK_NEAR(dcl_memorised_fraction(samples, 10, train, 0, 2, 1), 0, 0, 0);
}

// Nearest-neighbour RMS distance: exact for hand-made points, with D not a multiple of the
// function's block of 8 and the nearest point not the first.
static void check_nearest(void) {
    enum { D = 11 };
    float train[3 * D], samples[2 * D];
    for (int d = 0; d < D; d++) {
        train[d] = 5, train[D + d] = 1, train[2 * D + d] = -1;
        samples[d] = 1;                        // equals training point 1
        samples[D + d] = d == D - 1 ? -3 : -1; // training point 2 off by 2 in the last value
    }
    double nearest[2];
    dcl_nearest_rms(samples, 2, train, 3, D, nearest);
    CHECK_NEAR(nearest[0], 0.0, 0, 0);
    CHECK_NEAR(nearest[1], sqrt(4.0 / D), 1e-12, 1e-12);
}

// Jacobi's eigen-decomposition reconstructs a random symmetric matrix, V is orthogonal; the
// Fréchet distance matches closed forms: 2-D (tr √A = √(tr A + 2 √det A) for a 2 × 2 A with
// real non-negative eigenvalues, A = Σ1 Σ2 not symmetric), covariances sharing eigenvectors
// (Σ (√d1 − √d2)²), and 0 for a Gaussian with itself; the Gaussian fit on a hand example.
static void check_frechet(void) {
    enum { F = 24 };
    double *a = malloc(3 * F * F * sizeof *a), w[F], *v = a + F * F, *c = a + 2 * F * F;
    for (size_t i = 0; i < F; i++)
        for (size_t j = 0; j <= i; j++)
            c[i * F + j] = c[j * F + i] = dcl_rng_normal_at(5, DCL_RNG_TEST, 0, i * F + j);
    memcpy(a, c, F * F * sizeof *a);
    CHECK(dcl__sym_eigen(a, F, w, v));
    double worst = 0, worst_orth = 0;
    for (size_t i = 0; i < F; i++)
        for (size_t j = 0; j < F; j++) {
            double r = 0, o = 0;
            for (size_t k = 0; k < F; k++)
                r += v[i * F + k] * w[k] * v[j * F + k], o += v[k * F + i] * v[k * F + j];
            worst = fmax(worst, fabs(r - c[i * F + j]));
            worst_orth = fmax(worst_orth, fabs(o - (i == j)));
        }
    CHECK_NEAR(worst, 0, 1e-12, 0);
    CHECK_NEAR(worst_orth, 0, 1e-12, 0);

    const double m1[2] = {0, 1}, m2[2] = {1, -1};
    const double s1[4] = {2, 0.5, 0.5, 1}, s2[4] = {1, -0.3, -0.3, 3};
    double p[4] = {s1[0] * s2[0] + s1[1] * s2[2], s1[0] * s2[1] + s1[1] * s2[3],
                   s1[2] * s2[0] + s1[3] * s2[2], s1[2] * s2[1] + s1[3] * s2[3]};
    double det = (s1[0] * s1[3] - s1[1] * s1[2]) * (s2[0] * s2[3] - s2[1] * s2[2]);
    double want = 1 + 4 + (s1[0] + s1[3] + s2[0] + s2[3]) - 2 * sqrt(p[0] + p[3] + 2 * sqrt(det));
    double fd;
    CHECK_EQ(dcl_frechet_distance(m1, s1, m2, s2, 2, &fd), DCL_OK);
    CHECK_NEAR(fd, want, 1e-12, 0);
    CHECK_EQ(dcl_frechet_distance(m1, s1, m1, s1, 2, &fd), DCL_OK);
    CHECK_NEAR(fd, 0, 1e-12, 0);

    // Shared eigenvectors: Σk = V diag(dk) Vᵀ with V from the decomposition above.
    double *s3 = malloc(2 * F * F * sizeof *s3), *s4 = s3 + F * F, mu3[F], mu4[F], d3[F], d4[F];
    want = 0;
    for (size_t k = 0; k < F; k++) {
        d3[k] = 0.1 + k, d4[k] = 3.0 / (1 + k), mu3[k] = 0.1 * k, mu4[k] = -0.05 * k;
        want += (sqrt(d3[k]) - sqrt(d4[k])) * (sqrt(d3[k]) - sqrt(d4[k])) +
                (mu3[k] - mu4[k]) * (mu3[k] - mu4[k]);
    }
    for (size_t i = 0; i < F; i++)
        for (size_t j = 0; j < F; j++) {
            double x3 = 0, x4 = 0;
            for (size_t k = 0; k < F; k++)
                x3 += v[i * F + k] * d3[k] * v[j * F + k],
                    x4 += v[i * F + k] * d4[k] * v[j * F + k];
            s3[i * F + j] = x3, s4[i * F + j] = x4;
        }
    CHECK_EQ(dcl_frechet_distance(mu3, s3, mu4, s4, F, &fd), DCL_OK);
    CHECK_NEAR(fd, want, 1e-9, 1e-12);
    printf("frechet: %d-D, shared eigenvectors: %.9f (closed form %.9f)\n", F, fd, want);

    const float x[8] = {0, 0, 2, 0, 0, 2, 2, 2};
    double mean[2], cov[4];
    CHECK_EQ(dcl_gaussian_fit(x, 4, 2, mean, cov), DCL_OK);
    CHECK(mean[0] == 1 && mean[1] == 1);
    CHECK_NEAR(cov[0], 4.0 / 3, 1e-15, 0);
    CHECK_NEAR(cov[3], 4.0 / 3, 1e-15, 0);
    CHECK(cov[1] == 0 && cov[2] == 0);
    CHECK_EQ(dcl_gaussian_fit(x, 1, 2, mean, cov), DCL_ERR_ARG);
    free(a);
    free(s3);
}

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    check_sw2(small);
    check_memorised();
    check_nearest();
    check_frechet();
    return check_exit();
}
