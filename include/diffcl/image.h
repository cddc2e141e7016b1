// Sample grids: N images tiled into one PNG, rows × columns with padding and optional row labels.
//
// Dimension legend: N images, C channels (1 grey or 3 RGB), H height, W width.
#ifndef DIFFCL_IMAGE_H
#define DIFFCL_IMAGE_H

#include <stddef.h>

#include "diffcl/status.h"

// Longest row label drawn (longer ones are cut).
#define DCL_GRID_MAX_LABEL 64

// Tiles N images x (N, C, H, W), values in [-1, 1] (clamped; NaN drawn as -1), C = 1 or 3, into a
// PNG with `cols` columns and ceil(N / cols) rows (a last row may be short), `pad` pixels (≥ 0) of
// white padding around and between the images, every pixel enlarged to scale × scale (scale ≥ 1).
// A value v becomes the byte floor((v + 1) / 2 · 255 + 0.5), so p / 127.5 - 1 gives back p.
// row_labels (n_rows = ceil(N / cols) strings, any NULL or "" for none; row_labels may be NULL) are
// drawn in black left of each row with the embedded 5x7 font enlarged t = clamp(H·scale / 21, 1, 4)
// times, vertically centred on the row. The image is
//   width  = L + cols · W · scale + (cols + 1) · pad
//   height = rows · H · scale + (rows + 1) · pad
// with L = 0 without labels, else pad + 6 · t · (characters of the longest label, ≤ 64). Written
// atomically; at most 16384 pixels per side (DCL_ERR_ARG beyond).
dcl_status dcl_image_grid_write(const char *path, const float *x, size_t N, int C, int H, int W,
                                int cols, int pad, int scale, const char *const *row_labels,
                                int n_rows);

#endif
