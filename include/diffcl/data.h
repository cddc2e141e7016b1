// Datasets of d-dimensional points: built-in 2D sets, CSV files and images. A spec names one:
//   spiral, moons, checkerboard, gmm8, annulus, swissroll   fresh points every step
//   spiral:n=40                                             a fixed training set of 40 points
//   moons:noise=0.1,n=500                                   options: n=N, noise=STD
//   csv:PATH                                                the rows of a CSV file (header optional)
//   fashion-mnist, fashion-mnist:split=test,n=1000          Fashion-MNIST (DCL_FASHION_MNIST_DIR)
//   idx:IMAGES[,LABELS][,n=K][,classes=K]                   an IDX pair (MNIST...), gzip or raw
//   png:FOLDER[,n=K]                                        FOLDER/*.png, or FOLDER/CLASS/*.png
//   shapes32, shapes64:n=2000, shapes32:split=test          built-in labelled colour shapes
// All randomness comes from Philox (purpose DCL_RNG_DATA), so a (spec, seed) pair always gives the
// same points on every machine. Points are computed in double and stored as float.
//
// Image sets are fixed sets whose points are images of D = C·H·W floats in NCHW order, pixel
// values p in 0..255 scaled to p / 127.5 - 1 (0 -> -1, 255 -> 1 exactly). Their option n=K keeps a
// subset of K distinct images drawn from the seed (Philox, the fixed set's step), in file order;
// without it every image is kept (K above the number of images is DCL_ERR_ARG). Labels (IDX label
// file, Fashion-MNIST, class sub-folders of a PNG folder) are 0..num_classes-1.
//   fashion-mnist: the train split (60000 images 1×28×28) or split=test (10000); classes
//           T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
//   idx:    IMAGES is an IDX file of unsigned bytes (magic 00 00 08 03) of N×H×W, LABELS one of N
//           bytes (00 00 08 01), each below classes=K (default 10). Either may be gzip-compressed.
//           A path segment after the comma that reads n=... or classes=... is an option.
//   png:    8-bit grey or RGB PNGs of one size (16-bit is scaled to 8 bits, palettes (colour)
//           and 1/2/4-bit grey expanded, alpha dropped); C = 3 if any image has colour, grey
//           images then repeated over the three channels. Files in byte order of their names.
//           When FOLDER holds sub-folders and no PNG files, each sub-folder (by name, in byte
//           order; at most DCL_IMAGE_MAX_CLASSES) is a class and holds its images (FOLDER/CLASS/
//           *.png, nothing deeper); hidden entries and other files are ignored.
//   shapesS: built-in, no file: S×S RGB images (S = 16..256; shapes32, shapes64) of one shape
//           each, the label: 0 disc, 1 square, 2 triangle, 3 ring, 4 cross (uniform at random).
//           Upright (the square's sides and the cross's arms axis-aligned, the triangle's vertex
//           up), at a random position (a pixel inside the border) and size (radius 5/32..12/32
//           of S), in a random colour (light on a dark background or dark on a light one) over a
//           two-colour linear gradient in a random direction, with uniform noise of ±0.04 (of the
//           0..1 range) per channel, anti-aliased by 4×4 sub-pixel samples, rounded to bytes like
//           a PNG. The set is images 0..K-1 of the stream (seed, DATA, the fixed set's step), K = n
//           (default 10000; 123 MB of floats at 32, 492 MB at 64); image i depends only on (seed,
//           i), so n=500 is the first 500 images of n=1000. split=test draws the set from another
//           (reserved) step: images no training set of the seed holds. Evaluation points
//           (dcl_dataset_fresh) are fresh images of the same distribution. Drawn on the host
//           (about 10000 images/s on one core at 32).
//
// Dimension legend: N batch (points), D features (2 for the built-in sets, the CSV's columns,
// C·H·W for images), C channels, H height, W width.
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
// training set is drawn at step UINT32_MAX, evaluation points at UINT32_MAX - 1, the test split of
// shapesS at UINT32_MAX - 2).
#define DCL_DATA_MAX_STEP 0xFFFFFFEFu
// Largest salt of dcl_dataset_fresh.
#define DCL_DATA_MAX_SALT 0xFFFFFFu
// Limits of image sets: larger ones are DCL_ERR_FORMAT naming the file.
#define DCL_IMAGE_MAX_SIDE 4096           // pixels of H and of W
#define DCL_IMAGE_MAX_VALUES (1ull << 29) // images × C·H·W kept (2 GiB of floats)
#define DCL_IMAGE_MAX_FILE (1ull << 31)   // bytes of pixels in one IDX file (decompressed)
#define DCL_IMAGE_MAX_CLASSES 1000        // class sub-folders of png:FOLDER (IDX: classes ≤ 256)
// Where Debian's dataset-fashion-mnist installs {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
#define DCL_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct dcl_dataset dcl_dataset;

