// Safetensors reader and writer (format: https://github.com/huggingface/safetensors): F32 only,
// every header rule checked before any tensor byte is trusted, data copied into aligned host memory
// and converted from little-endian by byte shifts, so the code is the same on any host.
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "core/error.h"     // dcl__fail
#include "io/atomic_file.h" // dcl__atomic_file_open, _write, _commit, _abort
#include "diffcl/safetensors.h"

// Alignment of the host copy of the data section; each tensor then starts 4-byte aligned.
#define DATA_ALIGN 64
// Floats converted per chunk when writing.
#define WRITE_CHUNK 4096

struct dcl_st_file {
    int n;
    dcl_st_tensor *tensors;        // sorted by data offset (file order)
    const dcl_st_tensor **by_name; // the same, sorted by name, for dcl_safetensors_find
    char **names;                  // owned copies; tensors[i].name == names[i]
    float *data;                   // the whole data section, DATA_ALIGN-aligned
    int n_meta;
    char **meta; // key 0, value 0, key 1, ...
};

// ---- small helpers -----------------------------------------------------------------------------

static void put_u64le(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64le(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, cp, min;
        int k;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        for (int i = 1; i <= k; i++) { // stops at the NUL, which is not a continuation byte
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        p += k + 1;
    }
    return 1;
}

// A name as a message shows it: at most ~64 bytes (not cut inside a UTF-8 sequence), control bytes
// and the bytes of a name that is not UTF-8 as \xNN. Used as show(name).s within one expression.
typedef struct shown {
    char s[96];
} shown;

static shown show(const char *name) {
    shown o;
    size_t k = 0;
    const int utf8 = utf8_valid(name);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((k > 64 && (*p & 0xC0) != 0x80) || k > 80) {
            memcpy(o.s + k, "...", 4);
            return o;
        }
        if (*p < 0x20 || *p == 0x7F || (*p > 0x7F && !utf8)) {
            k += (size_t)snprintf(o.s + k, sizeof o.s - k, "\\x%02x", *p);
        } else {
            o.s[k++] = (char)*p;
        }
    }
    o.s[k] = '\0';
    return o;
}

// "[2,3]" for messages; long shapes are cut with "...".
typedef struct shape_text {
    char s[200];
} shape_text;

static shape_text shape_str(const uint64_t *shape, int ndim) {
    shape_text o;
    size_t k = 0;
    o.s[k++] = '[';
    for (int d = 0; d < ndim && k < sizeof o.s - 30; d++) {
        k += (size_t)snprintf(o.s + k, sizeof o.s - k, "%s%llu", d ? "," : "",
                              (unsigned long long)shape[d]);
    }
    snprintf(o.s + k, sizeof o.s - k, "]");
    return o;
}

// prod(shape) * 4 bytes as F32, checked in the reference's order (a 0 after an overflowing prefix
// does not rescue it). Returns 0 on success, -1 on overflow.
static int f32_bytes(const uint64_t *shape, int ndim, uint64_t *bytes) {
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] != 0 && n > UINT64_MAX / shape[d]) return -1;
        n *= shape[d];
    }
    if (n > UINT64_MAX / 4) return -1;
    *bytes = n * 4;
    return 0;
}

uint64_t dcl_st_tensor_numel(const dcl_st_tensor *t) {
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// The first string that occurs twice in s[0..n), or NULL. Sorts a copy of the pointers.
static const char *find_duplicate(const char **s, size_t n) {
    qsort(s, n, sizeof *s, cmp_str_ptr);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(s[i - 1], s[i]) == 0) return s[i];
    }
    return NULL;
}

