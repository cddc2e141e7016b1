// `diffcl tune` (dcl_device_tune) on every OpenCL device with a tiny search: it writes a tuning file
// into a fresh cache folder, the next open applies it, GEMMs with the tuned parameters agree with
// the CPU reference within the crosscheck tolerance and bitwise with themselves, and a corrupt or
// foreign file, or DIFFCL_CL_TUNE=off, is ignored. cl/gemm.cl's kernels (DIFFCL_CL_GEMM=own) at
// ragged sizes, offsets, alpha and beta against the CPU reference, and bitwise the same under any
// launch shape. No timing assertions.
#define _POSIX_C_SOURCE 200809L // setenv, mkdtemp
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "device/test_hooks.h" // dcl__cl_tune_applied, dcl__cl_set_launch
#include "diffcl/device.h"
#include "diffcl/ops.h" // dcl_gemm

static char applied[512];

// Opens spec and returns what its tuning file applied ("" when nothing), in `applied`.
static const char *open_applied(const char *spec, dcl_device **out) {
    applied[0] = '\0';
    dcl_device *dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, spec), DCL_OK);
    if (dev) dcl__cl_tune_applied(dev, applied, sizeof applied);
    if (out) *out = dev;
    else dcl_device_free(dev);
    return applied;
}

static void write_file(const char *path, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ(fwrite(text, 1, n, f), n);
    fclose(f);
}

// C = op(A) op(B) on dev and on the CPU reference, shape by shape: within crosscheck's GEMM
// tolerance, and bitwise the same when run twice on dev.
static void check_gemms(dcl_device *dev, dcl_device *cpu) {
    static const size_t shapes[][5] = {
        {67, 45, 33, 0, 1},   {64, 128, 128, 0, 0}, {128, 34, 256, 1, 0}, {130, 130, 130, 0, 0},
        {16, 784, 144, 0, 0}, {144, 784, 16, 1, 0}, {16, 144, 784, 0, 1},
    };
    const size_t max = 784 * 144;
    float *a = malloc(max * 4), *b = malloc(max * 4), *c1 = malloc(max * 4), *c2 = malloc(max * 4),
          *ref = malloc(max * 4);
    dcl_buffer *da[2] = {NULL}, *db[2] = {NULL}, *dc[2] = {NULL};
    dcl_device *devs[2] = {dev, cpu};
    for (size_t i = 0; i < max; i++) // deterministic values of both signs, about N(0, 1) in scale
        a[i] = (float)((int)(i * 2654435761u % 2001) - 1000) / 577.0f,
        b[i] = (float)((int)(i * 40503u % 1999) - 999) / 577.0f;
    for (int d = 0; d < 2; d++) {
        CHECK_EQ(dcl_buffer_alloc(&da[d], devs[d], max, "A"), DCL_OK);
        CHECK_EQ(dcl_buffer_alloc(&db[d], devs[d], max, "B"), DCL_OK);
        CHECK_EQ(dcl_buffer_alloc(&dc[d], devs[d], max, "C"), DCL_OK);
        if (!da[d] || !db[d] || !dc[d]) goto done;
        CHECK_EQ(dcl_buffer_write(da[d], 0, max, a), DCL_OK);
        CHECK_EQ(dcl_buffer_write(db[d], 0, max, b), DCL_OK);
    }
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int ta = (int)shapes[s][3], tb = (int)shapes[s][4];
        float *outs[3] = {c1, c2, ref};
        for (int run = 0; run < 3; run++) {
            int d = run == 2;
            CHECK_EQ(dcl_gemm(devs[d], dcl_at(dc[d], 0), dcl_at(da[d], 0), dcl_at(db[d], 0), ta, tb,
                              M, N, K, 1.0f, 0.0f),
                     DCL_OK);
            CHECK_EQ(dcl_buffer_read(dc[d], 0, M * N, outs[run]), DCL_OK);
        }
        // host/crosscheck/cases.c's GEMM tolerance for alpha 1, beta 0.
        const double U = 1.0 / 16777216.0, atol = 16 * U * ((double)K + 2 * sqrt((double)K)),
                     rtol = 16 * U;
        int bad = 0;
        for (size_t i = 0; i < M * N; i++)
            if (!(fabs((double)c1[i] - ref[i]) <= atol + rtol * fabs((double)ref[i])) && bad++ < 5)
                fprintf(stderr, "gemm %zux%zux%zu t%d%d [%zu]: %.9g vs cpu %.9g\n", M, N, K, ta, tb,
                        i, c1[i], ref[i]);
        CHECK_EQ(bad, 0);
        CHECK(memcmp(c1, c2, M * N * 4) == 0);
    }