// Errors (DCL_ERR_ARG) name the spec part and list what exists; CSV errors (DCL_ERR_FORMAT,
// DCL_ERR_IO) name the file, line and column; image file errors name the file and what is wrong.
dcl_status dcl_dataset_open(dcl_dataset **out, const char *spec, uint64_t seed);
void dcl_dataset_free(dcl_dataset *ds);
const char *dcl_dataset_spec(const dcl_dataset *ds);
size_t dcl_dataset_dim(const dcl_dataset *ds);  // D
size_t dcl_dataset_size(const dcl_dataset *ds); // points of a fixed, CSV or image set; 0 if fresh
// The fixed set's, CSV's or image set's points (size, D), or NULL when fresh every step.
const float *dcl_dataset_points(const dcl_dataset *ds);
// 1 for an image set, with its C, H, W (any pointer may be NULL); 0 (and zeros) otherwise.
int dcl_dataset_image_shape(const dcl_dataset *ds, int *C, int *H, int *W);
// Classes of a labelled set (Fashion-MNIST: 10); 0 when unlabelled.
int dcl_dataset_num_classes(const dcl_dataset *ds);
// Name of class k ("T-shirt/top", a sub-folder's name, "7" for an IDX set), or NULL when k is
// not in 0..num_classes-1.
const char *dcl_dataset_class_name(const dcl_dataset *ds, int k);
// The labels (size) of a labelled fixed set, or NULL.
const int32_t *dcl_dataset_labels(const dcl_dataset *ds);
// A training batch x (N, D) for step `step` (≤ DCL_DATA_MAX_STEP): fresh points from stream
// (seed, DATA, step), or for a fixed set or CSV the points at indices drawn from that stream (with
// replacement). Point i of a step does not depend on N.
dcl_status dcl_dataset_batch(dcl_dataset *ds, float *x, size_t N, uint64_t step);
// Like dcl_dataset_batch (the same x), also writing each example's label (N) when labels is not
// NULL; unlabelled sets write 0.
dcl_status dcl_dataset_batch_labels(dcl_dataset *ds, float *x, int32_t *labels, size_t N,
                                    uint64_t step);
// Examples first .. first + N − 1 of step's batch (the same bits as those rows of a
// dcl_dataset_batch_labels of first + N examples): one process's shard of a data-parallel batch.
dcl_status dcl_dataset_batch_at(dcl_dataset *ds, float *x, int32_t *labels, uint64_t first,
                                size_t N, uint64_t step);
// N evaluation points x (N, D), independent of every training batch and of the fixed set: fresh
// points of the underlying distribution (also for spiral:n=40), drawn at the reserved step
// UINT32_MAX - 1; different salts (≤ DCL_DATA_MAX_SALT) give independent points. A CSV has no
// distribution beyond its rows, so for a CSV or an image set these are rows (images) drawn with
// replacement (shapesS draws fresh images).
dcl_status dcl_dataset_fresh(dcl_dataset *ds, float *x, size_t N, uint64_t salt);

// Writes points x (n, D) as CSV ("x0,x1,..." header then one row per point, %.9g), atomically.
// Non-finite values are written as nan/inf (which the reader rejects).
dcl_status dcl_csv_write(const char *path, const float *x, size_t n, size_t D);
// The same with `header` (one line, D comma-separated names: "step,loss") instead of x0,x1,...
dcl_status dcl_csv_write_named(const char *path, const float *x, size_t n, size_t D,
                               const char *header);

#endif
