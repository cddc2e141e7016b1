// Forward processes x_t = a(t) x0 + b(t) ε, ε ~ N(0, I), and what the network predicts, in the
// conventions of "Step-by-Step Diffusion" (Nakkiran et al. 2024, arXiv:2406.08658): t = 0 data,
// t = 1 noise. host/README.md ("Notation") has the table of processes and predictions with their
// sources. host/diffusion/schedule.c is the only place with schedule math; host/diffusion/target.c
// the only place with conversions between predictions.
#ifndef DIFFCL_SCHEDULE_H
#define DIFFCL_SCHEDULE_H

#include "diffcl/status.h"

typedef enum dcl_process_kind {
    DCL_PROCESS_VE = 0, // a = 1, b = σ_q √t (tutorial §1.3)
    DCL_PROCESS_VP_LINEAR = 1, // a = √ᾱ, b = √(1 − ᾱ); β linear 1e-4 → 0.02 over N = 1000 steps
    DCL_PROCESS_VP_COSINE = 2, // ᾱ(t) = f(t)/f(0), f = cos²((t + s)/(1 + s) · π/2), s = 0.008
    DCL_PROCESS_FLOW = 3,      // a = 1 − t, b = t (linear pointwise flow, tutorial §4.4)
} dcl_process_kind;

typedef enum dcl_prediction {
    DCL_PREDICT_PREV = 0,     // x_{t−Δt} (Pseudocode 1; ve only; needs the sampler's Δt)
    DCL_PREDICT_X0 = 1,       // x0 (Pseudocode 6)
    DCL_PREDICT_EPS = 2,      // ε
    DCL_PREDICT_V = 3,        // a ε − b x0 (Salimans & Ho)
    DCL_PREDICT_VELOCITY = 4, // x0 − x1, flow only (Pseudocode 4)
} dcl_prediction;

typedef struct dcl_process {
    dcl_process_kind kind;
    double sigma_q; // ve only: the terminal noise scale (default 1)
    int n_steps;    // vp-linear: N discrete steps (1000); 0 elsewhere
} dcl_process;

// "ve", "vp-linear", "vp-cosine", "flow"; errors list the accepted names.
dcl_status dcl_process_parse(const char *name, dcl_process *out); // sigma_q 1, n_steps set
const char *dcl_process_name(dcl_process_kind kind);
// "prev", "x0", "eps", "v", "velocity".
dcl_status dcl_prediction_parse(const char *name, dcl_prediction *out);
const char *dcl_prediction_name(dcl_prediction pred);
// DCL_OK when the pair works; otherwise DCL_ERR_ARG with a message listing the combinations that do.
dcl_status dcl_prediction_check(const dcl_process *p, dcl_prediction pred);

// a(t) and b(t) for t in [0, 1] (clamped). vp-linear: ᾱ is the discrete product at t = k/N and
// log ᾱ is linear in t in between. vp-cosine: ᾱ is floored at 2.43e-9, the ᾱ_T of Nichol &
// Dhariwal's schedule with β clipped at 0.999 (T = 1000), so a(1) ≈ 4.9e-5 rather than 0.
void dcl_process_ab(const dcl_process *p, double t, double *a, double *b);
// ᾱ(t) for the vp processes (a² for any process).
double dcl_process_alpha_bar(const dcl_process *p, double t);
// Standard deviation of the base sample x1 (σ_q for ve, 1 otherwise).
double dcl_process_base_std(const dcl_process *p);
// Maps a uniform u in (0, 1) to a training time: t = u for continuous processes; for vp-linear the
// integer step k = ceil(u N) in 1..N, t = k / N.
double dcl_process_train_t(const dcl_process *p, double u);

// Training coefficients at time t: x_t = c[0] x0 + c[1] ε and target = c[2] x0 + c[3] ε.
// dt (> 0) is the sampler's step, used only by prev, whose target is the posterior mean
// E[x_{t−dt} | x_t, x0] (same optimum as Pseudocode 1's sampled x_{t−Δt}, less variance; x0 itself
// when t <= dt). velocity's x1 is ε. (target.c)
void dcl_target_train_coefs(const dcl_process *p, dcl_prediction pred, double t, double dt,
                            double c[4]);
// Model output f at (x_t, t) as estimates: x0̂ = cx[0] x_t + cx[1] f and ε̂ = ce[0] x_t + ce[1] f.
// prev: f = x̂_{t−dt}, converted through the ve posterior mean. Where a conversion would divide by
// a vanishing a or b (ε̂ from x0 at t = 0, x0̂ from eps for flow at t = 1) those coefficients are
// 0; samplers avoid both (dcl_sampler_coefs). (target.c)
void dcl_target_to_x0_eps(const dcl_process *p, dcl_prediction pred, double t, double dt,
                          double cx[2], double ce[2]);

#endif
