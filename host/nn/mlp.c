// The MLP denoiser (include/diffcl/mlp.h): parameter layout and initialisation, forward with saved
// activations, and backward into the gradient arena. Every step is a device op; nothing is read
// back to the host.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" // TRY, dcl__fail
#include "diffcl/mlp.h"
#include "diffcl/ops.h" // activations, dcl_time_embedding, dcl_concat_cols, dcl_fill
#include "nn/layers.h"  // dcl__linear_*, dcl__init_uniform, dcl__check_param_layout

struct dcl_mlp {
    dcl_mlp_config cfg;
    dcl_device *dev;
    size_t max_batch;
    dcl_arena params, grads; // views weight_view(i), bias_view(i) for layers i = 0..depth
    // Activations for max_batch rows, one buffer; element offsets of each part:
    dcl_buffer *act;
    size_t temb;       // (N, E) time embedding
    size_t h0;         // (N, D + E) the first layer's input [x, temb]
    size_t pre, post;  // depth × (N, H): hidden pre-activations (saved for backward) and outputs
    size_t dact, dpre; // (N, H) each: backward scratch, the gradients of post and pre
    size_t saved_n;    // batch of the last dcl_mlp_forward (0: none to differentiate)
};

// Input and output widths of layer i (0..depth; layer depth is the output layer).
static size_t in_dim(const dcl_mlp *m, int i) {
    return i == 0 ? (size_t)m->cfg.dim + (size_t)m->cfg.emb_dim : (size_t)m->cfg.width;
}
static size_t out_dim(const dcl_mlp *m, int i) {
    return i == m->cfg.depth ? (size_t)m->cfg.dim : (size_t)m->cfg.width;
}

// Layer i's parameter views: "layers.{i}.weight" (out_i, in_i), then "layers.{i}.bias" (out_i).
static int weight_view(int i) { return 2 * i; }
static int bias_view(int i) { return 2 * i + 1; }

static dcl_ptr act_at(const dcl_mlp *m, size_t off) { return dcl_at(m->act, off); }
// Hidden layer i's pre-activation and output, (N, H) each at max_batch rows.
static dcl_ptr pre_at(const dcl_mlp *m, int i) {
    return act_at(m, m->pre + (size_t)i * m->max_batch * (size_t)m->cfg.width);
}
static dcl_ptr post_at(const dcl_mlp *m, int i) {
    return act_at(m, m->post + (size_t)i * m->max_batch * (size_t)m->cfg.width);
}

static dcl_status check_config(const dcl_mlp_config *c, size_t max_batch) {
    if (c->dim < 1 || c->width < 1 || c->depth < 0 || c->depth > 1000)
        return dcl__fail(DCL_ERR_ARG,
                         "mlp: dim (%d) and width (%d) must be at least 1 and depth (%d) in "
                         "[0, 1000]",
                         c->dim, c->width, c->depth);
    if (c->emb_dim < 2 || c->emb_dim % 2)
        return dcl__fail(DCL_ERR_ARG, "mlp: emb_dim must be even and at least 2, got %d",
                         c->emb_dim);
    if (c->act != DCL_ACT_RELU && c->act != DCL_ACT_SILU)
        return dcl__fail(DCL_ERR_ARG, "mlp: unknown activation %d (relu %d, silu %d)", (int)c->act,
                         DCL_ACT_RELU, DCL_ACT_SILU);
    if (max_batch < 1) return dcl__fail(DCL_ERR_ARG, "mlp: max_batch must be at least 1");
    return DCL_OK;
}

// PyTorch's nn.Linear default: weight and bias ~ U(−1/√fan_in, 1/√fan_in), view k from Philox step
// k, with the gradient arena as scratch (zeroed after).
static dcl_status init_params(dcl_mlp *m, uint64_t seed) {
    for (int k = 0; k < m->params.count; k++) {
        float bound = (float)(1.0 / sqrt((double)in_dim(m, k / 2))); // view k is of layer k / 2
        TRY(dcl__init_uniform(m->dev, dcl_arena_ptr(&m->params, k), dcl_arena_ptr(&m->grads, k),
                              bound, seed, (uint32_t)k, m->params.views[k].n));
    }
    return dcl_fill(m->dev, dcl_at(m->grads.buf, 0), 0.0f, m->grads.n);
}

