// Image datasets: IDX pairs (raw and gzip) and PNG folders written into a temp folder (among them
// 64x64 RGB images of shapes64) are read back exactly (0 -> -1, 255 -> 1), with labels, seed-drawn
// subsets and reproducible batches; a reject table of malformed files (and every truncation of
// small ones) fails with DCL_ERR_FORMAT or DCL_ERR_IO naming the file; Fashion-MNIST is checked
// when Debian's package is installed.
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "testlib.h"
#include "testlib_data.h" // open_ok, expect_open_error
#include "diffcl/data.h"
#include "diffcl/plot.h"        // dcl_png_write_rgb
#include "data/data_internal.h" // dcl__pngdir_between_passes

static char tmpdir[256];

static void path_of(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

// ---- files -----------------------------------------------------------------------------------

typedef struct bytes {
    unsigned char *p;
    size_t n;
} bytes;

static void put_be32(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8), b[3] = (unsigned char)v;
}

// An IDX file: magic 00 00 type nd, nd sizes, then data (n_data bytes).
static bytes idx_bytes(int type, int nd, const uint32_t *dims, const unsigned char *data,
                       size_t n_data) {
    bytes b;
    b.n = 4 + 4 * (size_t)nd + n_data;
    b.p = malloc(b.n);
    b.p[0] = 0, b.p[1] = 0, b.p[2] = (unsigned char)type, b.p[3] = (unsigned char)nd;
    for (int i = 0; i < nd; i++) put_be32(b.p + 4 + 4 * i, dims[i]);
    if (n_data) memcpy(b.p + 4 + 4 * nd, data, n_data);
    return b;
}

static void write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ(fwrite(p, 1, n, f), n);
    CHECK_EQ(fclose(f), 0);
}

static void write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb");
    CHECK(g != NULL);
    if (!g) return;
    if (n) CHECK_EQ(gzwrite(g, p, (unsigned)n), (int)n);
    CHECK_EQ(gzclose(g), Z_OK);
}

static bytes read_all(const char *path) {
    bytes b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return b;
    fseek(f, 0, SEEK_END);
    b.n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.p = malloc(b.n ? b.n : 1);
    CHECK_EQ(fread(b.p, 1, b.n, f), b.n);
    fclose(f);
    return b;
}

// The test set: NI images of IH x IW; image i has pixel j = (i * 37 + j * 11) % 256, except that
// image 0 starts with 0 and 255.
#define NI 5
#define IH 3
#define IW 4
static unsigned char pixels[NI * IH * IW];
static unsigned char labels5[NI] = {3, 0, 9, 3, 1};

static void make_pixels(void) {
    for (int i = 0; i < NI; i++)
        for (int j = 0; j < IH * IW; j++)
            pixels[i * IH * IW + j] = (unsigned char)((i * 37 + j * 11) % 256);
    pixels[0] = 0, pixels[1] = 255;
}

static bytes images_file(void) {
    uint32_t d[3] = {NI, IH, IW};
    return idx_bytes(8, 3, d, pixels, sizeof pixels);
}

static bytes labels_file(void) {
    uint32_t d[1] = {NI};
    return idx_bytes(8, 1, d, labels5, NI);
}

// ---- opening -----------------------------------------------------------------------------------

// Opening spec fails with status want and a message that contains `name` and `what`.
static void open_fails(const char *spec, dcl_status want, const char *name, const char *what) {
    dcl_dataset *ds = (dcl_dataset *)1;
    dcl_clear_error();
    dcl_status s = dcl_dataset_open(&ds, spec, 0);
    const char *msg = dcl_last_error();
    int ok =
        s == want && ds == NULL && (!name || strstr(msg, name)) && (!what || strstr(msg, what));
    if (!ok)
        fprintf(stderr, "'%s': got %s \"%s\", expected %s with '%s' and '%s'\n", spec,
                dcl_status_name(s), msg, dcl_status_name(want), name ? name : "", what ? what : "");
    CHECK(ok);
    if (s == DCL_OK) dcl_dataset_free(ds);
}

static float px(unsigned p) { return (float)((double)p / 127.5 - 1.0); }

static void check_images(const dcl_dataset *ds, const int *which, int n) {
    const float *x = dcl_dataset_points(ds);
    CHECK(x != NULL);
    if (!x) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < IH * IW; j++)
            if (x[i * IH * IW + j] != px(pixels[which[i] * IH * IW + j])) {
                fprintf(stderr, "image %d (file %d) pixel %d: %.9g vs %.9g\n", i, which[i], j,
                        x[i * IH * IW + j], px(pixels[which[i] * IH * IW + j]));
                CHECK(0);
                return;
            }
}

