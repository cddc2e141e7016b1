// Safetensors reader and writer: round trip, golden bytes (ours derived by hand from the format,
// and the reference implementation's own), a table of malformed files that must be rejected, a
// truncation sweep, a header byte sweep, and writer argument checks.
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"
#include "diffcl/safetensors.h"

static char tmp_dir[512];

static void path_in(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmp_dir, name);
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ(fwrite(b, 1, n, f), n);
    CHECK_EQ(fclose(f), 0);
}

// The whole file, or NULL; *n gets its size.
static unsigned char *read_bytes(const char *path, size_t *n) {
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = NULL;
    size_t cap = 0, len = 0, k;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            b = realloc(b, cap);
        }
        k = fread(b + len, 1, cap - len, f);
        len += k;
    } while (k > 0);
    fclose(f);
    *n = len;
    return b;
}

// Number of entries in tmp_dir other than . and ..
static int dir_entries(void) {
    DIR *d = opendir(tmp_dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    }
    closedir(d);
    return n;
}

static void clear_dir(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    char p[1024];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        path_in(p, sizeof p, e->d_name);
        remove(p);
    }
    closedir(d);
}

static int same_bits(const float *a, const float *b, size_t n) {
    return n == 0 || memcmp(a, b, 4 * n) == 0;
}

static size_t unhex(const char *hex, unsigned char *out) {
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (unsigned char)v;
    }
    return n;
}

// ---- round trip --------------------------------------------------------------------------------

static void test_roundtrip(void) {
    char path[1024];
    path_in(path, sizeof path, "rt.safetensors");
    float scalar = 3.5f;
    float vec[5] = {1.0f, -0.0f, INFINITY, NAN, 1e-40f}; // values are not checked: NaN/Inf pass
    float mat[12];
    for (int i = 0; i < 12; i++) mat[i] = 0.25f * (float)i - 1.0f;
    float two[2] = {7.0f, -8.0f};
    const dcl_st_tensor t[] = {
        {"scalar", &scalar, 0, {0}},
        {"vec", vec, 1, {5}},
        {"unet.down.0.conv.weight", mat, 2, {3, 4}},
        {"empty", NULL, 3, {2, 0, 3}}, // zero elements, no data
        {"quote\" back\\ nl\n tab\t é", two, 1, {2}},
    };
    const int n = (int)(sizeof t / sizeof t[0]);
    const char *meta[] = {"format", "pt", "step", "100", "note", "h\xc3\xa9llo \"x\"\n\t"};
    CHECK_EQ(dcl_safetensors_write(path, t, n, meta, 3), DCL_OK);
    CHECK_EQ(dir_entries(), 1); // no temp file left

    size_t size;
    unsigned char *b = read_bytes(path, &size);
    CHECK(b != NULL && size > 8);
    if (b && size > 8) {
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
        CHECK_EQ(hl % 8, 0);
        CHECK_EQ(b[8], '{');
        CHECK_EQ(size, 8 + hl + 4 * (1 + 5 + 12 + 0 + 2));
    }
    free(b);

    dcl_st_file *f = NULL;
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ(dcl_safetensors_count(f), n);
    for (int i = 0; i < n && i < dcl_safetensors_count(f); i++) {
        const dcl_st_tensor *r = dcl_safetensors_tensor(f, i);
        CHECK(strcmp(r->name, t[i].name) == 0); // offsets follow the given order
        CHECK_EQ(r->ndim, t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++) CHECK_EQ(r->shape[d], t[i].shape[d]);
        CHECK_EQ(dcl_st_tensor_numel(r), dcl_st_tensor_numel(&t[i]));
        CHECK(r->data != NULL);
        CHECK_EQ((uintptr_t)r->data % 4, 0);
        CHECK(same_bits(r->data, t[i].data, (size_t)dcl_st_tensor_numel(r)));
        CHECK(dcl_safetensors_find(f, t[i].name) == r);
    }
    CHECK_EQ(dcl_st_tensor_numel(dcl_safetensors_tensor(f, 0)), 1);
    CHECK(dcl_safetensors_tensor(f, -1) == NULL);
    CHECK(dcl_safetensors_tensor(f, n) == NULL);
    CHECK(dcl_safetensors_find(f, "nope") == NULL);
    CHECK(dcl_safetensors_find(f, "__metadata__") == NULL);
    CHECK_EQ(dcl_safetensors_meta_count(f), 3);
    CHECK(strcmp(dcl_safetensors_meta_key(f, 0), "format") == 0);
    CHECK(dcl_safetensors_meta_key(f, 3) == NULL);
    CHECK(strcmp(dcl_safetensors_meta(f, "format"), "pt") == 0);
    CHECK(strcmp(dcl_safetensors_meta(f, "step"), "100") == 0);
    CHECK(strcmp(dcl_safetensors_meta(f, "note"), meta[5]) == 0);
    CHECK(dcl_safetensors_meta(f, "missing") == NULL);
    dcl_safetensors_free(f);

    // Writing over the file replaces it atomically: the folder holds only the new file.
    const dcl_st_tensor one = {"x", two, 1, {2}};
    CHECK_EQ(dcl_safetensors_write(path, &one, 1, NULL, 0), DCL_OK);
    CHECK_EQ(dir_entries(), 1);
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK_EQ(dcl_safetensors_count(f), 1);
    CHECK(strcmp(dcl_safetensors_meta(f, "format"), "pt") == 0); // added when not given
    dcl_safetensors_free(f);

    // No tensors at all; a name of exactly the maximum length.
    char long_name[DCL_ST_MAX_NAME + 1];
    memset(long_name, 'n', DCL_ST_MAX_NAME);
    long_name[DCL_ST_MAX_NAME] = '\0';
    CHECK_EQ(dcl_safetensors_write(path, NULL, 0, NULL, 0), DCL_OK);
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK_EQ(dcl_safetensors_count(f), 0);
    CHECK_EQ(dcl_safetensors_meta_count(f), 1);
    dcl_safetensors_free(f);
    const dcl_st_tensor ln = {long_name, two, 1, {2}};
    CHECK_EQ(dcl_safetensors_write(path, &ln, 1, NULL, 0), DCL_OK);
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK(dcl_safetensors_find(f, long_name) != NULL);
    dcl_safetensors_free(f);
    clear_dir();
}