static dcl_status init(dcl_mlp *m, uint64_t seed) {
    const dcl_mlp_config *c = &m->cfg;
    int count = 2 * (c->depth + 1);
    dcl_arena_view *views = calloc((size_t)count, sizeof *views);
    if (!views) return dcl__fail(DCL_ERR_NOMEM, "mlp: out of host memory");
    for (int i = 0; i <= c->depth; i++) {
        dcl_arena_view *w = &views[weight_view(i)], *b = &views[bias_view(i)];
        snprintf(w->name, sizeof w->name, "layers.%d.weight", i);
        snprintf(b->name, sizeof b->name, "layers.%d.bias", i);
        w->n = out_dim(m, i) * in_dim(m, i);
        b->n = out_dim(m, i);
    }
    dcl_status s = dcl_arena_init(&m->params, m->dev, "mlp.params", views, count);
    free(views);
    if (s != DCL_OK) return s;
    TRY(dcl_arena_init_like(&m->grads, &m->params, "mlp.grads"));
    TRY(init_params(m, seed));

    // Activations. The kernels address elements with 32-bit offsets: refuse layouts beyond that.
    double B = (double)m->max_batch, D = c->dim, E = c->emb_dim, H = c->width;
    double total = B * (E + (D + E) + 2.0 * c->depth * H + 2.0 * H);
    if (total >= 4294967296.0)
        return dcl__fail(DCL_ERR_ARG,
                         "mlp: activations for max_batch %zu (%.0f elements) exceed 2^32 elements; "
                         "use a smaller batch",
                         m->max_batch, total);
    size_t b = m->max_batch, h = (size_t)c->width;
    m->temb = 0;
    m->h0 = m->temb + b * (size_t)c->emb_dim;
    m->pre = m->h0 + b * in_dim(m, 0);
    m->post = m->pre + (size_t)c->depth * b * h;
    m->dact = m->post + (size_t)c->depth * b * h;
    m->dpre = m->dact + b * h;
    return dcl_buffer_alloc(&m->act, m->dev, m->dpre + b * h, "mlp.activations");
}

dcl_status dcl_mlp_init(dcl_mlp **out, dcl_device *dev, const dcl_mlp_config *cfg, uint64_t seed,
                        size_t max_batch) {
    *out = NULL;
    if (!dev || !cfg) return dcl__fail(DCL_ERR_ARG, "mlp: no device or no configuration");
    TRY(check_config(cfg, max_batch));
    dcl_mlp *m = calloc(1, sizeof *m);
    if (!m) return dcl__fail(DCL_ERR_NOMEM, "mlp: out of host memory");
    m->cfg = *cfg, m->dev = dev, m->max_batch = max_batch;
    dcl_status s = init(m, seed);
    if (s != DCL_OK) {
        dcl_mlp_free(m);
        return s;
    }
    *out = m;
    return DCL_OK;
}

void dcl_mlp_free(dcl_mlp *m) {
    if (!m) return;
    dcl_buffer_free(m->act);
    dcl_arena_free(&m->grads);
    dcl_arena_free(&m->params);
    free(m);
}

void dcl_mlp_config_default(dcl_mlp_config *c, int dim) {
    memset(c, 0, sizeof *c);
    c->dim = dim;
    c->width = 128, c->depth = 3, c->emb_dim = 32, c->act = DCL_ACT_RELU;
}

const dcl_mlp_config *dcl_mlp_get_config(const dcl_mlp *m) { return &m->cfg; }
dcl_arena *dcl_mlp_params(dcl_mlp *m) { return &m->params; }
dcl_arena *dcl_mlp_grads(dcl_mlp *m) { return &m->grads; }

int dcl_mlp_tensor_shape(const dcl_mlp *m, int i, uint64_t shape[2]) {
    if (i < 0 || i >= m->params.count) return 0;
    shape[0] = out_dim(m, i / 2);
    if (i % 2) return 1;
    shape[1] = in_dim(m, i / 2);
    return 2;
}

static dcl_status check_batch(const dcl_mlp *m, const char *what, size_t N) {
    if (N > m->max_batch)
        return dcl__fail(DCL_ERR_ARG,
                         "mlp %s: batch of %zu rows exceeds the max_batch of %zu the model was "
                         "created with",
                         what, N, m->max_batch);
    return DCL_OK;
}

