// PNG plots drawn on a small RGB raster: anti-aliased dots and lines, axes with "nice" numeric
// ticks (linear or log), a title, a legend or a colour bar, text in the embedded 5x7 font.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"  // dcl__fail
#include "diffcl/plot.h" // dcl_png_write_rgb
#include "io/font.h"     // dcl__font_glyph, DCL_FONT_W, DCL_FONT_H

typedef struct rgb {
    unsigned char r, g, b;
} rgb;

static const rgb INK = {40, 40, 40}, GRID = {232, 232, 232}, FRAME = {120, 120, 120},
                 DATA_COLOR = {90, 120, 170}, SAMPLE_COLOR = {240, 120, 20};

// Text is the 5x7 font at twice its size: 12 px per character, 14 px tall.
#define TEXT_SCALE 2
#define CHAR_W ((DCL_FONT_W + 1) * TEXT_SCALE)
#define TEXT_H (DCL_FONT_H * TEXT_SCALE)
#define MAX_TICKS 32

typedef struct canvas {
    int w, h;
    unsigned char *px;             // (h, w, 3)
    int x0, y0, x1, y1;            // the plot area [x0, x1) × [y0, y1) in pixels
    int cx0, cy0, cx1, cy1;        // drawing is clipped to this rectangle
    double xmin, xmax, ymin, ymax; // the data range of the plot area (log10 of y when log_y)
    int log_y;
} canvas;

static dcl_status canvas_init(canvas *c, int w, int h, int left, int top, int right, int bottom) {
    memset(c, 0, sizeof *c);
    c->px = malloc((size_t)w * (size_t)h * 3);
    if (!c->px) return dcl__fail(DCL_ERR_NOMEM, "plot: out of memory for a %dx%d image", w, h);
    memset(c->px, 255, (size_t)w * (size_t)h * 3);
    c->w = w, c->h = h;
    c->x0 = left, c->y0 = top, c->x1 = w - right, c->y1 = h - bottom;
    c->cx1 = w, c->cy1 = h;
    return DCL_OK;
}

static void clip_to_area(canvas *c, int on) {
    c->cx0 = on ? c->x0 : 0, c->cy0 = on ? c->y0 : 0;
    c->cx1 = on ? c->x1 : c->w, c->cy1 = on ? c->y1 : c->h;
}

// Mixes colour col with opacity a (0..1) into pixel (x, y), if inside the clip rectangle.
static void blend(canvas *c, int x, int y, rgb col, double a) {
    if (x < c->cx0 || x >= c->cx1 || y < c->cy0 || y >= c->cy1 || !(a > 0)) return;
    if (a > 1) a = 1;
    unsigned char *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    p[0] = (unsigned char)(p[0] + a * (col.r - p[0]) + 0.5);
    p[1] = (unsigned char)(p[1] + a * (col.g - p[1]) + 0.5);
    p[2] = (unsigned char)(p[2] + a * (col.b - p[2]) + 0.5);
}

static void fill_rect(canvas *c, int x, int y, int w, int h, rgb col) {
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++) blend(c, i, j, col, 1.0);
}

// An anti-aliased disc of radius r around (x, y) (continuous pixel coordinates).
static void dot(canvas *c, double x, double y, double r, rgb col, double a) {
    if (!isfinite(x) || !isfinite(y) || x < -r - 2 || y < -r - 2 || x > c->w + r + 2 ||
        y > c->h + r + 2)
        return;
    for (int j = (int)floor(y - r - 1); j <= (int)floor(y + r + 1); j++)
        for (int i = (int)floor(x - r - 1); i <= (int)floor(x + r + 1); i++) {
            double d = hypot(i + 0.5 - x, j + 0.5 - y);
            double cover = r + 0.5 - d;
            if (cover > 0) blend(c, i, j, col, a * (cover < 1 ? cover : 1));
        }
}

