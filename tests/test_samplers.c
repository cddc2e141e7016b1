// Samplers against the closed-form denoiser of a 2-D Gaussian mixture (host/diffusion/oracle.c):
// the step coefficients against the tutorial's pseudocode, every sampler on every process and
// several predictions reproducing the mixture (mean, covariance, mode weights), the error falling
// as steps grow, DDPM and DDIM stepping the same way (tutorial §3.6), and every OpenCL device
// giving the CPU's samples for the same seed.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/device.h"
#include "diffcl/eval.h" // dcl_sw2
#include "diffcl/ops.h"  // dcl_rng_normal
#include "diffcl/rng.h"  // dcl_rng_normal_at
#include "diffcl/sample.h"
#include "diffusion/oracle.h"  // dcl_oracle, dcl__oracle_denoise, dcl__oracle_x0
#include "diffusion/sampler.h" // dcl__process_lambda

// The mixture: unequal weights, small stds, means with Σ w μ = 0 (so ve's base N(0, σ_q²) is
// centred like the true x_1) and pairwise distances 2.4–3.2, over 7 stds.
static const double W[3] = {0.5, 0.3, 0.2};
static const double MU[3 * 2] = {-1.0, -0.6, 1.4, -0.5, 0.4, 2.25};
static const double S[3] = {0.3, 0.35, 0.3};
#define SIGMA_Q 6.0 // ve: above the mixture's spread (|μ| <= 2.3)

static int small = 0;

struct stats {
    double mean[2], cov[3]; // cov: xx, xy, yy
    double weight[3];       // fraction nearest to each mean
    double within;          // mean squared distance to the nearest mean, per coordinate
};

static void stats_exact(struct stats *st) {
    memset(st, 0, sizeof *st);
    for (int k = 0; k < 3; k++) {
        const double *m = MU + 2 * k;
        st->cov[0] += W[k] * (S[k] * S[k] + m[0] * m[0]);
        st->cov[1] += W[k] * m[0] * m[1];
        st->cov[2] += W[k] * (S[k] * S[k] + m[1] * m[1]);
        st->weight[k] = W[k];
        st->within += W[k] * S[k] * S[k];
    }
}

static void stats_of(const float *x, size_t N, struct stats *st) {
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < N; i++) st->mean[0] += x[2 * i], st->mean[1] += x[2 * i + 1];
    st->mean[0] /= N, st->mean[1] /= N;
    for (size_t i = 0; i < N; i++) {
        double dx = x[2 * i] - st->mean[0], dy = x[2 * i + 1] - st->mean[1];
        st->cov[0] += dx * dx / N, st->cov[1] += dx * dy / N, st->cov[2] += dy * dy / N;
        int best = 0;
        double bd = INFINITY;
        for (int k = 0; k < 3; k++) {
            double ex = x[2 * i] - MU[2 * k], ey = x[2 * i + 1] - MU[2 * k + 1];
            if (ex * ex + ey * ey < bd) bd = ex * ex + ey * ey, best = k;
        }
        st->weight[best] += 1.0 / N;
        st->within += bd / (2.0 * N);
    }
}

static dcl_oracle make_oracle(const dcl_process *p, dcl_prediction pred, double prev_dt) {
    dcl_oracle o = {.process = *p,
                    .pred = pred,
                    .prev_dt = prev_dt,
                    .K = 3,
                    .D = 2,
                    .weights = W,
                    .means = MU,
                    .stds = S};
    return o;
}

// Samples N points with the oracle as the model on dev into out (N, 2) on the host.
static dcl_status run(dcl_device *dev, const dcl_process *p, dcl_prediction pred,
                      const dcl_sampler_opts *o, size_t N, uint64_t seed, float *out) {
    dcl_oracle orc = make_oracle(p, pred, 1.0 / o->steps);
    dcl_buffer *x;
    dcl_status s = dcl_buffer_alloc(&x, dev, 2 * N, "test.x");
    if (s != DCL_OK) return s;
    s = dcl_sample(dev, p, pred, o, dcl__oracle_denoise, &orc, dcl_at(x, 0), N, 2, seed, NULL);
    if (s == DCL_OK) s = dcl_buffer_read(x, 0, 2 * N, out);
    dcl_buffer_free(x);
    dcl__oracle_free(&orc);
    return s;
}

