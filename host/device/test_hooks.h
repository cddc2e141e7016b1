// The device layer's test hooks, declared once here and used only by tests/ (and defined where
// their comment says, which includes this header so the compiler checks both sides).
#ifndef DIFFCL_TEST_HOOKS_H
#define DIFFCL_TEST_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/device.h"

#ifdef DIFFCL_HAVE_OPENCL
// opencl/cl_ops.c: forces the launch shape of the backend's own 1-D kernels (local 0 = default;
// max_groups 0 = as many as needed). Kernels must give identical results under any shape. No-op
// on a device that is not OpenCL.
void dcl__cl_set_launch(dcl_device *dev, size_t local, size_t max_groups);

// opencl/cl_cache.c: programs loaded from the on-disk cache (hits) and cache lookups that found no
// valid entry (misses) since dev was opened; both 0 for a device that is not OpenCL or with the
// cache off.
void dcl__cl_cache_stats(const dcl_device *dev, unsigned *hits, unsigned *misses);

// opencl/cl_program.c: the OpenCL kernel object (a cl_kernel) of kernel `name` of cl/<file> on dev,
// created on first use as ops create theirs.
dcl_status dcl__cl_kernel_handle(dcl_device *dev, const char *file, const char *name,
                                 void **kernel);

// opencl/cl_tune_file.c: what the tuning file applied when dev opened, as "wg_size=W own_gemm=G"
// then " KERNEL:V1,V2,..." per CLBlast kernel overridden (values in CLBlast's parameter order); "" when
// no tuning file was applied or dev is not OpenCL.
void dcl__cl_tune_applied(const dcl_device *dev, char *buf, size_t size);

#ifdef DIFFCL_FAULT_INJECTION
// opencl/cl_fault.c (fault injection, see opencl/cl_fault.h). code is a cl_int (int32_t).
// The k-th OpenCL call from now fails with code (k = 0 disarms); returns the calls made so far.
long dcl__cl_fault_arm(long k, int32_t code);
// OpenCL calls made so far.
long dcl__cl_fault_calls(void);
// 1 when the armed fault has fired (and the wrapper is disarmed again).
int dcl__cl_fault_fired(void);
// OpenCL objects the backend created and has not released (contexts, queues, buffers, programs,
// kernels, events); when desc is not NULL it receives the counts by kind.
long dcl__cl_live_objects(char *desc, size_t size);
#endif
#endif

#endif
