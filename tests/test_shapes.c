// The built-in colour shapes (host/data/shapes.c, spec shapesS): reproducible from the seed, image
// i independent of the others, labels balanced, bytes scaled like a PNG's, each shape's coverage
// equal to its closed-form area, every pixel the documented blend of background and shape within
// the noise, the shape inside the image and in contrast with the background; spec errors. The
// generator runs on the host only (no device to compare with).
#define _POSIX_C_SOURCE 200809L // clock_gettime

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testlib.h"
#include "testlib_data.h"       // open_ok, expect_open_error
#include "data/data_internal.h" // dcl__shapes_*, dcl__shape, DCL_STEP_FIXED_SET
#include "diffcl/data.h"

#define PI 3.14159265358979323846
#define S32 32
#define D32 (3 * S32 * S32)

// The byte a value of [-1, 1] came from (the values are p / 127.5 - 1 exactly), or -1.
static int byte_of(float v) {
    double p = ((double)v + 1.0) * 127.5;
    long b = lround(p);
    if (b < 0 || b > 255 || dcl__pixel_to_float((unsigned)b) != v) return -1;
    return (int)b;
}

static double luminance(const double c[3]) { return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; }

static void test_open_and_shape(void) {
    dcl_dataset *ds = open_ok("shapes32:n=64", 3);
    if (!ds) return;
    int C, H, W;
    CHECK_EQ(dcl_dataset_image_shape(ds, &C, &H, &W), 1);
    CHECK_EQ(C, 3);
    CHECK_EQ(H, S32);
    CHECK_EQ(W, S32);
    CHECK_EQ(dcl_dataset_size(ds), 64);
    CHECK_EQ(dcl_dataset_dim(ds), D32);
    CHECK_EQ(dcl_dataset_num_classes(ds), DCL_SHAPES_CLASSES);
    const char *names[] = {"disc", "square", "triangle", "ring", "cross"};
    for (int k = 0; k < DCL_SHAPES_CLASSES; k++)
        CHECK(dcl_dataset_class_name(ds, k) &&
              strcmp(dcl_dataset_class_name(ds, k), names[k]) == 0);
    CHECK(dcl_dataset_class_name(ds, DCL_SHAPES_CLASSES) == NULL);
    CHECK(dcl_dataset_labels(ds) != NULL);
    dcl_dataset_free(ds);
    ds = open_ok("shapes64:n=4", 0);
    if (ds) {
        CHECK_EQ(dcl_dataset_image_shape(ds, &C, &H, &W), 1);
        CHECK_EQ(C, 3);
        CHECK_EQ(H, 64);
        CHECK_EQ(W, 64);
        CHECK_EQ(dcl_dataset_dim(ds), 3 * 64 * 64);
    }
    dcl_dataset_free(ds);
    // The default size.
    ds = open_ok("shapes16", 0);
    if (ds) CHECK_EQ(dcl_dataset_size(ds), DCL_SHAPES_DEFAULT_N);
    dcl_dataset_free(ds);
}

