// Compute devices (the CPU reference or an OpenCL device), device buffers and device selection.
//
// Selection syntax, shared by --device and the DIFFCL_DEVICE environment variable:
//   auto            the first usable GPU or accelerator OpenCL device, else cpu; an OpenCL device
//                   of another type (a CPU, as PoCL) only when DIFFCL_AUTO=opencl or its tuning
//                   file (dcl_device_tune) measured it faster than the CPU reference
//   cpu             the plain-C reference backend (always present)
//   cl              the first usable OpenCL device
//   cl:gpu, cl:cpu, cl:accelerator   the first usable OpenCL device of that type
//   cl:P:D          platform P, device D (indices as `diffcl devices` prints them)
//   cl:NAME         the first usable OpenCL device whose device or platform name contains NAME
//                   (case-insensitive)
// A selection that matches nothing is an error listing what exists; there is no silent fallback.
#ifndef DIFFCL_DEVICE_H
#define DIFFCL_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/status.h"

// One open device: backend + context + queue. A device must not be used from two threads at once:
// its kernel objects are shared by all calls and their arguments are set per call.
typedef struct dcl_device dcl_device;
typedef struct dcl_buffer dcl_buffer; // an array of 32-bit words (float or uint32) on one device

// A device pointer: a buffer and an element offset into it (kernels take these, never
// sub-buffers). Passed by value, like a float * in llm.c.
typedef struct dcl_ptr {
    dcl_buffer *buf;
    size_t off; // in 32-bit elements
} dcl_ptr;

static inline dcl_ptr dcl_at(dcl_buffer *buf, size_t off) {
    dcl_ptr p = {buf, off};
    return p;
}
static inline dcl_ptr dcl_ptr_add(dcl_ptr p, size_t k) {
    p.off += k;
    return p;
}

typedef enum dcl_backend_kind { DCL_BACKEND_CPU = 0, DCL_BACKEND_OPENCL = 1 } dcl_backend_kind;

// What `diffcl devices` prints for one device. Strings are always NUL-terminated.
typedef struct dcl_device_info {
    dcl_backend_kind backend;
    int index;            // position in the list dcl_device_list returns
    int platform, device; // OpenCL indices (cl:P:D); -1 for cpu
    char spec[32];        // "cpu" or "cl:P:D"
    char name[128];
    char platform_name[128];
    char type[16]; // "reference", "gpu", "cpu", "accelerator", "other"
    char vendor[128];
    char driver[64];    // driver version
    char version[96];   // device OpenCL version
    char c_version[64]; // OpenCL C version
    int compute_units;
    uint64_t global_mem;  // bytes
    uint64_t max_alloc;   // bytes: largest single buffer
    uint64_t local_mem;   // bytes
    uint64_t max_wg_size; // work-items per group
    int fp64;             // cl_khr_fp64 (the CPU reference: 1)
    int usable;           // passed the capability probe
    char why_not[160];    // the probe's reason when !usable
} dcl_device_info;

// Every device: the CPU reference first, then each OpenCL device of each platform. *out is
// malloc'd; free() it. With no OpenCL (no ICD, or built with DIFFCL_OPENCL=OFF) the list is just
// the CPU reference and *n_opencl_platforms is 0 (the pointer may be NULL).
dcl_status dcl_device_list(dcl_device_info **out, int *n, int *n_opencl_platforms);

// Pure selection: index into list[0..n) that spec picks (NULL or "" means "auto"). On failure
// DCL_ERR_ARG for a malformed spec, DCL_ERR_NO_DEVICE when nothing matches; dcl_last_error() then
// lists the devices that exist.
dcl_status dcl_device_select(const dcl_device_info *list, int n, const char *spec, int *index);

// Why "auto" picks list[index] (index from dcl_device_select(list, n, "auto", ...)): one line,
// as `diffcl devices` shows it.
const char *dcl_device_auto_why(const dcl_device_info *list, int n, int index);

// Opens the device spec selects. spec NULL or "" reads DIFFCL_DEVICE, then defaults to "auto".
// Logs what it picked. An OpenCL device that fails to open (probe build, context) is an error,
// except under "auto", which logs the failure and tries the next candidate.
dcl_status dcl_device_open(dcl_device **out, const char *spec);
void dcl_device_free(dcl_device *dev);
// The device work moves to when dev fails: when dev was chosen by "auto" and is an OpenCL device,
// opens the CPU reference into *out; otherwise sets *out to NULL (an explicitly chosen device
// never falls back: its failure is an error). See dcl_train_opts.fallback.
dcl_status dcl_device_open_fallback(const dcl_device *dev, dcl_device **out);
const dcl_device_info *dcl_device_get_info(const dcl_device *dev);
// Waits until every queued operation has finished and reports any asynchronous failure.
dcl_status dcl_device_finish(dcl_device *dev);
// The CPU reference's threads, for its ops and its GEMMs: n >= 1, or 0 for the default, which is
// DIFFCL_THREADS when set, else every online core. Results are bitwise identical for any count (a
// job's chunks depend on its size only). Takes effect at the next op; call it while no CPU op runs
// on another thread. DCL_ERR_ARG for n < 0 or n > 256. dcl_cpu_threads: the count in force.
dcl_status dcl_cpu_set_threads(int n);
int dcl_cpu_threads(void);
// What a device has been asked to do since it was opened (or since dcl_device_stats_reset): plain
// counters, always on, per device. A benchmark reads them around a training step to see what a GPU
// would pay for (launch overhead, host round-trips).
typedef struct dcl_device_stats {
    uint64_t ops;      // ops dispatched to the device, including those run on the CPU fallback
    uint64_t launches; // OpenCL: each clEnqueueNDRangeKernel and each CLBlast call; the CPU
                       // reference: one per op it runs
    uint64_t writes, write_bytes; // host -> device copies (dcl_buffer_write) and their bytes
    uint64_t reads, read_bytes;   // device -> host copies (dcl_buffer_read) and their bytes
    // Blocking host waits. OpenCL: blocking reads (writes too under DIFFCL_CL_SYNC), clFinish (also
    // dcl_device_finish), clWaitForEvents; the CPU reference: always 0 (its ops run synchronously
    // on the calling thread, nothing is queued to wait for).
    uint64_t waits;
} dcl_device_stats;

