// Status codes returned by every public diffcl function, and the message of the last failure.
#ifndef DIFFCL_STATUS_H
#define DIFFCL_STATUS_H

// One table gives the enum, its names and its descriptions (libuv's UV_ERRNO_MAP pattern).
// X(NAME, value, description). DCL_OK is 0; every error is negative.
#define DCL_STATUS_MAP(X)                                                                          \
    X(OK, 0, "success")                                                                            \
    X(ERR_ARG, -1, "invalid argument")                                                             \
    X(ERR_NOMEM, -2, "out of host memory")                                                         \
    X(ERR_NO_DEVICE, -3, "no device matches the selection")                                        \
    X(ERR_DEVICE_MEM, -4, "device memory allocation failed or is too large")                       \
    X(ERR_BUILD, -5, "OpenCL program build failed")                                                \
    X(ERR_OPENCL, -6, "OpenCL call failed")                                                        \
    X(ERR_BLAS, -7, "BLAS call failed")                                                            \
    X(ERR_IO, -8, "file or stream I/O failed")                                                     \
    X(ERR_FORMAT, -9, "malformed input")                                                           \
    X(ERR_UNSUPPORTED, -10, "not supported")                                                       \
    X(ERR_NO_OPENCL, -11, "no OpenCL platform is available")                                       \
    X(ERR_MISMATCH, -12, "a device's results disagree with the CPU reference")                     \
    X(ERR_CANCELLED, -13, "stopped at the caller's request")                                       \
    X(ERR_DIVERGED, -14, "training diverged: too many non-finite steps in a row")

typedef enum dcl_status {
#define DCL_STATUS_ENUM(name, value, text) DCL_##name = value,
    DCL_STATUS_MAP(DCL_STATUS_ENUM)
#undef DCL_STATUS_ENUM
} dcl_status;

// "DCL_ERR_ARG: invalid argument" style name of a status; never NULL.
const char *dcl_status_name(dcl_status s);
// One-line description of a status; never NULL.
const char *dcl_status_str(dcl_status s);
// 1 for a failure of the device itself (DCL_ERR_OPENCL, DCL_ERR_BUILD, DCL_ERR_DEVICE_MEM,
// DCL_ERR_BLAS), after which its results cannot be trusted; 0 otherwise.
int dcl_status_is_device_failure(dcl_status s);
// Detailed message of the last failure on this thread (what failed and what to fix), or "" if none.
const char *dcl_last_error(void);
// Forget the last failure message on this thread.
void dcl_clear_error(void);

#endif
