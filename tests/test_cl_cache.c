// The on-disk OpenCL program cache (host/device/opencl/cl_cache.c) on every usable OpenCL
// device, each with its own temp cache folder (never the user's): entries appear on first use and
// are loaded on the next open with bitwise identical results; a corrupted, truncated, garbage,
// misplaced or driver-rejected entry, another program's binary under a consistent header, a FIFO
// and a link to /dev/zero are each a miss with correct results and is rewritten;
// DIFFCL_CL_CACHE=off writes nothing; an unusable folder is no error. Also DIFFCL_CL_SYNC=1 gives
// the same results; dcl_device_prepare compiles every program once and then none; kernels of the
// same name in two files do not collide. Exit 77 only when the build has OpenCL but the machine
// has no OpenCL platform.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlib.h"
#include "device/backend.h"           // dcl__op_descs: the programs the op table names
#include "device/opencl/cl_sources.h" // dcl_cl_sources: the embedded cl/ files
#include "device/test_hooks.h"        // dcl__cl_cache_stats, dcl__cl_kernel_handle
#include "diffcl/device.h"
#include "diffcl/log.h"
#include "diffcl/ops.h"

#ifdef DIFFCL_HAVE_OPENCL

#define N_ELEM 1000
#define GM 33
#define GN 17
#define GK 29
#define N_OUT (2 * N_ELEM + GM * GN)
#define HEADER 32

// What one open of the device computed, and how its programs were obtained.
struct run {
    float out[N_OUT]; // axpby (N_ELEM), relu_forward (N_ELEM), gemm (GM, GN)
    unsigned hits, misses;
    int ok;
};

static float input(size_t i, unsigned salt) {
    uint32_t h = (uint32_t)i * 2654435761u ^ salt * 40503u;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
    return (float)(h % 2001) / 1000.0f - 1.0f;
}

// Opens spec, runs axpby (elementwise.cl, also the program built at open), relu_forward
// (activation.cl) and a GEMM (CLBlast), reads the results and the cache counters.
static void run_ops(const char *spec, struct run *r) {
    memset(r, 0, sizeof *r);
    dcl_device *dev;
    dcl_status s = dcl_device_open(&dev, spec);
    if (s != DCL_OK) {
        fprintf(stderr, "cannot open %s: %s: %s\n", spec, dcl_status_name(s), dcl_last_error());
        check_failures++;
        return;
    }
    static float host[2 * N_ELEM + GM * GK + GK * GN];
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) host[i] = input(i, 7);
    dcl_buffer *in = NULL, *out = NULL;
    s = dcl_buffer_alloc(&in, dev, sizeof host / sizeof *host, "in");
    if (s == DCL_OK) s = dcl_buffer_alloc(&out, dev, N_OUT, "out");
    if (s == DCL_OK) s = dcl_buffer_write(in, 0, sizeof host / sizeof *host, host);
    if (s == DCL_OK) s = dcl_fill(dev, dcl_at(out, 0), 0.0f, N_OUT);
    if (s == DCL_OK)
        s = dcl_axpby(dev, dcl_at(out, 0), dcl_at(in, 0), dcl_at(in, N_ELEM), 0.75f, -1.5f, N_ELEM);
    if (s == DCL_OK) s = dcl_relu_forward(dev, dcl_at(out, N_ELEM), dcl_at(in, 0), N_ELEM);
    if (s == DCL_OK)
        s = dcl_gemm(dev, dcl_at(out, 2 * N_ELEM), dcl_at(in, 2 * N_ELEM),
                     dcl_at(in, 2 * N_ELEM + GM * GK), 0, 0, GM, GN, GK, 1.0f, 0.0f);
    if (s == DCL_OK) s = dcl_buffer_read(out, 0, N_OUT, r->out);
    if (s != DCL_OK) {
        fprintf(stderr, "ops on %s: %s: %s\n", spec, dcl_status_name(s), dcl_last_error());
        check_failures++;
    }
    r->ok = s == DCL_OK;
    dcl__cl_cache_stats(dev, &r->hits, &r->misses);
    dcl_buffer_free(in);
    dcl_buffer_free(out);
    dcl_device_free(dev);
}

