// What host/data/dataset.c uses from its sources: the built-in 2D sets (toy2d.c) and the CSV
// reader (csv.c).
#ifndef DIFFCL_DATA_INTERNAL_H
#define DIFFCL_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/status.h"

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

#endif
