// Folders of PNGs as image sets (png:FOLDER): file names listed and sorted (byte order, so the set
// is the same on every machine), optional class sub-folders, and a strict libpng reader for
// untrusted files, following the libpng manual (http://www.libpng.org/pub/png/libpng-manual.txt):
// size limits (png_set_user_limits, chunk cache and chunk size) set after png_create_read_struct
// and before png_read_info, CRC errors fatal for every chunk (PNG_CRC_ERROR_QUIT), setjmp error
// handling in the one function that calls libpng (read_png), no allocation between setjmp and a
// longjmp. Each file is read twice: its header first (sizes and colour type of the whole folder,
// before anything large is allocated), then its pixels.
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"         // dcl__fail
#include "data/data_internal.h" // dcl__image_subset, dcl__image_set_finish, dcl__pixel_to_float
#include "diffcl/data.h"        // DCL_IMAGE_MAX_*, DCL_DATA_MAX_FIXED

// libpng's own limits on ancillary chunks: how many are kept and how large one may be.
#define PNG_CHUNK_CACHE_MAX 128
#define PNG_CHUNK_MALLOC_MAX (4u << 20)

// Test hook (data/data_internal.h): called between the two passes when set.
void (*dcl__pngdir_between_passes)(const char *folder);

// A growing list of malloc'ed strings.
typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static void names_free(name_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int names_add(name_list *l, const char *a, const char *b) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    size_t na = strlen(a), nb = b ? strlen(b) : 0;
    char *s = malloc(na + nb + 2);
    if (!s) return -1;
    memcpy(s, a, na);
    if (b) {
        s[na] = '/';
        memcpy(s + na + 1, b, nb + 1);
    } else {
        s[na] = '\0';
    }
    l->v[l->n++] = s;
    return 0;
}

static int by_bytes(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_png_name(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

// The PNG files (full paths) and the sub-folders (names) of folder, each sorted.
static dcl_status list_folder(const char *folder, name_list *pngs, name_list *dirs) {
    DIR *d = opendir(folder);
    if (!d) return dcl__fail(DCL_ERR_IO, "cannot open folder %s: %s", folder, strerror(errno));
    dcl_status s = DCL_OK;
    struct dirent *e;
    errno = 0;
    while (s == DCL_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; // ".", ".." and hidden entries
        size_t len = strlen(folder) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) {
            s = dcl__fail(DCL_ERR_NOMEM, "listing %s: out of memory", folder);
            break;
        }
        snprintf(path, len, "%s/%s", folder, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0) {
            s = dcl__fail(DCL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        } else if (S_ISDIR(st.st_mode) && dirs) {
            if (names_add(dirs, e->d_name, NULL) != 0)
                s = dcl__fail(DCL_ERR_NOMEM, "listing %s: out of memory", folder);
        } else if (S_ISREG(st.st_mode) && is_png_name(e->d_name)) {
            if (pngs->n >= DCL_DATA_MAX_FIXED)
                s = dcl__fail(DCL_ERR_FORMAT, "%s: more than %d PNG files", folder,
                              DCL_DATA_MAX_FIXED);
            else if (names_add(pngs, folder, e->d_name) != 0)
                s = dcl__fail(DCL_ERR_NOMEM, "listing %s: out of memory", folder);
        }
        free(path);
        errno = 0;
    }
    if (s == DCL_OK && errno)
        s = dcl__fail(DCL_ERR_IO, "listing folder %s: %s", folder, strerror(errno));
    closedir(d);
    if (pngs->n > 1) qsort(pngs->v, pngs->n, sizeof *pngs->v, by_bytes);
    if (dirs && dirs->n > 1) qsort(dirs->v, dirs->n, sizeof *dirs->v, by_bytes);
    return s;
}

// libpng's callbacks: the error message (with the last warning, which says why libpng rejected
// an IHDR, e.g. "Image width exceeds user limit in IHDR"), then a jump back to read_png.
typedef struct png_job {
    char message[256];
    char warning[120];
    char changed[48]; // pass 2: how the file differs from its header in pass 1 ("now 8x8")
} png_job;

static void on_error(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s%s%s%s", msg ? msg : "unknown libpng error",
             job->warning[0] ? " (" : "", job->warning, job->warning[0] ? ")" : "");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->warning, sizeof job->warning, "%s", msg ? msg : "");
}

// One PNG's size and channels after the conversions (1 grey, 3 colour).
typedef struct png_shape {
    int w, h, C;
} png_shape;

