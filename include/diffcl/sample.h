// Samplers: ddpm, ddim, euler, heun on a time grid 1 = t_N > ... > t_0 = 0 (t = 0 data, t = 1
// noise, the convention of Nakkiran et al. 2024, "Step-by-Step Diffusion: An Elementary Tutorial",
// whose algorithm and pseudocode numbers the comments cite). Each step is an affine combination of
// (x_t, model output, fresh noise) with host-computed coefficients, run as one fused device op
// (dcl_lincomb3); heun takes two model evaluations per step.
#ifndef DIFFCL_SAMPLE_H
#define DIFFCL_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/device.h"
#include "diffcl/schedule.h"

typedef enum dcl_sampler_kind {
    DCL_SAMPLER_DDPM = 0,     // Algorithm 1 / Pseudocode 2 and 7
    DCL_SAMPLER_DDIM = 1,     // Algorithm 2 / Pseudocode 3, general form with eta
    DCL_SAMPLER_EULER = 2,    // Pseudocode 5 (flow) or the probability-flow ODE (diffusion)
    DCL_SAMPLER_HEUN = 3,     // second order (Karras et al. 2022, Algorithm 1)
    DCL_SAMPLER_DPMPP_2M = 4, // DPM-Solver++(2M), multistep second order (Lu et al. 2022, Alg. 2)
    DCL_SAMPLER_DPMPP_2M_SDE = 5, // its stochastic form: the SDE solved in λ, fresh noise per step
} dcl_sampler_kind;

// Where the K steps' times lie between t = 1 and t = 0 (every schedule ends with the step to 0):
typedef enum dcl_time_schedule {
    DCL_SCHEDULE_UNIFORM = 0, // t_i = (K − i)/K (vp-linear: rounded to its integer steps)
    DCL_SCHEDULE_LOGSNR = 1,  // λ = log(a/b) uniform from t_0 = 1 to t_{K−1} = t_min
    DCL_SCHEDULE_KARRAS = 2,  // σ = b/a spaced as Karras et al. 2022 eq. 5, ρ = 7
} dcl_time_schedule;

// Progress of long work: `done` of `total` units (training steps, sampler steps) finished. Called
// from the thread that does the work, between device calls; it reads nothing back from the device
// and must return quickly. The library never prints progress: callers draw it (the CLI's bars).
// Returning non-zero asks the work to stop: the call returns DCL_ERR_CANCELLED after the unit that
// just finished (a training step is complete and its state consistent; a sampler's output is not).
typedef int (*dcl_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct dcl_sampler_opts {
    dcl_sampler_kind kind;
    int steps;         // number of steps K (>= 1)
    double eta;        // ddim: 0 deterministic ... 1 ddpm-like
    int ddpm_tutorial; // ddpm: 1 the tutorial's variance σ_q² Δt (ve; in general the forward
                       // step's σ²_{t|s}, Ho et al.'s σ² = β), 0 the posterior variance
    double prev_dt;    // prev: the Δt the model was trained with; 0 means the sampler's own step
    dcl_time_schedule schedule; // the time grid (uniform by default)
    dcl_progress_fn progress; // called after each of the K steps (done = k, total = K); NULL: none
    void *progress_ctx;       // its ctx
} dcl_sampler_opts;

dcl_status dcl_sampler_parse(const char *name,
                             dcl_sampler_kind *out); // "ddpm", "ddim", "euler", "heun",
                                                     // "dpm++2m", "dpm++2m-sde"
const char *dcl_sampler_name(dcl_sampler_kind kind);
// "uniform", "logsnr", "karras".
dcl_status dcl_schedule_parse(const char *name, dcl_time_schedule *out);
const char *dcl_schedule_name(dcl_time_schedule s);

// Time grid t[0..steps], t[0] = 1 down to t[steps] = 0 (uniform; vp-linear: integer steps
// k/N, k = round(N (steps − i)/steps), so steps <= N). t (steps + 1)
dcl_status dcl_sampler_grid(const dcl_process *p, int steps, double *t);
// The grid of o->schedule with o->steps steps, t (steps + 1), strictly decreasing from 1 to 0.
// logsnr and karras space t_1 .. t_{K−1} between λ(1) and λ(t_min) (t_min = 1/N for vp-linear,
// 1e-3 elsewhere; flow, whose λ(1) = −∞, starts the spacing at λ(1 − 1e-3)) with t_0 = 1;
// vp-linear's times are rounded to its integer steps (K <= N) and kept strictly decreasing.
dcl_status dcl_sampler_times(const dcl_process *p, const dcl_sampler_opts *o, double *t);

// One step from t to s < t: x_s = c[0] x_t + c[1] f(x_t, t) + c[2] z, z ~ N(0, I) (c[2] = 0 for
// deterministic samplers). The step to s = 0 of every sampler is x0̂ (no noise). For heun this is
// its Euler predictor; the corrector is in dcl_sample. For dpm++2m (-sde) it is its first-order
// step (DDIM's; -sde: with its noise); the second-order term, from the previous step's x0̂, is in
// dcl_sample. For (flow, eps) t is capped at 1 − 1e-3
// (a(1) = 0 leaves x0̂ undefined) and dcl_sample evaluates the model there.
void dcl_sampler_coefs(const dcl_process *p, dcl_prediction pred, const dcl_sampler_opts *o,
                       double t, double s, double c[3]);

// The model: out (N, D) = f(x (N, D), t) in the model's parametrization. Called with device
// buffers of the sampling device.
typedef dcl_status (*dcl_denoiser_fn)(void *ctx, dcl_ptr out, dcl_ptr x, double t, size_t N);

// Samples N points of dimension D into x (N, D): x1 from the base distribution (Philox purpose
// DCL_RNG_SAMPLER, step 0), then o->steps steps (step k's noise: purpose DCL_RNG_SAMPLER, step k).
// If traj is not NULL it receives the host copy of every x_{t_k}: (steps + 1, N, D).
dcl_status dcl_sample(dcl_device *dev, const dcl_process *p, dcl_prediction pred,
                      const dcl_sampler_opts *o, dcl_denoiser_fn f, void *ctx, dcl_ptr x, size_t N,
                      size_t D, uint64_t seed, float *traj);

#endif
