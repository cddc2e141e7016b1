// Reading a PNG back in a test: 8-bit RGB through libpng's simplified API.
#ifndef DIFFCL_TESTS_TESTLIB_PNG_H
#define DIFFCL_TESTS_TESTLIB_PNG_H

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct image {
    int w, h;
    unsigned char *rgb; // (h, w, 3)
} image;

// The PNG at path as RGB; rgb is NULL (with a message) on failure. The caller frees rgb.
static inline image read_png(const char *path) {
    image im = {0, 0, NULL};
    png_image p;
    memset(&p, 0, sizeof p);
    p.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&p, path)) {
        fprintf(stderr, "reading %s: %s\n", path, p.message);
        return im;
    }
    p.format = PNG_FORMAT_RGB;
    im.rgb = malloc(PNG_IMAGE_SIZE(p));
    if (!im.rgb || !png_image_finish_read(&p, NULL, im.rgb, 0, NULL)) {
        fprintf(stderr, "decoding %s: %s\n", path, p.message);
        free(im.rgb);
        im.rgb = NULL;
        png_image_free(&p);
        return im;
    }
    im.w = (int)p.width, im.h = (int)p.height;
    return im;
}

#endif
