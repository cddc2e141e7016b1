// The image classifier (include/diffcl/classifier.h): layout and initialisation, forward, backward
// and AdamW step as device ops, the training loop over a dataset, evaluation, and its checkpoint.
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"         // TRY, DCL_ASSERT, dcl__fail
#include "diffcl/classifier.h"  //
#include "diffcl/log.h"         // dcl_log
#include "diffcl/ops.h"         // group norm, SiLU, gemm, softmax_cross_entropy, adamw_step, ...
#include "diffcl/rng.h"         // DCL_RNG_STREAM_VERSION
#include "diffcl/safetensors.h" // dcl_safetensors_write, dcl_safetensors_read
#include "nn/layers.h"          // dcl__conv2d_*, dcl__linear_*, dcl__init_uniform

#define N_CONVS 4
#define N_VIEWS (4 * N_CONVS + 2) // conv and norm weight and bias per layer, fc weight and bias
#define GN_EPS 1e-5f              // PyTorch's GroupNorm default
#define CONFIG_VERSION 1
#define COL_BUDGET ((size_t)1 << 24) // elements of im2col columns per chunk of samples (64 MiB)

// One layer h = SiLU(GroupNorm(conv(in))), with its saved tensors (offsets into saved, each for
// max_batch samples): pre the convolution's output, gn GroupNorm's, act the SiLU's, and the
// GroupNorm statistics.
struct layer {
    dcl__conv2d_shape s;
    int conv_w, conv_b, norm_w, norm_b; // parameter views
    size_t pre, gn, act, mean, rstd;
};

struct dcl_classifier {
    dcl_classifier_config cfg;
    dcl_device *dev;
    size_t max_batch, F, K, G, chunk;
    int64_t step;
    struct layer l[N_CONVS];
    int fc_w, fc_b;
    dcl_arena_view views[N_VIEWS];
    uint64_t shape[N_VIEWS][4];
    int ndim[N_VIEWS];
    float bound[N_VIEWS]; // U(−bound, bound) initialisation, 1/√fan_in; 0 for GroupNorm's views
    float fill[N_VIEWS];  // GroupNorm's: weight 1, bias 0
    dcl_arena params, grads, m, v;
    dcl_buffer *saved; // activations backward reads, the input and labels of a training step
    dcl_buffer *work;  // gradients, scratch, the columns of the convolutions
    // Offsets: into saved, x (N, C, H, W), lab (N), feats (N, F), logits (N, K), loss (N); into
    // work, ga, gb (N, max tensor) gradients, df (N, F), dlogits (N, K), gsq (1) Σ grads², col
    // and cnhw the convolutions' scratch.
    size_t x, lab, feats, logits, loss;
    size_t ga, gb, df, dlogits, gsq, col, cnhw;
};

void dcl_classifier_config_default(dcl_classifier_config *c, int C, int H, int W, int K) {
    memset(c, 0, sizeof *c);
    c->channels = C, c->height = H, c->width = W, c->classes = K;
    c->base = 16, c->groups = 8;
}

void dcl_classifier_train_opts_default(dcl_classifier_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = 2000, o->batch = 128, o->lr = 3e-3, o->warmup = 100;
    o->beta1 = 0.9, o->beta2 = 0.999, o->weight_decay = 1e-4, o->clip = 1.0;
    o->log_every = 100;
}

static dcl_status check_config(const dcl_classifier_config *c) {
    if (c->channels < 1 || c->channels > 4 || c->height < 1 || c->height > 4096 || c->width < 1 ||
        c->width > 4096)
        return dcl__fail(DCL_ERR_ARG, "classifier: images of %d×%d×%d (C×H×W) are not supported",
                         c->channels, c->height, c->width);
    if (c->classes < 2 || c->classes > 100000)
        return dcl__fail(DCL_ERR_ARG, "classifier: classes must be in [2, 100000], got %d",
                         c->classes);
    if (c->base < 1 || c->base > 1024 || c->groups < 1 || c->base % c->groups)
        return dcl__fail(DCL_ERR_ARG,
                         "classifier: base channels (%d) must be in [1, 1024] and divisible by the "
                         "groups (%d)",
                         c->base, c->groups);
    return DCL_OK;
}

