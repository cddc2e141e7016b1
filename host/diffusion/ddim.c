// DDIM: the deterministic reverse step and its eta family (tutorial Algorithm 2, Pseudocode 3;
// Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12).
#include <math.h>

#include "diffusion/diffusion.h" // dcl__process_posterior
#include "diffusion/sampler.h"   // struct dcl__step

// x_s = a_s x0̂ + √(b_s² − σ²) ε̂ + σ z with σ = eta · (the DDPM posterior standard deviation).
// eta = 0: x_s = a_s x0̂ + b_s ε̂, which for ve is x_t + λ(E[x_s | x_t] − x_t) with
// λ = σ_t/(σ_s + σ_t), Pseudocode 3 lines 3–4 (1 − √(s/t) = λ Δt/t by eq. 24). eta = 1 is the
// DDPM posterior step (ddpm.c) written in (x0̂, ε̂).
void dcl__sampler_ddim_coefs(const dcl_process *p, const dcl_sampler_opts *o,
                             const struct dcl__step *st, double c[3]) {
    double as, bs, m[2], var_post, var_step;
    dcl_process_ab(p, st->s, &as, &bs);
    dcl__process_posterior(p, st->t, st->s, m, &var_post, &var_step);
    double sigma = o->eta * sqrt(var_post);
    double k = sqrt(fmax(bs * bs - sigma * sigma, 0));
    c[0] = as * st->cx[0] + k * st->ce[0];
    c[1] = as * st->cx[1] + k * st->ce[1];
    c[2] = sigma;
}
