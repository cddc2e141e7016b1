// Forward processes x_t = a(t) x0 + b(t) ε (the table in host/README.md, "Notation"): the only
// place with schedule math. Also the names of processes and predictions, which pairs work, and the
// Gaussian posterior.
#include <math.h>
#include <string.h>

#include "core/error.h"          // dcl__fail
#include "diffusion/diffusion.h" // dcl__process_dab, dcl__process_posterior

#define VP_LINEAR_BETA0 1e-4
#define VP_LINEAR_BETA1 0.02
#define VP_LINEAR_STEPS 1000 // default N
#define VP_COSINE_S 0.008
#define PI 3.14159265358979323846
// Nichol & Dhariwal clip every discrete β_k at 0.999 (T = 1000 steps); with their schedule only the
// last step is clipped, so ᾱ_T = 0.001 ᾱ(0.999) ≈ 2.43e-9 instead of 0. Continuous time here
// floors ᾱ(t) at that value: a(1) ≈ 4.9e-5 > 0, which keeps ε-prediction convertible at t = 1.
#define VP_COSINE_ALPHA_BAR_MIN 2.428766907034851e-09

static const char *const process_names[] = {"ve", "vp-linear", "vp-cosine", "flow"};
static const char *const prediction_names[] = {"prev", "x0", "eps", "v", "velocity"};
#define N_PROCESSES (int)(sizeof process_names / sizeof *process_names)
#define N_PREDICTIONS (int)(sizeof prediction_names / sizeof *prediction_names)

dcl_status dcl_process_parse(const char *name, dcl_process *out) {
    for (int i = 0; name && i < N_PROCESSES; i++) {
        if (strcmp(name, process_names[i]) != 0) continue;
        out->kind = (dcl_process_kind)i;
        out->sigma_q = 1.0;
        out->n_steps = i == DCL_PROCESS_VP_LINEAR ? VP_LINEAR_STEPS : 0;
        return DCL_OK;
    }
    return dcl__fail(DCL_ERR_ARG, "unknown process '%s': use ve, vp-linear, vp-cosine or flow",
                     name ? name : "(null)");
}

const char *dcl_process_name(dcl_process_kind kind) {
    return (int)kind >= 0 && (int)kind < N_PROCESSES ? process_names[kind] : "?";
}

dcl_status dcl_prediction_parse(const char *name, dcl_prediction *out) {
    for (int i = 0; name && i < N_PREDICTIONS; i++) {
        if (strcmp(name, prediction_names[i]) != 0) continue;
        *out = (dcl_prediction)i;
        return DCL_OK;
    }
    return dcl__fail(DCL_ERR_ARG, "unknown prediction '%s': use prev, x0, eps, v or velocity",
                     name ? name : "(null)");
}

const char *dcl_prediction_name(dcl_prediction pred) {
    return (int)pred >= 0 && (int)pred < N_PREDICTIONS ? prediction_names[pred] : "?";
}

dcl_status dcl_prediction_check(const dcl_process *p, dcl_prediction pred) {
    static const char works[] = "x0, eps and v work with every process; prev only with ve; "
                                "velocity only with flow";
    if ((int)p->kind < 0 || (int)p->kind >= N_PROCESSES)
        return dcl__fail(DCL_ERR_ARG, "unknown process kind %d", (int)p->kind);
    if ((int)pred < 0 || (int)pred >= N_PREDICTIONS)
        return dcl__fail(DCL_ERR_ARG, "unknown prediction %d", (int)pred);
    if (p->kind == DCL_PROCESS_VE && !(p->sigma_q > 0))
        return dcl__fail(DCL_ERR_ARG, "process ve needs sigma_q > 0, got %g", p->sigma_q);
    if ((pred == DCL_PREDICT_PREV && p->kind != DCL_PROCESS_VE) ||
        (pred == DCL_PREDICT_VELOCITY && p->kind != DCL_PROCESS_FLOW))
        return dcl__fail(DCL_ERR_ARG, "prediction '%s' does not work with process '%s': %s",
                         dcl_prediction_name(pred), dcl_process_name(p->kind), works);
    return DCL_OK;
}

static int vp_linear_n(const dcl_process *p) {
    return p->n_steps > 0 ? p->n_steps : VP_LINEAR_STEPS;
}

// β_k, k = 1..N: linear from 1e-4 to 0.02 (Ho et al. 2020 §4).
static double vp_linear_beta(int N, int k) {
    return N == 1 ? VP_LINEAR_BETA0
                  : VP_LINEAR_BETA0 + (VP_LINEAR_BETA1 - VP_LINEAR_BETA0) * (k - 1) / (N - 1);
}

// log ᾱ_k = Σ_{i≤k} log(1 − β_i), k = 0..N. A per-thread table for N up to VP_CACHE_MAX (the
// trainer asks once per example); larger N sums directly.
#define VP_CACHE_MAX 4096
static double vp_linear_log_alpha_bar_k(int N, int k) {
    static _Thread_local double table[VP_CACHE_MAX + 1];
    static _Thread_local int table_n = 0;
    if (N > VP_CACHE_MAX) {
        double s = 0;
        for (int i = 1; i <= k; i++) s += log1p(-vp_linear_beta(N, i));
        return s;
    }
    if (table_n != N) {
        table[0] = 0;
        for (int i = 1; i <= N; i++) table[i] = table[i - 1] + log1p(-vp_linear_beta(N, i));
        table_n = N;
    }
    return table[k];
}

