// Device ops: one signature on every backend (outputs, saved state, inputs, parameters, sizes).
//
// Dimension legend: n element count; N rows (batch); D features; GEMM: C (M, N) = op(A) op(B)
// with op(A) (M, K) and op(B) (K, N). All matrices are row-major and contiguous.
// Images are NCHW floats: N batch, C channels, H height, W width, R = H·W positions per channel;
// k kernel size, G GroupNorm groups, K classes, E embedding size.
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
// out[r, 0:D1] = a[r], out[r, D1:D1+D2] = b[r]: row-wise concatenation (the MLP's input
// [x, time embedding]). out (N, D1 + D2); a (N, D1); b (N, D2)
dcl_status dcl_concat_cols(dcl_device *dev, dcl_ptr out, dcl_ptr a, dcl_ptr b, size_t N, size_t D1,
                           size_t D2);
// Sinusoidal embedding of t ∈ [0, 1] scaled to the usual 0..1000 range: with half = E/2,
// freq_j = exp(−ln(10000)·j/half) and arg = 1000·t[r]·freq_j (both in float),
// out[r, j] = sin(arg), out[r, half + j] = cos(arg). out (N, E); t (N); E even.
dcl_status dcl_time_embedding(dcl_device *dev, dcl_ptr out, dcl_ptr t, size_t N, size_t E);
// The forward process and the training target, both affine in (x0, ε) with per-example
// coefficients from the host (dcl_target_train_coefs, diffcl/schedule.h):
// xt = coef[r, 0] x0 + coef[r, 1] ε, target = coef[r, 2] x0 + coef[r, 3] ε.
// xt, target, x0, eps (N, D); coef (N, 4)
dcl_status dcl_forward_process(dcl_device *dev, dcl_ptr xt, dcl_ptr target, dcl_ptr x0, dcl_ptr eps,
                               dcl_ptr coef, size_t N, size_t D);
// Gradient of the weighted mean squared error L = Σ_r w[r] Σ_d (pred − target)² / (N·D):
// dout[r, d] = 2 w[r] (pred[r, d] − target[r, d]) / (N·D) (activation gradient: overwrites).
// dout, pred, target (N, D); w (N)
dcl_status dcl_mse_backward(dcl_device *dev, dcl_ptr dout, dcl_ptr pred, dcl_ptr target, dcl_ptr w,
                            size_t N, size_t D);
// Softmax cross-entropy of a classifier's logits, its mean's gradient in the same pass. Per row
// r, with m = max_k logits[r, k] and S = Σ_k exp(logits[r, k] − m) (max subtracted: no overflow):
// loss[r] = log S − (logits[r, y] − m) = −log softmax(logits[r])[y], y = labels[r], and
// dlogits[r, k] = (exp(logits[r, k] − m) / S − [k = y]) / N, the gradient of Σ_r loss[r] / N
// (activation gradient: overwrites). labels (N) holds uint32 bits; a label >= K is ignored: loss
// 0 and a zero row of dlogits (dcl_embedding_forward's convention for kernels, which cannot
// report errors). loss (N); dlogits, logits (N, K); K >= 1. dlogits must not overlap logits.
dcl_status dcl_softmax_cross_entropy(dcl_device *dev, dcl_ptr loss, dcl_ptr dlogits, dcl_ptr logits,
                                     dcl_ptr labels, size_t N, size_t K);
// One decoupled AdamW step (Loshchilov & Hutter) in torch.optim.AdamW's order of operations, with
// gradient-norm clipping folded in. gsq[0] = Σ grads² (from dcl_sumsq, still on the device);
// scale = (clip > 0 && √gsq > clip) ? clip/√gsq : 1 and g = scale·grads (clip_grad_norm_
// divides by √gsq + 1e-6; here by √gsq exactly; as there, an infinite gsq gives scale 0); then
//   params *= 1 − lr·weight_decay                      (decay first, as PyTorch)
//   m = β1 m + (1 − β1) g;  v = β2 v + (1 − β2) g²
//   params −= (lr / (1 − β1^step)) · m / (√v / √(1 − β2^step) + eps)
// The bias corrections are computed on the host in double. step counts from 1. Updates params, m
// and v in place (m, v start at 0). params, m, v, grads (n); gsq (1)
dcl_status dcl_adamw_step(dcl_device *dev, dcl_ptr params, dcl_ptr m, dcl_ptr v, dcl_ptr grads,
                          dcl_ptr gsq, size_t n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, float clip, int64_t step);
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

