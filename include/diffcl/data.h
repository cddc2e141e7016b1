// Datasets of d-dimensional points: built-in 2D sets and CSV files. A spec names one:
//   spiral, moons, checkerboard, gmm8, annulus, swissroll   fresh points every step
//   spiral:n=40                                             a fixed training set of 40 points
//   csv:PATH                                                the rows of a CSV file (header optional)
// All randomness comes from Philox (purpose DCL_RNG_DATA), so a (spec, seed) pair always gives the
// same points on every machine.
#ifndef DIFFCL_DATA_H
#define DIFFCL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/status.h"

typedef struct dcl_dataset dcl_dataset;

// Errors name the spec part, or the CSV file, line and column.
dcl_status dcl_dataset_open(dcl_dataset **out, const char *spec, uint64_t seed);
void dcl_dataset_free(dcl_dataset *ds);
const char *dcl_dataset_spec(const dcl_dataset *ds);
size_t dcl_dataset_dim(const dcl_dataset *ds);  // D
size_t dcl_dataset_size(const dcl_dataset *ds); // points in a fixed set; 0 when fresh every step
// The fixed set's points (size, D), or NULL when fresh every step.
const float *dcl_dataset_points(const dcl_dataset *ds);
// A training batch x (N, D) for step `step`: fresh points from stream (seed, DATA, step), or for a
// fixed set the points at indices drawn from that stream (with replacement).
dcl_status dcl_dataset_batch(dcl_dataset *ds, float *x, size_t N, uint64_t step);
// N fresh points for evaluation, independent of every training batch (e.g. step UINT32_MAX - 1).
dcl_status dcl_dataset_fresh(dcl_dataset *ds, float *x, size_t N, uint64_t salt);

// Reads/writes points as CSV ("x0,x1,..." header then one row per point).
dcl_status dcl_csv_write(const char *path, const float *x, size_t n, size_t D);

#endif
