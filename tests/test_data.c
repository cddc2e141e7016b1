// Datasets: the built-in 2D sets are reproducible and have the shape they claim, fixed training
// sets only ever yield their own points, specs are checked, and the CSV reader accepts good files
// and rejects bad ones with the file and line in the message.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "testlib_data.h" // open_ok, expect_open_error
#include "diffcl/data.h"

static const char *const builtin[] = {"spiral", "moons",   "checkerboard",
                                      "gmm8",   "annulus", "swissroll"};
#define N_BUILTIN ((int)(sizeof builtin / sizeof builtin[0]))
#define NPTS 4000

static char tmpdir[256];

// Points of step `step`, N of them, into a malloc'ed array.
static float *batch(const char *spec, uint64_t seed, size_t N, uint64_t step) {
    dcl_dataset *ds = open_ok(spec, seed);
    float *x = calloc(N * 2, sizeof *x);
    if (ds) CHECK_EQ(dcl_dataset_batch(ds, x, N, step), DCL_OK);
    dcl_dataset_free(ds);
    return x;
}

static void test_reproducible(void) {
    for (int i = 0; i < N_BUILTIN; i++) {
        float *a = batch(builtin[i], 7, 500, 3), *b = batch(builtin[i], 7, 500, 3);
        float *c = batch(builtin[i], 8, 500, 3), *d = batch(builtin[i], 7, 500, 4);
        float *e = batch(builtin[i], 7, 20, 3);
        CHECK(memcmp(a, b, 500 * 2 * sizeof *a) == 0);
        CHECK(memcmp(a, c, 500 * 2 * sizeof *a) != 0); // another seed
        CHECK(memcmp(a, d, 500 * 2 * sizeof *a) != 0); // another step
        CHECK(memcmp(a, e, 20 * 2 * sizeof *a) == 0);  // point i does not depend on N
        free(a), free(b), free(c), free(d), free(e);
    }
}

static void stats(const float *x, size_t n, double mean[2], double sd[2], double *maxabs) {
    *maxabs = 0;
    for (int j = 0; j < 2; j++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
            double v = x[2 * i + j];
            CHECK(isfinite(v));
            s += v, s2 += v * v;
            if (fabs(v) > *maxabs) *maxabs = fabs(v);
        }
        mean[j] = s / n;
        sd[j] = sqrt(s2 / n - mean[j] * mean[j]);
    }
}

