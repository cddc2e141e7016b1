// Distribution distances for evaluation (host-side, double precision).
#ifndef DIFFCL_EVAL_H
#define DIFFCL_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/status.h"

// Sliced Wasserstein-2 distance between point sets a (n, D) and b (m, D): the root mean over
// n_proj random unit directions (Philox stream (seed, DCL_RNG_TEST, step = direction index)) of
// the squared W2 distance of the 1-D projections. That 1-D distance is exact for the two empirical
// distributions: sorted quantile matching for n = m; for n != m the integral of the squared
// difference of the two step quantile functions. For a shift Δ of the same set it is |Δ|/√D.
// NaN when n, m, D or n_proj is 0 or host memory runs out.
double dcl_sw2(const float *a, size_t n, const float *b, size_t m, size_t D, int n_proj,
               uint64_t seed);
// Fraction of samples (n, D) within `radius` (Euclidean) of some training point (n_train, D).
// Brute force O(n · n_train · D), meant for n_train up to a few thousand; 0 when n is 0.
double dcl_memorised_fraction(const float *samples, size_t n, const float *train, size_t n_train,
                              size_t D, double radius);
// For each sample (n, D), the RMS distance per value to its nearest training point (n_train, D),
// sqrt(min_j ‖x_i − y_j‖² / D), into nearest (n); the memorisation check for images (a sample
// that copies a training image has distance ≈ 0). Brute force O(n · n_train · D).
void dcl_nearest_rms(const float *samples, size_t n, const float *train, size_t n_train, size_t D,
                     double *nearest);

// Mean (F) and unbiased covariance (F, F) of N >= 2 feature vectors x (N, F). (fid.c)
dcl_status dcl_gaussian_fit(const float *x, size_t N, size_t F, double *mean, double *cov);
// The Fréchet distance between N(mu1, cov1) and N(mu2, cov2) in F dimensions:
// |mu1 − mu2|² + tr(cov1 + cov2 − 2 (cov1 cov2)^{1/2}) (FID's formula; which features it is
// computed on decides what it measures). DCL_ERR_FORMAT if the eigen-decomposition fails.
dcl_status dcl_frechet_distance(const double *mu1, const double *cov1, const double *mu2,
                                const double *cov2, size_t F, double *out);

#endif