// ᾱ(t) = Π_{i≤k} (1 − β_i) at t = k/N; between grid points log ᾱ is linear in t (as if β were
// spread evenly over its step), which keeps ᾱ exact on the grid and continuous in between.
static double vp_linear_alpha_bar(int N, double t) {
    double x = t * N;
    if (x <= 0) return 1.0;
    if (x >= N) return exp(vp_linear_log_alpha_bar_k(N, N));
    int k = (int)floor(x);
    double l0 = vp_linear_log_alpha_bar_k(N, k), l1 = vp_linear_log_alpha_bar_k(N, k + 1);
    return exp(l0 + (x - k) * (l1 - l0));
}

// u(t) = (t + s)/(1 + s) · π/2; a(t) = √ᾱ = cos u(t) / cos u(0) (Nichol & Dhariwal eq. 17).
static double vp_cosine_u(double t) { return (t + VP_COSINE_S) / (1 + VP_COSINE_S) * (PI / 2); }

static double clamp01(double t) { return t < 0 ? 0 : t > 1 ? 1 : t; }

double dcl_process_alpha_bar(const dcl_process *p, double t) {
    t = clamp01(t);
    switch (p->kind) {
    case DCL_PROCESS_VE: return 1.0;
    case DCL_PROCESS_VP_LINEAR: return vp_linear_alpha_bar(vp_linear_n(p), t);
    case DCL_PROCESS_VP_COSINE: {
        double r = cos(vp_cosine_u(t)) / cos(vp_cosine_u(0));
        return fmax(r * r, VP_COSINE_ALPHA_BAR_MIN);
    }
    case DCL_PROCESS_FLOW: return (1 - t) * (1 - t);
    }
    return 1.0;
}

void dcl_process_ab(const dcl_process *p, double t, double *a, double *b) {
    t = clamp01(t);
    switch (p->kind) {
    case DCL_PROCESS_VE: // tutorial eq. 12: x_t ~ N(x0, σ_q² t)
        *a = 1, *b = p->sigma_q * sqrt(t);
        return;
    case DCL_PROCESS_VP_LINEAR:
    case DCL_PROCESS_VP_COSINE: {
        double ab = dcl_process_alpha_bar(p, t);
        *a = sqrt(ab), *b = sqrt(1 - ab);
        return;
    }
    case DCL_PROCESS_FLOW: // tutorial eq. 66: x_t = t x1 + (1 − t) x0
        *a = 1 - t, *b = t;
        return;
    }
    *a = 1, *b = 0;
}

void dcl__process_dab(const dcl_process *p, double t, double *da, double *db) {
    double a, b;
    t = clamp01(t);
    dcl_process_ab(p, t, &a, &b);
    switch (p->kind) {
    case DCL_PROCESS_VE: // b = σ_q √t
        *da = 0, *db = p->sigma_q / (2 * sqrt(fmax(t, 1e-300)));
        return;
    case DCL_PROCESS_VP_LINEAR: {
        // d log ᾱ/dt = N log(1 − β_k) on ((k − 1)/N, k/N]; a' = a (log ᾱ)'/2, b' = −a a'/b.
        int N = vp_linear_n(p), k = (int)ceil(t * N - 1e-9); // t = k/N in floating point
        if (k < 1) k = 1;
        *da = a * N * log1p(-vp_linear_beta(N, k)) / 2;
        *db = b > 0 ? -a * *da / b : 0;
        return;
    }
    case DCL_PROCESS_VP_COSINE:
        *da = -sin(vp_cosine_u(t)) * (PI / 2) / (1 + VP_COSINE_S) / cos(vp_cosine_u(0));
        *db = b > 0 ? -a * *da / b : 0;
        return;
    case DCL_PROCESS_FLOW: *da = -1, *db = 1; return;
    }
    *da = 0, *db = 0;
}

void dcl__process_posterior(const dcl_process *p, double t, double s, double m[2], double *var_post,
                            double *var_step) {
    double at, bt, as, bs;
    dcl_process_ab(p, t, &at, &bt);
    dcl_process_ab(p, s, &as, &bs);
    double r = at / as;                              // a_{t|s}: x_t = r x_s + N(0, σ²_{t|s})
    double var = fmax(bt * bt - r * r * bs * bs, 0); // σ²_{t|s}
    m[0] = r * bs * bs / (bt * bt);
    m[1] = as * var / (bt * bt);
    *var_post = var * bs * bs / (bt * bt);
    *var_step = var;
}

double dcl_process_base_std(const dcl_process *p) {
    return p->kind == DCL_PROCESS_VE ? p->sigma_q : 1.0;
}

double dcl_process_train_t(const dcl_process *p, double u) {
    if (p->kind != DCL_PROCESS_VP_LINEAR) return u;
    int N = vp_linear_n(p), k = (int)ceil(u * N);
    if (k < 1) k = 1;
    if (k > N) k = N;
    return (double)k / N;
}