struct sampler_case {
    const char *name;
    dcl_sampler_opts o;
};
static const struct sampler_case samplers[] = {
    {"ddpm-tutorial", {.kind = DCL_SAMPLER_DDPM, .ddpm_tutorial = 1}},
    {"ddpm-posterior", {.kind = DCL_SAMPLER_DDPM}},
    {"ddim-eta0", {.kind = DCL_SAMPLER_DDIM, .eta = 0}},
    {"ddim-eta1", {.kind = DCL_SAMPLER_DDIM, .eta = 1}},
    {"euler", {.kind = DCL_SAMPLER_EULER}},
    {"heun", {.kind = DCL_SAMPLER_HEUN}},
    {"dpm++2m", {.kind = DCL_SAMPLER_DPMPP_2M}},
    {"dpm++2m-sde", {.kind = DCL_SAMPLER_DPMPP_2M_SDE}},
};
#define N_SAMPLERS (int)(sizeof samplers / sizeof *samplers)

// Every sampler runs on each process with its first prediction; the other predictions (which the
// exact oracle makes equivalent up to float rounding) run with ddpm-posterior (x0̂ only), ddim
// (x0̂ and ε̂) and heun (the ODE velocity at two times), to cover each conversion path. ve needs
// more steps: b = σ_q √t makes the last step from t_1 = 1/K start at noise σ_q/√K (0.19 for
// 1000). vp-linear takes 250: its DDPM with the posterior variance (Ho et al.'s β̃, which ignores
// the uncertainty of x0̂) under-disperses at coarse steps: within-component variance −18% at 100
// steps, −9% at 250 (the tutorial's variance, β, errs the other way: +4%, +0%).
struct process_case {
    dcl_process_kind kind;
    int steps;
    dcl_prediction preds[4]; // unused entries are -1
};
static const struct process_case processes[] = {
    {DCL_PROCESS_VE, 1000, {DCL_PREDICT_PREV, DCL_PREDICT_X0, DCL_PREDICT_EPS, (dcl_prediction)-1}},
    {DCL_PROCESS_VP_LINEAR,
     250,
     {DCL_PREDICT_EPS, DCL_PREDICT_X0, DCL_PREDICT_V, (dcl_prediction)-1}},
    {DCL_PROCESS_VP_COSINE,
     100,
     {DCL_PREDICT_EPS, DCL_PREDICT_V, DCL_PREDICT_X0, (dcl_prediction)-1}},
    {DCL_PROCESS_FLOW, 100, {DCL_PREDICT_VELOCITY, DCL_PREDICT_EPS, DCL_PREDICT_X0, DCL_PREDICT_V}},
};
#define N_PROCESSES (int)(sizeof processes / sizeof *processes)

static dcl_process make_process(dcl_process_kind kind) {
    dcl_process p;
    CHECK_EQ(dcl_process_parse(dcl_process_name(kind), &p), DCL_OK);
    if (kind == DCL_PROCESS_VE) p.sigma_q = SIGMA_Q;
    return p;
}

// Tolerances, for N = 3000 samples of a mixture with per-axis variance ≈ 1.2 and 1.4: the
// sampling standard errors are ≈ 0.021 (mean), ≈ 0.035 (covariance), ≈ 0.009 (weights); the
// tolerances are about 4.3 of those (some 80 runs, and deterministic samplers share the sampling
// error of their x1 draw: seed 1239 gives weight errors of 0.023–0.028 for every ODE sampler on
// ve and flow alike), plus room for discretization error at these step counts (ve's first-order
// error near t = 0, and its base N(0, σ_q²) lacking the data's variance).
#define TOL_MEAN 0.09
#define TOL_COV 0.18
#define TOL_WEIGHT 0.04
// The within-component variance (Σ w_k s_k² ≈ 0.1; sampling error ≈ 3%) is where a wrong step
// variance or a collapsing last step shows. Relative tolerance: 12%, except ve, whose last step
// starts at noise b(t_1) = σ_q/√K ≈ 0.19 against component stds of 0.3 and returns x0̂ there,
// which shrinks each component's variance by s²/(s² + b²) ≈ 0.7 for the deterministic samplers.
#define TOL_WITHIN 0.12
#define TOL_WITHIN_VE 0.4

