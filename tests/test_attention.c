// The CPU reference's self-attention at sizes where a head's queries span several blocks
// (host/device/cpu/cpu_attention.c: R > 64, a ragged last block, dk and dv summed over blocks):
// forward and backward against the same formulas in double, and the same bits on 1, 2 and 3
// threads. (tests/test_ops.c and tests/test_threads.c run the op cases, whose R <= 64 fit one
// block.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "device/cpu/cpu_pool.h" // dcl__cpu_pool_jobs: the runs on more threads used the pool
#include "diffcl/ops.h"
#include "diffcl/rng.h" // dcl_rng_normal_at: the inputs

static dcl_device *dev;

// One problem: qkv (N, 3C, R) and dout (N, C, R) drawn from N(0, 1); out, lse and dqkv as the
// ops leave them, all in one buffer.
struct problem {
    size_t N, heads, C, R, nq, no, nl;
    float *h; // qkv, dout, out, lse, dqkv
};

// Runs forward then backward on the current thread count; h's outputs afterwards.
static dcl_status run(struct problem *p) {
    size_t nq = p->nq, no = p->no, nl = p->nl, total = 2 * nq + 2 * no + nl;
    dcl_buffer *b = NULL;
    dcl_status s = dcl_buffer_alloc(&b, dev, total, "attention");
    if (s == DCL_OK) s = dcl_buffer_write(b, 0, total, p->h);
    dcl_ptr qkv = dcl_at(b, 0), dout = dcl_at(b, nq), out = dcl_at(b, nq + no);
    dcl_ptr lse = dcl_at(b, nq + 2 * no), dqkv = dcl_at(b, nq + 2 * no + nl);
    if (s == DCL_OK) s = dcl_attention_forward(dev, out, lse, qkv, p->N, p->heads, p->C, p->R);
    if (s == DCL_OK)
        s = dcl_attention_backward(dev, dqkv, dout, qkv, out, lse, p->N, p->heads, p->C, p->R);
    if (s == DCL_OK) s = dcl_buffer_read(b, 0, total, p->h);
    dcl_buffer_free(b);
    return s;
}

// Every output of one head against double: S = q·k/√d, P = softmax rows, out = P v,
// lse = log Σ exp S; dv = Pᵀ dout, dP = dout·v, dS = P (dP − Σ_j P dP), dq = dS k/√d,
// dk = dSᵀ q/√d. Returns the worst |op − double| / (1 + |double|).
static double check_head(const struct problem *p, size_t n, size_t h) {
    size_t C = p->C, R = p->R, d = C / p->heads;
    const float *q = p->h + (n * 3 * C + h * d) * R, *k = q + C * R, *v = k + C * R;
    const float *g = p->h + p->nq + (n * C + h * d) * R, *out = g + p->no;
    const float *lse = p->h + p->nq + 2 * p->no + (n * p->heads + h) * R;
    const float *dq = p->h + p->nq + 2 * p->no + p->nl + (n * 3 * C + h * d) * R;
    const float *dk = dq + C * R, *dv = dk + C * R;
    double scale = 1 / sqrt((double)d), worst = 0;
    double *P = malloc(R * R * sizeof *P), *dS = malloc(R * R * sizeof *dS);
    if (!P || !dS) {
        free(P), free(dS);
        return INFINITY;
    }
#define WORSE(got, want) worst = fmax(worst, fabs((got) - (want)) / (1 + fabs(want)))
    for (size_t i = 0; i < R; i++) {
        double m = -INFINITY, l = 0, D = 0;
        for (size_t j = 0; j < R; j++) {
            double s = 0;
            for (size_t c = 0; c < d; c++) s += (double)q[c * R + i] * k[c * R + j];
            P[i * R + j] = s * scale;
            m = fmax(m, s * scale);
        }
        for (size_t j = 0; j < R; j++) l += P[i * R + j] = exp(P[i * R + j] - m);
        for (size_t j = 0; j < R; j++) {
            P[i * R + j] /= l;
            double dp = 0;
            for (size_t c = 0; c < d; c++) dp += (double)g[c * R + i] * v[c * R + j];
            dS[i * R + j] = dp;
            D += P[i * R + j] * dp;
        }
        for (size_t j = 0; j < R; j++) dS[i * R + j] = P[i * R + j] * (dS[i * R + j] - D);
        WORSE(lse[i], m + log(l));
        for (size_t c = 0; c < d; c++) {
            double o = 0, gq = 0;
            for (size_t j = 0; j < R; j++) {
                o += P[i * R + j] * v[c * R + j];
                gq += dS[i * R + j] * k[c * R + j] * scale;
            }
            WORSE(out[c * R + i], o);
            WORSE(dq[c * R + i], gq);
        }
    }
    for (size_t j = 0; j < R; j++)
        for (size_t c = 0; c < d; c++) {
            double gk = 0, gv = 0;
            for (size_t i = 0; i < R; i++) {
                gk += dS[i * R + j] * q[c * R + i] * scale;
                gv += P[i * R + j] * g[c * R + i];
            }
            WORSE(dk[c * R + j], gk);
            WORSE(dv[c * R + j], gv);
        }
#undef WORSE
    free(P), free(dS);
    return worst;
}