static void test_shapes(void) {
    for (int i = 0; i < N_BUILTIN; i++) {
        float *x = batch(builtin[i], 1, NPTS, 0);
        double mean[2], sd[2], maxabs;
        stats(x, NPTS, mean, sd, &maxabs);
        if (maxabs > 1.8 || fabs(mean[0]) > 0.4 || fabs(mean[1]) > 0.4 || sd[0] < 0.35 ||
            sd[0] > 1.1 || sd[1] < 0.3 || sd[1] > 1.1)
            fprintf(stderr, "%s: mean (%g, %g) std (%g, %g) max |x| %g\n", builtin[i], mean[0],
                    mean[1], sd[0], sd[1], maxabs);
        CHECK(maxabs <= 1.8);
        CHECK(fabs(mean[0]) <= 0.4 && fabs(mean[1]) <= 0.4);
        CHECK(sd[0] >= 0.35 && sd[0] <= 1.1 && sd[1] >= 0.3 && sd[1] <= 1.1);
        free(x);
    }

    // gmm8: every point near one of 8 centres on the unit circle, about 1/8 at each.
    float *x = batch("gmm8", 2, NPTS, 0);
    int count[8] = {0}, far = 0;
    for (size_t i = 0; i < NPTS; i++) {
        int best = 0;
        double bd = 1e9;
        for (int k = 0; k < 8; k++) {
            double a = 2 * 3.14159265358979323846 * k / 8,
                   d = hypot(x[2 * i] - cos(a), x[2 * i + 1] - sin(a));
            if (d < bd) bd = d, best = k;
        }
        count[best]++;
        far += bd > 0.4;
    }
    CHECK_EQ(far, 0);
    for (int k = 0; k < 8; k++) CHECK(count[k] > NPTS / 8 * 0.8 && count[k] < NPTS / 8 * 1.2);
    free(x);

    // annulus (no noise): 0.7 <= r <= 1.2.
    x = batch("annulus", 2, NPTS, 0);
    int out = 0;
    for (size_t i = 0; i < NPTS; i++) {
        double r = hypot(x[2 * i], x[2 * i + 1]);
        out += r < 0.7 - 1e-6 || r > 1.2 + 1e-6;
    }
    CHECK_EQ(out, 0);
    free(x);

    // checkerboard (no noise): every point on a dark cell, all 8 dark cells used.
    x = batch("checkerboard", 2, NPTS, 0);
    int light = 0, cells[16] = {0};
    for (size_t i = 0; i < NPTS; i++) {
        int cx = (int)floor((x[2 * i] + 1.5) / 0.75), cy = (int)floor((x[2 * i + 1] + 1.5) / 0.75);
        if (cx < 0 || cx > 3 || cy < 0 || cy > 3 || (cx + cy) % 2) light++;
        else cells[cy * 4 + cx]++;
    }
    CHECK_EQ(light, 0);
    for (int k = 0; k < 16; k++) CHECK((((k / 4) + (k % 4)) % 2 == 0) == (cells[k] > 0));
    free(x);

    // noise=0 makes the spiral a clean curve: r grows with the angle, one arm.
    x = batch("spiral:noise=0", 3, 200, 0);
    for (size_t i = 0; i < 200; i++) {
        double r = hypot(x[2 * i] - 0.272, x[2 * i + 1] + 0.275);
        CHECK(r <= 1.671);
    }
    free(x);
}

static void test_fixed_set(void) {
    dcl_dataset *ds = open_ok("spiral:n=40", 5), *same = open_ok("spiral:n=40", 5);
    dcl_dataset *other = open_ok("spiral:n=40", 6);
    if (!ds || !same || !other) return;
    CHECK_EQ(dcl_dataset_size(ds), 40);
    CHECK_EQ(dcl_dataset_dim(ds), 2);
    CHECK(strcmp(dcl_dataset_spec(ds), "spiral:n=40") == 0);
    const float *pts = dcl_dataset_points(ds);
    CHECK(pts != NULL);
    CHECK(memcmp(pts, dcl_dataset_points(same), 40 * 2 * sizeof(float)) == 0);
    CHECK(memcmp(pts, dcl_dataset_points(other), 40 * 2 * sizeof(float)) != 0);

    enum { B = 300 };
    float x[B * 2], y[B * 2], f[B * 2];
    int used[40] = {0}, strangers = 0;
    for (uint64_t step = 0; step < 4; step++) {
        CHECK_EQ(dcl_dataset_batch(ds, x, B, step), DCL_OK);
        for (int i = 0; i < B; i++) {
            int k = 0;
            while (k < 40 && memcmp(x + 2 * i, pts + 2 * k, 2 * sizeof(float)) != 0) k++;
            if (k == 40) strangers++;
            else used[k] = 1;
        }
    }
    CHECK_EQ(strangers, 0);
    int n_used = 0;
    for (int k = 0; k < 40; k++) n_used += used[k];
    CHECK_EQ(n_used, 40); // 1200 draws with replacement reach every point
    CHECK_EQ(dcl_dataset_batch(ds, y, B, 3), DCL_OK);
    CHECK(memcmp(x, y, sizeof x) == 0); // step 3 again

    // Evaluation points are fresh spiral points, not training points, and differ by salt.
    CHECK_EQ(dcl_dataset_fresh(ds, f, B, 0), DCL_OK);
    strangers = 0;
    for (int i = 0; i < B; i++) {
        int k = 0;
        while (k < 40 && memcmp(f + 2 * i, pts + 2 * k, 2 * sizeof(float)) != 0) k++;
        strangers += k == 40;
    }
    CHECK_EQ(strangers, B);
    CHECK_EQ(dcl_dataset_fresh(ds, y, B, 1), DCL_OK);
    CHECK(memcmp(f, y, sizeof f) != 0);
    CHECK_EQ(dcl_dataset_fresh(ds, y, B, 0), DCL_OK);
    CHECK(memcmp(f, y, sizeof f) == 0);

    CHECK_EQ(dcl_dataset_batch(ds, x, B, (uint64_t)DCL_DATA_MAX_STEP + 1), DCL_ERR_ARG);
    CHECK_EQ(dcl_dataset_fresh(ds, x, B, (uint64_t)DCL_DATA_MAX_SALT + 1), DCL_ERR_ARG);
    dcl_dataset_free(ds), dcl_dataset_free(same), dcl_dataset_free(other);

    // A fresh set: fresh() differs from every batch of the same size.
    ds = open_ok("moons", 5);
    if (!ds) return;
    CHECK_EQ(dcl_dataset_size(ds), 0);
    CHECK(dcl_dataset_points(ds) == NULL);
    CHECK_EQ(dcl_dataset_fresh(ds, f, B, 0), DCL_OK);
    CHECK_EQ(dcl_dataset_batch(ds, x, B, 0), DCL_OK);
    CHECK(memcmp(f, x, sizeof f) != 0);
    dcl_dataset_free(ds);
}