static void check_reproduces(dcl_device *cpu) {
    size_t N = 3000; // the host-side oracle is the cost; --small (for Oclgrind) keeps it
    float *x = malloc(2 * N * sizeof *x);
    struct stats ref;
    stats_exact(&ref);
    for (int pi = 0; pi < N_PROCESSES; pi++) {
        const struct process_case *pc = &processes[pi];
        dcl_process p = make_process(pc->kind);
        for (int j = 0; j < 4 && (int)pc->preds[j] >= 0; j++) {
            dcl_prediction pred = pc->preds[j];
            for (int si = 0; si < N_SAMPLERS; si++) {
                dcl_sampler_opts o = samplers[si].o;
                if (j > 0 && si != 1 && si != 2 && si != 5) continue;
                o.steps = pc->steps;
                struct stats st;
                dcl_status s = run(cpu, &p, pred, &o, N, 1234 + si, x);
                CHECK_EQ(s, DCL_OK);
                if (s != DCL_OK) {
                    fprintf(stderr, "%s\n", dcl_last_error());
                    continue;
                }
                stats_of(x, N, &st);
                double e_mean =
                    fmax(fabs(st.mean[0] - ref.mean[0]), fabs(st.mean[1] - ref.mean[1]));
                double e_cov = 0, e_w = 0;
                for (int k = 0; k < 3; k++) {
                    e_cov = fmax(e_cov, fabs(st.cov[k] - ref.cov[k]));
                    e_w = fmax(e_w, fabs(st.weight[k] - ref.weight[k]));
                }
                double e_within = fabs(st.within / ref.within - 1);
                double tol_within = p.kind == DCL_PROCESS_VE ? TOL_WITHIN_VE : TOL_WITHIN;
                int ok = e_mean <= TOL_MEAN && e_cov <= TOL_COV && e_w <= TOL_WEIGHT &&
                         e_within <= tol_within;
                printf("%-4s %-9s %-8s %-14s steps %4d  |mean| %.3f  |cov| %.3f  |weight| %.3f  "
                       "within %.3f (%+.0f%%)\n",
                       ok ? "ok" : "FAIL", dcl_process_name(p.kind), dcl_prediction_name(pred),
                       samplers[si].name, o.steps, e_mean, e_cov, e_w, st.within,
                       100 * (st.within / ref.within - 1));
                CHECK(e_mean <= TOL_MEAN);
                CHECK(e_cov <= TOL_COV);
                CHECK(e_w <= TOL_WEIGHT);
                CHECK(e_within <= tol_within);
            }
        }
    }
    printf("exact: cov (%.2f %.2f %.2f) w (%.3f %.3f %.3f) within %.3f\n", ref.cov[0], ref.cov[1],
           ref.cov[2], ref.weight[0], ref.weight[1], ref.weight[2], ref.within);
    free(x);
}

// Step coefficients against the tutorial's pseudocode (ve) and Pseudocode 5 (flow), DDIM with
// eta = 1 against DDPM's posterior, and the grids.
// The log-SNR and Karras grids: from 1 to 0, strictly decreasing, the last evaluation at t_min,
// λ evenly spaced (logsnr) or σ^{1/7} evenly spaced (karras) in between; vp-linear's times on its
// integer steps even when K = N forces every step; a uniform schedule is dcl_sampler_grid.
static void check_schedules(void) {
    dcl_time_schedule sch;
    CHECK_EQ(dcl_schedule_parse("karras", &sch), DCL_OK);
    CHECK_EQ(sch, DCL_SCHEDULE_KARRAS);
    CHECK_EQ(dcl_schedule_parse("cosine", &sch), DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "logsnr") != NULL);
    double *t = malloc(1001 * sizeof *t), *u = malloc(1001 * sizeof *u);
    for (int pk = DCL_PROCESS_VE; pk <= DCL_PROCESS_FLOW; pk++) {
        dcl_process p = make_process((dcl_process_kind)pk);
        const int Ks[3] = {2, 12, 1000};
        for (int sc = DCL_SCHEDULE_UNIFORM; sc <= DCL_SCHEDULE_KARRAS; sc++)
            for (int ki = 0; ki < 3; ki++) {
                int K = Ks[ki];
                dcl_sampler_opts o = {
                    .kind = DCL_SAMPLER_DPMPP_2M, .steps = K, .schedule = (dcl_time_schedule)sc};
                CHECK_EQ(dcl_sampler_times(&p, &o, t), DCL_OK);
                CHECK(t[0] == 1 && t[K] == 0);
                int ok = 1;
                for (int i = 0; i < K; i++) ok &= t[i + 1] < t[i];
                for (int i = 0; pk == DCL_PROCESS_VP_LINEAR && i <= K; i++)
                    ok &= fabs(t[i] * 1000 - round(t[i] * 1000)) < 1e-9;
                CHECK(ok);
                if (sc == DCL_SCHEDULE_UNIFORM) {
                    CHECK_EQ(dcl_sampler_grid(&p, K, u), DCL_OK);
                    CHECK(memcmp(t, u, (size_t)(K + 1) * sizeof *t) == 0);
                } else if (K == 12 && pk != DCL_PROCESS_VP_LINEAR) {
                    CHECK_NEAR(t[K - 1], 1e-3, 1e-15, 0);
                    double l1 = dcl__process_lambda(&p, t[1]), l2 = dcl__process_lambda(&p, t[2]);
                    double l3 = dcl__process_lambda(&p, t[3]);
                    if (sc == DCL_SCHEDULE_LOGSNR) CHECK_NEAR(l3 - l2, l2 - l1, 1e-9, 0);
                    double s1 = pow(exp(-l1), 1 / 7.0), s2 = pow(exp(-l2), 1 / 7.0);
                    double s3 = pow(exp(-l3), 1 / 7.0);
                    if (sc == DCL_SCHEDULE_KARRAS) CHECK_NEAR(s3 - s2, s2 - s1, 1e-9, 0);
                }
            }
    }
    free(t);
    free(u);
}