// An anti-aliased one-pixel line (Xiaolin Wu): per step along the major axis, two pixels across
// it share the coverage.
static void line(canvas *c, double xa, double ya, double xb, double yb, rgb col, double a) {
    if (!isfinite(xa) || !isfinite(ya) || !isfinite(xb) || !isfinite(yb)) return;
    int steep = fabs(yb - ya) > fabs(xb - xa);
    if (steep) {
        double t = xa;
        xa = ya, ya = t, t = xb, xb = yb, yb = t;
    }
    if (xa > xb) {
        double t = xa;
        xa = xb, xb = t, t = ya, ya = yb, yb = t;
    }
    double grad = xb - xa > 1e-9 ? (yb - ya) / (xb - xa) : 0.0;
    double lo = steep ? c->cy0 - 1 : c->cx0 - 1, hi = steep ? c->cy1 : c->cx1;
    double first = fmax(floor(xa), lo), last = fmin(floor(xb), hi);
    for (double u = first; u <= last; u += 1.0) {
        double v = ya + grad * (u + 0.5 - xa) - 0.5;
        double fv = floor(v), frac = v - fv;
        if (fv < -2.0 || fv > 1e6) continue;
        int iu = (int)u, iv = (int)fv;
        if (steep) {
            blend(c, iv, iu, col, a * (1 - frac));
            blend(c, iv + 1, iu, col, a * frac);
        } else {
            blend(c, iu, iv, col, a * (1 - frac));
            blend(c, iu, iv + 1, col, a * frac);
        }
    }
}

// Draws s with its top-left corner at (x, y); vertical text reads upwards from its bottom-left
// corner (x, y). Returns the width of the text.
static int text(canvas *c, int x, int y, const char *s, rgb col, int vertical) {
    int n = 0;
    for (; *s; s++, n++) {
        const unsigned char *g = dcl__font_glyph((unsigned char)*s);
        for (int r = 0; r < DCL_FONT_H; r++)
            for (int k = 0; k < DCL_FONT_W; k++) {
                if (!(g[r] >> (DCL_FONT_W - 1 - k) & 1)) continue;
                if (vertical)
                    fill_rect(c, x + r * TEXT_SCALE, y - n * CHAR_W - (k + 1) * TEXT_SCALE,
                              TEXT_SCALE, TEXT_SCALE, col);
                else
                    fill_rect(c, x + n * CHAR_W + k * TEXT_SCALE, y + r * TEXT_SCALE, TEXT_SCALE,
                              TEXT_SCALE, col);
            }
    }
    return n ? n * CHAR_W - TEXT_SCALE : 0;
}

static int text_width(const char *s) {
    size_t n = strlen(s);
    return n ? (int)n * CHAR_W - TEXT_SCALE : 0;
}

// A title: bold (drawn twice, one pixel apart), centred over the canvas.
static void title(canvas *c, const char *s) {
    if (!s || !*s) return;
    int x = (c->w - text_width(s)) / 2;
    text(c, x < 4 ? 4 : x, 10, s, INK, 0);
    text(c, (x < 4 ? 4 : x) + 1, 10, s, INK, 0);
}

// ---- coordinates and ticks ---------------------------------------------------------------------

static double map_x(const canvas *c, double v) {
    return c->x0 + (v - c->xmin) / (c->xmax - c->xmin) * (c->x1 - c->x0);
}

static double map_y(const canvas *c, double v) {
    if (c->log_y) v = v > 0 ? log10(v) : -INFINITY;
    return c->y1 - (v - c->ymin) / (c->ymax - c->ymin) * (c->y1 - c->y0);
}

// Ticks at multiples of 1, 2 or 5 × 10^k in [lo, hi], about `target` of them; returns the count.
static int nice_ticks(double lo, double hi, int target, double *t, double *step_out) {
    double raw = (hi - lo) / target, p = pow(10.0, floor(log10(raw))), m = raw / p;
    double step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
    double first = ceil(lo / step - 1e-9);
    int n = 0;
    for (int i = 0; n < MAX_TICKS; i++) {
        double v = (first + i) * step;
        if (v > hi + step * 1e-9) break;
        t[n++] = fabs(v) < step * 1e-9 ? 0.0 : v;
    }
    *step_out = step;
    return n;
}

// "1.5e+05" -> "1.5e5", "2e-05" -> "2e-5".
static void compact_exponent(char *s) {
    char *e = strchr(s, 'e');
    if (!e) return;
    int x = atoi(e + 1);
    snprintf(e, 8, "e%d", x);
}