// ---- writer ------------------------------------------------------------------------------------
//
// The rules the writer follows (the format's README and the reference writer, serialize() in
// safetensors/src/tensor.rs):
// 1. Every argument is checked before a file is created: tensor names non-empty, at most
//    DCL_ST_MAX_NAME bytes, valid UTF-8, distinct and not "__metadata__"; metadata keys distinct;
//    every string valid UTF-8; each shape's byte size computed with overflow checks.
// 2. The header is compact JSON: __metadata__ first, with "format": "pt" added when the caller gave
//    no "format" (so it is never an empty {}); then each tensor with its fields in the order dtype,
//    shape, data_offsets. jansson escapes quotes, backslashes and control characters.
// 3. Tensors are packed back to back from data offset 0 in the caller's order: the format forbids
//    bytes that belong to no tensor. The header is padded with spaces (0x20) to a multiple of 8, so
//    the data section starts 8-aligned and every F32 tensor 4-aligned. N <= DCL_ST_MAX_HEADER.
// 4. N and every float are written little-endian by byte shifts, whatever the host's byte order.
// 5. The file is written atomically (io/atomic_file.c): a reader sees the old file or the new one.

// Checks every argument before anything is created; fills begin/end offsets of each tensor.
static dcl_status check_write_args(const char *path, const dcl_st_tensor *t, int n,
                                   const char *const *meta, int n_meta, uint64_t *offsets,
                                   int *has_format) {
    if (n < 0 || (n > 0 && !t)) {
        return dcl__fail(DCL_ERR_ARG, "writing %s: no tensor array for %d tensors", path, n);
    }
    if (n_meta < 0 || (n_meta > 0 && !meta)) {
        return dcl__fail(DCL_ERR_ARG, "writing %s: no metadata array for %d pairs", path, n_meta);
    }
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *name = t[i].name;
        if (!name || !*name) {
            return dcl__fail(DCL_ERR_ARG, "writing %s: tensor %d has an empty name", path, i);
        }
        size_t len = strlen(name);
        if (len > DCL_ST_MAX_NAME) {
            return dcl__fail(DCL_ERR_ARG,
                             "writing %s: tensor %d's name '%s' is %zu bytes; the limit is %d",
                             path, i, show(name).s, len, DCL_ST_MAX_NAME);
        }
        if (strcmp(name, "__metadata__") == 0) {
            return dcl__fail(DCL_ERR_ARG,
                             "writing %s: tensor %d is named '__metadata__', which is reserved",
                             path, i);
        }
        if (!utf8_valid(name)) {
            return dcl__fail(DCL_ERR_ARG, "writing %s: tensor %d's name '%s' is not valid UTF-8",
                             path, i, show(name).s);
        }
        if (t[i].ndim < 0 || t[i].ndim > DCL_ST_MAX_DIMS) {
            return dcl__fail(DCL_ERR_ARG,
                             "writing %s: tensor '%s' has %d dimensions; allowed are 0..%d", path,
                             show(name).s, t[i].ndim, DCL_ST_MAX_DIMS);
        }
        uint64_t bytes;
        int bad_dim = 0;
        for (int d = 0; d < t[i].ndim; d++) bad_dim |= t[i].shape[d] > (uint64_t)INT64_MAX;
        if (bad_dim || f32_bytes(t[i].shape, t[i].ndim, &bytes) != 0 ||
            bytes > (uint64_t)INT64_MAX || bytes > SIZE_MAX ||
            total > (uint64_t)INT64_MAX - bytes) {
            return dcl__fail(DCL_ERR_ARG, "writing %s: tensor '%s' with shape %s is too large",
                             path, show(name).s, shape_str(t[i].shape, t[i].ndim).s);
        }
        if (bytes && !t[i].data) {
            return dcl__fail(DCL_ERR_ARG, "writing %s: tensor '%s' with shape %s has no data", path,
                             show(name).s, shape_str(t[i].shape, t[i].ndim).s);
        }
        offsets[2 * i] = total;
        total += bytes;
        offsets[2 * i + 1] = total;
    }
    *has_format = 0;
    for (int i = 0; i < 2 * n_meta; i++) {
        if (!meta[i]) {
            return dcl__fail(DCL_ERR_ARG, "writing %s: metadata %s %d is NULL", path,
                             i % 2 ? "value" : "key", i / 2);
        }
        if (!utf8_valid(meta[i])) {
            return dcl__fail(DCL_ERR_ARG, "writing %s: metadata %s '%s' is not valid UTF-8", path,
                             i % 2 ? "value" : "key", show(meta[i]).s);
        }
        if (i % 2 == 0 && strcmp(meta[i], "format") == 0) *has_format = 1;
    }

    // Duplicates: sort copies of the name pointers.
    size_t m = (size_t)(n > n_meta ? n : n_meta);
    const char **s = malloc((m ? m : 1) * sizeof *s);
    if (!s) return dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path);
    for (int i = 0; i < n; i++) s[i] = t[i].name;
    const char *dup = find_duplicate(s, (size_t)n);
    if (dup) {
        dcl_status st =
            dcl__fail(DCL_ERR_ARG, "writing %s: two tensors are named '%s'", path, show(dup).s);
        free(s);
        return st;
    }
    for (int i = 0; i < n_meta; i++) s[i] = meta[2 * i];
    dup = find_duplicate(s, (size_t)n_meta);
    if (dup) {
        dcl_status st = dcl__fail(DCL_ERR_ARG, "writing %s: metadata key '%s' is given twice", path,
                                  show(dup).s);
        free(s);
        return st;
    }
    free(s);
    return DCL_OK;
}

