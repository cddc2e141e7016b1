// Status codes: every status has its own name and description, and dcl__fail records the last
// error message (dcl__fail_context prepends to it, dcl_clear_error forgets it).
#include <string.h>

#include "testlib.h"
#include "core/error.h" // dcl__fail, dcl__fail_context
#include "diffcl/status.h"

static const dcl_status all[] = {
#define STATUS_VALUE(name, value, text) DCL_##name,
    DCL_STATUS_MAP(STATUS_VALUE)
#undef STATUS_VALUE
};

int main(void) {
    int n = (int)(sizeof all / sizeof all[0]);
    CHECK(n >= 2);
    CHECK_EQ(DCL_OK, 0);
    for (int i = 0; i < n; i++) {
        const char *name = dcl_status_name(all[i]), *str = dcl_status_str(all[i]);
        CHECK(name && strncmp(name, "DCL_", 4) == 0);
        CHECK(str && *str);
        if (i > 0) CHECK(all[i] < 0); // every error is negative
        for (int j = 0; j < i; j++) {
            CHECK(all[i] != all[j]);
            CHECK(strcmp(name, dcl_status_name(all[j])) != 0);
            CHECK(strcmp(str, dcl_status_str(all[j])) != 0);
        }
    }
    CHECK(strcmp(dcl_status_name(DCL_ERR_ARG), "DCL_ERR_ARG") == 0);
    CHECK(dcl_status_name((dcl_status)12345) != NULL);
    CHECK(dcl_status_str((dcl_status)12345) != NULL);

    dcl_clear_error();
    CHECK(strcmp(dcl_last_error(), "") == 0);
    dcl_status s = dcl__fail(DCL_ERR_FORMAT, "bad byte at offset %d of %s", 17, "x.safetensors");
    CHECK_EQ(s, DCL_ERR_FORMAT);
    CHECK(strcmp(dcl_last_error(), "bad byte at offset 17 of x.safetensors") == 0);
    s = dcl__fail_context(DCL_ERR_IO, "loading %s", "ckpt");
    CHECK_EQ(s, DCL_ERR_IO);
    CHECK(strcmp(dcl_last_error(), "loading ckpt: bad byte at offset 17 of x.safetensors") == 0);
    dcl_clear_error();
    CHECK(strcmp(dcl_last_error(), "") == 0);

    // A message longer than the buffer is truncated, not overrun.
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    dcl__fail(DCL_ERR_ARG, "%s", big);
    CHECK(strlen(dcl_last_error()) > 0 && strlen(dcl_last_error()) < sizeof big - 1);
    return check_exit();
}
