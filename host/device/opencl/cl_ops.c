// The OpenCL backend's ops (kernels of cl/, GEMM through CLBlast), its backend table, and the open
// that installs that table on a device.
#include <clblast_c.h>
#include <stdio.h>

#include "core/error.h"
#include "device/opencl/cl_impl.h"
#include "device/test_hooks.h" // dcl__cl_set_launch

// One kernel call being set up: arguments are appended in order; the first failure sticks.
struct call {
    struct dcl_cl_ctx *ctx;
    struct dcl_cl_kernel *k;
    cl_uint next;
    dcl_status s;
};

// Starts a call of the op's kernel (second: its kernel2), as DCL_OP_MAP names them.
static int begin(struct call *c, void *ctx, const struct dcl_op_args *a, int second) {
    const struct dcl_op_desc *d = &dcl__op_descs[a->op];
    c->ctx = ctx, c->next = 0;
    c->s = dcl__cl_kernel(c->ctx, d->file, second ? d->kernel2 : d->kernel, &c->k);
    return c->s != DCL_OK;
}

static void arg(struct call *c, size_t size, const void *value) {
    if (c->s != DCL_OK) return;
    cl_int err = clSetKernelArg(c->k->kernel, c->next, size, value); // copies the value now
    if (err != CL_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "clSetKernelArg(%s, arg %u)", c->k->name, c->next);
        c->s = dcl__cl_fail(c->ctx, err, what, __FILE__, __LINE__);
    }
    c->next++;
}

static void u32(struct call *c, size_t v) {
    cl_uint x = (cl_uint)v;
    arg(c, sizeof x, &x);
}
static void u64(struct call *c, uint64_t v) {
    cl_ulong x = v;
    arg(c, sizeof x, &x);
}
static void f32(struct call *c, float v) { arg(c, sizeof v, &v); }
static void mem(struct call *c, cl_mem m) { arg(c, sizeof m, &m); }
static void local_words(struct call *c, size_t n) { arg(c, n * 4, NULL); }
// A tensor is two kernel arguments: the buffer and the element offset.
static void tensor(struct call *c, dcl_ptr p) { mem(c, dcl__cl_mem(p)), u32(c, p.off); }

// Enqueues the call over n items with the default launch shape.
static dcl_status run(struct call *c, size_t n) {
    if (c->s != DCL_OK) return c->s;
    return dcl__cl_launch(c->ctx, c->k, n, dcl__cl_local_size(c->ctx, c->k), 0);
}

// MAP1 and MAP2 ops (and copy): the kernel takes the output, the inputs in order, then n; over
// `per_item` elements a work-item (the activations take 8: FOR_EACH8, cl/common.h).
static dcl_status map(void *ctx, const struct dcl_op_args *a, size_t per_item) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]);
    for (int i = 0; i < a->n_in; i++) tensor(&c, a->in[i]);
    u32(&c, a->n);
    return run(&c, (a->n + per_item - 1) / per_item);
}

static dcl_status cl_map(void *ctx, const struct dcl_op_args *a) { return map(ctx, a, 8); }

static dcl_status cl_fill(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), f32(&c, a->p.fill.value), u32(&c, a->n);
    return run(&c, a->n);
}

static dcl_status cl_copy(void *ctx, const struct dcl_op_args *a) { return map(ctx, a, 1); }

static dcl_status cl_axpby(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]);
    f32(&c, a->p.lin.a), f32(&c, a->p.lin.b), u32(&c, a->n);
    return run(&c, a->n);
}

static dcl_status cl_lincomb3(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]), tensor(&c, a->in[2]);
    f32(&c, a->p.lin.a), f32(&c, a->p.lin.b), f32(&c, a->p.lin.c), u32(&c, a->n);
    return run(&c, a->n);
}

static dcl_status cl_bias_add(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]);
    u32(&c, a->p.bias.N), u32(&c, a->p.bias.D);
    return run(&c, a->p.bias.N * ((a->p.bias.D + 7) / 8)); // a work-item per 8 columns of a row
}

static dcl_status cl_bias_backward(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), u32(&c, a->p.bias.N), u32(&c, a->p.bias.D);
    return run(&c, a->p.bias.D);
}

static dcl_status cl_concat_cols(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]);
    u32(&c, a->p.rows.N), u32(&c, a->p.rows.D), u32(&c, a->p.rows.D2);
    return run(&c, a->p.rows.N * (a->p.rows.D + a->p.rows.D2));
}