static void check_coefs(void) {
    dcl_process ve = make_process(DCL_PROCESS_VE), flow = make_process(DCL_PROCESS_FLOW);
    const double t = 0.6, dt = 0.05, s = t - dt, sq = SIGMA_Q;
    double c[3];
    dcl_sampler_opts o = {.kind = DCL_SAMPLER_DDPM, .steps = 20, .ddpm_tutorial = 1};
    // Pseudocode 2 line 4: x_{t−Δt} = f(x_t, t) + N(0, σ_q² Δt).
    dcl_sampler_coefs(&ve, DCL_PREDICT_PREV, &o, t, s, c);
    CHECK_NEAR(c[0], 0, 1e-12, 0);
    CHECK_NEAR(c[1], 1, 1e-12, 0);
    CHECK_NEAR(c[2], sq * sqrt(dt), 1e-12, 0);
    // Pseudocode 7 line 4: x_{t−Δt} = x_t + (Δt/t)(g − x_t) + N(0, σ_q² Δt).
    dcl_sampler_coefs(&ve, DCL_PREDICT_X0, &o, t, s, c);
    CHECK_NEAR(c[0], 1 - dt / t, 1e-12, 0);
    CHECK_NEAR(c[1], dt / t, 1e-12, 0);
    CHECK_NEAR(c[2], sq * sqrt(dt), 1e-12, 0);
    // Pseudocode 3 lines 3–4: x_{t−Δt} = x_t + λ(f − x_t), λ = √t/(√(t−Δt) + √t).
    o.kind = DCL_SAMPLER_DDIM;
    dcl_sampler_coefs(&ve, DCL_PREDICT_PREV, &o, t, s, c);
    double lambda = sqrt(t) / (sqrt(s) + sqrt(t));
    CHECK_NEAR(c[0], 1 - lambda, 1e-12, 0);
    CHECK_NEAR(c[1], lambda, 1e-12, 0);
    CHECK_NEAR(c[2], 0, 0, 0);
    // Pseudocode 5 line 3: x_{t−Δt} = x_t + f Δt.
    o.kind = DCL_SAMPLER_EULER;
    dcl_sampler_coefs(&flow, DCL_PREDICT_VELOCITY, &o, t, s, c);
    CHECK_NEAR(c[0], 1, 1e-12, 0);
    CHECK_NEAR(c[1], dt, 1e-12, 0);
    // Eq. 58 reversed: x_{t−Δt} = x_t + (Δt/2t)(x0̂ − x_t) for ve.
    dcl_sampler_coefs(&ve, DCL_PREDICT_X0, &o, t, s, c);
    CHECK_NEAR(c[0], 1 - dt / (2 * t), 1e-12, 0);
    CHECK_NEAR(c[1], dt / (2 * t), 1e-12, 0);
    // DDIM eta = 1 and the first order of dpm++2m-sde are the DDPM posterior step, for every
    // process and prediction.
    for (int pi = 0; pi < N_PROCESSES; pi++) {
        dcl_process p = make_process(processes[pi].kind);
        for (int j = 0; j < 4 && (int)processes[pi].preds[j] >= 0; j++) {
            dcl_sampler_opts od = {.kind = DCL_SAMPLER_DDIM, .steps = 10, .eta = 1};
            dcl_sampler_opts os = {.kind = DCL_SAMPLER_DPMPP_2M_SDE, .steps = 10};
            dcl_sampler_opts op = {.kind = DCL_SAMPLER_DDPM, .steps = 10};
            double cd[3], cs[3], cp[3];
            for (double tt = 1; tt > 0.05; tt -= 0.1) {
                dcl_sampler_coefs(&p, processes[pi].preds[j], &od, tt, tt - 0.1, cd);
                dcl_sampler_coefs(&p, processes[pi].preds[j], &os, tt, tt - 0.1, cs);
                dcl_sampler_coefs(&p, processes[pi].preds[j], &op, tt, tt - 0.1, cp);
                for (int k = 0; k < 3; k++) CHECK_NEAR(cd[k], cp[k], 1e-9, 1e-7);
                for (int k = 0; k < 3; k++) CHECK_NEAR(cs[k], cp[k], 1e-9, 1e-7);
            }
        }
    }
    // The last step is x0̂ without noise.
    o.kind = DCL_SAMPLER_DDPM;
    dcl_sampler_coefs(&ve, DCL_PREDICT_X0, &o, 0.05, 0, c);
    CHECK_NEAR(c[0], 0, 0, 0);
    CHECK_NEAR(c[1], 1, 0, 0);
    CHECK_NEAR(c[2], 0, 0, 0);

    double g[11];
    CHECK_EQ(dcl_sampler_grid(&flow, 4, g), DCL_OK);
    CHECK_NEAR(g[0], 1, 0, 0);
    CHECK_NEAR(g[1], 0.75, 0, 0);
    CHECK_NEAR(g[4], 0, 0, 0);
    dcl_process lin = make_process(DCL_PROCESS_VP_LINEAR);
    CHECK_EQ(dcl_sampler_grid(&lin, 3, g), DCL_OK); // k = 1000, 667, 333, 0
    CHECK_NEAR(g[1], 0.667, 1e-15, 0);
    CHECK_NEAR(g[2], 0.333, 1e-15, 0);
    CHECK_NEAR(g[3], 0, 0, 0);
    double *big = malloc(1002 * sizeof *big);
    CHECK_EQ(dcl_sampler_grid(&lin, 1001, big), DCL_ERR_ARG);
    free(big);
    CHECK_EQ(dcl_sampler_grid(&flow, 0, g), DCL_ERR_ARG);
    dcl_sampler_kind k;
    CHECK_EQ(dcl_sampler_parse("heun", &k), DCL_OK);
    CHECK_EQ(k, DCL_SAMPLER_HEUN);
    CHECK(strcmp(dcl_sampler_name(DCL_SAMPLER_DDIM), "ddim") == 0);
    CHECK_EQ(dcl_sampler_parse("dpm", &k), DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "euler") != NULL);
    CHECK_EQ(dcl_sampler_parse("dpm++2m", &k), DCL_OK);
    CHECK_EQ(k, DCL_SAMPLER_DPMPP_2M);
    CHECK_EQ(dcl_sampler_parse("dpm++2m-sde", &k), DCL_OK);
    CHECK_EQ(k, DCL_SAMPLER_DPMPP_2M_SDE);
    CHECK(strcmp(dcl_sampler_name(DCL_SAMPLER_DPMPP_2M_SDE), "dpm++2m-sde") == 0);
    check_schedules();
}

