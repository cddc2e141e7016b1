// Device ops: one signature on every backend (outputs, saved state, inputs, parameters, sizes).
//
// Dimension legend: n element count; N rows (batch); D features; GEMM: C (M, N) = op(A) op(B)
// with op(A) (M, K) and op(B) (K, N). All matrices are row-major and contiguous.
// Backward ops write `=` into activation gradients and `+=` into parameter gradients; each says
// which. Every op checks that its views lie inside their buffers and that all buffers belong to
// dev, then runs on dev's backend (or on the CPU reference when dev's backend lacks the op or
// DIFFCL_CPU_OPS names it). Ops are queued: results are visible to later ops at once and to the
// host after dcl_buffer_read or dcl_device_finish.
#ifndef DIFFCL_OPS_H
#define DIFFCL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/device.h"

// out[i] = value. out (n)
dcl_status dcl_fill(dcl_device *dev, dcl_ptr out, float value, size_t n);
// out[i] = in[i]. out, in (n); the ranges must not overlap unless out == in.
dcl_status dcl_copy(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n);
// out[i] = a x[i] + b y[i]. out, x, y (n); out may be x or y.
dcl_status dcl_axpby(dcl_device *dev, dcl_ptr out, dcl_ptr x, dcl_ptr y, float a, float b,
                     size_t n);
// out[i] = a x[i] + b y[i] + c z[i]: a sampler step's fused linear combination. out may alias.
dcl_status dcl_lincomb3(dcl_device *dev, dcl_ptr out, dcl_ptr x, dcl_ptr y, dcl_ptr z, float a,
                        float b, float c, size_t n);
// C = alpha op(A) op(B) + beta C; op(X) = X or Xᵀ. C (M, N); A (M, K) or (K, M) if trans_a;
// B (K, N) or (N, K) if trans_b. M, N, K >= 1.
dcl_status dcl_gemm(dcl_device *dev, dcl_ptr C, dcl_ptr A, dcl_ptr B, int trans_a, int trans_b,
                    size_t M, size_t N, size_t K, float alpha, float beta);
// out[r, d] = in[r, d] + bias[d]. out, in (N, D); bias (D); out may be in.
dcl_status dcl_bias_add(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr bias, size_t N, size_t D);
// dbias[d] += Σ_r dout[r, d] (parameter gradient: accumulates). dbias (D); dout (N, D)
dcl_status dcl_bias_backward(dcl_device *dev, dcl_ptr dbias, dcl_ptr dout, size_t N, size_t D);
// out = max(in, 0). out, in (n)
dcl_status dcl_relu_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n);
// din = dout · [in > 0] (activation gradient: overwrites). din, in, dout (n)
dcl_status dcl_relu_backward(dcl_device *dev, dcl_ptr din, dcl_ptr in, dcl_ptr dout, size_t n);
// out = in · σ(in). out, in (n)
dcl_status dcl_silu_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n);
// din = dout · σ(in) (1 + in (1 − σ(in))) (overwrites). din, in, dout (n)
dcl_status dcl_silu_backward(dcl_device *dev, dcl_ptr din, dcl_ptr in, dcl_ptr dout, size_t n);
// out[0] = Σ in[i]. out (1); in (n)
dcl_status dcl_sum(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n);
// out[0] = Σ in[i]². out (1); in (n)
dcl_status dcl_sumsq(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n);
// out[0] = number of NaN and ±Inf in in, as a uint32. out (1); in (n)
dcl_status dcl_count_nonfinite(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n);
// Element first + i of the Philox stream (seed, purpose, step) into out[i] (see rng.h):
// raw uint32 bits, uniforms in (0, 1), or standard normals. out (n)
dcl_status dcl_rng_bits(dcl_device *dev, dcl_ptr out, uint64_t seed, uint32_t purpose,
                        uint32_t step, uint64_t first, size_t n);
dcl_status dcl_rng_uniform(dcl_device *dev, dcl_ptr out, uint64_t seed, uint32_t purpose,
                           uint32_t step, uint64_t first, size_t n);
dcl_status dcl_rng_normal(dcl_device *dev, dcl_ptr out, uint64_t seed, uint32_t purpose,
                          uint32_t step, uint64_t first, size_t n);

#endif
