// Datasets behind one handle: parsing a spec ("spiral", "spiral:n=40,noise=0.05", "csv:PATH";
// image sets in image_set.c), drawing a fixed training set once, and training batches and
// evaluation points from the Philox stream (seed, DCL_RNG_DATA, step).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"         // dcl__fail
#include "data/data_internal.h" // dcl__toy2d_*, dcl__csv_read, dcl__image_set_*, dcl__shapes_draw
#include "diffcl/data.h"
#include "diffcl/rng.h" // dcl_rng_bits_at, DCL_RNG_DATA

// Reserved steps of the data stream (above DCL_DATA_MAX_STEP): DCL_STEP_FIXED_SET
// (data_internal.h) draws the fixed training set, STEP_FRESH the evaluation points and
// DCL_STEP_TEST_SPLIT a generated image set's test split.
#define STEP_FRESH (UINT32_MAX - 1u)
// dcl_dataset_fresh's salt selects a range of 2^40 elements of STEP_FRESH.
#define SALT_SHIFT 40

struct dcl_dataset {
    char *spec;
    uint64_t seed;
    int toy;      // index of the built-in set, or -1 for a CSV or an image set
    double noise; // of the built-in set
    size_t D;
    float *points; // (n, D): the fixed set, the CSV's rows or the images; NULL when fresh
    size_t n;
    dcl__image_set img; // an image set's shape, labels and class names (img.x is points)
};

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static dcl_status unknown_name(const char *spec, size_t len) {
    return dcl__fail(DCL_ERR_ARG,
                     "unknown dataset '%.*s'; built-in: %s, shapes32 (colour images), or csv:PATH, "
                     "fashion-mnist, idx:IMAGES[,LABELS], png:FOLDER",
                     (int)len, spec, dcl__toy2d_list());
}

// Parses "n=40" or "noise=0.05" of a built-in set's options into ds.
static dcl_status parse_option(dcl_dataset *ds, const char *spec, const char *opt, size_t len) {
    const char *eq = memchr(opt, '=', len);
    size_t key_len = eq ? (size_t)(eq - opt) : len;
    char value[64];
    size_t value_len = eq ? len - key_len - 1 : 0;
    if (!eq || value_len == 0 || value_len >= sizeof value)
        return dcl__fail(DCL_ERR_ARG,
                         "dataset '%s': option '%.*s' needs a value (n=N or noise=STD)", spec,
                         (int)len, opt);
    memcpy(value, eq + 1, value_len);
    value[value_len] = '\0';
    char *end;
    errno = 0;
    if (key_len == 1 && opt[0] == 'n') {
        unsigned long long n = strtoull(value, &end, 10);
        if (*end || errno || value[0] == '-' || value[0] == '+' || n < 1 || n > DCL_DATA_MAX_FIXED)
            return dcl__fail(DCL_ERR_ARG,
                             "dataset '%s': n must be a whole number in 1..%d (the size of the "
                             "fixed training set), got '%s'",
                             spec, DCL_DATA_MAX_FIXED, value);
        ds->n = (size_t)n;
        return DCL_OK;
    }
    if (key_len == 5 && memcmp(opt, "noise", 5) == 0) {
        double v = strtod(value, &end);
        if (*end || errno || !(v >= 0.0 && v <= 10.0))
            return dcl__fail(DCL_ERR_ARG,
                             "dataset '%s': noise must be a number in [0, 10] (the std of the "
                             "Gaussian noise added to each point), got '%s'",
                             spec, value);
        ds->noise = v;
        return DCL_OK;
    }
    return dcl__fail(DCL_ERR_ARG,
                     "dataset '%s': unknown option '%.*s'; options: n=N (a fixed training set of "
                     "N points), noise=STD (default %g for %s)",
                     spec, (int)key_len, opt, dcl__toy2d_noise(ds->toy), dcl__toy2d_name(ds->toy));
}