// The deterministic samplers converge: the mean distance of each sample to the one a 1000-step
// DDIM run gives from the same x1 falls as steps grow (10 → 100), and heun (second order) beats
// euler on flow, where the ODE is smooth up to t = 0.
static void check_convergence(dcl_device *cpu) {
    size_t N = small ? 200 : 500;
    float *ref = malloc(2 * N * sizeof *ref), *x = malloc(2 * N * sizeof *x);
    for (int pi = 0; pi < N_PROCESSES; pi++) {
        dcl_process p = make_process(processes[pi].kind);
        dcl_prediction pred = processes[pi].preds[0];
        dcl_sampler_opts o = {.kind = DCL_SAMPLER_DDIM, .steps = 1000};
        CHECK_EQ(run(cpu, &p, pred, &o, N, 99, ref), DCL_OK);
        double err[4][2];
        const int steps[2] = {10, 100};
        for (int kind = DCL_SAMPLER_DDIM; kind <= DCL_SAMPLER_HEUN; kind++) {
            for (int si = 0; si < 2; si++) {
                o.kind = (dcl_sampler_kind)kind, o.steps = steps[si];
                if (pred == DCL_PREDICT_PREV) o.prev_dt = 0; // the oracle imitates Δt = 1/steps
                CHECK_EQ(run(cpu, &p, pred, &o, N, 99, x), DCL_OK);
                double e = 0;
                for (size_t i = 0; i < N; i++)
                    e += hypot(x[2 * i] - ref[2 * i], x[2 * i + 1] - ref[2 * i + 1]) / N;
                err[kind][si] = e;
            }
            printf("convergence %-9s %-5s: mean |x − x_ref| %.4f (10 steps) → %.4f (100 steps)\n",
                   dcl_process_name(p.kind), dcl_sampler_name((dcl_sampler_kind)kind), err[kind][0],
                   err[kind][1]);
            CHECK(err[kind][1] < 0.5 * err[kind][0]);
        }
        if (p.kind == DCL_PROCESS_FLOW)
            CHECK(err[DCL_SAMPLER_HEUN][0] < 0.25 * err[DCL_SAMPLER_EULER][0]);
    }
    free(ref);
    free(x);
}

