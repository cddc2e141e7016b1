// Reproducer for an Oclgrind 21.10 (Debian 12) false positive that diffcl runs into: data written
// with clEnqueueWriteBuffer at a non-zero byte offset is reported as uninitialised when a kernel
// copies it, although the values arrive intact. diffcl writes at offsets when it loads a
// checkpoint (one write per tensor view), uploads the U-Net's class embedding, runs an op on the
// CPU reference (DIFFCL_CPU_OPS) and in `diffcl check` (every tensor at an offset).
//
//   cc tools/oclgrind_offset_write.c -o /tmp/ow -lOpenCL
//   oclgrind --uninitialized /tmp/ow      # offset 0: clean
//   oclgrind --uninitialized /tmp/ow x    # offset 64 bytes: 16 "Uninitialized value" reports,
//                                         # and still "r[5] = 5 (want 5)"
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>

int main(int argc, char **argv) {
    size_t off = argc > 1 ? 64 : 0; // bytes
    cl_platform_id p;
    cl_device_id d;
    cl_int e;
    if (clGetPlatformIDs(1, &p, NULL) || clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL)) {
        fprintf(stderr, "no OpenCL device\n");
        return 1;
    }
    cl_context c = clCreateContext(NULL, 1, &d, NULL, NULL, &e);
    cl_command_queue q = clCreateCommandQueue(c, d, 0, &e);
    const char *src = "kernel void cp(global float *o, global const float *i, uint off) {\n"
                      "    size_t g = get_global_id(0);\n"
                      "    o[g] = i[off + g];\n"
                      "}\n";
    cl_program pr = clCreateProgramWithSource(c, 1, &src, NULL, &e);
    clBuildProgram(pr, 1, &d, NULL, NULL, NULL);
    cl_kernel k = clCreateKernel(pr, "cp", &e);
    cl_mem in = clCreateBuffer(c, CL_MEM_READ_WRITE, 64 * 4, NULL, &e);
    cl_mem out = clCreateBuffer(c, CL_MEM_READ_WRITE, 16 * 4, NULL, &e);
    float h[16], r[16];
    for (int i = 0; i < 16; i++) h[i] = (float)i;
    clEnqueueWriteBuffer(q, in, CL_TRUE, off, sizeof h, h, 0, NULL, NULL);
    cl_uint eo = (cl_uint)(off / 4);
    clSetKernelArg(k, 0, sizeof out, &out);
    clSetKernelArg(k, 1, sizeof in, &in);
    clSetKernelArg(k, 2, sizeof eo, &eo);
    size_t g = 16;
    clEnqueueNDRangeKernel(q, k, 1, NULL, &g, NULL, 0, NULL, NULL);
    clEnqueueReadBuffer(q, out, CL_TRUE, 0, sizeof r, r, 0, NULL, NULL);
    printf("write at byte offset %zu: r[5] = %g (want 5)\n", off, r[5]);
    clReleaseMemObject(in), clReleaseMemObject(out), clReleaseKernel(k), clReleaseProgram(pr);
    clReleaseCommandQueue(q), clReleaseContext(c);
    return r[5] == 5.0f ? 0 : 1;
}