// View i: its name, shape (ndim of a, b, d2, d3) and initialisation (bound > 0: uniform; else
// the constant fill).
static int add_view(dcl_classifier *c, int *count, const char *name, float bound, float fill,
                    int ndim, uint64_t a, uint64_t b, uint64_t d2, uint64_t d3) {
    int i = (*count)++;
    DCL_ASSERT(i < N_VIEWS);
    snprintf(c->views[i].name, sizeof c->views[i].name, "%s", name);
    c->bound[i] = bound, c->fill[i] = fill;
    uint64_t s[4] = {a, b, d2, d3};
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)(c->shape[i][d] = s[d]);
    c->views[i].n = n, c->ndim[i] = ndim;
    return i;
}

// The views and convolution shapes of c->cfg (host only: the loader checks a file against them).
static void plan(dcl_classifier *c) {
    const dcl_classifier_config *g = &c->cfg;
    size_t ci = (size_t)g->channels, H = (size_t)g->height, W = (size_t)g->width;
    size_t co[N_CONVS] = {(size_t)g->base, 2 * (size_t)g->base, 4 * (size_t)g->base,
                          4 * (size_t)g->base};
    int count = 0;
    char name[DCL_ARENA_NAME_MAX];
    for (int i = 0; i < N_CONVS; i++) {
        struct layer *l = &c->l[i];
        float bound = (float)(1.0 / sqrt((double)(ci * 9))); // fan_in = ci·3·3
        l->s = dcl__conv2d_shape_make(ci, co[i], 3, i == 0 ? 1 : 2, 1, H, W);
        snprintf(name, sizeof name, "conv%d.weight", i + 1);
        l->conv_w = add_view(c, &count, name, bound, 0, 4, co[i], ci, 3, 3);
        snprintf(name, sizeof name, "conv%d.bias", i + 1);
        l->conv_b = add_view(c, &count, name, bound, 0, 1, co[i], 0, 0, 0);
        snprintf(name, sizeof name, "norm%d.weight", i + 1);
        l->norm_w = add_view(c, &count, name, 0, 1, 1, co[i], 0, 0, 0);
        snprintf(name, sizeof name, "norm%d.bias", i + 1);
        l->norm_b = add_view(c, &count, name, 0, 0, 1, co[i], 0, 0, 0);
        ci = co[i], H = l->s.Ho, W = l->s.Wo;
    }
    c->F = ci, c->K = (size_t)g->classes, c->G = (size_t)g->groups;
    float bound = (float)(1.0 / sqrt((double)c->F));
    c->fc_w = add_view(c, &count, "fc.weight", bound, 0, 2, c->K, c->F, 0, 0);
    c->fc_b = add_view(c, &count, "fc.bias", bound, 0, 1, c->K, 0, 0, 0);
}

static size_t take(size_t *top, size_t n) {
    size_t off = *top;
    *top += (n + 15) & ~(size_t)15;
    return off;
}

static dcl_status alloc(dcl_buffer **buf, dcl_classifier *c, size_t n, const char *name) {
    if (n >= ((size_t)1 << 32))
        return dcl__fail(DCL_ERR_ARG,
                         "classifier: %s for max_batch %zu need %zu elements, beyond the kernels' "
                         "2^32; use a smaller batch",
                         name, c->max_batch, n);
    return dcl_buffer_alloc(buf, c->dev, n, name);
}

static dcl_status layout(dcl_classifier *c) {
    size_t B = c->max_batch, top = 0, big = 0, col = 0, out = 0;
    const dcl_classifier_config *g = &c->cfg;
    size_t in = (size_t)g->channels * g->height * g->width;
    if ((double)B * (double)in * 64.0 >= 4294967296.0)
        return dcl__fail(DCL_ERR_ARG, "classifier: max_batch %zu is too large for %zu-pixel images",
                         B, in);
    for (int i = 0; i < N_CONVS; i++) {
        size_t n = dcl__conv2d_out_size(&c->l[i].s), k = dcl__conv2d_col_size(&c->l[i].s);
        if (n > big) big = n;
        if (k > col) col = k;
        if (n > out) out = n;
    }
    c->chunk = COL_BUDGET / col;
    if (c->chunk < 1) c->chunk = 1;
    if (c->chunk > B) c->chunk = B;
    c->x = take(&top, B * in), c->lab = take(&top, B);
    for (int i = 0; i < N_CONVS; i++) {
        struct layer *l = &c->l[i];
        size_t n = B * dcl__conv2d_out_size(&l->s);
        l->pre = take(&top, n), l->gn = take(&top, n), l->act = take(&top, n);
        l->mean = take(&top, B * c->G), l->rstd = take(&top, B * c->G);
    }
    c->feats = take(&top, B * c->F), c->logits = take(&top, B * c->K), c->loss = take(&top, B);
    TRY(alloc(&c->saved, c, top, "classifier.saved"));
    top = 0;
    c->ga = take(&top, B * big), c->gb = take(&top, B * big);
    c->df = take(&top, B * c->F), c->dlogits = take(&top, B * c->K);
    c->gsq = take(&top, 1);
    c->col = take(&top, c->chunk * col), c->cnhw = take(&top, c->chunk * out);
    return alloc(&c->work, c, top, "classifier.work");
}

