// Internal helpers for failing with a message the user can act on.
#ifndef DIFFCL_ERROR_H
#define DIFFCL_ERROR_H

#include <stdio.h>
#include <stdlib.h>

#include "diffcl/status.h"

// Records a printf-style message as this thread's last error and returns s, so a failure reads
// `return dcl__fail(DCL_ERR_ARG, "--steps must be positive, got %d", steps);`.
dcl_status dcl__fail(dcl_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// Prepends context to the last error message ("loading x.safetensors: <old message>").
dcl_status dcl__fail_context(dcl_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// For programmer errors only (never for bad input): prints file:line and aborts.
#define DCL_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