static dcl_status cl_time_embedding(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), u32(&c, a->p.rows.N), u32(&c, a->p.rows.D);
    // A work-item per row and 8 of its E − E/2 frequencies.
    return run(&c, a->p.rows.N * ((a->p.rows.D - a->p.rows.D / 2 + 7) / 8));
}

static dcl_status cl_forward_process(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->out[1]);
    tensor(&c, a->in[0]), tensor(&c, a->in[1]), tensor(&c, a->in[2]);
    u32(&c, a->p.rows.N), u32(&c, a->p.rows.D);
    return run(&c, a->p.rows.N * a->p.rows.D);
}

static dcl_status cl_mse_backward(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]), tensor(&c, a->in[2]);
    f32(&c, a->p.rows.scale), u32(&c, a->p.rows.N), u32(&c, a->p.rows.D);
    return run(&c, a->p.rows.N * a->p.rows.D);
}

static dcl_status cl_softmax_cross_entropy(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->out[1]), tensor(&c, a->in[0]), tensor(&c, a->in[1]);
    f32(&c, a->p.rows.scale), u32(&c, a->p.rows.N), u32(&c, a->p.rows.D);
    return run(&c, a->p.rows.N);
}

static dcl_status cl_adamw_step(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->out[1]), tensor(&c, a->out[2]);
    tensor(&c, a->in[0]), tensor(&c, a->in[1]);
    f32(&c, a->p.adamw.decay), f32(&c, a->p.adamw.beta1), f32(&c, a->p.adamw.beta2);
    f32(&c, a->p.adamw.eps), f32(&c, a->p.adamw.step_size), f32(&c, a->p.adamw.bc2_sqrt);
    f32(&c, a->p.adamw.clip), u32(&c, a->n);
    return run(&c, a->n);
}

// Local size for a reduction kernel: its scratch (4 bytes per work-item) within half the device's
// local memory.
static size_t reduce_local(struct dcl_cl_ctx *ctx, const struct dcl_cl_kernel *k) {
    size_t local = dcl__cl_local_size(ctx, k);
    while (local > 1 && local * 4 > ctx->local_mem / 2) local /= 2;
    return local;
}

// Two passes: up to DCL_CL_MAX_GROUPS_REDUCE partials into ctx->partials, then one group folds
// them into out[0]. square: 0 sum, 1 sum of squares, -1 (count kernels) no such argument.
static dcl_status reduce(void *p, const struct dcl_op_args *a, int square) {
    struct dcl_cl_ctx *ctx = p;
    struct call c, f;
    if (begin(&c, ctx, a, 0) || begin(&f, ctx, a, 1)) return c.s != DCL_OK ? c.s : f.s;
    size_t lp = reduce_local(ctx, c.k), lf = reduce_local(ctx, f.k);
    size_t groups = (a->n + lp - 1) / lp;
    if (groups > DCL_CL_MAX_GROUPS_REDUCE) groups = DCL_CL_MAX_GROUPS_REDUCE;
    if (groups == 0) groups = 1;
    if (ctx->force_groups && groups > ctx->force_groups) groups = ctx->force_groups;
    mem(&c, ctx->partials), tensor(&c, a->in[0]), u32(&c, a->n);
    if (square >= 0) u32(&c, (size_t)square);
    local_words(&c, lp);
    if (c.s != DCL_OK) return c.s;
    dcl_status s = dcl__cl_launch(ctx, c.k, a->n, lp, groups);
    if (s != DCL_OK) return s;
    tensor(&f, a->out[0]), mem(&f, ctx->partials), u32(&f, groups), local_words(&f, lf);
    return f.s != DCL_OK ? f.s : dcl__cl_launch(ctx, f.k, lf, lf, 1);
}

static dcl_status cl_sum(void *ctx, const struct dcl_op_args *a) { return reduce(ctx, a, 0); }
static dcl_status cl_sumsq(void *ctx, const struct dcl_op_args *a) { return reduce(ctx, a, 1); }
static dcl_status cl_count_nonfinite(void *ctx, const struct dcl_op_args *a) {
    return reduce(ctx, a, -1);
}

static dcl_status rng(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), u64(&c, a->p.rng.seed), u32(&c, a->p.rng.purpose),
        u32(&c, a->p.rng.step);
    u64(&c, a->p.rng.first), u32(&c, a->n);
    return run(&c, a->n);
}

static dcl_status cl_rng_bits(void *ctx, const struct dcl_op_args *a) { return rng(ctx, a); }
static dcl_status cl_rng_uniform(void *ctx, const struct dcl_op_args *a) { return rng(ctx, a); }
static dcl_status cl_rng_normal(void *ctx, const struct dcl_op_args *a) { return rng(ctx, a); }

// ---- images (NCHW) and class embedding ----------------------------------------------------------