static void test_idx_read(void) {
    char img[300], lab[300], imgz[300], labz[300], spec[700];
    path_of(img, sizeof img, "img.idx");
    path_of(lab, sizeof lab, "lab.idx");
    path_of(imgz, sizeof imgz, "img.idx.gz");
    path_of(labz, sizeof labz, "lab.gz");
    bytes bi = images_file(), bl = labels_file();
    write_raw(img, bi.p, bi.n), write_raw(lab, bl.p, bl.n);
    write_gz(imgz, bi.p, bi.n), write_gz(labz, bl.p, bl.n);
    const int all[NI] = {0, 1, 2, 3, 4};
    const char *pairs[4][2] = {{img, lab}, {imgz, labz}, {img, labz}, {imgz, lab}};
    for (int v = 0; v < 4; v++) {
        snprintf(spec, sizeof spec, "idx:%s,%s", pairs[v][0], pairs[v][1]);
        dcl_dataset *ds = open_ok(spec, 0);
        if (!ds) continue;
        int C = -1, H = -1, W = -1;
        CHECK_EQ(dcl_dataset_image_shape(ds, &C, &H, &W), 1);
        CHECK_EQ(C, 1);
        CHECK_EQ(H, IH);
        CHECK_EQ(W, IW);
        CHECK_EQ(dcl_dataset_size(ds), NI);
        CHECK_EQ(dcl_dataset_dim(ds), IH * IW);
        CHECK_EQ(dcl_dataset_num_classes(ds), 10);
        CHECK(strcmp(dcl_dataset_class_name(ds, 7), "7") == 0);
        CHECK(dcl_dataset_class_name(ds, 10) == NULL);
        CHECK(dcl_dataset_class_name(ds, -1) == NULL);
        check_images(ds, all, NI);
        const float *x = dcl_dataset_points(ds);
        CHECK(x[0] == -1.0f);
        CHECK(x[1] == 1.0f); // exact at 0 and 255
        const int32_t *l = dcl_dataset_labels(ds);
        CHECK(l != NULL);
        for (int i = 0; l && i < NI; i++) CHECK_EQ(l[i], labels5[i]);
        dcl_dataset_free(ds);
    }
    // Unlabelled; a 2D set answers the image questions with zeros.
    snprintf(spec, sizeof spec, "idx:%s", imgz);
    dcl_dataset *ds = open_ok(spec, 0);
    if (ds) {
        CHECK_EQ(dcl_dataset_num_classes(ds), 0);
        CHECK(dcl_dataset_labels(ds) == NULL);
        CHECK(dcl_dataset_class_name(ds, 0) == NULL);
        float x[3 * IH * IW];
        int32_t l[3] = {7, 7, 7};
        CHECK_EQ(dcl_dataset_batch_labels(ds, x, l, 3, 2), DCL_OK);
        CHECK_EQ(l[0], 0);
        CHECK_EQ(l[1], 0);
        CHECK_EQ(l[2], 0);
        check_images(ds, all, NI);
        dcl_dataset_free(ds);
    }
    ds = open_ok("spiral:n=10", 0);
    if (ds) {
        int C = 5;
        CHECK_EQ(dcl_dataset_image_shape(ds, &C, NULL, NULL), 0);
        CHECK_EQ(C, 0);
        CHECK_EQ(dcl_dataset_num_classes(ds), 0);
        float x[8];
        int32_t l[4] = {5, 5, 5, 5};
        CHECK_EQ(dcl_dataset_batch_labels(ds, x, l, 4, 0), DCL_OK);
        CHECK_EQ(l[0] | l[1] | l[2] | l[3], 0);
        dcl_dataset_free(ds);
    }
    ds = open_ok("moons", 0);
    if (ds) {
        float x[8], y[8];
        int32_t l[4] = {5, 5, 5, 5};
        CHECK_EQ(dcl_dataset_batch_labels(ds, x, l, 4, 1), DCL_OK);
        CHECK_EQ(dcl_dataset_batch(ds, y, 4, 1), DCL_OK);
        CHECK(memcmp(x, y, sizeof x) == 0);
        CHECK_EQ(l[0] | l[1] | l[2] | l[3], 0);
        dcl_dataset_free(ds);
    }
    free(bi.p), free(bl.p);
}

// The index of the test image whose pixels x (IH*IW) holds, or -1.
static int which_image(const float *x) {
    for (int i = 0; i < NI; i++) {
        int same = 1;
        for (int j = 0; j < IH * IW && same; j++) same = x[j] == px(pixels[i * IH * IW + j]);
        if (same) return i;
    }
    return -1;
}

