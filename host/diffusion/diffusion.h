// Internal helpers of host/diffusion/ shared by the samplers, the oracle and the tests: schedule
// derivatives and the Gaussian posterior (schedule.c), and the inverse conversion x0̂ → model
// output plus the time at which a sampler evaluates the model (target.c).
#ifndef DIFFCL_DIFFUSION_INTERNAL_H
#define DIFFCL_DIFFUSION_INTERNAL_H

#include <stddef.h>

#include "diffcl/schedule.h"

// da/dt and db/dt at t in (0, 1] (the derivatives of the unclipped schedule; for vp-linear those
// of the segment (t − 1/N, t] of the piecewise log-linear ᾱ). Not defined at t = 0 for ve.
void dcl__process_dab(const dcl_process *p, double t, double *da, double *db);

// The Gaussian posterior q(x_s | x_t, x0) for s < t (Ho et al. 2020 eq. 7 in the notation of
// host/README.md, "Notation"):
// mean m[0] x_t + m[1] x0, variance *var_post (per coordinate). *var_step = σ²_{t|s} =
// b_t² − (a_t/a_s)² b_s², the variance of the forward transition x_t | x_s (σ_q² (t − s) for ve).
void dcl__process_posterior(const dcl_process *p, double t, double s, double m[2], double *var_post,
                            double *var_step);

// The inverse of dcl_target_to_x0_eps: the model output that corresponds to the estimate x0̂ at
// (x_t, t): f = c[0] x_t + c[1] x0̂ (ε̂ = (x_t − a x0̂)/b). Needs t > 0 (b > 0). dt as for prev.
void dcl__target_from_x0(const dcl_process *p, dcl_prediction pred, double t, double dt,
                         double c[2]);

// The time at which samplers evaluate the model and convert its output when the grid says t: t
// itself, except for (flow, eps) where a(t) = 1 − t vanishes at t = 1 and x0̂ = (x_t − t ε̂)/(1 − t)
// is undefined; there t is capped at 1 − DCL__T_END (base mismatch of order DCL__T_END).
#define DCL__T_END 1e-3
double dcl__target_model_t(const dcl_process *p, dcl_prediction pred, double t);

// Eigen-decomposition of the symmetric a (n, n) = V diag(w) Vᵀ (cyclic Jacobi; a is destroyed, v
// (n, n) gets the eigenvectors as columns). 0 if it did not converge. (fid.c)
int dcl__sym_eigen(double *a, size_t n, double *w, double *v);

#endif