// The compact JSON header (without padding): __metadata__ first, then the tensors in the given
// order, each with dtype, shape, data_offsets in that order (the reference writer's layout).
static char *build_header(const dcl_st_tensor *t, int n, const char *const *meta, int n_meta,
                          int has_format, const uint64_t *offsets) {
    json_t *root = json_object();
    int bad = !root;
    if (!bad && (n_meta > 0 || !has_format)) {
        json_t *md = json_object();
        bad |= json_object_set_new(root, "__metadata__", md) != 0;
        if (!has_format) bad |= json_object_set_new(md, "format", json_string("pt")) != 0;
        for (int i = 0; i < n_meta && !bad; i++) {
            bad |= json_object_set_new(md, meta[2 * i], json_string(meta[2 * i + 1])) != 0;
        }
    }
    for (int i = 0; i < n && !bad; i++) {
        json_t *e = json_object(), *shape = json_array(), *off = json_array();
        bad |= json_object_set_new(root, t[i].name, e) != 0;
        bad |= json_object_set_new(e, "dtype", json_string("F32")) != 0;
        bad |= json_object_set_new(e, "shape", shape) != 0;
        bad |= json_object_set_new(e, "data_offsets", off) != 0;
        for (int d = 0; d < t[i].ndim && !bad; d++) {
            bad |= json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d])) != 0;
        }
        for (int k = 0; k < 2 && !bad; k++) {
            bad |= json_array_append_new(off, json_integer((json_int_t)offsets[2 * i + k])) != 0;
        }
    }
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

