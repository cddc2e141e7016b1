// Plots and PNG output: each plot type is written into a temp folder, read back with libpng, and
// checked for its size and for pixels of the expected colours where the data should be; writing to
// a path that cannot be written fails cleanly with the path in the message.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "testlib_png.h" // read_png, image
#include "diffcl/plot.h"
#include "diffcl/status.h"

static char tmpdir[256];

static void path_of(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

typedef int (*color_test)(const unsigned char *px);

static int is_blue(const unsigned char *p) { return p[2] > p[0] + 40 && p[2] > p[1] + 15; }
static int is_orange(const unsigned char *p) { return p[0] > 200 && p[0] > p[2] + 100; }
static int is_ink(const unsigned char *p) { return p[0] < 90 && p[1] < 90 && p[2] < 90; }
// Yellow, also when blended half-way into white.
static int is_yellow(const unsigned char *p) {
    return p[0] > 180 && p[1] > 180 && p[2] < p[0] - 60;
}
static int is_purple(const unsigned char *p) { return p[0] < 110 && p[1] < 60 && p[2] > 70; }
static int is_white(const unsigned char *p) { return p[0] == 255 && p[1] == 255 && p[2] == 255; }

// Pixels in [x0, x1) × [y0, y1) that pass the colour test.
static int count(const image *im, int x0, int y0, int x1, int y1, color_test ok) {
    int n = 0;
    for (int y = y0; y < y1 && y < im->h; y++)
        for (int x = x0; x < x1 && x < im->w; x++) n += ok(im->rgb + ((size_t)y * im->w + x) * 3);
    return n;
}

static void test_scatter(void) {
    // Data: a ring of radius 1; samples: a tight blob at (0.5, 0.5).
    enum { ND = 2000, NS = 300 };
    static float data[ND * 2], samples[NS * 2];
    for (int i = 0; i < ND; i++) {
        double a = 2 * 3.14159265358979 * i / ND;
        data[2 * i] = (float)cos(a), data[2 * i + 1] = (float)sin(a);
    }
    for (int i = 0; i < NS; i++) {
        samples[2 * i] = 0.5f + 0.02f * (float)((i % 17) - 8) / 8;
        samples[2 * i + 1] = 0.5f + 0.02f * (float)((i % 13) - 6) / 6;
    }
    samples[0] = 50.0f; // off the plot: counted, not drawn
    char path[512];
    path_of(path, sizeof path, "scatter.png");
    dcl_status s = dcl_plot_scatter(path, "ring and blob", data, ND, samples, NS);
    if (s != DCL_OK) fprintf(stderr, "scatter: %s\n", dcl_last_error());
    CHECK_EQ(s, DCL_OK);
    image im = read_png(path);
    CHECK(im.rgb != NULL);
    if (!im.rgb) return;
    CHECK_EQ(im.w, 640);
    CHECK_EQ(im.h, 640);
    // The plot area spans about x 64..620, y 64..588 with (0, 0) near its centre and the ring
    // filling most of it: blue on the ring, orange up and right of the centre, none in the middle.
    int cx = (64 + 620) / 2, cy = (64 + 588) / 2;
    CHECK(count(&im, 64, 64, 620, 588, is_blue) > 1000);
    CHECK(count(&im, cx + 60, cy - 200, cx + 200, cy - 60, is_orange) > 20);
    CHECK_EQ(count(&im, cx - 200, 64, cx, 588, is_orange), 0);
    CHECK_EQ(count(&im, cx - 40, cy - 40, cx + 40, cy + 40, is_blue), 0);
    CHECK(count(&im, 0, 0, 640, 30, is_ink) > 50);     // the title
    CHECK(count(&im, 0, 30, 640, 56, is_orange) > 10); // the legend's sample marker
    CHECK(count(&im, 0, 589, 640, 640, is_ink) > 50);  // x tick labels
    free(im.rgb);

    // Only samples, or nothing at all, still make a plot.
    CHECK_EQ(dcl_plot_scatter(path, NULL, NULL, 0, samples, NS), DCL_OK);
    CHECK_EQ(dcl_plot_scatter(path, "", NULL, 0, NULL, 0), DCL_OK);
    CHECK_EQ(dcl_plot_scatter(path, "x", NULL, 5, NULL, 0), DCL_ERR_ARG);
    remove(path);
}

static void test_trajectories(void) {
    // N paths from a spread-out start (t = 1) straight to two points (t = 0) in K steps.
    enum { K = 20, N = 60 };
    static float traj[(K + 1) * N * 2];
    double t[K + 1];
    for (int k = 0; k <= K; k++) {
        t[k] = 1.0 - (double)k / K;
        for (int p = 0; p < N; p++) {
            double a = 2 * 3.14159265358979 * p / N, x1 = 2 * cos(a), y1 = 2 * sin(a);
            double x0 = p % 2 ? 0.5 : -0.5, y0 = 0;
            traj[(k * N + p) * 2] = (float)(t[k] * x1 + (1 - t[k]) * x0);
            traj[(k * N + p) * 2 + 1] = (float)(t[k] * y1 + (1 - t[k]) * y0);
        }
    }
    char path[512];
    path_of(path, sizeof path, "traj.png");
    dcl_status s = dcl_plot_trajectories(path, "paths", traj, t, K, N, N);
    if (s != DCL_OK) fprintf(stderr, "trajectories: %s\n", dcl_last_error());
    CHECK_EQ(s, DCL_OK);
    image im = read_png(path);
    CHECK(im.rgb != NULL);
    if (!im.rgb) return;
    CHECK_EQ(im.w, 720);
    CHECK_EQ(im.h, 640);
    // Plot area about x 64..604, y 56..588; the colour bar right of it goes from yellow (t = 1)
    // at the top to purple (t = 0) at the bottom; the path ends (t = 0, purple) lie near the centre.
    int cx = (64 + 604) / 2, cy = (56 + 588) / 2;
    CHECK(count(&im, 610, 56, 700, 90, is_yellow) > 50);
    CHECK(count(&im, 610, 555, 700, 588, is_purple) > 50);
    CHECK(count(&im, cx - 80, cy - 20, cx + 80, cy + 20, is_purple) > 20);
    CHECK(count(&im, 64, 56, 604, 588, is_yellow) > 20); // the starts
    free(im.rgb);

    CHECK_EQ(dcl_plot_trajectories(path, "x", traj, t, K, N, 0), DCL_ERR_ARG);
    CHECK_EQ(dcl_plot_trajectories(path, "x", NULL, t, K, N, 5), DCL_ERR_ARG);
    remove(path);
}

static void test_curve(void) {
    enum { N = 500 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i * 10), y[i] = (float)(2.0 * exp(-i / 80.0) + 0.01);
    y[17] = NAN; // a gap, not a failure
    char path[512];
    path_of(path, sizeof path, "curve.png");
    for (int log_y = 0; log_y <= 1; log_y++) {
        dcl_status s = dcl_plot_curve(path, "loss", "step", "loss", x, y, N, log_y);
        if (s != DCL_OK) fprintf(stderr, "curve: %s\n", dcl_last_error());
        CHECK_EQ(s, DCL_OK);
        image im = read_png(path);
        CHECK(im.rgb != NULL);
        if (!im.rgb) continue;
        CHECK_EQ(im.w, 800);
        CHECK_EQ(im.h, 500);
        // Plot area about x 100..776, y 48..440: the curve starts high at the left and ends low
        // at the right; the y label is left of the tick labels.
        CHECK(count(&im, 100, 48, 140, 110, is_blue) > 5);
        CHECK(count(&im, 700, 380, 776, 440, is_blue) > 5);
        CHECK_EQ(count(&im, 700, 48, 776, 200, is_blue), 0);
        CHECK(count(&im, 0, 150, 30, 350, is_ink) > 20);
        CHECK(count(&im, 100, 48, 776, 440, is_white) > 100000);
        free(im.rgb);
    }
    // One point, a flat line; nothing positive on a log axis is an error.
    float one = 3, zero = 0;
    CHECK_EQ(dcl_plot_curve(path, "one", "x", "y", &one, &one, 1, 1), DCL_OK);
    float flat[3] = {1, 1, 1};
    CHECK_EQ(dcl_plot_curve(path, "flat", "x", "y", x, flat, 3, 0), DCL_OK);
    CHECK_EQ(dcl_plot_curve(path, "zero", "x", "y", &one, &zero, 1, 1), DCL_ERR_ARG);
    remove(path);
}

// Two stacked panels: the first with a rising blue series and a flat orange one (both labelled,
// so a legend at its top right), the second with a falling blue series.
static void test_panels(void) {
    float x[5] = {0, 1, 2, 3, 5}, up[5] = {1, 2, 3, 4, 6}, flat[5] = {2, 2, 2, 2, 2},
          down[5] = {90, 70, 50, 30, 10};
    dcl_plot_series top[2] = {{"rising", x, up, 5}, {"floor", x, flat, 5}};
    dcl_plot_series bottom = {NULL, x, down, 5};
    dcl_plot_panel panels[2] = {{"distance", top, 2, 0}, {"accuracy", &bottom, 1, 0}};
    char path[512];
    path_of(path, sizeof path, "panels.png");
    dcl_status s = dcl_plot_panels(path, "sweep", "guidance", panels, 2);
    if (s != DCL_OK) fprintf(stderr, "panels: %s\n", dcl_last_error());
    CHECK_EQ(s, DCL_OK);
    image im = read_png(path);
    CHECK(im.rgb != NULL);
    if (im.rgb) {
        // Areas: x 100..776; y 48..348 (first panel), 436..736 (second).
        CHECK_EQ(im.w, 800);
        CHECK_EQ(im.h, 48 + 2 * (300 + 60) + 28);
        CHECK(count(&im, 100, 48, 776, 348, is_orange) > 100); // the floor and its legend dot
        CHECK(count(&im, 100, 436, 776, 736, is_orange) == 0); // no orange series below
        CHECK(count(&im, 110, 436, 200, 520, is_blue) > 5);    // falling: high at the left
        CHECK(count(&im, 680, 640, 776, 736, is_blue) > 5);    // and low at the right
        CHECK(count(&im, 600, 50, 776, 100, is_ink) > 40);     // the legend's text
        CHECK(count(&im, 0, 436, 30, 736, is_ink) > 20);       // the second y label
        free(im.rgb);
    }
    CHECK_EQ(dcl_plot_panels(path, "none", "x", panels, 0), DCL_ERR_ARG);
    float nan_y[1] = {NAN};
    dcl_plot_series empty = {NULL, x, nan_y, 1};
    dcl_plot_panel bad = {"y", &empty, 1, 0};
    CHECK_EQ(dcl_plot_panels(path, "nan", "x", &bad, 1), DCL_ERR_ARG);
    remove(path);
}

static void test_png_errors(void) {
    unsigned char rgb[4 * 3 * 3] = {0};
    rgb[0] = 255;
    char path[512];
    path_of(path, sizeof path, "tiny.png");
    CHECK_EQ(dcl_png_write_rgb(path, rgb, 4, 3), DCL_OK);
    image im = read_png(path);
    CHECK(im.rgb && im.w == 4 && im.h == 3 && im.rgb[0] == 255 && im.rgb[1] == 0);
    free(im.rgb);
    remove(path);

    dcl_clear_error();
    CHECK_EQ(dcl_png_write_rgb("/nonexistent-dir/x.png", rgb, 4, 3), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), "/nonexistent-dir/x.png") != NULL);
    CHECK_EQ(dcl_plot_scatter("/nonexistent-dir/s.png", "t", NULL, 0, NULL, 0), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), "/nonexistent-dir/s.png") != NULL);
    // A folder where the file should go.
    CHECK_EQ(dcl_png_write_rgb(tmpdir, rgb, 4, 3), DCL_ERR_IO);
    CHECK_EQ(dcl_png_write_rgb(path, rgb, 0, 3), DCL_ERR_ARG);
    CHECK_EQ(dcl_png_write_rgb(path, NULL, 4, 3), DCL_ERR_ARG);
    CHECK(access(path, F_OK) != 0); // nothing was left behind
}

int main(void) {
    if (!check_tmpdir(tmpdir, sizeof tmpdir, "diffcl-test-plot")) return 1;
    test_scatter();
    test_trajectories();
    test_curve();
    test_panels();
    test_png_errors();
    rmdir(tmpdir);
    return check_exit();
}