static void test_reproducible_and_independent(void) {
    dcl_dataset *a = open_ok("shapes32:n=64", 3), *b = open_ok("shapes32:n=64", 3);
    dcl_dataset *c = open_ok("shapes32:n=64", 4), *prefix = open_ok("shapes32:n=20", 3);
    if (!a || !b || !c || !prefix) goto done;
    const float *xa = dcl_dataset_points(a);
    CHECK(memcmp(xa, dcl_dataset_points(b), 64 * D32 * sizeof(float)) == 0);
    CHECK(memcmp(dcl_dataset_labels(a), dcl_dataset_labels(b), 64 * sizeof(int32_t)) == 0);
    // Another seed: every image differs.
    for (int i = 0; i < 64; i++)
        CHECK(memcmp(xa + i * D32, dcl_dataset_points(c) + i * D32, D32 * sizeof(float)) != 0);
    // n=20 is the first 20 images of n=64: image i depends only on (seed, i).
    CHECK(memcmp(xa, dcl_dataset_points(prefix), 20 * D32 * sizeof(float)) == 0);
    CHECK(memcmp(dcl_dataset_labels(a), dcl_dataset_labels(prefix), 20 * sizeof(int32_t)) == 0);
    // Image 37 drawn alone, and images 35..39 drawn together, equal the set's.
    float one[D32], five[5 * D32];
    int32_t l1 = -1, l5[5];
    dcl__shapes_draw(S32, 3, DCL_STEP_FIXED_SET, 37, one, &l1, 1);
    dcl__shapes_draw(S32, 3, DCL_STEP_FIXED_SET, 35, five, l5, 5);
    CHECK(memcmp(one, xa + 37 * D32, sizeof one) == 0);
    CHECK(memcmp(five + 2 * D32, xa + 37 * D32, sizeof one) == 0);
    CHECK_EQ(l1, dcl_dataset_labels(a)[37]);
    CHECK_EQ(l5[2], l1);
    // The test split: reproducible, labelled, and none of its images in the training split.
    dcl_dataset *t1 = open_ok("shapes32:split=test,n=16", 3),
                *t2 = open_ok("shapes32:n=16,split=test", 3);
    dcl_dataset *train = open_ok("shapes32:split=train,n=64", 3);
    if (t1 && t2 && train) {
        const float *xt = dcl_dataset_points(t1);
        CHECK(memcmp(xt, dcl_dataset_points(t2), 16 * D32 * sizeof(float)) == 0);
        CHECK(memcmp(dcl_dataset_points(train), xa, 64 * D32 * sizeof(float)) == 0);
        CHECK_EQ(dcl_dataset_num_classes(t1), DCL_SHAPES_CLASSES);
        for (int i = 0; i < 16; i++) {
            CHECK(dcl_dataset_labels(t1)[i] >= 0 && dcl_dataset_labels(t1)[i] < DCL_SHAPES_CLASSES);
            for (int k = 0; k < 64; k++)
                CHECK(memcmp(xt + i * D32, xa + k * D32, D32 * sizeof(float)) != 0);
        }
    }
    dcl_dataset_free(t1), dcl_dataset_free(t2), dcl_dataset_free(train);
    // Another step of the stream gives other images.
    dcl__shapes_draw(S32, 3, 0, 37, one, NULL, 1);
    CHECK(memcmp(one, xa + 37 * D32, sizeof one) != 0);
    // Training batches are images of the set with their labels.
    float x[8 * D32];
    int32_t l[8];
    CHECK_EQ(dcl_dataset_batch_labels(a, x, l, 8, 5), DCL_OK);
    for (int i = 0; i < 8; i++) {
        int found = -1;
        for (int k = 0; k < 64 && found < 0; k++)
            if (memcmp(x + i * D32, xa + k * D32, D32 * sizeof(float)) == 0) found = k;
        CHECK(found >= 0);
        if (found >= 0) CHECK_EQ(l[i], dcl_dataset_labels(a)[found]);
    }
    // Evaluation points are fresh images: reproducible, other salts differ, none in the set.
    float f1[4 * D32], f2[4 * D32], f3[4 * D32];
    CHECK_EQ(dcl_dataset_fresh(a, f1, 4, 2), DCL_OK);
    CHECK_EQ(dcl_dataset_fresh(b, f2, 4, 2), DCL_OK);
    CHECK_EQ(dcl_dataset_fresh(a, f3, 4, 3), DCL_OK);
    CHECK(memcmp(f1, f2, sizeof f1) == 0);
    for (int i = 0; i < 4; i++) {
        CHECK(memcmp(f1 + i * D32, f3 + i * D32, D32 * sizeof(float)) != 0);
        for (int k = 0; k < 64; k++)
            CHECK(memcmp(f1 + i * D32, xa + k * D32, D32 * sizeof(float)) != 0);
        for (int j = 0; j < D32; j++) CHECK(byte_of(f1[i * D32 + j]) >= 0);
    }
done:
    dcl_dataset_free(a), dcl_dataset_free(b), dcl_dataset_free(c), dcl_dataset_free(prefix);
}