// A linear tick label with as many decimals as the tick step needs.
static void format_tick(char *buf, size_t n, double v, double step) {
    if (fmax(fabs(v), step) >= 1e5 || step < 1e-4) {
        snprintf(buf, n, "%.2g", v);
        compact_exponent(buf);
        return;
    }
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, n, "%.*f", decimals, v);
}

// A log-axis label for 10^e: "0.01", "500", "1e-5".
static void format_log_tick(char *buf, size_t n, double e) {
    double v = pow(10.0, e);
    if (v >= 1e-3 && v < 1e5) snprintf(buf, n, "%g", v);
    else {
        snprintf(buf, n, "%.0e", v);
        compact_exponent(buf);
    }
}

// Ticks of a log axis over log10 range [lo, hi], as log10 values: 1, 2, 5 × 10^k over a few
// decades, every k-th power of ten over many, linear ticks within less than a decade.
static int log_ticks(double lo, double hi, double *t) {
    int e0 = (int)floor(lo), e1 = (int)ceil(hi), decades = e1 - e0, n = 0;
    int stride = decades > 8 ? (decades + 5) / 6 : 1;
    static const double mant[3] = {1, 2, 5};
    int n_mant = decades <= 3 ? 3 : 1;
    for (int e = e0; e <= e1; e += stride)
        for (int m = 0; m < n_mant && n < MAX_TICKS; m++) {
            double v = e + log10(mant[m]);
            if (v >= lo - 1e-9 && v <= hi + 1e-9) t[n++] = v;
        }
    if (n >= 2) return n;
    double lin[MAX_TICKS], step;
    n = nice_ticks(pow(10.0, lo), pow(10.0, hi), 4, lin, &step);
    for (int i = 0; i < n; i++) t[i] = log10(lin[i]);
    return n;
}

// Grid lines, frame, ticks and their labels, axis labels. Call after the data range is set and
// before drawing the data (the grid goes under it).
static void axes_grid(canvas *c, const char *xlabel, const char *ylabel) {
    double tx[MAX_TICKS], ty[MAX_TICKS], sx, sy = 0;
    int nx = nice_ticks(c->xmin, c->xmax, (c->x1 - c->x0) / 90, tx, &sx);
    int ny = c->log_y ? log_ticks(c->ymin, c->ymax, ty)
                      : nice_ticks(c->ymin, c->ymax, (c->y1 - c->y0) / 70, ty, &sy);
    clip_to_area(c, 0);
    for (int i = 0; i < nx; i++) {
        int x = (int)floor(map_x(c, tx[i]));
        fill_rect(c, x, c->y0, 1, c->y1 - c->y0, GRID);
        fill_rect(c, x, c->y1, 1, 5, FRAME);
        char buf[32];
        format_tick(buf, sizeof buf, tx[i], sx);
        text(c, x - text_width(buf) / 2, c->y1 + 9, buf, INK, 0);
    }
    for (int i = 0; i < ny; i++) {
        double v = ty[i];
        int y = (int)floor(c->y1 - (v - c->ymin) / (c->ymax - c->ymin) * (c->y1 - c->y0));
        fill_rect(c, c->x0, y, c->x1 - c->x0, 1, GRID);
        fill_rect(c, c->x0 - 5, y, 5, 1, FRAME);
        char buf[32];
        if (c->log_y) format_log_tick(buf, sizeof buf, v);
        else format_tick(buf, sizeof buf, v, sy);
        text(c, c->x0 - 9 - text_width(buf), y - TEXT_H / 2, buf, INK, 0);
    }
    if (xlabel && *xlabel)
        text(c, (c->x0 + c->x1 - text_width(xlabel)) / 2, c->y1 + 32, xlabel, INK, 0);
    if (ylabel && *ylabel) text(c, 10, (c->y0 + c->y1 + text_width(ylabel)) / 2, ylabel, INK, 1);
}

static void frame(canvas *c) {
    clip_to_area(c, 0);
    fill_rect(c, c->x0 - 1, c->y0 - 1, c->x1 - c->x0 + 2, 1, FRAME);
    fill_rect(c, c->x0 - 1, c->y1, c->x1 - c->x0 + 2, 1, FRAME);
    fill_rect(c, c->x0 - 1, c->y0 - 1, 1, c->y1 - c->y0 + 2, FRAME);
    fill_rect(c, c->x1, c->y0 - 1, 1, c->y1 - c->y0 + 2, FRAME);
}