// ---- golden bytes ------------------------------------------------------------------------------

// Derived by hand from the format (the rules in host/io/safetensors.c, which follow the reference
// writer): one F32 tensor "a" of shape [2] holding 1.0, -2.0 and metadata {"format":"pt"}.
//   header JSON, compact, __metadata__ first, fields dtype, shape, data_offsets:
//     {"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}
//   counted: '{' 1, "__metadata__" 14, ':' 1, {"format":"pt"} 15, ',' 1, "a" 3, ':' 1, '{' 1,
//   "dtype":"F32", 14, "shape":[2], 12, "data_offsets":[0,8] 20, '}' 1, '}' 1 = 85 bytes,
//   padded with 3 spaces to 88 = 0x58, so N = 58 00 00 00 00 00 00 00 (u64 little-endian).
//   data: 1.0f = 0x3f800000 -> 00 00 80 3f; -2.0f = 0xc0000000 -> 00 00 00 c0. 104 bytes in all.
static const char golden_a[] =
    "\x58\x00\x00\x00\x00\x00\x00\x00"
    "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
    "\"data_offsets\":[0,8]}}"
    "   "
    "\x00\x00\x80\x3f"
    "\x00\x00\x00\xc0";

// No tensors, metadata {"format":"pt"}: {"__metadata__":{"format":"pt"}} is 1 + 14 + 1 + 15 + 1 =
// 32 bytes, already a multiple of 8, so no padding: N = 0x20, 40 bytes in all.
static const char golden_empty[] = "\x20\x00\x00\x00\x00\x00\x00\x00"
                                   "{\"__metadata__\":{\"format\":\"pt\"}}";

static void check_file_equals(const char *path, const char *want, size_t want_n) {
    size_t n;
    unsigned char *b = read_bytes(path, &n);
    CHECK_EQ(n, want_n);
    CHECK(b && n == want_n && memcmp(b, want, n) == 0);
    for (size_t i = 0; b && i < n && i < want_n; i++) {
        if (b[i] != (unsigned char)want[i]) {
            fprintf(stderr, "  first difference at byte %zu: got 0x%02x, want 0x%02x\n", i, b[i],
                    (unsigned char)want[i]);
            break;
        }
    }
    free(b);
}

static void test_golden_writer(void) {
    char path[1024];
    path_in(path, sizeof path, "golden.safetensors");
    const float a[2] = {1.0f, -2.0f};
    const dcl_st_tensor t = {"a", a, 1, {2}};
    const char *meta[] = {"format", "pt"};
    CHECK_EQ(sizeof golden_a - 1, 104);
    CHECK_EQ(dcl_safetensors_write(path, &t, 1, meta, 1), DCL_OK);
    check_file_equals(path, golden_a, sizeof golden_a - 1);
    // Without metadata the writer adds "format": "pt" itself: the same bytes.
    CHECK_EQ(dcl_safetensors_write(path, &t, 1, NULL, 0), DCL_OK);
    check_file_equals(path, golden_a, sizeof golden_a - 1);
    CHECK_EQ(sizeof golden_empty - 1, 40);
    CHECK_EQ(dcl_safetensors_write(path, NULL, 0, NULL, 0), DCL_OK);
    check_file_equals(path, golden_empty, sizeof golden_empty - 1);

    // And the reader reads them back.
    dcl_st_file *f = NULL;
    CHECK_EQ(dcl_safetensors_read_memory(&f, golden_a, sizeof golden_a - 1, "golden_a"), DCL_OK);
    CHECK_EQ(dcl_safetensors_count(f), 1);
    const dcl_st_tensor *r = dcl_safetensors_find(f, "a");
    CHECK(r && r->ndim == 1 && r->shape[0] == 2 && r->data[0] == 1.0f && r->data[1] == -2.0f);
    dcl_safetensors_free(f);
    clear_dir();
}