done:
    for (int d = 0; d < 2; d++)
        dcl_buffer_free(da[d]), dcl_buffer_free(db[d]), dcl_buffer_free(dc[d]);
    free(a), free(b), free(c1), free(c2), free(ref);
}

// Every transposition case of dcl_gemm through cl/gemm.cl (TT: CLBlast) on ragged shapes, with
// tensors at odd offsets, alpha 0.5 and beta 0 (C holds NaN, which must not be read) or 0.25:
// within the crosscheck tolerance of the CPU reference, and bitwise equal under five launch shapes.
static void check_own_gemm(const char *spec) {
    static const size_t shapes[][3] = {{1, 1, 1},    {7, 17, 5},  {17, 33, 9},  {33, 15, 64},
                                       {9, 40, 300}, {100, 3, 7}, {16, 47, 144}};
    static const size_t launch[][2] = {{0, 0}, {1, 0}, {3, 2}, {64, 1}, {5, 7}};
    const size_t max = 100 * 300 + 64, off_a = 3, off_b = 5, off_c = 7;
    setenv("DIFFCL_CL_GEMM", "own", 1);
    dcl_device *devs[2] = {NULL, NULL};
    CHECK_EQ(dcl_device_open(&devs[0], spec), DCL_OK);
    unsetenv("DIFFCL_CL_GEMM");
    CHECK_EQ(dcl_device_open(&devs[1], "cpu"), DCL_OK);
    float *a = malloc(max * 4), *b = malloc(max * 4), *c0 = malloc(max * 4), *out = malloc(max * 4),
          *first = malloc(max * 4), *ref = malloc(max * 4);
    dcl_buffer *da[2] = {NULL}, *db[2] = {NULL}, *dc[2] = {NULL};
    for (size_t i = 0; i < max; i++)
        a[i] = (float)((int)(i * 2654435761u % 2001) - 1000) / 577.0f,
        b[i] = (float)((int)(i * 40503u % 1999) - 999) / 577.0f,
        c0[i] = (float)((int)(i * 7919u % 1001) - 500) / 250.0f;
    for (int d = 0; d < 2 && devs[0] && devs[1]; d++) {
        CHECK_EQ(dcl_buffer_alloc(&da[d], devs[d], max, "A"), DCL_OK);
        CHECK_EQ(dcl_buffer_alloc(&db[d], devs[d], max, "B"), DCL_OK);
        CHECK_EQ(dcl_buffer_alloc(&dc[d], devs[d], max, "C"), DCL_OK);
        if (!da[d] || !db[d] || !dc[d]) goto done;
        CHECK_EQ(dcl_buffer_write(da[d], 0, max, a), DCL_OK);
        CHECK_EQ(dcl_buffer_write(db[d], 0, max, b), DCL_OK);
    }
    if (!da[1]) goto done;
    int cases = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int t = 0; t < 4; t++)
            for (int with_beta = 0; with_beta < 2; with_beta++) {
                size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                int ta = t >> 1, tb = t & 1;
                float beta = with_beta ? 0.25f : 0.0f;
                // beta 0: C starts as NaN, so a kernel that reads it fails the comparison.
                for (size_t i = 0; i < M * N && !with_beta; i++) c0[off_c + i] = NAN;
                for (size_t i = 0; i < M * N && with_beta; i++)
                    c0[off_c + i] = (float)((int)(i * 7919u % 1001) - 500) / 250.0f;
                for (int L = -1; L < (int)(sizeof launch / sizeof *launch); L++) {
                    int d = L < 0; // the CPU reference first, then dev under each launch shape
                    if (!d) dcl__cl_set_launch(devs[0], launch[L][0], launch[L][1]);
                    CHECK_EQ(dcl_buffer_write(dc[d], 0, max, c0), DCL_OK);
                    CHECK_EQ(dcl_gemm(devs[d], dcl_at(dc[d], off_c), dcl_at(da[d], off_a),
                                      dcl_at(db[d], off_b), ta, tb, M, N, K, 0.5f, beta),
                             DCL_OK);
                    CHECK_EQ(dcl_buffer_read(dc[d], 0, max, d ? ref : out), DCL_OK);
                    if (d) continue;
                    if (L == 0) memcpy(first, out, max * 4);
                    else if (memcmp(first, out, max * 4) != 0) {
                        fprintf(stderr,
                                "gemm %zux%zux%zu t%d%d beta %g: launch (%zu, %zu) differs\n", M, N,
                                K, ta, tb, beta, launch[L][0], launch[L][1]);
                        CHECK(0);
                    }
                }
                dcl__cl_set_launch(devs[0], 0, 0);
                const double U = 1.0 / 16777216.0,
                             atol = 16 * U * ((double)K + 2 * sqrt((double)K)), rtol = 16 * U;
                int bad = 0;
                for (size_t i = 0; i < max; i++) {
                    int inside = i >= off_c && i < off_c + M * N;
                    double err = fabs((double)first[i] - ref[i]);
                    if ((inside ? !(err <= atol + rtol * fabs((double)ref[i]))
                                : memcmp(&first[i], &ref[i], 4) != 0) &&
                        bad++ < 5)
                        fprintf(stderr, "gemm %zux%zux%zu t%d%d beta %g [%zu]: %.9g vs cpu %.9g\n",
                                M, N, K, ta, tb, beta, i, first[i], ref[i]);
                }
                CHECK_EQ(bad, 0);
                cases++;
            }
    printf("cl/gemm.cl on %s: %d cases against the CPU reference, 5 launch shapes each\n", spec,
           cases);
