// One contiguous device buffer with named views (llm.c's ParameterTensors): parameters,
// gradients, Adam moments and EMA weights each live in one arena of the same layout, so the
// optimizer, EMA, gradient norm and NaN checks are one kernel over the whole buffer.
#ifndef DIFFCL_ARENA_H
#define DIFFCL_ARENA_H

#include <stddef.h>

#include "diffcl/device.h"

#define DCL_ARENA_NAME_MAX 64

// One named tensor of the layout: PyTorch-style dotted name and element count.
typedef struct dcl_arena_view {
    char name[DCL_ARENA_NAME_MAX]; // "mlp.fc1.weight"
    size_t off;                    // element offset in the arena (set by dcl_arena_init)
    size_t n;                      // elements
} dcl_arena_view;

typedef struct dcl_arena {
    dcl_buffer *buf;       // all views, back to back, each starting on a 16-element boundary
    size_t n;              // total elements including alignment padding
    int count;             // number of views
    dcl_arena_view *views; // in layout order
} dcl_arena;

// Lays out count views (names and sizes taken from views[]; their off fields are ignored) on dev,
// allocates the buffer (named `name`, zero-filled). Names must be unique and non-empty.
dcl_status dcl_arena_init(dcl_arena *a, dcl_device *dev, const char *name,
                          const dcl_arena_view *views, int count);
// A second arena with the layout of `like` (gradients, moments, EMA), zero-filled.
dcl_status dcl_arena_init_like(dcl_arena *a, const dcl_arena *like, const char *name);
void dcl_arena_free(dcl_arena *a);
// Index of the view with this name, or -1.
int dcl_arena_find(const dcl_arena *a, const char *name);
// Device pointer to view i.
dcl_ptr dcl_arena_ptr(const dcl_arena *a, int i);

#endif
