// DDPM: the stochastic reverse step (tutorial Algorithm 1, Pseudocode 2 and 7; Ho et al. 2020).
#include <math.h>

#include "diffusion/diffusion.h" // dcl__process_posterior
#include "diffusion/sampler.h"   // struct dcl__step

// x_s = E[x_s | x_t] + N(0, σ²): the mean is the Gaussian posterior q(x_s | x_t, x0̂)
// m0 x_t + m1 x0̂ (Ho et al. eq. 7; host/README.md "Notation"). For ve it is (1 − Δt/t) x_t + (Δt/t) x0̂, Pseudocode 7 line 4 and
// eq. 137; for prev it is f itself, Pseudocode 2 line 4. The variance is the posterior's
// σ²_{t|s} b_s²/b_t² (Ho et al.'s σ² = β̃), or with o->ddpm_tutorial the forward step's σ²_{t|s}:
// σ_q² Δt for ve, Algorithm 1 eq. 15 and Pseudocode 2 line 3 (Ho et al.'s σ² = β elsewhere).
void dcl__sampler_ddpm_coefs(const dcl_process *p, const dcl_sampler_opts *o,
                             const struct dcl__step *st, double c[3]) {
    double m[2], var_post, var_step;
    dcl__process_posterior(p, st->t, st->s, m, &var_post, &var_step);
    c[0] = m[0] + m[1] * st->cx[0];
    c[1] = m[1] * st->cx[1];
    c[2] = sqrt(o->ddpm_tutorial ? var_step : var_post);
}
