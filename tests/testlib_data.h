// Opening dataset specs in tests: open_ok (the set, or a counted failure with the library's
// message) and expect_open_error (the status wanted, *out set to NULL, and a message naming the
// problem). For test_data.c, test_image_data.c and test_shapes.c.
#ifndef DIFFCL_TESTS_TESTLIB_DATA_H
#define DIFFCL_TESTS_TESTLIB_DATA_H

#include <stdint.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/data.h"

static inline dcl_dataset *open_ok(const char *spec, uint64_t seed) {
    dcl_dataset *ds = NULL;
    dcl_status s = dcl_dataset_open(&ds, spec, seed);
    if (s != DCL_OK) fprintf(stderr, "opening '%s': %s\n", spec, dcl_last_error());
    CHECK_EQ(s, DCL_OK);
    return ds;
}

static inline void expect_open_error(const char *spec, dcl_status want, const char *needle) {
    dcl_dataset *ds = (dcl_dataset *)(uintptr_t)1;
    dcl_clear_error();
    dcl_status s = dcl_dataset_open(&ds, spec, 0);
    CHECK_EQ(s, want);
    CHECK(ds == NULL);
    if (!strstr(dcl_last_error(), needle)) {
        fprintf(stderr, "spec '%s': message '%s' lacks '%s'\n", spec, dcl_last_error(), needle);
        CHECK(!"error message names the problem");
    }
    if (s == DCL_OK) dcl_dataset_free(ds);
}

#endif
