// Internal device layer: the op table, the packed arguments of one op, and the backend interface
// that each backend fills as a static const table (ggml's pattern). Only host/ includes this.
#ifndef DIFFCL_BACKEND_H
#define DIFFCL_BACKEND_H

#include <stdint.h>

#include "diffcl/device.h"
#include "diffcl/ops.h"

// X(NAME, name): every op. Adding an op = a row here, a wrapper in ops.c, a CPU entry, an
// OpenCL entry (or NULL: falls back to the CPU), and a row in the op-case table (host/check/).
#define DCL_OP_MAP(X)                                                                              \
    X(FILL, fill)                                                                                  \
    X(COPY, copy)                                                                                  \
    X(AXPBY, axpby)                                                                                \
    X(LINCOMB3, lincomb3)                                                                          \
    X(GEMM, gemm)                                                                                  \
    X(BIAS_ADD, bias_add)                                                                          \
    X(BIAS_BACKWARD, bias_backward)                                                                \
    X(RELU_FORWARD, relu_forward)                                                                  \
    X(RELU_BACKWARD, relu_backward)                                                                \
    X(SILU_FORWARD, silu_forward)                                                                  \
    X(SILU_BACKWARD, silu_backward)                                                                \
    X(SUM, sum)                                                                                    \
    X(SUMSQ, sumsq)                                                                                \
    X(COUNT_NONFINITE, count_nonfinite)                                                            \
    X(CONCAT_COLS, concat_cols)                                                                    \
    X(TIME_EMBEDDING, time_embedding)                                                              \
    X(FORWARD_PROCESS, forward_process)                                                            \
    X(MSE_BACKWARD, mse_backward)                                                                  \
    X(ADAMW_STEP, adamw_step)                                                                      \
    X(RNG_BITS, rng_bits)                                                                          \
    X(RNG_UNIFORM, rng_uniform)                                                                    \
    X(RNG_NORMAL, rng_normal)                                                                      \
    X(IM2COL, im2col)                                                                              \
    X(COL2IM, col2im)                                                                              \
    X(SWAP01, swap01)                                                                              \
    X(CHANNEL_BIAS_ADD, channel_bias_add)                                                          \
    X(CHANNEL_BIAS_BACKWARD, channel_bias_backward)                                                \
    X(GROUP_NORM_FORWARD, group_norm_forward)                                                      \
    X(GROUP_NORM_BACKWARD, group_norm_backward)                                                    \
    X(UPSAMPLE2X_FORWARD, upsample2x_forward)                                                      \
    X(UPSAMPLE2X_BACKWARD, upsample2x_backward)                                                    \
    X(CONCAT_CHANNELS, concat_channels)                                                            \
    X(SPLIT_CHANNELS, split_channels)                                                              \
    X(EMBEDDING_FORWARD, embedding_forward)                                                        \
    X(EMBEDDING_BACKWARD, embedding_backward)

// clang-format off
enum dcl_op {
#define DCL_OP_ENUM(NAME, name) DCL_OP_##NAME,
    DCL_OP_MAP(DCL_OP_ENUM)
#undef DCL_OP_ENUM
    DCL_OP_COUNT
};
// clang-format on

const char *dcl__op_name(enum dcl_op op); // "gemm"
int dcl__op_from_name(const char *name);  // -1 when unknown

#define DCL_MAX_OUT 3 // adamw_step: params, m, v; group_norm_*: three each
#define DCL_MAX_IN 5  // group_norm_backward: dout, in, mean, rstd, gamma