// Writes count floats as little-endian bytes, through a small buffer.
static dcl_status write_f32le(dcl_atomic_file *af, const float *x, uint64_t count) {
    unsigned char buf[4 * WRITE_CHUNK];
    while (count > 0) {
        size_t k = count < WRITE_CHUNK ? (size_t)count : WRITE_CHUNK;
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            for (int b = 0; b < 4; b++) buf[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        dcl_status s = dcl__atomic_file_write(af, buf, 4 * k);
        if (s != DCL_OK) return s;
        x += k;
        count -= k;
    }
    return DCL_OK;
}

dcl_status dcl_safetensors_write(const char *path, const dcl_st_tensor *tensors, int n,
                                 const char *const *meta, int n_meta) {
    if (!path || !*path) return dcl__fail(DCL_ERR_ARG, "writing safetensors: no path given");
    uint64_t *offsets = malloc(2 * (size_t)(n > 0 ? n : 1) * sizeof *offsets);
    if (!offsets) return dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory", path);
    int has_format = 0;
    dcl_status s = check_write_args(path, tensors, n, meta, n_meta, offsets, &has_format);
    char *header = NULL;
    if (s == DCL_OK) {
        header = build_header(tensors, n, meta, n_meta, has_format, offsets);
        if (!header) s = dcl__fail(DCL_ERR_NOMEM, "writing %s: out of memory for the header", path);
    }
    size_t len = header ? strlen(header) : 0, padded = (len + 7) / 8 * 8;
    if (s == DCL_OK && padded > DCL_ST_MAX_HEADER) {
        s = dcl__fail(DCL_ERR_ARG, "writing %s: the header would be %zu bytes; the limit is %d",
                      path, padded, DCL_ST_MAX_HEADER);
    }
    dcl_atomic_file af = {0};
    if (s == DCL_OK) s = dcl__atomic_file_open(&af, path);
    if (s == DCL_OK) {
        uint64_t total = 8 + padded + (n > 0 ? offsets[2 * (n - 1) + 1] : 0);
        if ((s = dcl__atomic_file_reserve(&af, total)) != DCL_OK) dcl__atomic_file_abort(&af);
    }
    if (s == DCL_OK) {
        unsigned char prefix[8];
        static const char spaces[] = "       "; // padding is at most 7 bytes
        put_u64le(prefix, padded);
        s = dcl__atomic_file_write(&af, prefix, 8);
        if (s == DCL_OK) s = dcl__atomic_file_write(&af, header, len);
        if (s == DCL_OK) s = dcl__atomic_file_write(&af, spaces, padded - len);
        for (int i = 0; i < n && s == DCL_OK; i++) {
            s = write_f32le(&af, tensors[i].data, (offsets[2 * i + 1] - offsets[2 * i]) / 4);
        }
        if (s == DCL_OK) {
            s = dcl__atomic_file_commit(&af);
        } else {
            dcl__atomic_file_abort(&af);
        }
    }
    free(header);
    free(offsets);
    return s;
}

// ---- reader ------------------------------------------------------------------------------------
//
// The rules the reader enforces, each failure a DCL_ERR_FORMAT (or DCL_ERR_IO) naming the file and,
// where there is one, the byte offset; nothing in a file can make it crash or abort:
// 1. The file has at least 8 bytes; 0 < N <= DCL_ST_MAX_HEADER and N <= size − 8, checked before
//    the header is allocated.
// 2. JSON whitespace may precede the '{' (the reference reader accepts it since
//    huggingface/safetensors PR #686) and follow the object; nothing else may. jansson parses the
//    header: strict UTF-8, no \u0000, duplicate keys rejected, nesting depth limited.
// 3. The top level is an object; __metadata__, if present, an object of string values. Every other
//    key is a non-empty name of at most DCL_ST_MAX_NAME bytes mapping to an object with exactly
//    dtype (F32; any other dtype of the format is named in the error), shape (at most
//    DCL_ST_MAX_DIMS non-negative integers; [] is a scalar) and data_offsets (two non-negative
//    integers, end >= begin, end − begin = 4 prod(shape) with the product checked for overflow).
// 4. Sorted by (begin, end), the tensors tile the data section exactly: from 0, no gap, no
//    overlap, the last ending at size − 8 − N. A file with unused or missing bytes is rejected.
// 5. The data are copied (memcpy, never a cast into the file's bytes, which may be unaligned) into
//    DATA_ALIGN-aligned host memory and converted from little-endian.

// One header entry while validating; name points into the parsed JSON.
typedef struct entry {
    const char *name;
    uint64_t begin, end;
    int ndim;
    uint64_t shape[DCL_ST_MAX_DIMS];
} entry;

static int cmp_entry(const void *pa, const void *pb) {
    const entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const dcl_st_tensor *const *)a)->name,
                  (*(const dcl_st_tensor *const *)b)->name);
}

void dcl_safetensors_free(dcl_st_file *f) {
    if (!f) return;
    for (int i = 0; f->names && i < f->n; i++) free(f->names[i]);
    for (int i = 0; f->meta && i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->names);
    free(f->meta);
    free(f->tensors);
    free(f->by_name);
    free(f->data);
    free(f);
}

static const char *const other_dtypes[] = {
    "BOOL",        "U8",  "I8",      "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
    "F8_E5M2FNUZ", "F4",  "F6_E2M3", "F6_E3M2", "I16",     "U16",     "F16",
    "BF16",        "I32", "U32",     "F64",     "I64",     "U64",     "C64",
};

// A non-negative JSON integer, or -1 (then *v is untouched).
static int json_u64(const json_t *j, uint64_t *v) {
    if (!json_is_integer(j) || json_integer_value(j) < 0) return -1;
    *v = (uint64_t)json_integer_value(j);
    return 0;
}