static void test_specs(void) {
    expect_open_error("spirl", DCL_ERR_ARG, "unknown dataset 'spirl'; built-in: spiral, moons");
    expect_open_error("spirl", DCL_ERR_ARG, "csv:PATH");
    expect_open_error("", DCL_ERR_ARG, "built-in");
    expect_open_error("spiral:m=3", DCL_ERR_ARG, "unknown option 'm'");
    expect_open_error("spiral:m=3", DCL_ERR_ARG, "n=N");
    expect_open_error("spiral:n=0", DCL_ERR_ARG, "n must be");
    expect_open_error("spiral:n=-4", DCL_ERR_ARG, "n must be");
    expect_open_error("spiral:n=4x", DCL_ERR_ARG, "'4x'");
    expect_open_error("spiral:n", DCL_ERR_ARG, "needs a value");
    expect_open_error("spiral:", DCL_ERR_ARG, "nothing after");
    expect_open_error("spiral:noise=-1", DCL_ERR_ARG, "noise must be");
    expect_open_error("spiral:noise=nan", DCL_ERR_ARG, "noise must be");
    expect_open_error("csv:", DCL_ERR_ARG, "csv:PATH");
    // The image sets (tests/test_image_data.c) are listed too.
    expect_open_error("spirl", DCL_ERR_ARG, "fashion-mnist, idx:IMAGES[,LABELS], png:FOLDER");
    expect_open_error("fashion-mnist:n=0", DCL_ERR_ARG, "n must be");
    expect_open_error("idx:", DCL_ERR_ARG, "idx:IMAGES");
    // Every listed name opens.
    for (int i = 0; i < N_BUILTIN; i++) dcl_dataset_free(open_ok(builtin[i], 0));
    dcl_dataset *ds = open_ok("gmm8:n=100,noise=0.01", 0);
    if (ds) CHECK_EQ(dcl_dataset_size(ds), 100);
    dcl_dataset_free(ds);
}

// ---- CSV -----------------------------------------------------------------------------------