// The cache file names in dir ("<16 hex digits>.bin"), up to max; returns how many files (of any
// name) it holds, or -1 when dir does not exist.
static int list_files(const char *dir, char names[][32], int max) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(e->d_name);
        int ours = len == 20 && strcmp(e->d_name + 16, ".bin") == 0 &&
                   strspn(e->d_name, "0123456789abcdef") == 16;
        if (!ours) fprintf(stderr, "unexpected file %s/%s\n", dir, e->d_name);
        CHECK(ours);
        if (ours && n < max) snprintf(names[n], 32, "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static long read_file(const char *path, unsigned char **data) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    rewind(f);
    if (len >= 0 && (*data = malloc((size_t)len + 1)) &&
        fread(*data, 1, (size_t)len, f) != (size_t)len)
        len = -1;
    fclose(f);
    return len;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

// FNV-1a 64, written again here so the test pins the on-disk format rather than reusing it.
static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// A valid entry: "DCLPROG1", the key of its name, the length, the checksum, then the binary.
static int valid_entry(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unsigned char *d;
    long len = read_file(path, &d);
    int ok = len > HEADER && memcmp(d, "DCLPROG1", 8) == 0 &&
             get_u64(d + 8) == strtoull(name, NULL, 16) &&
             get_u64(d + 16) == (uint64_t)(len - HEADER) &&
             get_u64(d + 24) == fnv1a(d + HEADER, (size_t)(len - HEADER));
    free(d);
    return ok;
}

enum damage {
    FLIP_BINARY,   // one bit of the binary: the checksum catches it
    FLIP_KEY,      // one bit of the key in the header
    TRUNCATE_HALF, // the length no longer matches
    TRUNCATE_HEAD, // shorter than the header
    EMPTY,         // zero bytes
    GARBAGE,       // same size, random bytes
    SWAPPED,       // each file holds the other's entry: a valid file under the wrong key
    BAD_BINARY,    // a valid header and checksum over bytes the driver must reject
    SWAPPED_FIXED, // swapped, with each header's key fixed up: another program's binary
    FIFO,          // a FIFO in place of each entry: must not block the open
    LINK_TO_ZERO,  // a symbolic link to /dev/zero in place of each entry
    N_DAMAGE
};

static const char *const damage_names[N_DAMAGE] = {"flip a binary bit",
                                                   "flip a key bit",
                                                   "truncate to half",
                                                   "truncate into the header",
                                                   "empty file",
                                                   "garbage",
                                                   "swap two valid entries",
                                                   "valid header, bad binary",
                                                   "swapped with consistent headers",
                                                   "a FIFO",
                                                   "a link to /dev/zero"};

static void damage(const char *dir, char names[][32], int n, enum damage how) {
    unsigned char *first = NULL;
    long first_len = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unsigned char *d;
        long len = read_file(path, &d);
        CHECK(len > HEADER);
        if (len <= HEADER) {
            free(d);
            continue;
        }
        if (how == FIFO || how == LINK_TO_ZERO) {
            CHECK_EQ(remove(path), 0);
            CHECK_EQ(how == FIFO ? mkfifo(path, 0600) : symlink("/dev/zero", path), 0);
            free(d);
            continue;
        }
        switch (how) {
        case FLIP_BINARY: d[HEADER + (size_t)(len - HEADER) / 2] ^= 0x10; break;
        case FLIP_KEY: d[8] ^= 1; break;
        case TRUNCATE_HALF: len /= 2; break;
        case TRUNCATE_HEAD: len = HEADER / 2; break;
        case EMPTY: len = 0; break;
        case GARBAGE:
            for (long k = 0; k < len; k++) d[k] = (unsigned char)((uint32_t)k * 2654435761u >> 24);
            break;
        case SWAPPED:
            if (i == 0) {
                first = d, first_len = len;
                d = NULL;
                continue;
            }
            write_file(path, first, (size_t)first_len); // file i gets file 0's entry
            snprintf(path, sizeof path, "%s/%s", dir, names[0]);
            break; // and file 0 gets file i's (below)
        case SWAPPED_FIXED:
            if (i == 0) {
                first = d, first_len = len;
                d = NULL;
                continue;
            }
            put_u64(first + 8, strtoull(names[i], NULL, 16));
            write_file(path, first, (size_t)first_len);
            put_u64(d + 8, strtoull(names[0], NULL, 16));
            snprintf(path, sizeof path, "%s/%s", dir, names[0]);
            break;
        case BAD_BINARY:
            for (long k = HEADER; k < len; k++) d[k] = (unsigned char)(k * 131 + 7);
            put_u64(d + 24, fnv1a(d + HEADER, (size_t)(len - HEADER)));
            break;
        case FIFO:
        case LINK_TO_ZERO:
        case N_DAMAGE: break;
        }
        write_file(path, d, (size_t)len);
        free(d);
    }
    free(first);
}

