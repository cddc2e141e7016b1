// Internal: the per-sampler step coefficients (ddpm.c, ddim.c, euler.c, heun.c) that
// dcl_sampler_coefs and dcl_sample (sampler.c) dispatch to.
#ifndef DIFFCL_SAMPLER_INTERNAL_H
#define DIFFCL_SAMPLER_INTERNAL_H

#include "diffcl/sample.h"

// One step from t to s < t, with the model output f = f(x_t, t) turned into estimates:
// x0̂ = cx[0] x_t + cx[1] f and ε̂ = ce[0] x_t + ce[1] f. t is the model time (dcl__target_model_t).
struct dcl__step {
    double t, s;
    double cx[2], ce[2];
};

void dcl__step_init(struct dcl__step *st, const dcl_process *p, dcl_prediction pred,
                    const dcl_sampler_opts *o, double t, double s);

// x_s = c[0] x_t + c[1] f + c[2] z for s > 0.
void dcl__sampler_ddpm_coefs(const dcl_process *p, const dcl_sampler_opts *o,
                             const struct dcl__step *st, double c[3]);
void dcl__sampler_ddim_coefs(const dcl_process *p, const dcl_sampler_opts *o,
                             const struct dcl__step *st, double c[3]);
void dcl__sampler_euler_coefs(const dcl_process *p, const struct dcl__step *st, double c[3]);
// The probability-flow ODE's velocity dx/dt = v[0] x_t + v[1] f at the step's t.
void dcl__ode_velocity(const dcl_process *p, const struct dcl__step *st, double v[2]);
// Heun's corrector: with the predictor x̃_s = c_euler · (x_t, f) and f2 = f(x̃_s, s),
// x_s = c[0] x_t + c[1] f + c[2] f2. st2 is the step at s (its estimates convert f2).
void dcl__sampler_heun_coefs(const dcl_process *p, const struct dcl__step *st,
                             const struct dcl__step *st2, double c[3]);
// The half log-SNR λ(t) = log(a/b) (−∞ where a = 0). (dpmpp.c)
double dcl__process_lambda(const dcl_process *p, double t);
// DPM-Solver++(2M) from st->t to st->s > 0: x_s = c[0] x_t + c[1] x0̂_t + c[2] x0̂_prev
// (+ *noise · z for the SDE form, sde = 1; *noise = 0 otherwise), where x0̂_prev is the previous
// step's estimate; h_prev is the previous step's λ increment (0 on the first step: first order,
// c[2] = 0). *h receives this step's increment. (dpmpp.c)
void dcl__sampler_dpmpp_coefs(const dcl_process *p, const struct dcl__step *st, int sde,
                              double h_prev, double c[3], double *h, double *noise);

#endif
