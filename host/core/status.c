// Status names and descriptions (from DCL_STATUS_MAP) and the per-thread last-error message.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"

static _Thread_local char last_error[2048];

const char *dcl_status_name(dcl_status s) {
    switch (s) {
#define DCL_STATUS_NAME(name, value, text)                                                         \
    case DCL_##name: return "DCL_" #name;
        DCL_STATUS_MAP(DCL_STATUS_NAME)
#undef DCL_STATUS_NAME
    }
    return "DCL_UNKNOWN";
}

const char *dcl_status_str(dcl_status s) {
    switch (s) {
#define DCL_STATUS_TEXT(name, value, text)                                                         \
    case DCL_##name: return text;
        DCL_STATUS_MAP(DCL_STATUS_TEXT)
#undef DCL_STATUS_TEXT
    }
    return "unknown status";
}

const char *dcl_last_error(void) { return last_error; }

void dcl_clear_error(void) { last_error[0] = '\0'; }

dcl_status dcl__fail(dcl_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

dcl_status dcl__fail_context(dcl_status s, const char *fmt, ...) {
    char old[sizeof last_error];
    memcpy(old, last_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    // Appends ": old", cut to fit (by hand: gcc's -Wformat-truncation flags a snprintf here).
    size_t at = k >= 0 ? (size_t)k : sizeof last_error;
    if (old[0] && at + 2 < sizeof last_error) {
        size_t n = strlen(old), room = sizeof last_error - 1 - (at + 2);
        memcpy(last_error + at, ": ", 2);
        memcpy(last_error + at + 2, old, n < room ? n : room);
        last_error[at + 2 + (n < room ? n : room)] = '\0';
    }
    return s;
}

int dcl_status_is_device_failure(dcl_status s) {
    return s == DCL_ERR_OPENCL || s == DCL_ERR_BUILD || s == DCL_ERR_DEVICE_MEM ||
           s == DCL_ERR_BLAS;
}