// PyTorch's defaults from Philox (seed, DCL_RNG_INIT, view index), bitwise equal on every
// device; the gradient arena is scratch (zeroed after).
static dcl_status init_params(dcl_classifier *c, uint64_t seed) {
    for (int k = 0; k < c->params.count; k++) {
        size_t n = c->params.views[k].n;
        dcl_ptr w = dcl_arena_ptr(&c->params, k), ones = dcl_arena_ptr(&c->grads, k);
        if (c->bound[k] > 0)
            TRY(dcl__init_uniform(c->dev, w, ones, c->bound[k], seed, (uint32_t)k, n));
        else TRY(dcl_fill(c->dev, w, c->fill[k], n));
    }
    return dcl_fill(c->dev, dcl_at(c->grads.buf, 0), 0.0f, c->grads.n);
}

dcl_status dcl_classifier_init(dcl_classifier **out, dcl_device *dev,
                               const dcl_classifier_config *cfg, uint64_t seed, size_t max_batch) {
    *out = NULL;
    if (!dev || !cfg) return dcl__fail(DCL_ERR_ARG, "classifier: no device or no configuration");
    TRY(check_config(cfg));
    if (max_batch < 1 || max_batch > 65536)
        return dcl__fail(DCL_ERR_ARG, "classifier: max_batch must be in [1, 65536], got %zu",
                         max_batch);
    dcl_classifier *c = calloc(1, sizeof *c);
    if (!c) return dcl__fail(DCL_ERR_NOMEM, "classifier: out of host memory");
    c->cfg = *cfg, c->dev = dev, c->max_batch = max_batch;
    plan(c);
    dcl_status s = dcl_arena_init(&c->params, dev, "classifier.params", c->views, N_VIEWS);
    if (s == DCL_OK) s = dcl_arena_init_like(&c->grads, &c->params, "classifier.grads");
    if (s == DCL_OK) s = dcl_arena_init_like(&c->m, &c->params, "classifier.adam_m");
    if (s == DCL_OK) s = dcl_arena_init_like(&c->v, &c->params, "classifier.adam_v");
    if (s == DCL_OK) s = init_params(c, seed);
    if (s == DCL_OK) s = layout(c);
    if (s != DCL_OK) {
        dcl_classifier_free(c);
        return s;
    }
    *out = c;
    return DCL_OK;
}

void dcl_classifier_free(dcl_classifier *c) {
    if (!c) return;
    dcl_buffer_free(c->work);
    dcl_buffer_free(c->saved);
    dcl_arena_free(&c->v);
    dcl_arena_free(&c->m);
    dcl_arena_free(&c->grads);
    dcl_arena_free(&c->params);
    free(c);
}

const dcl_classifier_config *dcl_classifier_get_config(const dcl_classifier *c) { return &c->cfg; }
size_t dcl_classifier_feature_dim(const dcl_classifier *c) { return c->F; }
dcl_arena *dcl_classifier_params(dcl_classifier *c) { return &c->params; }
int64_t dcl_classifier_step(const dcl_classifier *c) { return c->step; }

// ---- forward and backward -------------------------------------------------------------------

static dcl_ptr saved(const dcl_classifier *c, size_t off) { return dcl_at(c->saved, off); }
static dcl_ptr work(const dcl_classifier *c, size_t off) { return dcl_at(c->work, off); }

