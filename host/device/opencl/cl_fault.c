// The fault-injection wrappers of cl_fault.h: each counts the call, fails it when it is the armed
// one, and otherwise calls the real function; creators and releasers keep the live-object counts.
// The backend makes its OpenCL calls from one thread, so plain counters suffice.
#ifdef DIFFCL_FAULT_INJECTION

#include <CL/cl.h>
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device/opencl/cl_error.h" // dcl__cl_error_name
#include "device/test_hooks.h"      // dcl__cl_fault_arm, ...: the hooks defined here
#include "diffcl/log.h"

enum { CONTEXT, QUEUE, MEM, PROGRAM, KERNEL, EVENT, KINDS };
static const char *const kind_names[KINDS] = {"contexts", "queues",  "buffers",
                                              "programs", "kernels", "events"};

static long calls, armed_at; // armed_at: the call number that fails (0: none)
static cl_int armed_code;
static int fired, env_read;
static long live[KINDS];

// Error names accepted in DIFFCL_CL_FAULT besides plain numbers.
static cl_int code_from_name(const char *s) {
    static const cl_int codes[] = {
        CL_OUT_OF_RESOURCES,      CL_MEM_OBJECT_ALLOCATION_FAILURE,
        CL_OUT_OF_HOST_MEMORY,    CL_INVALID_COMMAND_QUEUE,
        CL_BUILD_PROGRAM_FAILURE, CL_INVALID_CONTEXT,
        CL_INVALID_MEM_OBJECT,    CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (strcmp(s, dcl__cl_error_name(codes[i])) == 0) return codes[i];
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v < 0 && v > -10000 ? (cl_int)v : CL_SUCCESS;
}

static void read_env(void) {
    env_read = 1;
    const char *env = getenv("DIFFCL_CL_FAULT");
    if (!env || !*env) return;
    char *end;
    long k = strtol(env, &end, 10);
    cl_int code = *end == ':' ? code_from_name(end + 1) : *end ? CL_SUCCESS : CL_OUT_OF_RESOURCES;
    if (k < 1 || code == CL_SUCCESS) {
        dcl_log(DCL_LOG_ERROR, "DIFFCL_CL_FAULT='%s' is not K or K:CODE (ignored)", env);
        return;
    }
    armed_at = k, armed_code = code;
}

// Counts a call; returns the error to inject, or CL_SUCCESS to make the real call.
static cl_int next(const char *fn) {
    if (!env_read) read_env();
    if (++calls != armed_at) return CL_SUCCESS;
    armed_at = 0, fired = 1;
    dcl_log(DCL_LOG_INFO, "DIFFCL_CL_FAULT: OpenCL call %ld (%s) fails with %s (injected)", calls,
            fn, dcl__cl_error_name(armed_code));
    return armed_code;
}

long dcl__cl_fault_arm(long k, cl_int code) {
    if (!env_read) read_env();
    armed_at = k > 0 ? calls + k : 0, armed_code = code, fired = 0;
    return calls;
}

long dcl__cl_fault_calls(void) { return calls; }
int dcl__cl_fault_fired(void) { return fired; }

long dcl__cl_live_objects(char *desc, size_t size) {
    long total = 0;
    size_t n = 0;
    for (int i = 0; i < KINDS; i++) {
        total += live[i];
        if (desc && n < size)
            n += (size_t)snprintf(desc + n, size - n, "%s%ld %s", i ? ", " : "", live[i],
                                  kind_names[i]);
    }
    return total;
}

// A creator: fails with the injected code, or calls the real one and counts what it made.
#define CREATE(kind, call)                                                                         \
    do {                                                                                           \
        cl_int inj_ = next(__func__ + 8);                                                          \
        if (inj_ != CL_SUCCESS) {                                                                  \
            if (err) *err = inj_;                                                                  \
            return NULL;                                                                           \
        }                                                                                          \
        __typeof__(call) obj_ = (call);                                                            \
        if (obj_) live[kind]++;                                                                    \
        return obj_;                                                                               \
    } while (0)

// A releaser never fails (a real driver's release succeeds on a dying context too).
#define RELEASE(kind, call)                                                                        \
    do {                                                                                           \
        cl_int r_ = (call);                                                                        \
        if (r_ == CL_SUCCESS) live[kind]--;                                                        \
        return r_;                                                                                 \
    } while (0)

// Any other call: fails with the injected code, or is made.
#define PASS(call)                                                                                 \
    do {                                                                                           \
        cl_int inj_ = next(__func__ + 8);                                                          \
        return inj_ != CL_SUCCESS ? inj_ : (call);                                                 \
    } while (0)

cl_context dcl__fi_clCreateContext(const cl_context_properties *p, cl_uint n, const cl_device_id *d,
                                   void(CL_CALLBACK *fn)(const char *, const void *, size_t,
                                                         void *),
                                   void *user, cl_int *err) {
    CREATE(CONTEXT, clCreateContext(p, n, d, fn, user, err));
}
cl_int dcl__fi_clReleaseContext(cl_context c) { RELEASE(CONTEXT, clReleaseContext(c)); }

cl_command_queue dcl__fi_clCreateCommandQueue(cl_context c, cl_device_id d,
                                              cl_command_queue_properties p, cl_int *err) {
    CREATE(QUEUE, clCreateCommandQueue(c, d, p, err));
}
cl_int dcl__fi_clReleaseCommandQueue(cl_command_queue q) {
    RELEASE(QUEUE, clReleaseCommandQueue(q));
}

cl_mem dcl__fi_clCreateBuffer(cl_context c, cl_mem_flags f, size_t n, void *host, cl_int *err) {
    CREATE(MEM, clCreateBuffer(c, f, n, host, err));
}
cl_int dcl__fi_clReleaseMemObject(cl_mem m) { RELEASE(MEM, clReleaseMemObject(m)); }

cl_program dcl__fi_clCreateProgramWithSource(cl_context c, cl_uint n, const char **s,
                                             const size_t *len, cl_int *err) {
    CREATE(PROGRAM, clCreateProgramWithSource(c, n, s, len, err));
}
cl_program dcl__fi_clCreateProgramWithBinary(cl_context c, cl_uint n, const cl_device_id *d,
                                             const size_t *len, const unsigned char **bin,
                                             cl_int *status, cl_int *err) {
    CREATE(PROGRAM, clCreateProgramWithBinary(c, n, d, len, bin, status, err));
}
cl_int dcl__fi_clBuildProgram(cl_program p, cl_uint n, const cl_device_id *d, const char *opt,
                              void(CL_CALLBACK *fn)(cl_program, void *), void *user) {
    PASS(clBuildProgram(p, n, d, opt, fn, user));
}
cl_int dcl__fi_clGetProgramInfo(cl_program p, cl_program_info w, size_t n, void *v, size_t *r) {
    PASS(clGetProgramInfo(p, w, n, v, r));
}
cl_int dcl__fi_clGetProgramBuildInfo(cl_program p, cl_device_id d, cl_program_build_info w,
                                     size_t n, void *v, size_t *r) {
    PASS(clGetProgramBuildInfo(p, d, w, n, v, r));
}
cl_int dcl__fi_clReleaseProgram(cl_program p) { RELEASE(PROGRAM, clReleaseProgram(p)); }

cl_kernel dcl__fi_clCreateKernel(cl_program p, const char *name, cl_int *err) {
    CREATE(KERNEL, clCreateKernel(p, name, err));
}
cl_int dcl__fi_clGetKernelWorkGroupInfo(cl_kernel k, cl_device_id d, cl_kernel_work_group_info w,
                                        size_t n, void *v, size_t *r) {
    PASS(clGetKernelWorkGroupInfo(k, d, w, n, v, r));
}
cl_int dcl__fi_clReleaseKernel(cl_kernel k) { RELEASE(KERNEL, clReleaseKernel(k)); }
cl_int dcl__fi_clSetKernelArg(cl_kernel k, cl_uint i, size_t n, const void *v) {
    PASS(clSetKernelArg(k, i, n, v));
}

cl_int dcl__fi_clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dim,
                                      const size_t *off, const size_t *global, const size_t *local,
                                      cl_uint nw, const cl_event *wait, cl_event *ev) {
    cl_int inj = next("clEnqueueNDRangeKernel");
    if (inj != CL_SUCCESS) return inj;
    cl_int r = clEnqueueNDRangeKernel(q, k, dim, off, global, local, nw, wait, ev);
    if (r == CL_SUCCESS && ev) live[EVENT]++;
    return r;
}
cl_int dcl__fi_clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool block, size_t off,
                                   size_t n, void *dst, cl_uint nw, const cl_event *wait,
                                   cl_event *ev) {
    PASS(clEnqueueReadBuffer(q, m, block, off, n, dst, nw, wait, ev)); // ev is always NULL
}
cl_int dcl__fi_clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool block, size_t off,
                                    size_t n, const void *src, cl_uint nw, const cl_event *wait,
                                    cl_event *ev) {
    PASS(clEnqueueWriteBuffer(q, m, block, off, n, src, nw, wait, ev)); // ev is always NULL
}
cl_int dcl__fi_clFinish(cl_command_queue q) { PASS(clFinish(q)); }
cl_int dcl__fi_clEnqueueMarkerWithWaitList(cl_command_queue q, cl_uint nw, const cl_event *wait,
                                           cl_event *ev) {
    cl_int inj = next("clEnqueueMarkerWithWaitList");
    if (inj != CL_SUCCESS) return inj;
    cl_int r = clEnqueueMarkerWithWaitList(q, nw, wait, ev);
    if (r == CL_SUCCESS && ev) live[EVENT]++;
    return r;
}
cl_int dcl__fi_clWaitForEvents(cl_uint n, const cl_event *ev) { PASS(clWaitForEvents(n, ev)); }