// Bounding box of the finite points of (n, 2) arrays; returns how many were finite.
static size_t bbox(const float *p, size_t n, size_t stride, double box[4]) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        double x = p[i * stride], y = p[i * stride + 1];
        if (!isfinite(x) || !isfinite(y)) continue;
        if (k++ == 0) box[0] = box[1] = x, box[2] = box[3] = y;
        box[0] = fmin(box[0], x), box[1] = fmax(box[1], x);
        box[2] = fmin(box[2], y), box[3] = fmax(box[3], y);
    }
    return k;
}

// Sets the data range to box (xmin, xmax, ymin, ymax) plus a margin, with equal units per pixel on
// both axes, so circles stay circles.
static void fit_equal(canvas *c, const double box[4]) {
    double cx = 0.5 * (box[0] + box[1]), cy = 0.5 * (box[2] + box[3]);
    double aw = c->x1 - c->x0, ah = c->y1 - c->y0;
    double upp = fmax((box[1] - box[0]) / aw, (box[3] - box[2]) / ah) * 1.08; // units per pixel
    if (!(upp > 1e-12)) upp = fmax(fabs(cx), fabs(cy)) * 1e-3 + 2.0 / aw;
    c->xmin = cx - 0.5 * aw * upp, c->xmax = cx + 0.5 * aw * upp;
    c->ymin = cy - 0.5 * ah * upp, c->ymax = cy + 0.5 * ah * upp;
}

// Encodes the canvas and frees it.
static dcl_status finish(canvas *c, const char *path) {
    dcl_status s = dcl_png_write_rgb(path, c->px, c->w, c->h);
    free(c->px);
    c->px = NULL;
    return s;
}

static dcl_status bad_arg(const char *path, const char *what) {
    return dcl__fail(DCL_ERR_ARG, "plot %s: %s", path ? path : "(no path)", what);
}

// ---- scatter -----------------------------------------------------------------------------------

// Dot size and opacity that keep both 40 and 100,000 points readable.
static void dot_style(size_t n, double *r, double *a, double a_max) {
    *r = n <= 100 ? 3.2 : n <= 1000 ? 2.4 : n <= 20000 ? 1.7 : 1.3;
    *a = n <= 2000 ? a_max : fmax(0.12, a_max * sqrt(2000.0 / (double)n));
}

// A legend entry "● label" at (x, y); returns the x after it.
static int legend_entry(canvas *c, int x, int y, rgb col, const char *label) {
    dot(c, x + 5, y + TEXT_H / 2.0, 5.0, col, 1.0);
    return x + 16 + text(c, x + 16, y, label, INK, 0);
}

#define FEW_POINTS 200

dcl_status dcl_plot_scatter(const char *path, const char *title_text, const float *data,
                            size_t n_data, const float *samples, size_t n_samples) {
    if (!path || !*path || (n_data && !data) || (n_samples && !samples))
        return bad_arg(path, "scatter needs a path and the points it was told about");
    canvas c;
    dcl_status s = canvas_init(&c, 640, 640, 64, 64, 20, 52);
    if (s != DCL_OK) return s;
    double box[4] = {-1, 1, -1, 1};
    if (!bbox(data, n_data, 2, box)) bbox(samples, n_samples, 2, box);
    fit_equal(&c, box);
    axes_grid(&c, NULL, NULL);
    clip_to_area(&c, 1);
    double r, a;
    // A small training set (the memorisation plots) is drawn last, large and outlined, so the
    // samples that pile up on its points cannot hide them.
    int few = n_data > 0 && n_data <= FEW_POINTS;
    dot_style(n_data, &r, &a, 0.55);
    for (size_t i = 0; i < n_data && !few; i++)
        dot(&c, map_x(&c, data[2 * i]), map_y(&c, data[2 * i + 1]), r, DATA_COLOR, a);
    size_t outside = 0;
    dot_style(n_samples, &r, &a, 0.75);
    for (size_t i = 0; i < n_samples; i++) {
        double x = samples[2 * i], y = samples[2 * i + 1];
        if (!(x >= c.xmin && x <= c.xmax && y >= c.ymin && y <= c.ymax)) outside++;
        dot(&c, map_x(&c, x), map_y(&c, y), r, SAMPLE_COLOR, a);
    }
    for (size_t i = 0; i < n_data && few; i++) {
        double x = map_x(&c, data[2 * i]), y = map_y(&c, data[2 * i + 1]);
        dot(&c, x, y, 6.0, (rgb){0, 0, 0}, 1.0);
        dot(&c, x, y, 4.5, DATA_COLOR, 1.0);
    }
    frame(&c);
    title(&c, title_text);
    // The legend sits between the title and the plot, where it hides nothing.
    char l1[64], l2[80];
    snprintf(l1, sizeof l1, "data (%zu)", n_data);
    if (outside) snprintf(l2, sizeof l2, "samples (%zu, %zu off the plot)", n_samples, outside);
    else snprintf(l2, sizeof l2, "samples (%zu)", n_samples);
    int width = (n_data ? 16 + text_width(l1) : 0) + (n_data && n_samples ? 28 : 0) +
                (n_samples ? 16 + text_width(l2) : 0);
    int x = (c.w - width) / 2, y = 36;
    if (n_data) x = legend_entry(&c, x, y, DATA_COLOR, l1) + 28;
    if (n_samples) legend_entry(&c, x, y, SAMPLE_COLOR, l2);
    return finish(&c, path);
}

