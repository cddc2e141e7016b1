// Logging to stderr with a level set by dcl_log_set_level or the DIFFCL_LOG environment variable.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "diffcl/log.h"

#define UNSET (-2) // not read from the environment yet

static int level = UNSET;

int dcl_log_get_level(void) {
    if (level == UNSET) {
        const char *env = getenv("DIFFCL_LOG");
        level = env && *env ? atoi(env) : DCL_LOG_INFO;
    }
    return level;
}

void dcl_log_set_level(int l) { level = l < DCL_LOG_SILENT ? DCL_LOG_SILENT : l; }

void dcl_log(int l, const char *fmt, ...) {
    if (l > dcl_log_get_level()) return;
    va_list ap;
    va_start(ap, fmt);
    fputs(l == DCL_LOG_ERROR ? "diffcl: error: " : "diffcl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