// The reference implementation's own golden files (huggingface/safetensors,
// safetensors/src/tensor.rs, tests test_empty and test_serialization_forced_alignement), plus
// hand-written files the reference accepts.
static void test_golden_reader(void) {
    static const char *empty = "08000000000000007b7d202020202020"; // '{}      '
    static const char *framework =
        "28000000000000007b225f5f6d657461646174615f5f223a7b226672616d65776f726b223a227074227d7d"
        "2020202020";
    static const char *attn0 =
        "48000000000000007b226174746e30223a7b226474797065223a22463332222c227368617065223a5b312c"
        "312c322c335d2c22646174615f6f666673657473223a5b302c32345d7d7d20202020202020000000000000"
        "803f0000004000004040000080400000a040";
    unsigned char b[256];
    char path[1024];
    path_in(path, sizeof path, "ref.safetensors");
    dcl_st_file *f = NULL;

    size_t n = unhex(empty, b);
    CHECK_EQ(n, 16);
    write_bytes(path, b, n);
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK_EQ(dcl_safetensors_count(f), 0);
    CHECK_EQ(dcl_safetensors_meta_count(f), 0);
    dcl_safetensors_free(f);

    n = unhex(framework, b);
    CHECK_EQ(n, 48);
    write_bytes(path, b, n);
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK_EQ(dcl_safetensors_count(f), 0);
    CHECK(dcl_safetensors_meta(f, "framework") &&
          !strcmp(dcl_safetensors_meta(f, "framework"), "pt"));
    dcl_safetensors_free(f);

    n = unhex(attn0, b);
    CHECK_EQ(n, 104);
    write_bytes(path, b, n);
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK_EQ(dcl_safetensors_count(f), 1);
    const dcl_st_tensor *t = dcl_safetensors_find(f, "attn0");
    CHECK(t != NULL);
    if (t) {
        CHECK_EQ(t->ndim, 4);
        CHECK(t->shape[0] == 1 && t->shape[1] == 1 && t->shape[2] == 2 && t->shape[3] == 3);
        for (int i = 0; i < 6; i++) CHECK_EQ(t->data[i], (float)i);
    }
    dcl_safetensors_free(f);

    // Keys out of offset order, leading and trailing JSON whitespace, zero-size tensors sharing an
    // offset: all accepted by the reference. Tensor order follows the offsets.
    static const char ooo[] = "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                              "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                              "\"y\":{\"dtype\":\"F32\",\"shape\":[7,0],\"data_offsets\":[4,4]},"
                              "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
    const size_t hl = 3 + (sizeof ooo - 1) + 2;
    n = 0;
    for (int i = 0; i < 8; i++) b[n++] = (unsigned char)(hl >> (8 * i));
    memcpy(b + n, " \n\t", 3), n += 3;
    memcpy(b + n, ooo, sizeof ooo - 1), n += sizeof ooo - 1;
    memcpy(b + n, "\r ", 2), n += 2;
    memcpy(b + n, "\x00\x00\x80\x3f\x00\x00\x00\x40", 8), n += 8; // 1.0f, 2.0f
    write_bytes(path, b, n);
    CHECK_EQ(dcl_safetensors_read(&f, path), DCL_OK);
    CHECK_EQ(dcl_safetensors_count(f), 4);
    if (dcl_safetensors_count(f) == 4) {
        CHECK(!strcmp(dcl_safetensors_tensor(f, 0)->name, "a"));
        CHECK_EQ(dcl_safetensors_tensor(f, 0)->ndim, 0);
        CHECK_EQ(dcl_safetensors_tensor(f, 0)->data[0], 1.0f);
        CHECK(!strcmp(dcl_safetensors_tensor(f, 1)->name, "y")); // [4,4] ties break by name
        CHECK(!strcmp(dcl_safetensors_tensor(f, 2)->name, "z"));
        CHECK(!strcmp(dcl_safetensors_tensor(f, 3)->name, "b"));
        CHECK_EQ(dcl_safetensors_tensor(f, 3)->data[0], 2.0f);
        CHECK_EQ(dcl_st_tensor_numel(dcl_safetensors_find(f, "z")), 0);
    }
    dcl_safetensors_free(f);
    clear_dir();
}

// ---- malformed files ---------------------------------------------------------------------------

// One malformed file: the header text (hdr_len bytes, or strlen), data_len data bytes, then extra
// stray bytes, then cut bytes removed from the end. The header length field is strlen unless
// force_len is set (then it is len_value), plus len_delta. raw: the file is exactly raw[0..raw_len).
typedef struct reject_case {
    const char *what;
    const char *hdr;
    size_t hdr_len;
    size_t data_len, extra, cut;
    int force_len;
    uint64_t len_value;
    int len_delta;
    const char *expect; // a substring of the message, or NULL
    const char *raw;
    size_t raw_len;
} reject_case;

