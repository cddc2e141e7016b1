// What host/data/dataset.c uses from its sources: the built-in 2D sets (toy2d.c), the CSV
// reader (csv.c) and image sets (image_set.c, over the IDX reader idx.c and pngdir.c, which share
// image_read.c, and the shapes generator shapes.c). Calls go one way: dataset.c → image_set.c →
// idx.c, pngdir.c, shapes.c → image_read.c; dataset.c also draws fresh shapes (shapes.c).
#ifndef DIFFCL_DATA_INTERNAL_H
#define DIFFCL_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "diffcl/status.h"

// The step of the data stream (purpose DCL_RNG_DATA) that draws the fixed training set: the
// built-in points (dataset.c) and the images a subset n=K keeps (image_read.c).
#define DCL_STEP_FIXED_SET UINT32_MAX
// The step that draws the test split of a generated image set (shapesS:split=test).
#define DCL_STEP_TEST_SPLIT (UINT32_MAX - 2u)

// Philox elements one built-in point takes: 4 uniforms (one counter block) and 4 normals (the next).
#define DCL_TOY2D_ELEMENTS 8

// The built-in set called name, or -1.
int dcl__toy2d_find(const char *name);
// Its name, one-line description and default noise (std of the Gaussian noise added).
const char *dcl__toy2d_name(int set);
const char *dcl__toy2d_about(int set);
double dcl__toy2d_noise(int set);
int dcl__toy2d_count(void);
// "spiral, moons, checkerboard, gmm8, annulus, swissroll".
const char *dcl__toy2d_list(void);
// Points x (n, 2) of the set: point i from elements (first + i) * DCL_TOY2D_ELEMENTS + 0..7 of
// stream (seed, DCL_RNG_DATA, step).
void dcl__toy2d_generate(int set, double noise, uint64_t seed, uint32_t step, uint64_t first,
                         float *x, size_t n);

// Reads a CSV of points (limits DCL_CSV_MAX_* of diffcl/data.h) into a malloc'ed x (n, D).
dcl_status dcl__csv_read(const char *path, float **x, size_t *n, size_t *D);

// An image set read from files: images x (n, C, H, W) with pixels scaled to [-1, 1].
typedef struct dcl__image_set {
    float *x;           // (n, C, H, W)
    int32_t *labels;    // (n), or NULL when unlabelled
    size_t n;           // images kept
    int C, H, W;        // C is 1 or 3
    int n_classes;      // 0 when unlabelled
    char **class_names; // n_classes malloc'ed names, or NULL
    int shapes;         // 1: drawn by shapes.c (H = W is its side), which also draws fresh images
} dcl__image_set;

// Pixel p of 0..255 as a float in [-1, 1]: p / 127.5 - 1, exact at 0 and 255.
static inline float dcl__pixel_to_float(unsigned p) { return (float)((double)p / 127.5 - 1.0); }

// Whether spec names an image set (fashion-mnist, idx:..., png:...).
int dcl__image_spec(const char *spec);
// Opens the image set spec names (image_set.c); on failure *out is left empty (all zero).
dcl_status dcl__image_set_open(dcl__image_set *out, const char *spec, uint64_t seed);

// image_read.c, for the readers. Opens path for reading, which must be a regular file: a FIFO,
// device or folder (a path named inside a checkpoint could be /dev/stdin) is DCL_ERR_IO naming
// it, without ever blocking. *fd is the open descriptor (blocking again), *size (may be NULL) the
// file's size.
dcl_status dcl__open_input(const char *path, int *fd, uint64_t *size);
// The same as a stdio stream ("rb"); NULL with *s set on failure.
FILE *dcl__fopen_input(const char *path, dcl_status *s);
// Frees what s holds and empties it (all zero).
void dcl__image_set_free(dcl__image_set *s);
// Which images a subset keeps: keep[i] for i < total. Every image when k == 0 (no n=K option),
// else k distinct ones drawn from (seed, DCL_RNG_DATA, DCL_STEP_FIXED_SET). `what` names the
// source for the error when k > total.
dcl_status dcl__image_subset(unsigned char **keep, size_t total, size_t k, uint64_t seed,
                             const char *what);