// ---- trajectories ------------------------------------------------------------------------------

// A perceptually ordered colour map (viridis's five anchor colours, linearly interpolated):
// v = 0 dark purple, v = 1 yellow.
static rgb colormap(double v) {
    static const rgb stops[5] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    double p = v * 4;
    int i = p >= 4 ? 3 : (int)p;
    double f = p - i;
    rgb a = stops[i], b = stops[i + 1];
    return (rgb){(unsigned char)(a.r + f * (b.r - a.r) + 0.5),
                 (unsigned char)(a.g + f * (b.g - a.g) + 0.5),
                 (unsigned char)(a.b + f * (b.b - a.b) + 0.5)};
}

// Noise (high t) is light, data (t near 0) dark, so where the paths end stands out on white;
// the map stops short of its palest yellow, which would vanish on white.
static rgb time_color(double t, double tmin, double tmax) {
    return colormap(tmax > tmin ? 0.95 * (t - tmin) / (tmax - tmin) : 0.0);
}

static void colorbar(canvas *c, double tmin, double tmax) {
    int bx = c->x1 + 28, bw = 16;
    clip_to_area(c, 0);
    for (int y = c->y0; y < c->y1; y++) {
        double t = tmax - (y + 0.5 - c->y0) / (c->y1 - c->y0) * (tmax - tmin);
        fill_rect(c, bx, y, bw, 1, time_color(t, tmin, tmax));
    }
    text(c, bx + bw / 2 - TEXT_SCALE * 2, c->y0 - 22, "t", INK, 0);
    double ticks[MAX_TICKS], step;
    int n = tmax > tmin ? nice_ticks(tmin, tmax, 5, ticks, &step) : 0;
    for (int i = 0; i < n; i++) {
        int y = (int)floor(c->y1 - (ticks[i] - tmin) / (tmax - tmin) * (c->y1 - c->y0));
        if (y >= c->y1) y = c->y1 - 1;
        fill_rect(c, bx + bw, y, 4, 1, INK);
        char buf[32];
        format_tick(buf, sizeof buf, ticks[i], step);
        text(c, bx + bw + 7, y - TEXT_H / 2, buf, INK, 0);
    }
}