// Validates one tensor entry of the header (everything that does not need the other entries).
static dcl_status parse_entry(const char *file, const char *name, const json_t *v,
                              uint64_t data_size, uint64_t data_start, entry *e) {
    size_t len = strlen(name);
    if (len == 0) return dcl__fail(DCL_ERR_FORMAT, "%s: a tensor has an empty name", file);
    if (len > DCL_ST_MAX_NAME) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: tensor name '%s' is %zu bytes; the limit is %d", file,
                         show(name).s, len, DCL_ST_MAX_NAME);
    }
    if (!json_is_object(v)) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s': the entry is not a JSON object", file,
                         show(name).s);
    }
    const char *key;
    const json_t *field;
    json_object_foreach((json_t *)v, key, field) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets")) {
            return dcl__fail(DCL_ERR_FORMAT,
                             "%s: tensor '%s' has an unknown field '%s' (allowed: dtype, shape, "
                             "data_offsets)",
                             file, show(name).s, show(key).s);
        }
    }
    const json_t *dtype = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
                 *offs = json_object_get(v, "data_offsets");
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' has no '%s'", file, show(name).s,
                         missing);
    }

    if (!json_is_string(dtype)) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s': dtype is not a string", file,
                         show(name).s);
    }
    const char *dt = json_string_value(dtype);
    if (strcmp(dt, "F32") != 0) {
        for (size_t i = 0; i < sizeof other_dtypes / sizeof other_dtypes[0]; i++) {
            if (strcmp(dt, other_dtypes[i]) == 0) {
                return dcl__fail(DCL_ERR_FORMAT,
                                 "%s: tensor '%s' has dtype %s; diffcl reads F32 only", file,
                                 show(name).s, dt);
            }
        }
        return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%s'", file,
                         show(name).s, show(dt).s);
    }

    if (!json_is_array(shape)) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s': shape is not an array", file,
                         show(name).s);
    }
    size_t nd = json_array_size(shape);
    if (nd > DCL_ST_MAX_DIMS) {
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: tensor '%s' has %zu dimensions; diffcl reads at most %d", file,
                         show(name).s, nd, DCL_ST_MAX_DIMS);
    }
    e->name = name;
    e->ndim = (int)nd;
    for (size_t d = 0; d < nd; d++) {
        if (json_u64(json_array_get(shape, d), &e->shape[d]) != 0) {
            return dcl__fail(DCL_ERR_FORMAT,
                             "%s: tensor '%s': shape entry %zu is not a non-negative integer", file,
                             show(name).s, d);
        }
    }
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        json_u64(json_array_get(offs, 0), &e->begin) != 0 ||
        json_u64(json_array_get(offs, 1), &e->end) != 0) {
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets is not [begin, end] of two non-negative "
                         "integers",
                         file, show(name).s);
    }
    if (e->end < e->begin) {
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu,%llu] end before they begin", file,
                         show(name).s, (unsigned long long)e->begin, (unsigned long long)e->end);
    }
    uint64_t bytes;
    if (f32_bytes(e->shape, e->ndim, &bytes) != 0) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s': the size of shape %s overflows", file,
                         show(name).s, shape_str(e->shape, e->ndim).s);
    }
    if (e->end - e->begin != bytes) {
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: tensor '%s' has shape %s (%llu bytes as F32) but data_offsets "
                         "[%llu,%llu] hold %llu bytes",
                         file, show(name).s, shape_str(e->shape, e->ndim).s,
                         (unsigned long long)bytes, (unsigned long long)e->begin,
                         (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
    }
    if (e->end > data_size) {
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu,%llu] run past the end of the file "
                         "(the data section is %llu bytes from file offset %llu; truncated file?)",
                         file, show(name).s, (unsigned long long)e->begin,
                         (unsigned long long)e->end, (unsigned long long)data_size,
                         (unsigned long long)data_start);
    }
    return DCL_OK;
}