static void check_same(const struct run *a, const struct run *b, const char *what) {
    int same = a->ok && b->ok && memcmp(a->out, b->out, sizeof a->out) == 0;
    if (!same) fprintf(stderr, "results differ from the first run after: %s\n", what);
    CHECK(same);
}

static void check_counts(const struct run *r, unsigned hits, unsigned misses, const char *what) {
    if (r->hits != hits || r->misses != misses)
        fprintf(stderr, "%s: cache hits %u misses %u, expected %u and %u\n", what, r->hits,
                r->misses, hits, misses);
    CHECK_EQ(r->hits, hits);
    CHECK_EQ(r->misses, misses);
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        remove(dir);
        return;
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            chmod(path, 0700);
            remove_tree(path);
        } else {
            remove(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

static void check_device(const char *spec, const char *base, int index) {
    char dir[512], off_dir[700], blocked[600];
    snprintf(dir, sizeof dir, "%s/dev%d/cache", base, index); // created by the cache (mkdir -p)
    setenv("DIFFCL_CL_CACHE_DIR", dir, 1);
    unsetenv("DIFFCL_CL_CACHE");
    unsetenv("DIFFCL_CL_SYNC");

    // First open: two programs built from source and stored.
    struct run first, r;
    run_ops(spec, &first);
    check_counts(&first, 0, 2, "first open");
    char names[8][32];
    int n = list_files(dir, names, 8);
    CHECK_EQ(n, 2);
    if (n != 2) return;
    struct stat st;
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 077) == 0); // created 0700
    for (int i = 0; i < n; i++) CHECK(valid_entry(dir, names[i]));
    // Loosely against the known values: axpby and relu exactly, the GEMM within float rounding.
    for (size_t i = 0; i < N_ELEM; i++) {
        CHECK_EQ(first.out[i] == 0.75f * input(i, 7) + -1.5f * input(N_ELEM + i, 7), 1);
        CHECK_EQ(first.out[N_ELEM + i] == (input(i, 7) > 0 ? input(i, 7) : 0.0f), 1);
    }
    for (int i = 0; i < GM; i++)
        for (int j = 0; j < GN; j++) {
            double acc = 0;
            for (int k = 0; k < GK; k++)
                acc += (double)input(2 * N_ELEM + (size_t)(i * GK + k), 7) *
                       input(2 * N_ELEM + GM * GK + (size_t)(k * GN + j), 7);
            CHECK_NEAR(first.out[2 * N_ELEM + i * GN + j], acc, 1e-5, 1e-5);
        }

    // Second open: both programs from the cache, identical results.
    run_ops(spec, &r);
    check_counts(&r, 2, 0, "second open");
    check_same(&first, &r, "loading from the cache");

    // Every kind of damage: both entries are misses, results stay identical, and the entries are
    // rewritten (valid again, and hits on the next open).
    for (int how = 0; how < N_DAMAGE; how++) {
        damage(dir, names, n, (enum damage)how);
        run_ops(spec, &r);
        check_counts(&r, 0, 2, damage_names[how]);
        check_same(&first, &r, damage_names[how]);
        CHECK_EQ(list_files(dir, names, 8), 2);
        for (int i = 0; i < n; i++) CHECK(valid_entry(dir, names[i]));
        run_ops(spec, &r);
        check_counts(&r, 2, 0, "the open after a rewrite");
    }

    // A folder that others can write to is not trusted: neither read nor written.
    CHECK(chmod(dir, 0777) == 0);
    run_ops(spec, &r);
    check_counts(&r, 0, 0, "a world-writable folder");
    check_same(&first, &r, "a world-writable folder");
    CHECK(chmod(dir, 0700) == 0);

    // DIFFCL_CL_CACHE=off: nothing read, nothing written, not even the folder.
    snprintf(off_dir, sizeof off_dir, "%s/dev%d/off", base, index);
    setenv("DIFFCL_CL_CACHE_DIR", off_dir, 1);
    setenv("DIFFCL_CL_CACHE", "off", 1);
    run_ops(spec, &r);
    check_counts(&r, 0, 0, "DIFFCL_CL_CACHE=off");
    check_same(&first, &r, "DIFFCL_CL_CACHE=off");
    CHECK_EQ(list_files(off_dir, names, 8), -1);
    unsetenv("DIFFCL_CL_CACHE");

    // A folder that cannot be created (its parent is a file; root may write anywhere else): the
    // lookups miss, the stores fail quietly, and the ops succeed.
    snprintf(blocked, sizeof blocked, "%s/dev%d/file", base, index);
    write_file(blocked, "x", 1);
    snprintf(off_dir, sizeof off_dir, "%s/sub", blocked);
    setenv("DIFFCL_CL_CACHE_DIR", off_dir, 1);
    run_ops(spec, &r);
    check_counts(&r, 0, 2, "an unwritable folder");
    check_same(&first, &r, "an unwritable folder");

    // DIFFCL_CL_SYNC=1 (clFinish after every kernel) changes nothing but the speed.
    setenv("DIFFCL_CL_CACHE_DIR", dir, 1);
    setenv("DIFFCL_CL_SYNC", "1", 1);
    run_ops(spec, &r);
    check_counts(&r, 2, 0, "DIFFCL_CL_SYNC=1");
    check_same(&first, &r, "DIFFCL_CL_SYNC=1");
    unsetenv("DIFFCL_CL_SYNC");
}

