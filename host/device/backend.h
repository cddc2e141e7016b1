// Internal device layer: the op table, the packed arguments of one op, and the backend interface
// that each backend fills as a static const table (ggml's pattern). Only host/ includes this.
#ifndef DIFFCL_BACKEND_H
#define DIFFCL_BACKEND_H

#include <stdint.h>

#include "diffcl/device.h"
#include "diffcl/ops.h"

// The op table: one row per op, X(NAME, name, SIG, file, kernel, kernel2).
//   NAME, name  enum value DCL_OP_NAME; the public wrapper dcl_name (include/diffcl/ops.h), the
//               CPU function cpu_name (cpu/cpu_backend.c), the op-case rows "name..." of
//               host/crosscheck/.
//   SIG         how the op's arguments are packed and passed to its kernel:
//                 MAP1  out (n) = f(in (n)):         dcl_name(dev, out, in, n)
//                 MAP2  out (n) = f(in (n), b (n)):  dcl_name(dev, out, in, b, n)
//               For these the public wrapper (ops.c) and the OpenCL call (opencl/cl_ops.c: the
//               kernel gets each tensor as (buffer, offset) in that order, then n) are generated
//               from this row.
//                 OWN   ops.c has a hand-written wrapper dcl_name, cl_ops.c a function cl_name.
//   file        the op's kernel file in cl/ (NULL: no kernel of ours; gemm runs CLBlast).
//   kernel      its kernel; kernel2 the second kernel of two-pass ops (else NULL).
// Kernels are looked up by (file, kernel), so two files may define the same kernel name.
// Adding an op: host/README.md "Adding an op".
//
// The argument order of an op is written down in four places the compiler cannot check against
// each other: the packing in ops.c (generated for MAP1/MAP2), the unpacking in cpu/cpu_backend.c
// and opencl/cl_ops.c, and the kernel's signature in cl/. What catches a mismatch is
// tests/test_gradcheck.c (every backward op against finite differences through the public
// wrappers) together with the CPU-vs-OpenCL op-case table (tests/test_ops.c).
#define DCL_OP_MAP(X)                                                                              \
    X(FILL, fill, OWN, "elementwise.cl", "fill", NULL)                                             \
    X(COPY, copy, OWN, "elementwise.cl", "copy", NULL)                                             \
    X(AXPBY, axpby, OWN, "elementwise.cl", "axpby", NULL)                                          \
    X(LINCOMB3, lincomb3, OWN, "elementwise.cl", "lincomb3", NULL)                                 \
    X(GEMM, gemm, OWN, NULL, NULL, NULL)                                                           \
    X(BIAS_ADD, bias_add, OWN, "bias.cl", "bias_add", NULL)                                        \
    X(BIAS_BACKWARD, bias_backward, OWN, "bias.cl", "bias_backward", NULL)                         \
    X(RELU_FORWARD, relu_forward, MAP1, "activation.cl", "relu_forward", NULL)                     \
    X(RELU_BACKWARD, relu_backward, MAP2, "activation.cl", "relu_backward", NULL)                  \
    X(SILU_FORWARD, silu_forward, MAP1, "activation.cl", "silu_forward", NULL)                     \
    X(SILU_BACKWARD, silu_backward, MAP2, "activation.cl", "silu_backward", NULL)                  \
    X(SUM, sum, OWN, "reduce.cl", "reduce_sum_partial", "reduce_sum_final")                        \
    X(SUMSQ, sumsq, OWN, "reduce.cl", "reduce_sum_partial", "reduce_sum_final")                    \
    X(COUNT_NONFINITE, count_nonfinite, OWN, "reduce.cl", "count_nonfinite_partial",               \
      "count_nonfinite_final")                                                                     \
    X(CONCAT_COLS, concat_cols, OWN, "layout.cl", "concat_cols", NULL)                             \
    X(TIME_EMBEDDING, time_embedding, OWN, "embedding.cl", "time_embedding", NULL)                 \
    X(FORWARD_PROCESS, forward_process, OWN, "diffusion.cl", "forward_process", NULL)              \
    X(MSE_BACKWARD, mse_backward, OWN, "diffusion.cl", "mse_backward", NULL)                       \
    X(SOFTMAX_CROSS_ENTROPY, softmax_cross_entropy, OWN, "loss.cl", "softmax_cross_entropy", NULL) \
    X(ADAMW_STEP, adamw_step, OWN, "adam.cl", "adamw_step", NULL)                                  \
    X(RNG_BITS, rng_bits, OWN, "rng.cl", "rng_bits", NULL)                                         \
    X(RNG_UNIFORM, rng_uniform, OWN, "rng.cl", "rng_uniform", NULL)                                \
    X(RNG_NORMAL, rng_normal, OWN, "rng.cl", "rng_normal", NULL)                                   \
    X(IM2COL, im2col, OWN, "conv.cl", "im2col", NULL)                                              \
    X(COL2IM, col2im, OWN, "conv.cl", "col2im", NULL)                                              \
    X(SWAP01, swap01, OWN, "layout.cl", "swap01", NULL)                                            \
    X(CHANNEL_BIAS_ADD, channel_bias_add, OWN, "bias.cl", "channel_bias_add", NULL)                \
    X(CHANNEL_BIAS_BACKWARD, channel_bias_backward, OWN, "bias.cl", "channel_bias_backward", NULL) \
    X(GROUP_NORM_FORWARD, group_norm_forward, OWN, "group_norm.cl", "group_norm_forward", NULL)    \
    X(GROUP_NORM_BACKWARD, group_norm_backward, OWN, "group_norm.cl", "group_norm_backward_data",  \
      "group_norm_backward_params")                                                                \
    X(UPSAMPLE2X_FORWARD, upsample2x_forward, OWN, "upsample.cl", "upsample2x_forward", NULL)      \
    X(UPSAMPLE2X_BACKWARD, upsample2x_backward, OWN, "upsample.cl", "upsample2x_backward", NULL)   \
    X(CONCAT_CHANNELS, concat_channels, OWN, "layout.cl", "concat_channels", NULL)                 \
    X(SPLIT_CHANNELS, split_channels, OWN, "layout.cl", "split_channels", NULL)                    \
    X(EMBEDDING_FORWARD, embedding_forward, OWN, "embedding.cl", "embedding_forward", NULL)        \
    X(EMBEDDING_BACKWARD, embedding_backward, OWN, "embedding.cl", "embedding_backward", NULL)     \
    X(CONV_OUTPUT, conv_output, OWN, "conv.cl", "conv_output", NULL)                               \
    X(CONV2D_FORWARD, conv2d_forward, OWN, "conv.cl", "conv2d_forward", NULL)                      \
    X(CONV2D_BACKWARD, conv2d_backward, OWN, "conv.cl", "conv2d_backward_weight",                  \
      "conv2d_backward_data")                                                                      \
    X(ATTENTION_FORWARD, attention_forward, OWN, "attention.cl", "attention_forward", NULL)        \
    X(ATTENTION_BACKWARD, attention_backward, OWN, "attention.cl", "attention_backward_query",     \
      "attention_backward_key")
