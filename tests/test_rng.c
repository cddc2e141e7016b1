// Philox4x32-10 known answers, the stream mapping of rng.h, and CPU == OpenCL equality of the
// random fills (bits and uniforms bitwise, normals within a few ulp) under several launch shapes;
// plus distribution sanity (moments, bit balance) and independence from how a fill is split.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "device/test_hooks.h" // dcl__cl_set_launch
#include "diffcl/device.h"
#include "diffcl/ops.h"
#include "diffcl/rng.h"

enum fill_kind { BITS, UNIFORM, NORMAL };
static const char *const kind_name[] = {"bits", "uniform", "normal"};

// Random123 tests/kat_vectors, philox4x32 10 rounds: ctr, key, expected.
static const struct kat {
    uint32_t ctr[4], key[2], out[4];
} kats[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

// Streams used against the device: (seed, purpose, step, first element). The stream's element
// index is 64-bit and holds 4·block, so only blocks below 2^62 are reachable: the zero KAT is
// (0, 0, 0, 0); the all-ones and pi-digits KATs have block >= 2^63 and cannot be reached. They
// are replaced by the same seed/step/purpose words with the block's top two bits cleared, whose
// expected words come from dcl_philox4x32_10 (itself checked against all three KATs above).
static const struct stream {
    const char *name;
    uint64_t seed;
    uint32_t purpose, step;
    uint64_t block;
} streams[] = {
    {"zero (KAT)", 0, 0, 0, 0},
    {"all-ones, block 2^62-1", 0xffffffffffffffffull, 0xffffffff, 0xffffffff,
     0x3fffffffffffffffull},
    {"pi digits, block 0x05a308d3243f6a88", 0x299f31d0a4093822ull, 0x03707344, 0x13198a2e,
     0x05a308d3243f6a88ull},
};

static void expected_block(const struct stream *s, uint32_t out[4]) {
    uint32_t ctr[4] = {(uint32_t)s->block, (uint32_t)(s->block >> 32), s->step, s->purpose};
    uint32_t key[2] = {(uint32_t)s->seed, (uint32_t)(s->seed >> 32)};
    dcl_philox4x32_10(ctr, key, out);
}

static void check_cpu_philox(void) {
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        uint32_t out[4];
        dcl_philox4x32_10(kats[i].ctr, kats[i].key, out);
        for (int w = 0; w < 4; w++) CHECK_EQ(out[w], kats[i].out[w]);
    }
    // The mapping: element 4b + w is word w of block (b lo, b hi, step, purpose) under key seed.
    for (int w = 0; w < 4; w++) CHECK_EQ(dcl_rng_bits_at(0, 0, 0, (uint64_t)w), kats[0].out[w]);
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        const struct stream *s = &streams[i];
        uint32_t want[4];
        expected_block(s, want);
        for (int w = 0; w < 4; w++)
            CHECK_EQ(dcl_rng_bits_at(s->seed, s->purpose, s->step, 4 * s->block + (uint64_t)w),
                     want[w]);
    }
    // The pi vector through the mapping with block < 2^32, i.e. ctr (b, 0, step, purpose).
    uint32_t ctr[4] = {0x243f6a88, 0, 0x13198a2e, 0x03707344}, key[2] = {0xa4093822, 0x299f31d0},
             out[4];
    dcl_philox4x32_10(ctr, key, out);
    CHECK_EQ(dcl_rng_bits_at(0x299f31d0a4093822ull, 0x03707344, 0x13198a2e, 4ull * 0x243f6a88 + 2),
             out[2]);

    // Uniforms are strictly inside (0, 1) even for the extreme words, and exact.
    CHECK(dcl_u01(0) > 0.0f);
    CHECK(dcl_u01(0xffffffffu) < 1.0f);
    CHECK(dcl_u01(0) == 0x1p-24f);
    CHECK(dcl_u01(0xffffffffu) == 1.0f - 0x1p-24f);
    // Normals use the pairs (w0, w1) and (w2, w3): elements 4b and 4b+1 share a radius.
    for (uint64_t b = 0; b < 64; b++) {
        for (int pair = 0; pair < 4; pair += 2) {
            float c = dcl_rng_normal_at(7, 1, 2, 4 * b + (uint64_t)pair);
            float s = dcl_rng_normal_at(7, 1, 2, 4 * b + (uint64_t)pair + 1);
            float u1 = dcl_rng_uniform_at(7, 1, 2, 4 * b + (uint64_t)pair);
            CHECK_NEAR(c * c + s * s, -2.0 * log((double)u1), 1e-5, 1e-5);
        }
    }
}