// One op call, packed. Outputs and inputs carry the number of elements they touch, so the
// dispatcher can bounds-check them and the CPU fallback can copy exactly those ranges.
struct dcl_op_args {
    enum dcl_op op;
    int n_out, n_in;
    dcl_ptr out[DCL_MAX_OUT];
    size_t out_len[DCL_MAX_OUT];
    dcl_ptr in[DCL_MAX_IN];
    size_t in_len[DCL_MAX_IN];
    size_t n; // element count of elementwise ops and reductions
    union {
        struct {
            float value;
        } fill;
        struct {
            float a, b, c;
        } lin; // axpby (a, b) and lincomb3 (a, b, c)
        struct {
            int trans_a, trans_b;
            size_t M, N, K;
            float alpha, beta;
        } gemm;
        struct {
            size_t N, D;
        } bias;
        struct {
            size_t N, D, D2;
            float scale; // mse_backward: 2 / (N·D), from the host in double
        } rows;          // (N, D) row ops: forward_process, mse_backward, time_embedding (D = E),
                         // concat_cols (D = D1, D2)
        struct {
            // Host-side folds of the hyperparameters (double, rounded once to float):
            // decay = 1 − lr·weight_decay, step_size = lr / (1 − β1^step), bc2_sqrt = √(1 − β2^step).
            float decay, beta1, beta2, eps, step_size, bc2_sqrt, clip;
        } adamw;
        struct {
            uint64_t seed, first;
            uint32_t purpose, step;
        } rng;
        struct {
            size_t N, C, H, W;             // the image (N, C, H, W)
            size_t k, stride, pad, Ho, Wo; // im2col, col2im: the patches and the output grid
        } img;                             // im2col, col2im, upsample2x_*
        struct {
            size_t A, B, R;
        } swap;
        struct {
            size_t N, C, R;
            size_t C2;      // concat_channels, split_channels: b's channels (C is a's)
            size_t G;       // group_norm_*: groups
            int per_sample; // channel_bias_*: bias (N, C) instead of (C)
            float eps;      // group_norm_forward
        } chan;             // (N, C, R) channel ops: channel_bias_*, group_norm_*, *_channels
        struct {
            size_t N, K, E;
        } embed;
    } p;
};

// A backend. Members marked optional may be NULL; the wrapper says what that means.
struct dcl_backend_i {
    const char *name;
    // Allocates buf->n elements into buf->handle.
    dcl_status (*buffer_alloc)(void *ctx, dcl_buffer *buf);
    void (*buffer_free)(void *ctx, dcl_buffer *buf);
    dcl_status (*buffer_write)(void *ctx, dcl_buffer *buf, size_t off, size_t n, const void *src);
    dcl_status (*buffer_read)(void *ctx, const dcl_buffer *buf, size_t off, size_t n, void *dst);
    dcl_status (*finish)(void *ctx); // optional: NULL means ops complete synchronously
    void (*free)(void *ctx);
    // One entry per op; NULL means "not supported here": the dispatcher runs the CPU reference.
    dcl_status (*ops[DCL_OP_COUNT])(void *ctx, const struct dcl_op_args *a);
};

struct dcl_device {
    const struct dcl_backend_i *iface;
    void *ctx;
    dcl_device_info info;
    uint8_t force_cpu[DCL_OP_COUNT]; // from DIFFCL_CPU_OPS: run these ops on the CPU reference
    int by_auto;                     // chosen by "auto" (which may fall back to the CPU reference)
};

struct dcl_buffer {
    dcl_device *dev; // NULL for the host-wrapping buffers of the CPU fallback
    void *handle;    // float * (cpu) or cl_mem (opencl)
    size_t n;        // elements
    char name[64];
};

// The CPU reference backend's table; its ops read and write buf->handle as host memory, so they
// also run on host-wrapping buffers (dev == NULL) for the fallback and for tests.
extern const struct dcl_backend_i dcl__cpu_backend;

// Runs a packed op on dev (bounds checks, forced-CPU and unsupported-op fallback).
dcl_status dcl__op_run(dcl_device *dev, const struct dcl_op_args *a);

// Fills the reference device's info ("cpu").
void dcl__cpu_info(dcl_device_info *info);

#ifdef DIFFCL_HAVE_OPENCL
// OpenCL backend (host/device/opencl/): enumeration and opening by list entry.
dcl_status dcl__cl_list(dcl_device_info **out, int *n, int *n_platforms);
dcl_status dcl__cl_open(dcl_device *dev, const dcl_device_info *info);
// Test hook: force the launch shape of the backend's own 1-D kernels (local 0 = default;
// max_groups 0 = as many as needed). Kernels must give identical results under any shape.
void dcl__cl_set_launch(dcl_device *dev, size_t local, size_t max_groups);
#endif

#endif