// feats (n, F) and logits (n, K) of x (n, C, H, W), n <= max_batch, keeping every layer's
// activations in saved.
static dcl_status forward(dcl_classifier *c, const dcl_arena *p, dcl_ptr x, size_t n, dcl_ptr feats,
                          dcl_ptr logits) {
    dcl_device *dev = c->dev;
    dcl_ptr none = {NULL, 0}, in = x;
    for (int i = 0; i < N_CONVS; i++) {
        const struct layer *l = &c->l[i];
        size_t co = l->s.co, R = l->s.Ho * l->s.Wo;
        TRY(dcl__conv2d_forward(dev, saved(c, l->pre), work(c, c->col), work(c, c->cnhw), in,
                                dcl_arena_ptr(p, l->conv_w), dcl_arena_ptr(p, l->conv_b), none,
                                none, n, &l->s, c->chunk));
        TRY(dcl_group_norm_forward(dev, saved(c, l->gn), saved(c, l->mean), saved(c, l->rstd),
                                   saved(c, l->pre), dcl_arena_ptr(p, l->norm_w),
                                   dcl_arena_ptr(p, l->norm_b), n, co, R, c->G, GN_EPS));
        TRY(dcl_silu_forward(dev, saved(c, l->act), saved(c, l->gn), n * co * R));
        in = saved(c, l->act);
    }
    // Global average pooling: feats[n, f] = Σ_r act[n, f, r] (the per-sample channel-bias
    // gradient, a sum over positions), then · 1/R4.
    const dcl__conv2d_shape *s = &c->l[N_CONVS - 1].s;
    size_t R4 = s->Ho * s->Wo;
    TRY(dcl_channel_bias_backward(dev, feats, in, n, c->F, R4, 1));
    TRY(dcl_axpby(dev, feats, feats, feats, (float)(1.0 / R4), 0.0f, n * c->F));
    if (!logits.buf) return DCL_OK;
    return dcl__linear_forward(dev, logits, feats, dcl_arena_ptr(p, c->fc_w),
                               dcl_arena_ptr(p, c->fc_b), n, c->F, c->K);
}

// Given dlogits (n, K) of the last forward (own weights, saved activations): overwrites grads.
static dcl_status backward(dcl_classifier *c, size_t n) {
    dcl_device *dev = c->dev;
    const dcl_arena *p = &c->params, *g = &c->grads;
    dcl_ptr none = {NULL, 0}, ga = work(c, c->ga), gb = work(c, c->gb);
    TRY(dcl_fill(dev, dcl_at(g->buf, 0), 0.0f, g->n));
    TRY(dcl__linear_backward(dev, work(c, c->df), dcl_arena_ptr(g, c->fc_w),
                             dcl_arena_ptr(g, c->fc_b), work(c, c->dlogits), saved(c, c->feats),
                             dcl_arena_ptr(p, c->fc_w), n, c->F, c->K, DCL__GRAD_SET));
    // The pooling's gradient: ga[n, f, r] = df[n, f] / R4 at every position r (a per-sample
    // channel bias added to zeros).
    const dcl__conv2d_shape *s4 = &c->l[N_CONVS - 1].s;
    size_t R4 = s4->Ho * s4->Wo;
    dcl_ptr df = work(c, c->df);
    TRY(dcl_axpby(dev, df, df, df, (float)(1.0 / R4), 0.0f, n * c->F));
    TRY(dcl_fill(dev, ga, 0.0f, n * c->F * R4));
    TRY(dcl_channel_bias_add(dev, ga, ga, df, n, c->F, R4, 1));
    // Layer by layer from the top: ga holds the gradient of the layer's output (act).
    for (int i = N_CONVS; i-- > 0;) {
        const struct layer *l = &c->l[i];
        size_t co = l->s.co, R = l->s.Ho * l->s.Wo;
        TRY(dcl_silu_backward(dev, gb, saved(c, l->gn), ga, n * co * R));
        TRY(dcl_group_norm_backward(
            dev, ga, dcl_arena_ptr(g, l->norm_w), dcl_arena_ptr(g, l->norm_b), gb, saved(c, l->pre),
            saved(c, l->mean), saved(c, l->rstd), dcl_arena_ptr(p, l->norm_w), n, co, R, c->G));
        dcl_ptr in = i ? saved(c, c->l[i - 1].act) : saved(c, c->x);
        // The input's gradient into gb, then back to ga for the layer below (conv2d_backward
        // reads dout while it writes din, so they must differ).
        TRY(dcl__conv2d_backward(dev, i ? gb : none, dcl_arena_ptr(g, l->conv_w),
                                 dcl_arena_ptr(g, l->conv_b), work(c, c->col), work(c, c->cnhw), ga,
                                 in, dcl_arena_ptr(p, l->conv_w), n, &l->s, c->chunk));
        if (i) {
            dcl_ptr t = ga;
            ga = gb, gb = t;
        }
    }
    return DCL_OK;
}

static dcl_status check_x(const dcl_classifier *c, dcl_ptr x, const char *what) {
    if (!x.buf || dcl_buffer_device(x.buf) != c->dev)
        return dcl__fail(DCL_ERR_ARG,
                         "classifier %s: the images must be on the classifier's device", what);
    return DCL_OK;
}