#define F32_A2 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define ENTRY(name, dtype, shape, offs)                                                            \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const reject_case rejects[] = {
    {.what = "empty file", .raw = "", .raw_len = 0, .expect = "too short"},
    {.what = "7-byte file", .raw = "\x02\0\0\0\0\0\0", .raw_len = 7, .expect = "too short"},
    {.what = "header length 0", .hdr = "{}", .force_len = 1, .len_value = 0, .expect = "is 0"},
    {.what = "header length larger than the file",
     .hdr = "{}",
     .len_delta = 1,
     .expect = "past the end"},
    {.what = "header length 1000, file 10 bytes",
     .hdr = "{}",
     .force_len = 1,
     .len_value = 1000,
     .expect = "past the end"},
    {.what = "header length 2^63",
     .hdr = "{}",
     .force_len = 1,
     .len_value = 1ull << 63,
     .expect = "over the limit"},
    {.what = "header length 2^64-1",
     .hdr = "{}",
     .force_len = 1,
     .len_value = UINT64_MAX,
     .expect = "over the limit"},
    {.what = "header length 100000001",
     .hdr = "{}",
     .force_len = 1,
     .len_value = 100000001,
     .expect = "over the limit"},
    {.what = "header not JSON", .hdr = "hello!!!", .expect = "must start with '{'"},
    {.what = "header only spaces", .hdr = "        ", .expect = "empty"},
    {.what = "header cut JSON", .hdr = "{\"a\":", .expect = "not valid JSON"},
    {.what = "header an array", .hdr = "[1,2]", .expect = "must start with '{'"},
    {.what = "header a string", .hdr = "\"str\"", .expect = "must start with '{'"},
    {.what = "header a number", .hdr = "  42", .expect = "must start with '{'"},
    {.what = "header with BOM", .hdr = "\xef\xbb\xbf{}", .expect = "must start with '{'"},
    {.what = "header padded with NUL",
     .hdr = "{}\0\0\0\0\0\0",
     .hdr_len = 8,
     .expect = "not valid JSON"},
    {.what = "garbage after the object", .hdr = "{} x", .expect = "not valid JSON"},
    {.what = "two objects", .hdr = "{}{}", .expect = "not valid JSON"},
    {.what = "duplicate key",
     .hdr = "{" F32_A2 "," F32_A2 "}",
     .data_len = 8,
     .expect = "duplicate"},
    {.what = "duplicate metadata",
     .hdr = "{\"__metadata__\":{},\"__metadata__\":{}}",
     .expect = "duplicate"},
    {.what = "missing data_offsets",
     .hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}",
     .data_len = 8,
     .expect = "tensor 'a' has no 'data_offsets'"},
    {.what = "missing dtype",
     .hdr = "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}",
     .data_len = 8,
     .expect = "no 'dtype'"},
    {.what = "missing shape",
     .hdr = "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}",
     .data_len = 8,
     .expect = "no 'shape'"},
    {.what = "extra key in an entry",
     .hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}",
     .data_len = 8,
     .expect = "unknown field 'x'"},
    {.what = "entry not an object", .hdr = "{\"a\":5}", .expect = "not a JSON object"},
    {.what = "dtype F16",
     .hdr = "{" ENTRY("a", "F16", "[4]", "[0,8]") "}",
     .data_len = 8,
     .expect = "tensor 'a' has dtype F16; diffcl reads F32 only"},
    {.what = "dtype BF16",
     .hdr = "{" ENTRY("w", "BF16", "[4]", "[0,8]") "}",
     .data_len = 8,
     .expect = "tensor 'w' has dtype BF16; diffcl reads F32 only"},
    {.what = "dtype I64",
     .hdr = "{" ENTRY("a", "I64", "[1]", "[0,8]") "}",
     .data_len = 8,
     .expect = "tensor 'a' has dtype I64; diffcl reads F32 only"},
    {.what = "dtype BOGUS",
     .hdr = "{" ENTRY("a", "BOGUS", "[2]", "[0,8]") "}",
     .data_len = 8,
     .expect = "unknown dtype 'BOGUS'"},
    {.what = "dtype f32 lower case",
     .hdr = "{" ENTRY("a", "f32", "[2]", "[0,8]") "}",
     .data_len = 8,
     .expect = "unknown dtype 'f32'"},
    {.what = "dtype not a string",
     .hdr = "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}",
     .data_len = 8,
     .expect = "dtype is not a string"},
    {.what = "negative shape",
     .hdr = "{" ENTRY("a", "F32", "[-2]", "[0,8]") "}",
     .data_len = 8,
     .expect = "shape entry 0"},
    {.what = "float shape",
     .hdr = "{" ENTRY("a", "F32", "[2.0]", "[0,8]") "}",
     .data_len = 8,
     .expect = "shape entry 0"},
    {.what = "shape of booleans",
     .hdr = "{" ENTRY("a", "F32", "[1,true]", "[0,4]") "}",
     .data_len = 4,
     .expect = "shape entry 1"},
    {.what = "shape not an array",
     .hdr = "{" ENTRY("a", "F32", "2", "[0,8]") "}",
     .data_len = 8,
     .expect = "shape is not an array"},
    {.what = "shape with 9 dimensions",
     .hdr = "{" ENTRY("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}",
     .data_len = 4,
     .expect = "9 dimensions"},
    {.what = "shape/offset size mismatch",
     .hdr = "{" ENTRY("a", "F32", "[3]", "[0,8]") "}",
     .data_len = 8,
     .expect = "12 bytes as F32"},
    {.what = "shape product overflow",
     .hdr = "{" ENTRY("a", "F32", "[4294967296,4294967296,4]", "[0,0]") "}",
     .expect = "overflows"},
    {.what = "shape x 4 overflow",
     .hdr = "{" ENTRY("a", "F32", "[2,4611686018427387904]", "[0,0]") "}",
     .expect = "overflows"},
    {.what = "shape overflow hidden by a later 0",
     .hdr = "{" ENTRY("a", "F32", "[9223372036854775807,4,0]", "[0,0]") "}",
     .expect = "overflows"},
    {.what = "shape integer beyond int64",
     .hdr = "{" ENTRY("a", "F32", "[18446744073709551614]", "[0,0]") "}",
     .expect = "not valid JSON"},
    {.what = "offsets out of range",
     .hdr = "{" ENTRY("a", "F32", "[4]", "[0,16]") "}",
     .data_len = 8,
     .expect = "past the end of the file"},
    {.what = "offsets with 3 elements",
     .hdr = "{" ENTRY("a", "F32", "[2]", "[0,8,8]") "}",
     .data_len = 8,
     .expect = "data_offsets"},
    {.what = "offsets with 1 element",
     .hdr = "{" ENTRY("a", "F32", "[2]", "[8]") "}",
     .data_len = 8,
     .expect = "data_offsets"},
    {.what = "negative offset",
     .hdr = "{" ENTRY("a", "F32", "[2]", "[-8,0]") "}",
     .data_len = 8,
     .expect = "data_offsets"},
    {.what = "float offset",
     .hdr = "{" ENTRY("a", "F32", "[2]", "[0,8.0]") "}",
     .data_len = 8,
     .expect = "data_offsets"},
    {.what = "offsets not an array",
     .hdr = "{" ENTRY("a", "F32", "[2]", "\"0,8\"") "}",
     .data_len = 8,
     .expect = "data_offsets"},
    {.what = "end before begin",
     .hdr = "{" ENTRY("a", "F32", "[0]", "[8,0]") "}",
     .data_len = 8,
     .expect = "end before"},
    {.what = "overlapping offsets",
     .hdr = "{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("b", "F32", "[2]", "[4,12]") "}",
     .data_len = 12,
     .expect = "tensor 'b' (data_offsets [4,12]) overlaps tensor 'a'"},
    {.what = "json attack: every tensor at [0,16]",
     .hdr =
         "{" ENTRY("t0", "F32", "[4]", "[0,16]") "," ENTRY("t1", "F32", "[4]", "[0,16]") "," ENTRY(
             "t2", "F32", "[4]", "[0,16]") "," ENTRY("t3", "F32", "[4]", "[0,16]") "}",
     .data_len = 16,
     .expect = "overlaps"},
    {.what = "gap between tensors",
     .hdr = "{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("b", "F32", "[2]", "[12,20]") "}",
     .data_len = 20,
     .expect = "4 bytes at file offset"},
    {.what = "first tensor not at 0",
     .hdr = "{" ENTRY("a", "F32", "[2]", "[4,12]") "}",
     .data_len = 12,
     .expect = "before tensor 'a' belong to no tensor"},
    {.what = "trailing bytes",
     .hdr = "{" F32_A2 "}",
     .data_len = 8,
     .extra = 4,
     .expect = "4 trailing bytes"},
    {.what = "{} then 4 stray bytes", .hdr = "{}", .extra = 4, .expect = "4 trailing bytes"},
    {.what = "truncated data",
     .hdr = "{" F32_A2 "}",
     .data_len = 8,
     .cut = 2,
     .expect = "truncated"},
    {.what = "truncated header",
     .hdr = "{" F32_A2 "}",
     .data_len = 0,
     .cut = 1,
     .expect = "past the end"},
    {.what = "metadata value not a string",
     .hdr = "{\"__metadata__\":{\"k\":1}}",
     .expect = "__metadata__ value of 'k' is not a string"},
    {.what = "metadata value an object",
     .hdr = "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}",
     .expect = "not a string"},
    {.what = "metadata value null",
     .hdr = "{\"__metadata__\":{\"k\":null}}",
     .expect = "not a string"},
    {.what = "metadata not an object",
     .hdr = "{\"__metadata__\":\"x\"}",
     .expect = "__metadata__ is not a JSON object"},
    {.what = "empty tensor name",
     .hdr = "{" ENTRY("", "F32", "[2]", "[0,8]") "}",
     .data_len = 8,
     .expect = "empty name"},
    {.what = "NUL in tensor name",
     .hdr = "{" ENTRY("a\\u0000b", "F32", "[2]", "[0,8]") "}",
     .data_len = 8,
     .expect = "NUL"},
    {.what = "invalid UTF-8 in tensor name",
     .hdr = "{" ENTRY("\xff", "F32", "[2]", "[0,8]") "}",
     .data_len = 8,
     .expect = "not valid JSON"},
    {.what = "control byte in a string",
     .hdr = "{" ENTRY("a\n", "F32", "[2]", "[0,8]") "}",
     .data_len = 8,
     .expect = "not valid JSON"},
};