// im2col / col2im: (out, in, N, C, H, W, k, stride, pad, Ho, Wo) over n items.
static dcl_status conv(void *ctx, const struct dcl_op_args *a, size_t n) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]);
    u32(&c, a->p.img.N), u32(&c, a->p.img.C), u32(&c, a->p.img.H), u32(&c, a->p.img.W);
    u32(&c, a->p.img.k), u32(&c, a->p.img.stride), u32(&c, a->p.img.pad);
    u32(&c, a->p.img.Ho), u32(&c, a->p.img.Wo);
    return run(&c, n);
}

static dcl_status cl_im2col(void *ctx, const struct dcl_op_args *a) {
    // One work-item per (c, ky, kx, n), each writing Ho·Wo entries.
    size_t plane = a->p.img.Ho * a->p.img.Wo;
    return conv(ctx, a, plane ? a->out_len[0] / plane : 0);
}
static dcl_status cl_col2im(void *ctx, const struct dcl_op_args *a) {
    // One work-item per 8 pixels of an image row.
    size_t W = a->p.img.W;
    return conv(ctx, a, W ? a->out_len[0] / W * ((W + 7) / 8) : 0);
}

static dcl_status cl_swap01(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]);
    u32(&c, a->p.swap.A), u32(&c, a->p.swap.B), u32(&c, a->p.swap.R);
    return run(&c, a->out_len[0]);
}

static dcl_status cl_channel_bias_add(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]);
    u32(&c, a->p.chan.N), u32(&c, a->p.chan.C), u32(&c, a->p.chan.R);
    u32(&c, (size_t)a->p.chan.per_sample);
    return run(&c, a->out_len[0]);
}

// A kernel with one work-group per row of `rows` rows of `len` elements (grid-stride over them) and
// local scratch of one float per work-item. Short rows get a smaller group (the least power of two
// >= len): 256 work-items for a row of 10 would idle, and pay for every barrier.
static dcl_status run_rows(struct call *c, size_t rows, size_t len) {
    if (c->s != DCL_OK) return c->s;
    size_t local = reduce_local(c->ctx, c->k);
    if (!c->ctx->force_local)
        while (local > 1 && local / 2 >= len) local /= 2;
    local_words(c, local);
    if (c->s != DCL_OK) return c->s;
    return dcl__cl_launch(c->ctx, c->k, rows * local, local, 0);
}

static dcl_status cl_channel_bias_backward(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]);
    u32(&c, a->p.chan.N), u32(&c, a->p.chan.C), u32(&c, a->p.chan.R);
    u32(&c, (size_t)a->p.chan.per_sample);
    size_t N = a->p.chan.N, R8 = (a->p.chan.R + 7) / 8; // blocks of 8 per (n, c) plane
    return run_rows(&c, a->out_len[0], a->p.chan.per_sample ? R8 : N * R8);
}

// group_norm_*: a work-item takes blocks of 8 elements of one channel, (R + 7) / 8 per channel.
static size_t blocks8(const struct dcl_op_args *a) { return (a->p.chan.R + 7) / 8; }

static dcl_status cl_group_norm_forward(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->out[1]), tensor(&c, a->out[2]);
    tensor(&c, a->in[0]), tensor(&c, a->in[1]), tensor(&c, a->in[2]);
    u32(&c, a->p.chan.N), u32(&c, a->p.chan.C), u32(&c, a->p.chan.R), u32(&c, a->p.chan.G);
    f32(&c, a->p.chan.eps);
    return run_rows(&c, a->p.chan.N * a->p.chan.G, a->p.chan.C / a->p.chan.G * blocks8(a));
}

// Two kernels: the input gradient per (n, group), then the parameter gradients per channel.
static dcl_status cl_group_norm_backward(void *ctx, const struct dcl_op_args *a) {
    struct call d, p;
    if (begin(&d, ctx, a, 0) || begin(&p, ctx, a, 1)) return d.s != DCL_OK ? d.s : p.s;
    tensor(&d, a->out[0]);
    for (int i = 0; i < 5; i++) tensor(&d, a->in[i]);
    u32(&d, a->p.chan.N), u32(&d, a->p.chan.C), u32(&d, a->p.chan.R), u32(&d, a->p.chan.G);
    dcl_status s = run_rows(&d, a->p.chan.N * a->p.chan.G, a->p.chan.C / a->p.chan.G * blocks8(a));
    if (s != DCL_OK) return s;
    tensor(&p, a->out[1]), tensor(&p, a->out[2]);
    for (int i = 0; i < 4; i++) tensor(&p, a->in[i]);
    u32(&p, a->p.chan.N), u32(&p, a->p.chan.C), u32(&p, a->p.chan.R), u32(&p, a->p.chan.G);
    return run_rows(&p, a->out_len[1], a->p.chan.N * blocks8(a));
}