cl_int dcl__fi_clGetEventInfo(cl_event e, cl_event_info w, size_t n, void *v, size_t *r) {
    cl_int inj = next("clGetEventInfo");
    if (inj == CL_SUCCESS) return clGetEventInfo(e, w, n, v, r);
    if (w != CL_EVENT_COMMAND_EXECUTION_STATUS || n < sizeof(cl_int)) return inj;
    *(cl_int *)v = inj; // the command "terminated abnormally" with this status
    if (r) *r = sizeof(cl_int);
    return CL_SUCCESS;
}
cl_int dcl__fi_clReleaseEvent(cl_event e) { RELEASE(EVENT, clReleaseEvent(e)); }

CLBlastStatusCode dcl__fi_CLBlastSgemm(const CLBlastLayout layout, const CLBlastTranspose ta,
                                       const CLBlastTranspose tb, const size_t m, const size_t n,
                                       const size_t k, const float alpha, const cl_mem a,
                                       const size_t a_off, const size_t lda, const cl_mem b,
                                       const size_t b_off, const size_t ldb, const float beta,
                                       cl_mem c, const size_t c_off, const size_t ldc,
                                       cl_command_queue *queue, cl_event *ev) {
    cl_int inj = next("CLBlastSgemm");
    if (inj != CL_SUCCESS) return (CLBlastStatusCode)inj; // CLBlast passes OpenCL codes through
    return CLBlastSgemm(layout, ta, tb, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c,
                        c_off, ldc, queue, ev);
}

#else
typedef int dcl__cl_fault_unused; // ISO C wants a translation unit to declare something
#endif