// Fills n elements on dev; returns 0 (and counts a failure) when the op fails.
static int device_fill(dcl_device *dev, enum fill_kind kind, uint64_t seed, uint32_t purpose,
                       uint32_t step, uint64_t first, size_t n, void *host) {
    dcl_buffer *buf;
    dcl_status s = dcl_buffer_alloc(&buf, dev, n, "rng");
    if (s == DCL_OK) {
        dcl_ptr p = dcl_at(buf, 0);
        if (kind == BITS) s = dcl_rng_bits(dev, p, seed, purpose, step, first, n);
        else if (kind == UNIFORM) s = dcl_rng_uniform(dev, p, seed, purpose, step, first, n);
        else s = dcl_rng_normal(dev, p, seed, purpose, step, first, n);
        if (s == DCL_OK) s = dcl_buffer_read(buf, 0, n, host);
        dcl_buffer_free(buf);
    }
    if (s != DCL_OK) {
        fprintf(stderr, "rng_%s on %s failed: %s: %s\n", kind_name[kind],
                dcl_device_get_info(dev)->spec, dcl_status_name(s), dcl_last_error());
        check_failures++;
        return 0;
    }
    return 1;
}

// Compares a device fill with the host's dcl_rng_*_at: bits and uniforms bitwise, normals within
// |a − b| <= 4e-6·max(1, |b|) (log, sqrt, sin, cos may differ by a few ulp on OpenCL devices).
// Prints up to five mismatches; returns the largest normal difference.
static double compare_with_host(const char *what, enum fill_kind kind, const void *got,
                                uint64_t seed, uint32_t purpose, uint32_t step, uint64_t first,
                                size_t n) {
    int shown = 0;
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t gw;
        memcpy(&gw, (const char *)got + 4 * i, 4);
        float g;
        memcpy(&g, &gw, 4);
        int ok;
        double want;
        if (kind == BITS) {
            uint32_t w = dcl_rng_bits_at(seed, purpose, step, first + i);
            ok = gw == w, want = w;
            g = (float)gw;
        } else if (kind == UNIFORM) {
            float w = dcl_rng_uniform_at(seed, purpose, step, first + i);
            ok = g == w, want = w;
        } else {
            float w = dcl_rng_normal_at(seed, purpose, step, first + i);
            double d = fabs((double)g - w);
            if (d > max_diff) max_diff = d;
            ok = d <= 4e-6 * fmax(1.0, fabs((double)w)), want = w;
        }
        if (ok) continue;
        check_failures++;
        if (shown++ < 5)
            fprintf(stderr, "%s: rng_%s element first+%zu: device %.9g, host %.9g\n", what,
                    kind_name[kind], i, (double)g, want);
    }
    return max_diff;
}