static dcl_status open_builtin(dcl_dataset *ds, const char *spec) {
    const char *colon = strchr(spec, ':');
    size_t name_len = colon ? (size_t)(colon - spec) : strlen(spec);
    char name[32];
    if (name_len == 0 || name_len >= sizeof name) return unknown_name(spec, name_len);
    memcpy(name, spec, name_len);
    name[name_len] = '\0';
    ds->toy = dcl__toy2d_find(name);
    if (ds->toy < 0) return unknown_name(spec, name_len);
    ds->noise = dcl__toy2d_noise(ds->toy);
    ds->D = 2;
    if (colon) {
        const char *opt = colon + 1;
        if (!*opt)
            return dcl__fail(DCL_ERR_ARG,
                             "dataset '%s': nothing after ':' (options: n=N, noise=STD)", spec);
        for (;;) {
            size_t len = strcspn(opt, ",");
            dcl_status s = parse_option(ds, spec, opt, len);
            if (s != DCL_OK) return s;
            if (!opt[len]) break;
            opt += len + 1;
        }
    }
    if (ds->n == 0) return DCL_OK;
    ds->points = malloc(ds->n * 2 * sizeof(float));
    if (!ds->points) return dcl__fail(DCL_ERR_NOMEM, "dataset '%s': out of memory", spec);
    dcl__toy2d_generate(ds->toy, ds->noise, ds->seed, DCL_STEP_FIXED_SET, 0, ds->points, ds->n);
    return DCL_OK;
}

dcl_status dcl_dataset_open(dcl_dataset **out, const char *spec, uint64_t seed) {
    if (!out) return dcl__fail(DCL_ERR_ARG, "dcl_dataset_open: no output pointer");
    *out = NULL;
    if (!spec || !*spec)
        return dcl__fail(DCL_ERR_ARG,
                         "no dataset given; built-in: %s, shapes32 (colour images), or csv:PATH, "
                         "fashion-mnist, idx:IMAGES[,LABELS], png:FOLDER",
                         dcl__toy2d_list());
    dcl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->spec = dup_string(spec))) {
        free(ds);
        return dcl__fail(DCL_ERR_NOMEM, "dataset '%s': out of memory", spec);
    }
    ds->seed = seed;
    ds->toy = -1;
    dcl_status s;
    if (strncmp(spec, "csv:", 4) == 0) {
        if (!spec[4]) s = dcl__fail(DCL_ERR_ARG, "dataset 'csv:' needs a file: csv:PATH");
        else s = dcl__csv_read(spec + 4, &ds->points, &ds->n, &ds->D);
    } else if (dcl__image_spec(spec)) {
        s = dcl__image_set_open(&ds->img, spec, seed);
        if (s == DCL_OK) {
            ds->points = ds->img.x;
            ds->n = ds->img.n;
            ds->D = (size_t)ds->img.C * ds->img.H * ds->img.W;
        }
    } else {
        s = open_builtin(ds, spec);
    }
    if (s != DCL_OK) {
        dcl_dataset_free(ds);
        return s;
    }
    *out = ds;
    return DCL_OK;
}

void dcl_dataset_free(dcl_dataset *ds) {
    if (!ds) return;
    if (ds->points == ds->img.x) ds->points = NULL;
    dcl__image_set_free(&ds->img);
    free(ds->points);
    free(ds->spec);
    free(ds);
}

const char *dcl_dataset_spec(const dcl_dataset *ds) { return ds->spec; }
size_t dcl_dataset_dim(const dcl_dataset *ds) { return ds->D; }
size_t dcl_dataset_size(const dcl_dataset *ds) { return ds->points ? ds->n : 0; }
const float *dcl_dataset_points(const dcl_dataset *ds) { return ds->points; }

int dcl_dataset_image_shape(const dcl_dataset *ds, int *C, int *H, int *W) {
    int image = ds && ds->img.x != NULL;
    if (C) *C = image ? ds->img.C : 0;
    if (H) *H = image ? ds->img.H : 0;
    if (W) *W = image ? ds->img.W : 0;
    return image;
}

int dcl_dataset_num_classes(const dcl_dataset *ds) { return ds ? ds->img.n_classes : 0; }

