// The CPU reference's ops that live outside cpu_backend.c (fused ops: cpu_fused.c; whole
// convolutions: cpu_conv.c; self-attention: cpu_attention.c), declared for its op table, which names each op's function cpu_<name> (device/backend.h, DCL_OP_MAP).
#ifndef DIFFCL_CPU_IMPL_H
#define DIFFCL_CPU_IMPL_H

#include "device/backend.h" // struct dcl_op_args

// DCL_CPU_WIDE before a loop function compiles it twice, for x86-64's baseline (SSE2) and for
// AVX2, the loader picking the one the CPU runs (GCC's target_clones, x86-64 Linux only): gcc
// vectorises the loop 4 floats (2 doubles) wide or 8 (4) wide. The results are the same bits:
// the same IEEE operations run per element in the same order (gcc does not reorder a
// floating-point reduction without -ffast-math), and AVX2 alone brings no FMA to contract into.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    __GNUC__ >= 8
#define DCL_CPU_WIDE __attribute__((target_clones("avx2", "default")))
#else
#define DCL_CPU_WIDE
#endif

// e^r for |r| <= ln 2 / 2 by the Cephes expf minimax polynomial (relative error about 1e-7): the
// reduced part of the vectorisable exps of SiLU (cpu_backend.c) and attention (cpu_attention.c),
// which split x = n ln 2 + r and put 2^n into the exponent bits themselves.
static inline float dcl__cpu_exp_reduced(float r) {
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
}

dcl_status dcl__cpu_conv_output(void *ctx, const struct dcl_op_args *a);
// One plane o[r] = x[r] (+ b if has & 1) (+ s if has & 2) (+ y[r] if has & 4), r < R, in that
// order (conv_output's roundings; cpu_conv.c adds its outputs the same way). y may be o.
void dcl__cpu_conv_output_plane(float *o, const float *x, const float *y, float b, float s,
                                size_t R, int has);
// The same for a plane of rows × R whose row i of x starts at x + i·ldx (o and y contiguous).
void dcl__cpu_conv_output_rows(float *o, const float *x, size_t ldx, const float *y, float b,
                               float s, size_t rows, size_t R, int has);
#define cpu_conv_output dcl__cpu_conv_output
dcl_status dcl__cpu_softmax_cross_entropy(void *ctx, const struct dcl_op_args *a); // cpu_loss.c
#define cpu_softmax_cross_entropy dcl__cpu_softmax_cross_entropy

// cpu_conv.c
dcl_status dcl__cpu_conv2d_forward(void *ctx, const struct dcl_op_args *a);
dcl_status dcl__cpu_conv2d_backward(void *ctx, const struct dcl_op_args *a);
#define cpu_conv2d_forward dcl__cpu_conv2d_forward
#define cpu_conv2d_backward dcl__cpu_conv2d_backward

// cpu_attention.c
dcl_status dcl__cpu_attention_forward(void *ctx, const struct dcl_op_args *a);
dcl_status dcl__cpu_attention_backward(void *ctx, const struct dcl_op_args *a);
#define cpu_attention_forward dcl__cpu_attention_forward
#define cpu_attention_backward dcl__cpu_attention_backward

#endif