static void test_subsets_and_batches(void) {
    char img[300], lab[300], spec[700];
    path_of(img, sizeof img, "img.idx");
    path_of(lab, sizeof lab, "lab.gz");
    int differ = 0;
    int first[3] = {-1, -1, -1};
    for (uint64_t seed = 0; seed < 8; seed++) {
        snprintf(spec, sizeof spec, "idx:%s,%s,n=3", img, lab);
        dcl_dataset *a = open_ok(spec, seed), *b = open_ok(spec, seed);
        if (!a || !b) {
            dcl_dataset_free(a), dcl_dataset_free(b);
            continue;
        }
        CHECK_EQ(dcl_dataset_size(a), 3);
        CHECK(memcmp(dcl_dataset_points(a), dcl_dataset_points(b), 3 * IH * IW * sizeof(float)) ==
              0);
        int prev = -1;
        for (int i = 0; i < 3; i++) {
            int k = which_image(dcl_dataset_points(a) + i * IH * IW);
            CHECK(k > prev); // distinct, in file order
            if (k >= 0) CHECK_EQ(dcl_dataset_labels(a)[i], labels5[k]);
            if (seed == 0) first[i] = k;
            else if (k != first[i]) differ = 1;
            prev = k;
        }
        dcl_dataset_free(a), dcl_dataset_free(b);
    }
    CHECK(differ); // the subset depends on the seed
    snprintf(spec, sizeof spec, "idx:%s,%s,n=5", img, lab);
    dcl_dataset *ds = open_ok(spec, 9);
    if (ds) CHECK_EQ(dcl_dataset_size(ds), 5);
    dcl_dataset_free(ds);
    snprintf(spec, sizeof spec, "idx:%s,n=6", img);
    open_fails(spec, DCL_ERR_ARG, img, "n=6");

    // Batches: reproducible, labels match their images, x as dcl_dataset_batch gives it.
    snprintf(spec, sizeof spec, "idx:%s,%s", img, lab);
    ds = open_ok(spec, 4);
    if (!ds) return;
    enum { NB = 64 };
    float *x = malloc(NB * IH * IW * sizeof *x), *y = malloc(NB * IH * IW * sizeof *y);
    int32_t l1[NB], l2[NB];
    CHECK_EQ(dcl_dataset_batch_labels(ds, x, l1, NB, 11), DCL_OK);
    CHECK_EQ(dcl_dataset_batch_labels(ds, y, l2, NB, 11), DCL_OK);
    CHECK(memcmp(x, y, NB * IH * IW * sizeof *x) == 0);
    CHECK(memcmp(l1, l2, sizeof l1) == 0);
    CHECK_EQ(dcl_dataset_batch(ds, y, NB, 11), DCL_OK);
    CHECK(memcmp(x, y, NB * IH * IW * sizeof *x) == 0);
    CHECK_EQ(dcl_dataset_batch_labels(ds, y, NULL, NB, 11), DCL_OK);
    CHECK(memcmp(x, y, NB * IH * IW * sizeof *x) == 0);
    int seen[NI] = {0};
    for (int i = 0; i < NB; i++) {
        int k = which_image(x + i * IH * IW);
        CHECK(k >= 0);
        if (k < 0) continue;
        seen[k] = 1;
        CHECK_EQ(l1[i], labels5[k]);
    }
    for (int k = 0; k < NI; k++) CHECK(seen[k]);
    CHECK_EQ(dcl_dataset_batch_labels(ds, y, l2, NB, 12), DCL_OK);
    CHECK(memcmp(x, y, NB * IH * IW * sizeof *x) != 0); // another step
    CHECK_EQ(dcl_dataset_fresh(ds, y, NB, 1), DCL_OK);
    for (int i = 0; i < NB; i++) CHECK(which_image(y + i * IH * IW) >= 0);
    free(x), free(y);
    dcl_dataset_free(ds);
}

// ---- reject table ------------------------------------------------------------------------------

typedef struct reject {
    const char *name;
    bytes (*make_images)(void); // NULL: the good file
    bytes (*make_labels)(void); // NULL: the good file
    int classes;                // classes=K when > 0
    dcl_status want;
    const char *what;  // in the message
    int bad_is_labels; // the message names the label file (else the image file)
} reject;

static bytes bad_magic(void) {
    bytes b = images_file();
    b.p[0] = 1;
    return b;
}
static bytes bad_type(void) {
    bytes b = images_file();
    b.p[2] = 0x0D;
    return b;
}
static bytes bad_nd(void) {
    uint32_t d[2] = {NI, IH * IW};
    return idx_bytes(8, 2, d, pixels, sizeof pixels);
}
static bytes zero_dim(void) {
    uint32_t d[3] = {NI, 0, IW};
    return idx_bytes(8, 3, d, pixels, 0);
}
static bytes too_wide(void) {
    uint32_t d[3] = {1, 1, DCL_IMAGE_MAX_SIDE + 1};
    return idx_bytes(8, 3, d, pixels, 0);
}
static bytes too_big(void) {
    uint32_t d[3] = {DCL_DATA_MAX_FIXED, DCL_IMAGE_MAX_SIDE, DCL_IMAGE_MAX_SIDE};
    return idx_bytes(8, 3, d, pixels, 0);
}
static bytes trailing(void) {
    bytes b = images_file();
    b.p = realloc(b.p, b.n + 1);
    b.p[b.n++] = 0;
    return b;
}
static bytes short_data(void) {
    bytes b = images_file();
    b.n--;
    return b;
}
static bytes labels_4(void) {
    uint32_t d[1] = {NI - 1};
    return idx_bytes(8, 1, d, labels5, NI - 1);
}
static bytes label_10(void) {
    bytes b = labels_file();
    b.p[8 + 2] = 10;
    return b;
}
static bytes labels_3d(void) { return images_file(); }
static bytes labels_trailing(void) {
    bytes b = labels_file();
    b.p = realloc(b.p, b.n + 3);
    memset(b.p + b.n, 0, 3);
    b.n += 3;
    return b;
}
static bytes empty(void) {
    bytes b = {malloc(1), 0};
    return b;
}

static const reject rejects[] = {
    {"wrong magic", bad_magic, NULL, 0, DCL_ERR_FORMAT, "not an IDX file", 0},
    {"wrong type byte", bad_type, NULL, 0, DCL_ERR_FORMAT, "element type 0x0d", 0},
    {"2 dimensions", bad_nd, NULL, 0, DCL_ERR_FORMAT, "of 2 dimensions, expected 3", 0},
    {"zero dimension", zero_dim, NULL, 0, DCL_ERR_FORMAT, "dimension 2 of 3 is 0", 0},
    {"too wide", too_wide, NULL, 0, DCL_ERR_FORMAT, "per side", 0},
    {"too big", too_big, NULL, 0, DCL_ERR_FORMAT, "more than the limit", 0},
    {"trailing byte", trailing, NULL, 0, DCL_ERR_FORMAT, "trailing bytes", 0},
    {"one byte short", short_data, NULL, 0, DCL_ERR_FORMAT, "truncated", 0},
    {"empty images", empty, NULL, 0, DCL_ERR_FORMAT, "empty", 0},
    {"count mismatch", NULL, labels_4, 0, DCL_ERR_FORMAT, "holds 4 labels", 1},
    {"label 10", NULL, label_10, 0, DCL_ERR_FORMAT, "label 10 of item 2", 1},
    {"label 3 of 2 classes", NULL, NULL, 2, DCL_ERR_FORMAT, "label 3 of item 0", 1},
    {"labels of 3 dimensions", NULL, labels_3d, 0, DCL_ERR_FORMAT, "expected 1 for labels", 1},
    {"labels trailing", NULL, labels_trailing, 0, DCL_ERR_FORMAT, "trailing bytes", 1},
    {"empty labels", NULL, empty, 0, DCL_ERR_FORMAT, "empty", 1},
};

