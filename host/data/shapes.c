// The built-in colour shapes (diffcl/data.h's shapesS): labelled S×S RGB images of a disc, square,
// triangle, ring or cross on a colour gradient with light noise, anti-aliased by 4×4 sub-pixel
// samples; image i of a stream is a function of (seed, step, i) alone, drawn on the host.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"         // dcl__fail
#include "data/data_internal.h" // dcl__shape, dcl__image_set, dcl__pixel_to_float
#include "diffcl/data.h"        // DCL_IMAGE_MAX_VALUES
#include "diffcl/rng.h"         // dcl_philox4x32_10, dcl_u01, DCL_RNG_DATA

#define PI 3.14159265358979323846
#define PARAMS 16 // uniforms of an image's parameters, before its noise
#define SUB 4     // sub-pixel samples per side of a pixel

static const char *const class_names[DCL_SHAPES_CLASSES] = {"disc", "square", "triangle", "ring",
                                                            "cross"};

// Sizes relative to r: the square's half side, the triangle's circumradius (its inradius is half
// of it), the ring's inner radius, the cross's arm half width (its arms reach r from the centre).
#define SQUARE_HALF 0.8
#define TRIANGLE_R 1.15
#define RING_INNER 0.55
#define CROSS_HALF_WIDTH 0.3

// The farthest point of each class from its centre, over r (so that it stays inside the image).
static double reach(int label) {
    switch (label) {
    case 1: return SQUARE_HALF * sqrt(2.0);
    case 2: return TRIANGLE_R;
    case 4: return sqrt(1.0 + CROSS_HALF_WIDTH * CROSS_HALF_WIDTH);
    default: return 1.0;
    }
}

// The radius of the disc around the centre that lies wholly inside each class, over r (0: none).
static double core(int label) {
    switch (label) {
    case 0: return 1.0;
    case 1: return SQUARE_HALF;
    case 2: return 0.5 * TRIANGLE_R;
    case 4: return CROSS_HALF_WIDTH;
    default: return 0.0; // the ring's centre is its hole
    }
}

// The cached Philox block of a stream: word e of (seed, DCL_RNG_DATA, step) as rng.h maps it.
typedef struct stream {
    uint32_t key[2], step;
    uint64_t block;
    uint32_t w[4];
} stream;

static void stream_init(stream *s, uint64_t seed, uint32_t step) {
    s->key[0] = (uint32_t)seed, s->key[1] = (uint32_t)(seed >> 32), s->step = step;
    s->block = UINT64_MAX;
}

static uint32_t stream_word(stream *s, uint64_t e) {
    uint64_t b = e >> 2;
    if (b != s->block) {
        uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), s->step, DCL_RNG_DATA};
        dcl_philox4x32_10(ctr, s->key, s->w);
        s->block = b;
    }
    return s->w[e & 3];
}

uint64_t dcl__shapes_elements(int side) {
    uint64_t e = PARAMS + 3 * (uint64_t)side * (uint64_t)side;
    return (e + 3) & ~(uint64_t)3; // whole counter blocks
}

// A colour of hue h (0..1 around the wheel), saturation s and luminance Y (Rec. 709 weights on
// the byte values): the brightest colour of that hue and saturation, scaled down or mixed with
// white until its luminance is Y.
static void colour(double h, double s, double Y, double rgb[3]) {
    for (int c = 0; c < 3; c++) {
        // HSV with V = 1: each channel from its distance to the hue on the wheel.
        double k = fmod(5.0 - 2.0 * c + 6.0 * h, 6.0);
        double pure = 1.0 - fmax(0.0, fmin(fmin(k, 4.0 - k), 1.0));
        rgb[c] = 1.0 - s + s * pure;
    }
    double y0 = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
    for (int c = 0; c < 3; c++)
        rgb[c] = Y <= y0 ? rgb[c] * (Y / y0) : rgb[c] + (Y - y0) / (1.0 - y0) * (1.0 - rgb[c]);
}

static double lerp(double a, double b, double u) { return a + (b - a) * u; }