// Builds the file of a reject case into b (capacity cap); returns its size.
static size_t build_case(const reject_case *c, unsigned char *b, size_t cap) {
    if (c->raw) {
        memcpy(b, c->raw, c->raw_len);
        return c->raw_len;
    }
    size_t hl = c->hdr_len ? c->hdr_len : strlen(c->hdr);
    uint64_t lv = (c->force_len ? c->len_value : hl) + (uint64_t)(int64_t)c->len_delta;
    size_t n = 0;
    if (8 + hl + c->data_len + c->extra > cap) return 0;
    for (int i = 0; i < 8; i++) b[n++] = (unsigned char)(lv >> (8 * i));
    memcpy(b + n, c->hdr, hl), n += hl;
    for (size_t i = 0; i < c->data_len + c->extra; i++) b[n++] = (unsigned char)(i * 37 + 1);
    return n - c->cut;
}

// Reads b[0..n) as a file at path and from memory: both must fail with the same status and
// message, FORMAT or IO, naming the file. Returns the status.
static dcl_status expect_reject(const char *what, const unsigned char *b, size_t n,
                                const char *path, const char *expect, int quiet) {
    write_bytes(path, b, n);
    dcl_st_file *f = (dcl_st_file *)1;
    dcl_clear_error();
    dcl_status s = dcl_safetensors_read(&f, path);
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", dcl_last_error());
    if (!quiet) printf("  %-40s %s: %s\n", what, dcl_status_name(s), msg);
    if (s == DCL_OK) {
        fprintf(stderr, "  accepted: %s\n", what);
        dcl_safetensors_free(f);
    }
    CHECK(s == DCL_ERR_FORMAT || s == DCL_ERR_IO);
    CHECK(f == NULL);
    CHECK(strstr(msg, path) != NULL);
    if (expect && !strstr(msg, expect)) {
        fprintf(stderr, "  %s: message lacks \"%s\": %s\n", what, expect, msg);
        CHECK(strstr(msg, expect) != NULL);
    }
    f = (dcl_st_file *)1;
    dcl_status sm = dcl_safetensors_read_memory(&f, b, n, path);
    if (sm == DCL_OK) dcl_safetensors_free(f);
    CHECK_EQ(sm, s);
    CHECK(f == NULL);
    if (strcmp(dcl_last_error(), msg) != 0) {
        fprintf(stderr, "  %s: file and memory messages differ:\n    %s\n    %s\n", what, msg,
                dcl_last_error());
        CHECK(strcmp(dcl_last_error(), msg) == 0);
    }
    return s;
}