// upsample2x_*: (out, in, N, C, H, W) over n items.
static dcl_status upsample(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]);
    u32(&c, a->p.img.N), u32(&c, a->p.img.C), u32(&c, a->p.img.H), u32(&c, a->p.img.W);
    return run(&c, a->out_len[0]);
}

static dcl_status cl_upsample2x_forward(void *ctx, const struct dcl_op_args *a) {
    return upsample(ctx, a);
}
static dcl_status cl_upsample2x_backward(void *ctx, const struct dcl_op_args *a) {
    return upsample(ctx, a);
}

// concat_channels (out; a, b) and split_channels (da, db; dout): over the whole tensor.
static dcl_status channels(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    for (int i = 0; i < a->n_out; i++) tensor(&c, a->out[i]);
    for (int i = 0; i < a->n_in; i++) tensor(&c, a->in[i]);
    u32(&c, a->p.chan.N), u32(&c, a->p.chan.C), u32(&c, a->p.chan.C2), u32(&c, a->p.chan.R);
    return run(&c, a->p.chan.N * (a->p.chan.C + a->p.chan.C2) * a->p.chan.R);
}

static dcl_status cl_concat_channels(void *ctx, const struct dcl_op_args *a) {
    return channels(ctx, a);
}
static dcl_status cl_split_channels(void *ctx, const struct dcl_op_args *a) {
    return channels(ctx, a);
}

// embedding_*: (out, in, labels, N, K, E) over the output's elements.
static dcl_status embedding(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]);
    u32(&c, a->p.embed.N), u32(&c, a->p.embed.K), u32(&c, a->p.embed.E);
    return run(&c, a->out_len[0]);
}

static dcl_status cl_embedding_forward(void *ctx, const struct dcl_op_args *a) {
    return embedding(ctx, a);
}
static dcl_status cl_embedding_backward(void *ctx, const struct dcl_op_args *a) {
    return embedding(ctx, a);
}

// cl/gemm.cl's kernels, for the cases ctx->own_gemm selects: gemm_rows when op(B) = B, gemm_dots
// when op(B) = Bᵀ and op(A) = A. Returns 0 when neither fits (both transposed, or sizes past their
// indices): CLBlast runs it.
static int own_gemm(struct dcl_cl_ctx *ctx, const struct dcl_op_args *a, dcl_status *s) {
    size_t M = a->p.gemm.M, N = a->p.gemm.N, K = a->p.gemm.K, lim = (size_t)1 << 31;
    int ta = a->p.gemm.trans_a, tb = a->p.gemm.trans_b;
    if ((ta && tb) || M * K >= lim || K * N >= lim || M * N >= lim || !M || !N) return 0;
    // A small B (a layer's weights: short dot products over K, which gemm_dots runs at a fraction
    // of gemm_rows' rate on PoCL) is transposed into ctx->gemm_bt first, then runs as NN.
    int bt = tb && N * K <= DCL_CL_GEMM_BT_MAX;
    if (bt && !ctx->gemm_bt) {
        cl_int err;
        ctx->gemm_bt =
            clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, DCL_CL_GEMM_BT_MAX * 4, NULL, &err);
        if (err != CL_SUCCESS) {
            ctx->gemm_bt = NULL;
            *s = dcl__cl_fail(ctx, err, "clCreateBuffer(GEMM transposition)", __FILE__, __LINE__);
            return 1;
        }
    }
    struct call c = {ctx, NULL, 0, DCL_OK};
    if (bt) { // gemm_bt (K, N) = Bᵀ: swap01 of B as (N, K, 1)
        c.s = dcl__cl_kernel(ctx, "layout.cl", "swap01", &c.k);
        mem(&c, ctx->gemm_bt), u32(&c, 0), tensor(&c, a->in[1]), u32(&c, N), u32(&c, K), u32(&c, 1);
        if ((*s = run(&c, N * K)) != DCL_OK) return 1;
        c.next = 0, tb = 0;
    }
    c.s = dcl__cl_kernel(ctx, "gemm.cl", tb ? "gemm_dots" : "gemm_rows", &c.k);
    tensor(&c, a->out[0]), tensor(&c, a->in[0]);
    if (bt) mem(&c, ctx->gemm_bt), u32(&c, 0);
    else tensor(&c, a->in[1]);
    u32(&c, M), u32(&c, N), u32(&c, K);
    if (!tb) u32(&c, (size_t)ta);
    f32(&c, a->p.gemm.alpha), f32(&c, a->p.gemm.beta);
    size_t blocks = tb ? ((M + 3) / 4) * ((N + 3) / 4) : ((M + 7) / 8) * ((N + 15) / 16);
    *s = c.s != DCL_OK ? c.s : dcl__cl_launch(ctx, c.k, blocks, dcl__cl_local_size(ctx, c.k), 0);
    return 1;
}

