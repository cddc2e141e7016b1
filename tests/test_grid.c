// Sample grids: a grid written by dcl_image_grid_write is read back with libpng; its size follows
// the formula of diffcl/image.h (columns, padding, scale, row labels) and pixels hold the images'
// values (clamped, rounded, grey repeated), the white padding and the black label text.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "testlib_png.h" // read_png, image
#include "diffcl/image.h"
#include "diffcl/status.h"

static char tmpdir[256];

static const unsigned char *at(const image *im, int x, int y) {
    return im->rgb + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
}

static int is_grey(const unsigned char *p, int v) { return p[0] == v && p[1] == v && p[2] == v; }

// The size diffcl/image.h promises.
static void expected_size(size_t N, int H, int W, int cols, int pad, int scale, int longest,
                          int labelled, int *w, int *h) {
    int rows = (int)((N + (size_t)cols - 1) / (size_t)cols);
    int t = H * scale / 21;
    t = t < 1 ? 1 : t > 4 ? 4 : t;
    int L = labelled ? pad + 6 * t * longest : 0;
    *w = L + cols * W * scale + (cols + 1) * pad;
    *h = rows * H * scale + (rows + 1) * pad;
}

static void test_grey_grid(void) {
    enum { N = 5, H = 3, W = 2, COLS = 3, PAD = 1, SCALE = 2 };
    float x[N * H * W];
    for (int i = 0; i < N * H * W; i++) x[i] = -1.0f + 2.0f * (float)i / (N * H * W - 1);
    x[0] = 0.0f;  // 127.5 + 0.5 -> 128
    x[1] = 2.0f;  // clamped to 255
    x[2] = -3.0f; // clamped to 0
    x[3] = NAN;   // drawn as -1
    x[6] = 1.0f;  // image 1, pixel (0, 0)
    char path[300];
    snprintf(path, sizeof path, "%s/grey.png", tmpdir);
    CHECK_EQ(dcl_image_grid_write(path, x, N, 1, H, W, COLS, PAD, SCALE, NULL, 0), DCL_OK);
    image im = read_png(path);
    CHECK(im.rgb != NULL);
    if (!im.rgb) return;
    int w, h;
    expected_size(N, H, W, COLS, PAD, SCALE, 0, 0, &w, &h);
    CHECK_EQ(im.w, w);
    CHECK_EQ(im.h, h);
    CHECK_EQ(w, 3 * 4 + 4);
    CHECK_EQ(h, 2 * 6 + 3);
    CHECK(is_grey(at(&im, 0, 0), 255)); // padding
    // Image 0 starts at (1, 1); each pixel is 2 x 2.
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            CHECK(is_grey(at(&im, 1 + dx, 1 + dy), 128)); // x = 0
            CHECK(is_grey(at(&im, 3 + dx, 1 + dy), 255)); // x = 2 clamped
            CHECK(is_grey(at(&im, 1 + dx, 3 + dy), 0));   // x = -3 clamped
            CHECK(is_grey(at(&im, 3 + dx, 3 + dy), 0));   // NaN
        }
    CHECK(is_grey(at(&im, 5, 1), 255)); // padding between columns
    CHECK(is_grey(at(&im, 6, 1), 255)); // image 1, pixel (0, 0) = 1
    // Image 4 (row 1, column 1) pixel (2, 1) at x = 1 + 5 + 2, y = 1 + 7 + 4.
    float v = x[4 * H * W + 2 * W + 1];
    int want = (int)floor((v + 1.0) / 2.0 * 255.0 + 0.5);
    CHECK(is_grey(at(&im, 1 + 5 + 2 + 1, 1 + 7 + 4 + 1), want));
    // The sixth cell (row 1, column 2) is empty: white.
    for (int y = 8; y < 14; y++)
        for (int xx = 11; xx < 15; xx++) CHECK(is_grey(at(&im, xx, y), 255));
    free(im.rgb);
}

