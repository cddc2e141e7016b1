// The OpenCL backend's error reporting: OpenCL error names and the failure record of one call. A
// leaf: the backend's files and cl_fault.c include it, and it calls no OpenCL function.
#ifndef DIFFCL_CL_ERROR_H
#define DIFFCL_CL_ERROR_H

#include <CL/cl.h>

#include "diffcl/status.h"

struct dcl_cl_ctx;

// "CL_OUT_OF_RESOURCES"; "unknown OpenCL error" for a code it does not know.
const char *dcl__cl_error_name(cl_int err);

// Records "OpenCL error NAME (code) in WHAT on DEVICE (NAME) [file:line]" as the last error and
// returns the matching status (DCL_ERR_DEVICE_MEM for allocation failures, else DCL_ERR_OPENCL).
// ctx may be NULL.
dcl_status dcl__cl_fail(struct dcl_cl_ctx *ctx, cl_int err, const char *what, const char *file,
                        int line);

// Returns the failure from a function when an OpenCL call fails.
#define CL_TRY(ctx, call, what)                                                                    \
    do {                                                                                           \
        cl_int err_ = (call);                                                                      \
        if (err_ != CL_SUCCESS) return dcl__cl_fail((ctx), err_, (what), __FILE__, __LINE__);      \
    } while (0)

#endif
