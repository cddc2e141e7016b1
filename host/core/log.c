// Logging with a level set by dcl_log_set_level or the DIFFCL_LOG environment variable, to stderr
// or to the caller's callback (dcl_log_set_callback).
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "diffcl/log.h"

#define UNSET (-2) // not read from the environment yet

static int level = UNSET;

// The default sink: one write per message, so lines from several threads do not interleave.
static void log_stderr(void *ud, int l, const char *msg) {
    (void)ud;
    fprintf(stderr, "%s%s\n", l == DCL_LOG_ERROR ? "diffcl: error: " : "diffcl: ", msg);
}

static dcl_log_fn sink = log_stderr;
static void *sink_ud;

int dcl_log_get_level(void) {
    if (level == UNSET) {
        const char *env = getenv("DIFFCL_LOG");
        level = env && *env ? atoi(env) : DCL_LOG_INFO;
    }
    return level;
}

void dcl_log_set_level(int l) { level = l < DCL_LOG_SILENT ? DCL_LOG_SILENT : l; }

void dcl_log_set_callback(dcl_log_fn fn, void *ud) {
    sink = fn ? fn : log_stderr;
    sink_ud = fn ? ud : NULL;
}

void dcl_log(int l, const char *fmt, ...) {
    if (l > dcl_log_get_level()) return;
    // Most messages fit the stack buffer; longer ones (an OpenCL build log) get a heap copy, or
    // are cut to the buffer if that fails.
    char small[1024], *msg = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof small) {
        char *big = malloc((size_t)n + 1);
        if (big) {
            va_start(ap, fmt);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = big;
        }
    }
    sink(sink_ud, l, n < 0 ? fmt : msg);
    if (msg != small) free(msg);
}
