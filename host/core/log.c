// Logging to stderr with a level set by dcl_log_set_level or the DIFFCL_LOG environment variable.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "diffcl/log.h"

static int level = -1; // -1: not read from the environment yet

int dcl_log_get_level(void) {
    if (level < 0) {
        const char *env = getenv("DIFFCL_LOG");
        level = env && *env ? atoi(env) : DCL_LOG_INFO;
    }
    return level;
}

void dcl_log_set_level(int l) { level = l < 0 ? 0 : l; }

void dcl_log(int l, const char *fmt, ...) {
    if (l > dcl_log_get_level()) return;
    va_list ap;
    va_start(ap, fmt);
    fputs(l == DCL_LOG_ERROR ? "diffcl: error: " : "diffcl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