// Runs forward over N images in chunks of max_batch, writing feats (N, F) and/or logits (N, K)
// (either may have buf NULL: then it is kept in saved scratch only).
static dcl_status forward_chunks(dcl_classifier *c, const dcl_arena *p, dcl_ptr x, size_t N,
                                 dcl_ptr feats, dcl_ptr logits, const char *what) {
    TRY(check_x(c, x, what));
    if (p && p != &c->params) TRY(dcl__check_param_layout(p, &c->params, c->dev, what));
    if (!p) p = &c->params;
    const dcl_classifier_config *g = &c->cfg;
    size_t D = (size_t)g->channels * g->height * g->width;
    for (size_t n0 = 0; n0 < N; n0 += c->max_batch) {
        size_t n = N - n0 < c->max_batch ? N - n0 : c->max_batch;
        dcl_ptr f = feats.buf ? dcl_ptr_add(feats, n0 * c->F) : saved(c, c->feats);
        dcl_ptr lg = logits.buf ? dcl_ptr_add(logits, n0 * c->K) : logits;
        TRY(forward(c, p, dcl_ptr_add(x, n0 * D), n, f, lg));
    }
    return DCL_OK;
}

dcl_status dcl_classifier_logits(dcl_classifier *c, const dcl_arena *params, dcl_ptr x, size_t N,
                                 dcl_ptr logits) {
    if (!logits.buf) return dcl__fail(DCL_ERR_ARG, "classifier logits: no output");
    dcl_ptr none = {NULL, 0};
    return forward_chunks(c, params, x, N, none, logits, "classifier logits");
}

dcl_status dcl_classifier_features(dcl_classifier *c, dcl_ptr x, size_t N, dcl_ptr feats) {
    if (!feats.buf) return dcl__fail(DCL_ERR_ARG, "classifier features: no output");
    dcl_ptr none = {NULL, 0};
    return forward_chunks(c, NULL, x, N, feats, none, "classifier features");
}

static int32_t argmax(const float *row, size_t K) {
    size_t best = 0;
    for (size_t k = 1; k < K; k++)
        if (row[k] > row[best]) best = k;
    return (int32_t)best;
}

dcl_status dcl_classifier_predict(dcl_classifier *c, dcl_ptr x, size_t N, int32_t *pred) {
    float *h = malloc(c->max_batch * c->K * sizeof *h);
    if (!h) return dcl__fail(DCL_ERR_NOMEM, "classifier predict: out of host memory");
    const dcl_classifier_config *g = &c->cfg;
    size_t D = (size_t)g->channels * g->height * g->width;
    dcl_status s = check_x(c, x, "predict");
    for (size_t n0 = 0; s == DCL_OK && n0 < N; n0 += c->max_batch) {
        size_t n = N - n0 < c->max_batch ? N - n0 : c->max_batch;
        s = dcl_classifier_logits(c, NULL, dcl_ptr_add(x, n0 * D), n, saved(c, c->logits));
        if (s == DCL_OK) s = dcl_buffer_read(c->saved, c->logits, n * c->K, h);
        for (size_t i = 0; s == DCL_OK && i < n; i++) pred[n0 + i] = argmax(h + i * c->K, c->K);
    }
    free(h);
    return s;
}

dcl_status dcl_classifier_train_step(dcl_classifier *c, const dcl_classifier_train_opts *o,
                                     double lr, dcl_ptr x, dcl_ptr labels, size_t N, dcl_ptr loss) {
    dcl_device *dev = c->dev;
    if (N < 1 || N > c->max_batch)
        return dcl__fail(DCL_ERR_ARG,
                         "classifier train step: batch of %zu images; must be in [1, max_batch "
                         "%zu]",
                         N, c->max_batch);
    TRY(check_x(c, x, "train step"));
    const dcl_classifier_config *g = &c->cfg;
    size_t D = (size_t)g->channels * g->height * g->width;
    // Own copies of the inputs: the backward reads x after the caller may have moved on.
    TRY(dcl_copy(dev, saved(c, c->x), x, N * D));
    TRY(dcl_copy(dev, saved(c, c->lab), labels, N));
    TRY(forward(c, &c->params, saved(c, c->x), N, saved(c, c->feats), saved(c, c->logits)));
    TRY(dcl_softmax_cross_entropy(dev, saved(c, c->loss), work(c, c->dlogits), saved(c, c->logits),
                                  saved(c, c->lab), N, c->K));
    if (loss.buf) TRY(dcl_sum(dev, loss, saved(c, c->loss), N));
    TRY(backward(c, N));
    // AdamW with the clip factor computed on the device from Σ g² (no read-back).
    TRY(dcl_sumsq(dev, work(c, c->gsq), dcl_at(c->grads.buf, 0), c->grads.n));
    TRY(dcl_adamw_step(dev, dcl_at(c->params.buf, 0), dcl_at(c->m.buf, 0), dcl_at(c->v.buf, 0),
                       dcl_at(c->grads.buf, 0), work(c, c->gsq), c->params.n, (float)lr,
                       (float)o->beta1, (float)o->beta2, 1e-8f, (float)o->weight_decay,
                       (float)o->clip, c->step + 1));
    c->step++;
    return DCL_OK;
}