static void test_rejects(void) {
    char img[300], lab[300], spec[700];
    for (size_t r = 0; r < sizeof rejects / sizeof rejects[0]; r++) {
        const reject *t = &rejects[r];
        for (int gz = 0; gz < 2; gz++) {
            path_of(img, sizeof img, gz ? "bad_img.gz" : "bad_img");
            path_of(lab, sizeof lab, gz ? "bad_lab.gz" : "bad_lab");
            bytes bi = t->make_images ? t->make_images() : images_file();
            bytes bl = t->make_labels ? t->make_labels() : labels_file();
            if (gz) write_gz(img, bi.p, bi.n), write_gz(lab, bl.p, bl.n);
            else write_raw(img, bi.p, bi.n), write_raw(lab, bl.p, bl.n);
            if (t->classes)
                snprintf(spec, sizeof spec, "idx:%s,%s,classes=%d", img, lab, t->classes);
            else snprintf(spec, sizeof spec, "idx:%s,%s", img, lab);
            fprintf(stderr, "reject '%s'%s\n", t->name, gz ? " (gzip)" : "");
            open_fails(spec, t->want, t->bad_is_labels ? lab : img, t->what);
            free(bi.p), free(bl.p);
        }
    }
    char missing[300];
    path_of(missing, sizeof missing, "no-such-file.gz");
    snprintf(spec, sizeof spec, "idx:%s", missing);
    open_fails(spec, DCL_ERR_IO, missing, "cannot open");
    snprintf(spec, sizeof spec, "idx:%s", tmpdir); // a folder
    open_fails(spec, DCL_ERR_IO, tmpdir, NULL);

    // A flipped byte inside the compressed stream, and a gzip member's CRC.
    bytes bi = images_file();
    path_of(img, sizeof img, "bad_img.gz");
    write_gz(img, bi.p, bi.n);
    bytes z = read_all(img);
    z.p[z.n - 6] ^= 0x40; // inside the CRC-32 of the trailer
    write_raw(img, z.p, z.n);
    snprintf(spec, sizeof spec, "idx:%s", img);
    open_fails(spec, DCL_ERR_FORMAT, img, "gzip");
    free(z.p), free(bi.p);

    // Every prefix of the image and label files, raw and gzip, is rejected with the file named.
    bytes full[2] = {images_file(), labels_file()};
    int n_checked = 0;
    for (int which = 0; which < 2; which++)
        for (int gz = 0; gz < 2; gz++) {
            path_of(img, sizeof img, "whole");
            if (gz) write_gz(img, full[which].p, full[which].n);
            else write_raw(img, full[which].p, full[which].n);
            bytes f = read_all(img);
            path_of(img, sizeof img, "prefix_img");
            path_of(lab, sizeof lab, "prefix_lab");
            bytes other = which ? images_file() : labels_file();
            write_raw(which ? img : lab, other.p, other.n);
            const char *cut = which ? lab : img;
            snprintf(spec, sizeof spec, "idx:%s,%s", img, lab);
            for (size_t n = 0; n < f.n; n++) {
                write_raw(cut, f.p, n);
                int before = check_failures;
                open_fails(spec, DCL_ERR_FORMAT, cut, NULL);
                if (check_failures != before)
                    fprintf(stderr, "  prefix of %zu of %zu bytes (%s, %s)\n", n, f.n,
                            which ? "labels" : "images", gz ? "gzip" : "raw");
                n_checked++;
            }
            free(f.p), free(other.p);
        }
    CHECK(n_checked > 100);
    free(full[0].p), free(full[1].p);
}

static void test_spec_errors(void) {
    open_fails("idx:", DCL_ERR_ARG, "idx:", NULL);
    open_fails("idx:a,b,c", DCL_ERR_ARG, "unexpected 'c'", NULL);
    open_fails("idx:a,n=0", DCL_ERR_ARG, "n must be", NULL);
    open_fails("idx:a,n=x", DCL_ERR_ARG, "n must be", NULL);
    open_fails("idx:a,classes=300,b", DCL_ERR_ARG, "classes must be", NULL);
    open_fails("idx:a,classes=3", DCL_ERR_ARG, "needs a label file", NULL);
    open_fails("idx:a,", DCL_ERR_ARG, "nothing after", NULL);
    open_fails("idx:a,,b", DCL_ERR_ARG, "empty part", NULL);
    open_fails("png:", DCL_ERR_ARG, "png:", NULL);
    open_fails("fashion-mnist:split=val", DCL_ERR_ARG, "split must be train or test", NULL);
    open_fails("fashion-mnist:colour=1", DCL_ERR_ARG, "unknown option 'colour=1'", NULL);
    open_fails("fashion-mnist:x", DCL_ERR_ARG, "unexpected 'x'", NULL);
    open_fails("fashion", DCL_ERR_ARG, "fashion-mnist", "png:FOLDER");
}