// C (M, N) = alpha op(A) op(B) + beta C, row-major, through CLBlast or cl/gemm.cl.
static dcl_status cl_gemm(void *p, const struct dcl_op_args *a) {
    struct dcl_cl_ctx *ctx = p;
    size_t M = a->p.gemm.M, N = a->p.gemm.N, K = a->p.gemm.K;
    int ta = a->p.gemm.trans_a, tb = a->p.gemm.trans_b;
    dcl_status s;
    if ((ctx->own_gemm >> (2 * ta + tb) & 1) && own_gemm(ctx, a, &s)) return s;
    size_t lda = ta ? M : K, ldb = tb ? K : N;
    ctx->stats->launches++; // one CLBlast call (it may enqueue more than one kernel)
    CLBlastStatusCode st = CLBlastSgemm(
        CLBlastLayoutRowMajor, ta ? CLBlastTransposeYes : CLBlastTransposeNo,
        tb ? CLBlastTransposeYes : CLBlastTransposeNo, M, N, K, a->p.gemm.alpha,
        dcl__cl_mem(a->in[0]), a->in[0].off, lda, dcl__cl_mem(a->in[1]), a->in[1].off, ldb,
        a->p.gemm.beta, dcl__cl_mem(a->out[0]), a->out[0].off, N, &ctx->queue, NULL);
    if (st != CLBlastSuccess) {
        if (st > -1000) { // CLBlast passes OpenCL errors through unchanged
            char what[128];
            snprintf(what, sizeof what, "CLBlastSgemm(M=%zu N=%zu K=%zu)", M, N, K);
            return dcl__cl_fail(ctx, st, what, __FILE__, __LINE__);
        }
        return dcl__fail(DCL_ERR_BLAS,
                         "CLBlastSgemm(M=%zu N=%zu K=%zu, trans %d%d) on %s (%s) "
                         "failed with CLBlast status %d (see clblast_c.h)",
                         M, N, K, ta, tb, ctx->info->spec, ctx->info->name, (int)st);
    }
    return dcl__cl_after_enqueue(ctx, "CLBlastSgemm(M=%zu N=%zu K=%zu)", M, N, K);
}

// ---- fused ops ----------------------------------------------------------------------------------

static dcl_status cl_conv_output(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]);
    for (int i = 0; i < 4; i++) tensor(&c, a->in[i]);
    u32(&c, a->p.chan.N), u32(&c, a->p.chan.C), u32(&c, a->p.chan.R);
    // The terms present (non-empty views): bit 0 bias, 1 sbias, 2 res.
    u32(&c, (a->in_len[1] ? 1u : 0u) | (a->in_len[2] ? 2u : 0u) | (a->in_len[3] ? 4u : 0u));
    // One work-item per 8 elements of an (n, c) plane.
    return run(&c, a->p.chan.N * a->p.chan.C * ((a->p.chan.R + 7) / 8));
}

// Whole convolutions, direct kernels (cl/conv.cl): the geometry (N, C, H, W, k, stride, pad, Ho,
// Wo, Co) after the tensors.
static void conv2d_geometry(struct call *c, const struct dcl_op_args *a) {
    u32(c, a->p.conv.N), u32(c, a->p.conv.C), u32(c, a->p.conv.H), u32(c, a->p.conv.W);
    u32(c, a->p.conv.k), u32(c, a->p.conv.stride), u32(c, a->p.conv.pad);
    u32(c, a->p.conv.Ho), u32(c, a->p.conv.Wo), u32(c, a->p.conv.Co);
}

// Same convolutions (stride 1, k = 2p + 1) run on zero-bordered CNHW planes instead (cl/conv.cl,
// "Same convolutions"): a padding pass, one GEMM-like kernel that reads every tap in place, and
// the output pass; no column matrix. The planes live in ctx->conv_scratch.
struct taps {
    size_t N, C, H, W, k, p, Co;
    size_t Wp, L, Q16; // padded row, plane (a multiple of Wp), output positions (as cl/conv.cl)
    size_t KC, nch;    // backward: the weight gradient's chunks of positions and their number
};