// ---- the training loop ------------------------------------------------------------------------

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Linear warm-up to lr, then cosine decay to 0 at the last step (k counts from 0).
static double lr_at(const dcl_classifier_train_opts *o, int64_t k) {
    if (k < o->warmup) return o->lr * (double)(k + 1) / (double)o->warmup;
    double span = (double)(o->steps - o->warmup);
    double u = span > 0 ? (double)(k - o->warmup) / span : 1.0;
    return 0.5 * o->lr * (1.0 + cos(3.14159265358979323846 * u));
}

dcl_status dcl_classifier_train(dcl_classifier *c, dcl_dataset *ds,
                                const dcl_classifier_train_opts *o, dcl_classifier_log_fn log,
                                void *log_ctx) {
    const dcl_classifier_config *g = &c->cfg;
    int C, H, W;
    if (!dcl_dataset_image_shape(ds, &C, &H, &W) || C != g->channels || H != g->height ||
        W != g->width)
        return dcl__fail(DCL_ERR_ARG, "classifier: dataset %s does not hold %d×%d×%d images",
                         dcl_dataset_spec(ds), g->channels, g->height, g->width);
    if (dcl_dataset_num_classes(ds) < 1 || dcl_dataset_num_classes(ds) > g->classes)
        return dcl__fail(DCL_ERR_ARG, "classifier: dataset %s has no labels of %d classes",
                         dcl_dataset_spec(ds), g->classes);
    if (o->steps < 1 || o->batch < 1 || (size_t)o->batch > c->max_batch || o->log_every < 1 ||
        !(o->lr > 0) || o->warmup < 0)
        return dcl__fail(DCL_ERR_ARG,
                         "classifier: need steps >= 1, 1 <= batch <= max_batch (%zu), lr > 0, "
                         "log_every >= 1",
                         c->max_batch);
    size_t N = (size_t)o->batch, D = (size_t)C * H * W, window = (size_t)o->log_every;
    float *hx = malloc(N * D * sizeof *hx), *hloss = malloc(window * sizeof *hloss);
    float *hlogits = malloc(N * c->K * sizeof *hlogits);
    int32_t *hlab = malloc(N * sizeof *hlab);
    dcl_buffer *bx = NULL, *blab = NULL, *bloss = NULL;
    dcl_status s = hx && hloss && hlogits && hlab ? DCL_OK : dcl__fail(DCL_ERR_NOMEM, "classifier");
    if (s == DCL_OK) s = dcl_buffer_alloc(&bx, c->dev, N * D, "classifier.batch");
    if (s == DCL_OK) s = dcl_buffer_alloc(&blab, c->dev, N, "classifier.labels");
    if (s == DCL_OK) s = dcl_buffer_alloc(&bloss, c->dev, window, "classifier.losses");
    double t0 = now_s();
    int64_t first = c->step;
    for (int64_t k = 0; s == DCL_OK && k < o->steps; k++) {
        uint64_t gstep = (uint64_t)(first + k);
        s = dcl_dataset_batch_labels(ds, hx, hlab, N, gstep);
        if (s == DCL_OK) s = dcl_buffer_write(bx, 0, N * D, hx);
        if (s == DCL_OK) s = dcl_buffer_write(blab, 0, N, hlab); // int32 0..K−1: uint32 bits
        size_t slot = (size_t)k % window;
        if (s == DCL_OK)
            s = dcl_classifier_train_step(c, o, lr_at(o, k), dcl_at(bx, 0), dcl_at(blab, 0), N,
                                          dcl_at(bloss, slot));
        if (s == DCL_OK && o->progress && o->progress(o->progress_ctx, k + 1, o->steps))
            s = dcl__fail(DCL_ERR_CANCELLED, "classifier training stopped at step %lld",
                          (long long)(k + 1));
        if (s != DCL_OK || (slot + 1 < window && k + 1 < o->steps)) continue;
        // A log point: the window's losses and the last batch's logits.
        s = dcl_buffer_read(bloss, 0, slot + 1, hloss);
        if (s == DCL_OK) s = dcl_buffer_read(c->saved, c->logits, N * c->K, hlogits);
        if (s != DCL_OK) break;
        double sum = 0;
        for (size_t i = 0; i <= slot; i++) sum += hloss[i];
        size_t right = 0;
        for (size_t i = 0; i < N; i++) right += argmax(hlogits + i * c->K, c->K) == hlab[i];
        dcl_classifier_report r = {.step = k + 1, .total = o->steps};
        r.loss = sum / ((double)(slot + 1) * (double)N);
        r.accuracy = (double)right / (double)N;
        r.steps_per_s = (double)(k + 1) / (now_s() - t0 + 1e-9);
        if (!isfinite(r.loss)) {
            s = dcl__fail(DCL_ERR_MISMATCH,
                          "classifier: the loss is %g at step %lld; try a lower --lr", r.loss,
                          (long long)(first + k + 1));
            break;
        }
        if (log) s = log(log_ctx, &r);
    }
    dcl_buffer_free(bloss), dcl_buffer_free(blab), dcl_buffer_free(bx);
    free(hx), free(hloss), free(hlogits), free(hlab);
    return s;
}