// Tutorial §3.6: from the same x_t, DDPM's expected step E[x_s] − x_t and DDIM's step point the
// same way (footnote 38: both are proportional to μ − x_t). That holds in the coordinates
// y = x/a(t), where every process is the tutorial's ve process with σ(t) = b/a: DDPM moves y by
// (1 − σ_s²/σ_t²)(x0̂ − y_t), DDIM by (1 − σ_s/σ_t)(x0̂ − y_t). In x itself vp and flow steps also
// rescale x by a_s/a_t, which both samplers share and which can dominate DDIM's smaller move, so
// the raw x directions need not agree. x_t from the forward process of mixture samples at
// t = 0.9, 0.5, 0.2; Δt = 0.01; noise averaged out by taking DDPM's mean.
// DPM-Solver++(2M) against DDIM at equal network evaluations on the log-SNR grid, whose last
// evaluation is at the same t_min for every step count (so the final x0̂ step's bias is the same
// for all runs and the reference): the mean distance to the ODE's solution (heun, 500 steps on the
// same schedule, 999 evaluations) at 5 → 40 steps. DDIM is first order (slope log2 of the error
// ratio per doubling 0.9–1.2); 2M must beat it at 10 and 20 steps on the log-SNR grid (20 on
// Karras's) and fall at second order (measured slopes 2.0–2.7 from 20 to 40 steps).
static void check_multistep(dcl_device *cpu) {
    if (small) return; // CPU only, nothing for Oclgrind to see
    size_t N = 400;
    float *ref = malloc(2 * N * sizeof *ref), *x = malloc(2 * N * sizeof *x);
    const int steps[4] = {5, 10, 20, 40};
    for (int pi = 0; pi < N_PROCESSES; pi++) {
        dcl_process p = make_process(processes[pi].kind);
        dcl_prediction pred = processes[pi].preds[processes[pi].preds[0] == DCL_PREDICT_PREV];
        for (int sched = DCL_SCHEDULE_LOGSNR; sched <= DCL_SCHEDULE_KARRAS; sched++) {
            dcl_sampler_opts o = {
                .kind = DCL_SAMPLER_HEUN, .steps = 500, .schedule = (dcl_time_schedule)sched};
            CHECK_EQ(run(cpu, &p, pred, &o, N, 7, ref), DCL_OK);
            double err[2][4];
            for (int m = 0; m < 2; m++)
                for (int si = 0; si < 4; si++) {
                    o.kind = m ? DCL_SAMPLER_DPMPP_2M : DCL_SAMPLER_DDIM, o.steps = steps[si];
                    CHECK_EQ(run(cpu, &p, pred, &o, N, 7, x), DCL_OK);
                    double e = 0;
                    for (size_t i = 0; i < N; i++)
                        e += hypot(x[2 * i] - ref[2 * i], x[2 * i + 1] - ref[2 * i + 1]) / N;
                    err[m][si] = e;
                }
            for (int m = 0; m < 2; m++)
                printf("multistep %-9s %-6s %-7s: mean |x − x_ode| %.2e %.2e %.2e %.2e (5, 10, 20, "
                       "40 steps); slope 10→20 %.2f, 20→40 %.2f\n",
                       dcl_process_name(p.kind), dcl_schedule_name((dcl_time_schedule)sched),
                       m ? "dpm++2m" : "ddim", err[m][0], err[m][1], err[m][2], err[m][3],
                       log2(err[m][1] / err[m][2]), log2(err[m][2] / err[m][3]));
            // On Karras's grid 2M's first steps are long in λ: flow at 10 steps errs 0.57 vs 0.45.
            CHECK(err[1][2] < err[0][2]);
            if (sched == DCL_SCHEDULE_LOGSNR) CHECK(err[1][1] < err[0][1]);
            CHECK(log2(err[1][2] / err[1][3]) > 1.7); // second order (ddim: 0.9–1.2)
        }
    }
    free(ref);
    free(x);
}