static void write_file(const char *path, const char *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

// Opens csv:<tmpdir>/<name> with the given content.
static dcl_status open_csv(const char *name, const char *content, size_t len, dcl_dataset **ds) {
    char path[512], spec[520];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (content) write_file(path, content, len);
    snprintf(spec, sizeof spec, "csv:%s", path);
    *ds = NULL;
    dcl_clear_error();
    return dcl_dataset_open(ds, spec, 0);
}

static void check_csv(const char *name, const char *content, size_t rows, size_t cols,
                      const float *want) {
    dcl_dataset *ds;
    dcl_status s = open_csv(name, content, strlen(content), &ds);
    if (s != DCL_OK) fprintf(stderr, "%s: %s\n", name, dcl_last_error());
    CHECK_EQ(s, DCL_OK);
    if (!ds) return;
    CHECK_EQ(dcl_dataset_size(ds), rows);
    CHECK_EQ(dcl_dataset_dim(ds), cols);
    const float *p = dcl_dataset_points(ds);
    for (size_t i = 0; p && i < rows * cols; i++) CHECK_NEAR(p[i], want[i], 0, 0);
    dcl_dataset_free(ds);
}

static void test_csv_good(void) {
    const float two[] = {1, 2, -3.5f, 4e-3f, 0, 1e30f};
    check_csv("plain.csv", "1,2\n-3.5,4e-3\n0,1e30\n", 3, 2, two);
    check_csv("header.csv", "x,y\n1,2\n-3.5,0.004\n0,1E+30", 3, 2, two);
    check_csv("messy.csv",
              "\xEF\xBB\xBF# made by hand\r\n  x0 , x1\r\n\r\n1 ,\t2\r\n# a comment\r\n"
              "-3.5, +4e-3\r\n   \r\n.0,1e30\r\n",
              3, 2, two);
    const float three[] = {1, 2, 3};
    check_csv("one-row.csv", "1,2,3", 1, 3, three);

    // What dcl_csv_write writes reads back bit for bit (%.9g round-trips a float).
    float pts[300];
    dcl_dataset *ds = open_ok("swissroll", 11);
    if (ds) CHECK_EQ(dcl_dataset_batch(ds, pts, 150, 0), DCL_OK);
    dcl_dataset_free(ds);
    pts[0] = 1.17549435e-38f, pts[1] = -3.40282347e38f, pts[2] = 1e-45f;
    char path[512], spec[520];
    snprintf(path, sizeof path, "%s/written.csv", tmpdir);
    CHECK_EQ(dcl_csv_write(path, pts, 150, 2), DCL_OK);
    snprintf(spec, sizeof spec, "csv:%s", path);
    ds = open_ok(spec, 0);
    if (ds) {
        CHECK_EQ(dcl_dataset_size(ds), 150);
        CHECK_EQ(dcl_dataset_dim(ds), 2);
        CHECK(memcmp(dcl_dataset_points(ds), pts, sizeof pts) == 0);
        float b[20];
        CHECK_EQ(dcl_dataset_batch(ds, b, 10, 0), DCL_OK);
        CHECK_EQ(dcl_dataset_fresh(ds, b, 10, 0), DCL_OK);
    }
    dcl_dataset_free(ds);
    FILE *f = fopen(path, "r");
    char head[16] = {0};
    if (f) {
        CHECK(fgets(head, sizeof head, f) != NULL);
        fclose(f);
    }
    CHECK(strcmp(head, "x0,x1\n") == 0);
    CHECK_EQ(dcl_csv_write("/nonexistent-dir/x.csv", pts, 1, 2), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), "/nonexistent-dir/x.csv") != NULL);
    remove(path);
}

