// The built-in 2D datasets: each point is a function of 4 Philox uniforms and 4 Philox normals,
// computed in double, so a (seed, step, index) gives the same point on every machine. All sets
// roughly fill [-1.5, 1.5]² with a per-coordinate std of about 0.5 to 1.
#include <math.h>
#include <string.h>

#include "data/data_internal.h"
#include "diffcl/rng.h" // dcl_rng_bits_at, dcl_u01, DCL_RNG_DATA

#define PI 3.14159265358979323846

// u: 4 uniforms in (0, 1); g: 4 standard normals; noise: std of the Gaussian noise to add.
typedef void (*toy_point_fn)(const double u[4], const double g[4], double noise, double out[2]);

// An index in 0..k-1 from a uniform in (0, 1).
static int pick(double u, int k) {
    int i = (int)(u * k);
    return i < k ? i : k - 1;
}

// One arm of an Archimedean spiral, 1.5 turns out to radius 1.67 (the tutorial's figures 6 and 7),
// shifted so that its bounding box, about [-1.4, 1.4] × [-1.13, 1.13], is centred on the origin.
// θ = 3π sqrt(u) spreads points evenly along the arc, whose length grows as θ².
static void spiral(const double u[4], const double g[4], double noise, double out[2]) {
    double theta = 3.0 * PI * sqrt(u[0]);
    double r = 1.67 * theta / (3.0 * PI);
    out[0] = r * cos(theta) + 0.272 + noise * g[0];
    out[1] = r * sin(theta) - 0.275 + noise * g[1];
}

// Two interleaved half circles (scikit-learn's make_moons), centred on the origin.
static void moons(const double u[4], const double g[4], double noise, double out[2]) {
    double a = PI * u[1];
    if (u[0] < 0.5) {
        out[0] = cos(a) - 0.5;
        out[1] = sin(a) - 0.25;
    } else {
        out[0] = 0.5 - cos(a);
        out[1] = 0.25 - sin(a);
    }
    out[0] += noise * g[0];
    out[1] += noise * g[1];
}

// Uniform over the 8 dark cells of a 4×4 board of 0.75-wide cells covering [-1.5, 1.5]².
static void checkerboard(const double u[4], const double g[4], double noise, double out[2]) {
    int k = pick(u[0], 8);
    int row = k / 2, col = 2 * (k % 2) + row % 2;
    out[0] = -1.5 + 0.75 * (col + u[1]) + noise * g[0];
    out[1] = -1.5 + 0.75 * (row + u[2]) + noise * g[1];
}

// 8 equal Gaussians with centres on the unit circle; noise is their std.
static void gmm8(const double u[4], const double g[4], double noise, double out[2]) {
    double a = 2.0 * PI * pick(u[0], 8) / 8.0;
    out[0] = cos(a) + noise * g[0];
    out[1] = sin(a) + noise * g[1];
}

// Uniform over the annulus 0.7 ≤ r ≤ 1.2 (the base distribution of the tutorial's figure 7).
static void annulus(const double u[4], const double g[4], double noise, double out[2]) {
    const double r0 = 0.7, r1 = 1.2;
    double r = sqrt(r0 * r0 + u[0] * (r1 * r1 - r0 * r0));
    double a = 2.0 * PI * u[1];
    out[0] = r * cos(a) + noise * g[0];
    out[1] = r * sin(a) + noise * g[1];
}

// scikit-learn's make_swiss_roll seen from the side (x, z), scaled by 1/10: t uniform in
// [1.5π, 4.5π], so points are denser near the centre than on the spiral.
static void swissroll(const double u[4], const double g[4], double noise, double out[2]) {
    double t = 1.5 * PI * (1.0 + 2.0 * u[0]);
    out[0] = 0.1 * t * cos(t) + noise * g[0];
    out[1] = 0.1 * t * sin(t) + noise * g[1];
}

static const struct toy {
    const char *name;
    const char *about;
    double noise;
    toy_point_fn point;
} toys[] = {
    {"spiral", "one spiral arm, 1.5 turns, in [-1.4,1.4]x[-1.13,1.13]", 0.03, spiral},
    {"moons", "two interleaved half circles", 0.05, moons},
    {"checkerboard", "uniform on 8 cells of a 4x4 board over [-1.5,1.5]^2", 0.0, checkerboard},
    {"gmm8", "8 Gaussians on the unit circle (noise: their std)", 0.08, gmm8},
    {"annulus", "uniform on the ring 0.7 <= r <= 1.2", 0.0, annulus},
    {"swissroll", "2D swiss roll, radius 0.47 to 1.41", 0.05, swissroll},
};
#define N_TOYS ((int)(sizeof toys / sizeof toys[0]))

int dcl__toy2d_count(void) { return N_TOYS; }

int dcl__toy2d_find(const char *name) {
    for (int i = 0; i < N_TOYS; i++)
        if (strcmp(toys[i].name, name) == 0) return i;
    return -1;
}

const char *dcl__toy2d_name(int set) { return toys[set].name; }
const char *dcl__toy2d_about(int set) { return toys[set].about; }
double dcl__toy2d_noise(int set) { return toys[set].noise; }

const char *dcl__toy2d_list(void) {
    return "spiral, moons, checkerboard, gmm8, annulus, swissroll";
}

// Box-Muller in double on a pair of stream uniforms: the two normals r cos θ and r sin θ.
static void box_muller(uint32_t w0, uint32_t w1, double *a, double *b) {
    double r = sqrt(-2.0 * log((double)dcl_u01(w0)));
    double theta = 2.0 * PI * (double)dcl_u01(w1);
    *a = r * cos(theta);
    *b = r * sin(theta);
}

void dcl__toy2d_generate(int set, double noise, uint64_t seed, uint32_t step, uint64_t first,
                         float *x, size_t n) {
    toy_point_fn point = toys[set].point;
    for (size_t i = 0; i < n; i++) {
        uint64_t e = (first + i) * DCL_TOY2D_ELEMENTS;
        uint32_t w[DCL_TOY2D_ELEMENTS];
        for (int j = 0; j < DCL_TOY2D_ELEMENTS; j++)
            w[j] = dcl_rng_bits_at(seed, DCL_RNG_DATA, step, e + (uint64_t)j);
        double u[4], g[4], p[2];
        for (int j = 0; j < 4; j++) u[j] = (double)dcl_u01(w[j]);
        box_muller(w[4], w[5], &g[0], &g[1]);
        box_muller(w[6], w[7], &g[2], &g[3]);
        point(u, g, noise, p);
        x[2 * i] = (float)p[0];
        x[2 * i + 1] = (float)p[1];
    }
}
