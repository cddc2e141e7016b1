// The IDX reader (MNIST, Fashion-MNIST): a strict reader for untrusted files, gzip-compressed or
// raw (zlib's gz* functions read both). The format (http://yann.lecun.com/exdb/mnist/): a
// big-endian magic 00 00 TT DD (TT the element type, DD the number of dimensions), DD big-endian
// uint32 sizes, then the data in C order. Rules, stricter than torchvision's reader: magic
// 00 00 08 03 for images (N×H×W) and 00 00 08 01 for labels (N), type 0x08 (unsigned byte), every
// dimension ≥ 1, the exact (decompressed) size the header declares with nothing after it, equal
// counts, labels below the number of classes. Data is streamed image by image, so a gzip bomb
// stops at the declared size.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> // close
#include <zlib.h>

#include "core/error.h"         // dcl__fail
#include "data/data_internal.h" // dcl__image_subset, dcl__image_set_finish, dcl__pixel_to_float
#include "diffcl/data.h"        // DCL_IMAGE_MAX_*, DCL_DATA_MAX_FIXED

enum { IDX_UBYTE = 0x08 };

typedef struct idx_file {
    const char *path;
    gzFile gz;
    int nd;
    uint32_t dim[3];
    uint64_t data_bytes; // product of the dimensions
    uint64_t done;       // data bytes read so far
} idx_file;

static void idx_close(idx_file *f) {
    if (f->gz) gzclose_r(f->gz);
    f->gz = NULL;
}

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

// Why gzread returned got < want bytes: a gzip or I/O error (reported, returned), or DCL_OK for a
// plain end of file, which the caller reports. where says where ("after 1234 bytes of data").
static dcl_status short_read(idx_file *f, int got, const char *where) {
    int err = Z_OK;
    const char *msg = gzerror(f->gz, &err);
    size_t np = strlen(f->path); // zlib's message starts "PATH: "
    if (msg && strncmp(msg, f->path, np) == 0 && msg[np] == ':' && msg[np + 1] == ' ')
        msg += np + 2;
    if (got < 0 && err == Z_ERRNO)
        return dcl__fail(DCL_ERR_IO, "reading %s %s: %s", f->path, where,
                         strerror(errno ? errno : EIO));
    if (err != Z_OK)
        return dcl__fail(DCL_ERR_FORMAT, "%s: corrupt or truncated gzip data %s: %s", f->path,
                         where, msg ? msg : "zlib error");
    return DCL_OK;
}

enum { READ_SHORT = 1 };

// Reads exactly n bytes (n < 2^31): DCL_OK, READ_SHORT at a plain end of file (*got bytes read),
// or an error already reported.
static int read_bytes(idx_file *f, void *buf, size_t n, size_t *got, const char *where) {
    int r = gzread(f->gz, buf, (unsigned)n);
    *got = r > 0 ? (size_t)r : 0;
    if (r == (int)n) return DCL_OK;
    dcl_status s = short_read(f, r, where);
    return s != DCL_OK ? (int)s : READ_SHORT;
}

