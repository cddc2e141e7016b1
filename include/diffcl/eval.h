// Distribution distances for evaluation (host-side, double precision).
#ifndef DIFFCL_EVAL_H
#define DIFFCL_EVAL_H

#include <stddef.h>
#include <stdint.h>

// Sliced Wasserstein-2 distance between point sets a (n, D) and b (m, D): the root mean over
// n_proj random unit directions (Philox, seed) of the squared W2 distance of the 1-D projections
// (quantile matching; n != m handled by interpolating quantiles).
double dcl_sw2(const float *a, size_t n, const float *b, size_t m, size_t D, int n_proj,
               uint64_t seed);
// Fraction of samples (n, D) within `radius` (Euclidean) of some training point (n_train, D).
double dcl_memorised_fraction(const float *samples, size_t n, const float *train, size_t n_train,
                              size_t D, double radius);

#endif