static void check_same_direction(void) {
    const size_t N = 1000;
    for (int pi = 0; pi < N_PROCESSES; pi++) {
        dcl_process p = make_process(processes[pi].kind);
        dcl_oracle orc = make_oracle(&p, DCL_PREDICT_X0, 0);
        const double ts[] = {0.9, 0.5, 0.2};
        for (int ti = 0; ti < 3; ti++) {
            double t = ts[ti], s = t - 0.01, a, b, as, bs, cp[3], cd[3], cos_sum = 0, cos_min = 1;
            dcl_sampler_opts op = {.kind = DCL_SAMPLER_DDPM, .steps = 100};
            dcl_sampler_opts od = {.kind = DCL_SAMPLER_DDIM, .steps = 100};
            dcl_sampler_coefs(&p, DCL_PREDICT_X0, &op, t, s, cp);
            dcl_sampler_coefs(&p, DCL_PREDICT_X0, &od, t, s, cd);
            dcl_process_ab(&p, t, &a, &b);
            dcl_process_ab(&p, s, &as, &bs);
            for (size_t i = 0; i < N; i++) {
                float u = dcl_rng_uniform_at(5, DCL_RNG_TEST, 0, i);
                int k = u < W[0] ? 0 : u < W[0] + W[1] ? 1 : 2;
                double xt[2], x0[2], dp[2], dd[2];
                for (int d = 0; d < 2; d++) {
                    double x0d =
                        MU[2 * k + d] + S[k] * dcl_rng_normal_at(5, DCL_RNG_TEST, 1, 2 * i + d);
                    xt[d] = a * x0d + b * dcl_rng_normal_at(5, DCL_RNG_TEST, 2, 2 * i + d);
                }
                dcl__oracle_x0(&orc, t, xt, x0);
                for (int d = 0; d < 2; d++) {
                    dp[d] = (cp[0] * xt[d] + cp[1] * x0[d]) / as - xt[d] / a;
                    dd[d] = (cd[0] * xt[d] + cd[1] * x0[d]) / as - xt[d] / a;
                }
                double c =
                    (dp[0] * dd[0] + dp[1] * dd[1]) / (hypot(dp[0], dp[1]) * hypot(dd[0], dd[1]));
                cos_sum += c / N;
                if (c < cos_min) cos_min = c;
            }
            printf(
                "same direction %-9s t = %.1f: cosine of the steps of x/a: mean %.6f, min %.6f\n",
                dcl_process_name(p.kind), t, cos_sum, cos_min);
            CHECK(cos_sum > 0.9);
            CHECK(cos_min > 0.9);
        }
    }
}

// Every usable OpenCL device gives the CPU's samples for the same seed: the noise is the same
// Philox stream (normals within a few ulp), the oracle runs on the host in double, and the step
// is one lincomb3 built without contraction on both; what remains is float rounding carried
// through the steps. Returns the number of OpenCL platforms.
#define TOL_DEVICE 2e-3
static int check_devices(dcl_device *cpu) {
    dcl_device_info *list;
    int n, n_platforms = 0;
    if (dcl_device_list(&list, &n, &n_platforms) != DCL_OK) {
        fprintf(stderr, "dcl_device_list: %s\n", dcl_last_error());
        check_failures++;
        return 0;
    }
    const struct {
        dcl_process_kind kind;
        dcl_prediction pred;
        int sampler; // index into samplers[]
    } cases[] = {
        {DCL_PROCESS_VE, DCL_PREDICT_PREV, 0},     {DCL_PROCESS_VP_LINEAR, DCL_PREDICT_EPS, 1},
        {DCL_PROCESS_VP_COSINE, DCL_PREDICT_V, 3}, {DCL_PROCESS_FLOW, DCL_PREDICT_VELOCITY, 5},
        {DCL_PROCESS_FLOW, DCL_PREDICT_EPS, 4},    {DCL_PROCESS_VP_COSINE, DCL_PREDICT_X0, 2},
        {DCL_PROCESS_VP_LINEAR, DCL_PREDICT_V, 6},
    };
    size_t N = small ? 100 : 1000;
    float *a = malloc(2 * N * sizeof *a), *b = malloc(2 * N * sizeof *b);
    for (int i = 0; i < n; i++) {
        if (list[i].backend != DCL_BACKEND_OPENCL) continue;
        if (!list[i].usable) {
            printf("skip %s %s: %s\n", list[i].spec, list[i].name, list[i].why_not);
            continue;
        }
        dcl_device *dev;
        if (dcl_device_open(&dev, list[i].spec) != DCL_OK) {
            fprintf(stderr, "FAIL %s: cannot open: %s\n", list[i].spec, dcl_last_error());
            check_failures++;
            continue;
        }
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            dcl_process p = make_process(cases[c].kind);
            dcl_sampler_opts o = samplers[cases[c].sampler].o;
            o.steps = small ? 10 : 50;
            CHECK_EQ(run(cpu, &p, cases[c].pred, &o, N, 31 + c, a), DCL_OK);
            CHECK_EQ(run(dev, &p, cases[c].pred, &o, N, 31 + c, b), DCL_OK);
            double worst = 0;
            for (size_t k = 0; k < 2 * N; k++) worst = fmax(worst, fabs(a[k] - b[k]));
            printf("%-4s %s %-9s %-8s %-14s max |cpu − device| %.3g (tol %.1g)\n",
                   worst <= TOL_DEVICE ? "ok" : "FAIL", list[i].spec, dcl_process_name(p.kind),
                   dcl_prediction_name(cases[c].pred), samplers[cases[c].sampler].name, worst,
                   TOL_DEVICE);
            CHECK(worst <= TOL_DEVICE);
        }
        dcl_device_free(dev);
    }
    free(a);
    free(b);
    free(list);
    return n_platforms;
}