// The number of program files the op table names (gemm has none).
static int n_programs(void) {
    int n = 0;
    for (int op = 0; op < DCL_OP_COUNT; op++) {
        const char *f = dcl__op_descs[op].file;
        int seen = f == NULL;
        for (int o = 0; o < op && !seen; o++)
            seen = dcl__op_descs[o].file && strcmp(dcl__op_descs[o].file, f) == 0;
        n += !seen;
    }
    return n;
}

// dcl_device_prepare with an empty cache compiles every program (and stores each); on the next
// open it compiles none and loads them all from the cache. The CPU reference has nothing to build.
static void check_prepare(const char *spec, const char *base, int index) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/dev%d/prepare", base, index);
    setenv("DIFFCL_CL_CACHE_DIR", dir, 1);
    int want = n_programs(), compiled = -1;
    for (int pass = 0; pass < 2; pass++) {
        dcl_device *dev;
        CHECK_EQ(dcl_device_open(&dev, spec), DCL_OK);
        if (check_failures) return;
        CHECK_EQ(dcl_device_prepare(dev, &compiled), DCL_OK);
        unsigned hits, misses;
        dcl__cl_cache_stats(dev, &hits, &misses);
        CHECK_EQ(compiled, pass == 0 ? want : 0);
        CHECK_EQ(hits, pass == 0 ? 0u : (unsigned)want);
        CHECK_EQ(misses, pass == 0 ? (unsigned)want : 0u);
        CHECK_EQ(dcl_device_prepare(dev, NULL), DCL_OK); // again: nothing left to do
        dcl_device_free(dev);
        char names[64][32];
        CHECK_EQ(list_files(dir, names, 64), want);
    }
    dcl_device *cpu;
    CHECK_EQ(dcl_device_open(&cpu, "cpu"), DCL_OK);
    compiled = -1;
    CHECK_EQ(dcl_device_prepare(cpu, &compiled), DCL_OK);
    CHECK_EQ(compiled, 0);
    dcl_device_free(cpu);
}