// N samples of heads heads over C channels and R positions: against double (float rounding of
// sums of R terms of size ~1: tol 1e-5), then on 2 and 3 threads bit for bit as on 1.
static void check_shape(size_t N, size_t heads, size_t C, size_t R) {
    struct problem p = {.N = N, .heads = heads, .C = C, .R = R};
    p.nq = N * 3 * C * R, p.no = N * C * R, p.nl = N * heads * R;
    size_t total = 2 * p.nq + 2 * p.no + p.nl, outputs = p.no + p.nl + p.nq;
    float *init = malloc(total * sizeof *init), *one = malloc(outputs * sizeof *one);
    p.h = malloc(total * sizeof *p.h);
    if (!init || !one || !p.h) {
        check_failures++;
        goto done;
    }
    for (size_t i = 0; i < total; i++)
        init[i] = i < p.nq + p.no ? dcl_rng_normal_at(11, DCL_RNG_TEST, (uint32_t)R, i) : NAN;
    for (int threads = 1; threads <= 3; threads++) {
        memcpy(p.h, init, total * sizeof *init);
        CHECK_EQ(dcl_cpu_set_threads(threads), DCL_OK);
        size_t jobs = dcl__cpu_pool_jobs();
        dcl_status s = run(&p);
        if (s != DCL_OK) {
            fprintf(stderr, "FAIL attention R=%zu on %d threads: %s\n", R, threads,
                    dcl_last_error());
            check_failures++;
            break;
        }
        const float *got = p.h + p.nq + p.no;
        if (threads == 1) {
            double worst = 0;
            for (size_t n = 0; n < N; n++)
                for (size_t h = 0; h < heads; h++) worst = fmax(worst, check_head(&p, n, h));
            printf("attention N=%zu heads=%zu C=%zu R=%zu: worst |op − double| / (1 + |x|) = "
                   "%.2e (tol 1e-05)\n",
                   N, heads, C, R, worst);
            CHECK(worst <= 1e-5);
            memcpy(one, got, outputs * sizeof *one);
        } else {
            CHECK(dcl__cpu_pool_jobs() > jobs);
            if (memcmp(one, got, outputs * sizeof *one) != 0) {
                fprintf(stderr, "FAIL attention R=%zu: %d threads differ from 1\n", R, threads);
                check_failures++;
            }
        }
    }
done:
    free(init), free(one), free(p.h);
}

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (dcl_device_open(&dev, "cpu") != DCL_OK) {
        fprintf(stderr, "cannot open the CPU reference: %s\n", dcl_last_error());
        return 1;
    }
    check_shape(2, 2, 8, 300);              // blocks of 48 queries, the last of 12
    if (!small) check_shape(3, 1, 5, 1000); // blocks of 16, the last of 8
    dcl_device_free(dev);
    return check_exit();
}