// Moments of standard normals: mean 0 (sd 1/√n), variance 1 (sd √(2/n)), fourth moment 3
// (sd √(96/n)), lag-1 correlation 0 (sd 1/√n); 5 sd bounds. A radius of √(−ln u) instead of
// √(−2 ln u) (variance 0.5), or pairs sharing an angle, fail these by far.
static void check_normal_moments(const char *what, const float *x, size_t n) {
    double m1 = 0, m2 = 0, m4 = 0, lag = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        finite &= isfinite(x[i]) != 0;
        m1 += v, m2 += v * v, m4 += v * v * v * v;
        if (i + 1 < n) lag += v * x[i + 1];
    }
    double dn = (double)n;
    m1 /= dn, m2 /= dn, m4 /= dn, lag /= dn - 1;
    printf("%s: normal n=%zu mean %.4f var %.4f m4 %.3f lag1 %.4f\n", what, n, m1, m2 - m1 * m1, m4,
           lag);
    CHECK(finite);
    CHECK_NEAR(m1, 0.0, 5 / sqrt(dn), 0);
    CHECK_NEAR(m2 - m1 * m1, 1.0, 5 * sqrt(2 / dn), 0);
    CHECK_NEAR(m4, 3.0, 5 * sqrt(96 / dn), 0);
    CHECK_NEAR(lag, 0.0, 5 / sqrt(dn), 0);
}

// Uniforms: strictly inside (0, 1), mean 1/2 (sd √(1/12n)), E[u²] = 1/3 (sd √(4/45n)).
static void check_uniform(const char *what, const float *u, size_t n) {
    double m1 = 0, m2 = 0;
    size_t outside = 0;
    for (size_t i = 0; i < n; i++) {
        outside += !(u[i] > 0.0f && u[i] < 1.0f);
        m1 += u[i], m2 += (double)u[i] * u[i];
    }
    double dn = (double)n;
    m1 /= dn, m2 /= dn;
    printf("%s: uniform n=%zu mean %.4f E[u^2] %.4f\n", what, n, m1, m2);
    CHECK_EQ(outside, 0);
    CHECK_NEAR(m1, 0.5, 5 * sqrt(1 / (12 * dn)), 0);
    CHECK_NEAR(m2, 1.0 / 3.0, 5 * sqrt(4 / (45 * dn)), 0);
}

// Each of the 32 bits is set in half the words (sd 0.5/√n).
static void check_bit_balance(const char *what, const uint32_t *w, size_t n) {
    for (int b = 0; b < 32; b++) {
        size_t ones = 0;
        for (size_t i = 0; i < n; i++) ones += (w[i] >> b) & 1;
        double frac = (double)ones / (double)n;
        if (fabs(frac - 0.5) > 5 * 0.5 / sqrt((double)n)) {
            fprintf(stderr, "%s: bit %d set in %.4f of %zu words\n", what, b, frac, n);
            check_failures++;
        }
    }
}

// Filling [0, n) at once equals filling [0, k) from first and [k, n) from first + k, bitwise.
static void check_split(dcl_device *dev, enum fill_kind kind, size_t n, size_t k) {
    const uint64_t seed = 99, first = 1000003;
    uint32_t *whole = malloc(n * 4), *parts = malloc(n * 4);
    if (!whole || !parts) {
        CHECK(!"out of memory");
    } else if (device_fill(dev, kind, seed, DCL_RNG_SAMPLER, 5, first, n, whole) &&
               device_fill(dev, kind, seed, DCL_RNG_SAMPLER, 5, first, k, parts) &&
               device_fill(dev, kind, seed, DCL_RNG_SAMPLER, 5, first + k, n - k, parts + k)) {
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += whole[i] != parts[i];
        if (bad) {
            fprintf(stderr, "%s: rng_%s split at %zu differs from the whole fill in %zu elements\n",
                    dcl_device_get_info(dev)->spec, kind_name[kind], k, bad);
            check_failures++;
        }
    }
    free(whole);
    free(parts);
}