// ---- images (NCHW) ------------------------------------------------------------------------------
//
// A convolution is im2col, then dcl_gemm with the weights (Co, C·k·k) × col (C·k·k, N·Ho·Wo) into
// CNHW (Co, N, Ho·Wo), then dcl_swap01 into NCHW and dcl_channel_bias_add (or dcl_conv_output, both
// in one pass, with a per-sample bias and a residual too); its backward is
// dcl_swap01 back, dcl_channel_bias_backward, two GEMMs and dcl_col2im (tests/test_conv.c).
// All sizes below must keep every tensor under 2^32 elements.

// Unfolds k×k patches: col[(c·k + ky)·k + kx, (n·Ho + oy)·Wo + ox] =
// in[n, c, oy·stride − pad + ky, ox·stride − pad + kx], zero outside the image (zero padding).
// Ho = (H + 2 pad − k) / stride + 1, Wo likewise; needs k, stride >= 1 and H, W + 2 pad >= k.
// col (C·k·k, N·Ho·Wo); in (N, C, H, W)
dcl_status dcl_im2col(dcl_device *dev, dcl_ptr col, dcl_ptr in, size_t N, size_t C, size_t H,
                      size_t W, size_t k, size_t stride, size_t pad);
// The adjoint of dcl_im2col (activation gradient: overwrites din): each input pixel is the sum of
// the col entries it fed, gathered in (ky, kx) order, so the result does not depend on the
// device's scheduling. din (N, C, H, W); col (C·k·k, N·Ho·Wo); sizes as dcl_im2col.
dcl_status dcl_col2im(dcl_device *dev, dcl_ptr din, dcl_ptr col, size_t N, size_t C, size_t H,
                      size_t W, size_t k, size_t stride, size_t pad);
// out[b, a, r] = in[a, b, r]: the first two axes swapped (CNHW <-> NCHW with R = H·W). Its
// backward is dcl_swap01 with A and B exchanged. out (B, A, R); in (A, B, R); must not overlap.
dcl_status dcl_swap01(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t A, size_t B, size_t R);
// out[n, c, r] = in[n, c, r] + bias[c] (per_sample 0: a convolution's bias; bias (C)) or
// + bias[n, c] (per_sample 1: a per-sample vector such as the time embedding; bias (N, C)).
// out, in (N, C, R); out may be in.
dcl_status dcl_channel_bias_add(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr bias, size_t N,
                                size_t C, size_t R, int per_sample);
// per_sample 0: dbias[c] += Σ_{n,r} dout[n, c, r] (parameter gradient: accumulates; bias (C));
// per_sample 1: dbias[n, c] = Σ_r dout[n, c, r] (activation gradient: overwrites; bias (N, C)).
// dout (N, C, R)
dcl_status dcl_channel_bias_backward(dcl_device *dev, dcl_ptr dbias, dcl_ptr dout, size_t N,
                                     size_t C, size_t R, int per_sample);
// GroupNorm (Wu & He): the C channels form G groups of C/G consecutive channels; over each
// (n, group) of M = C/G·R elements, mean = Σ x / M and var = Σ (x − mean)² / M (two passes),
// rstd = 1/√(var + eps), out = (x − mean)·rstd·gamma[c] + beta[c]. C % G == 0, C/G·R >= 1,
// eps >= 0. out, in (N, C, R); mean, rstd (N, G) saved for the backward; gamma, beta (C)
dcl_status dcl_group_norm_forward(dcl_device *dev, dcl_ptr out, dcl_ptr mean, dcl_ptr rstd,
                                  dcl_ptr in, dcl_ptr gamma, dcl_ptr beta, size_t N, size_t C,
                                  size_t R, size_t G, float eps);