// out (N, D) = the network with the weights of p (m's layout).
static dcl_status forward(dcl_mlp *m, const dcl_arena *p, dcl_ptr out, dcl_ptr x, dcl_ptr t,
                          size_t N) {
    const dcl_mlp_config *c = &m->cfg;
    dcl_device *dev = m->dev;
    size_t D = (size_t)c->dim, E = (size_t)c->emb_dim, H = (size_t)c->width;
    if (N == 0) return DCL_OK;
    TRY(dcl_time_embedding(dev, act_at(m, m->temb), t, N, E));
    TRY(dcl_concat_cols(dev, act_at(m, m->h0), x, act_at(m, m->temb), N, D, E));
    dcl_ptr in = act_at(m, m->h0);
    for (int i = 0; i <= c->depth; i++) {
        dcl_ptr y = i < c->depth ? pre_at(m, i) : out;
        TRY(dcl__linear_forward(dev, y, in, dcl_arena_ptr(p, weight_view(i)),
                                dcl_arena_ptr(p, bias_view(i)), N, in_dim(m, i), out_dim(m, i)));
        if (i == c->depth) break;
        dcl_ptr z = post_at(m, i);
        TRY(c->act == DCL_ACT_RELU ? dcl_relu_forward(dev, z, y, N * H)
                                   : dcl_silu_forward(dev, z, y, N * H));
        in = z;
    }
    return DCL_OK;
}

dcl_status dcl_mlp_forward(dcl_mlp *m, dcl_ptr out, dcl_ptr x, dcl_ptr t, size_t N) {
    TRY(check_batch(m, "forward", N));
    m->saved_n = 0;
    TRY(forward(m, &m->params, out, x, t, N));
    m->saved_n = N;
    return DCL_OK;
}

dcl_status dcl_mlp_forward_with(dcl_mlp *m, const dcl_arena *params, dcl_ptr out, dcl_ptr x,
                                dcl_ptr t, size_t N) {
    TRY(check_batch(m, "forward_with", N));
    TRY(dcl__check_param_layout(params, &m->params, m->dev, "mlp forward_with"));
    m->saved_n = 0; // the activations no longer belong to m's own weights
    return forward(m, params, out, x, t, N);
}

// Layer i (output first): dW_i += dyᵀ in_i, db_i += Σ_r dy; then, except for the first layer
// (whose input is data), d in_i = dy W_i (in dact) and dy for layer i − 1 = activation'(pre) ⊙
// d in_i (in dpre).
dcl_status dcl_mlp_backward(dcl_mlp *m, dcl_ptr dout, size_t N) {
    const dcl_mlp_config *c = &m->cfg;
    dcl_device *dev = m->dev;
    size_t H = (size_t)c->width;
    TRY(check_batch(m, "backward", N));
    if (N == 0) return DCL_OK;
    if (m->saved_n != N)
        return dcl__fail(DCL_ERR_ARG,
                         "mlp backward: needs a dcl_mlp_forward of the same batch first (batch "
                         "%zu, last forward %zu; forward_with does not count)",
                         N, m->saved_n);
    dcl_ptr dy = dout, none = {NULL, 0};
    for (int i = c->depth; i >= 0; i--) {
        dcl_ptr in = i == 0 ? act_at(m, m->h0) : post_at(m, i - 1);
        dcl_ptr da = act_at(m, m->dact), dp = act_at(m, m->dpre);
        TRY(dcl__linear_backward(dev, i == 0 ? none : da, dcl_arena_ptr(&m->grads, weight_view(i)),
                                 dcl_arena_ptr(&m->grads, bias_view(i)), dy, in,
                                 dcl_arena_ptr(&m->params, weight_view(i)), N, in_dim(m, i),
                                 out_dim(m, i), DCL__GRAD_SET));
        if (i == 0) break;
        // Through the activation (overwrites).
        TRY(c->act == DCL_ACT_RELU ? dcl_relu_backward(dev, dp, pre_at(m, i - 1), da, N * H)
                                   : dcl_silu_backward(dev, dp, pre_at(m, i - 1), da, N * H));
        dy = dp;
    }
    return DCL_OK;
}
