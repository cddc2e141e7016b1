// Image sets behind dataset specs: parsing "fashion-mnist:split=test,n=100", "idx:IMAGES,LABELS",
// "png:FOLDER" and "shapes32:n=500", finding the Fashion-MNIST files and class names, and calling
// the reader or the shapes generator.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"         // dcl__fail
#include "data/data_internal.h" // dcl__image_set, dcl__idx_read, dcl__pngdir_read
#include "diffcl/data.h"        // DCL_FASHION_MNIST_DIR, DCL_DATA_MAX_FIXED

static const char *const fashion_classes[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

int dcl__image_spec(const char *spec) {
    return strncmp(spec, "idx:", 4) == 0 || strncmp(spec, "png:", 4) == 0 ||
           strcmp(spec, "fashion-mnist") == 0 || strncmp(spec, "fashion-mnist:", 14) == 0 ||
           strncmp(spec, "shapes", 6) == 0;
}

// The options of an image spec.
typedef struct image_opts {
    size_t n;     // n=K, 0 when not given
    int classes;  // classes=K (idx), 0 when not given
    int test;     // split=test (fashion-mnist)
    char *images; // idx: / png: path (malloc'ed)
    char *labels; // idx: second path (malloc'ed) or NULL
} image_opts;

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

// Parses a whole number in 1..max from [v, v + len).
static int parse_count(const char *v, size_t len, unsigned long long max, unsigned long long *out) {
    if (len == 0 || len > 20) return 0;
    unsigned long long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        x = x * 10 + (unsigned)(v[i] - '0');
        if (x > max) return 0;
    }
    if (x < 1) return 0;
    *out = x;
    return 1;
}

// One comma-separated segment: an option this kind of set takes (1, *s set), not an option (0),
// or a bad option (1 with *s an error).
static int parse_option(image_opts *o, const char *kind, const char *spec, const char *seg,
                        size_t len, dcl_status *s) {
    const char *eq = memchr(seg, '=', len);
    if (!eq) return 0;
    size_t key = (size_t)(eq - seg), vlen = len - key - 1;
    const char *v = eq + 1;
    unsigned long long x = 0;
    *s = DCL_OK;
    if (key == 1 && seg[0] == 'n') {
        if (!parse_count(v, vlen, DCL_DATA_MAX_FIXED, &x))
            *s = dcl__fail(DCL_ERR_ARG,
                           "dataset '%s': n must be a whole number in 1..%d (images to keep), got "
                           "'%.*s'",
                           spec, DCL_DATA_MAX_FIXED, (int)vlen, v);
        o->n = (size_t)x;
        return 1;
    }
    if (strcmp(kind, "idx") == 0 && key == 7 && memcmp(seg, "classes", 7) == 0) {
        if (!parse_count(v, vlen, 256, &x))
            *s = dcl__fail(DCL_ERR_ARG,
                           "dataset '%s': classes must be a whole number in 1..256 (labels are "
                           "bytes), got '%.*s'",
                           spec, (int)vlen, v);
        o->classes = (int)x;
        return 1;
    }
    if ((strcmp(kind, "fashion-mnist") == 0 || strcmp(kind, "shapes") == 0) && key == 5 &&
        memcmp(seg, "split", 5) == 0) {
        if (vlen == 5 && memcmp(v, "train", 5) == 0) o->test = 0;
        else if (vlen == 4 && memcmp(v, "test", 4) == 0) o->test = 1;
        else
            *s = dcl__fail(DCL_ERR_ARG, "dataset '%s': split must be train or test, got '%.*s'",
                           spec, (int)vlen, v);
        return 1;
    }
    if (strcmp(kind, "png") == 0 || strcmp(kind, "idx") == 0) return 0; // maybe a path
    *s = dcl__fail(DCL_ERR_ARG,
                   "dataset '%s': unknown option '%.*s'; options: split=train|test, "
                   "n=K",
                   spec, (int)len, seg);
    return 1;
}

// Splits the part after "kind:" into paths and options.
static dcl_status parse_spec(image_opts *o, const char *kind, const char *spec, const char *rest) {
    int paths = 0, max_paths = strcmp(kind, "idx") == 0 ? 2 : strcmp(kind, "png") == 0 ? 1 : 0;
    while (rest && *rest) {
        size_t len = strcspn(rest, ",");
        dcl_status s = DCL_OK;
        if (len == 0)
            return dcl__fail(DCL_ERR_ARG, "dataset '%s': empty part between commas", spec);
        if (!parse_option(o, kind, spec, rest, len, &s)) {
            if (paths >= max_paths)
                return dcl__fail(DCL_ERR_ARG, "dataset '%s': unexpected '%.*s'; expected %s", spec,
                                 (int)len, rest,
                                 max_paths == 2   ? "idx:IMAGES[,LABELS][,n=K][,classes=K]"
                                 : max_paths == 1 ? "png:FOLDER[,n=K]"
                                 : strcmp(kind, "shapes") == 0
                                     ? "shapesS[:split=train|test][,n=K]"
                                     : "fashion-mnist[:split=train|test][,n=K]");
            char *p = dup_n(rest, len);
            if (!p) return dcl__fail(DCL_ERR_NOMEM, "dataset '%s': out of memory", spec);
            if (paths++ == 0) o->images = p;
            else o->labels = p;
        } else if (s != DCL_OK) {
            return s;
        }
        rest += len;
        if (*rest == ',') {
            rest++;
            if (!*rest)
                return dcl__fail(DCL_ERR_ARG, "dataset '%s': nothing after the last ','", spec);
        }
    }
    if (max_paths && paths == 0)
        return dcl__fail(DCL_ERR_ARG, "dataset '%s' needs a %s: %s", spec,
                         max_paths == 2 ? "file" : "folder",
                         max_paths == 2 ? "idx:IMAGES[,LABELS]" : "png:FOLDER");
    if (o->classes && !o->labels)
        return dcl__fail(DCL_ERR_ARG, "dataset '%s': classes=K needs a label file", spec);
    return DCL_OK;
}