void dcl__shapes_params(int side, uint64_t seed, uint32_t step, uint64_t index, dcl__shape *sh) {
    stream s;
    stream_init(&s, seed, step);
    uint64_t e0 = index * dcl__shapes_elements(side);
    double u[PARAMS];
    for (int j = 0; j < PARAMS; j++) u[j] = (double)dcl_u01(stream_word(&s, e0 + (uint64_t)j));
    double S = side;
    int label = (int)(u[0] * DCL_SHAPES_CLASSES);
    sh->label = label < DCL_SHAPES_CLASSES ? label : DCL_SHAPES_CLASSES - 1;
    // r from 5/32 to 12/32 of the side (5 to 12 pixels at 32); the centre keeps the farthest point
    // a pixel inside the border (reach ≤ 1.15 · 12/32 S ≤ S/2 − 1 for S ≥ 16).
    sh->r = S * lerp(5.0 / 32.0, 12.0 / 32.0, u[1]);
    double m = reach(sh->label) * sh->r + 1.0;
    sh->cx = lerp(m, S - m, u[2]);
    sh->cy = lerp(m, S - m, u[3]);
    // u[4] is not used: shapes stand upright (an earlier version turned them by a random angle,
    // which a 30-minute model did not learn), and the other parameters keep their draws.
    // Contrast: a light shape on a dark background or a dark one on a light background, their
    // luminances at least 0.25 apart (the noise moves a pixel by at most DCL_SHAPES_NOISE).
    int dark_bg = u[5] < 0.5;
    double fg_y = dark_bg ? lerp(0.55, 0.92, u[8]) : lerp(0.04, 0.32, u[8]);
    double bg_lo = dark_bg ? 0.04 : 0.60, bg_hi = dark_bg ? 0.30 : 0.92;
    colour(u[6], lerp(0.5, 1.0, u[7]), fg_y, sh->fg);
    colour(u[9], lerp(0.15, 0.7, u[10]), lerp(bg_lo, bg_hi, u[11]), sh->bg0);
    colour(u[12], lerp(0.15, 0.7, u[13]), lerp(bg_lo, bg_hi, u[14]), sh->bg1);
    sh->phi = 2.0 * PI * u[15];
}

// Whether the point (u, v) from the centre (x right, y down) is inside.
static int inside(int label, double r, double u, double v) {
    double au = fabs(u), av = fabs(v);
    switch (label) {
    case 0: return u * u + v * v <= r * r;
    case 1: return au <= SQUARE_HALF * r && av <= SQUARE_HALF * r;
    case 2: {
        // Equilateral, one vertex straight up (−y): inside the three edges, each at the inradius
        // from the centre along its outward normal (0, 1), (±√3/2, −1/2).
        double h = 0.5 * TRIANGLE_R * r, c = 0.86602540378443865;
        return v <= h && c * u - 0.5 * v <= h && -c * u - 0.5 * v <= h;
    }
    case 3: {
        double d2 = u * u + v * v, ri = RING_INNER * r;
        return d2 <= r * r && d2 >= ri * ri;
    }
    default: {
        double w = CROSS_HALF_WIDTH * r;
        return (au <= r && av <= w) || (av <= r && au <= w);
    }
    }
}

static double max2(double a, double b) { return a > b ? a : b; }

double dcl__shapes_coverage(const dcl__shape *sh, int x, int y) {
    // Pixels wholly outside the shape's reach, inside its core or inside the ring's hole give
    // what all 16 samples would give, without sampling.
    double nx = max2(max2(x - sh->cx, sh->cx - (x + 1)), 0.0); // to the pixel's nearest point
    double ny = max2(max2(y - sh->cy, sh->cy - (y + 1)), 0.0);
    double fx = max2(fabs(x - sh->cx), fabs(x + 1 - sh->cx)); // to its farthest corner
    double fy = max2(fabs(y - sh->cy), fabs(y + 1 - sh->cy));
    double near2 = nx * nx + ny * ny, far2 = fx * fx + fy * fy;
    double out = reach(sh->label) * sh->r, in = core(sh->label) * sh->r;
    double hole = sh->label == 3 ? RING_INNER * sh->r : 0.0;
    if (near2 > out * out || far2 < hole * hole) return 0.0;
    if (far2 < in * in) return 1.0;
    int hits = 0;
    for (int j = 0; j < SUB; j++)
        for (int i = 0; i < SUB; i++) {
            double dx = x + (i + 0.5) / SUB - sh->cx, dy = y + (j + 0.5) / SUB - sh->cy;
            hits += inside(sh->label, sh->r, dx, dy);
        }
    return (double)hits / (SUB * SUB);
}

static unsigned to_byte(double v) {
    double b = v * 255.0 + 0.5;
    return b < 1.0 ? 0u : b >= 255.0 ? 255u : (unsigned)b; // (unsigned) floors positive b
}

