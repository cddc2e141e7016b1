// The public face of the library: diffcl.h alone compiles, dcl_version matches the header's
// macros, and the log callback receives every message at or below the level (whole, without the
// "diffcl: " prefix), including what dcl_device_open says, until it is reset to stderr.
#include <string.h>

#include "testlib.h"
#include "diffcl/diffcl.h"

typedef struct seen {
    int n, level;
    char last[4096];
} seen;

static void collect(void *ud, int level, const char *msg) {
    seen *s = ud;
    s->n++;
    s->level = level;
    snprintf(s->last, sizeof s->last, "%s", msg);
}

int main(void) {
    CHECK(strcmp(dcl_version(), DIFFCL_VERSION_STRING) == 0);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", DIFFCL_VERSION_MAJOR, DIFFCL_VERSION_MINOR,
             DIFFCL_VERSION_PATCH);
    CHECK(strcmp(DIFFCL_VERSION_STRING, want) == 0);

    seen s = {0};
    dcl_log_set_callback(collect, &s);
    dcl_log_set_level(DCL_LOG_INFO);
    dcl_log(DCL_LOG_INFO, "hello %d", 42);
    CHECK_EQ(s.n, 1);
    CHECK_EQ(s.level, DCL_LOG_INFO);
    CHECK(strcmp(s.last, "hello 42") == 0);
    dcl_log(DCL_LOG_VERBOSE, "too detailed");
    CHECK_EQ(s.n, 1);
    dcl_log(DCL_LOG_ERROR, "broken");
    CHECK_EQ(s.n, 2);
    CHECK_EQ(s.level, DCL_LOG_ERROR);
    CHECK(strcmp(s.last, "broken") == 0);

    // A message longer than the logger's stack buffer (an OpenCL build log) arrives whole.
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    dcl_log(DCL_LOG_ERROR, "%s!", big);
    CHECK_EQ(strlen(s.last), sizeof big);
    CHECK(s.last[sizeof big - 1] == '!');

    // The library's own messages go to the callback too, and do not speak the CLI's flags.
    dcl_device *dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, "cpu"), DCL_OK);
    CHECK(strstr(s.last, "device cpu") != NULL);
    CHECK(strstr(s.last, "--device") == NULL);
    dcl_device_free(dev);

    dcl_log_set_level(DCL_LOG_SILENT);
    int n = s.n;
    dcl_log(DCL_LOG_ERROR, "silenced");
    CHECK_EQ(s.n, n);
    dcl_log_set_level(DCL_LOG_INFO);
    dcl_log_set_callback(NULL, NULL); // back to stderr
    dcl_log(DCL_LOG_VERBOSE, "not shown");
    CHECK_EQ(s.n, n);
    return check_exit();
}