// With x̂ = (x − mean)·rstd and g = gamma[c]·dout over a group of M elements:
// din = rstd·(g − Σ g / M − x̂·Σ g·x̂ / M) (activation gradient: overwrites);
// dgamma[c] += Σ_{n,r} dout·x̂, dbeta[c] += Σ_{n,r} dout (parameter gradients: accumulate).
// din, dout, in (N, C, R); mean, rstd (N, G) from the forward; gamma, dgamma, dbeta (C)
dcl_status dcl_group_norm_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dgamma, dcl_ptr dbeta,
                                   dcl_ptr dout, dcl_ptr in, dcl_ptr mean, dcl_ptr rstd,
                                   dcl_ptr gamma, size_t N, size_t C, size_t R, size_t G);
// Nearest-neighbour ×2: out[n, c, y, x] = in[n, c, y/2, x/2]. out (N, C, 2H, 2W); in (N, C, H, W)
dcl_status dcl_upsample2x_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t N, size_t C,
                                  size_t H, size_t W);
// din[n, c, y, x] = sum of the 2×2 block of dout it was copied to, added in row-major order
// (activation gradient: overwrites). din (N, C, H, W); dout (N, C, 2H, 2W)
dcl_status dcl_upsample2x_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dout, size_t N, size_t C,
                                   size_t H, size_t W);
// out = [a, b] along channels (the U-Net's skip connections); a copy, bitwise.
// out (N, C1 + C2, R); a (N, C1, R); b (N, C2, R)
dcl_status dcl_concat_channels(dcl_device *dev, dcl_ptr out, dcl_ptr a, dcl_ptr b, size_t N,
                               size_t C1, size_t C2, size_t R);
// The backward of dcl_concat_channels: da = dout[:, 0:C1], db = dout[:, C1:C1+C2] (activation
// gradients: overwrite). da (N, C1, R); db (N, C2, R); dout (N, C1 + C2, R)
dcl_status dcl_split_channels(dcl_device *dev, dcl_ptr da, dcl_ptr db, dcl_ptr dout, size_t N,
                              size_t C1, size_t C2, size_t R);

// ---- self-attention ------------------------------------------------------------------------------
//
// Scaled dot-product self-attention over the R = H·W positions of an image (Vaswani et al. 2017,
// "Attention is all you need"), the core of the U-Net's attention block. qkv (N, 3C, R) in NCHW:
// channels [0, C) are the queries, [C, 2C) the keys, [2C, 3C) the values; head h uses channels
// h·d … h·d + d − 1 of each part, d = C / heads (C % heads == 0, C >= 1). Per sample n and head h:
//   S[i, j] = (Σ_c q[c, i]·k[c, j])·(1/√d),  P[i, j] = exp(S[i, j] − m_i) / l_i with the row max
//   m_i and l_i = Σ_j exp(S[i, j] − m_i) (numerically stable), out[h·d + c, i] = Σ_j P[i, j]·v[c, j].
// Every sum runs in a fixed order (c, then j), so results are bitwise the same for any thread count
// and any OpenCL launch shape. No R × R matrix is stored: the forward saves each row's
// log-sum-exp, and the backward recomputes P from it (as FlashAttention does, Dao et al. 2022):
// memory O(N·heads·R) instead of O(N·heads·R²), for more arithmetic: per (n, head) the forward
// does 2·R²·d multiply-adds, the backward 7·R²·d (its pass over the queries and its pass over the
// keys each recompute S and dP) where one that stored P would do 4·R²·d.

// out (N, C, R), must not overlap qkv; lse (N, heads, R) receives m_i + log l_i for the backward;
// qkv (N, 3C, R).
dcl_status dcl_attention_forward(dcl_device *dev, dcl_ptr out, dcl_ptr lse, dcl_ptr qkv, size_t N,
                                 size_t heads, size_t C, size_t R);
// Its backward with P = exp(S − lse) recomputed: D_i = Σ_c dout[c, i]·out[c, i],
// dP[i, j] = Σ_c dout[c, i]·v[c, j], dS = P ⊙ (dP − D_i); dq[:, i] = (Σ_j dS[i, j]·k[:, j])/√d,
// dk[:, j] = (Σ_i dS[i, j]·q[:, i])/√d, dv[:, j] = Σ_i P[i, j]·dout[:, i] (activation gradient:
// overwrites all of dqkv). dk and dv are gathered by a pass over the keys, not scattered from the
// query rows: no atomics. dqkv (N, 3C, R), must not overlap the others; dout, out (N, C, R);
// qkv (N, 3C, R) and lse (N, heads, R) as the forward left them.
dcl_status dcl_attention_backward(dcl_device *dev, dcl_ptr dqkv, dcl_ptr dout, dcl_ptr qkv,
                                  dcl_ptr out, dcl_ptr lse, size_t N, size_t heads, size_t C,
                                  size_t R);

