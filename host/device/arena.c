// Arenas: one device buffer holding many named tensors at 16-element-aligned offsets.
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "diffcl/arena.h"
#include "diffcl/ops.h" // dcl_fill

// 16 floats = 64 bytes: views start on cache-line and typical GPU alignment boundaries.
#define ALIGN 16

static dcl_status alloc_zeroed(dcl_arena *a, dcl_device *dev, const char *name) {
    dcl_status s = dcl_buffer_alloc(&a->buf, dev, a->n, name);
    if (s == DCL_OK) s = dcl_fill(dev, dcl_at(a->buf, 0), 0.0f, a->n);
    if (s != DCL_OK) dcl_arena_free(a);
    return s;
}

dcl_status dcl_arena_init(dcl_arena *a, dcl_device *dev, const char *name,
                          const dcl_arena_view *views, int count) {
    memset(a, 0, sizeof *a);
    if (count < 0) return dcl__fail(DCL_ERR_ARG, "arena '%s': negative view count", name);
    a->views = calloc(count ? (size_t)count : 1, sizeof *a->views);
    if (!a->views) return dcl__fail(DCL_ERR_NOMEM, "out of host memory for arena '%s'", name);
    size_t off = 0;
    for (int i = 0; i < count; i++) {
        if (!views[i].name[0] || dcl_arena_find(a, views[i].name) >= 0) {
            dcl_arena_free(a);
            return dcl__fail(DCL_ERR_ARG, "arena '%s': view %d name '%s' is empty or repeated",
                             name, i, views[i].name);
        }
        a->views[i] = views[i];
        a->views[i].off = off;
        off += (views[i].n + ALIGN - 1) / ALIGN * ALIGN;
        a->count = i + 1;
    }
    a->n = off;
    return alloc_zeroed(a, dev, name);
}

dcl_status dcl_arena_init_like(dcl_arena *a, const dcl_arena *like, const char *name) {
    memset(a, 0, sizeof *a);
    a->views = malloc((like->count ? (size_t)like->count : 1) * sizeof *a->views);
    if (!a->views) return dcl__fail(DCL_ERR_NOMEM, "out of host memory for arena '%s'", name);
    memcpy(a->views, like->views, (size_t)like->count * sizeof *a->views);
    a->count = like->count;
    a->n = like->n;
    return alloc_zeroed(a, dcl_buffer_device(like->buf), name);
}

void dcl_arena_free(dcl_arena *a) {
    dcl_buffer_free(a->buf);
    free(a->views);
    memset(a, 0, sizeof *a);
}

int dcl_arena_find(const dcl_arena *a, const char *name) {
    for (int i = 0; i < a->count; i++)
        if (strcmp(a->views[i].name, name) == 0) return i;
    return -1;
}

dcl_ptr dcl_arena_ptr(const dcl_arena *a, int i) { return dcl_at(a->buf, a->views[i].off); }