static dcl_status parse_metadata(const char *file, const json_t *md, dcl_st_file *f) {
    if (!json_is_object(md)) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", file);
    }
    size_t n = json_object_size(md);
    f->meta = calloc(2 * n + 1, sizeof *f->meta);
    if (!f->meta) return dcl__fail(DCL_ERR_NOMEM, "%s: out of memory for the metadata", file);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)md, key, v) {
        if (!json_is_string(v)) {
            return dcl__fail(DCL_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", file,
                             show(key).s);
        }
        f->meta[2 * f->n_meta] = strdup(key);
        f->meta[2 * f->n_meta + 1] = strdup(json_string_value(v));
        f->n_meta++;
        if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1]) {
            return dcl__fail(DCL_ERR_NOMEM, "%s: out of memory for the metadata", file);
        }
    }
    return DCL_OK;
}

// Parses and validates the header (hdr[0..len), not NUL-terminated) of a file whose data section
// has data_size bytes. Fills f's tensors (file order), names and metadata, and allocates f->data
// for the data section with each tensor's data pointing into it; the caller fills the bytes.
static dcl_status parse_header(const char *file, const char *hdr, size_t len, uint64_t data_size,
                               dcl_st_file *f) {
    const uint64_t data_start = 8 + (uint64_t)len;
    // The reference accepts leading JSON whitespace (its PR #686) but nothing else before the '{'.
    size_t i = 0;
    while (i < len && (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == '\n' || hdr[i] == '\r')) i++;
    if (i == len) return dcl__fail(DCL_ERR_FORMAT, "%s: the header is empty or only spaces", file);
    if (hdr[i] != '{') {
        return dcl__fail(
            DCL_ERR_FORMAT,
            "%s: the header must start with '{' but has byte 0x%02x at file offset %zu", file,
            (unsigned char)hdr[i], 8 + i);
    }
    // jansson: strict UTF-8, no \u0000, nesting depth limited, only whitespace after the object.
    json_error_t jerr;
    json_t *root = json_loadb(hdr, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return dcl__fail(
            DCL_ERR_FORMAT, "%s: the header is not valid JSON near file offset %llu: %s", file,
            (unsigned long long)(8 + (jerr.position > 0 ? jerr.position : 0)), jerr.text);
    }
    dcl_status s = DCL_OK;
    size_t count = json_object_size(root);
    entry *e = NULL;
    if (!json_is_object(root)) {
        s = dcl__fail(DCL_ERR_FORMAT, "%s: the header is not a JSON object", file);
    } else if (count > INT_MAX) {
        s = dcl__fail(DCL_ERR_FORMAT, "%s: the header lists %zu tensors; too many", file, count);
    } else if (!(e = malloc((count ? count : 1) * sizeof *e))) {
        s = dcl__fail(DCL_ERR_NOMEM, "%s: out of memory for %zu header entries", file, count);
    }
    size_t n = 0;
    if (s == DCL_OK) {
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if (strcmp(key, "__metadata__") == 0) {
                s = parse_metadata(file, v, f);
            } else {
                s = parse_entry(file, key, v, data_size, data_start, &e[n]);
                n++;
            }
            if (s != DCL_OK) break;
        }
    }
    if (s == DCL_OK) {
        // Order by offsets; the data section must then be covered from 0 without gap or overlap.
        qsort(e, n, sizeof *e, cmp_entry);
        uint64_t at = 0;
        for (size_t k = 0; k < n && s == DCL_OK; k++) {
            if (e[k].begin > at) {
                s = dcl__fail(DCL_ERR_FORMAT,
                              "%s: %llu bytes at file offset %llu (data offset %llu) before tensor "
                              "'%s' belong to no tensor",
                              file, (unsigned long long)(e[k].begin - at),
                              (unsigned long long)(data_start + at), (unsigned long long)at,
                              show(e[k].name).s);
            } else if (e[k].begin < at) {
                s = dcl__fail(DCL_ERR_FORMAT,
                              "%s: tensor '%s' (data_offsets [%llu,%llu]) overlaps tensor '%s' "
                              "(which ends at %llu)",
                              file, show(e[k].name).s, (unsigned long long)e[k].begin,
                              (unsigned long long)e[k].end, show(e[k - 1].name).s,
                              (unsigned long long)at);
            }
            at = e[k].end;
        }
        if (s == DCL_OK && at != data_size) { // at < data_size: parse_entry checked every end
            s = dcl__fail(
                DCL_ERR_FORMAT, "%s: %llu trailing bytes at file offset %llu belong to no tensor",
                file, (unsigned long long)(data_size - at), (unsigned long long)(data_start + at));
        }
    }
    if (s == DCL_OK && data_size > SIZE_MAX - DATA_ALIGN) {
        s = dcl__fail(DCL_ERR_FORMAT, "%s: the data section (%llu bytes) is too large", file,
                      (unsigned long long)data_size);
    }
    if (s == DCL_OK) {
        size_t cap = ((size_t)data_size + DATA_ALIGN) / DATA_ALIGN * DATA_ALIGN; // never 0
        f->n = (int)n;
        f->data = aligned_alloc(DATA_ALIGN, cap);
        f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
        f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
        f->names = calloc(n ? n : 1, sizeof *f->names);
        if (!f->data || !f->tensors || !f->by_name || !f->names) {
            s = dcl__fail(DCL_ERR_NOMEM, "%s: out of memory for %llu bytes of tensor data", file,
                          (unsigned long long)data_size);
        }
    }
    for (size_t k = 0; k < n && s == DCL_OK; k++) {
        dcl_st_tensor *t = &f->tensors[k];
        f->names[k] = strdup(e[k].name);
        if (!f->names[k]) s = dcl__fail(DCL_ERR_NOMEM, "%s: out of memory for names", file);
        t->name = f->names[k];
        t->ndim = e[k].ndim;
        memcpy(t->shape, e[k].shape, sizeof t->shape);
        // Every tensor is F32 and they tile the section from 0, so each begin is a multiple of 4.
        t->data = f->data + e[k].begin / 4;
        f->by_name[k] = t;
    }
    if (s == DCL_OK) qsort(f->by_name, n, sizeof *f->by_name, cmp_tensor_name);
    free(e);
    json_decref(root);
    return s;
}