static void test_reject_table(void) {
    char path[1024];
    path_in(path, sizeof path, "bad.safetensors");
    unsigned char b[4096];
    const int n = (int)(sizeof rejects / sizeof rejects[0]);
    printf("reject table (%d files):\n", n);
    for (int i = 0; i < n; i++) {
        size_t len = build_case(&rejects[i], b, sizeof b);
        CHECK(len > 0 || rejects[i].raw);
        expect_reject(rejects[i].what, b, len, path, rejects[i].expect, 0);
    }

    // Built at run time: a name over the limit, deep nesting (jansson's depth limit), many tensors
    // in a loop of overlaps.
    static unsigned char big[8 + 3 * 40000 + 64];
    char hdr[2048];
    int k = snprintf(hdr, sizeof hdr, "{\"");
    memset(hdr + k, 'x', DCL_ST_MAX_NAME + 1), k += DCL_ST_MAX_NAME + 1;
    k += snprintf(hdr + k, sizeof hdr - (size_t)k,
                  "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}");
    reject_case c = {.what = "name over the limit", .hdr = hdr};
    size_t len = build_case(&c, b, sizeof b);
    expect_reject(c.what, b, len, path, "the limit is 1024", 0);

    size_t depth = 40000, hl = 5 + depth;
    size_t m = 0;
    for (int i = 0; i < 8; i++) big[m++] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(big + m, "{\"a\":", 5), m += 5;
    memset(big + m, '[', depth), m += depth;
    expect_reject("nesting 40000 deep", big, m, path, "not valid JSON", 0);
    clear_dir();
}

// Every proper prefix of a valid file is rejected.
static void test_truncation_sweep(void) {
    char src[1024], path[1024];
    path_in(src, sizeof src, "full.safetensors");
    path_in(path, sizeof path, "cut.safetensors");
    float v[6] = {1, 2, 3, 4, 5, 6};
    const dcl_st_tensor t[] = {{"s", v, 0, {0}}, {"e", NULL, 2, {0, 4}}, {"m", v, 2, {2, 3}}};
    const char *meta[] = {"step", "7"};
    CHECK_EQ(dcl_safetensors_write(src, t, 3, meta, 1), DCL_OK);
    size_t size;
    unsigned char *b = read_bytes(src, &size);
    CHECK(b && size > 16);
    int rejected = 0;
    for (size_t len = 0; b && len < size; len++) {
        char what[64];
        snprintf(what, sizeof what, "prefix of %zu bytes", len);
        if (expect_reject(what, b, len, path, NULL, 1) != DCL_OK) rejected++;
    }
    printf("truncation sweep: %d of %zu prefixes rejected\n", rejected, size);
    CHECK_EQ(rejected, (int)size);
    free(b);
    clear_dir();
}

