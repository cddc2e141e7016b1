// Sample grids (diffcl/image.h): images in [-1, 1] tiled with padding into an RGB canvas, row
// labels in the embedded font, written through the atomic PNG writer.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"   // dcl__fail
#include "diffcl/image.h" // dcl_image_grid_write
#include "diffcl/plot.h"  // dcl_png_write_rgb
#include "io/font.h"      // dcl__font_glyph, DCL_FONT_W, DCL_FONT_H

// The PNG writer's limit per side (host/io/png.c).
#define GRID_MAX_SIDE 16384

// v in [-1, 1] to a byte: clamped, NaN as -1, rounded to nearest.
static unsigned char to_byte(float v) {
    double u = ((double)v + 1.0) * 0.5;
    if (!(u > 0.0)) return 0; // also NaN
    if (u >= 1.0) return 255;
    return (unsigned char)(u * 255.0 + 0.5);
}

static size_t label_len(const char *s) {
    size_t n = s ? strlen(s) : 0;
    return n > DCL_GRID_MAX_LABEL ? DCL_GRID_MAX_LABEL : n;
}

// Draws the first len characters of s in black at (x, y), each font pixel t × t.
static void draw_text(unsigned char *rgb, int w, int h, int x, int y, const char *s, size_t len,
                      int t) {
    for (size_t i = 0; i < len; i++) {
        const unsigned char *g = dcl__font_glyph((unsigned char)s[i]);
        int cx = x + (int)i * (DCL_FONT_W + 1) * t;
        for (int r = 0; r < DCL_FONT_H; r++)
            for (int k = 0; k < DCL_FONT_W; k++) {
                if (!(g[r] >> (DCL_FONT_W - 1 - k) & 1)) continue;
                for (int dy = 0; dy < t; dy++)
                    for (int dx = 0; dx < t; dx++) {
                        int px = cx + k * t + dx, py = y + r * t + dy;
                        if (px < 0 || py < 0 || px >= w || py >= h) continue;
                        memset(rgb + ((size_t)py * (size_t)w + (size_t)px) * 3, 0, 3);
                    }
            }
    }
}

dcl_status dcl_image_grid_write(const char *path, const float *x, size_t N, int C, int H, int W,
                                int cols, int pad, int scale, const char *const *row_labels,
                                int n_rows) {
    if (!path || !*path) return dcl__fail(DCL_ERR_ARG, "image grid output needs a file name");
    if (N == 0 || !x) return dcl__fail(DCL_ERR_ARG, "writing %s: no images to tile", path);
    if (C != 1 && C != 3)
        return dcl__fail(DCL_ERR_ARG, "writing %s: images need 1 or 3 channels, got %d", path, C);
    if (H < 1 || W < 1 || cols < 1 || pad < 0 || scale < 1)
        return dcl__fail(DCL_ERR_ARG,
                         "writing %s: bad grid (H %d, W %d, cols %d, pad %d, scale %d): sizes, "
                         "cols and scale must be >= 1, pad >= 0",
                         path, H, W, cols, pad, scale);
    uint64_t rows = (N + (uint64_t)cols - 1) / (uint64_t)cols;
    if (row_labels && (uint64_t)n_rows != rows)
        return dcl__fail(DCL_ERR_ARG, "writing %s: %d row labels for a grid of %llu rows", path,
                         n_rows, (unsigned long long)rows);
    // Every factor below is checked against GRID_MAX_SIDE before it is multiplied further.
    if (H > GRID_MAX_SIDE || W > GRID_MAX_SIDE || scale > GRID_MAX_SIDE || pad > GRID_MAX_SIDE ||
        cols > GRID_MAX_SIDE || rows > GRID_MAX_SIDE)
        return dcl__fail(DCL_ERR_ARG, "writing %s: grid larger than %d pixels per side", path,
                         GRID_MAX_SIDE);
    int64_t cell_w = (int64_t)W * scale, cell_h = (int64_t)H * scale;
    int64_t t = cell_h / (3 * DCL_FONT_H); // text a third of the row height
    t = t < 1 ? 1 : t > 4 ? 4 : t;
    size_t longest = 0;
    for (int r = 0; row_labels && r < n_rows; r++) {
        size_t n = label_len(row_labels[r]);
        if (n > longest) longest = n;
    }
    int64_t label_w = row_labels ? pad + (int64_t)(DCL_FONT_W + 1) * t * (int64_t)longest : 0;
    int64_t w = label_w + cols * cell_w + (int64_t)(cols + 1) * pad;
    int64_t h = (int64_t)rows * cell_h + (int64_t)(rows + 1) * pad;
    if (w > GRID_MAX_SIDE || h > GRID_MAX_SIDE)
        return dcl__fail(DCL_ERR_ARG,
                         "writing %s: a grid of %llu x %d images of %dx%d at scale %d is %lldx%lld "
                         "pixels, more than %d per side",
                         path, (unsigned long long)rows, cols, W, H, scale, (long long)w,
                         (long long)h, GRID_MAX_SIDE);
    unsigned char *rgb = malloc((size_t)w * (size_t)h * 3);
    if (!rgb) return dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path);
    memset(rgb, 255, (size_t)w * (size_t)h * 3);
    size_t HW = (size_t)H * (size_t)W;
    for (size_t i = 0; i < N; i++) {
        const float *img = x + i * (size_t)C * HW; // (C, H, W)
        int64_t x0 = label_w + pad + (int64_t)(i % (size_t)cols) * (cell_w + pad);
        int64_t y0 = pad + (int64_t)(i / (size_t)cols) * (cell_h + pad);
        for (int64_t py = 0; py < cell_h; py++) {
            unsigned char *row = rgb + ((size_t)(y0 + py) * (size_t)w + (size_t)x0) * 3;
            size_t src = (size_t)(py / scale) * (size_t)W;
            for (int64_t px = 0; px < cell_w; px++) {
                size_t p = src + (size_t)(px / scale);
                for (int c = 0; c < 3; c++)
                    row[px * 3 + c] = to_byte(img[(C == 3 ? (size_t)c * HW : 0) + p]);
            }
        }
    }
    for (int r = 0; row_labels && r < n_rows; r++) {
        size_t n = label_len(row_labels[r]);
        if (n == 0) continue;
        int64_t y0 = pad + r * (cell_h + pad) + (cell_h - DCL_FONT_H * t) / 2;
        draw_text(rgb, (int)w, (int)h, (int)pad, (int)y0, row_labels[r], n, (int)t);
    }
    dcl_status s = dcl_png_write_rgb(path, rgb, (int)w, (int)h);
    free(rgb);
    return s;
}
