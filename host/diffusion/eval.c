// Distribution distances for evaluation: sliced Wasserstein-2 and the memorised fraction. Host
// code in double; inputs are host arrays.
#include <math.h>
#include <stdlib.h>

#include "diffcl/eval.h"
#include "diffcl/rng.h" // dcl_rng_normal_at, DCL_RNG_TEST

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

// W2² between the empirical distributions of sorted a (n) and sorted b (m): the integral over
// u in (0, 1) of (F_a⁻¹(u) − F_b⁻¹(u))², where both quantile functions are steps (a[i] on
// (i/n, (i+1)/n]). Walking the merged breakpoints makes it exact; for n = m it is the mean of
// (a[i] − b[i])².
static double w2sq_sorted(const double *a, size_t n, const double *b, size_t m) {
    size_t i = 0, j = 0;
    double u = 0, acc = 0;
    while (i < n && j < m) {
        // Next breakpoint: min((i + 1)/n, (j + 1)/m), compared exactly in integers.
        unsigned long long ei = (unsigned long long)(i + 1) * m,
                           ej = (unsigned long long)(j + 1) * n;
        double next = ei <= ej ? (double)(i + 1) / n : (double)(j + 1) / m;
        double d = a[i] - b[j];
        acc += (next - u) * d * d;
        u = next;
        if (ei <= ej) i++;
        if (ej <= ei) j++;
    }
    return acc;
}

double dcl_sw2(const float *a, size_t n, const float *b, size_t m, size_t D, int n_proj,
               uint64_t seed) {
    if (n == 0 || m == 0 || D == 0 || n_proj <= 0) return NAN;
    double *pa = malloc(n * sizeof *pa), *pb = malloc(m * sizeof *pb);
    double *theta = malloc(D * sizeof *theta);
    double sum = NAN;
    if (!pa || !pb || !theta) goto done;
    sum = 0;
    for (int j = 0; j < n_proj; j++) {
        // A uniform direction on the sphere: a normalised standard normal vector, element d of
        // Philox stream (seed, DCL_RNG_TEST, step j).
        double norm = 0;
        for (size_t d = 0; d < D; d++) {
            theta[d] = dcl_rng_normal_at(seed, DCL_RNG_TEST, (uint32_t)j, d);
            norm += theta[d] * theta[d];
        }
        norm = sqrt(norm);
        for (size_t d = 0; d < D; d++) theta[d] /= norm;
        for (size_t i = 0; i < n; i++) {
            double s = 0;
            for (size_t d = 0; d < D; d++) s += theta[d] * a[i * D + d];
            pa[i] = s;
        }
        for (size_t i = 0; i < m; i++) {
            double s = 0;
            for (size_t d = 0; d < D; d++) s += theta[d] * b[i * D + d];
            pb[i] = s;
        }
        qsort(pa, n, sizeof *pa, cmp_double);
        qsort(pb, m, sizeof *pb, cmp_double);
        sum += w2sq_sorted(pa, n, pb, m);
    }
    sum = sqrt(sum / n_proj);
done:
    free(pa);
    free(pb);
    free(theta);
    return sum;
}

// Brute force, O(n · n_train · D): fine for the 2-D memorisation study (n_train up to a few
// thousand); a k-d tree would be the next step for larger sets.
double dcl_memorised_fraction(const float *samples, size_t n, const float *train, size_t n_train,
                              size_t D, double radius) {
    if (n == 0) return 0;
    double r2 = radius * radius;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n_train; j++) {
            double d2 = 0;
            for (size_t d = 0; d < D && d2 <= r2; d++) {
                double e = (double)samples[i * D + d] - train[j * D + d];
                d2 += e * e;
            }
            if (d2 <= r2) {
                hits++;
                break;
            }
        }
    }
    return (double)hits / n;
}

void dcl_nearest_rms(const float *samples, size_t n, const float *train, size_t n_train, size_t D,
                     double *nearest) {
    for (size_t i = 0; i < n; i++) {
        const float *x = samples + i * D;
        double best = INFINITY;
        for (size_t j = 0; j < n_train; j++) {
            const float *y = train + j * D;
            // Float partial sums of 8 keep the inner loop vectorisable; the total is double.
            double d2 = 0;
            for (size_t d = 0; d < D && d2 < best; d += 8) {
                float part = 0;
                for (size_t e = d; e < d + 8 && e < D; e++) part += (x[e] - y[e]) * (x[e] - y[e]);
                d2 += part;
            }
            if (d2 < best) best = d2;
        }
        nearest[i] = n_train && D ? sqrt(best / (double)D) : NAN;
    }
}