// clang-format on

// clang-format off
enum dcl_op {
#define DCL_OP_ENUM(NAME, ...) DCL_OP_##NAME,
    DCL_OP_MAP(DCL_OP_ENUM)
#undef DCL_OP_ENUM
    DCL_OP_COUNT
};
// clang-format on

// One row of DCL_OP_MAP as data (device.c), for messages and for the OpenCL backend's kernels.
struct dcl_op_desc {
    const char *name;    // "group_norm_backward"
    const char *file;    // "group_norm.cl"; NULL for gemm
    const char *kernel;  // "group_norm_backward_data"; NULL for gemm
    const char *kernel2; // "group_norm_backward_params"; NULL for ops of one kernel
};
extern const struct dcl_op_desc dcl__op_descs[DCL_OP_COUNT];

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
            size_t N, C, H, W;             // the input (N, C, H, W)
            size_t k, stride, pad, Ho, Wo; // as img
            size_t Co;                     // output channels
        } conv;                            // conv2d_forward, conv2d_backward
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
        struct {
            size_t N, heads, C, R; // qkv (N, 3C, R); d = C / heads channels a head
            float scale;           // 1/√d, from the host in double
        } attn;                    // attention_*
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
    dcl_status (*finish_behind)(void *ctx, int lag); // optional, as finish
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
    dcl_device_stats stats;          // dcl_device_stats_get: counted by device.c and the backends
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
// dcl_device_prepare for an OpenCL device (opencl/cl_ops.c).
dcl_status dcl__cl_prepare_device(dcl_device *dev, int *compiled);
// Whether d's tuning file recorded it faster than the CPU reference (0 without one, or with
// DIFFCL_CL_TUNE=off) (opencl/cl_tune_file.c).
int dcl__cl_tune_faster(const dcl_device_info *d);
// Whether the OpenCL device dev runs a same convolution faster as one dcl_conv2d_* op (cl/conv.cl's
// padded planes) than as im2col + GEMM: when its tuning chose cl/gemm.cl for NN GEMMs, whose
// register blocking those kernels share (opencl/cl_ops.c).
int dcl__cl_conv_planes(const dcl_device *dev);
#endif

#endif
