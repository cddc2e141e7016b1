// Linear and 2-D convolution layers as functions of device pointers, shared by the MLP (mlp.c) and
// the U-Net (unet.c), and the check that an arena has a network's parameter layout. Arguments in
// llm.c's order: outputs, saved state and scratch, inputs, parameters, sizes.
//
// Dimensions: N batch; I, O a linear layer's input and output features; ci, co a convolution's
// input and output channels, H×W its input and Ho×Wo its output size, k its kernel size.
// Backward functions write `=` into activation gradients and `+=` into parameter gradients (the
// convention of diffcl/ops.h); each says which.
#ifndef DIFFCL_NN_LAYERS_H
#define DIFFCL_NN_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/arena.h"  // dcl_arena
#include "diffcl/device.h" // dcl_device, dcl_ptr, dcl_status

// Whether a backward overwrites (=) or accumulates into (+=) the input gradient it writes.
enum dcl__grad_mode { DCL__GRAD_SET = 0, DCL__GRAD_ADD = 1 };

// out (N, O) = in (N, I) wᵀ + b, torch.nn.Linear with w (O, I) and b (O); b.buf NULL: no bias.
// One GEMM, then the bias (overwrites out).
dcl_status dcl__linear_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr w, dcl_ptr b,
                               size_t N, size_t I, size_t O);
// Given dout (N, O) for dcl__linear_forward(in, w): dw (O, I) += doutᵀ in, then db (O) += Σ_n dout
// (skipped when db.buf is NULL), then, when din.buf is set, din (N, I) = dout w (DCL__GRAD_SET) or
// din += dout w (DCL__GRAD_ADD).
dcl_status dcl__linear_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dw, dcl_ptr db, dcl_ptr dout,
                                dcl_ptr in, dcl_ptr w, size_t N, size_t I, size_t O,
                                enum dcl__grad_mode din_mode);

// A convolution's geometry, PyTorch's nn.Conv2d with zero padding: in (N, ci, H, W) →
// out (N, co, Ho, Wo), weight (co, ci, k, k), bias (co).
typedef struct dcl__conv2d_shape {
    size_t ci, H, W;       // input channels, height, width
    size_t co, Ho, Wo;     // output channels, height, width
    size_t k, stride, pad; // kernel size, stride, zero padding on each side
} dcl__conv2d_shape;

// The geometry of a k×k convolution with stride and padding pad on ci×H×W inputs.
dcl__conv2d_shape dcl__conv2d_shape_make(size_t ci, size_t co, size_t k, size_t stride, size_t pad,
                                         size_t H, size_t W);
// Per-sample elements of the scratch a convolution needs: its im2col columns (ci·k·k·Ho·Wo) and its
// GEMM output (co·Ho·Wo). A chunk of n samples needs n times each.
size_t dcl__conv2d_col_size(const dcl__conv2d_shape *s);
size_t dcl__conv2d_out_size(const dcl__conv2d_shape *s);

// Whether convolutions on dev should use the col and cnhw scratch below: OpenCL devices (CLBlast's
// GEMM wants large operands), or any device when the environment sets DIFFCL_CONV_COLUMNS=1 (to
// test that path on the CPU). The CPU reference otherwise runs each convolution as one
// dcl_conv2d_forward / dcl_conv2d_backward op, which keeps one sample's columns at a time in its
// own cache-sized scratch (host/README.md, "Convolutions on the CPU"); callers then pass col and
// cnhw with buf NULL. An OpenCL device may still run same convolutions as those ops, chunk by
// chunk (host/README.md, "Convolutions on OpenCL"; not under DIFFCL_CONV_COLUMNS=1).
int dcl__conv2d_uses_columns(const dcl_device *dev);
// Whether conv s runs as one dcl_conv2d_* op on a device that uses columns: a same convolution
// (stride 1, k = 2·pad + 1) on an OpenCL device that runs those on zero-bordered planes faster than
// im2col + GEMM (host/README.md, "Convolutions on OpenCL"; never under DIFFCL_CONV_COLUMNS=1).
// The op then goes over the same chunks of samples, needing no columns.
int dcl__conv2d_whole(const dcl_device *dev, const dcl__conv2d_shape *s);
// Per-sample elements of the planes the OpenCL backend allocates for such a conv, about
// (2·ci + co)·(H + pad)·(W + pad) (for the memory estimate).
size_t dcl__conv2d_plane_size(const dcl__conv2d_shape *s);

// out (N, co, Ho, Wo) = conv(in (N, ci, H, W)) with w (co, ci, k, k) and b (co), + sbias (N, co)
// per sample and channel, + res (N, co, Ho, Wo); each of b, sbias, res is left out when its buf is
// NULL, and res may be out. With col.buf NULL it is one dcl_conv2d_forward op. Otherwise the batch
// goes in chunks of at most `chunk` samples: im2col into col (ci·k·k, n·Ho·Wo), one GEMM w × col
// into cnhw (co, n, Ho·Wo), then dcl_conv_output swaps cnhw into out and adds the terms in the
// same pass. col and cnhw are scratch of chunk ×
// dcl__conv2d_col_size and chunk × dcl__conv2d_out_size elements.
dcl_status dcl__conv2d_forward(dcl_device *dev, dcl_ptr out, dcl_ptr col, dcl_ptr cnhw, dcl_ptr in,
                               dcl_ptr w, dcl_ptr b, dcl_ptr sbias, dcl_ptr res, size_t N,
                               const dcl__conv2d_shape *s, size_t chunk);
// Given dout (N, co, Ho, Wo) for dcl__conv2d_forward(in, w): db (co) += Σ dout first; then per
// chunk dout is swapped into cnhw, col is recomputed from in, dw (co, ci, k, k) += cnhw colᵀ and,
// when din.buf is set, din (N, ci, H, W) = col2im(wᵀ cnhw) (overwrites). Scratch as the forward;
// with col.buf NULL, db then one dcl_conv2d_backward op.
dcl_status dcl__conv2d_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dw, dcl_ptr db, dcl_ptr col,
                                dcl_ptr cnhw, dcl_ptr dout, dcl_ptr in, dcl_ptr w, size_t N,
                                const dcl__conv2d_shape *s, size_t chunk);

// PyTorch's nn.Linear and nn.Conv2d initialisation: w (n) ~ U(−bound, bound), bound = 1/√fan_in,
// bitwise equal on every device. The uniforms u of Philox stream (seed, DCL_RNG_INIT, step) are
// mapped by one axpby (2·bound)·u + (−bound)·1 with a ones vector written to scratch (n): both
// products and the sum are single IEEE roundings.
dcl_status dcl__init_uniform(dcl_device *dev, dcl_ptr w, dcl_ptr scratch, float bound,
                             uint64_t seed, uint32_t step, size_t n);

// DCL_OK when params is an arena on dev with the views of own (same count, offsets and sizes):
// another copy of a network's weights, such as the EMA's. Otherwise fails with "<what>: arena
// '<name>' does not have the model's parameter layout on its device".
dcl_status dcl__check_param_layout(const dcl_arena *params, const dcl_arena *own, dcl_device *dev,
                                   const char *what);

#endif