dcl_status dcl_classifier_evaluate(dcl_classifier *c, const float *x, const int32_t *labels,
                                   size_t N, int64_t *correct, int64_t *count,
                                   dcl_progress_fn progress, void *progress_ctx) {
    const dcl_classifier_config *g = &c->cfg;
    size_t B = c->max_batch, D = (size_t)g->channels * g->height * g->width;
    for (size_t k = 0; k < c->K; k++) correct[k] = count[k] = 0;
    int32_t *pred = malloc(B * sizeof *pred);
    dcl_buffer *bx = NULL;
    dcl_status s = pred ? DCL_OK : dcl__fail(DCL_ERR_NOMEM, "classifier evaluate");
    if (s == DCL_OK) s = dcl_buffer_alloc(&bx, c->dev, B * D, "classifier.eval");
    for (size_t n0 = 0; s == DCL_OK && n0 < N; n0 += B) {
        size_t n = N - n0 < B ? N - n0 : B;
        s = dcl_buffer_write(bx, 0, n * D, x + n0 * D);
        if (s == DCL_OK) s = dcl_classifier_predict(c, dcl_at(bx, 0), n, pred);
        for (size_t i = 0; s == DCL_OK && i < n; i++) {
            int32_t y = labels[n0 + i];
            if (y < 0 || (size_t)y >= c->K) {
                s = dcl__fail(DCL_ERR_ARG,
                              "classifier evaluate: label %d of image %zu is not in "
                              "0..%zu",
                              (int)y, n0 + i, c->K - 1);
                break;
            }
            count[y]++, correct[y] += pred[i] == y;
        }
        if (s == DCL_OK && progress && progress(progress_ctx, (int64_t)(n0 + n), (int64_t)N))
            s = dcl__fail(DCL_ERR_CANCELLED, "classifier evaluation stopped");
    }
    dcl_buffer_free(bx);
    free(pred);
    return s;
}

// ---- checkpoints ------------------------------------------------------------------------------

dcl_status dcl_classifier_save(dcl_classifier *c, const char *path, const char *data) {
    const dcl_classifier_config *g = &c->cfg;
    float *host = malloc(c->params.n * sizeof *host);
    if (!host) return dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
    dcl_status s = dcl_buffer_read(c->params.buf, 0, c->params.n, host);
    json_t *root = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:s}", "version",
                             CONFIG_VERSION, "channels", g->channels, "height", g->height, "width",
                             g->width, "classes", g->classes, "base", g->base, "groups", g->groups,
                             "step", (json_int_t)c->step, "data", data ? data : "");
    char *cfg = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (s == DCL_OK && !cfg) s = dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
    dcl_st_tensor t[N_VIEWS];
    for (int i = 0; i < N_VIEWS; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].name = c->params.views[i].name;
        t[i].data = host + c->params.views[i].off;
        t[i].ndim = c->ndim[i];
        for (int d = 0; d < c->ndim[i]; d++) t[i].shape[d] = c->shape[i][d];
    }
    const char *meta[] = {"format", "pt", "diffcl_classifier", cfg};
    if (s == DCL_OK) s = dcl_safetensors_write(path, t, N_VIEWS, meta, 2);
    free(cfg);
    free(host);
    return s;
}