// Labels uniform over the classes: counts of 1000 images within 5 standard deviations of 200.
static void test_labels_balanced(void) {
    dcl_dataset *ds = open_ok("shapes32:n=1000", 11);
    if (!ds) return;
    int count[DCL_SHAPES_CLASSES] = {0};
    const int32_t *l = dcl_dataset_labels(ds);
    for (int i = 0; i < 1000; i++) {
        CHECK(l[i] >= 0 && l[i] < DCL_SHAPES_CLASSES);
        if (l[i] >= 0 && l[i] < DCL_SHAPES_CLASSES) count[l[i]]++;
        dcl__shape sh;
        dcl__shapes_params(S32, 11, DCL_STEP_FIXED_SET, (uint64_t)i, &sh);
        CHECK_EQ(sh.label, l[i]);
    }
    double sd = sqrt(1000 * 0.2 * 0.8);
    for (int k = 0; k < DCL_SHAPES_CLASSES; k++) CHECK_NEAR(count[k], 200, 5 * sd, 0);
    // Every value is a byte scaled as p / 127.5 - 1, so within [-1, 1].
    const float *x = dcl_dataset_points(ds);
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)1000 * D32; i++) bad += byte_of(x[i]) < 0;
    CHECK_EQ(bad, 0);
    dcl_dataset_free(ds);
}

// The closed-form area of a shape (shapes.c's sizes relative to r).
static double area(const dcl__shape *sh) {
    double r = sh->r;
    switch (sh->label) {
    case 0: return PI * r * r;                                       // disc of radius r
    case 1: return (1.6 * r) * (1.6 * r);                            // square of half side 0.8 r
    case 2: return 3.0 * sqrt(3.0) / 4.0 * (1.15 * r) * (1.15 * r);  // circumradius 1.15 r
    case 3: return PI * (r * r - 0.55 * r * 0.55 * r);               // ring 0.55 r .. r
    default: return 2 * (2 * r) * (0.6 * r) - (0.6 * r) * (0.6 * r); // two 2r × 0.6r bars
    }
}

// For many images of each class at 32 and 64: the summed coverage is the closed-form area, the
// border is empty, the size is in range, the colours contrast, and every pixel is the documented
// blend of gradient and shape within the noise and rounding.
static void test_geometry_and_pixels(void) {
    const int sides[2] = {S32, 64};
    double rel_sum[DCL_SHAPES_CLASSES] = {0};
    int n_class[DCL_SHAPES_CLASSES] = {0};
    float *x = malloc(3 * 64 * 64 * sizeof *x);
    if (!x) {
        CHECK(0);
        return;
    }
    for (int v = 0; v < 2; v++) {
        int S = sides[v];
        size_t HW = (size_t)S * S;
        for (uint64_t i = 0; i < 150; i++) {
            dcl__shape sh;
            dcl__shapes_params(S, 5, DCL_STEP_FIXED_SET, i, &sh);
            CHECK(sh.r >= S * 5.0 / 32 - 1e-9 && sh.r <= S * 12.0 / 32 + 1e-9);
            double fy = luminance(sh.fg);
            CHECK(fabs(fy - luminance(sh.bg0)) >= 0.25 - 1e-9);
            CHECK(fabs(fy - luminance(sh.bg1)) >= 0.25 - 1e-9);
            int32_t label;
            dcl__shapes_draw(S, 5, DCL_STEP_FIXED_SET, i, x, &label, 1);
            CHECK_EQ(label, sh.label);
            double covered = 0, worst = 0;
            for (int y = 0; y < S; y++)
                for (int xx = 0; xx < S; xx++) {
                    double cov = dcl__shapes_coverage(&sh, xx, y);
                    covered += cov;
                    if (xx == 0 || y == 0 || xx == S - 1 || y == S - 1) CHECK(cov == 0.0);
                    double t = 0.5 + ((xx + 0.5 - S / 2.0) * cos(sh.phi) +
                                      (y + 0.5 - S / 2.0) * sin(sh.phi)) /
                                         S;
                    t = fmin(fmax(t, 0.0), 1.0);
                    for (int c = 0; c < 3; c++) {
                        double bg = sh.bg0[c] + t * (sh.bg1[c] - sh.bg0[c]);
                        double want = bg + cov * (sh.fg[c] - bg);
                        double got = byte_of(x[c * HW + (size_t)y * S + xx]) / 255.0;
                        double err = fabs(got - fmin(fmax(want, 0.0), 1.0));
                        if (err > worst) worst = err;
                    }
                }
            CHECK(worst <= DCL_SHAPES_NOISE + 0.5 / 255 + 1e-9);
            // 4x4 sub-samples: each image within 6% (edges on the sample grid), the mean within 1%.
            double a = area(&sh);
            CHECK_NEAR(covered, a, 1.0, 0.06);
            rel_sum[sh.label] += (covered - a) / a, n_class[sh.label]++;
        }
    }
    for (int k = 0; k < DCL_SHAPES_CLASSES; k++) {
        CHECK(n_class[k] >= 20);
        CHECK_NEAR(rel_sum[k] / n_class[k], 0.0, 0.01, 0);
    }
    free(x);
}

