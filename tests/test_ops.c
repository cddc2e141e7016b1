// Every op case of host/crosscheck/ on every usable OpenCL device (and on a second CPU device, as
// a sanity run of the harness) against the CPU reference, at ragged sizes and non-zero offsets;
// and the benchmark's view of the same table: every case sets up, runs and has a cost.
// Exit 77 only when the build has OpenCL but the machine has no OpenCL platform.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crosscheck/crosscheck.h" // dcl_check_case_*, dcl_check_perf_*, dcl_check_reference_open
#include "device/backend.h"        // dcl__cpu_backend, DCL_OP_MAP
#include "device/test_hooks.h"     // dcl__cl_set_launch
#include "diffcl/device.h"
#include "testlib.h"

static const size_t sizes_full[] = {1, 2, 31, 255, 257, 1000, 4097};
static const size_t sizes_small[] = {1, 2, 31, 257};
static const size_t offsets[] = {0, 3};

// On OpenCL devices the cases also run under forced launch shapes (local size, group count; see
// dcl__cl_set_launch) at a few sizes with offset 3: odd local sizes and fewer groups than needed
// exercise the ragged last group, the grid-stride loops and non-power-of-two reduction trees.
static const size_t shapes[][2] = {{1, 1}, {7, 3}, {96, 0}};
static const size_t shape_sizes[] = {1, 31, 257, 1000};

struct run_config {
    size_t n, off, local, groups;
};

// Every (size, offset) at the default launch, then the forced shapes.
static int configs(int small, int opencl, struct run_config *out) {
    const size_t *sizes = small ? sizes_small : sizes_full;
    size_t n_sizes = small ? sizeof sizes_small / sizeof *sizes : sizeof sizes_full / sizeof *sizes;
    int k = 0;
    for (size_t si = 0; si < n_sizes; si++)
        for (size_t oi = 0; oi < sizeof offsets / sizeof *offsets; oi++)
            out[k++] = (struct run_config){sizes[si], offsets[oi], 0, 0};
    if (!opencl) return k;
    for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++)
        for (size_t si = 0; si < sizeof shape_sizes / sizeof *shape_sizes - (small ? 1 : 0); si++)
            out[k++] = (struct run_config){shape_sizes[si], 3, shapes[sh][0], shapes[sh][1]};
    return k;
}

// The CPU table has every op, and every op has a case named after it ("gemm" → "gemm_nn").
static void check_tables(void) {
    static const char *const ops[] = {
#define OP_NAME(NAME, name, ...) #name,
        DCL_OP_MAP(OP_NAME)
#undef OP_NAME
    };
    for (int op = 0; op < DCL_OP_COUNT; op++) {
        if (!dcl__cpu_backend.ops[op]) {
            fprintf(stderr, "CPU backend has no entry for op %s\n", ops[op]);
            check_failures++;
        }
        size_t len = strlen(ops[op]);
        int found = 0;
        for (int i = 0; i < dcl_check_case_count(); i++) {
            const char *name = dcl_check_case_name(i);
            if (strncmp(name, ops[op], len) == 0 && (name[len] == '\0' || name[len] == '_'))
                found = 1;
        }
        if (!found) {
            fprintf(stderr, "op %s has no case in the check table (host/crosscheck/)\n", ops[op]);
            check_failures++;
        }
    }
    CHECK(dcl_check_case_name(-1) == NULL);
    CHECK(dcl_check_case_name(dcl_check_case_count()) == NULL);
}

// The benchmark (`diffcl bench ops`) loops over the same table: every case sets up on the CPU
// reference at a tiny size and at its default benchmark size (without running it there), runs,
// and reports a cost. Speed is not asserted.
static void check_perf(dcl_device *ref) {
    for (int i = 0; i < dcl_check_case_count(); i++) {
        const char *name = dcl_check_case_name(i);
        dcl_check_perf *f = NULL;
        dcl_status s = dcl_check_perf_init(&f, ref, i, 5, 0);
        if (s == DCL_OK) s = dcl_check_perf_run(f);
        if (s == DCL_OK) s = dcl_check_perf_run(f);
        if (s != DCL_OK) {
            fprintf(stderr, "perf %s: %s: %s\n", name, dcl_status_name(s), dcl_last_error());
            check_failures++;
        } else {
            const dcl_check_cost *c = dcl_check_perf_cost(f);
            CHECK_EQ(c->n, 5);
            CHECK(c->bytes >= 4);
            CHECK(c->flops >= 0);
            if (strncmp(name, "gemm", 4) == 0) CHECK(c->flops > 0); // GEMM rows give GFLOP/s
        }
        dcl_check_perf_free(f);
        // The default size: tensors of about `elements` words in all (4 bytes each), so a call
        // moves at most twice that (in-out tensors count twice).
        s = dcl_check_perf_init(&f, ref, i, 0, 1u << 16);
        CHECK_EQ(s, DCL_OK);
        if (s == DCL_OK) {
            const dcl_check_cost *c = dcl_check_perf_cost(f);
            if (!(c->n >= 1 && c->bytes > 0 && c->bytes / 4 < (1u << 18))) {
                fprintf(stderr, "perf %s: default size %zu moves %.0f bytes, not ~4 x 65536\n",
                        name, c->n, c->bytes);
                check_failures++;
            }
        }
        dcl_check_perf_free(f);
    }
    dcl_check_perf *f = NULL;
    CHECK_EQ(dcl_check_perf_init(&f, ref, dcl_check_case_count(), 5, 0), DCL_ERR_ARG);
    CHECK(f == NULL);
}

