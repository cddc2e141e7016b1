// Internal to the OpenCL backend's tuning: CLBlast's GEMM kernels and their parameters, a tuning
// as the file keeps it, and the pieces the search (cl_tune.c) shares with the file and its
// application at open (cl_tune_file.c).
#ifndef DIFFCL_CL_TUNE_H
#define DIFFCL_CL_TUNE_H

#include <stddef.h>

#include "device/opencl/cl_impl.h"

enum { K_XGEMM, K_DIRECT, K_ROUTINE, K_COUNT };
#define MAX_PARAMS 16
struct tune_kernel {
    const char *name;
    int n;
    const char *params[MAX_PARAMS];
    size_t defaults[MAX_PARAMS]; // the database's "default" entry: the search starts there
};
// In the order of CLBlast's database (src/database/kernels/ of https://github.com/CNugteren/CLBlast);
// CLBlastOverrideParameters needs every parameter of a kernel.
extern const struct tune_kernel dcl__tune_kernels[K_COUNT];

struct tuning {
    size_t wg_size;      // 0: not tuned
    int faster_than_cpu; // ran faster than the CPU reference (dcl_tune_result.faster_than_cpu)
    unsigned own_gemm;   // GEMM cases cl/gemm.cl runs (struct dcl_cl_ctx's own_gemm)
    int has[K_COUNT];
    size_t v[K_COUNT][MAX_PARAMS];
};

// Writes t as d's tuning file (atomically); path receives its name.
dcl_status dcl__tuning_store(const dcl_device_info *d, const struct tuning *t, char *path,
                             size_t size);
// Hands CLBlast kernel k's parameters v for ctx's device; 0 when CLBlast refuses them.
int dcl__tune_override(struct dcl_cl_ctx *ctx, int k, const size_t *v);

#endif
