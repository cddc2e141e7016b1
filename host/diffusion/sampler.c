// The sampling loop shared by every sampler: names, the time grid, the dispatch to each sampler's
// step coefficients (ddpm.c, ddim.c, euler.c, heun.c) and dcl_sample, which runs each step as one
// dcl_lincomb3 on the device.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"          // dcl__fail
#include "diffcl/ops.h"          // dcl_lincomb3, dcl_axpby, dcl_rng_normal
#include "diffcl/rng.h"          // DCL_RNG_SAMPLER
#include "diffusion/diffusion.h" // dcl__target_model_t
#include "diffusion/sampler.h"   // dcl__sampler_*_coefs

// The progress callback runs as soon as a step is queued, but every `every` steps the host waits
// for the work queued PROGRESS_LAG such waits ago (dcl_device_finish_behind), so the queue never
// drains and the callback runs ahead of the device by at most 2 `every` steps. `every` adapts so
// that those waits come about every PROGRESS_WAIT_S seconds (1 when a step takes longer).
#define PROGRESS_LAG 2
#define PROGRESS_WAIT_S 0.1
#define PROGRESS_MAX_EVERY 256

struct progress_pace {
    int every, since, waits; // steps between waits, steps since the last wait, waits so far
    double t_wait;           // when the last wait returned
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Called after each queued step: waits when it is time to, and adapts the pace.
static dcl_status progress_pace_step(struct progress_pace *pp, dcl_device *dev) {
    if (++pp->since < pp->every) return DCL_OK;
    dcl_status s = dcl_device_finish_behind(dev, PROGRESS_LAG);
    double t = now(), per_step = (t - pp->t_wait) / pp->since;
    // The first PROGRESS_LAG calls return at once: the device's pace is known from the next on.
    if (++pp->waits > PROGRESS_LAG) {
        double every = per_step > 0 ? PROGRESS_WAIT_S / per_step : PROGRESS_MAX_EVERY;
        pp->every = every < 1 ? 1 : every > PROGRESS_MAX_EVERY ? PROGRESS_MAX_EVERY : (int)every;
    }
    pp->t_wait = t, pp->since = 0;
    return s;
}

static const char *const sampler_names[] = {"ddpm", "ddim",    "euler",
                                            "heun", "dpm++2m", "dpm++2m-sde"};
#define N_SAMPLERS (int)(sizeof sampler_names / sizeof *sampler_names)
static const char *const schedule_names[] = {"uniform", "logsnr", "karras"};
#define N_SCHEDULES (int)(sizeof schedule_names / sizeof *schedule_names)

// The index of name in names (n), or -1.
static int name_index(const char *const *names, int n, const char *name) {
    for (int i = 0; name && i < n; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

dcl_status dcl_sampler_parse(const char *name, dcl_sampler_kind *out) {
    int i = name_index(sampler_names, N_SAMPLERS, name);
    if (i < 0)
        return dcl__fail(
            DCL_ERR_ARG,
            "unknown sampler '%s': use ddpm, ddim, euler, heun, dpm++2m or dpm++2m-sde",
            name ? name : "(null)");
    *out = (dcl_sampler_kind)i;
    return DCL_OK;
}

dcl_status dcl_schedule_parse(const char *name, dcl_time_schedule *out) {
    int i = name_index(schedule_names, N_SCHEDULES, name);
    if (i < 0)
        return dcl__fail(DCL_ERR_ARG, "unknown schedule '%s': use uniform, logsnr or karras",
                         name ? name : "(null)");
    *out = (dcl_time_schedule)i;
    return DCL_OK;
}

const char *dcl_schedule_name(dcl_time_schedule s) {
    return (int)s >= 0 && (int)s < N_SCHEDULES ? schedule_names[s] : "?";
}

const char *dcl_sampler_name(dcl_sampler_kind kind) {
    return (int)kind >= 0 && (int)kind < N_SAMPLERS ? sampler_names[kind] : "?";
}

dcl_status dcl_sampler_grid(const dcl_process *p, int steps, double *t) {
    if (steps < 1) return dcl__fail(DCL_ERR_ARG, "--steps must be at least 1, got %d", steps);
    if (p->kind == DCL_PROCESS_VP_LINEAR) {
        // Integer steps of the discrete schedule, evenly spread from N down to 0 (diffusers'
        // "linspace" spacing rounded; equal to "trailing" when steps divides N).
        int N = p->n_steps > 0 ? p->n_steps : 1000;
        if (steps > N)
            return dcl__fail(DCL_ERR_ARG,
                             "--steps %d exceeds the %d discrete steps of process vp-linear", steps,
                             N);
        for (int i = 0; i <= steps; i++) t[i] = (double)lround((double)N * (steps - i) / steps) / N;
        return DCL_OK;
    }
    for (int i = 0; i <= steps; i++) t[i] = (double)(steps - i) / steps;
    return DCL_OK;
}

// The t in [0, 1] where λ(t) = lam (λ decreases in t), by bisection to double precision.
static double t_of_lambda(const dcl_process *p, double lam) {
    double lo = 0, hi = 1;
    for (int i = 0; i < 64; i++) {
        double mid = 0.5 * (lo + hi);
        if (dcl__process_lambda(p, mid) > lam) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

#define KARRAS_RHO 7.0

dcl_status dcl_sampler_times(const dcl_process *p, const dcl_sampler_opts *o, double *t) {
    int K = o->steps;
    if (o->schedule == DCL_SCHEDULE_UNIFORM || K < 2) return dcl_sampler_grid(p, K, t);
    if ((int)o->schedule < 0 || (int)o->schedule >= N_SCHEDULES)
        return dcl__fail(DCL_ERR_ARG, "unknown schedule %d: use uniform, logsnr or karras",
                         (int)o->schedule);
    int N = p->kind == DCL_PROCESS_VP_LINEAR ? (p->n_steps > 0 ? p->n_steps : 1000) : 0;
    if (N && K > N)
        return dcl__fail(DCL_ERR_ARG,
                         "--steps %d exceeds the %d discrete steps of process vp-linear", K, N);
    double t_hi = p->kind == DCL_PROCESS_FLOW ? 1 - DCL__T_END : 1, t_lo = N ? 1.0 / N : DCL__T_END;
    double l_hi = dcl__process_lambda(p, t_lo), l_lo = dcl__process_lambda(p, t_hi);
    for (int i = 0; i < K; i++) {
        double u = (double)i / (K - 1), lam;
        if (o->schedule == DCL_SCHEDULE_LOGSNR) {
            lam = l_lo + u * (l_hi - l_lo);
        } else { // σ = e^{−λ}; σ_i^{1/ρ} linear from σ_max to σ_min
            double smax = pow(exp(-l_lo), 1 / KARRAS_RHO), smin = pow(exp(-l_hi), 1 / KARRAS_RHO);
            lam = -KARRAS_RHO * log(smax + u * (smin - smax));
        }
        t[i] = i == 0 ? 1.0 : i == K - 1 ? t_lo : t_of_lambda(p, lam);
    }
    t[K] = 0;
    if (!N) return DCL_OK;
    // vp-linear: integer steps k_i = round(N t_i), which rounding can merge at fine spacing. Kept
    // at least one apart by pushing down from k_0 = N, then up from k_{K−1} = 1; K <= N lets
    // both hold (k_i <= N − i after the first pass, and K − i <= that).
    double *k = t; // k_i in place of t_i
    for (int i = 0; i < K; i++) k[i] = (double)lround(t[i] * N);
    for (int i = 1; i < K; i++) k[i] = fmin(k[i], k[i - 1] - 1);
    k[K - 1] = 1;
    for (int i = K - 1; i > 0; i--) k[i - 1] = fmax(k[i - 1], k[i] + 1);
    for (int i = 0; i < K; i++) t[i] = k[i] / N;
    return DCL_OK;
}

void dcl__step_init(struct dcl__step *st, const dcl_process *p, dcl_prediction pred,
                    const dcl_sampler_opts *o, double t, double s) {
    st->t = dcl__target_model_t(p, pred, t);
    st->s = s;
    // prev converts through the posterior over the Δt it was trained with.
    double dt = o->prev_dt > 0 ? o->prev_dt : t - s;
    dcl_target_to_x0_eps(p, pred, st->t, dt, st->cx, st->ce);
}

void dcl_sampler_coefs(const dcl_process *p, dcl_prediction pred, const dcl_sampler_opts *o,
                       double t, double s, double c[3]) {
    struct dcl__step st;
    dcl__step_init(&st, p, pred, o, t, s);
    if (s <= 0) {
        // The last step returns x0̂ = E[x0 | x_{t_1}] without noise: DDPM's posterior at s = 0 is
        // the point x0̂ (Ho et al. Algorithm 2 line 3, z = 0 at the last step; the tutorial's
        // Pseudocode 2 would add N(0, σ_q² Δt) here too), DDIM's x_0 = a_0 x0̂ + b_0 ε̂ is x0̂,
        // Euler on flow gives exactly x0̂ (x_t − t(ε̂ − x0̂)), and Euler/Heun elsewhere take the
        // same value, as Karras et al.'s last Euler step to σ = 0 does.
        c[0] = st.cx[0], c[1] = st.cx[1], c[2] = 0;
        return;
    }
    switch (o->kind) {
    case DCL_SAMPLER_DDPM: dcl__sampler_ddpm_coefs(p, o, &st, c); return;
    case DCL_SAMPLER_DDIM: dcl__sampler_ddim_coefs(p, o, &st, c); return;
    case DCL_SAMPLER_EULER:
    case DCL_SAMPLER_HEUN: dcl__sampler_euler_coefs(p, &st, c); return;
    case DCL_SAMPLER_DPMPP_2M:
    case DCL_SAMPLER_DPMPP_2M_SDE: { // x_s = c[0] x_t + c[1] x0̂ (+ c[2] z), x0̂ = cx · (x_t, f)
        double d[3], h, noise;
        dcl__sampler_dpmpp_coefs(p, &st, o->kind == DCL_SAMPLER_DPMPP_2M_SDE, 0, d, &h, &noise);
        c[0] = d[0] + d[1] * st.cx[0], c[1] = d[1] * st.cx[1], c[2] = noise;
        return;
    }
    }
    c[0] = 1, c[1] = 0, c[2] = 0;
}

static dcl_status check_args(const dcl_process *p, dcl_prediction pred, const dcl_sampler_opts *o,
                             size_t N, size_t D) {
    dcl_status s = dcl_prediction_check(p, pred);
    if (s != DCL_OK) return s;
    if ((int)o->kind < 0 || (int)o->kind >= N_SAMPLERS)
        return dcl__fail(
            DCL_ERR_ARG,
            "unknown sampler kind %d: use ddpm, ddim, euler, heun, dpm++2m or dpm++2m-sde",
            (int)o->kind);
    if (o->steps < 1) return dcl__fail(DCL_ERR_ARG, "--steps must be at least 1, got %d", o->steps);
    if (o->kind == DCL_SAMPLER_DDIM && !(o->eta >= 0 && o->eta <= 1))
        return dcl__fail(DCL_ERR_ARG, "--eta must be in [0, 1], got %g", o->eta);
    if (!(o->prev_dt >= 0))
        return dcl__fail(DCL_ERR_ARG, "prev_dt must be >= 0, got %g", o->prev_dt);
    if (N == 0 || D == 0)
        return dcl__fail(DCL_ERR_ARG, "sampling needs N, D >= 1 (got %zu, %zu)", N, D);
    return DCL_OK;
}

dcl_status dcl_sample(dcl_device *dev, const dcl_process *p, dcl_prediction pred,
                      const dcl_sampler_opts *o, dcl_denoiser_fn f, void *ctx, dcl_ptr x, size_t N,
                      size_t D, uint64_t seed, float *traj) {
    dcl_status s = check_args(p, pred, o, N, D);
    if (s != DCL_OK) return s;
    size_t n = N * D;
    int K = o->steps, heun = o->kind == DCL_SAMPLER_HEUN;
    int sde = o->kind == DCL_SAMPLER_DPMPP_2M_SDE, dpm = o->kind == DCL_SAMPLER_DPMPP_2M || sde;
    double *grid = malloc((size_t)(K + 1) * sizeof *grid);
    dcl_buffer *scratch = NULL;
    if (!grid) return dcl__fail(DCL_ERR_NOMEM, "sampler: no memory for a grid of %d steps", K);
    TRY_DONE(dcl_sampler_times(p, o, grid));
    // Scratch: the model output f and the noise z; heun adds x̃_s and f(x̃_s, s); dpm++2m keeps
    // this step's and the previous step's x0̂ instead of z, dpm++2m-sde both and z. (n) each
    TRY_DONE(dcl_buffer_alloc(&scratch, dev,
                              (sde           ? 4
                               : heun || dpm ? 3
                                             : 2) *
                                  n,
                              "sampler.scratch"));
    dcl_ptr fx = dcl_at(scratch, 0), z = dcl_at(scratch, sde ? 3 * n : n);
    dcl_ptr xs = dcl_at(scratch, n), f2 = heun ? dcl_at(scratch, 2 * n) : fx; // heun: no noise
    dcl_ptr x0 = dcl_at(scratch, n), x0_prev = dcl_at(scratch, 2 * n);        // dpm++2m
    double h_prev = 0; // dpm++2m: the previous step's λ increment (0: none yet)

    // x1 = base_std · N(0, I) (Pseudocode 2, 3 and 5 line 1), Philox step 0.
    TRY_DONE(dcl_rng_normal(dev, x, seed, DCL_RNG_SAMPLER, 0, 0, n));
    TRY_DONE(dcl_axpby(dev, x, x, x, (float)dcl_process_base_std(p), 0.0f, n));
    if (traj) TRY_DONE(dcl_buffer_read(x.buf, x.off, n, traj));

    struct progress_pace pace = {.every = 1, .t_wait = now()};
    for (int k = 1; k <= K; k++) {
        double t = grid[k - 1], tn = grid[k], c[3];
        struct dcl__step st;
        dcl__step_init(&st, p, pred, o, t, tn);
        TRY_DONE(f(ctx, fx, x, st.t, N));
        dcl_sampler_coefs(p, pred, o, t, tn, c);
        if (dpm && tn > 0) {
            // x0̂ of this step, kept for the next one, then Lu et al.'s update from it and the
            // previous x0̂ (dpmpp.c); the first step, with no previous x0̂, is first order. The
            // SDE form adds fresh noise for step k (Philox purpose DCL_RNG_SAMPLER, step k).
            double d[3], h, noise;
            dcl__sampler_dpmpp_coefs(p, &st, sde, h_prev, d, &h, &noise);
            TRY_DONE(dcl_axpby(dev, x0, x, fx, (float)st.cx[0], (float)st.cx[1], n));
            TRY_DONE(dcl_lincomb3(dev, x, x, x0, d[2] != 0 ? x0_prev : x0, (float)d[0], (float)d[1],
                                  (float)d[2], n));
            if (sde) {
                TRY_DONE(dcl_rng_normal(dev, z, seed, DCL_RNG_SAMPLER, (uint32_t)k, 0, n));
                TRY_DONE(dcl_axpby(dev, x, x, z, 1.0f, (float)noise, n));
            }
            dcl_ptr tmp = x0;
            x0 = x0_prev, x0_prev = tmp, h_prev = h;
        } else if (heun && tn > 0) {
            // Karras Algorithm 1: Euler predictor x̃_s, a second model evaluation, and the
            // trapezoid corrector as one affine combination of (x_t, f, f2) (heun.c).
            struct dcl__step st2;
            double cc[3];
            dcl__step_init(&st2, p, pred, o, tn, tn - (t - tn));
            TRY_DONE(dcl_lincomb3(dev, xs, x, fx, x, (float)c[0], (float)c[1], 0.0f, n));
            TRY_DONE(f(ctx, f2, xs, st2.t, N));
            dcl__sampler_heun_coefs(p, &st, &st2, cc);
            TRY_DONE(dcl_lincomb3(dev, x, x, fx, f2, (float)cc[0], (float)cc[1], (float)cc[2], n));
        } else if (c[2] != 0) {
            // Fresh noise for step k (Philox purpose DCL_RNG_SAMPLER, step k).
            TRY_DONE(dcl_rng_normal(dev, z, seed, DCL_RNG_SAMPLER, (uint32_t)k, 0, n));
            TRY_DONE(dcl_lincomb3(dev, x, x, fx, z, (float)c[0], (float)c[1], (float)c[2], n));
        } else {
            TRY_DONE(dcl_lincomb3(dev, x, x, fx, x, (float)c[0], (float)c[1], 0.0f, n));
        }
        if (traj) TRY_DONE(dcl_buffer_read(x.buf, x.off, n, traj + (size_t)k * n));
        // A progress bar should follow the device, not the queue, yet the queue must not drain.
        if (o->progress) {
            TRY_DONE(progress_pace_step(&pace, dev));
            if (o->progress(o->progress_ctx, k, K)) {
                s = dcl__fail(DCL_ERR_CANCELLED, "sampling stopped after step %d of %d", k, K);
                goto done;
            }
        }
    }
    if (o->progress) s = dcl_device_finish(dev); // the last steps; releases the markers
done:
    dcl_buffer_free(scratch);
    free(grid);
    return s;
}
