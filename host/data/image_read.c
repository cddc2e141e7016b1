// What the readers (idx.c, pngdir.c, csv.c) share: opening an input that must be a regular file,
// which images a subset n=K keeps, and the end of a read (fill the sizes, or free on failure).
// image_set.c dispatches to the readers; they do not call back into it.
#define _POSIX_C_SOURCE 200809L // fdopen, O_CLOEXEC

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"         // dcl__fail
#include "data/data_internal.h" // dcl__image_set, DCL_STEP_FIXED_SET
#include "diffcl/rng.h"         // dcl_rng_bits_at, DCL_RNG_DATA

dcl_status dcl__open_input(const char *path, int *fd, uint64_t *size) {
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer (a path named inside a
    // checkpoint may be one); it is refused below anyway.
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0) return dcl__fail(DCL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    dcl_status s = DCL_OK;
    if (fstat(*fd, &st) != 0)
        s = dcl__fail(DCL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = dcl__fail(DCL_ERR_IO, "%s is %s, not a regular file: data is read only from files",
                      path,
                      S_ISDIR(st.st_mode)    ? "a folder"
                      : S_ISFIFO(st.st_mode) ? "a FIFO or pipe"
                      : S_ISCHR(st.st_mode)  ? "a character device"
                                             : "a special file");
    else if (fcntl(*fd, F_SETFL, fcntl(*fd, F_GETFL) & ~O_NONBLOCK) != 0)
        s = dcl__fail(DCL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    if (s != DCL_OK) {
        close(*fd);
        *fd = -1;
        return s;
    }
    if (size) *size = (uint64_t)st.st_size;
    return DCL_OK;
}

FILE *dcl__fopen_input(const char *path, dcl_status *s) {
    int fd;
    *s = dcl__open_input(path, &fd, NULL);
    if (*s != DCL_OK) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        *s = dcl__fail(DCL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

void dcl__image_set_free(dcl__image_set *s) {
    if (!s) return;
    for (int k = 0; s->class_names && k < s->n_classes; k++) free(s->class_names[k]);
    free(s->class_names);
    free(s->x);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

dcl_status dcl__image_subset(unsigned char **keep, size_t total, size_t k, uint64_t seed,
                             const char *what) {
    *keep = NULL;
    if (k > total)
        return dcl__fail(DCL_ERR_ARG, "n=%zu asks for more images than the %zu of %s", k, total,
                         what);
    unsigned char *mask = malloc(total ? total : 1);
    if (!mask) return dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", what);
    if (k == 0 || k == total) {
        memset(mask, 1, total);
        *keep = mask;
        return DCL_OK;
    }
    // The first k steps of a Fisher-Yates shuffle of 0..total-1; step i swaps in an index drawn
    // from element i of the stream (total ≤ DCL_DATA_MAX_FIXED < 2^32).
    uint32_t *perm = malloc(total * sizeof *perm);
    if (!perm) {
        free(mask);
        return dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", what);
    }
    for (size_t i = 0; i < total; i++) perm[i] = (uint32_t)i;
    for (size_t i = 0; i < k; i++) {
        uint32_t bits = dcl_rng_bits_at(seed, DCL_RNG_DATA, DCL_STEP_FIXED_SET, i);
        size_t j = i + (size_t)(((uint64_t)bits * (total - i)) >> 32);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memset(mask, 0, total);
    for (size_t i = 0; i < k; i++) mask[perm[i]] = 1;
    free(perm);
    *keep = mask;
    return DCL_OK;
}

dcl_status dcl__image_set_finish(dcl__image_set *out, dcl_status s, size_t n, int C, int H, int W) {
    if (s != DCL_OK) {
        dcl__image_set_free(out);
        return s;
    }
    out->n = n;
    out->C = C;
    out->H = H;
    out->W = W;
    return DCL_OK;
}
