// Every op case of host/check/ on every usable OpenCL device (and on a second CPU device, as a
// sanity run of the harness) against the CPU reference, at ragged sizes and non-zero offsets.
// Exit 77 only when the build has OpenCL but the machine has no OpenCL platform.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "crosscheck/crosscheck.h" // dcl_check_case_*
#include "device/backend.h"        // dcl__cpu_backend, DCL_OP_MAP
#include "device/test_hooks.h"     // dcl__cl_set_launch
#include "diffcl/device.h"

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
            fprintf(stderr, "op %s has no case in the check table (host/check/)\n", ops[op]);
            check_failures++;
        }
    }
    CHECK(dcl_check_case_name(-1) == NULL);
    CHECK(dcl_check_case_name(dcl_check_case_count()) == NULL);
}

// Runs every case in every configuration on the device spec names; one line per case.
static void check_device(const char *spec, int small) {
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
            s = dcl_check_case_run(dev, i, c->n, c->off, 0x5eed0000u + c->n, &r);
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

static void on_device(const char *spec, void *small) { check_device(spec, *(int *)small); }

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0); // keep summaries and failure details in order
    check_tables();

    // The harness itself: the reference against a second CPU device must agree exactly.
    check_device("cpu", small);

    return check_opencl_devices(on_device, &small);
}