static void test_csv_bad(void) {
    static const struct {
        const char *name, *content;
        dcl_status want;
        const char *needle;
    } bad[] = {
        {"ragged.csv", "1,2\n3,4\n5,6,7\n", DCL_ERR_FORMAT, "line 3: 3 columns, expected 2"},
        {"ragged-header.csv", "a,b,c\n1,2\n", DCL_ERR_FORMAT, "line 2: 2 columns, expected 3"},
        {"word.csv", "1,2\n3,abc\n", DCL_ERR_FORMAT, "line 2, column 2: not a number: 'abc'"},
        {"cr-only.csv", "1,2\r3,4\r", DCL_ERR_FORMAT, "not a number: '2\\x0d3' (a CR inside"},
        {"escape.csv", "1,\x1b[2J\n", DCL_ERR_FORMAT, "not a number: '\\x1b[2J'"},
        {"mixed-first.csv", "1,x\n", DCL_ERR_FORMAT, "line 1, column 2"},
        {"nan.csv", "x,y\n1,2\n\nnan,1\n", DCL_ERR_FORMAT, "line 4, column 1: NaN and Inf"},
        {"inf.csv", "1,-Infinity\n", DCL_ERR_FORMAT, "line 1, column 2: NaN and Inf"},
        {"overflow.csv", "1,2\n1e39,0\n", DCL_ERR_FORMAT, "line 2, column 1: out of the range"},
        {"hex.csv", "0x10,1\n", DCL_ERR_FORMAT, "line 1, column 1"},
        {"empty-field.csv", "1,,2\n", DCL_ERR_FORMAT, "line 1, column 2: empty field"},
        {"trailing-comma.csv", "1,2\n3,4,\n", DCL_ERR_FORMAT, "line 2: 3 columns"},
        {"decimal-comma.csv", "1;5\n", DCL_ERR_FORMAT, "line 1, column 1"},
        {"empty.csv", "", DCL_ERR_FORMAT, "no data rows"},
        {"blank.csv", "\n  \n# only a comment\n", DCL_ERR_FORMAT, "no data rows"},
        {"header-only.csv", "x,y\n", DCL_ERR_FORMAT, "only a header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dcl_dataset *ds;
        dcl_status s = open_csv(bad[i].name, bad[i].content, strlen(bad[i].content), &ds);
        CHECK_EQ(s, bad[i].want);
        CHECK(ds == NULL);
        if (!strstr(dcl_last_error(), bad[i].needle) || !strstr(dcl_last_error(), bad[i].name)) {
            fprintf(stderr, "%s: message '%s' lacks the file name or '%s'\n", bad[i].name,
                    dcl_last_error(), bad[i].needle);
            CHECK(!"CSV error names the file and line");
        }
        dcl_dataset_free(ds);
    }

    // A NUL byte, an overlong line, a missing file, a folder.
    dcl_dataset *ds;
    CHECK_EQ(open_csv("nul.csv", "1,2\n3\0,4\n", 9, &ds), DCL_ERR_FORMAT);
    CHECK(strstr(dcl_last_error(), "line 2: contains a NUL byte") != NULL);
    size_t big = DCL_CSV_MAX_LINE + 100;
    char *huge = malloc(big + 16);
    if (huge) {
        strcpy(huge, "1,2\n3,4\n");
        memset(huge + 8, '1', big);
        strcpy(huge + 8 + big, "\n5,6\n");
        CHECK_EQ(open_csv("huge.csv", huge, strlen(huge), &ds), DCL_ERR_FORMAT);
        CHECK(strstr(dcl_last_error(), "huge.csv line 3: longer than") != NULL);
        // The same without a final newline.
        huge[8 + big] = '\0';
        CHECK_EQ(open_csv("huge2.csv", huge, strlen(huge), &ds), DCL_ERR_FORMAT);
        CHECK(strstr(dcl_last_error(), "huge2.csv line 3: longer than") != NULL);
        free(huge);
    }
    CHECK_EQ(open_csv("missing.csv", NULL, 0, &ds), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), "missing.csv") != NULL);
    CHECK_EQ(open_csv("", NULL, 0, &ds), DCL_ERR_IO); // the folder itself
    CHECK(ds == NULL);
    if (!strstr(dcl_last_error(), tmpdir)) fprintf(stderr, "folder: '%s'\n", dcl_last_error());
    CHECK(strstr(dcl_last_error(), tmpdir) != NULL);
}

static void remove_tmpdir(void) {
    static const char *const names[] = {
        "plain.csv",       "header.csv",         "messy.csv",
        "one-row.csv",     "ragged.csv",         "ragged-header.csv",
        "word.csv",        "mixed-first.csv",    "nan.csv",
        "inf.csv",         "overflow.csv",       "hex.csv",
        "empty-field.csv", "trailing-comma.csv", "decimal-comma.csv",
        "empty.csv",       "blank.csv",          "header-only.csv",
        "nul.csv",         "huge.csv",           "huge2.csv"};
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        remove(path);
    }
    rmdir(tmpdir);
}

int main(void) {
    if (!check_tmpdir(tmpdir, sizeof tmpdir, "diffcl-test-data")) return 1;
    test_reproducible();
    test_shapes();
    test_fixed_set();
    test_specs();
    test_csv_good();
    test_csv_bad();
    remove_tmpdir();
    return check_exit();
}
