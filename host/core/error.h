// Internal helpers for failing with a message the user can act on, and for passing a failure up
// to the caller (TRY, TRY_DONE).
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

// Evaluates call, a dcl_status expression, and returns its status from the enclosing function
// when it failed: `TRY(dcl_gemm(...));`.
#define TRY(call)                                                                                  \
    do {                                                                                           \
        dcl_status s_ = (call);                                                                    \
        if (s_ != DCL_OK) return s_;                                                               \
    } while (0)

// TRY for a function that must release what it holds: stores the status in the enclosing
// function's `dcl_status s` and, on failure, jumps to its cleanup label `done`.
#define TRY_DONE(call)                                                                             \
    do {                                                                                           \
        s = (call);                                                                                \
        if (s != DCL_OK) goto done;                                                                \
    } while (0)

// For programmer errors only (never for bad input): prints file:line and aborts.
#define DCL_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