// Reads path's header into *shape, and when pixels is not NULL, its pixels as 8-bit want->C-channel
// rows (rows[y] = pixels + y * w * C, rows has want->h entries, both sized by the caller from an
// earlier header pass). A file whose size or colour changed since that pass (another process
// rewrote it) is an error before the buffers are touched. Returns 0, or -1 with job->message set.
static int read_png(FILE *f, png_job *job, png_shape *shape, const png_shape *want,
                    unsigned char *pixels, unsigned char **rows) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, on_error, on_warning);
    if (!png) {
        snprintf(job->message, sizeof job->message, "cannot create the libpng reader");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(job->message, sizeof job->message, "cannot create the libpng info struct");
        return -1;
    }
    // Nothing local is modified between setjmp and a longjmp, so nothing needs to be volatile;
    // all memory is the caller's.
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_user_limits(png, DCL_IMAGE_MAX_SIDE, DCL_IMAGE_MAX_SIDE);
    png_set_chunk_cache_max(png, PNG_CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MALLOC_MAX);
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_init_io(png, f);
    png_read_info(png, info);
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    shape->w = (int)png_get_image_width(png, info);
    shape->h = (int)png_get_image_height(png, info);
    shape->C = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1; // palettes count as colour
    if (!pixels) {
        png_destroy_read_struct(&png, &info, NULL);
        return 0;
    }
    int C = want->C;
    if (shape->w != want->w || shape->h != want->h || shape->C > C) {
        snprintf(job->changed, sizeof job->changed, "now %dx%d%s", shape->w, shape->h,
                 shape->C > C ? " colour" : "");
        png_error(png, "changed while being read");
    }
    if (depth == 16) png_set_scale_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color & PNG_COLOR_MASK_ALPHA || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    if (C == 3 && shape->C == 1) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_bit_depth(png, info) != 8 || png_get_channels(png, info) != C ||
        png_get_rowbytes(png, info) != (size_t)shape->w * (size_t)C)
        png_error(png, "unexpected pixel layout after conversion to 8-bit grey or RGB");
    for (int y = 0; y < shape->h; y++) rows[y] = pixels + (size_t)y * (size_t)shape->w * C;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

// read_png on the file at path, with errors naming it.
static dcl_status read_png_file(const char *path, png_shape *shape, const png_shape *want,
                                unsigned char *pixels, unsigned char **rows) {
    dcl_status opened;
    FILE *f = dcl__fopen_input(path, &opened);
    if (!f) return opened;
    png_job job;
    job.message[0] = job.warning[0] = job.changed[0] = '\0';
    int rc = read_png(f, &job, shape, want, pixels, rows);
    int read_error = ferror(f);
    fclose(f);
    if (rc == 0) return DCL_OK;
    if (job.changed[0])
        return dcl__fail(DCL_ERR_FORMAT, "%s changed while being read (%s)", path, job.changed);
    if (read_error) return dcl__fail(DCL_ERR_IO, "reading %s: read error", path);
    return dcl__fail(DCL_ERR_FORMAT, "%s: not a valid PNG: %s", path, job.message);
}

// The files: every PNG path and its label (or -1), the class names.
typedef struct folder_set {
    name_list files;
    int *labels;
    name_list classes;
} folder_set;

static dcl_status list_classes(folder_set *fs, const char *folder) {
    name_list top = {0};
    dcl_status s = list_folder(folder, &top, &fs->classes);
    if (s == DCL_OK && top.n && fs->classes.n)
        s = dcl__fail(DCL_ERR_FORMAT,
                      "%s holds PNG files and sub-folders (%s/...): put every image in a class "
                      "sub-folder, or none",
                      folder, fs->classes.v[0]);
    if (s == DCL_OK && top.n) {
        fs->files = top;
        names_free(&fs->classes);
        return DCL_OK;
    }
    names_free(&top);
    if (s == DCL_OK && fs->classes.n == 0)
        s = dcl__fail(DCL_ERR_FORMAT, "%s holds no PNG files (and no class sub-folders)", folder);
    if (s == DCL_OK && fs->classes.n > DCL_IMAGE_MAX_CLASSES)
        s = dcl__fail(DCL_ERR_FORMAT, "%s: %zu class sub-folders, at most %d", folder,
                      fs->classes.n, DCL_IMAGE_MAX_CLASSES);
    size_t cap = 0;
    for (size_t k = 0; s == DCL_OK && k < fs->classes.n; k++) {
        char *sub = malloc(strlen(folder) + strlen(fs->classes.v[k]) + 2);
        if (!sub) return dcl__fail(DCL_ERR_NOMEM, "listing %s: out of memory", folder);
        sprintf(sub, "%s/%s", folder, fs->classes.v[k]);
        size_t before = fs->files.n;
        s = list_folder(sub, &fs->files, NULL);
        if (s == DCL_OK && fs->files.n == before)
            s = dcl__fail(DCL_ERR_FORMAT, "class folder %s holds no PNG files", sub);
        free(sub);
        if (s == DCL_OK && fs->files.n > cap) {
            cap = fs->files.cap;
            int *l = realloc(fs->labels, cap * sizeof *l);
            if (!l) return dcl__fail(DCL_ERR_NOMEM, "listing %s: out of memory", folder);
            fs->labels = l;
        }
        for (size_t i = before; s == DCL_OK && i < fs->files.n; i++) fs->labels[i] = (int)k;
    }
    if (s == DCL_OK && fs->files.n > DCL_DATA_MAX_FIXED)
        s = dcl__fail(DCL_ERR_FORMAT, "%s: more than %d PNG files", folder, DCL_DATA_MAX_FIXED);
    return s;
}