// A disc seen in the pixels alone: the pixels whose luminance lies past the midpoint between the
// local background's and the shape's cover π r² (the edge pixels' errors cancel on average).
static void test_disc_from_pixels(void) {
    float x[D32];
    int discs = 0;
    for (uint64_t i = 0; discs < 10 && i < 200; i++) {
        dcl__shape sh;
        dcl__shapes_params(S32, 9, DCL_STEP_FIXED_SET, i, &sh);
        if (sh.label != 0) continue;
        discs++;
        dcl__shapes_draw(S32, 9, DCL_STEP_FIXED_SET, i, x, NULL, 1);
        double fy = luminance(sh.fg), count = 0;
        for (int y = 0; y < S32; y++)
            for (int xx = 0; xx < S32; xx++) {
                double t =
                    0.5 + ((xx + 0.5 - 16) * cos(sh.phi) + (y + 0.5 - 16) * sin(sh.phi)) / 32;
                t = fmin(fmax(t, 0.0), 1.0);
                double bg[3], px[3];
                for (int c = 0; c < 3; c++) {
                    bg[c] = sh.bg0[c] + t * (sh.bg1[c] - sh.bg0[c]);
                    px[c] = byte_of(x[c * S32 * S32 + y * S32 + xx]) / 255.0;
                }
                double mid = 0.5 * (fy + luminance(bg));
                count += (fy > mid) == (luminance(px) > mid);
            }
        CHECK_NEAR(count, PI * sh.r * sh.r, 2.0, 0.08);
    }
    CHECK_EQ(discs, 10);
}

static void test_specs(void) {
    expect_open_error("shapes", DCL_ERR_ARG, "shapesS with S the side in pixels, 16..256");
    expect_open_error("shapes8", DCL_ERR_ARG, "16..256");
    expect_open_error("shapes300", DCL_ERR_ARG, "(shapes32, shapes64)");
    expect_open_error("shapesx", DCL_ERR_ARG, "shapes32");
    expect_open_error("shapes32:", DCL_ERR_ARG, "nothing after ':' (options: split=test, n=K)");
    expect_open_error("shapes32:size=3", DCL_ERR_ARG, "unknown option 'size=3'; options: split");
    expect_open_error("shapes32:split=val", DCL_ERR_ARG, "split must be train or test");
    expect_open_error("shapes32:n=0", DCL_ERR_ARG, "n must be");
    expect_open_error("shapes32:n=5,", DCL_ERR_ARG, "nothing after the last ','");
    expect_open_error("shapes32:foo", DCL_ERR_ARG, "expected shapesS[:split=train|test][,n=K]");
    expect_open_error("shapes256:n=10000", DCL_ERR_ARG, "n=2730 would fit");
    expect_open_error("spirl", DCL_ERR_ARG, "shapes32");
}

// Images per second of shapes32, printed for the README (not asserted: machines differ).
static void report_speed(void) {
    const size_t n = 2000;
    float *x = malloc(n * D32 * sizeof *x);
    if (!x) {
        CHECK(0);
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    dcl__shapes_draw(S32, 1, DCL_STEP_FIXED_SET, 0, x, NULL, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("shapes32: %zu images in %.3f s (%.0f images/s on one core)\n", n, s, (double)n / s);
    free(x);
}

int main(void) {
    test_open_and_shape();
    test_reproducible_and_independent();
    test_labels_balanced();
    test_geometry_and_pixels();
    test_disc_from_pixels();
    test_specs();
    report_speed();
    return check_exit();
}