dcl_status dcl_plot_trajectories(const char *path, const char *title_text, const float *traj,
                                 const double *t, size_t K, size_t N, size_t max_paths) {
    if (!path || !*path || !traj || !t || N == 0)
        return bad_arg(path, "trajectories need a path, points (K + 1, N, 2) and their times");
    size_t P = N < max_paths ? N : max_paths;
    if (P == 0) return bad_arg(path, "max_paths is 0: no trajectory to draw");
    canvas c;
    dcl_status s = canvas_init(&c, 720, 640, 64, 56, 116, 52);
    if (s != DCL_OK) return s;
    // The view fits every drawn point: the spread-out noise at t = 1 included.
    double box[4] = {-1, 1, -1, 1}, fb[4];
    size_t found = 0;
    double tmin = t[0], tmax = t[0];
    for (size_t k = 0; k <= K; k++) {
        tmin = fmin(tmin, t[k]), tmax = fmax(tmax, t[k]);
        if (!bbox(traj + k * N * 2, P, 2, fb)) continue;
        if (found++ == 0) memcpy(box, fb, sizeof box);
        box[0] = fmin(box[0], fb[0]), box[1] = fmax(box[1], fb[1]);
        box[2] = fmin(box[2], fb[2]), box[3] = fmax(box[3], fb[3]);
    }
    fit_equal(&c, box);
    axes_grid(&c, NULL, NULL);
    clip_to_area(&c, 1);
    // Thin lines between consecutive points, then the points from noise (high t) to data, so
    // the ends near the data lie on top.
    double line_a = P > 200 ? 0.2 : 0.35;
    for (size_t k = 0; k < K; k++) {
        rgb col = time_color(0.5 * (t[k] + t[k + 1]), tmin, tmax);
        const float *a = traj + k * N * 2, *b = a + N * 2;
        for (size_t p = 0; p < P; p++)
            line(&c, map_x(&c, a[2 * p]), map_y(&c, a[2 * p + 1]), map_x(&c, b[2 * p]),
                 map_y(&c, b[2 * p + 1]), col, line_a);
    }
    int ascending = K > 0 && t[K] > t[0];
    double dot_a = K > 100 ? 0.35 : 0.6;
    for (size_t i = 0; i <= K; i++) {
        size_t k = ascending ? K - i : i;
        rgb col = time_color(t[k], tmin, tmax);
        int last = i == K;
        const float *a = traj + k * N * 2;
        for (size_t p = 0; p < P; p++)
            dot(&c, map_x(&c, a[2 * p]), map_y(&c, a[2 * p + 1]), last ? 2.4 : 1.2, col,
                last ? 0.95 : dot_a);
    }
    frame(&c);
    colorbar(&c, tmin, tmax);
    title(&c, title_text);
    char sub[96];
    snprintf(sub, sizeof sub, "%zu of %zu paths, %zu steps", P, N, K);
    text(&c, (c.x0 + c.x1 - text_width(sub)) / 2, 32, sub, FRAME, 0);
    return finish(&c, path);
}

// ---- curves ------------------------------------------------------------------------------------

// Series colours in order: the first is the single curve's blue.
static const rgb SERIES_COLOR[] = {{31, 100, 180}, {230, 110, 20}, {40, 150, 70},
                                   {200, 50, 60},  {130, 90, 180}, {120, 120, 120}};
#define N_SERIES_COLORS (sizeof SERIES_COLOR / sizeof SERIES_COLOR[0])

// Extends box (xmin, xmax, ymin, ymax) by the drawable points of one series; returns how many.
static size_t series_box(const dcl_plot_series *sr, int log_y, double box[4], size_t k) {
    for (size_t i = 0; i < sr->n; i++) {
        double xi = sr->x[i], yi = log_y ? (sr->y[i] > 0 ? log10(sr->y[i]) : NAN) : sr->y[i];
        if (!isfinite(xi) || !isfinite(yi)) continue;
        if (k++ == 0) box[0] = box[1] = xi, box[2] = box[3] = yi;
        box[0] = fmin(box[0], xi), box[1] = fmax(box[1], xi);
        box[2] = fmin(box[2], yi), box[3] = fmax(box[3], yi);
    }
    return k;
}