// Pass 1: every kept file's header; all must have one size. Sets *shape (C = 3 if any is colour).
static dcl_status check_headers(const folder_set *fs, const unsigned char *keep, png_shape *shape) {
    const char *first = NULL;
    for (size_t i = 0; i < fs->files.n; i++) {
        if (!keep[i]) continue;
        png_shape sh;
        dcl_status s = read_png_file(fs->files.v[i], &sh, NULL, NULL, NULL);
        if (s != DCL_OK) return s;
        if (!first) {
            *shape = sh;
            first = fs->files.v[i];
        } else if (sh.w != shape->w || sh.h != shape->h) {
            return dcl__fail(DCL_ERR_FORMAT,
                             "%s is %dx%d pixels but %s is %dx%d: every image of a set needs "
                             "one size",
                             fs->files.v[i], sh.w, sh.h, first, shape->w, shape->h);
        }
        if (sh.C > shape->C) shape->C = sh.C;
    }
    return DCL_OK;
}

// Pass 2: the kept files' pixels into out->x (n, C, H, W) and their labels.
static dcl_status read_pixels(const folder_set *fs, const unsigned char *keep, png_shape shape,
                              dcl__image_set *out) {
    size_t HW = (size_t)shape.w * shape.h, D = HW * shape.C;
    unsigned char *pixels = malloc(D);
    unsigned char **rows = malloc((size_t)shape.h * sizeof *rows);
    if (!pixels || !rows) {
        free(pixels);
        free(rows);
        return dcl__fail(DCL_ERR_NOMEM, "reading PNGs of %dx%d: out of memory", shape.w, shape.h);
    }
    dcl_status s = DCL_OK;
    size_t j = 0;
    for (size_t i = 0; i < fs->files.n && s == DCL_OK; i++) {
        if (!keep[i]) continue;
        png_shape sh;
        s = read_png_file(fs->files.v[i], &sh, &shape, pixels, rows);
        if (s != DCL_OK) break;
        // HWC bytes to CHW floats.
        float *x = out->x + j * D;
        for (int c = 0; c < shape.C; c++)
            for (size_t p = 0; p < HW; p++)
                x[(size_t)c * HW + p] = dcl__pixel_to_float(pixels[p * shape.C + c]);
        if (out->labels) out->labels[j] = fs->labels[i];
        j++;
    }
    free(pixels);
    free(rows);
    return s;
}

dcl_status dcl__pngdir_read(dcl__image_set *out, const char *folder, size_t k, uint64_t seed) {
    memset(out, 0, sizeof *out);
    folder_set fs;
    memset(&fs, 0, sizeof fs);
    unsigned char *keep = NULL;
    png_shape shape = {0, 0, 1};
    dcl_status s = list_classes(&fs, folder);
    if (s == DCL_OK) s = dcl__image_subset(&keep, fs.files.n, k, seed, folder);
    if (s == DCL_OK) s = check_headers(&fs, keep, &shape);
    if (s == DCL_OK && dcl__pngdir_between_passes) dcl__pngdir_between_passes(folder);
    size_t n = k ? k : fs.files.n, D = (size_t)shape.w * shape.h * shape.C;
    if (s == DCL_OK && (uint64_t)n * D > DCL_IMAGE_MAX_VALUES)
        s = dcl__fail(DCL_ERR_FORMAT,
                      "%s: %zu images of %zu values are more than %llu; keep fewer (n=K)", folder,
                      n, D, (unsigned long long)DCL_IMAGE_MAX_VALUES);
    if (s == DCL_OK) {
        out->x = malloc(n * D * sizeof *out->x);
        if (fs.labels) out->labels = malloc(n * sizeof *out->labels);
        if (!out->x || (fs.labels && !out->labels))
            s = dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", folder);
    }
    if (s == DCL_OK) s = read_pixels(&fs, keep, shape, out);
    if (s == DCL_OK && fs.labels) {
        out->n_classes = (int)fs.classes.n;
        out->class_names = fs.classes.v; // taken over
        memset(&fs.classes, 0, sizeof fs.classes);
    }
    names_free(&fs.files);
    names_free(&fs.classes);
    free(fs.labels);
    free(keep);
    return dcl__image_set_finish(out, s, n, shape.C, shape.h, shape.w);
}