// Few steps of a stochastic sampler: dpm++2m-sde against ddpm (posterior variance) on the same
// log-SNR grid, the error of the within-component variance and of the covariance. Measured: at 40
// steps dpm++2m-sde's errors are 4-8x smaller than ddpm's (within 0.02-0.04 against 0.13-0.16,
// covariance 0.03-0.04 against 0.18-0.19); at 10-20 steps its second-order extrapolation through
// noisy estimates over-disperses the components (within +26% to +140%), so it wants >= 40 steps.
static void check_sde_few_steps(dcl_device *cpu) {
    size_t N = small ? 500 : 3000;
    float *x = malloc(2 * N * sizeof *x);
    struct stats ref;
    stats_exact(&ref);
    static const dcl_process_kind kinds[] = {DCL_PROCESS_VP_COSINE, DCL_PROCESS_FLOW};
    static const int steps[] = {10, 20, 40};
    for (int pi = 0; pi < 2; pi++) {
        dcl_process p = make_process(kinds[pi]);
        dcl_prediction pred =
            kinds[pi] == DCL_PROCESS_FLOW ? DCL_PREDICT_VELOCITY : DCL_PREDICT_EPS;
        for (int si = 0; si < 3; si++) {
            double err[2][2];
            for (int m = 0; m < 2; m++) {
                dcl_sampler_opts o = {.kind = m ? DCL_SAMPLER_DPMPP_2M_SDE : DCL_SAMPLER_DDPM,
                                      .steps = steps[si],
                                      .schedule = DCL_SCHEDULE_LOGSNR};
                struct stats st;
                CHECK_EQ(run(cpu, &p, pred, &o, N, 77, x), DCL_OK);
                stats_of(x, N, &st);
                err[m][0] = fabs(st.within / ref.within - 1);
                err[m][1] = 0;
                for (int k = 0; k < 3; k++)
                    err[m][1] = fmax(err[m][1], fabs(st.cov[k] - ref.cov[k]));
            }
            printf("%-9s steps %2d  within-variance error: ddpm %.3f, dpm++2m-sde %.3f; covariance "
                   "error: ddpm %.3f, dpm++2m-sde %.3f\n",
                   dcl_process_name(p.kind), steps[si], err[0][0], err[1][0], err[0][1], err[1][1]);
            if (steps[si] == 40 && !small) {
                CHECK(err[1][0] < 0.5 * err[0][0]);
                CHECK(err[1][1] < 0.5 * err[0][1]);
            }
        }
    }
    free(x);
}

int main(int argc, char **argv) {
    small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    dcl_device *cpu;
    if (dcl_device_open(&cpu, "cpu") != DCL_OK) {
        fprintf(stderr, "cannot open cpu: %s\n", dcl_last_error());
        return 1;
    }
    check_coefs();
    check_same_direction();
    check_convergence(cpu);
    check_multistep(cpu);
    check_sde_few_steps(cpu);
    check_reproduces(cpu);
    int n_platforms = check_devices(cpu);
    dcl_device_free(cpu);
#ifdef DIFFCL_HAVE_OPENCL
    if (n_platforms == 0) {
        printf("no OpenCL platform: only the CPU runs were done\n");
        return check_failures ? check_exit() : 77;
    }
#else
    (void)n_platforms;
#endif
    return check_exit();
}