// Image `index` into x (3, S, S) with value[p] = dcl__pixel_to_float(p); returns its label.
static int draw_one(int side, uint64_t seed, uint32_t step, uint64_t index, const float *value,
                    float *x) {
    dcl__shape sh;
    dcl__shapes_params(side, seed, step, index, &sh);
    size_t HW = (size_t)side * (size_t)side;
    uint64_t noise0 = index * dcl__shapes_elements(side) + PARAMS; // element of channel 0, pixel 0
    stream planes[3]; // one cached block per channel: the noise of plane c starts at c · S²
    for (int c = 0; c < 3; c++) stream_init(&planes[c], seed, step);
    double gx = cos(sh.phi) / side, gy = sin(sh.phi) / side, half = 0.5 * side;
    // The pixels the shape can touch (it stays a pixel inside the border).
    double far = reach(sh.label) * sh.r;
    int x0 = (int)(sh.cx - far), x1 = (int)(sh.cx + far), y0 = (int)(sh.cy - far),
        y1 = (int)(sh.cy + far);
    for (int y = 0; y < side; y++)
        for (int xx = 0; xx < side; xx++) {
            int near = xx >= x0 && xx <= x1 && y >= y0 && y <= y1;
            double cov = near ? dcl__shapes_coverage(&sh, xx, y) : 0.0;
            double t = 0.5 + (xx + 0.5 - half) * gx + (y + 0.5 - half) * gy;
            t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
            size_t p = (size_t)y * (size_t)side + (size_t)xx;
            for (int c = 0; c < 3; c++) {
                double bg = lerp(sh.bg0[c], sh.bg1[c], t);
                uint32_t w = stream_word(&planes[c], noise0 + c * HW + p);
                double noise = DCL_SHAPES_NOISE * (2.0 * (double)dcl_u01(w) - 1.0);
                x[c * HW + p] = value[to_byte(lerp(bg, sh.fg[c], cov) + noise)];
            }
        }
    return sh.label;
}

void dcl__shapes_draw(int side, uint64_t seed, uint32_t step, uint64_t first, float *x,
                      int32_t *labels, size_t n) {
    size_t D = 3 * (size_t)side * (size_t)side;
    float value[256];
    for (unsigned p = 0; p < 256; p++) value[p] = dcl__pixel_to_float(p);
    for (size_t i = 0; i < n; i++) {
        int label = draw_one(side, seed, step, first + i, value, x + i * D);
        if (labels) labels[i] = label;
    }
}

dcl_status dcl__shapes_open(dcl__image_set *out, int side, size_t n, int test, uint64_t seed) {
    memset(out, 0, sizeof *out);
    size_t D = 3 * (size_t)side * (size_t)side;
    if ((uint64_t)n * D > DCL_IMAGE_MAX_VALUES)
        return dcl__fail(DCL_ERR_ARG,
                         "dataset shapes%d: n=%zu images of 3x%dx%d is more than %llu values; "
                         "n=%llu would fit",
                         side, n, side, side, (unsigned long long)DCL_IMAGE_MAX_VALUES,
                         (unsigned long long)(DCL_IMAGE_MAX_VALUES / D));
    out->x = malloc(n * D * sizeof *out->x);
    out->labels = malloc(n * sizeof *out->labels);
    out->class_names = calloc(DCL_SHAPES_CLASSES, sizeof *out->class_names);
    out->n_classes = DCL_SHAPES_CLASSES;
    int ok = out->x && out->labels && out->class_names;
    for (int k = 0; ok && k < DCL_SHAPES_CLASSES; k++) {
        size_t len = strlen(class_names[k]) + 1;
        out->class_names[k] = malloc(len);
        if (out->class_names[k]) memcpy(out->class_names[k], class_names[k], len);
        else ok = 0;
    }
    if (!ok) {
        dcl__image_set_free(out);
        return dcl__fail(DCL_ERR_NOMEM, "dataset shapes%d: out of memory for %zu images", side, n);
    }
    uint32_t step = test ? DCL_STEP_TEST_SPLIT : DCL_STEP_FIXED_SET;
    dcl__shapes_draw(side, seed, step, 0, out->x, out->labels, n);
    out->n = n, out->C = 3, out->H = side, out->W = side, out->shapes = 1;
    return DCL_OK;
}