const char *dcl_dataset_class_name(const dcl_dataset *ds, int k) {
    if (!ds || k < 0 || k >= ds->img.n_classes || !ds->img.class_names) return NULL;
    return ds->img.class_names[k];
}

const int32_t *dcl_dataset_labels(const dcl_dataset *ds) { return ds ? ds->img.labels : NULL; }

// x (N, D) = rows of the fixed set at indices from elements first + i of (seed, DATA, step), and
// their labels (0 when unlabelled) when labels is not NULL.
static void gather(const dcl_dataset *ds, float *x, int32_t *labels, size_t N, uint32_t step,
                   uint64_t first) {
    for (size_t i = 0; i < N; i++) {
        uint32_t bits = dcl_rng_bits_at(ds->seed, DCL_RNG_DATA, step, first + i);
        size_t k = (size_t)(((uint64_t)bits * ds->n) >> 32); // uniform in 0..n-1 (n < 2^32)
        memcpy(x + i * ds->D, ds->points + k * ds->D, ds->D * sizeof *x);
        if (labels) labels[i] = ds->img.labels ? ds->img.labels[k] : 0;
    }
}

static dcl_status check_out(const dcl_dataset *ds, const float *x, size_t N, const char *fn) {
    if (!ds) return dcl__fail(DCL_ERR_ARG, "%s: no dataset", fn);
    if (N > 0 && !x) return dcl__fail(DCL_ERR_ARG, "%s: no output buffer for %zu points", fn, N);
    if (N > ((uint64_t)1 << 36))
        return dcl__fail(DCL_ERR_ARG, "%s: %zu points at once is too many", fn, N);
    return DCL_OK;
}

dcl_status dcl_dataset_batch_labels(dcl_dataset *ds, float *x, int32_t *labels, size_t N,
                                    uint64_t step) {
    return dcl_dataset_batch_at(ds, x, labels, 0, N, step);
}

dcl_status dcl_dataset_batch_at(dcl_dataset *ds, float *x, int32_t *labels, uint64_t first,
                                size_t N, uint64_t step) {
    dcl_status s = check_out(ds, x, N, "dcl_dataset_batch");
    if (s != DCL_OK) return s;
    if (step > DCL_DATA_MAX_STEP)
        return dcl__fail(DCL_ERR_ARG, "dataset '%s': step %llu is beyond the last one (%u)",
                         ds->spec, (unsigned long long)step, DCL_DATA_MAX_STEP);
    if (ds->points) {
        gather(ds, x, labels, N, (uint32_t)step, first);
    } else {
        dcl__toy2d_generate(ds->toy, ds->noise, ds->seed, (uint32_t)step, first, x, N);
        if (labels) memset(labels, 0, N * sizeof *labels);
    }
    return DCL_OK;
}

dcl_status dcl_dataset_batch(dcl_dataset *ds, float *x, size_t N, uint64_t step) {
    return dcl_dataset_batch_labels(ds, x, NULL, N, step);
}

dcl_status dcl_dataset_fresh(dcl_dataset *ds, float *x, size_t N, uint64_t salt) {
    dcl_status s = check_out(ds, x, N, "dcl_dataset_fresh");
    if (s != DCL_OK) return s;
    if (salt > DCL_DATA_MAX_SALT)
        return dcl__fail(DCL_ERR_ARG, "dataset '%s': evaluation salt %llu is above %u", ds->spec,
                         (unsigned long long)salt, DCL_DATA_MAX_SALT);
    uint64_t first = salt << SALT_SHIFT;
    if (ds->toy >= 0)
        dcl__toy2d_generate(ds->toy, ds->noise, ds->seed, STEP_FRESH, first / DCL_TOY2D_ELEMENTS, x,
                            N);
    else if (ds->img.shapes)
        dcl__shapes_draw(ds->img.H, ds->seed, STEP_FRESH, first / dcl__shapes_elements(ds->img.H),
                         x, NULL, N);
    else gather(ds, x, NULL, N, STEP_FRESH, first);
    return DCL_OK;
}