// One panel: axes fitted to its series, each series a line through its points (dots where there
// are few), a legend at the top right when any series has a label.
static void draw_panel(canvas *c, const char *xlabel, const dcl_plot_panel *p,
                       const double box_in[4]) {
    double box[4] = {box_in[0], box_in[1], box_in[2], box_in[3]};
    c->log_y = p->log_y;
    // A single x or a flat y still gets a range around it.
    if (!(box[1] > box[0])) {
        double pad = fmax(fabs(box[0]) * 0.1, 1.0);
        box[0] -= pad, box[1] += pad;
    }
    if (!(box[3] > box[2])) {
        double pad = p->log_y ? 0.5 : fmax(fabs(box[2]) * 0.1, 1e-3);
        box[2] -= pad, box[3] += pad;
    }
    double sy = box[3] - box[2];
    c->xmin = box[0], c->xmax = box[1];
    c->ymin = box[2] - 0.05 * sy, c->ymax = box[3] + 0.05 * sy;
    // Head room for the legend, so that no curve runs under it.
    int labels = 0;
    for (size_t k = 0; k < p->n_series; k++) labels += p->series[k].label && *p->series[k].label;
    double room = labels ? (labels * (TEXT_H + 8) + 12.0) / (c->y1 - c->y0) : 0;
    if (room > 0 && room < 0.5) c->ymax += (c->ymax - c->ymin) * room / (1 - room);
    axes_grid(c, xlabel, p->ylabel);
    clip_to_area(c, 1);
    for (size_t k = 0; k < p->n_series; k++) {
        const dcl_plot_series *sr = &p->series[k];
        rgb col = SERIES_COLOR[k % N_SERIES_COLORS];
        double px = NAN, py = NAN;
        for (size_t i = 0; i < sr->n; i++) {
            double qx = map_x(c, sr->x[i]), qy = map_y(c, sr->y[i]);
            if (!isfinite(qx) || !isfinite(qy)) {
                px = py = NAN; // a gap where the curve has no value
                continue;
            }
            if (isfinite(px)) line(c, px, py, qx, qy, col, 1.0);
            if (sr->n <= 60 || !isfinite(px)) dot(c, qx, qy, 2.5, col, 1.0);
            px = qx, py = qy;
        }
    }
    frame(c);
    // The legend: one entry per labelled series, right-aligned inside the top of the area.
    clip_to_area(c, 0);
    int y = c->y0 + 8;
    for (size_t k = 0; k < p->n_series; k++) {
        const char *label = p->series[k].label;
        if (!label || !*label) continue;
        int x = c->x1 - 12 - 16 - text_width(label);
        fill_rect(c, x - 4, y - 3, c->x1 - 8 - (x - 4), TEXT_H + 6, (rgb){255, 255, 255});
        legend_entry(c, x, y, SERIES_COLOR[k % N_SERIES_COLORS], label);
        y += TEXT_H + 8;
    }
}

dcl_status dcl_plot_panels(const char *path, const char *title_text, const char *xlabel,
                           const dcl_plot_panel *panels, size_t n_panels) {
    if (!path || !*path || !panels || n_panels == 0 || n_panels > 8)
        return bad_arg(path, "a plot needs a path and 1 to 8 panels");
    double box[8][4];
    for (size_t p = 0; p < n_panels; p++) {
        size_t k = 0;
        for (size_t i = 0; i < panels[p].n_series; i++) {
            const dcl_plot_series *sr = &panels[p].series[i];
            if (sr->n && (!sr->x || !sr->y)) return bad_arg(path, "a series without its points");
            k = series_box(sr, panels[p].log_y, box[p], k);
        }
        if (k == 0)
            return bad_arg(path, panels[p].log_y
                                     ? "no point with finite x and positive finite y to draw"
                                     : "no point with finite x and y to draw");
    }
    // One panel is 800x500 with a 392-pixel-high area; more panels stack areas of 300 pixels,
    // each with its own x axis, under one title.
    const int top = 48, bottom = 60, gap = 28, area = n_panels == 1 ? 392 : 300;
    int h = top + (int)n_panels * (area + bottom) + (int)(n_panels - 1) * gap;
    canvas c;
    dcl_status s = canvas_init(&c, 800, h, 100, top, 24, bottom);
    if (s != DCL_OK) return s;
    for (size_t p = 0; p < n_panels; p++) {
        c.y0 = top + (int)p * (area + bottom + gap), c.y1 = c.y0 + area;
        draw_panel(&c, xlabel, &panels[p], box[p]);
    }
    clip_to_area(&c, 0);
    title(&c, title_text);
    return finish(&c, path);
}

dcl_status dcl_plot_curve(const char *path, const char *title_text, const char *xlabel,
                          const char *ylabel, const float *x, const float *y, size_t n, int log_y) {
    if (!path || !*path || !x || !y || n == 0)
        return bad_arg(path, "a curve needs a path and at least one point");
    dcl_plot_series one = {NULL, x, y, n};
    dcl_plot_panel panel = {ylabel, &one, 1, log_y};
    return dcl_plot_panels(path, title_text, xlabel, &panel, 1);
}
