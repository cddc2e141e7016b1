// Heun's second-order step on the probability-flow ODE (Karras et al. 2022, Algorithm 1).
#include "diffusion/sampler.h" // struct dcl__step, dcl__ode_velocity

// With d(x, t) = v0 x + v1 f(x, t) the ODE velocity (euler.c) and h = s − t:
//   x̃_s = x_t + h d(x_t, t)                      (Algorithm 1 line 5, the Euler predictor)
//   x_s = x_t + (h/2) (d(x_t, t) + d(x̃_s, s))     (Algorithm 1 line 8, the trapezoid corrector)
// Expanding x̃_s, the corrector is affine in (x_t, f(x_t, t), f(x̃_s, s)):
//   x_s = [1 + (h/2)(v0 + w0 (1 + h v0))] x_t + (h/2) v1 (1 + h w0) f + (h/2) w1 f2,
// with (w0, w1) the velocity at s. The last step, to s = 0, has no corrector (line 6), as
// dcl_sampler_coefs makes every sampler's last step x0̂.
void dcl__sampler_heun_coefs(const dcl_process *p, const struct dcl__step *st,
                             const struct dcl__step *st2, double c[3]) {
    double v[2], w[2], h = st->s - st->t;
    dcl__ode_velocity(p, st, v);
    dcl__ode_velocity(p, st2, w);
    c[0] = 1 + (h / 2) * (v[0] + w[0] * (1 + h * v[0]));
    c[1] = (h / 2) * v[1] * (1 + h * w[0]);
    c[2] = (h / 2) * w[1];
}
