// The ideal denoiser of a Gaussian mixture in closed form (tutorial §3.3's two points, generalised
// to K isotropic Gaussians): with it in place of a network every sampler must reproduce the mixture
// up to its discretization error, which must shrink as the steps grow (tests/test_samplers.c).
#ifndef DIFFCL_ORACLE_H
#define DIFFCL_ORACLE_H

#include <stddef.h>

#include "diffcl/sample.h" // dcl_denoiser_fn, dcl_process, dcl_prediction

// A mixture Σ_k w_k N(μ_k, s_k² I) in D dimensions, and the parametrization to answer in. The
// arrays are borrowed (not copied) and must outlive the oracle.
typedef struct dcl_oracle {
    dcl_process process;
    dcl_prediction pred;
    double prev_dt; // prev: the Δt of the model being imitated
    int K;
    size_t D;
    const double *weights; // (K), need not be normalised
    const double *means;   // (K, D)
    const double *stds;    // (K), >= 0 (0: a point mass)
    float *host;           // scratch (2 N D), grown on demand
    size_t host_n;
} dcl_oracle;

// E[x0 | x_t] at one point: x (D) → x0 (D), in double. With x_t | k ~ N(a μ_k, (a² s_k² + b²) I),
// the component posteriors are softmax_k(log w_k − D/2 log v_k − |x − a μ_k|²/(2 v_k)) and the
// component means μ_k + (a s_k²/v_k)(x − a μ_k), v_k = a² s_k² + b². Needs v_k > 0 (t > 0 or
// s_k > 0).
void dcl__oracle_x0(const dcl_oracle *o, double t, const double *x, double *x0);

// A dcl_denoiser_fn (ctx = dcl_oracle *): reads x (N, D) from the device, computes x0̂ on the
// host in double and writes the model output f (N, D) in o->pred (dcl__target_from_x0).
dcl_status dcl__oracle_denoise(void *ctx, dcl_ptr out, dcl_ptr x, double t, size_t N);

void dcl__oracle_free(dcl_oracle *o); // the scratch only

#endif
