// Fault injection for tests (built with -DDIFFCL_FAULT_INJECTION=ON, the default outside Release
// builds): every OpenCL call the backend makes, and CLBlastSgemm, goes through a wrapper that
// counts it, can make one chosen call fail, and counts the OpenCL objects alive.
//
//   DIFFCL_CL_FAULT=K[:CODE]   the K-th call (1-based, counted from the first OpenCL call of the
//                              process) fails with CODE: a name such as CL_OUT_OF_RESOURCES or a
//                              number; default CL_OUT_OF_RESOURCES. A failing clGetEventInfo of
//                              CL_EVENT_COMMAND_EXECUTION_STATUS succeeds and reports CODE as the
//                              event's status, as drivers report a kernel that died.
//
// This header replaces the OpenCL names with the wrappers' by macros, so it is included by
// cl_impl.h (after CL/cl.h) and the backend's code reads as plain OpenCL. cl_fault.c, which calls
// the real functions, does not include it.
#ifndef DIFFCL_CL_FAULT_H
#define DIFFCL_CL_FAULT_H

#include <CL/cl.h>
#include <clblast_c.h>
#include <stddef.h>

// The hooks tests use (dcl__cl_fault_arm, ...) are declared in device/test_hooks.h.

cl_context dcl__fi_clCreateContext(const cl_context_properties *, cl_uint, const cl_device_id *,
                                   void(CL_CALLBACK *)(const char *, const void *, size_t, void *),
                                   void *, cl_int *);
cl_int dcl__fi_clReleaseContext(cl_context);
cl_command_queue dcl__fi_clCreateCommandQueue(cl_context, cl_device_id, cl_command_queue_properties,
                                              cl_int *);
cl_int dcl__fi_clReleaseCommandQueue(cl_command_queue);
cl_mem dcl__fi_clCreateBuffer(cl_context, cl_mem_flags, size_t, void *, cl_int *);
cl_int dcl__fi_clReleaseMemObject(cl_mem);
cl_program dcl__fi_clCreateProgramWithSource(cl_context, cl_uint, const char **, const size_t *,
                                             cl_int *);
cl_program dcl__fi_clCreateProgramWithBinary(cl_context, cl_uint, const cl_device_id *,
                                             const size_t *, const unsigned char **, cl_int *,
                                             cl_int *);
cl_int dcl__fi_clBuildProgram(cl_program, cl_uint, const cl_device_id *, const char *,
                              void(CL_CALLBACK *)(cl_program, void *), void *);
cl_int dcl__fi_clGetProgramInfo(cl_program, cl_program_info, size_t, void *, size_t *);
cl_int dcl__fi_clGetProgramBuildInfo(cl_program, cl_device_id, cl_program_build_info, size_t,
                                     void *, size_t *);
cl_int dcl__fi_clReleaseProgram(cl_program);
cl_kernel dcl__fi_clCreateKernel(cl_program, const char *, cl_int *);
cl_int dcl__fi_clGetKernelWorkGroupInfo(cl_kernel, cl_device_id, cl_kernel_work_group_info, size_t,
                                        void *, size_t *);
cl_int dcl__fi_clReleaseKernel(cl_kernel);
cl_int dcl__fi_clSetKernelArg(cl_kernel, cl_uint, size_t, const void *);
cl_int dcl__fi_clEnqueueNDRangeKernel(cl_command_queue, cl_kernel, cl_uint, const size_t *,
                                      const size_t *, const size_t *, cl_uint, const cl_event *,
                                      cl_event *);
cl_int dcl__fi_clEnqueueReadBuffer(cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *,
                                   cl_uint, const cl_event *, cl_event *);
cl_int dcl__fi_clEnqueueWriteBuffer(cl_command_queue, cl_mem, cl_bool, size_t, size_t, const void *,
                                    cl_uint, const cl_event *, cl_event *);
cl_int dcl__fi_clFinish(cl_command_queue);
cl_int dcl__fi_clEnqueueMarkerWithWaitList(cl_command_queue, cl_uint, const cl_event *, cl_event *);
cl_int dcl__fi_clWaitForEvents(cl_uint, const cl_event *);
cl_int dcl__fi_clGetEventInfo(cl_event, cl_event_info, size_t, void *, size_t *);
cl_int dcl__fi_clReleaseEvent(cl_event);
CLBlastStatusCode dcl__fi_CLBlastSgemm(const CLBlastLayout, const CLBlastTranspose,
                                       const CLBlastTranspose, const size_t, const size_t,
                                       const size_t, const float, const cl_mem, const size_t,
                                       const size_t, const cl_mem, const size_t, const size_t,
                                       const float, cl_mem, const size_t, const size_t,
                                       cl_command_queue *, cl_event *);

#define clCreateContext dcl__fi_clCreateContext
#define clReleaseContext dcl__fi_clReleaseContext
#define clCreateCommandQueue dcl__fi_clCreateCommandQueue
#define clReleaseCommandQueue dcl__fi_clReleaseCommandQueue
#define clCreateBuffer dcl__fi_clCreateBuffer
#define clReleaseMemObject dcl__fi_clReleaseMemObject
#define clCreateProgramWithSource dcl__fi_clCreateProgramWithSource
#define clCreateProgramWithBinary dcl__fi_clCreateProgramWithBinary
#define clBuildProgram dcl__fi_clBuildProgram
#define clGetProgramInfo dcl__fi_clGetProgramInfo
#define clGetProgramBuildInfo dcl__fi_clGetProgramBuildInfo
#define clReleaseProgram dcl__fi_clReleaseProgram
#define clCreateKernel dcl__fi_clCreateKernel
#define clGetKernelWorkGroupInfo dcl__fi_clGetKernelWorkGroupInfo
#define clReleaseKernel dcl__fi_clReleaseKernel
#define clSetKernelArg dcl__fi_clSetKernelArg
#define clEnqueueNDRangeKernel dcl__fi_clEnqueueNDRangeKernel
#define clEnqueueReadBuffer dcl__fi_clEnqueueReadBuffer
#define clEnqueueWriteBuffer dcl__fi_clEnqueueWriteBuffer
#define clFinish dcl__fi_clFinish
#define clEnqueueMarkerWithWaitList dcl__fi_clEnqueueMarkerWithWaitList
#define clWaitForEvents dcl__fi_clWaitForEvents
#define clGetEventInfo dcl__fi_clGetEventInfo
#define clReleaseEvent dcl__fi_clReleaseEvent
#define CLBlastSgemm dcl__fi_CLBlastSgemm

#endif