// Converts count little-endian F32 values in place to host floats.
static void f32_from_le(float *x, size_t count) {
    unsigned char *b = (unsigned char *)x;
    for (size_t i = 0; i < count; i++, b += 4) {
        uint32_t u =
            (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(b, &u, 4);
    }
}

// The checks on the 8-byte header length that come before any allocation (reader rule 1).
static dcl_status check_header_len(const char *file, uint64_t n, uint64_t size) {
    if (n == 0) return dcl__fail(DCL_ERR_FORMAT, "%s: the header length is 0", file);
    if (n > DCL_ST_MAX_HEADER) {
        return dcl__fail(DCL_ERR_FORMAT, "%s: the header length %llu is over the limit of %d bytes",
                         file, (unsigned long long)n, DCL_ST_MAX_HEADER);
    }
    if (n > size - 8) {
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: the header length %llu runs past the end of the file (%llu bytes)",
                         file, (unsigned long long)n, (unsigned long long)size);
    }
    return DCL_OK;
}

static dcl_status too_short(const char *file, uint64_t size) {
    return dcl__fail(DCL_ERR_FORMAT,
                     "%s: the file is %llu bytes, too short for the 8-byte header length", file,
                     (unsigned long long)size);
}

dcl_status dcl_safetensors_read_memory(dcl_st_file **out, const void *bytes, size_t size,
                                       const char *name) {
    if (!out) return dcl__fail(DCL_ERR_ARG, "reading safetensors: no output pointer");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!bytes && size) return dcl__fail(DCL_ERR_ARG, "reading %s: no bytes", name);
    const unsigned char *b = bytes;
    if (size < 8) return too_short(name, size);
    uint64_t n = get_u64le(b);
    dcl_status s = check_header_len(name, n, size);
    if (s != DCL_OK) return s;
    dcl_st_file *f = calloc(1, sizeof *f);
    if (!f) return dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", name);
    size_t data_size = size - 8 - (size_t)n;
    s = parse_header(name, (const char *)b + 8, (size_t)n, data_size, f);
    if (s != DCL_OK) {
        dcl_safetensors_free(f);
        return s;
    }
    if (data_size) memcpy(f->data, b + 8 + n, data_size);
    f32_from_le(f->data, data_size / 4);
    *out = f;
    return DCL_OK;
}