// "DIR/NAME.gz" when it exists, else "DIR/NAME" when it exists, else NULL with *tried set.
static char *find_file(const char *dir, const char *name, char *tried, size_t tried_size) {
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    if (stat(path, &st) == 0) return dup_n(path, strlen(path));
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st) == 0) return dup_n(path, strlen(path));
    snprintf(tried, tried_size, "%s/%s(.gz)", dir, name);
    return NULL;
}

static dcl_status set_class_names(dcl__image_set *out, const char *const *names, int n) {
    out->class_names = calloc((size_t)n, sizeof *out->class_names);
    if (!out->class_names) return dcl__fail(DCL_ERR_NOMEM, "class names: out of memory");
    for (int k = 0; k < n; k++) {
        char digits[16];
        const char *name = names ? names[k] : digits;
        snprintf(digits, sizeof digits, "%d", k);
        out->class_names[k] = dup_n(name, strlen(name));
        if (!out->class_names[k]) return dcl__fail(DCL_ERR_NOMEM, "class names: out of memory");
    }
    return DCL_OK;
}

static dcl_status open_fashion(dcl__image_set *out, const image_opts *o, uint64_t seed) {
    const char *split = o->test ? "t10k" : "train";
    char name[64], tried[600];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", split);
    char *images = find_file(DCL_FASHION_MNIST_DIR, name, tried, sizeof tried);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", split);
    char *labels = images ? find_file(DCL_FASHION_MNIST_DIR, name, tried, sizeof tried) : NULL;
    dcl_status s;
    if (!images || !labels)
        s = dcl__fail(DCL_ERR_IO,
                      "Fashion-MNIST is not installed: no %s (install Debian's "
                      "dataset-fashion-mnist, or name the files with idx:IMAGES,LABELS)",
                      tried);
    else s = dcl__idx_read(out, images, labels, 10, o->n, seed);
    if (s == DCL_OK) s = set_class_names(out, fashion_classes, 10);
    free(images);
    free(labels);
    return s;
}

// The side S of "shapesS" (kind_len characters of spec), or 0 with the error set.
static int shapes_side(const char *spec, size_t kind_len) {
    unsigned long long side = 0;
    if (!parse_count(spec + 6, kind_len - 6, DCL_SHAPES_MAX_SIDE, &side) ||
        side < DCL_SHAPES_MIN_SIDE) {
        dcl__fail(DCL_ERR_ARG,
                  "dataset '%s': the shapes set is shapesS with S the side in pixels, %d..%d "
                  "(shapes32, shapes64), then options :split=train|test,n=K",
                  spec, DCL_SHAPES_MIN_SIDE, DCL_SHAPES_MAX_SIDE);
        return 0;
    }
    return (int)side;
}

dcl_status dcl__image_set_open(dcl__image_set *out, const char *spec, uint64_t seed) {
    memset(out, 0, sizeof *out);
    image_opts o = {0};
    const char *colon = strchr(spec, ':');
    char kind[16];
    size_t kind_len = (size_t)(colon - spec);
    if (!colon) kind_len = strlen(spec);
    int side = 0;
    if (strncmp(spec, "shapes", 6) == 0 && !(side = shapes_side(spec, kind_len)))
        return DCL_ERR_ARG;
    if (kind_len >= sizeof kind) kind_len = sizeof kind - 1;
    memcpy(kind, spec, kind_len);
    kind[kind_len] = '\0';
    if (side) strcpy(kind, "shapes");
    if (colon && !colon[1] && (side || strcmp(kind, "fashion-mnist") == 0))
        return dcl__fail(DCL_ERR_ARG, "dataset '%s': nothing after ':' (options: split=test, n=K)",
                         spec);
    dcl_status s = parse_spec(&o, kind, spec, colon ? colon + 1 : NULL);
    if (s == DCL_OK) {
        if (side) s = dcl__shapes_open(out, side, o.n ? o.n : DCL_SHAPES_DEFAULT_N, o.test, seed);
        else if (strcmp(kind, "fashion-mnist") == 0) s = open_fashion(out, &o, seed);
        else if (strcmp(kind, "png") == 0) s = dcl__pngdir_read(out, o.images, o.n, seed);
        else {
            int classes = o.classes ? o.classes : 10;
            s = dcl__idx_read(out, o.images, o.labels, classes, o.n, seed);
            if (s == DCL_OK && o.labels) s = set_class_names(out, NULL, classes);
        }
    }
    free(o.images);
    free(o.labels);
    if (s != DCL_OK) dcl__image_set_free(out);
    return s;
}