// The plan of a same convolution; 0 for other shapes, or when the planes would pass the kernels'
// 32-bit indices or the device's largest buffer (the direct kernels run those).
static int taps_plan(const struct dcl_cl_ctx *ctx, const struct dcl_op_args *a, struct taps *t) {
    size_t k = a->p.conv.k, p = a->p.conv.pad, H = a->p.conv.H, W = a->p.conv.W;
    if (a->p.conv.stride != 1 || 2 * p + 1 != k || a->p.conv.Ho != H || a->p.conv.Wo != W) return 0;
    t->N = a->p.conv.N, t->C = a->p.conv.C, t->H = H, t->W = W, t->k = k, t->p = p;
    t->Co = a->p.conv.Co, t->Wp = W + p;
    size_t Q = t->N * (H + p) * t->Wp, o = p * t->Wp + p;
    t->Q16 = (Q + 15) / 16 * 16;
    t->L = (t->Q16 + 2 * o + t->Wp - 1) / t->Wp * t->Wp;
    // The weight gradient sums positions in chunks of about 2048 (at most 64 chunks), fewer when
    // their partial sums (nch·Co·C·k·k words) would pass 2^22: a number fixed by the sizes.
    size_t E = t->Co * t->C * k * k, nch = t->Q16 / 2048;
    if (nch > 64) nch = 64;
    if (nch > ((size_t)1 << 22) / E) nch = ((size_t)1 << 22) / E;
    if (nch < 1) nch = 1;
    t->KC = ((t->Q16 + nch - 1) / nch + 7) / 8 * 8;
    t->nch = (t->Q16 + t->KC - 1) / t->KC;
    size_t planes = 2 * t->C + t->Co, lim = (size_t)1 << 31;
    return planes * t->L < lim && t->nch * E < lim &&
           (planes * t->L + t->nch * E) * 4 <= ctx->info->max_alloc;
}

// ctx->conv_scratch with at least n words, grown at least twofold (dcl__cl_open allocates the
// first DCL_CL_PLANES_INIT words).
static dcl_status conv_scratch(struct dcl_cl_ctx *ctx, size_t n) {
    if (ctx->conv_scratch_n >= n) return DCL_OK;
    if (n < 2 * ctx->conv_scratch_n) n = 2 * ctx->conv_scratch_n;
    cl_int err;
    cl_mem m = clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, n * 4, NULL, &err);
    if (err != CL_SUCCESS)
        return dcl__cl_fail(ctx, err, "clCreateBuffer(convolution planes)", __FILE__, __LINE__);
    if (ctx->conv_scratch) clReleaseMemObject(ctx->conv_scratch); // once its kernels have run
    ctx->conv_scratch = m, ctx->conv_scratch_n = n;
    return DCL_OK;
}

// Starts a call of one of cl/conv.cl's same-convolution kernels.
static int begin_taps(struct call *c, struct dcl_cl_ctx *ctx, const char *kernel) {
    c->ctx = ctx, c->next = 0;
    c->s = dcl__cl_kernel(ctx, "conv.cl", kernel, &c->k);
    return c->s != DCL_OK;
}

// Planes of C channels at word off of the scratch = in (N, C, H, W), padded.
static dcl_status taps_pad(struct dcl_cl_ctx *ctx, const struct taps *t, size_t off, dcl_ptr in,
                           size_t C) {
    struct call c;
    if (begin_taps(&c, ctx, "conv_pad")) return c.s;
    mem(&c, ctx->conv_scratch), u32(&c, off), tensor(&c, in);
    u32(&c, t->N), u32(&c, C), u32(&c, t->H), u32(&c, t->W), u32(&c, t->p), u32(&c, t->L);
    return run(&c, C * (t->L / t->Wp));
}

// out (N, C, H, W) = the planes at word off, + the terms of a->in[first..first+2] present (bias,
// sbias, res; none when first < 0).
static dcl_status taps_unpad(struct dcl_cl_ctx *ctx, const struct taps *t, dcl_ptr out, size_t off,
                             size_t C, const struct dcl_op_args *a, int first) {
    struct call c;
    if (begin_taps(&c, ctx, "conv_unpad")) return c.s;
    tensor(&c, out), mem(&c, ctx->conv_scratch), u32(&c, off);
    unsigned has = 0;
    for (int i = 0; i < 3; i++) {
        tensor(&c, first < 0 ? out : a->in[first + i]);
        if (first >= 0 && a->in_len[first + i]) has |= 1u << i;
    }
    u32(&c, t->N), u32(&c, C), u32(&c, t->H), u32(&c, t->W), u32(&c, t->p), u32(&c, t->L);
    u32(&c, has);
    return run(&c, t->N * C * t->H);
}