// Reads exactly n bytes; DCL_ERR_IO names the file on a read error, DCL_ERR_FORMAT when the file
// ended early (it shrank after fstat).
static dcl_status read_exact(FILE *fp, void *dst, size_t n, const char *file, uint64_t at) {
    if (n == 0) return DCL_OK;
    errno = 0;
    size_t got = fread(dst, 1, n, fp);
    if (got == n) return DCL_OK;
    if (ferror(fp)) {
        return dcl__fail(DCL_ERR_IO, "%s: reading at file offset %llu: %s", file,
                         (unsigned long long)(at + got), strerror(errno ? errno : EIO));
    }
    return dcl__fail(DCL_ERR_FORMAT, "%s: the file ended at offset %llu while being read", file,
                     (unsigned long long)(at + got));
}

dcl_status dcl_safetensors_read(dcl_st_file **out, const char *path) {
    if (!out) return dcl__fail(DCL_ERR_ARG, "reading safetensors: no output pointer");
    *out = NULL;
    if (!path || !*path) return dcl__fail(DCL_ERR_ARG, "reading safetensors: no path given");
    FILE *fp = fopen(path, "rb");
    if (!fp) return dcl__fail(DCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    dcl_status s = DCL_OK;
    dcl_st_file *f = NULL;
    char *hdr = NULL;
    struct stat st;
    uint64_t size = 0, n = 0;
    unsigned char prefix[8];
    if (fstat(fileno(fp), &st) != 0) {
        s = dcl__fail(DCL_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        s = dcl__fail(DCL_ERR_IO, "%s: not a regular file", path);
    } else if ((size = (uint64_t)st.st_size) < 8) {
        s = too_short(path, size);
    } else if ((s = read_exact(fp, prefix, 8, path, 0)) == DCL_OK) {
        n = get_u64le(prefix);
        s = check_header_len(path, n, size);
    }
    // n <= DCL_ST_MAX_HEADER and 8 + n <= size from here on.
    if (s == DCL_OK && !(hdr = malloc((size_t)n))) {
        s = dcl__fail(DCL_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path,
                      (unsigned long long)n);
    }
    if (s == DCL_OK) s = read_exact(fp, hdr, (size_t)n, path, 8);
    if (s == DCL_OK && !(f = calloc(1, sizeof *f))) {
        s = dcl__fail(DCL_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t data_size = size - 8 - n;
    if (s == DCL_OK) s = parse_header(path, hdr, (size_t)n, data_size, f);
    if (s == DCL_OK) s = read_exact(fp, f->data, (size_t)data_size, path, 8 + n);
    if (s == DCL_OK && fgetc(fp) != EOF) {
        s = dcl__fail(DCL_ERR_IO, "%s: the file grew while being read (beyond %llu bytes)", path,
                      (unsigned long long)size);
    }
    fclose(fp);
    free(hdr);
    if (s != DCL_OK) {
        dcl_safetensors_free(f);
        return s;
    }
    f32_from_le(f->data, (size_t)data_size / 4);
    *out = f;
    return DCL_OK;
}

// ---- accessors ---------------------------------------------------------------------------------

int dcl_safetensors_count(const dcl_st_file *f) { return f ? f->n : 0; }

const dcl_st_tensor *dcl_safetensors_tensor(const dcl_st_file *f, int i) {
    return f && i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const dcl_st_tensor *dcl_safetensors_find(const dcl_st_file *f, const char *name) {
    if (!f || !name || f->n == 0) return NULL;
    dcl_st_tensor key = {.name = name};
    const dcl_st_tensor *kp = &key;
    const dcl_st_tensor *const *hit =
        bsearch(&kp, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_tensor_name);
    return hit ? *hit : NULL;
}

const char *dcl_safetensors_meta(const dcl_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->n_meta; i++) {
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    }
    return NULL;
}

int dcl_safetensors_meta_count(const dcl_st_file *f) { return f ? f->n_meta : 0; }

const char *dcl_safetensors_meta_key(const dcl_st_file *f, int i) {
    return f && i >= 0 && i < f->n_meta ? f->meta[2 * i] : NULL;
}