// Runs every case in every configuration on the device spec names; one line per case.
static void check_device(const char *spec, dcl_device *ref, int small) {
    dcl_device *dev;
    dcl_status s = dcl_device_open(&dev, spec);
    if (s != DCL_OK) {
        fprintf(stderr, "FAIL %s: cannot open: %s: %s\n", spec, dcl_status_name(s),
                dcl_last_error());
        check_failures++;
        return;
    }
    struct run_config cfg[64];
    int opencl = dcl_device_get_info(dev)->backend == DCL_BACKEND_OPENCL;
    int n_cfg = configs(small, opencl, cfg);
    for (int i = 0; i < dcl_check_case_count(); i++) {
        int passed = 0;
        double max_abs = 0, max_rel = 0;
        float atol = 0, rtol = 0;
        for (int ci = 0; ci < n_cfg; ci++) {
            const struct run_config *c = &cfg[ci];
#ifdef DIFFCL_HAVE_OPENCL
            if (opencl) dcl__cl_set_launch(dev, c->local, c->groups);
#endif
            dcl_check_result r;
            s = dcl_check_case_run(dev, ref, i, c->n, c->off, 0x5eed0000u + c->n, &r);
            if (r.max_abs > max_abs) max_abs = r.max_abs;
            if (r.max_rel > max_rel) max_rel = r.max_rel;
            if (r.atol > atol) atol = r.atol;
            if (r.rtol > rtol) rtol = r.rtol;
            if (s == DCL_OK && r.pass) {
                passed++;
                continue;
            }
            check_failures++;
            fprintf(stderr, "  %s %s n=%zu off=%zu launch (%zu, %zu): ", spec, r.name, c->n, c->off,
                    c->local, c->groups);
            if (s != DCL_OK) fprintf(stderr, "%s: %s\n", dcl_status_name(s), dcl_last_error());
            else
                fprintf(stderr, "max_abs %.3g max_rel %.3g (atol %.3g rtol %.3g):%s\n", r.max_abs,
                        r.max_rel, r.atol, r.rtol, r.detail);
        }
        printf(
            "%-4s %-8s %-20s %2d/%2d  max_abs %-9.3g max_rel %-9.3g (atol <= %.3g, rtol <= %.3g)\n",
            passed == n_cfg ? "ok" : "FAIL", spec, dcl_check_case_name(i), passed, n_cfg, max_abs,
            max_rel, atol, rtol);
    }
#ifdef DIFFCL_HAVE_OPENCL
    if (opencl) dcl__cl_set_launch(dev, 0, 0);
#endif
    dcl_device_free(dev);
}

struct opts {
    dcl_device *ref;
    int small;
};

static void on_device(const char *spec, void *ctx) {
    const struct opts *o = ctx;
    check_device(spec, o->ref, o->small);
}

int main(int argc, char **argv) {
    struct opts o = {NULL, argc > 1 && strcmp(argv[1], "--small") == 0};
    setvbuf(stdout, NULL, _IOLBF, 0); // keep summaries and failure details in order
    check_tables();
    dcl_status s = dcl_check_reference_open(&o.ref);
    if (s != DCL_OK) {
        fprintf(stderr, "FAIL cannot open the CPU reference: %s\n", dcl_last_error());
        return 1;
    }
    check_perf(o.ref);

    // The harness itself: the reference against a second CPU device must agree exactly.
    check_device("cpu", o.ref, o.small);

    int rc = check_opencl_devices(on_device, &o);
    dcl_device_free(o.ref);
    return rc;
}