// Opens path and checks its header: type 0x08 and nd dimensions (magic 00 00 08 nd).
static dcl_status idx_open(idx_file *f, const char *path, int nd, const char *kind) {
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd;
    uint64_t size;
    dcl_status s = dcl__open_input(path, &fd, &size);
    if (s != DCL_OK) return s;
    errno = 0;
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return dcl__fail(DCL_ERR_IO, "cannot open %s: %s", path,
                         errno ? strerror(errno) : "out of memory");
    }
    gzbuffer(f->gz, 1 << 16);
    unsigned char h[16];
    size_t got = 0, want = 4 + 4 * (size_t)nd;
    int r = read_bytes(f, h, 4, &got, "in the header");
    if (r < 0) return (dcl_status)r;
    if (r == READ_SHORT)
        return dcl__fail(DCL_ERR_FORMAT, "%s: %s (%zu bytes), not an IDX %s file", path,
                         got ? "too short for an IDX header" : "empty", got, kind);
    if (h[0] != 0 || h[1] != 0 || h[3] < 1 || h[3] > 4)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: not an IDX file (magic bytes %02x %02x %02x %02x; an IDX %s file "
                         "starts 00 00 08 %02x)",
                         path, h[0], h[1], h[2], h[3], kind, nd);
    if (h[2] != IDX_UBYTE)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: IDX element type 0x%02x, expected 0x08 (unsigned bytes) for %s", path,
                         h[2], kind);
    if (h[3] != nd)
        return dcl__fail(DCL_ERR_FORMAT, "%s: IDX file of %d dimensions, expected %d for %s", path,
                         h[3], nd, kind);
    r = read_bytes(f, h + 4, want - 4, &got, "in the header");
    if (r < 0) return (dcl_status)r;
    if (r == READ_SHORT)
        return dcl__fail(DCL_ERR_FORMAT, "%s: truncated IDX header (%zu of %zu bytes)", path,
                         4 + got, want);
    f->nd = nd;
    f->data_bytes = 1;
    for (int i = 0; i < nd; i++) {
        f->dim[i] = be32(h + 4 + 4 * i);
        if (f->dim[i] == 0)
            return dcl__fail(DCL_ERR_FORMAT, "%s: IDX dimension %d of %d is 0", path, i + 1, nd);
    }
    if (f->dim[0] > DCL_DATA_MAX_FIXED)
        return dcl__fail(DCL_ERR_FORMAT, "%s: %u items, at most %d are allowed", path, f->dim[0],
                         DCL_DATA_MAX_FIXED);
    if (nd == 3 && (f->dim[1] > DCL_IMAGE_MAX_SIDE || f->dim[2] > DCL_IMAGE_MAX_SIDE))
        return dcl__fail(DCL_ERR_FORMAT, "%s: images of %ux%u pixels, at most %d per side", path,
                         f->dim[1], f->dim[2], DCL_IMAGE_MAX_SIDE);
    // Each factor is now below 2^24, so the product of three fits in 64 bits.
    for (int i = 0; i < nd; i++) f->data_bytes *= f->dim[i];
    if (f->data_bytes > DCL_IMAGE_MAX_FILE)
        return dcl__fail(DCL_ERR_FORMAT, "%s: %llu bytes of data, more than the limit %llu", path,
                         (unsigned long long)f->data_bytes, (unsigned long long)DCL_IMAGE_MAX_FILE);
    // An uncompressed file's size is known: a header that declares more than the file holds is
    // refused before anything is allocated for it.
    if (gzdirect(f->gz) && size < want + f->data_bytes)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: truncated: the header declares %llu bytes of data but the file holds "
                         "%llu",
                         path, (unsigned long long)f->data_bytes,
                         (unsigned long long)(size >= want ? size - want : 0));
    return DCL_OK;
}

// Reads the next n data bytes into buf.
static dcl_status idx_read(idx_file *f, void *buf, size_t n) {
    char what[64];
    snprintf(what, sizeof what, "after %llu bytes of data", (unsigned long long)f->done);
    size_t got = 0;
    int r = read_bytes(f, buf, n, &got, what);
    f->done += got;
    if (r != READ_SHORT) return (dcl_status)r;
    if (f->nd == 3)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: truncated: the header declares %u images of %ux%u pixels (%llu bytes "
                         "of data) but the file ends after %llu",
                         f->path, f->dim[0], f->dim[1], f->dim[2],
                         (unsigned long long)f->data_bytes, (unsigned long long)f->done);
    return dcl__fail(DCL_ERR_FORMAT,
                     "%s: truncated: the header declares %u labels but the file ends after %llu",
                     f->path, f->dim[0], (unsigned long long)f->done);
}