// ---- class embedding ----------------------------------------------------------------------------

// Rows of a table by label: out[n, :] = table[labels[n], :]. labels (N) holds uint32 bits (not
// floats) in a float buffer. A label >= K yields a zero row: kernels cannot report errors and the
// wrapper cannot see device data, so an out-of-range label is defined, not an error (give the
// "no class" label of classifier-free guidance its own row instead). out (N, E); table (K, E)
dcl_status dcl_embedding_forward(dcl_device *dev, dcl_ptr out, dcl_ptr table, dcl_ptr labels,
                                 size_t N, size_t K, size_t E);
// dtable[k, e] += Σ_{n: labels[n] = k} dout[n, e] (parameter gradient: accumulates), summed per
// (k, e) over n in order (a gather, no atomics: deterministic). Labels >= K contribute nothing.
// dtable (K, E); dout (N, E); labels (N) as uint32 bits
dcl_status dcl_embedding_backward(dcl_device *dev, dcl_ptr dtable, dcl_ptr dout, dcl_ptr labels,
                                  size_t N, size_t K, size_t E);

// ---- fused ops ----------------------------------------------------------------------------------
//
// Each does in one pass over memory what a sequence of the ops above does in several, with the
// same roundings in the same order, so its result is bitwise that of the sequence.

// A convolution's output from the GEMM's CNHW result: out[n, c, r] = cnhw[c, n, r] + bias[c]
// + sbias[n, c] + res[n, c, r], added left to right; a term whose view has buf == NULL is left
// out. It equals dcl_swap01, dcl_channel_bias_add (per_sample 0, then 1) and dcl_axpby(out, out,
// res, 1, 1) in turn. out (N, C, R); cnhw (C, N, R), must not overlap out; bias (C); sbias (N, C)
// (a per-sample bias such as the time embedding); res (N, C, R) (a residual), may be out itself.
dcl_status dcl_conv_output(dcl_device *dev, dcl_ptr out, dcl_ptr cnhw, dcl_ptr bias, dcl_ptr sbias,
                           dcl_ptr res, size_t N, size_t C, size_t R);

// A whole convolution in one op: out = the convolution of in (N, C, H, W) with w (Co, C, k, k)
// (im2col's geometry), + bias[c] + sbias[n, c] + res[n, c, r] as dcl_conv_output adds them. Each
// output is a dot product of length C·k·k whose rounding is the device's GEMM's (as the
// im2col + dcl_gemm + dcl_conv_output sequence, which it equals within the GEMM's tolerance).
// out (N, Co, Ho, Wo), must not overlap in or w; res may be out itself. The CPU reference runs it
// per sample, with the sample's columns in cache (host/README.md, "Convolutions on the CPU"); an
// OpenCL device runs a same convolution (stride 1, k = 2·pad + 1) on zero-bordered planes, bitwise
// as im2col + cl/gemm.cl's GEMM (host/README.md, "Convolutions on OpenCL").
dcl_status dcl_conv2d_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr w, dcl_ptr bias,
                              dcl_ptr sbias, dcl_ptr res, size_t N, size_t C, size_t H, size_t W,
                              size_t Co, size_t k, size_t stride, size_t pad);
// Its backward (without the bias): dw (Co, C, k, k) += Σ_n dout_n · col_nᵀ, and, when din.buf is
// not NULL, din (N, C, H, W) = col2im(wᵀ · dout_n) (overwritten). The sum over samples runs in
// chunks of samples fixed by the sizes, combined in chunk order, so it does not depend on the
// thread count. dout (N, Co, Ho, Wo); in as dcl_conv2d_forward; din must not overlap the others.
dcl_status dcl_conv2d_backward(dcl_device *dev, dcl_ptr dw, dcl_ptr din, dcl_ptr dout, dcl_ptr in,
                               dcl_ptr w, size_t N, size_t C, size_t H, size_t W, size_t Co,
                               size_t k, size_t stride, size_t pad);

#endif