// Checks what the reader returned for an accepted (mutated) file: the tensors tile the data.
static void check_accepted(const dcl_st_file *f, size_t file_size) {
    uint64_t total = 0;
    for (int i = 0; i < dcl_safetensors_count(f); i++) {
        const dcl_st_tensor *t = dcl_safetensors_tensor(f, i);
        CHECK(t && t->name && t->name[0] && t->data && t->ndim >= 0 && t->ndim <= DCL_ST_MAX_DIMS);
        CHECK(dcl_safetensors_find(f, t->name) == t);
        total += 4 * dcl_st_tensor_numel(t);
        volatile float sink = 0;
        for (uint64_t j = 0; j < dcl_st_tensor_numel(t); j++) sink += t->data[j]; // ASan sees
        (void)sink;
    }
    CHECK(total + 8 <= file_size);
    for (int i = 0; i < dcl_safetensors_meta_count(f); i++) {
        const char *k = dcl_safetensors_meta_key(f, i);
        CHECK(k && dcl_safetensors_meta(f, k));
    }
}

// Sets every byte of the length prefix and the header to a few values: each result is either
// rejected with a message or read as a valid file; never a crash (run under ASan).
static void test_byte_sweep(void) {
    char src[1024], path[1024];
    path_in(src, sizeof src, "sweep.safetensors");
    path_in(path, sizeof path, "mut.safetensors");
    float v[4] = {1, -2, 3, -4};
    const dcl_st_tensor t[] = {{"a", v, 1, {2}}, {"b", v + 2, 2, {1, 2}}, {"c", NULL, 1, {0}}};
    const char *meta[] = {"format", "pt", "k", "v"};
    CHECK_EQ(dcl_safetensors_write(src, t, 3, meta, 2), DCL_OK);
    size_t size;
    unsigned char *b = read_bytes(src, &size);
    CHECK(b && size > 16);
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    static const unsigned char values[] = {0x00, 0x01, 0x09, 0x20, '"',  '\\', '{',
                                           '}',  '[',  ']',  ',',  ':',  '-',  '0',
                                           '9',  'e',  'F',  0x7f, 0x80, 0xff};
    int accepted = 0, rejected = 0;
    for (size_t pos = 0; pos < 8 + hl; pos++) {
        for (size_t k = 0; k < sizeof values + 2; k++) {
            unsigned char orig = b[pos];
            unsigned char val = k < sizeof values
                                    ? values[k]
                                    : (unsigned char)(orig ^ (k == sizeof values ? 0x01 : 0x80));
            if (val == orig) continue;
            b[pos] = val;
            dcl_st_file *f = NULL;
            dcl_clear_error();
            dcl_status s = dcl_safetensors_read_memory(&f, b, size, "mut");
            if (s == DCL_OK) {
                check_accepted(f, size);
                dcl_safetensors_free(f);
                accepted++;
            } else {
                CHECK(s == DCL_ERR_FORMAT);
                CHECK(f == NULL && dcl_last_error()[0]);
                rejected++;
            }
            // The file path too, for a share of the cases (it shares the parser).
            if ((pos + k) % 7 == 0) {
                write_bytes(path, b, size);
                dcl_status s2 = dcl_safetensors_read(&f, path);
                CHECK_EQ(s2, s);
                dcl_safetensors_free(f);
            }
            b[pos] = orig;
        }
    }
    printf("byte sweep: %d mutations accepted (still valid), %d rejected\n", accepted, rejected);
    CHECK(rejected > 0);
    free(b);
    clear_dir();
}

// ---- writer argument checks --------------------------------------------------------------------

static void expect_write_arg(const char *what, const char *path, const dcl_st_tensor *t, int n,
                             const char *const *meta, int n_meta) {
    dcl_clear_error();
    dcl_status s = dcl_safetensors_write(path, t, n, meta, n_meta);
    printf("  %-40s %s: %s\n", what, dcl_status_name(s), dcl_last_error());
    CHECK_EQ(s, DCL_ERR_ARG);
    CHECK(dcl_last_error()[0] != '\0');
    CHECK_EQ(dir_entries(), 1); // only the old file
}