// ---- PNG folders -------------------------------------------------------------------------------

// Writes a w x h PNG with libpng: color_type and bit depth as given, rows of raw samples (16-bit
// big-endian), a 4-entry palette for palette images.
static void write_png(const char *path, int w, int h, int color, int depth,
                      const unsigned char *data) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        CHECK(0);
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
        png_set_PLTE(png, info, pal, 4);
    }
    png_write_info(png, info);
    int channels = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t rowbytes = (size_t)w * channels * (depth / 8);
    for (int y = 0; y < h; y++) png_write_row(png, data + (size_t)y * rowbytes);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    CHECK_EQ(fclose(f), 0);
}

static void make_dir(const char *name, char *out, size_t n) {
    path_of(out, n, name);
    CHECK_EQ(mkdir(out, 0700), 0);
}

// A w x h grey image with pixel j = (seed + 7 j) % 256.
static void grey(unsigned char *g, int w, int h, int seed) {
    for (int j = 0; j < w * h; j++) g[j] = (unsigned char)((seed + 7 * j) % 256);
}

static void test_png_folder(void) {
    enum { W = 4, H = 3 };
    char dir[300], p[400], spec[500];
    unsigned char g[W * H], rgb[W * H * 3];

    // Flat folder of grey images, written out of order; a non-PNG file and a hidden one ignored.
    make_dir("flat", dir, sizeof dir);
    const char *names[3] = {"b.png", "a.png", "c.PNG"};
    const int seeds[3] = {20, 10, 30};
    for (int i = 0; i < 3; i++) {
        grey(g, W, H, seeds[i]);
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
    }
    snprintf(p, sizeof p, "%s/README.txt", dir);
    write_raw(p, "hi", 2);
    snprintf(p, sizeof p, "%s/.hidden.png", dir);
    write_raw(p, "junk", 4);
    snprintf(spec, sizeof spec, "png:%s", dir);
    dcl_dataset *ds = open_ok(spec, 0);
    if (ds) {
        int C, Hh, Ww;
        CHECK_EQ(dcl_dataset_image_shape(ds, &C, &Hh, &Ww), 1);
        CHECK_EQ(C, 1);
        CHECK_EQ(Hh, H);
        CHECK_EQ(Ww, W);
        CHECK_EQ(dcl_dataset_size(ds), 3);
        CHECK_EQ(dcl_dataset_num_classes(ds), 0);
        CHECK(dcl_dataset_labels(ds) == NULL);
        const int order[3] = {10, 20, 30}; // a.png, b.png, c.PNG
        for (int i = 0; i < 3; i++) {
            grey(g, W, H, order[i]);
            for (int j = 0; j < W * H; j++)
                CHECK(dcl_dataset_points(ds)[i * W * H + j] == px(g[j]));
        }
        dcl_dataset_free(ds);
    }
    snprintf(spec, sizeof spec, "png:%s,n=2", dir);
    ds = open_ok(spec, 5);
    if (ds) CHECK_EQ(dcl_dataset_size(ds), 2);
    dcl_dataset_free(ds);

    // Class sub-folders of RGB images (dcl_png_write_rgb): classes by name, NCHW order.
    make_dir("classes", dir, sizeof dir);
    const char *classes[2] = {"zebra", "ant"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", dir, classes[k]);
        CHECK_EQ(mkdir(p, 0700), 0);
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < W * H * 3; j++) rgb[j] = (unsigned char)(k * 100 + i * 50 + j);
            snprintf(p, sizeof p, "%s/%s/img%d.png", dir, classes[k], i);
            CHECK_EQ(dcl_png_write_rgb(p, rgb, W, H), DCL_OK);
        }
    }
    snprintf(spec, sizeof spec, "png:%s", dir);
    ds = open_ok(spec, 0);
    if (ds) {
        int C;
        dcl_dataset_image_shape(ds, &C, NULL, NULL);
        CHECK_EQ(C, 3);
        CHECK_EQ(dcl_dataset_size(ds), 4);
        CHECK_EQ(dcl_dataset_num_classes(ds), 2);
        CHECK(strcmp(dcl_dataset_class_name(ds, 0), "ant") == 0);
        CHECK(strcmp(dcl_dataset_class_name(ds, 1), "zebra") == 0);
        const int32_t want_labels[4] = {0, 0, 1, 1};
        const int32_t *l = dcl_dataset_labels(ds);
        for (int i = 0; i < 4; i++) CHECK_EQ(l[i], want_labels[i]);
        // Image 2 is zebra/img0: k = 0, i = 0; pixel (y, x, c) = 3 (y W + x) + c.
        const float *x = dcl_dataset_points(ds) + 2 * 3 * W * H;
        for (int c = 0; c < 3; c++)
            for (int q = 0; q < W * H; q++) CHECK(x[c * W * H + q] == px((unsigned)(3 * q + c)));
        int32_t bl[16];
        float *bx = malloc(16 * 3 * W * H * sizeof *bx);
        CHECK_EQ(dcl_dataset_batch_labels(ds, bx, bl, 16, 0), DCL_OK);
        for (int i = 0; i < 16; i++) CHECK(bl[i] == 0 || bl[i] == 1);
        free(bx);
        dcl_dataset_free(ds);
    }

    // Grey, RGB, 16-bit grey, palette and grey+alpha in one folder: C = 3, values converted.
    make_dir("mixed", dir, sizeof dir);
    grey(g, W, H, 0);
    snprintf(p, sizeof p, "%s/1grey.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
    for (int j = 0; j < W * H * 3; j++) rgb[j] = (unsigned char)(255 - j);
    snprintf(p, sizeof p, "%s/2rgb.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, rgb);
    unsigned char g16[W * H * 2];
    for (int j = 0; j < W * H; j++) g16[2 * j] = g16[2 * j + 1] = j % 2 ? 0xFF : 0x00;
    snprintf(p, sizeof p, "%s/3grey16.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 16, g16);
    unsigned char pal[W * H];
    for (int j = 0; j < W * H; j++) pal[j] = (unsigned char)(j % 4);
    snprintf(p, sizeof p, "%s/4palette.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, pal);
    unsigned char ga[W * H * 2];
    for (int j = 0; j < W * H; j++) ga[2 * j] = (unsigned char)(j * 20), ga[2 * j + 1] = 7;
    snprintf(p, sizeof p, "%s/5grey_alpha.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
    snprintf(spec, sizeof spec, "png:%s", dir);
    ds = open_ok(spec, 0);
    if (ds) {
        int C;
        dcl_dataset_image_shape(ds, &C, NULL, NULL);
        CHECK_EQ(C, 3);
        CHECK_EQ(dcl_dataset_size(ds), 5);
        const float *x = dcl_dataset_points(ds);
        const size_t D = 3 * W * H, HW = W * H;
        for (size_t q = 0; q < HW; q++)
            for (int c = 0; c < 3; c++) {
                CHECK(x[0 * D + c * HW + q] == px(g[q]));               // grey repeated
                CHECK(x[1 * D + c * HW + q] == px(255 - (3 * q + c)));  // RGB
                CHECK(x[2 * D + c * HW + q] == (q % 2 ? 1.0f : -1.0f)); // 16-bit scaled
                static const unsigned char palette[4][3] = {
                    {0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
                CHECK(x[3 * D + c * HW + q] == px(palette[q % 4][c]));
                CHECK(x[4 * D + c * HW + q] == px((unsigned)(q * 20))); // alpha dropped
            }
        dcl_dataset_free(ds);
    }

    // Rejects: mixed sizes, PNG files next to class folders, an empty class, nothing at all.
    make_dir("sizes", dir, sizeof dir);
    grey(g, W, H, 0);
    snprintf(p, sizeof p, "%s/a.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
    snprintf(p, sizeof p, "%s/b.png", dir);
    write_png(p, H, W, PNG_COLOR_TYPE_GRAY, 8, g);
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, DCL_ERR_FORMAT, p, "one size");

    make_dir("both", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/a.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
    snprintf(p, sizeof p, "%s/sub", dir);
    CHECK_EQ(mkdir(p, 0700), 0);
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, DCL_ERR_FORMAT, dir, "PNG files and sub-folders");

    make_dir("emptyclass", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/a", dir);
    CHECK_EQ(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/a/x.png", dir);
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
    snprintf(p, sizeof p, "%s/b", dir);
    CHECK_EQ(mkdir(p, 0700), 0);
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, DCL_ERR_FORMAT, p, "holds no PNG files");

    make_dir("nothing", dir, sizeof dir);
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, DCL_ERR_FORMAT, dir, "no PNG files");
    path_of(dir, sizeof dir, "no-such-folder");
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, DCL_ERR_IO, dir, "cannot open folder");

    // Wider than the limit (a 1-pixel-high strip): rejected by libpng's user limits.
    make_dir("wide", dir, sizeof dir);
    unsigned char *strip = calloc(DCL_IMAGE_MAX_SIDE + 1, 1);
    snprintf(p, sizeof p, "%s/wide.png", dir);
    write_png(p, DCL_IMAGE_MAX_SIDE + 1, 1, PNG_COLOR_TYPE_GRAY, 8, strip);
    free(strip);
    snprintf(spec, sizeof spec, "png:%s", dir);
    open_fails(spec, DCL_ERR_FORMAT, p, "limit");

    // Corruption: a flipped byte in each chunk's data (CRC errors) and every truncation.
    make_dir("good", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/good.png", dir);
    grey(g, W, H, 3);
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
    bytes good = read_all(p);
    make_dir("corrupt", dir, sizeof dir);
    snprintf(p, sizeof p, "%s/x.png", dir);
    snprintf(spec, sizeof spec, "png:%s", dir);
    int flips = 0;
    for (size_t at = 8; at + 12 <= good.n;) { // chunks: length, type, data, CRC
        size_t len = (size_t)good.p[at] << 24 | (size_t)good.p[at + 1] << 16 |
                     (size_t)good.p[at + 2] << 8 | good.p[at + 3];
        size_t flip = at + 8 + (len ? len / 2 : 0); // the data, or the CRC of an empty chunk
        good.p[flip] ^= 0x10;
        write_raw(p, good.p, good.n);
        fprintf(stderr, "flipped byte %zu (chunk %.4s)\n", flip, (const char *)good.p + at + 4);
        open_fails(spec, DCL_ERR_FORMAT, p, NULL);
        good.p[flip] ^= 0x10;
        flips++;
        at += 12 + len;
    }
    CHECK(flips >= 3);     // IHDR, IDAT, IEND at least
    good.p[8 + 8] ^= 0x01; // IHDR width
    write_raw(p, good.p, good.n);
    open_fails(spec, DCL_ERR_FORMAT, p, "CRC");
    good.p[8 + 8] ^= 0x01;
    for (size_t n = 0; n < good.n; n++) {
        write_raw(p, good.p, n);
        int before = check_failures;
        open_fails(spec, DCL_ERR_FORMAT, p, NULL);
        if (check_failures != before) fprintf(stderr, "  PNG prefix of %zu bytes\n", n);
    }
    write_raw(p, good.p, good.n);
    ds = open_ok(spec, 0);
    dcl_dataset_free(ds);
    free(good.p);
}

// A file rewritten between the header pass and the pixel pass (a sync tool, a second job) is an
// error naming it, never a write past the buffers sized by the first pass (ASan builds catch one).
static char race_path[400];
static int race_w, race_h, race_color;

static void swap_file(const char *folder) {
    (void)folder;
    int C = race_color == PNG_COLOR_TYPE_RGB ? 3 : 1;
    unsigned char *big = calloc((size_t)race_w * race_h * C, 1);
    CHECK(big != NULL);
    if (big) write_png(race_path, race_w, race_h, race_color, 8, big);
    free(big);
}

// 64x64 RGB PNGs rendered from the built-in shapes64 read back bit for bit: a flat folder (with a
// grey 64x64 image, repeated over the three channels) and class sub-folders named after the
// shapes (labels follow the folder names' order).
static void test_png_folder_rgb64(void) {
    enum { S = 64, N = 10, HW = S * S };
    dcl_dataset *src = open_ok("shapes64:n=10", 4);
    if (!src) return;
    const float *sx = dcl_dataset_points(src);
    const int32_t *sl = dcl_dataset_labels(src);
    char flat[300], classes[300], p[400], spec[500];
    unsigned char rgb[HW * 3], g[HW];
    make_dir("rgb64", flat, sizeof flat);
    make_dir("rgb64classes", classes, sizeof classes);
    for (int i = 0; i < N; i++) {
        for (int q = 0; q < HW; q++)
            for (int c = 0; c < 3; c++) {
                long b = lround(((double)sx[i * 3 * HW + c * HW + q] + 1.0) * 127.5);
                rgb[q * 3 + c] = (unsigned char)b;
            }
        snprintf(p, sizeof p, "%s/%02d.png", flat, i);
        CHECK_EQ(dcl_png_write_rgb(p, rgb, S, S), DCL_OK);
        snprintf(p, sizeof p, "%s/%s", classes, dcl_dataset_class_name(src, sl[i]));
        mkdir(p, 0700);
        snprintf(p, sizeof p, "%s/%s/%02d.png", classes, dcl_dataset_class_name(src, sl[i]), i);
        CHECK_EQ(dcl_png_write_rgb(p, rgb, S, S), DCL_OK);
    }
    grey(g, S, S, 3);
    snprintf(p, sizeof p, "%s/99grey.png", flat);
    write_png(p, S, S, PNG_COLOR_TYPE_GRAY, 8, g);

    snprintf(spec, sizeof spec, "png:%s", flat);
    dcl_dataset *ds = open_ok(spec, 0);
    if (ds) {
        int C, H, W;
        CHECK_EQ(dcl_dataset_image_shape(ds, &C, &H, &W), 1);
        CHECK_EQ(C, 3);
        CHECK_EQ(H, S);
        CHECK_EQ(W, S);
        CHECK_EQ(dcl_dataset_size(ds), N + 1);
        const float *x = dcl_dataset_points(ds);
        CHECK(memcmp(x, sx, (size_t)N * 3 * HW * sizeof *x) == 0);
        for (int c = 0; c < 3; c++)
            for (int q = 0; q < HW; q++) CHECK(x[(size_t)N * 3 * HW + c * HW + q] == px(g[q]));
        dcl_dataset_free(ds);
    }

    snprintf(spec, sizeof spec, "png:%s", classes);
    ds = open_ok(spec, 0);
    if (ds) {
        CHECK_EQ(dcl_dataset_size(ds), N);
        int K = dcl_dataset_num_classes(ds), seen = 0;
        CHECK(K >= 2 && K <= 5);
        // The images come class by class (folder names in byte order), each in file order.
        const float *x = dcl_dataset_points(ds);
        const int32_t *l = dcl_dataset_labels(ds);
        for (int k = 0; k < K; k++)
            for (int i = 0; i < N; i++) {
                if (strcmp(dcl_dataset_class_name(src, sl[i]), dcl_dataset_class_name(ds, k)) != 0)
                    continue;
                CHECK_EQ(l[seen], k);
                CHECK(memcmp(x + (size_t)seen * 3 * HW, sx + (size_t)i * 3 * HW,
                             3 * HW * sizeof *x) == 0);
                seen++;
            }
        CHECK_EQ(seen, N);
        dcl_dataset_free(ds);
    }
    dcl_dataset_free(src);
}

static void test_png_changed_between_passes(void) {
    enum { W = 4, H = 3 };
    unsigned char g[W * H];
    char dir[300], p[400], spec[500];
    make_dir("race", dir, sizeof dir);
    const struct {
        int w, h, color;
    } swaps[] = {{256, 256, PNG_COLOR_TYPE_GRAY},
                 {W, 64, PNG_COLOR_TYPE_GRAY},
                 {64, H, PNG_COLOR_TYPE_GRAY},
                 {W, H, PNG_COLOR_TYPE_RGB},
                 {2, 2, PNG_COLOR_TYPE_GRAY}};
    snprintf(spec, sizeof spec, "png:%s", dir);
    for (size_t v = 0; v < sizeof swaps / sizeof swaps[0]; v++) {
        for (int i = 0; i < 3; i++) {
            grey(g, W, H, 10 * i);
            snprintf(p, sizeof p, "%s/%c.png", dir, 'a' + i);
            write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
        }
        snprintf(race_path, sizeof race_path, "%s/b.png", dir);
        race_w = swaps[v].w, race_h = swaps[v].h, race_color = swaps[v].color;
        dcl__pngdir_between_passes = swap_file;
        open_fails(spec, DCL_ERR_FORMAT, race_path, "changed while being read");
        dcl__pngdir_between_passes = NULL;
    }
    // Without a swap the folder reads.
    grey(g, W, H, 10);
    write_png(race_path, W, H, PNG_COLOR_TYPE_GRAY, 8, g);
    dcl_dataset *ds = open_ok(spec, 0);
    if (ds) CHECK_EQ(dcl_dataset_size(ds), 3);
    dcl_dataset_free(ds);
}

// Inputs that are not regular files (a FIFO without a writer, a device, a folder) are refused at
// once, never waited on: a checkpoint's data string may name one. An uncompressed IDX file whose
// header declares more than the file holds is refused before the declared size is allocated.
static void test_not_regular_and_declared_size(void) {
    char fifo[400], spec[500], p[400];
    path_of(fifo, sizeof fifo, "input.fifo");
    CHECK_EQ(mkfifo(fifo, 0600), 0);
    const char *fmt[] = {"csv:%s", "idx:%s", "idx:%s,%s"};
    for (int i = 0; i < 3; i++) {
        snprintf(spec, sizeof spec, fmt[i], fifo, fifo);
        open_fails(spec, DCL_ERR_IO, fifo, "FIFO");
    }
    open_fails("csv:/dev/null", DCL_ERR_IO, "/dev/null", "not a regular file");
    snprintf(spec, sizeof spec, "csv:%s", tmpdir);
    open_fails(spec, DCL_ERR_IO, tmpdir, "folder");
    remove(fifo);
    // 21 bytes declaring 2088 images of 768x256 (1.6 GB).
    unsigned char h[21] = {0, 0, 8, 3};
    put_be32(h + 4, 2088), put_be32(h + 8, 768), put_be32(h + 12, 256);
    path_of(p, sizeof p, "idx21.idx");
    write_raw(p, h, sizeof h);
    snprintf(spec, sizeof spec, "idx:%s", p);
    open_fails(spec, DCL_ERR_FORMAT, p, "but the file holds 5");
}

// ---- Fashion-MNIST -----------------------------------------------------------------------------

static void test_fashion_mnist(void) {
    struct stat st;
    if (stat(DCL_FASHION_MNIST_DIR, &st) != 0) {
        printf("note: %s not found (Debian's dataset-fashion-mnist); skipping the Fashion-MNIST "
               "checks\n",
               DCL_FASHION_MNIST_DIR);
        return;
    }
    const char *specs[2] = {"fashion-mnist", "fashion-mnist:split=test"};
    const size_t sizes[2] = {60000, 10000};
    for (int v = 0; v < 2; v++) {
        dcl_dataset *ds = open_ok(specs[v], 0);
        if (!ds) continue;
        int C, H, W;
        CHECK_EQ(dcl_dataset_image_shape(ds, &C, &H, &W), 1);
        CHECK_EQ(C, 1);
        CHECK_EQ(H, 28);
        CHECK_EQ(W, 28);
        CHECK_EQ(dcl_dataset_size(ds), sizes[v]);
        CHECK_EQ(dcl_dataset_dim(ds), 784);
        CHECK_EQ(dcl_dataset_num_classes(ds), 10);
        CHECK(strcmp(dcl_dataset_class_name(ds, 0), "T-shirt/top") == 0);
        CHECK(strcmp(dcl_dataset_class_name(ds, 9), "Ankle boot") == 0);
        const float *x = dcl_dataset_points(ds);
        float lo = 2, hi = -2;
        for (size_t i = 0; i < sizes[v] * 784; i++) {
            if (x[i] < lo) lo = x[i];
            if (x[i] > hi) hi = x[i];
        }
        CHECK(lo == -1.0f);
        CHECK(hi == 1.0f);
        size_t count[10] = {0};
        const int32_t *l = dcl_dataset_labels(ds);
        for (size_t i = 0; i < sizes[v]; i++) {
            CHECK(l[i] >= 0 && l[i] < 10);
            if (l[i] >= 0 && l[i] < 10) count[l[i]]++;
        }
        for (int k = 0; k < 10; k++) CHECK_EQ(count[k], sizes[v] / 10); // balanced classes
        dcl_dataset_free(ds);
    }
    dcl_dataset *ds = open_ok("fashion-mnist:split=test,n=100", 1);
    if (ds) CHECK_EQ(dcl_dataset_size(ds), 100);
    dcl_dataset_free(ds);
    printf("Fashion-MNIST checked in %s\n", DCL_FASHION_MNIST_DIR);
}

// ---- main --------------------------------------------------------------------------------------

static void remove_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    if (!check_tmpdir(tmpdir, sizeof tmpdir, "diffcl-imgdata")) return 1;
    make_pixels();
    test_idx_read();
    test_subsets_and_batches();
    test_rejects();
    test_spec_errors();
    test_png_folder();
    test_png_folder_rgb64();
    test_png_changed_between_passes();
    test_not_regular_and_declared_size();
    test_fashion_mnist();
    remove_tree(tmpdir);
    return check_exit();
}