// Copies dev's counters into *out.
void dcl_device_stats_get(const dcl_device *dev, dcl_device_stats *out);
// Sets dev's counters to zero.
void dcl_device_stats_reset(dcl_device *dev);

// Marks the work queued so far and waits until the work marked `lag` calls ago has finished: called
// once per step with lag 2, the host runs at most two steps ahead of the device and the queue never
// drains (lag at most 7). dcl_device_finish (lag 0 is that) and dcl_device_free release the marks.
dcl_status dcl_device_finish_behind(dcl_device *dev, int lag);
// Builds every kernel program of dev now (from the on-disk program cache, or from source) instead
// of on each op's first use, which still works without this call. *compiled (may be NULL)
// receives how many programs were compiled from source since dev was opened; with an empty cache
// that is all of them, and the compile is logged at DCL_LOG_INFO with its duration. The CPU
// reference: DCL_OK and 0.
dcl_status dcl_device_prepare(dcl_device *dev, int *compiled);

// Tuning (`diffcl tune`): searches CLBlast's GEMM parameters (kernels Xgemm and XgemmDirect, and
// the size where CLBlast switches between them) for the GEMM shapes of the spiral MLP and the
// U-Net plus a square GEMM, and the work-group size of diffcl's own kernels (DCL_WG_SIZE), then
// writes them to a tuning file in the program cache folder, keyed by the device's name, vendor,
// driver and platform and by CLBlast's version. Every later open of that device applies the file
// (DIFFCL_CL_TUNE=off does not). Tuning changes speed, never what a GEMM computes beyond rounding.
typedef struct dcl_tune_opts {
    int quick;          // the starting points only (CLBlast's defaults and two CPU-friendly sets)
    int max_candidates; // at most this many candidates per kernel (0: the whole search; tests: 2)
    size_t scale;       // the model shapes' batch divided by this (0 or 1: the models' own; tests)
    size_t square;      // n of the square GEMM (0: 1024)
    // Seconds of one training step of a model on a device, or NULL. When set, faster_than_cpu
    // compares it on the tuned device (its GEMM choices in place) and on the CPU reference, instead
    // of the model GEMMs alone (`diffcl tune` times the default U-Net's step).
    dcl_status (*step_time)(dcl_device *dev, void *arg, double *seconds);
    void *step_arg;
} dcl_tune_opts;
typedef struct dcl_tune_result {
    size_t square;                                    // n of the square GEMM
    double square_gflops_before, square_gflops_after; // its rate before and after
    double model_ms_before, model_ms_after; // the model GEMMs of one training step, weighted
    double cpu_model_ms;                    // the same on the CPU reference (0 if not measured)
    double step_ms, cpu_step_ms;            // opts.step_time on each (0 if not measured)
    // `auto` may pick it: step_ms < cpu_step_ms with opts.step_time, else model_ms_after <
    // cpu_model_ms
    int faster_than_cpu;
    size_t wg_size;           // the DCL_WG_SIZE chosen
    int clblast_overridden;   // the file sets CLBlast's parameters (0: its own were as fast)
    unsigned own_gemm;        // GEMM cases cl/gemm.cl runs, not CLBlast: 1 NN, 2 NT, 4 TN (or'd)
    int candidates, rejected; // CLBlast parameter sets timed, and those it refused
    char path[1100];          // the tuning file written
} dcl_tune_result;
// Tunes the OpenCL device dev (minutes on a CPU device) and writes its tuning file. The CLBlast
// parameters take effect in this process at once; DCL_WG_SIZE at the device's next open.
// DCL_ERR_UNSUPPORTED for the CPU reference; DCL_ERR_IO when the file cannot be written.
dcl_status dcl_device_tune(dcl_device *dev, const dcl_tune_opts *opts, dcl_tune_result *result);

// A buffer of n 32-bit elements; name appears in error messages ("mlp.fc1.weight"). Sizes beyond
// the device's CL_DEVICE_MAX_MEM_ALLOC_SIZE fail before allocation with both sizes named.
dcl_status dcl_buffer_alloc(dcl_buffer **out, dcl_device *dev, size_t n, const char *name);
void dcl_buffer_free(dcl_buffer *buf);
size_t dcl_buffer_size(const dcl_buffer *buf); // in elements
const char *dcl_buffer_name(const dcl_buffer *buf);
dcl_device *dcl_buffer_device(const dcl_buffer *buf);
// Host <-> device copies of n elements (4 bytes each) at element offset off. src and dst may be
// reused when the call returns. A read waits for the device; a write on an OpenCL device is queued
// from a copy (its failure may then be reported by a later call, as a kernel's is) unless
// DIFFCL_CL_SYNC is set.
dcl_status dcl_buffer_write(dcl_buffer *buf, size_t off, size_t n, const void *src);
dcl_status dcl_buffer_read(const dcl_buffer *buf, size_t off, size_t n, void *dst);

#endif