done:
    for (int d = 0; d < 2; d++)
        dcl_buffer_free(da[d]), dcl_buffer_free(db[d]), dcl_buffer_free(dc[d]);
    free(a), free(b), free(c0), free(out), free(first), free(ref);
    dcl_device_free(devs[0]), dcl_device_free(devs[1]);
}

// dcl_tune_opts.step_time: fixed seconds per backend, arg = {OpenCL device's, CPU reference's}.
static dcl_status fixed_step(dcl_device *dev, void *arg, double *seconds) {
    const double *t = arg;
    *seconds = t[dcl_device_get_info(dev)->backend == DCL_BACKEND_CPU];
    return DCL_OK;
}

// The tuning file at path as a NUL-terminated string (for strstr), *n its bytes; NULL when
// unreadable. free() it.
static char *read_text(const char *path, size_t *n) {
    unsigned char *bytes = NULL;
    CHECK(check_read_file(path, &bytes, n));
    char *text = bytes ? calloc(*n + 1, 1) : NULL;
    if (text) memcpy(text, bytes, *n);
    free(bytes);
    return text;
}

// Tunes spec with step times {device, cpu}: whether the file then says faster_than_cpu.
static int tuned_faster(const char *spec, double dev_s, double cpu_s) {
    dcl_device *dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, spec), DCL_OK);
    if (!dev) return -1;
    double t[2] = {dev_s, cpu_s};
    dcl_tune_opts o = {.quick = 1, .max_candidates = 2, .scale = 16, .square = 128};
    o.step_time = fixed_step, o.step_arg = t;
    dcl_tune_result r;
    dcl_status s = dcl_device_tune(dev, &o, &r);
    CHECK_EQ(s, DCL_OK);
    dcl_device_free(dev);
    if (s != DCL_OK) return -1;
    CHECK(r.step_ms == dev_s * 1e3 && r.cpu_step_ms == cpu_s * 1e3);
    size_t n = 0;
    char *text = read_text(r.path, &n);
    int yes = text && strstr(text, "\nfaster_than_cpu 1\n") != NULL;
    CHECK_EQ(yes, r.faster_than_cpu);
    free(text);
    return yes;
}