static void test_rgb_labels(void) {
    enum { N = 4, C = 3, H = 28, W = 28, COLS = 2, PAD = 2, SCALE = 1 };
    float *x = malloc(N * C * H * W * sizeof *x);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < H * W; p++)
                x[((i * C) + c) * H * W + p] = c == i % 3 ? 1.0f : -1.0f;
    const char *labels[2] = {"cat 7", NULL};
    char path[300];
    snprintf(path, sizeof path, "%s/rgb.png", tmpdir);
    CHECK_EQ(dcl_image_grid_write(path, x, N, C, H, W, COLS, PAD, SCALE, labels, 2), DCL_OK);
    image im = read_png(path);
    CHECK(im.rgb != NULL);
    if (im.rgb) {
        int w, h;
        expected_size(N, H, W, COLS, PAD, SCALE, 5, 1, &w, &h);
        CHECK_EQ(im.w, w);
        CHECK_EQ(im.h, h);
        int L = PAD + 6 * 1 * 5; // t = 28 / 21 = 1
        // Image 0 is pure red, image 1 green, image 2 blue (row 1).
        const unsigned char *p0 = at(&im, L + PAD + 5, PAD + 5);
        CHECK(p0[0] == 255 && p0[1] == 0 && p0[2] == 0);
        const unsigned char *p1 = at(&im, L + 2 * PAD + W + 5, PAD + 5);
        CHECK(p1[0] == 0 && p1[1] == 255 && p1[2] == 0);
        const unsigned char *p2 = at(&im, L + PAD + 5, 2 * PAD + H + 5);
        CHECK(p2[0] == 0 && p2[1] == 0 && p2[2] == 255);
        // Row 0's label has black pixels left of the images; row 1 (no label) has none.
        int black0 = 0, black1 = 0;
        for (int y = 0; y < im.h; y++)
            for (int xx = 0; xx < L; xx++) {
                if (!is_grey(at(&im, xx, y), 0)) continue;
                if (y < PAD + H) black0++;
                else black1++;
            }
        CHECK(black0 > 20);
        CHECK_EQ(black1, 0);
        free(im.rgb);
    }
    // Larger scale: t grows, and so does the label column.
    snprintf(path, sizeof path, "%s/rgb3.png", tmpdir);
    CHECK_EQ(dcl_image_grid_write(path, x, N, C, H, W, COLS, PAD, 3, labels, 2), DCL_OK);
    im = read_png(path);
    if (im.rgb) {
        int w, h;
        expected_size(N, H, W, COLS, PAD, 3, 5, 1, &w, &h);
        CHECK_EQ(im.w, w);
        CHECK_EQ(im.h, h);
        CHECK_EQ(w, PAD + 6 * 4 * 5 + 2 * 84 + 3 * PAD);
        free(im.rgb);
    }
    free(x);
}

// p / 127.5 - 1 comes back as p.
static void test_round_trip(void) {
    float x[256];
    for (int p = 0; p < 256; p++) x[p] = (float)((double)p / 127.5 - 1.0);
    char path[300];
    snprintf(path, sizeof path, "%s/ramp.png", tmpdir);
    CHECK_EQ(dcl_image_grid_write(path, x, 1, 1, 16, 16, 1, 0, 1, NULL, 0), DCL_OK);
    image im = read_png(path);
    if (!im.rgb) return;
    CHECK_EQ(im.w, 16);
    CHECK_EQ(im.h, 16);
    for (int p = 0; p < 256; p++) CHECK(is_grey(at(&im, p % 16, p / 16), p));
    free(im.rgb);
}

static void test_errors(void) {
    float x[12] = {0};
    char path[300];
    snprintf(path, sizeof path, "%s/bad.png", tmpdir);
    const char *labels[3] = {"a", "b", "c"};
    CHECK_EQ(dcl_image_grid_write(path, x, 4, 1, 1, 3, 2, 1, 1, labels, 3), DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "3 row labels for a grid of 2 rows") != NULL);
    CHECK_EQ(dcl_image_grid_write(path, x, 2, 2, 1, 3, 2, 1, 1, NULL, 0), DCL_ERR_ARG);
    CHECK_EQ(dcl_image_grid_write(path, x, 0, 1, 1, 3, 2, 1, 1, NULL, 0), DCL_ERR_ARG);
    CHECK_EQ(dcl_image_grid_write(path, x, 1, 1, 1, 3, 0, 1, 1, NULL, 0), DCL_ERR_ARG);
    CHECK_EQ(dcl_image_grid_write(path, x, 1, 1, 1, 3, 1, -1, 1, NULL, 0), DCL_ERR_ARG);
    CHECK_EQ(dcl_image_grid_write(path, x, 1, 1, 1, 3, 1, 1, 0, NULL, 0), DCL_ERR_ARG);
    CHECK_EQ(dcl_image_grid_write(path, x, 1, 1, 1, 3, 1, 1, 20000, NULL, 0), DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "16384") != NULL);
    CHECK(access(path, F_OK) != 0); // nothing written
    snprintf(path, sizeof path, "%s/no-such-folder/grid.png", tmpdir);
    CHECK_EQ(dcl_image_grid_write(path, x, 4, 1, 1, 3, 2, 1, 1, NULL, 0), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), "no-such-folder") != NULL);
}

int main(void) {
    if (!check_tmpdir(tmpdir, sizeof tmpdir, "diffcl-grid")) return 1;
    test_grey_grid();
    test_rgb_labels();
    test_round_trip();
    test_errors();
    const char *names[] = {"grey.png", "rgb.png", "rgb3.png", "ramp.png"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return check_exit();
}
