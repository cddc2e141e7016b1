// The public op wrappers: each packs its arguments into a struct dcl_op_args and dispatches.
#include <math.h>

#include "core/error.h"
#include "device/backend.h" // struct dcl_op_args, dcl__op_run

// Ops of the form out (n) = f(in0 (n), in1 (n), ...).
static dcl_status elementwise(dcl_device *dev, enum dcl_op op, dcl_ptr out, const dcl_ptr *in,
                              int n_in, size_t n) {
    struct dcl_op_args a = {.op = op, .n_out = 1, .n_in = n_in, .n = n};
    a.out[0] = out;
    a.out_len[0] = n;
    for (int i = 0; i < n_in; i++) {
        a.in[i] = in[i];
        a.in_len[i] = n;
    }
    return dcl__op_run(dev, &a);
}

// The wrappers of the MAP1 and MAP2 ops of DCL_OP_MAP (declared, with their shapes, in
// include/diffcl/ops.h); OWN ops have their wrapper written out below.
#define DCL_WRAP_OWN(NAME, name)
#define DCL_WRAP_MAP1(NAME, name)                                                                  \
    dcl_status dcl_##name(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n) {                    \
        return elementwise(dev, DCL_OP_##NAME, out, &in, 1, n);                                    \
    }
#define DCL_WRAP_MAP2(NAME, name)                                                                  \
    dcl_status dcl_##name(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr b, size_t n) {         \
        dcl_ptr ins[2] = {in, b};                                                                  \
        return elementwise(dev, DCL_OP_##NAME, out, ins, 2, n);                                    \
    }
#define DCL_WRAP(NAME, name, sig, ...) DCL_WRAP_##sig(NAME, name)
DCL_OP_MAP(DCL_WRAP)
#undef DCL_WRAP

