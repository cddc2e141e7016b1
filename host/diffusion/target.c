// What the network predicts (host/README.md, "Notation"): training coefficients, and the
// conversions between a model output f and the estimates x0̂, ε̂. The only place that converts
// between predictions.
//
// Every prediction is affine in (x0, ε) at fixed t, so with x_t = a x0 + b ε any one of them and
// x_t give the others (tutorial §5 "Parametrization", appendix B.10):
//   x0:       f = x0̂                 ε̂ = (x_t − a x0̂)/b
//   eps:      f = ε̂                  x0̂ = (x_t − b ε̂)/a
//   v:        f = a ε̂ − b x0̂         x0̂ = (a x_t − b f)/(a² + b²), ε̂ = (b x_t + a f)/(a² + b²)
//   velocity: f = x0̂ − ε̂ (x0 − x1)   x0̂ = (x_t + b f)/(a + b), ε̂ = (x_t − a f)/(a + b)
//             (flow: a = 1 − t, b = t, so x0̂ = x_t + t f, ε̂ = x_t − (1 − t) f)
//   prev:     f = m0 x_t + m1 x0̂     the posterior mean E[x_{t−dt} | x_t, x0̂] (see below)
// End points: b = 0 at t = 0 and a = 0 at t = 1 for flow. A coefficient that would divide by a
// vanishing a or b is set to 0 (the estimate is undefined there); samplers never evaluate the
// model at t = 0 and move (flow, eps) off t = 1 with dcl__target_model_t.
#include <math.h>

#include "diffusion/diffusion.h" // dcl__process_posterior, dcl__target_from_x0

#define TINY 1e-12

// prev: the posterior mean of x_s, s = max(t − dt, 0), given x_t and x0: m[0] x_t + m[1] x0.
// For ve this is (1 − dt/t) x_t + (dt/t) x0, the tutorial's eq. 24 / eq. 137.
static void prev_mean(const dcl_process *p, double t, double dt, double m[2]) {
    double s = t - dt, var_post, var_step;
    if (s < 0) s = 0;
    if (t <= 0) {
        m[0] = 0, m[1] = 1; // x_0 = x0
        return;
    }
    dcl__process_posterior(p, t, s, m, &var_post, &var_step);
}

// prev's training target. Pseudocode 1 regresses f(x_{t+Δt}) on a sample x_t of the forward
// process; its optimum is E[x_{t−Δt} | x_t]. Regressing on the posterior mean
// E[x_{t−Δt} | x_t, x0] instead has the same optimum (tower rule: E[E[x_{t−Δt} | x_t, x0] | x_t])
// with less variance, and it is affine in (x0, ε) as dcl_forward_process needs:
// m0 (a x0 + b ε) + m1 x0.
void dcl_target_train_coefs(const dcl_process *p, dcl_prediction pred, double t, double dt,
                            double c[4]) {
    double a, b;
    dcl_process_ab(p, t, &a, &b);
    c[0] = a, c[1] = b; // x_t = a x0 + b ε
    switch (pred) {
    case DCL_PREDICT_X0: c[2] = 1, c[3] = 0; return; // Pseudocode 6 line 4
    case DCL_PREDICT_EPS: c[2] = 0, c[3] = 1; return;
    case DCL_PREDICT_V: c[2] = -b, c[3] = a; return;        // v = a ε − b x0
    case DCL_PREDICT_VELOCITY: c[2] = 1, c[3] = -1; return; // Pseudocode 4 line 4: x0 − x1, x1 = ε
    case DCL_PREDICT_PREV: {
        double m[2];
        prev_mean(p, t, dt, m);
        c[2] = m[0] * a + m[1], c[3] = m[0] * b;
        return;
    }
    }
    c[2] = c[3] = 0;
}

void dcl_target_to_x0_eps(const dcl_process *p, dcl_prediction pred, double t, double dt,
                          double cx[2], double ce[2]) {
    double a, b;
    dcl_process_ab(p, t, &a, &b);
    switch (pred) {
    case DCL_PREDICT_X0:
        cx[0] = 0, cx[1] = 1;
        ce[0] = b > TINY ? 1 / b : 0, ce[1] = b > TINY ? -a / b : 0;
        return;
    case DCL_PREDICT_EPS:
        cx[0] = a > TINY ? 1 / a : 0, cx[1] = a > TINY ? -b / a : 0;
        ce[0] = 0, ce[1] = 1;
        return;
    case DCL_PREDICT_V: {
        double n = a * a + b * b;
        cx[0] = a / n, cx[1] = -b / n;
        ce[0] = b / n, ce[1] = a / n;
        return;
    }
    case DCL_PREDICT_VELOCITY: {
        double n = a + b;
        cx[0] = 1 / n, cx[1] = b / n;
        ce[0] = 1 / n, ce[1] = -a / n;
        return;
    }
    case DCL_PREDICT_PREV: {
        double m[2];
        prev_mean(p, t, dt, m);
        cx[0] = -m[0] / m[1], cx[1] = 1 / m[1];
        ce[0] = b > TINY ? (1 - a * cx[0]) / b : 0, ce[1] = b > TINY ? -a * cx[1] / b : 0;
        return;
    }
    }
    cx[0] = cx[1] = ce[0] = ce[1] = 0;
}

void dcl__target_from_x0(const dcl_process *p, dcl_prediction pred, double t, double dt,
                         double c[2]) {
    double a, b;
    dcl_process_ab(p, t, &a, &b);
    double ib = b > TINY ? 1 / b : 0; // ε̂ = ib x_t − (a ib) x0̂
    switch (pred) {
    case DCL_PREDICT_X0: c[0] = 0, c[1] = 1; return;
    case DCL_PREDICT_EPS: c[0] = ib, c[1] = -a * ib; return;
    case DCL_PREDICT_V: c[0] = a * ib, c[1] = -a * a * ib - b; return;
    case DCL_PREDICT_VELOCITY: c[0] = -ib, c[1] = 1 + a * ib; return;
    case DCL_PREDICT_PREV: prev_mean(p, t, dt, c); return;
    }
    c[0] = c[1] = 0;
}

double dcl__target_model_t(const dcl_process *p, dcl_prediction pred, double t) {
    if (p->kind == DCL_PROCESS_FLOW && pred == DCL_PREDICT_EPS && t > 1 - DCL__T_END)
        return 1 - DCL__T_END;
    return t;
}