// conv_taps_forward or conv_taps_data: planes at word `to` (M of them) from the planes at `from`
// and w.
static dcl_status taps_gemm(struct dcl_cl_ctx *ctx, const struct taps *t, const char *kernel,
                            size_t to, size_t from, dcl_ptr w, size_t M) {
    struct call c;
    if (begin_taps(&c, ctx, kernel)) return c.s;
    mem(&c, ctx->conv_scratch), u32(&c, to), mem(&c, ctx->conv_scratch), u32(&c, from);
    tensor(&c, w), u32(&c, t->Co), u32(&c, t->C), u32(&c, t->k), u32(&c, t->Wp), u32(&c, t->L);
    u32(&c, t->Q16);
    return run(&c, (M + 7) / 8 * (t->Q16 / 16)); // CONV_RM = 8 planes × 16 positions an item
}

static dcl_status taps_forward(struct dcl_cl_ctx *ctx, const struct dcl_op_args *a,
                               const struct taps *t) {
    size_t x = 0, y = t->C * t->L; // scratch: x's planes, then y's
    TRY(conv_scratch(ctx, (t->C + t->Co) * t->L));
    TRY(taps_pad(ctx, t, x, a->in[0], t->C));
    TRY(taps_gemm(ctx, t, "conv_taps_forward", y, x, a->in[1], t->Co));
    return taps_unpad(ctx, t, a->out[0], y, t->Co, a, 2);
}

static dcl_status taps_backward(struct dcl_cl_ctx *ctx, const struct dcl_op_args *a,
                                const struct taps *t) {
    size_t E = t->Co * t->C * t->k * t->k;
    // scratch: x's planes, dout's, the weight gradient's partial sums, din's planes
    size_t x = 0, dy = t->C * t->L, part = dy + t->Co * t->L, dx = part + t->nch * E;
    TRY(conv_scratch(ctx, dx + (a->out_len[1] ? t->C * t->L : 0)));
    TRY(taps_pad(ctx, t, dy, a->in[0], t->Co));
    struct call c;
    if (a->out_len[0]) { // dw += ...
        TRY(taps_pad(ctx, t, x, a->in[1], t->C));
        if (begin_taps(&c, ctx, "conv_taps_weight")) return c.s;
        mem(&c, ctx->conv_scratch), u32(&c, part), mem(&c, ctx->conv_scratch), u32(&c, dy);
        mem(&c, ctx->conv_scratch), u32(&c, x), u32(&c, t->Co), u32(&c, t->C), u32(&c, t->k);
        u32(&c, t->Wp), u32(&c, t->L), u32(&c, t->Q16), u32(&c, t->KC);
        TRY(run(&c, t->nch * ((t->Co + 3) / 4) * t->C * ((t->k * t->k + 2) / 3)));
        if (begin_taps(&c, ctx, "conv_taps_weight_sum")) return c.s;
        tensor(&c, a->out[0]), mem(&c, ctx->conv_scratch), u32(&c, part), u32(&c, E);
        u32(&c, t->nch);
        TRY(run(&c, E));
    }
    if (!a->out_len[1]) return DCL_OK;
    TRY(taps_gemm(ctx, t, "conv_taps_data", dx, dy, a->in[2], t->C));
    return taps_unpad(ctx, t, a->out[1], dx, t->C, a, -1);
}

int dcl__cl_conv_planes(const dcl_device *dev) {
    return ((const struct dcl_cl_ctx *)dev->ctx)->own_gemm & 1;
}

static dcl_status cl_conv2d_forward(void *ctx, const struct dcl_op_args *a) {
    struct taps t;
    if (taps_plan(ctx, a, &t)) return taps_forward(ctx, a, &t);
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]);
    for (int i = 0; i < 5; i++) tensor(&c, a->in[i]);
    conv2d_geometry(&c, a);
    // The terms present (non-empty views): bit 0 bias, 1 sbias, 2 res.
    u32(&c, (a->in_len[2] ? 1u : 0u) | (a->in_len[3] ? 2u : 0u) | (a->in_len[4] ? 4u : 0u));
    return run(&c, a->out_len[0]);
}

static dcl_status cl_conv2d_backward(void *ctx, const struct dcl_op_args *a) {
    struct taps t;
    if (taps_plan(ctx, a, &t)) return taps_backward(ctx, a, &t);
    struct call c;
    if (a->out_len[0]) { // dw += ...
        if (begin(&c, ctx, a, 0)) return c.s;
        tensor(&c, a->out[0]), tensor(&c, a->in[0]), tensor(&c, a->in[1]);
        conv2d_geometry(&c, a);
        TRY(run(&c, a->out_len[0]));
    }
    if (!a->out_len[1]) return DCL_OK;
    if (begin(&c, ctx, a, 1)) return c.s; // din = ...
    tensor(&c, a->out[1]), tensor(&c, a->in[0]), tensor(&c, a->in[2]);
    conv2d_geometry(&c, a);
    return run(&c, a->out_len[1]);
}