// After all declared data: the file must end here, and a gzip stream must end cleanly.
static dcl_status idx_expect_end(idx_file *f) {
    unsigned char b;
    int r = gzread(f->gz, &b, 1);
    if (r == 1)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: trailing bytes after the %llu bytes of data the header declares",
                         f->path, (unsigned long long)f->data_bytes);
    return short_read(f, r, "at its end");
}

static dcl_status read_labels(idx_file *f, unsigned char *lab, int n_classes) {
    dcl_status s = idx_read(f, lab, f->dim[0]);
    if (s == DCL_OK) s = idx_expect_end(f);
    if (s != DCL_OK) return s;
    for (uint32_t i = 0; i < f->dim[0]; i++)
        if (lab[i] >= n_classes)
            return dcl__fail(DCL_ERR_FORMAT,
                             "%s: label %u of item %u (from 0) is not below %d, the number of "
                             "classes%s",
                             f->path, lab[i], i, n_classes,
                             n_classes == 10 ? " (set classes=K for more)" : "");
    return DCL_OK;
}

// Streams the images of f, converting the kept ones into out->x.
static dcl_status read_images(idx_file *f, const unsigned char *keep, dcl__image_set *out) {
    size_t D = (size_t)f->dim[1] * f->dim[2];
    unsigned char *px = malloc(D);
    if (!px) return dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", f->path);
    dcl_status s = DCL_OK;
    float *x = out->x;
    for (uint32_t i = 0; i < f->dim[0] && s == DCL_OK; i++) {
        s = idx_read(f, px, D);
        if (s != DCL_OK || !keep[i]) continue;
        for (size_t j = 0; j < D; j++) x[j] = dcl__pixel_to_float(px[j]);
        x += D;
    }
    free(px);
    if (s == DCL_OK) s = idx_expect_end(f);
    return s;
}

dcl_status dcl__idx_read(dcl__image_set *out, const char *images, const char *labels, int n_classes,
                         size_t k, uint64_t seed) {
    memset(out, 0, sizeof *out);
    idx_file fi, fl;
    memset(&fl, 0, sizeof fl);
    unsigned char *keep = NULL, *lab = NULL;
    dcl_status s = idx_open(&fi, images, 3, "images");
    if (s == DCL_OK && labels) s = idx_open(&fl, labels, 1, "labels");
    if (s == DCL_OK && labels && fl.dim[0] != fi.dim[0])
        s = dcl__fail(DCL_ERR_FORMAT, "%s holds %u labels but %s holds %u images", labels,
                      fl.dim[0], images, fi.dim[0]);
    size_t N = fi.dim[0], D = (size_t)fi.dim[1] * fi.dim[2];
    if (s == DCL_OK) s = dcl__image_subset(&keep, N, k, seed, images);
    size_t n = k ? k : N;
    if (s == DCL_OK && (uint64_t)n * D > DCL_IMAGE_MAX_VALUES)
        s = dcl__fail(DCL_ERR_FORMAT,
                      "%s: %zu images of %zu pixels are more than %llu values; keep fewer (n=K)",
                      images, n, D, (unsigned long long)DCL_IMAGE_MAX_VALUES);
    if (s == DCL_OK && labels) {
        lab = malloc(N);
        out->labels = malloc(n * sizeof *out->labels);
        if (!lab || !out->labels) s = dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", labels);
        else s = read_labels(&fl, lab, n_classes);
    }
    if (s == DCL_OK) {
        out->x = malloc(n * D * sizeof *out->x);
        if (!out->x) s = dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", images);
        else s = read_images(&fi, keep, out);
    }
    if (s == DCL_OK && labels)
        for (size_t i = 0, j = 0; i < N; i++)
            if (keep[i]) out->labels[j++] = lab[i];
    idx_close(&fi);
    idx_close(&fl);
    free(keep);
    free(lab);
    out->n_classes = labels ? n_classes : 0;
    return dcl__image_set_finish(out, s, n, 1, (int)fi.dim[1], (int)fi.dim[2]);
}