// The end of a reader: when s failed, frees what out holds and empties it; otherwise records its
// n images of C×H×W. Returns s.
dcl_status dcl__image_set_finish(dcl__image_set *out, dcl_status s, size_t n, int C, int H, int W);

// Reads the IDX pair images (N×H×W unsigned bytes) and labels (N bytes, each < n_classes; NULL:
// unlabelled), either gzip or raw, keeping the images subset k of seed (dcl__image_subset).
// Fills out->x, labels, n, C = 1, H, W (not class names).
dcl_status dcl__idx_read(dcl__image_set *out, const char *images, const char *labels, int n_classes,
                         size_t k, uint64_t seed);
// Reads a folder of PNGs (diffcl/data.h's png:FOLDER), keeping the subset k of seed.
dcl_status dcl__pngdir_read(dcl__image_set *out, const char *folder, size_t k, uint64_t seed);
// Test hook: when set, dcl__pngdir_read calls it between the header pass and the pixel pass (a
// test rewrites a file there, as another process could).
extern void (*dcl__pngdir_between_passes)(const char *folder);

// shapes.c: the built-in colour shapes (diffcl/data.h's shapesS). Classes, in label order:
// disc, square, triangle, ring, cross.
#define DCL_SHAPES_CLASSES 5
#define DCL_SHAPES_MIN_SIDE 16
#define DCL_SHAPES_MAX_SIDE 256
#define DCL_SHAPES_DEFAULT_N 10000 // images of a shapes set without n=K

// One image's draw: the shape (pixel units, x right, y down, the image [0, S]²) and the colours
// in [0, 1] (linear in the bytes written). The background at pixel centre p is
// bg0 + t (bg1 − bg0) with t = clamp(0.5 + (p − S/2)·(cos φ, sin φ) / S, 0, 1); the pixel is
// background·(1 − coverage) + fg·coverage plus uniform noise in ±DCL_SHAPES_NOISE per channel,
// rounded to a byte.
typedef struct dcl__shape {
    int label;                    // 0..DCL_SHAPES_CLASSES-1
    double cx, cy, r;             // centre and size (the shape stands upright)
    double fg[3], bg0[3], bg1[3]; // RGB of the shape and the two ends of the gradient
    double phi;                   // direction of the gradient
} dcl__shape;
#define DCL_SHAPES_NOISE 0.04

// Philox elements one image of side S takes (its parameters, then its noise).
uint64_t dcl__shapes_elements(int side);
// The shape of image `index` of stream (seed, DCL_RNG_DATA, step): elements
// index · dcl__shapes_elements(side) + 0..15.
void dcl__shapes_params(int side, uint64_t seed, uint32_t step, uint64_t index, dcl__shape *sh);
// Fraction of pixel (x, y) (the square [x, x+1] × [y, y+1]) inside the shape, from 4 × 4
// sub-pixel samples.
double dcl__shapes_coverage(const dcl__shape *sh, int x, int y);
// Images first .. first+n-1 of stream (seed, DCL_RNG_DATA, step) into x (n, 3, S, S) scaled as
// dcl__pixel_to_float, and their labels (n) when labels is not NULL. Image i depends only on
// (seed, step, first + i).
void dcl__shapes_draw(int side, uint64_t seed, uint32_t step, uint64_t first, float *x,
                      int32_t *labels, size_t n);
// The set shapesS of n images 0..n-1 of step DCL_STEP_FIXED_SET (the training split) or
// DCL_STEP_TEST_SPLIT (test: 1), with labels and class names.
dcl_status dcl__shapes_open(dcl__image_set *out, int side, size_t n, int test, uint64_t seed);

#endif
