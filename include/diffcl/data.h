// Datasets of d-dimensional points: built-in 2D sets and CSV files. A spec names one:
//   spiral, moons, checkerboard, gmm8, annulus, swissroll   fresh points every step
//   spiral:n=40                                             a fixed training set of 40 points
//   moons:noise=0.1,n=500                                   options: n=N, noise=STD
//   csv:PATH                                                the rows of a CSV file (header optional)
// All randomness comes from Philox (purpose DCL_RNG_DATA), so a (spec, seed) pair always gives the
// same points on every machine. Points are computed in double and stored as float.
//
// Dimension legend: N batch (points), D features (2 for the built-in sets, the CSV's columns).
#ifndef DIFFCL_DATA_H
#define DIFFCL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/status.h"

// Limits of a CSV file (csv:PATH): longer lines, more columns or rows are DCL_ERR_FORMAT.
#define DCL_CSV_MAX_LINE 65536          // bytes in one line, without its line ending
#define DCL_CSV_MAX_COLS 1024           // values per row (D)
#define DCL_CSV_MAX_ROWS 10000000       // data rows
#define DCL_CSV_MAX_VALUES (1ull << 27) // rows × columns (512 MiB of floats)
// Largest size of a built-in fixed training set (spiral:n=N).
#define DCL_DATA_MAX_FIXED 10000000
// Largest training step dcl_dataset_batch takes; the Philox steps above it are reserved (the fixed
// training set is drawn at step UINT32_MAX, evaluation points at UINT32_MAX - 1).
#define DCL_DATA_MAX_STEP 0xFFFFFFEFu
// Largest salt of dcl_dataset_fresh.
#define DCL_DATA_MAX_SALT 0xFFFFFFu

typedef struct dcl_dataset dcl_dataset;

// Errors (DCL_ERR_ARG) name the spec part and list what exists; CSV errors (DCL_ERR_FORMAT,
// DCL_ERR_IO) name the file, line and column.
dcl_status dcl_dataset_open(dcl_dataset **out, const char *spec, uint64_t seed);
void dcl_dataset_free(dcl_dataset *ds);
const char *dcl_dataset_spec(const dcl_dataset *ds);
size_t dcl_dataset_dim(const dcl_dataset *ds);  // D
size_t dcl_dataset_size(const dcl_dataset *ds); // points in a fixed set or CSV; 0 when fresh
// The fixed set's or CSV's points (size, D), or NULL when fresh every step.
const float *dcl_dataset_points(const dcl_dataset *ds);
// A training batch x (N, D) for step `step` (≤ DCL_DATA_MAX_STEP): fresh points from stream
// (seed, DATA, step), or for a fixed set or CSV the points at indices drawn from that stream (with
// replacement). Point i of a step does not depend on N.
dcl_status dcl_dataset_batch(dcl_dataset *ds, float *x, size_t N, uint64_t step);
// N evaluation points x (N, D), independent of every training batch and of the fixed set: fresh
// points of the underlying distribution (also for spiral:n=40), drawn at the reserved step
// UINT32_MAX - 1; different salts (≤ DCL_DATA_MAX_SALT) give independent points. A CSV has no
// distribution beyond its rows, so for a CSV these are rows drawn with replacement.
dcl_status dcl_dataset_fresh(dcl_dataset *ds, float *x, size_t N, uint64_t salt);

// Writes points x (n, D) as CSV ("x0,x1,..." header then one row per point, %.9g), atomically.
// Non-finite values are written as nan/inf (which the reader rejects).
dcl_status dcl_csv_write(const char *path, const float *x, size_t n, size_t D);

#endif