dcl_status dcl_fill(dcl_device *dev, dcl_ptr out, float value, size_t n) {
    struct dcl_op_args a = {.op = DCL_OP_FILL, .n_out = 1, .out = {out}, .out_len = {n}, .n = n};
    a.p.fill.value = value;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_copy(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n) {
    if (out.buf && out.buf == in.buf && out.off != in.off &&
        (out.off < in.off ? in.off - out.off : out.off - in.off) < n)
        return dcl__fail(DCL_ERR_ARG, "op copy: ranges of tensor '%s' overlap", out.buf->name);
    return elementwise(dev, DCL_OP_COPY, out, &in, 1, n);
}

dcl_status dcl_axpby(dcl_device *dev, dcl_ptr out, dcl_ptr x, dcl_ptr y, float a, float b,
                     size_t n) {
    struct dcl_op_args args = {.op = DCL_OP_AXPBY,
                               .n_out = 1,
                               .n_in = 2,
                               .out = {out},
                               .out_len = {n},
                               .in = {x, y},
                               .in_len = {n, n},
                               .n = n};
    args.p.lin.a = a, args.p.lin.b = b;
    return dcl__op_run(dev, &args);
}

dcl_status dcl_lincomb3(dcl_device *dev, dcl_ptr out, dcl_ptr x, dcl_ptr y, dcl_ptr z, float a,
                        float b, float c, size_t n) {
    struct dcl_op_args args = {.op = DCL_OP_LINCOMB3,
                               .n_out = 1,
                               .n_in = 3,
                               .out = {out},
                               .out_len = {n},
                               .in = {x, y, z},
                               .in_len = {n, n, n},
                               .n = n};
    args.p.lin.a = a, args.p.lin.b = b, args.p.lin.c = c;
    return dcl__op_run(dev, &args);
}

dcl_status dcl_gemm(dcl_device *dev, dcl_ptr C, dcl_ptr A, dcl_ptr B, int trans_a, int trans_b,
                    size_t M, size_t N, size_t K, float alpha, float beta) {
    const size_t limit = (size_t)1 << 31;
    if (M >= limit || N >= limit || K >= limit)
        return dcl__fail(DCL_ERR_ARG, "op gemm: sizes M=%zu N=%zu K=%zu are too large", M, N, K);
    if (K == 0 && M && N) return dcl__fail(DCL_ERR_ARG, "op gemm: K must be at least 1");
    struct dcl_op_args a = {.op = DCL_OP_GEMM,
                            .n_out = 1,
                            .n_in = 2,
                            .out = {C},
                            .out_len = {M * N},
                            .in = {A, B},
                            .in_len = {M * K, K * N}};
    a.p.gemm.trans_a = trans_a != 0, a.p.gemm.trans_b = trans_b != 0;
    a.p.gemm.M = M, a.p.gemm.N = N, a.p.gemm.K = K;
    a.p.gemm.alpha = alpha, a.p.gemm.beta = beta;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_bias_add(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr bias, size_t N,
                        size_t D) {
    struct dcl_op_args a = {.op = DCL_OP_BIAS_ADD,
                            .n_out = 1,
                            .n_in = 2,
                            .out = {out},
                            .out_len = {N * D},
                            .in = {in, bias},
                            .in_len = {N * D, D}};
    a.p.bias.N = N, a.p.bias.D = D;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_bias_backward(dcl_device *dev, dcl_ptr dbias, dcl_ptr dout, size_t N, size_t D) {
    struct dcl_op_args a = {.op = DCL_OP_BIAS_BACKWARD,
                            .n_out = 1,
                            .n_in = 1,
                            .out = {dbias},
                            .out_len = {N ? D : 0},
                            .in = {dout},
                            .in_len = {N * D}};
    a.p.bias.N = N, a.p.bias.D = D;
    return dcl__op_run(dev, &a);
}

// Sizes whose products would pass 2^32 elements cannot be addressed by the kernels' uint indices
// and offsets; refuse them here with the sizes named.
static dcl_status check_rows(enum dcl_op op, size_t N, size_t W) {
    if (W && N > (((size_t)1 << 32) - 1) / W)
        return dcl__fail(DCL_ERR_ARG, "op %s: %zu rows of %zu elements exceed 2^32 elements",
                         dcl__op_name(op), N, W);
    return DCL_OK;
}

dcl_status dcl_concat_cols(dcl_device *dev, dcl_ptr out, dcl_ptr a, dcl_ptr b, size_t N, size_t D1,
                           size_t D2) {
    dcl_status s = check_rows(DCL_OP_CONCAT_COLS, N, D1 + D2);
    if (s != DCL_OK) return s;
    struct dcl_op_args args = {.op = DCL_OP_CONCAT_COLS,
                               .n_out = 1,
                               .n_in = 2,
                               .out = {out},
                               .out_len = {N * (D1 + D2)},
                               .in = {a, b},
                               .in_len = {N * D1, N * D2}};
    args.p.rows.N = N, args.p.rows.D = D1, args.p.rows.D2 = D2;
    return dcl__op_run(dev, &args);
}

dcl_status dcl_time_embedding(dcl_device *dev, dcl_ptr out, dcl_ptr t, size_t N, size_t E) {
    if (E % 2)
        return dcl__fail(DCL_ERR_ARG, "op time_embedding: embedding size E=%zu must be even", E);
    dcl_status s = check_rows(DCL_OP_TIME_EMBEDDING, N, E);
    if (s != DCL_OK) return s;
    struct dcl_op_args a = {.op = DCL_OP_TIME_EMBEDDING,
                            .n_out = 1,
                            .n_in = 1,
                            .out = {out},
                            .out_len = {N * E},
                            .in = {t},
                            .in_len = {E ? N : 0}};
    a.p.rows.N = N, a.p.rows.D = E;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_forward_process(dcl_device *dev, dcl_ptr xt, dcl_ptr target, dcl_ptr x0, dcl_ptr eps,
                               dcl_ptr coef, size_t N, size_t D) {
    dcl_status s = check_rows(DCL_OP_FORWARD_PROCESS, N, D > 4 ? D : 4);
    if (s != DCL_OK) return s;
    struct dcl_op_args a = {.op = DCL_OP_FORWARD_PROCESS,
                            .n_out = 2,
                            .n_in = 3,
                            .out = {xt, target},
                            .out_len = {N * D, N * D},
                            .in = {x0, eps, coef},
                            .in_len = {N * D, N * D, D ? N * 4 : 0}};
    a.p.rows.N = N, a.p.rows.D = D;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_mse_backward(dcl_device *dev, dcl_ptr dout, dcl_ptr pred, dcl_ptr target, dcl_ptr w,
                            size_t N, size_t D) {
    dcl_status s = check_rows(DCL_OP_MSE_BACKWARD, N, D);
    if (s != DCL_OK) return s;
    struct dcl_op_args a = {.op = DCL_OP_MSE_BACKWARD,
                            .n_out = 1,
                            .n_in = 3,
                            .out = {dout},
                            .out_len = {N * D},
                            .in = {pred, target, w},
                            .in_len = {N * D, N * D, D ? N : 0}};
    a.p.rows.N = N, a.p.rows.D = D;
    a.p.rows.scale = N && D ? (float)(2.0 / ((double)N * (double)D)) : 0.0f;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_softmax_cross_entropy(dcl_device *dev, dcl_ptr loss, dcl_ptr dlogits, dcl_ptr logits,
                                     dcl_ptr labels, size_t N, size_t K) {
    dcl_status s = check_rows(DCL_OP_SOFTMAX_CROSS_ENTROPY, N, K);
    if (s != DCL_OK) return s;
    if (K == 0 && N > 0)
        return dcl__fail(DCL_ERR_ARG, "op softmax_cross_entropy: needs at least one class");
    struct dcl_op_args a = {.op = DCL_OP_SOFTMAX_CROSS_ENTROPY,
                            .n_out = 2,
                            .n_in = 2,
                            .out = {loss, dlogits},
                            .out_len = {N, N * K},
                            .in = {logits, labels},
                            .in_len = {N * K, N}};
    a.p.rows.N = N, a.p.rows.D = K;
    a.p.rows.scale = N ? (float)(1.0 / (double)N) : 0.0f; // the mean's 1/N, rounded once
    return dcl__op_run(dev, &a);
}

dcl_status dcl_adamw_step(dcl_device *dev, dcl_ptr params, dcl_ptr m, dcl_ptr v, dcl_ptr grads,
                          dcl_ptr gsq, size_t n, float lr, float beta1, float beta2, float eps,
                          float weight_decay, float clip, int64_t step) {
    if (step < 1)
        return dcl__fail(DCL_ERR_ARG, "op adamw_step: step must count from 1, got %lld",
                         (long long)step);
    if (!(beta1 >= 0.0f && beta1 < 1.0f) || !(beta2 >= 0.0f && beta2 < 1.0f))
        return dcl__fail(DCL_ERR_ARG, "op adamw_step: betas (%g, %g) must lie in [0, 1)",
                         (double)beta1, (double)beta2);
    if (!(eps > 0.0f) || !(lr >= 0.0f) || !(weight_decay >= 0.0f))
        return dcl__fail(DCL_ERR_ARG,
                         "op adamw_step: need lr >= 0 (got %g), eps > 0 (got %g) and "
                         "weight_decay >= 0 (got %g)",
                         (double)lr, (double)eps, (double)weight_decay);
    dcl_status s = check_rows(DCL_OP_ADAMW_STEP, n, 1);
    if (s != DCL_OK) return s;
    struct dcl_op_args a = {.op = DCL_OP_ADAMW_STEP,
                            .n_out = 3,
                            .n_in = 2,
                            .out = {params, m, v},
                            .out_len = {n, n, n},
                            .in = {grads, gsq},
                            .in_len = {n, n ? 1 : 0},
                            .n = n};
    // torch.optim.AdamW: bias_correction1 = 1 − β1^step, step_size = lr / bias_correction1,
    // bias_correction2_sqrt = √(1 − β2^step). pow in double keeps 1 − β2^step accurate for the
    // small steps where it matters most (β2 = 0.999, step 1: 1e-3).
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    a.p.adamw.decay = (float)(1.0 - (double)lr * (double)weight_decay);
    a.p.adamw.beta1 = beta1, a.p.adamw.beta2 = beta2, a.p.adamw.eps = eps;
    a.p.adamw.step_size = (float)((double)lr / bc1);
    a.p.adamw.bc2_sqrt = (float)sqrt(bc2);
    a.p.adamw.clip = clip;
    return dcl__op_run(dev, &a);
}

static dcl_status reduce(dcl_device *dev, enum dcl_op op, dcl_ptr out, dcl_ptr in, size_t n) {
    struct dcl_op_args a = {.op = op,
                            .n_out = 1,
                            .n_in = 1,
                            .out = {out},
                            .out_len = {1},
                            .in = {in},
                            .in_len = {n},
                            .n = n};
    return dcl__op_run(dev, &a);
}

dcl_status dcl_sum(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n) {
    return reduce(dev, DCL_OP_SUM, out, in, n);
}

dcl_status dcl_sumsq(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n) {
    return reduce(dev, DCL_OP_SUMSQ, out, in, n);
}

dcl_status dcl_count_nonfinite(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n) {
    return reduce(dev, DCL_OP_COUNT_NONFINITE, out, in, n);
}

static dcl_status rng(dcl_device *dev, enum dcl_op op, dcl_ptr out, uint64_t seed, uint32_t purpose,
                      uint32_t step, uint64_t first, size_t n) {
    if (n && n - 1 > UINT64_MAX - first) // element indices are 64-bit: never wrap around
        return dcl__fail(DCL_ERR_ARG, "op %s: stream elements from %llu on (%zu of them) pass 2^64",
                         dcl__op_name(op), (unsigned long long)first, n);
    struct dcl_op_args a = {.op = op, .n_out = 1, .out = {out}, .out_len = {n}, .n = n};
    a.p.rng.seed = seed, a.p.rng.first = first, a.p.rng.purpose = purpose, a.p.rng.step = step;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_rng_bits(dcl_device *dev, dcl_ptr out, uint64_t seed, uint32_t purpose,
                        uint32_t step, uint64_t first, size_t n) {
    return rng(dev, DCL_OP_RNG_BITS, out, seed, purpose, step, first, n);
}

dcl_status dcl_rng_uniform(dcl_device *dev, dcl_ptr out, uint64_t seed, uint32_t purpose,
                           uint32_t step, uint64_t first, size_t n) {
    return rng(dev, DCL_OP_RNG_UNIFORM, out, seed, purpose, step, first, n);
}

dcl_status dcl_rng_normal(dcl_device *dev, dcl_ptr out, uint64_t seed, uint32_t purpose,
                          uint32_t step, uint64_t first, size_t n) {
    return rng(dev, DCL_OP_RNG_NORMAL, out, seed, purpose, step, first, n);
}

// ---- images (NCHW) and class embedding ----------------------------------------------------------

// *out = a·b·c·d when that stays below 2^32 (the kernels' uint indices); else a status naming the
// op, the tensor and the sizes.
static dcl_status elements(enum dcl_op op, const char *what, size_t a, size_t b, size_t c, size_t d,
                           size_t *out) {
    const size_t limit = ((size_t)1 << 32) - 1;
    size_t f[4] = {a, b, c, d}, n = 1;
    int zero = !a || !b || !c || !d;
    for (int i = 0; i < 4 && !zero; i++) {
        if (n > limit / f[i])
            return dcl__fail(DCL_ERR_ARG,
                             "op %s: %s of %zu × %zu × %zu × %zu elements exceeds 2^32 elements",
                             dcl__op_name(op), what, a, b, c, d);
        n *= f[i];
    }
    *out = zero ? 0 : n;
    return DCL_OK;
}

// Packs im2col / col2im: validates the geometry and sizes the image (N, C, H, W) and the columns
// (C·k·k, N·Ho·Wo).
static dcl_status conv_args(struct dcl_op_args *a, size_t N, size_t C, size_t H, size_t W, size_t k,
                            size_t stride, size_t pad, size_t *img, size_t *col) {
    const char *op = dcl__op_name(a->op);
    const size_t lim = (size_t)1 << 31; // padded coordinates stay below 2^31 in the kernels
    if (k == 0 || stride == 0 || stride >= lim)
        return dcl__fail(DCL_ERR_ARG, "op %s: kernel size %zu and stride %zu must lie in [1, 2^31)",
                         op, k, stride);
    if (pad >= lim || H >= lim || W >= lim || H + 2 * pad >= lim || W + 2 * pad >= lim)
        return dcl__fail(DCL_ERR_ARG, "op %s: a %zu×%zu image padded by %zu passes 2^31 rows", op,
                         H, W, pad);
    if (H + 2 * pad < k || W + 2 * pad < k)
        return dcl__fail(DCL_ERR_ARG,
                         "op %s: a %zu×%zu kernel does not fit a %zu×%zu image padded by %zu", op,
                         k, k, H, W, pad);
    size_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, rows;
    dcl_status s = elements(a->op, "image", N, C, H, W, img);
    if (s == DCL_OK) s = elements(a->op, "kernel rows", C, k, k, 1, &rows);
    if (s == DCL_OK) s = elements(a->op, "columns", rows ? rows : 1, N, Ho, Wo, col);
    if (s != DCL_OK) return s;
    if (!rows) *col = 0;
    a->p.img.N = N, a->p.img.C = C, a->p.img.H = H, a->p.img.W = W;
    a->p.img.k = k, a->p.img.stride = stride, a->p.img.pad = pad;
    a->p.img.Ho = Ho, a->p.img.Wo = Wo;
    return DCL_OK;
}

dcl_status dcl_im2col(dcl_device *dev, dcl_ptr col, dcl_ptr in, size_t N, size_t C, size_t H,
                      size_t W, size_t k, size_t stride, size_t pad) {
    struct dcl_op_args a = {.op = DCL_OP_IM2COL, .n_out = 1, .n_in = 1, .out = {col}, .in = {in}};
    dcl_status s = conv_args(&a, N, C, H, W, k, stride, pad, &a.in_len[0], &a.out_len[0]);
    return s != DCL_OK ? s : dcl__op_run(dev, &a);
}

dcl_status dcl_col2im(dcl_device *dev, dcl_ptr din, dcl_ptr col, size_t N, size_t C, size_t H,
                      size_t W, size_t k, size_t stride, size_t pad) {
    struct dcl_op_args a = {.op = DCL_OP_COL2IM, .n_out = 1, .n_in = 1, .out = {din}, .in = {col}};
    dcl_status s = conv_args(&a, N, C, H, W, k, stride, pad, &a.out_len[0], &a.in_len[0]);
    return s != DCL_OK ? s : dcl__op_run(dev, &a);
}

// Whether views p and q of n elements each share an element.
static int overlap(dcl_ptr p, dcl_ptr q, size_t n) {
    return n && p.buf && p.buf == q.buf && (p.off < q.off ? q.off - p.off : p.off - q.off) < n;
}

dcl_status dcl_swap01(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t A, size_t B, size_t R) {
    size_t n;
    dcl_status s = elements(DCL_OP_SWAP01, "tensor", A, B, R, 1, &n);
    if (s != DCL_OK) return s;
    if (overlap(out, in, n))
        return dcl__fail(DCL_ERR_ARG, "op swap01: out and in overlap in tensor '%s'",
                         out.buf->name);
    struct dcl_op_args a = {.op = DCL_OP_SWAP01,
                            .n_out = 1,
                            .n_in = 1,
                            .out = {out},
                            .out_len = {n},
                            .in = {in},
                            .in_len = {n}};
    a.p.swap.A = A, a.p.swap.B = B, a.p.swap.R = R;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_channel_bias_add(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr bias, size_t N,
                                size_t C, size_t R, int per_sample) {
    size_t n;
    dcl_status s = elements(DCL_OP_CHANNEL_BIAS_ADD, "tensor", N, C, R, 1, &n);
    if (s != DCL_OK) return s;
    struct dcl_op_args a = {.op = DCL_OP_CHANNEL_BIAS_ADD,
                            .n_out = 1,
                            .n_in = 2,
                            .out = {out},
                            .out_len = {n},
                            .in = {in, bias},
                            .in_len = {n, per_sample ? N * C : C}};
    a.p.chan.N = N, a.p.chan.C = C, a.p.chan.R = R, a.p.chan.per_sample = per_sample != 0;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_channel_bias_backward(dcl_device *dev, dcl_ptr dbias, dcl_ptr dout, size_t N,
                                     size_t C, size_t R, int per_sample) {
    size_t n;
    dcl_status s = elements(DCL_OP_CHANNEL_BIAS_BACKWARD, "tensor", N, C, R > 0 ? R : 1, 1, &n);
    if (s != DCL_OK) return s;
    // per_sample 1 overwrites dbias (zeros when R = 0); per_sample 0 adds nothing when N·R = 0.
    struct dcl_op_args a = {.op = DCL_OP_CHANNEL_BIAS_BACKWARD,
                            .n_out = 1,
                            .n_in = 1,
                            .out = {dbias},
                            .out_len = {per_sample ? N * C
                                        : N && R   ? C
                                                   : 0},
                            .in = {dout},
                            .in_len = {N * C * R}};
    a.p.chan.N = N, a.p.chan.C = C, a.p.chan.R = R, a.p.chan.per_sample = per_sample != 0;
    return dcl__op_run(dev, &a);
}

// GroupNorm's sizes: G divides C and every group has at least one element.
static dcl_status group_norm_args(struct dcl_op_args *a, size_t N, size_t C, size_t R, size_t G,
                                  size_t *n) {
    const char *op = dcl__op_name(a->op);
    if (G == 0 || C % G != 0)
        return dcl__fail(DCL_ERR_ARG, "op %s: %zu groups do not divide %zu channels", op, G, C);
    if (N && C && R == 0)
        return dcl__fail(DCL_ERR_ARG, "op %s: groups of 0 positions have no statistics", op);
    a->p.chan.N = N, a->p.chan.C = C, a->p.chan.R = R, a->p.chan.G = G;
    return elements(a->op, "tensor", N, C, R, 1, n);
}

dcl_status dcl_group_norm_forward(dcl_device *dev, dcl_ptr out, dcl_ptr mean, dcl_ptr rstd,
                                  dcl_ptr in, dcl_ptr gamma, dcl_ptr beta, size_t N, size_t C,
                                  size_t R, size_t G, float eps) {
    if (!(eps >= 0.0f) || isinf(eps))
        return dcl__fail(DCL_ERR_ARG, "op group_norm_forward: eps %g must be finite and >= 0",
                         (double)eps);
    struct dcl_op_args a = {.op = DCL_OP_GROUP_NORM_FORWARD,
                            .n_out = 3,
                            .n_in = 3,
                            .out = {out, mean, rstd},
                            .in = {in, gamma, beta}};
    size_t n;
    dcl_status s = group_norm_args(&a, N, C, R, G, &n);
    if (s != DCL_OK) return s;
    a.p.chan.eps = eps;
    size_t stats = C ? N * G : 0;
    a.out_len[0] = n, a.out_len[1] = stats, a.out_len[2] = stats;
    a.in_len[0] = n, a.in_len[1] = C, a.in_len[2] = C;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_group_norm_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dgamma, dcl_ptr dbeta,
                                   dcl_ptr dout, dcl_ptr in, dcl_ptr mean, dcl_ptr rstd,
                                   dcl_ptr gamma, size_t N, size_t C, size_t R, size_t G) {
    struct dcl_op_args a = {.op = DCL_OP_GROUP_NORM_BACKWARD,
                            .n_out = 3,
                            .n_in = 5,
                            .out = {din, dgamma, dbeta},
                            .in = {dout, in, mean, rstd, gamma}};
    size_t n;
    dcl_status s = group_norm_args(&a, N, C, R, G, &n);
    if (s != DCL_OK) return s;
    size_t params = n ? C : 0; // nothing to accumulate from an empty batch
    a.out_len[0] = n, a.out_len[1] = params, a.out_len[2] = params;
    a.in_len[0] = n, a.in_len[1] = n, a.in_len[2] = n ? N * G : 0, a.in_len[3] = a.in_len[2];
    a.in_len[4] = C;
    return dcl__op_run(dev, &a);
}

// Packs attention_*: heads divide C; qkv (N, 3C, R) and the others below 2^32 elements.
static dcl_status attention_args(struct dcl_op_args *a, size_t N, size_t heads, size_t C, size_t R,
                                 size_t *n) {
    const char *op = dcl__op_name(a->op);
    if (heads == 0 || C == 0 || C % heads != 0)
        return dcl__fail(DCL_ERR_ARG,
                         "op %s: %zu channels do not split into %zu heads (C must be a positive "
                         "multiple of heads)",
                         op, C, heads);
    if (C >= ((size_t)1 << 30))
        return dcl__fail(DCL_ERR_ARG, "op %s: %zu channels are too many", op, C);
    dcl_status s = elements(a->op, "qkv", N, 3 * C, R, 1, n);
    if (s != DCL_OK) return s;
    a->p.attn.N = N, a->p.attn.heads = heads, a->p.attn.C = C, a->p.attn.R = R;
    a->p.attn.scale = (float)(1.0 / sqrt((double)(C / heads)));
    return DCL_OK;
}

dcl_status dcl_attention_forward(dcl_device *dev, dcl_ptr out, dcl_ptr lse, dcl_ptr qkv, size_t N,
                                 size_t heads, size_t C, size_t R) {
    struct dcl_op_args a = {
        .op = DCL_OP_ATTENTION_FORWARD, .n_out = 2, .n_in = 1, .out = {out, lse}, .in = {qkv}};
    size_t n;
    dcl_status s = attention_args(&a, N, heads, C, R, &n);
    if (s != DCL_OK) return s;
    a.out_len[0] = n / 3, a.out_len[1] = n / 3 / C * heads;
    a.in_len[0] = n;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_attention_backward(dcl_device *dev, dcl_ptr dqkv, dcl_ptr dout, dcl_ptr qkv,
                                  dcl_ptr out, dcl_ptr lse, size_t N, size_t heads, size_t C,
                                  size_t R) {
    struct dcl_op_args a = {.op = DCL_OP_ATTENTION_BACKWARD,
                            .n_out = 1,
                            .n_in = 4,
                            .out = {dqkv},
                            .in = {dout, qkv, out, lse}};
    size_t n;
    dcl_status s = attention_args(&a, N, heads, C, R, &n);
    if (s != DCL_OK) return s;
    a.out_len[0] = n;
    a.in_len[0] = n / 3, a.in_len[1] = n, a.in_len[2] = n / 3, a.in_len[3] = n / 3 / C * heads;
    return dcl__op_run(dev, &a);
}

// Packs upsample2x_*: the small image (N, C, H, W) and the large one (N, C, 2H, 2W).
static dcl_status upsample_args(struct dcl_op_args *a, size_t N, size_t C, size_t H, size_t W,
                                size_t *small, size_t *large) {
    if (H >= ((size_t)1 << 31) || W >= ((size_t)1 << 31))
        return dcl__fail(DCL_ERR_ARG, "op %s: image %zu×%zu is too large", dcl__op_name(a->op), H,
                         W);
    dcl_status s = elements(a->op, "upsampled image", N, C, 2 * H, 2 * W, large);
    if (s != DCL_OK) return s;
    *small = *large / 4;
    a->p.img.N = N, a->p.img.C = C, a->p.img.H = H, a->p.img.W = W;
    return DCL_OK;
}

dcl_status dcl_upsample2x_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t N, size_t C,
                                  size_t H, size_t W) {
    struct dcl_op_args a = {
        .op = DCL_OP_UPSAMPLE2X_FORWARD, .n_out = 1, .n_in = 1, .out = {out}, .in = {in}};
    dcl_status s = upsample_args(&a, N, C, H, W, &a.in_len[0], &a.out_len[0]);
    return s != DCL_OK ? s : dcl__op_run(dev, &a);
}

dcl_status dcl_upsample2x_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dout, size_t N, size_t C,
                                   size_t H, size_t W) {
    struct dcl_op_args a = {
        .op = DCL_OP_UPSAMPLE2X_BACKWARD, .n_out = 1, .n_in = 1, .out = {din}, .in = {dout}};
    dcl_status s = upsample_args(&a, N, C, H, W, &a.out_len[0], &a.in_len[0]);
    return s != DCL_OK ? s : dcl__op_run(dev, &a);
}

// Packs concat_channels / split_channels: the parts (N, C1, R), (N, C2, R) and the whole.
static dcl_status channels_args(struct dcl_op_args *a, size_t N, size_t C1, size_t C2, size_t R,
                                size_t *na, size_t *nb, size_t *whole) {
    dcl_status s = C1 + C2 < C1
                       ? dcl__fail(DCL_ERR_ARG, "op %s: too many channels", dcl__op_name(a->op))
                       : elements(a->op, "tensor", N, C1 + C2, R, 1, whole);
    if (s != DCL_OK) return s;
    *na = N * C1 * R, *nb = N * C2 * R;
    a->p.chan.N = N, a->p.chan.C = C1, a->p.chan.C2 = C2, a->p.chan.R = R;
    return DCL_OK;
}

dcl_status dcl_concat_channels(dcl_device *dev, dcl_ptr out, dcl_ptr a, dcl_ptr b, size_t N,
                               size_t C1, size_t C2, size_t R) {
    struct dcl_op_args args = {
        .op = DCL_OP_CONCAT_CHANNELS, .n_out = 1, .n_in = 2, .out = {out}, .in = {a, b}};
    dcl_status s =
        channels_args(&args, N, C1, C2, R, &args.in_len[0], &args.in_len[1], &args.out_len[0]);
    return s != DCL_OK ? s : dcl__op_run(dev, &args);
}

dcl_status dcl_split_channels(dcl_device *dev, dcl_ptr da, dcl_ptr db, dcl_ptr dout, size_t N,
                              size_t C1, size_t C2, size_t R) {
    struct dcl_op_args args = {
        .op = DCL_OP_SPLIT_CHANNELS, .n_out = 2, .n_in = 1, .out = {da, db}, .in = {dout}};
    dcl_status s =
        channels_args(&args, N, C1, C2, R, &args.out_len[0], &args.out_len[1], &args.in_len[0]);
    return s != DCL_OK ? s : dcl__op_run(dev, &args);
}

dcl_status dcl_embedding_forward(dcl_device *dev, dcl_ptr out, dcl_ptr table, dcl_ptr labels,
                                 size_t N, size_t K, size_t E) {
    size_t n = 0, nt = 0; // set by elements() on success (gcc -O3 cannot see it)
    dcl_status s = elements(DCL_OP_EMBEDDING_FORWARD, "output", N, E, 1, 1, &n);
    if (s == DCL_OK) s = elements(DCL_OP_EMBEDDING_FORWARD, "table", K, E, 1, 1, &nt);
    if (s != DCL_OK) return s;
    struct dcl_op_args a = {.op = DCL_OP_EMBEDDING_FORWARD,
                            .n_out = 1,
                            .n_in = 2,
                            .out = {out},
                            .out_len = {n},
                            .in = {table, labels},
                            .in_len = {nt, E ? N : 0}};
    a.p.embed.N = N, a.p.embed.K = K, a.p.embed.E = E;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_embedding_backward(dcl_device *dev, dcl_ptr dtable, dcl_ptr dout, dcl_ptr labels,
                                  size_t N, size_t K, size_t E) {
    size_t n = 0, nt = 0; // set by elements() on success (gcc -O3 cannot see it)
    dcl_status s = elements(DCL_OP_EMBEDDING_BACKWARD, "gradient", N, E, 1, 1, &n);
    if (s == DCL_OK) s = elements(DCL_OP_EMBEDDING_BACKWARD, "table", K, E, 1, 1, &nt);
    if (s != DCL_OK) return s;
    struct dcl_op_args a = {.op = DCL_OP_EMBEDDING_BACKWARD,
                            .n_out = 1,
                            .n_in = 2,
                            .out = {dtable},
                            .out_len = {N ? nt : 0}, // an empty batch adds nothing
                            .in = {dout, labels},
                            .in_len = {n, nt ? N : 0}};
    a.p.embed.N = N, a.p.embed.K = K, a.p.embed.E = E;
    return dcl__op_run(dev, &a);
}

// ---- fused ops ----------------------------------------------------------------------------------

dcl_status dcl_conv_output(dcl_device *dev, dcl_ptr out, dcl_ptr cnhw, dcl_ptr bias, dcl_ptr sbias,
                           dcl_ptr res, size_t N, size_t C, size_t R) {
    size_t n = 0; // set by elements() on success (gcc -O3 cannot see it)
    dcl_status s = elements(DCL_OP_CONV_OUTPUT, "tensor", N, C, R, 1, &n);
    if (s != DCL_OK) return s;
    if (overlap(out, cnhw, n))
        return dcl__fail(DCL_ERR_ARG, "op conv_output: out and cnhw overlap in tensor '%s'",
                         out.buf->name);
    if (overlap(out, res, n) && out.off != res.off)
        return dcl__fail(DCL_ERR_ARG,
                         "op conv_output: res overlaps out in tensor '%s' (it may "
                         "be out itself)",
                         out.buf->name);
    // A term left out is an empty view (in_len 0), which the backends skip.
    struct dcl_op_args a = {
        .op = DCL_OP_CONV_OUTPUT,
        .n_out = 1,
        .n_in = 4,
        .out = {out},
        .out_len = {n},
        .in = {cnhw, bias.buf ? bias : cnhw, sbias.buf ? sbias : cnhw, res.buf ? res : cnhw},
        .in_len = {n, bias.buf ? C : 0, sbias.buf ? N * C : 0, res.buf ? n : 0}};
    a.p.chan.N = N, a.p.chan.C = C, a.p.chan.R = R;
    return dcl__op_run(dev, &a);
}

// Whether view p of np elements and view q of nq elements share an element.
static int spans(dcl_ptr p, size_t np, dcl_ptr q, size_t nq) {
    return np && nq && p.buf && p.buf == q.buf && p.off < q.off + nq && q.off < p.off + np;
}

// Packs conv2d_*: the geometry as im2col's, and the sizes of in, w (Co, C·k·k) and out
// (N, Co, Ho, Wo).
static dcl_status conv2d_args(struct dcl_op_args *a, size_t N, size_t C, size_t H, size_t W,
                              size_t Co, size_t k, size_t stride, size_t pad, size_t *img,
                              size_t *w, size_t *out) {
    size_t col;
    dcl_status s = conv_args(a, N, C, H, W, k, stride, pad, img, &col);
    if (s == DCL_OK) s = elements(a->op, "weights", Co, C, k, k, w);
    if (s == DCL_OK) s = elements(a->op, "output", N, Co, a->p.img.Ho, a->p.img.Wo, out);
    if (s != DCL_OK) return s;
    size_t Ho = a->p.img.Ho, Wo = a->p.img.Wo;
    a->p.conv.N = N, a->p.conv.C = C, a->p.conv.H = H, a->p.conv.W = W;
    a->p.conv.k = k, a->p.conv.stride = stride, a->p.conv.pad = pad;
    a->p.conv.Ho = Ho, a->p.conv.Wo = Wo, a->p.conv.Co = Co;
    return DCL_OK;
}

dcl_status dcl_conv2d_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr w, dcl_ptr bias,
                              dcl_ptr sbias, dcl_ptr res, size_t N, size_t C, size_t H, size_t W,
                              size_t Co, size_t k, size_t stride, size_t pad) {
    struct dcl_op_args a = {.op = DCL_OP_CONV2D_FORWARD, .n_out = 1, .n_in = 5};
    size_t ni = 0, nw = 0, no = 0; // set by conv2d_args on success
    dcl_status s = conv2d_args(&a, N, C, H, W, Co, k, stride, pad, &ni, &nw, &no);
    if (s != DCL_OK) return s;
    if (spans(out, no, in, ni) || spans(out, no, w, nw))
        return dcl__fail(DCL_ERR_ARG, "op conv2d_forward: out overlaps in or w in tensor '%s'",
                         out.buf->name);
    if (overlap(out, res, no) && out.off != res.off)
        return dcl__fail(
            DCL_ERR_ARG,
            "op conv2d_forward: res overlaps out in tensor '%s' (it may be out itself)",
            out.buf->name);
    // A term left out is an empty view (in_len 0), which the backends skip.
    a.out[0] = out, a.out_len[0] = no;
    a.in[0] = in, a.in_len[0] = ni, a.in[1] = w, a.in_len[1] = nw;
    a.in[2] = bias.buf ? bias : in, a.in_len[2] = bias.buf ? Co : 0;
    a.in[3] = sbias.buf ? sbias : in, a.in_len[3] = sbias.buf ? N * Co : 0;
    a.in[4] = res.buf ? res : in, a.in_len[4] = res.buf ? no : 0;
    return dcl__op_run(dev, &a);
}

dcl_status dcl_conv2d_backward(dcl_device *dev, dcl_ptr dw, dcl_ptr din, dcl_ptr dout, dcl_ptr in,
                               dcl_ptr w, size_t N, size_t C, size_t H, size_t W, size_t Co,
                               size_t k, size_t stride, size_t pad) {
    struct dcl_op_args a = {.op = DCL_OP_CONV2D_BACKWARD, .n_out = 2, .n_in = 3};
    size_t ni = 0, nw = 0, no = 0; // set by conv2d_args on success
    dcl_status s = conv2d_args(&a, N, C, H, W, Co, k, stride, pad, &ni, &nw, &no);
    if (s != DCL_OK) return s;
    size_t nd = din.buf ? ni : 0;
    if (spans(dw, nw, dout, no) || spans(dw, nw, in, ni) || spans(dw, nw, w, nw) ||
        spans(din, nd, dout, no) || spans(din, nd, in, ni) || spans(din, nd, w, nw) ||
        spans(din, nd, dw, nw))
        return dcl__fail(DCL_ERR_ARG, "op conv2d_backward: dw or din overlaps another tensor");
    a.out[0] = dw, a.out_len[0] = nw;
    a.out[1] = din.buf ? din : dw, a.out_len[1] = nd;
    a.in[0] = dout, a.in_len[0] = no, a.in[1] = in, a.in_len[1] = ni;
    a.in[2] = w, a.in_len[2] = nw;
    return dcl__op_run(dev, &a);
}
