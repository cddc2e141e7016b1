// A tiny test framework: CHECK, CHECK_EQ and CHECK_NEAR print file:line, the expression and both
// values on failure and count it in check_failures; a test's main returns check_exit().
#ifndef DIFFCL_TESTS_TESTLIB_H
#define DIFFCL_TESTS_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "diffcl/device.h" // dcl_device_list: the OpenCL devices a test runs on

static int check_failures = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

// Integers (any width, compared as long long; unsigned 64-bit values compare bitwise).
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ != check_b_) {                                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld, 0x%llx vs 0x%llx)\n", \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_, (unsigned long long)check_a_,  \
                    (unsigned long long)check_b_);                                                 \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

// |a − b| <= atol + rtol·|b| (b is the reference); NaN never passes.
#define CHECK_NEAR(a, b, atol, rtol)                                                               \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        double check_tol_ = (double)(atol) + fabs(check_b_) * (double)(rtol);                      \
        if (!(fabs(check_a_ - check_b_) <= check_tol_)) {                                          \
            fprintf(stderr,                                                                        \
                    "%s:%d: CHECK_NEAR failed: %s ~ %s (%.9g vs %.9g, |diff| %.3g > %.3g)\n",      \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_, fabs(check_a_ - check_b_),     \
                    check_tol_);                                                                   \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

// What a test's main returns: 0 when every check passed.
static inline int check_exit(void) {
    if (check_failures) fprintf(stderr, "%d check(s) failed\n", check_failures);
    return check_failures ? 1 : 0;
}

// Reads the whole file into *buf (malloc'd; the caller frees it) and its size into *n; 0 when it
// cannot be read.
static inline int check_read_file(const char *path, unsigned char **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    *buf = malloc(*n ? *n : 1);
    int ok = *buf && fread(*buf, 1, *n, f) == *n;
    fclose(f);
    return ok;
}

// Creates a fresh folder $TMPDIR/NAME-XXXXXX (or under /tmp) into buf; 0 (with a message) when
// it cannot.
static inline int check_tmpdir(char *buf, size_t size, const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, size, "%s/%s-XXXXXX", base && *base ? base : "/tmp", name);
    if (mkdtemp(buf)) return 1;
    perror("mkdtemp");
    return 0;
}

// Runs fn(spec, ctx) on every usable OpenCL device, after a header line naming it (unusable
// devices are listed and skipped), and returns what a test's main returns: check_exit(), except
// 77 (CTest "skipped") when the build has OpenCL but the machine has no OpenCL platform and
// nothing failed so far, and a failure when a platform exists but no device is usable.
static inline int check_opencl_devices(void (*fn)(const char *spec, void *ctx), void *ctx) {
    dcl_device_info *list;
    int n, n_platforms = 0, usable = 0;
    if (dcl_device_list(&list, &n, &n_platforms) != DCL_OK) {
        fprintf(stderr, "dcl_device_list: %s\n", dcl_last_error());
        return 1;
    }
    for (int i = 0; i < n; i++) {
        if (list[i].backend != DCL_BACKEND_OPENCL) continue;
        if (!list[i].usable) {
            printf("skip %s %s: not usable: %s\n", list[i].spec, list[i].name, list[i].why_not);
            continue;
        }
        usable++;
        printf("---- %s: %s (%s, %s)\n", list[i].spec, list[i].name, list[i].type,
               list[i].platform_name);
        fn(list[i].spec, ctx);
    }
    free(list);
#ifdef DIFFCL_HAVE_OPENCL
    if (n_platforms == 0) {
        printf("no OpenCL platform: only the CPU reference was tested\n");
        return check_failures ? check_exit() : 77;
    }
    if (usable == 0) {
        fprintf(stderr, "FAIL: %d OpenCL platform(s) but no usable OpenCL device\n", n_platforms);
        check_failures++;
    }
#else
    (void)usable;
#endif
    return check_exit();
}

#endif