// ---- self-attention (cl/attention.cl) ------------------------------------------------------------
// attention_*: one work-item per query (or key) row, N·heads·R of them (cl/attention.cl).
static void attention_sizes(struct call *c, const struct dcl_op_args *a) {
    f32(c, a->p.attn.scale);
    u32(c, a->p.attn.N), u32(c, a->p.attn.heads), u32(c, a->p.attn.C), u32(c, a->p.attn.R);
}

static dcl_status cl_attention_forward(void *ctx, const struct dcl_op_args *a) {
    struct call c;
    if (begin(&c, ctx, a, 0)) return c.s;
    tensor(&c, a->out[0]), tensor(&c, a->out[1]), tensor(&c, a->in[0]);
    attention_sizes(&c, a);
    return run(&c, a->out_len[1]);
}

// Two kernels: dq by a pass over the query rows, then dk and dv by one over the key rows.
static dcl_status cl_attention_backward(void *ctx, const struct dcl_op_args *a) {
    for (int pass = 0; pass < 2; pass++) {
        struct call c;
        if (begin(&c, ctx, a, pass)) return c.s;
        tensor(&c, a->out[0]);
        for (int i = 0; i < 4; i++) tensor(&c, a->in[i]);
        attention_sizes(&c, a);
        TRY(run(&c, a->in_len[3]));
    }
    return DCL_OK;
}
// ---- end of self-attention ----------------------------------------------------------------------

// Every op of DCL_OP_MAP: cl_<name> for OWN ops, cl_map for MAP1 and MAP2 ops. An OWN op without
// an OpenCL version yet is `#define cl_<name> NULL` here: the dispatcher runs it on the CPU
// reference.
#define DCL_CL_FN_OWN(name) cl_##name
#define DCL_CL_FN_MAP1(name) cl_map
#define DCL_CL_FN_MAP2(name) cl_map
#define DCL_CL_OP(NAME, name, sig, ...) [DCL_OP_##NAME] = DCL_CL_FN_##sig(name),
const struct dcl_backend_i dcl__cl_backend = {
    .name = "opencl",
    .buffer_alloc = dcl__cl_buffer_alloc,
    .buffer_free = dcl__cl_buffer_free,
    .buffer_write = dcl__cl_buffer_write,
    .buffer_read = dcl__cl_buffer_read,
    .finish = dcl__cl_finish,
    .finish_behind = dcl__cl_finish_behind,
    .free = dcl__cl_free,
    .ops = {DCL_OP_MAP(DCL_CL_OP)},
};
#undef DCL_CL_OP

dcl_status dcl__cl_open(dcl_device *dev, const dcl_device_info *info) {
    (void)info; // device.c has copied it into dev->info
    struct dcl_cl_ctx *ctx;
    dcl_status s = dcl__cl_ctx_open(&ctx, dev);
    if (s != DCL_OK) return s;
    dcl__cl_tune_apply(ctx); // DCL_WG_SIZE and CLBlast's parameters, before any program is built
    // The probe build: the device must compile our OpenCL C 1.2.
    struct dcl_cl_kernel *k;
    const struct dcl_op_desc *fill = &dcl__op_descs[DCL_OP_FILL];
    if ((s = dcl__cl_kernel(ctx, fill->file, fill->kernel, &k)) != DCL_OK) {
        dcl__cl_free(ctx);
        return s;
    }
    // The convolution planes now, before any buffer of the caller's: Oclgrind 21.10 misreports
    // a buffer allocated in place of a smaller one released earlier as uninitialised where kernels
    // wrote it, so allocated later (after a test's buffers came and went) they drew such reports.
    if ((s = conv_scratch(ctx, DCL_CL_PLANES_INIT)) != DCL_OK) {
        dcl__cl_free(ctx);
        return s;
    }
    dev->iface = &dcl__cl_backend;
    dev->ctx = ctx;
    return DCL_OK;
}

void dcl__cl_set_launch(dcl_device *dev, size_t local, size_t max_groups) {
    if (dev->iface != &dcl__cl_backend) return;
    struct dcl_cl_ctx *ctx = dev->ctx;
    ctx->force_local = local;
    ctx->force_groups = max_groups;
}
