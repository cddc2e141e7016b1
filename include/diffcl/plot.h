// PNG plots readable at a glance: axes with ticks, a title, a legend where colours mean something.
#ifndef DIFFCL_PLOT_H
#define DIFFCL_PLOT_H

#include <stddef.h>

#include "diffcl/status.h"

// 2D scatter, 640x640: `data` (n_data, 2) in grey-blue under `samples` (n_samples, 2) in orange
// (either may be empty); a data set of at most 200 points is drawn last instead, large and
// outlined, so samples piled on its points cannot hide them. Both are drawn on the same axes with
// equal scales, fitted to the data (or the samples if no data); the legend counts samples that
// fall off the plot.
dcl_status dcl_plot_scatter(const char *path, const char *title, const float *data, size_t n_data,
                            const float *samples, size_t n_samples);
// Trajectories as in the tutorial's figures 6 and 10, 720x640: traj (K + 1, N, 2) with times
// t[0..K] (either order), every point coloured by its t (a colour bar shows the scale; noise light,
// data dark) and thin lines between consecutive points; the first max_paths (≥ 1) paths drawn.
dcl_status dcl_plot_trajectories(const char *path, const char *title, const float *traj,
                                 const double *t, size_t K, size_t N, size_t max_paths);
// A curve y(x), 800x500, e.g. the training loss over steps; log_y for a logarithmic y axis.
// Points with a non-finite value (or y <= 0 on a log axis) leave a gap.
dcl_status dcl_plot_curve(const char *path, const char *title, const char *xlabel,
                          const char *ylabel, const float *x, const float *y, size_t n, int log_y);

// Several curves on shared axes, and several such panels stacked under one title (800 wide; one
// panel 800x500): each panel has its own y axis and x ticks, the same x label, and a legend of the
// series that have a label. Series colours follow their order (blue, orange, green, red, ...).
typedef struct dcl_plot_series {
    const char *label; // legend text, or NULL
    const float *x, *y;
    size_t n;
} dcl_plot_series;
typedef struct dcl_plot_panel {
    const char *ylabel;
    const dcl_plot_series *series;
    size_t n_series;
    int log_y;
} dcl_plot_panel;
dcl_status dcl_plot_panels(const char *path, const char *title, const char *xlabel,
                           const dcl_plot_panel *panels, size_t n_panels);

// Writes an 8-bit RGB image (h, w, 3) as PNG (host/io/png.c).
dcl_status dcl_png_write_rgb(const char *path, const unsigned char *rgb, int w, int h);

#endif
