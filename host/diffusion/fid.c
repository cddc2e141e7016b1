// The Fréchet distance between two Gaussians fitted to feature vectors (Heusel et al. 2017, "GANs
// Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", eq. 6), with the
// matrix square root from a cyclic Jacobi eigen-decomposition (Golub & Van Loan, "Matrix
// Computations", §8.5). Host code in double.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" // dcl__fail
#include "diffcl/eval.h"
#include "diffusion/diffusion.h" // dcl__sym_eigen

dcl_status dcl_gaussian_fit(const float *x, size_t N, size_t F, double *mean, double *cov) {
    if (N < 2 || F == 0)
        return dcl__fail(DCL_ERR_ARG,
                         "a Gaussian fit needs at least 2 vectors of dimension >= 1 "
                         "(got %zu of dimension %zu)",
                         N, F);
    double *d = malloc(F * sizeof *d);
    if (!d) return dcl__fail(DCL_ERR_NOMEM, "Gaussian fit: no memory for %zu values", F);
    memset(mean, 0, F * sizeof *mean);
    memset(cov, 0, F * F * sizeof *cov);
    for (size_t n = 0; n < N; n++)
        for (size_t i = 0; i < F; i++) mean[i] += x[n * F + i];
    for (size_t i = 0; i < F; i++) mean[i] /= (double)N;
    for (size_t n = 0; n < N; n++) {
        for (size_t i = 0; i < F; i++) d[i] = x[n * F + i] - mean[i];
        for (size_t i = 0; i < F; i++)
            for (size_t j = i; j < F; j++) cov[i * F + j] += d[i] * d[j];
    }
    for (size_t i = 0; i < F; i++)
        for (size_t j = i; j < F; j++) cov[j * F + i] = cov[i * F + j] /= (double)(N - 1);
    free(d);
    return DCL_OK;
}

// Eigen-decomposition of the symmetric a (n, n) = V diag(w) Vᵀ by cyclic Jacobi rotations: each
// rotation zeroes one off-diagonal pair; sweeps repeat until the off-diagonal mass is below
// 1e-15 of the matrix's (quadratic convergence: ~10 sweeps for n = 64). a is destroyed; v (n, n)
// receives the eigenvectors as columns. Returns 0 when 100 sweeps did not converge.
int dcl__sym_eigen(double *a, size_t n, double *w, double *v) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) v[i * n + j] = i == j;
    double total = 0;
    for (size_t i = 0; i < n * n; i++) total += a[i] * a[i];
    int converged = 0;
    for (int sweep = 0; sweep < 100 && !converged; sweep++) {
        double off = 0;
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++) off += 2 * a[p * n + q] * a[p * n + q];
        if (off <= 1e-30 * total || off == 0) {
            converged = 1;
            break;
        }
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                if (apq == 0) continue;
                // The rotation angle θ with tan 2θ = 2 a_pq / (a_qq − a_pp), t = tan θ the smaller
                // root of t² + 2τt − 1 = 0 (Golub & Van Loan Algorithm 8.5.1).
                double tau = (a[q * n + q] - a[p * n + p]) / (2 * apq);
                double t = (tau >= 0 ? 1 : -1) / (fabs(tau) + sqrt(1 + tau * tau));
                double c = 1 / sqrt(1 + t * t), s = t * c;
                for (size_t k = 0; k < n; k++) { // A ← A J (columns p, q)
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq, a[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) { // A ← Jᵀ A (rows p, q)
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk, a[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) { // V ← V J
                    double vkp = v[k * n + p], vkq = v[k * n + q];
                    v[k * n + p] = c * vkp - s * vkq, v[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (size_t i = 0; i < n; i++) w[i] = a[i * n + i];
    return converged;
}

// FD = |μ1 − μ2|² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^{1/2}. Σ1 Σ2 is not symmetric, but it is similar to
// the symmetric PSD M = Σ1^{1/2} Σ2 Σ1^{1/2} (same eigenvalues), so tr (Σ1 Σ2)^{1/2} = Σ √μ_i over
// M's eigenvalues μ_i; Σ1^{1/2} = V diag(√w) Vᵀ from Σ1's eigen-decomposition. Eigenvalues that
// rounding leaves slightly negative count as 0.
dcl_status dcl_frechet_distance(const double *mu1, const double *cov1, const double *mu2,
                                const double *cov2, size_t F, double *out) {
    size_t FF = F * F;
    double *a = malloc(4 * FF * sizeof *a), *w = malloc(F * sizeof *w);
    if (!a || !w) {
        free(a), free(w);
        return dcl__fail(DCL_ERR_NOMEM, "Fréchet distance: no memory for %zu features", F);
    }
    double *v = a + FF, *s = a + 2 * FF, *m = a + 3 * FF;
    memcpy(a, cov1, FF * sizeof *a);
    int ok = dcl__sym_eigen(a, F, w, v);
    for (size_t i = 0; ok && i < F; i++) // s = Σ1^{1/2}
        for (size_t j = 0; j < F; j++) {
            double acc = 0;
            for (size_t k = 0; k < F; k++) acc += v[i * F + k] * sqrt(fmax(w[k], 0)) * v[j * F + k];
            s[i * F + j] = acc;
        }
    for (size_t i = 0; ok && i < F; i++) // a = s Σ2
        for (size_t j = 0; j < F; j++) {
            double acc = 0;
            for (size_t k = 0; k < F; k++) acc += s[i * F + k] * cov2[k * F + j];
            a[i * F + j] = acc;
        }
    for (size_t i = 0; ok && i < F; i++) // m = a s, symmetrised against rounding
        for (size_t j = 0; j <= i; j++) {
            double acc = 0, acc2 = 0;
            for (size_t k = 0; k < F; k++)
                acc += a[i * F + k] * s[k * F + j], acc2 += a[j * F + k] * s[k * F + i];
            m[i * F + j] = m[j * F + i] = 0.5 * (acc + acc2);
        }
    if (ok) ok = dcl__sym_eigen(m, F, w, v);
    double d = 0;
    for (size_t i = 0; ok && i < F; i++)
        d += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + cov1[i * F + i] + cov2[i * F + i] -
             2 * sqrt(fmax(w[i], 0));
    free(a), free(w);
    if (!ok)
        return dcl__fail(DCL_ERR_FORMAT,
                         "Fréchet distance: the eigen-decomposition of a "
                         "%zu x %zu covariance did not converge (NaN or Inf "
                         "in the features?)",
                         F, F);
    *out = d;
    return DCL_OK;
}
