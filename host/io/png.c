// PNG output: an 8-bit RGB image is encoded by libpng into memory, then written atomically
// (io/atomic_file.h), so a reader never sees a half-written image.
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"     // dcl__fail
#include "diffcl/plot.h"    // dcl_png_write_rgb
#include "io/atomic_file.h" // dcl__atomic_write

// Larger images are refused: 16384² RGB is 768 MiB, far beyond any plot or sample grid.
#define PNG_MAX_SIDE 16384

// The encoded bytes, grown as libpng writes them, and libpng's error message.
typedef struct png_sink {
    unsigned char *data;
    size_t size, cap;
    char message[256];
} png_sink;

static void on_error(png_structp png, png_const_charp msg) {
    png_sink *sink = png_get_error_ptr(png);
    snprintf(sink->message, sizeof sink->message, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; // Warnings (e.g. about ancillary chunks) do not affect the image.
}

static void on_write(png_structp png, png_bytep bytes, size_t n) {
    png_sink *sink = png_get_io_ptr(png);
    if (n > SIZE_MAX / 2 - sink->size) png_error(png, "encoded image too large");
    if (sink->size + n > sink->cap) {
        size_t cap = sink->cap ? sink->cap : 65536;
        while (cap < sink->size + n) cap *= 2;
        unsigned char *p = realloc(sink->data, cap);
        if (!p) png_error(png, "out of memory");
        sink->data = p;
        sink->cap = cap;
    }
    memcpy(sink->data + sink->size, bytes, n);
    sink->size += n;
}

static void on_flush(png_structp png) { (void)png; }

// Encodes rgb (h, w, 3) into sink; returns 0 on success, -1 with sink->message set.
static int encode(png_sink *sink, const unsigned char *rgb, int w, int h) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, sink, on_error, on_warning);
    if (!png) {
        snprintf(sink->message, sizeof sink->message, "cannot create the libpng writer");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(sink->message, sizeof sink->message, "cannot create the libpng info struct");
        return -1;
    }
    // Nothing local is modified between setjmp and a longjmp, so nothing needs to be volatile.
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, sink, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

dcl_status dcl_png_write_rgb(const char *path, const unsigned char *rgb, int w, int h) {
    if (!path || !*path) return dcl__fail(DCL_ERR_ARG, "PNG output needs a file name");
    if (!rgb || w <= 0 || h <= 0 || w > PNG_MAX_SIDE || h > PNG_MAX_SIDE)
        return dcl__fail(DCL_ERR_ARG, "writing %s: image size %dx%d is outside 1..%d per side",
                         path, w, h, PNG_MAX_SIDE);
    png_sink sink = {0};
    if (encode(&sink, rgb, w, h) != 0) {
        free(sink.data);
        return dcl__fail(DCL_ERR_IO, "writing %s: PNG encoding failed: %s", path, sink.message);
    }
    dcl_status s = dcl__atomic_write(path, sink.data, sink.size);
    free(sink.data);
    return s;
}