static void check_device(dcl_device *dev, int small) {
    const char *spec = dcl_device_get_info(dev)->spec;
    char what[160];

    // Known answers and the high-counter streams through the device's fill.
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        const struct stream *s = &streams[i];
        uint32_t want[4], got[4] = {0};
        expected_block(s, want);
        if (!device_fill(dev, BITS, s->seed, s->purpose, s->step, 4 * s->block, 4, got)) continue;
        for (int w = 0; w < 4; w++) {
            if (got[w] == want[w]) continue;
            fprintf(stderr, "%s: stream %s word %d: 0x%08x, expected 0x%08x\n", spec, s->name, w,
                    got[w], want[w]);
            check_failures++;
        }
        if (i == 0)
            for (int w = 0; w < 4; w++) CHECK_EQ(got[w], kats[0].out[w]);
    }

    // CPU == device at several launch shapes (local size, group count; 0 = the backend's choice).
    static const size_t shapes[][2] = {{0, 0}, {1, 1}, {7, 3}, {64, 2}, {256, 0}};
    size_t n = small ? 333 : 10007;
    const uint64_t seed = 0x0123456789abcdefull, first = ((uint64_t)1 << 33) + 5;
    void *got = malloc(n * 4);
    if (!got) {
        CHECK(!"out of memory");
        return;
    }
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
#ifdef DIFFCL_HAVE_OPENCL
        dcl__cl_set_launch(dev, shapes[si][0], shapes[si][1]);
#endif
        double max_diff = 0;
        for (int kind = BITS; kind <= NORMAL; kind++) {
            snprintf(what, sizeof what, "%s launch (%zu, %zu)", spec, shapes[si][0], shapes[si][1]);
            if (!device_fill(dev, (enum fill_kind)kind, seed, DCL_RNG_NOISE, 17, first, n, got))
                continue;
            double d = compare_with_host(what, (enum fill_kind)kind, got, seed, DCL_RNG_NOISE, 17,
                                         first, n);
            if (d > max_diff) max_diff = d;
        }
        printf("%s: bits, uniform equal to the host; normal max |diff| %.3g\n", what, max_diff);
        for (int kind = BITS; kind <= NORMAL; kind++)
            check_split(dev, (enum fill_kind)kind, small ? 100 : 1003, 5);
    }
#ifdef DIFFCL_HAVE_OPENCL
    dcl__cl_set_launch(dev, 0, 0);
#endif
    free(got);

    // Distribution sanity on the device's own values.
    size_t m = small ? 20000 : 100000;
    void *x = malloc(m * 4);
    if (!x) {
        CHECK(!"out of memory");
        return;
    }
    if (device_fill(dev, NORMAL, 2024, DCL_RNG_NOISE, 0, 0, m, x)) check_normal_moments(spec, x, m);
    if (device_fill(dev, UNIFORM, 2024, DCL_RNG_TIME, 0, 0, m, x)) check_uniform(spec, x, m);
    if (device_fill(dev, BITS, 2024, DCL_RNG_DATA, 0, 0, m, x)) check_bit_balance(spec, x, m);
    free(x);
}

static void check_spec(const char *spec, int small) {
    dcl_device *dev;
    dcl_status s = dcl_device_open(&dev, spec);
    if (s != DCL_OK) {
        fprintf(stderr, "cannot open %s: %s: %s\n", spec, dcl_status_name(s), dcl_last_error());
        check_failures++;
        return;
    }
    check_device(dev, small);
    dcl_device_free(dev);
}

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0); // keep summaries and failure details in order
    check_cpu_philox();
    check_spec("cpu", small);

    dcl_device_info *list;
    int n, n_platforms = 0, usable = 0;
    dcl_status s = dcl_device_list(&list, &n, &n_platforms);
    if (s != DCL_OK) {
        fprintf(stderr, "dcl_device_list: %s: %s\n", dcl_status_name(s), dcl_last_error());
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (list[i].backend != DCL_BACKEND_OPENCL || !list[i].usable) continue;
        usable++;
        check_spec(list[i].spec, small);
    }
    free(list);
#ifdef DIFFCL_HAVE_OPENCL
    if (n_platforms == 0) {
        printf("no OpenCL platform: only the CPU checks were done\n");
        return check_failures ? check_exit() : 77;
    }
    if (usable == 0) {
        fprintf(stderr, "%d OpenCL platform(s) but no usable OpenCL device\n", n_platforms);
        check_failures++;
    }
#else
    (void)usable;
#endif
    return check_exit();
}
