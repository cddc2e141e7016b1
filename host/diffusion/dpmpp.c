// DPM-Solver++(2M): the multistep second-order solver of the probability-flow ODE in its data-
// prediction form (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
// Probabilistic Models", Algorithm 2), stepping in the half log-SNR λ = log(a/b); and its SDE
// form, dpm++2m-sde.
#include <math.h>

#include "diffusion/sampler.h" // struct dcl__step, dcl__sampler_dpmpp_coefs

// λ(t) = log(a(t)/b(t)); −∞ where a vanishes (flow at t = 1).
double dcl__process_lambda(const dcl_process *p, double t) {
    double a, b;
    dcl_process_ab(p, t, &a, &b);
    return log(a) - log(b);
}

// With h = λ_s − λ_t and the data estimate D, the exact solution of the ODE in λ is
// x_s = (b_s/b_t) x_t + a_s (1 − e^{−h}) D (Lu et al. eq. 9 with D held constant over the step).
// First order takes D = x0̂_t (this is DDIM); 2M extrapolates linearly in λ through the previous
// step's estimate: D = (1 + 1/(2r)) x0̂_t − 1/(2r) x0̂_prev with r = h_prev/h (Algorithm 2, line 5).
// The SDE form (Lu et al. 2022, appendix; k-diffusion's dpmpp_2m_sde with η = 1, midpoint) solves
// the reverse SDE in λ the same way: x_s = (b_s/b_t) e^{−h} x_t + a_s (1 − e^{−2h}) D
// + b_s √(1 − e^{−2h}) z, whose first order is exactly the Gaussian posterior q(x_s | x_t, x0 = D)
// (DDPM's step with the posterior variance), and 2M takes the same D as above.
void dcl__sampler_dpmpp_coefs(const dcl_process *p, const struct dcl__step *st, int sde,
                              double h_prev, double c[3], double *h, double *noise) {
    double at, bt, as, bs;
    dcl_process_ab(p, st->t, &at, &bt);
    dcl_process_ab(p, st->s, &as, &bs);
    *h = (log(as) - log(bs)) - (log(at) - log(bt)); // +∞ when a_t = 0: e^{−h} = 0 below
    // a_s (1 − e^{−h}), or a_s (1 − e^{−2h}) for the SDE, without cancellation
    double g = as * -expm1(sde ? -2 * *h : -*h);
    double w = 0; // the weight of x0̂_prev
    if (h_prev > 0 && isfinite(h_prev) && isfinite(*h)) w = *h / (2 * h_prev); // 1/(2r)
    c[0] = sde ? bs / bt * exp(-*h) : bs / bt;
    c[1] = g * (1 + w);
    c[2] = -g * w;
    *noise = sde ? bs * sqrt(-expm1(-2 * *h)) : 0;
}