static dcl_status parse_config(const char *path, const char *text, dcl_classifier_config *g,
                               int64_t *step) {
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: __metadata__ \"diffcl_classifier\" is not valid JSON (%s at column "
                         "%d)",
                         path, err.text, err.column);
    int version = 0;
    const char *data = NULL;
    json_int_t st = 0;
    memset(g, 0, sizeof *g);
    int bad = json_unpack_ex(
        root, &err, JSON_STRICT, "{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:s}", "version",
        &version, "channels", &g->channels, "height", &g->height, "width", &g->width, "classes",
        &g->classes, "base", &g->base, "groups", &g->groups, "step", &st, "data", &data);
    json_decref(root);
    if (bad) return dcl__fail(DCL_ERR_FORMAT, "%s: classifier config: %s", path, err.text);
    if (version != CONFIG_VERSION)
        return dcl__fail(DCL_ERR_FORMAT, "%s: classifier config version %d (this diffcl reads %d)",
                         path, version, CONFIG_VERSION);
    if (st < 0) return dcl__fail(DCL_ERR_FORMAT, "%s: negative step %lld", path, (long long)st);
    *step = (int64_t)st;
    dcl_status s = check_config(g);
    if (s != DCL_OK)
        return dcl__fail(DCL_ERR_FORMAT, "%s: classifier config out of range: %s", path,
                         dcl_last_error());
    return DCL_OK;
}

dcl_status dcl_classifier_load(dcl_classifier **out, dcl_device *dev, const char *path,
                               size_t max_batch) {
    *out = NULL;
    dcl_st_file *f;
    TRY(dcl_safetensors_read(&f, path));
    dcl_classifier_config g;
    int64_t step = 0;
    const char *text = dcl_safetensors_meta(f, "diffcl_classifier");
    dcl_status s = text ? parse_config(path, text, &g, &step)
                        : dcl__fail(DCL_ERR_FORMAT,
                                    "%s is a safetensors file but not a diffcl classifier (no "
                                    "\"diffcl_classifier\" entry in __metadata__)",
                                    path);
    // The shapes and values of every tensor, checked on the host before any device allocation.
    dcl_classifier *plan_only = s == DCL_OK ? calloc(1, sizeof *plan_only) : NULL;
    if (s == DCL_OK && !plan_only) s = dcl__fail(DCL_ERR_NOMEM, "loading %s", path);
    if (s == DCL_OK) {
        plan_only->cfg = g;
        plan(plan_only);
    }
    for (int i = 0; s == DCL_OK && i < N_VIEWS; i++) {
        const dcl_st_tensor *t = dcl_safetensors_find(f, plan_only->views[i].name);
        if (!t) {
            s = dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' is missing", path,
                          plan_only->views[i].name);
            break;
        }
        int same = t->ndim == plan_only->ndim[i];
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == plan_only->shape[i][d];
        if (!same) {
            s = dcl__fail(DCL_ERR_FORMAT,
                          "%s: tensor '%s' has the wrong shape for the classifier in its config",
                          path, t->name);
            break;
        }
        for (uint64_t j = 0; j < dcl_st_tensor_numel(t); j++)
            if (!isfinite(t->data[j])) {
                s = dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value at %llu",
                              path, t->name, (unsigned long long)j);
                break;
            }
    }
    if (s == DCL_OK && dcl_safetensors_count(f) != N_VIEWS)
        s = dcl__fail(DCL_ERR_FORMAT, "%s: %d tensors, the classifier has %d", path,
                      dcl_safetensors_count(f), N_VIEWS);
    free(plan_only);
    dcl_classifier *c = NULL;
    if (s == DCL_OK) s = dcl_classifier_init(&c, dev, &g, 0, max_batch);
    for (int i = 0; s == DCL_OK && i < N_VIEWS; i++) {
        const dcl_st_tensor *t = dcl_safetensors_find(f, c->views[i].name);
        s = dcl_buffer_write(c->params.buf, c->params.views[i].off, c->params.views[i].n, t->data);
    }
    dcl_safetensors_free(f);
    if (s != DCL_OK) {
        dcl_classifier_free(c);
        return s;
    }
    c->step = step;
    *out = c;
    return DCL_OK;
}