static void test_writer_rejects(void) {
    char path[1024];
    path_in(path, sizeof path, "w.safetensors");
    float v[2] = {1, 2};
    const dcl_st_tensor good = {"ok", v, 1, {2}};
    CHECK_EQ(dcl_safetensors_write(path, &good, 1, NULL, 0), DCL_OK);
    size_t old_n;
    unsigned char *old = read_bytes(path, &old_n);

    printf("writer rejects:\n");
    char long_name[DCL_ST_MAX_NAME + 2];
    memset(long_name, 'n', DCL_ST_MAX_NAME + 1);
    long_name[DCL_ST_MAX_NAME + 1] = '\0';
    const dcl_st_tensor dup[] = {{"a", v, 1, {2}}, {"b", v, 1, {1}}, {"a", v, 1, {1}}};
    const dcl_st_tensor t_null_name = {NULL, v, 1, {2}};
    const dcl_st_tensor t_empty = {"", v, 1, {2}};
    const dcl_st_tensor t_long = {long_name, v, 1, {2}};
    const dcl_st_tensor t_reserved = {"__metadata__", v, 1, {2}};
    const dcl_st_tensor t_overflow = {"o", v, 3, {1ull << 32, 1ull << 32, 4}};
    const dcl_st_tensor t_overflow4 = {"o", v, 2, {2, 1ull << 62}};
    const dcl_st_tensor t_huge_dim = {"o", NULL, 2, {0, 1ull << 63}};
    const dcl_st_tensor t_no_data = {"d", NULL, 1, {2}};
    const dcl_st_tensor t_ndim = {"d", v, DCL_ST_MAX_DIMS + 1, {1}};
    const dcl_st_tensor t_neg_ndim = {"d", v, -1, {1}};
    const dcl_st_tensor t_utf8 = {"bad\xc3\x28", v, 1, {2}};
    const char *meta_dup[] = {"k", "1", "k", "2"};
    const char *meta_null[] = {"k", NULL};
    const char *meta_utf8[] = {"k", "\xed\xa0\x80"}; // a UTF-16 surrogate
    expect_write_arg("NULL path", NULL, &good, 1, NULL, 0);
    expect_write_arg("empty path", "", &good, 1, NULL, 0);
    expect_write_arg("negative count", path, &good, -1, NULL, 0);
    expect_write_arg("NULL tensor array", path, NULL, 1, NULL, 0);
    expect_write_arg("NULL name", path, &t_null_name, 1, NULL, 0);
    expect_write_arg("empty name", path, &t_empty, 1, NULL, 0);
    expect_write_arg("name over the limit", path, &t_long, 1, NULL, 0);
    expect_write_arg("name __metadata__", path, &t_reserved, 1, NULL, 0);
    expect_write_arg("duplicate names", path, dup, 3, NULL, 0);
    expect_write_arg("shape product overflow", path, &t_overflow, 1, NULL, 0);
    expect_write_arg("shape bytes overflow", path, &t_overflow4, 1, NULL, 0);
    expect_write_arg("dimension over int64", path, &t_huge_dim, 1, NULL, 0);
    expect_write_arg("NULL data, nonzero size", path, &t_no_data, 1, NULL, 0);
    expect_write_arg("9 dimensions", path, &t_ndim, 1, NULL, 0);
    expect_write_arg("negative ndim", path, &t_neg_ndim, 1, NULL, 0);
    expect_write_arg("name not UTF-8", path, &t_utf8, 1, NULL, 0);
    expect_write_arg("duplicate metadata key", path, &good, 1, meta_dup, 2);
    expect_write_arg("NULL metadata value", path, &good, 1, meta_null, 1);
    expect_write_arg("metadata value not UTF-8", path, &good, 1, meta_utf8, 1);
    expect_write_arg("NULL metadata array", path, &good, 1, NULL, 1);
    expect_write_arg("negative metadata count", path, &good, 1, NULL, -1);

    // The old file is untouched by all of them.
    size_t now_n;
    unsigned char *now = read_bytes(path, &now_n);
    CHECK(old && now && old_n == now_n && memcmp(old, now, old_n) == 0);
    free(old);
    free(now);

    // A missing folder fails cleanly with an I/O error naming the path.
    char missing[1024];
    path_in(missing, sizeof missing, "no/such/folder/x.safetensors");
    dcl_clear_error();
    CHECK_EQ(dcl_safetensors_write(missing, &good, 1, NULL, 0), DCL_ERR_IO);
    printf("  %-40s %s\n", "missing folder", dcl_last_error());
    CHECK(strstr(dcl_last_error(), missing) != NULL);
    CHECK_EQ(dir_entries(), 1);

    // Reading: a missing file and a folder are I/O errors.
    dcl_st_file *f = (dcl_st_file *)1;
    CHECK_EQ(dcl_safetensors_read(&f, missing), DCL_ERR_IO);
    CHECK(f == NULL);
    CHECK_EQ(dcl_safetensors_read(&f, tmp_dir), DCL_ERR_IO);
    CHECK(strstr(dcl_last_error(), "not a regular file") != NULL);
    CHECK_EQ(dcl_safetensors_read(NULL, path), DCL_ERR_ARG);
    CHECK_EQ(dcl_safetensors_read(&f, NULL), DCL_ERR_ARG);
    CHECK_EQ(dcl_safetensors_read_memory(&f, NULL, 4, "x"), DCL_ERR_ARG);
    CHECK(dcl_safetensors_count(NULL) == 0 && dcl_safetensors_find(NULL, "a") == NULL);
    dcl_safetensors_free(NULL);
    clear_dir();
}

int main(void) {
    if (!check_tmpdir(tmp_dir, sizeof tmp_dir, "diffcl-st")) return 1;
    test_roundtrip();
    test_golden_writer();
    test_golden_reader();
    test_reject_table();
    test_truncation_sweep();
    test_byte_sweep();
    test_writer_rejects();
    clear_dir();
    rmdir(tmp_dir);
    return check_exit();
}