// Kernels are keyed by (file, name): with a copy of cl/ whose activation.cl also defines a kernel
// `fill` (adding 1), the two `fill`s are different kernels and dcl_fill still runs elementwise.cl's.
static void check_kernel_keys(const char *spec, const char *base, int index) {
    char dir[512], path[700];
    snprintf(dir, sizeof dir, "%s/dev%d/cl", base, index);
    CHECK(mkdir(dir, 0700) == 0);
    static const char extra[] =
        "\nkernel void fill(global float *out, uint out_off, float value, "
        "uint n) {\n    FOR_EACH(i, n) out[out_off + i] = value + 1.0f;\n}\n";
    for (int i = 0; i < dcl_cl_source_count; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, dcl_cl_sources[i].name);
        FILE *fp = fopen(path, "wb");
        CHECK(fp != NULL);
        if (!fp) return;
        fwrite(dcl_cl_sources[i].text, 1, (size_t)dcl_cl_sources[i].len, fp);
        if (strcmp(dcl_cl_sources[i].name, "activation.cl") == 0) fputs(extra, fp);
        fclose(fp);
    }
    setenv("DIFFCL_CL_DIR", dir, 1);
    setenv("DIFFCL_CL_CACHE", "off", 1);
    dcl_device *dev;
    CHECK_EQ(dcl_device_open(&dev, spec), DCL_OK);
    if (check_failures == 0) {
        void *a = NULL, *b = NULL; // the open built elementwise.cl's fill first
        CHECK_EQ(dcl__cl_kernel_handle(dev, "activation.cl", "fill", &b), DCL_OK);
        CHECK_EQ(dcl__cl_kernel_handle(dev, "elementwise.cl", "fill", &a), DCL_OK);
        CHECK(a != NULL && b != NULL && a != b);
        dcl_buffer *buf;
        float v[5] = {0};
        CHECK_EQ(dcl_buffer_alloc(&buf, dev, 5, "fill"), DCL_OK);
        CHECK_EQ(dcl_fill(dev, dcl_at(buf, 0), 2.5f, 5), DCL_OK);
        CHECK_EQ(dcl_buffer_read(buf, 0, 5, v), DCL_OK);
        for (int i = 0; i < 5; i++) CHECK_EQ(v[i], 2.5f);
        dcl_buffer_free(buf);
        dcl_device_free(dev);
    }
    unsetenv("DIFFCL_CL_DIR");
    unsetenv("DIFFCL_CL_CACHE");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!getenv("DIFFCL_LOG")) dcl_log_set_level(DCL_LOG_ERROR); // one device line per open
    dcl_device_info *list;
    int n, n_platforms = 0;
    dcl_status s = dcl_device_list(&list, &n, &n_platforms);
    if (s != DCL_OK) {
        fprintf(stderr, "dcl_device_list: %s: %s\n", dcl_status_name(s), dcl_last_error());
        return 1;
    }
    if (n_platforms == 0) {
        free(list);
        printf("no OpenCL platform: nothing to test\n");
        return 77;
    }
    const char *tmp = getenv("TMPDIR");
    char base[400];
    snprintf(base, sizeof base, "%s/diffcl-cl-cache.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        free(list);
        return 1;
    }
    int usable = 0;
    for (int i = 0; i < n; i++) {
        if (list[i].backend != DCL_BACKEND_OPENCL) continue;
        if (!list[i].usable) {
            printf("skip %s %s: not usable: %s\n", list[i].spec, list[i].name, list[i].why_not);
            continue;
        }
        usable++;
        int before = check_failures;
        check_device(list[i].spec, base, i);
        check_prepare(list[i].spec, base, i);
        check_kernel_keys(list[i].spec, base, i);
        printf("%s %s (%s): %s\n", list[i].spec, list[i].name, list[i].platform_name,
               check_failures == before ? "ok" : "FAILED");
    }
    if (usable == 0) {
        fprintf(stderr, "FAIL: %d OpenCL platform(s) but no usable OpenCL device\n", n_platforms);
        check_failures++;
    }
    free(list);
    remove_tree(base);
    return check_exit();
}

#else

int main(void) {
    printf("built without OpenCL: there is no program cache to test\n");
    return 0;
}

#endif