static void check_device(const char *spec, void *unused) {
    (void)unused;
    unsetenv("DIFFCL_CL_TUNE");
    CHECK(strcmp(open_applied(spec, NULL), "") == 0); // no tuning file yet
    check_own_gemm(spec);

    dcl_device *dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, spec), DCL_OK);
    if (!dev) return;
    dcl_tune_opts o = {.quick = 1, .max_candidates = 2, .scale = 16, .square = 128};
    dcl_tune_result r;
    dcl_status s = dcl_device_tune(dev, &o, &r);
    CHECK_EQ(s, DCL_OK);
    dcl_device_free(dev);
    if (s != DCL_OK) {
        fprintf(stderr, "tune: %s\n", dcl_last_error());
        return;
    }
    printf("tuned %s: %d candidates (%d refused), DCL_WG_SIZE %zu, file %s\n", spec, r.candidates,
           r.rejected, r.wg_size, r.path);
    CHECK(r.candidates >= 1 && r.candidates <= 4); // 2 per CLBlast kernel
    size_t n = 0;
    char *text = read_text(r.path, &n);
    if (!text) return;

    // The second open applies it: the work-group size and the three CLBlast kernels.
    dcl_device *tuned = NULL, *cpu = NULL;
    open_applied(spec, &tuned);
    printf("applied: %s\n", applied);
    char want[64];
    snprintf(want, sizeof want, "wg_size=%zu", r.wg_size);
    CHECK(strncmp(applied, want, strlen(want)) == 0 && applied[strlen(want)] == ' ');
    snprintf(want, sizeof want, " own_gemm=%u", r.own_gemm); // the GEMM cases cl/gemm.cl runs
    CHECK(strstr(applied, want) != NULL);
    if (r.clblast_overridden) // else CLBlast's own parameters were faster (a GPU in its database)
        CHECK(strstr(applied, " Xgemm:") && strstr(applied, " XgemmDirect:") &&
              strstr(applied, " GemmRoutine:"));
    CHECK_EQ(dcl_device_open(&cpu, "cpu"), DCL_OK);
    if (tuned && cpu) check_gemms(tuned, cpu);
    dcl_device_free(tuned), dcl_device_free(cpu);

    // DIFFCL_CL_TUNE=off: not applied.
    setenv("DIFFCL_CL_TUNE", "off", 1);
    CHECK(strcmp(open_applied(spec, NULL), "") == 0);
    unsetenv("DIFFCL_CL_TUNE");

    // Corrupt files are ignored: cut short, a bad value, a foreign key, garbage.
    char *edit = malloc(n + 64);
    const char *end = strstr(text, "end\n");
    CHECK(end != NULL);
    if (edit && end) {
        write_file(r.path, text, (size_t)(end - text)); // no end line
        CHECK(strcmp(open_applied(spec, NULL), "") == 0);
        memcpy(edit, text, n);
        char *v = strstr(edit, "\nwg_size ");
        CHECK(v != NULL);
        if (v) v[9] = 'x'; // not a number
        write_file(r.path, edit, n);
        CHECK(strcmp(open_applied(spec, NULL), "") == 0);
        memcpy(edit, text, n);
        char *drv = strstr(edit, "\ndriver ");
        if (drv) drv[8] ^= 1;
        write_file(r.path, edit, n);
        CHECK(strcmp(open_applied(spec, NULL), "") == 0);
        write_file(r.path,
                   "\x7f"
                   "ELF\0\0\0garbage",
                   14);
        CHECK(strcmp(open_applied(spec, NULL), "") == 0);
        write_file(r.path, text, n); // and the original again is applied
        CHECK(strcmp(open_applied(spec, NULL), "") != 0);
    }
    free(edit);
    free(text);

    // With a step time, `auto`'s verdict is the whole step's, not the model GEMMs'.
    CHECK_EQ(tuned_faster(spec, 1.0, 2.0), 1);
    CHECK_EQ(tuned_faster(spec, 2.0, 1.0), 0);
}

int main(void) {
    char dir[512];
    if (!check_tmpdir(dir, sizeof dir, "diffcl-tune")) return 1;
    setenv("DIFFCL_CL_CACHE_DIR", dir, 1);
    unsetenv("DIFFCL_CL_CACHE");
    int rc = check_opencl_devices(check_device, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return rc;
}
