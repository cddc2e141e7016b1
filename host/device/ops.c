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

dcl_status dcl_relu_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n) {
    return elementwise(dev, DCL_OP_RELU_FORWARD, out, &in, 1, n);
}

dcl_status dcl_relu_backward(dcl_device *dev, dcl_ptr din, dcl_ptr in, dcl_ptr dout, size_t n) {
    dcl_ptr ins[2] = {in, dout};
    return elementwise(dev, DCL_OP_RELU_BACKWARD, din, ins, 2, n);
}

dcl_status dcl_silu_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, size_t n) {
    return elementwise(dev, DCL_OP_SILU_FORWARD, out, &in, 1, n);
}

dcl_status dcl_silu_backward(dcl_device *dev, dcl_ptr din, dcl_ptr in, dcl_ptr dout, size_t n) {
    dcl_ptr ins[2] = {in, dout};
    return elementwise(dev, DCL_OP_SILU_BACKWARD, din, ins, 2, n);
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
