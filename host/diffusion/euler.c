// Euler on the probability-flow ODE (tutorial Pseudocode 5 for flow; §3.5 eq. 57–58 for ve).
#include "diffusion/diffusion.h" // dcl__process_dab
#include "diffusion/sampler.h"   // struct dcl__step

// The ODE: dx/dt = a'(t) x0̂ + b'(t) ε̂, the velocity of x_t = a(t) x0 + b(t) ε with (x0, ε)
// replaced by their conditional expectations given x_t (tutorial eq. 69 with the pointwise flow
// of x_t = a x0 + b ε; the probability-flow ODE of Song et al. 2021, "Score-Based Generative
// Modeling through Stochastic Differential Equations", eq. 13, and Karras et al. 2022 eq. 4, in
// this notation).
// Substituting x0̂ = (x_t − b ε̂)/a gives the form dx/dt = (a'/a) x_t + (b' − (a'/a) b) ε̂. For
// flow it is ε̂ − x0̂ = −f for the velocity f = x0 − x1 of Pseudocode 4; for ve it is
// (x_t − x0̂)/(2t), eq. 58.
void dcl__ode_velocity(const dcl_process *p, const struct dcl__step *st, double v[2]) {
    double da, db;
    dcl__process_dab(p, st->t, &da, &db);
    v[0] = da * st->cx[0] + db * st->ce[0];
    v[1] = da * st->cx[1] + db * st->ce[1];
}

// x_s = x_t + (s − t) dx/dt: Pseudocode 5 line 3, x_{t−Δt} = x_t + f Δt for flow.
void dcl__sampler_euler_coefs(const dcl_process *p, const struct dcl__step *st, double c[3]) {
    double v[2], h = st->s - st->t;
    dcl__ode_velocity(p, st, v);
    c[0] = 1 + h * v[0];
    c[1] = h * v[1];
    c[2] = 0;
}
