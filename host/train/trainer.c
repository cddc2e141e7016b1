// The training loop: one optimizer step is a handful of device ops with nothing read back, except
// the window of per-step losses every log_every steps.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "diffcl/log.h"
#include "diffcl/ops.h" // dcl_forward_process, dcl_mse_backward, dcl_adamw_step, ...
#include "diffcl/rng.h" // dcl_rng_uniform_at, DCL_RNG_TIME, DCL_RNG_NOISE
#include "diffcl/train.h"
#include "train/state.h" // dcl__train_save, dcl__train_load, dcl__train_counters

void dcl_train_opts_default(dcl_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = 3000;
    o->batch = 1024;
    o->lr = 1e-3;
    o->warmup = 100;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->clip = 1.0;
    o->ema = 0.999;
    o->log_every = 100;
    o->snr_gamma = 5.0;
    o->keep = 2;
    o->max_skips = 10;
}

double dcl_loss_weight(const dcl_model_config *c, const dcl_train_opts *o, double t) {
    if (!o->min_snr) return 1.0;
    double a, b, cx[2], ce[2];
    dcl_process_ab(&c->process, t, &a, &b);
    dcl_target_to_x0_eps(&c->process, c->pred, t, c->prev_dt, cx, ce);
    double snr = a * a / fmax(b * b, 1e-12);
    return ce[1] * ce[1] * fmin(snr, o->snr_gamma) / fmax(snr, 1e-12);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Device buffers of one training run, freed together.
struct bufs {
    dcl_buffer *x0, *eps, *xt, *target, *pred, *dpred, *diff; // (N, D)
    dcl_buffer *t, *w, *labels;                               // (N); labels as uint32 bits
    dcl_buffer *coef;                                         // (N, 4)
    dcl_buffer *gsq;                                          // (log_every): Σ g² per step
    dcl_buffer *losses;                                       // (log_every): Σ (pred − target)²
    float *hgsq;                                              // host copy of gsq (window)
    unsigned char *skipped;                                   // (window): slot's step skipped
    dcl_arena adam_m, adam_v;
    float *hx0, *ht, *hw, *hcoef, *hloss; // host staging: (N, D), (N), (N), (N, 4), (window)
    int32_t *hlabels;                     // (N)
    float *hred;                          // (P + 2): o->reduce's data; NULL without it
};

static void bufs_free(struct bufs *b) {
    dcl_buffer *all[] = {b->x0, b->eps, b->xt,   b->target, b->pred,   b->dpred, b->diff,
                         b->t,  b->w,   b->coef, b->gsq,    b->losses, b->labels};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dcl_buffer_free(all[i]);
    if (b->adam_m.buf) dcl_arena_free(&b->adam_m);
    if (b->adam_v.buf) dcl_arena_free(&b->adam_v);
    free(b->hx0), free(b->ht), free(b->hw), free(b->hcoef), free(b->hloss), free(b->hlabels);
    free(b->hgsq), free(b->skipped), free(b->hred);
    memset(b, 0, sizeof *b);
}

// N is this process's shard of the batch; reduce: o->reduce is set.
static dcl_status bufs_init(struct bufs *b, dcl_device *dev, dcl_model *m, size_t N, size_t D,
                            size_t window, int reduce) {
    memset(b, 0, sizeof *b);
    struct {
        dcl_buffer **buf;
        size_t n;
        const char *name;
    } spec[] = {
        {&b->x0, N * D, "train.x0"},     {&b->eps, N * D, "train.eps"},
        {&b->xt, N * D, "train.xt"},     {&b->target, N * D, "train.target"},
        {&b->pred, N * D, "train.pred"}, {&b->dpred, N * D, "train.dpred"},
        {&b->diff, N * D, "train.diff"}, {&b->t, N, "train.t"},
        {&b->w, N, "train.w"},           {&b->coef, N * 4, "train.coef"},
        {&b->gsq, window, "train.gsq"},  {&b->losses, window, "train.losses"},
        {&b->labels, N, "train.labels"},
    };
    dcl_status s = DCL_OK;
    for (size_t i = 0; i < sizeof spec / sizeof spec[0] && s == DCL_OK; i++)
        s = dcl_buffer_alloc(spec[i].buf, dev, spec[i].n, spec[i].name);
    if (s == DCL_OK) s = dcl_arena_init_like(&b->adam_m, dcl_net_params(m->net), "adam.m");
    if (s == DCL_OK) s = dcl_arena_init_like(&b->adam_v, dcl_net_params(m->net), "adam.v");
    if (s == DCL_OK) s = dcl_fill(dev, dcl_at(b->w, 0), 1.0f, N);
    b->hx0 = malloc(N * D * sizeof *b->hx0), b->ht = malloc(N * sizeof *b->ht);
    b->hw = malloc(N * sizeof *b->hw), b->hcoef = malloc(4 * N * sizeof *b->hcoef);
    b->hloss = malloc(window * sizeof *b->hloss), b->hlabels = malloc(N * sizeof *b->hlabels);
    b->hgsq = malloc(window * sizeof *b->hgsq), b->skipped = calloc(window, 1);
    if (reduce) b->hred = malloc((dcl_net_params(m->net)->n + 2) * sizeof *b->hred);
    if (s == DCL_OK && !(b->hx0 && b->ht && b->hw && b->hcoef && b->hloss && b->hlabels &&
                         b->hgsq && b->skipped && (b->hred || !reduce)))
        s = dcl__fail(DCL_ERR_NOMEM, "out of host memory for training");
    return s;
}

// Data parallelism: this process's share of the batch and the index of its first example.
static size_t shard_count(const dcl_train_opts *o) {
    return o->shard_count > 1 ? (size_t)o->shard_count : 1;
}
static size_t shard_size(const dcl_train_opts *o) { return (size_t)o->batch / shard_count(o); }
static size_t shard_first(const dcl_train_opts *o) {
    return shard_count(o) > 1 ? shard_size(o) * (size_t)o->shard_rank : 0;
}

// Data parallelism, between the backward pass and AdamW: the shard's gradient, its Σ (pred −
// target)² and a failure flag (s not DCL_OK) go through o->reduce; the sums come back to the
// device, the gradient divided by the shard count (the shards' gradients are of their own means;
// exact for a power of two), and Σ g² of the global gradient is taken here on the host in one
// fixed order, so every process clips and tests finiteness on the same bits. Returns s when s
// already failed (after the flag went out), so no process is left waiting in the reduction.
static dcl_status reduce_step(const dcl_train_opts *o, dcl_arena *grads, struct bufs *b,
                              size_t slot, dcl_status s) {
    size_t P = grads->n;
    float *h = b->hred;
    if (s == DCL_OK) s = dcl_buffer_read(grads->buf, 0, P, h);
    if (s == DCL_OK) s = dcl_buffer_read(b->losses, slot, 1, h + P);
    if (s != DCL_OK) memset(h, 0, (P + 1) * sizeof *h);
    h[P + 1] = s != DCL_OK;
    dcl_status r = o->reduce(o->reduce_ctx, h, P + 2);
    if (s != DCL_OK) return s;
    if (r != DCL_OK) return r;
    if (h[P + 1] > 0)
        return dcl__fail(DCL_ERR_CANCELLED,
                         "training stopped: %.0f other process(es) failed or were interrupted",
                         (double)h[P + 1]);
    float count = (float)shard_count(o);
    double gsq = 0;
    for (size_t i = 0; i < P; i++) {
        h[i] /= count;
        gsq += (double)h[i] * h[i];
    }
    h[P + 1] = (float)gsq;
    s = dcl_buffer_write(grads->buf, 0, P, h);
    if (s == DCL_OK) s = dcl_buffer_write(b->losses, slot, 1, h + P);
    if (s == DCL_OK) s = dcl_buffer_write(b->gsq, slot, 1, h + P + 1);
    return s;
}

// One optimizer step at global step g (0-based) with learning rate lr: draw x0 and t, form x_t
// and the target, take the loss's gradient through the network, then AdamW and the EMA update.
// The step's Σ (pred − target)² and Σ g² go to slot of the window buffers. With a shard, the
// examples are [first, first + N) of the global batch, and o->reduce sums the gradients.
static dcl_status step(dcl_device *dev, dcl_model *m, dcl_dataset *ds, const dcl_train_opts *o,
                       struct bufs *b, int64_t g, size_t slot, double lr) {
    const dcl_model_config *c = &m->cfg;
    size_t N = shard_size(o), first = shard_first(o), D = dcl_net_dim(&c->net);
    dcl_arena *params = dcl_net_params(m->net), *grads = dcl_net_grads(m->net);
    int K = dcl_net_num_classes(&c->net);
    uint32_t sg = (uint32_t)g;

    // Data, per-example t and the schedule's coefficients come from the host (small uploads);
    // x_t = a x0 + b ε and the target are formed on the device.
    dcl_status s = dcl_dataset_batch_at(ds, b->hx0, K ? b->hlabels : NULL, first, N, (uint64_t)g);
    // Classifier-free guidance training: each label becomes the null class K with probability
    // cond_drop (Philox LABEL_DROP), so one network learns ε̂(x, y) and ε̂(x, ∅).
    for (size_t n = 0; K && n < N && s == DCL_OK; n++) {
        if (b->hlabels[n] < 0 || b->hlabels[n] >= K)
            s = dcl__fail(DCL_ERR_FORMAT, "dataset '%s' has label %d; the model has %d classes",
                          dcl_dataset_spec(ds), (int)b->hlabels[n], K);
        else if (dcl_rng_uniform_at(c->seed, DCL_RNG_LABEL_DROP, sg, first + n) < c->cond_drop)
            b->hlabels[n] = K;
    }
    if (s == DCL_OK && K) s = dcl_buffer_write(b->labels, 0, N, b->hlabels);
    for (size_t n = 0; n < N && s == DCL_OK; n++) {
        double t = dcl_process_train_t(&c->process,
                                       dcl_rng_uniform_at(c->seed, DCL_RNG_TIME, sg, first + n));
        double k[4];
        dcl_target_train_coefs(&c->process, c->pred, t, c->prev_dt, k);
        b->ht[n] = (float)t;
        b->hw[n] = (float)dcl_loss_weight(c, o, t);
        for (int j = 0; j < 4; j++) b->hcoef[4 * n + j] = (float)k[j];
    }
    if (s == DCL_OK) s = dcl_buffer_write(b->x0, 0, N * D, b->hx0);
    if (s == DCL_OK) s = dcl_buffer_write(b->t, 0, N, b->ht);
    if (s == DCL_OK) s = dcl_buffer_write(b->coef, 0, N * 4, b->hcoef);
    if (s == DCL_OK && o->min_snr) s = dcl_buffer_write(b->w, 0, N, b->hw);
    if (s == DCL_OK)
        s = dcl_rng_normal(dev, dcl_at(b->eps, 0), c->seed, DCL_RNG_NOISE, sg, first * D, N * D);
    if (s == DCL_OK)
        s = dcl_forward_process(dev, dcl_at(b->xt, 0), dcl_at(b->target, 0), dcl_at(b->x0, 0),
                                dcl_at(b->eps, 0), dcl_at(b->coef, 0), N, D);

    // Loss = mean (f(x_t, t) − target)², its gradient, and the backward pass.
    if (s == DCL_OK)
        s = dcl_net_forward(m->net, NULL, dcl_at(b->pred, 0), dcl_at(b->xt, 0), dcl_at(b->t, 0),
                            K ? dcl_at(b->labels, 0) : (dcl_ptr){0}, N);
    if (s == DCL_OK)
        s = dcl_axpby(dev, dcl_at(b->diff, 0), dcl_at(b->pred, 0), dcl_at(b->target, 0), 1.0f,
                      -1.0f, N * D);
    if (s == DCL_OK) s = dcl_sumsq(dev, dcl_at(b->losses, slot), dcl_at(b->diff, 0), N * D);
    if (s == DCL_OK)
        s = dcl_mse_backward(dev, dcl_at(b->dpred, 0), dcl_at(b->pred, 0), dcl_at(b->target, 0),
                             dcl_at(b->w, 0), N, D);
    if (s == DCL_OK) s = dcl_fill(dev, dcl_at(grads->buf, 0), 0.0f, grads->n);
    if (s == DCL_OK) s = dcl_net_backward(m->net, dcl_at(b->dpred, 0), N);
    if (o->reduce) s = reduce_step(o, grads, b, slot, s);

    // AdamW (the rate from dcl_train_lr); the clip factor is computed on the device from Σ g².
    if (s == DCL_OK && !o->reduce)
        s = dcl_sumsq(dev, dcl_at(b->gsq, slot), dcl_at(grads->buf, 0), grads->n);
    if (s == DCL_OK)
        s = dcl_adamw_step(dev, dcl_at(params->buf, 0), dcl_at(b->adam_m.buf, 0),
                           dcl_at(b->adam_v.buf, 0), dcl_at(grads->buf, 0), dcl_at(b->gsq, slot),
                           params->n, (float)lr, (float)o->beta1, (float)o->beta2, 1e-8f,
                           (float)o->weight_decay, (float)o->clip, g + 1);

    // EMA with the usual ramp, so early averages are not dominated by the initial weights.
    double decay = fmin(o->ema, (1.0 + g) / (10.0 + g));
    if (s == DCL_OK)
        s = dcl_axpby(dev, dcl_at(m->ema.buf, 0), dcl_at(m->ema.buf, 0), dcl_at(params->buf, 0),
                      (float)decay, (float)(1.0 - decay), params->n);
    return s;
}

// The last step's squared error per example, averaged by t bucket (one read of (N, D)).
static dcl_status bucket_losses(struct bufs *b, size_t N, size_t D, double out[DCL_TRAIN_BUCKETS]) {
    double sum[DCL_TRAIN_BUCKETS] = {0};
    size_t count[DCL_TRAIN_BUCKETS] = {0};
    float *diff = malloc(N * D * sizeof *diff);
    dcl_status s = diff ? dcl_buffer_read(b->diff, 0, N * D, diff)
                        : dcl__fail(DCL_ERR_NOMEM, "out of host memory for the loss buckets");
    for (size_t n = 0; n < N && s == DCL_OK; n++) {
        int i = (int)(b->ht[n] * DCL_TRAIN_BUCKETS);
        i = i < 0 ? 0 : i >= DCL_TRAIN_BUCKETS ? DCL_TRAIN_BUCKETS - 1 : i;
        double e = 0;
        for (size_t d = 0; d < D; d++) e += (double)diff[n * D + d] * diff[n * D + d];
        sum[i] += e / (double)D;
        count[i]++;
    }
    for (int i = 0; i < DCL_TRAIN_BUCKETS; i++) out[i] = count[i] ? sum[i] / count[i] : NAN;
    free(diff);
    return s;
}

// --verify-every: the CPU reference repeats a step from the same weights and data; each gradient
// tensor must agree with the device's within VERIFY_RTOL of its largest value (the bound of
// diffcl check's training rows: GEMM order and a few ulp of the time embedding's sin/cos).
#define VERIFY_RTOL 2e-3

struct verifier {
    dcl_device *cpu;
    dcl_model m;
    struct bufs b;
    float *dev_grads, *cpu_grads;
};

static void verifier_free(struct verifier *v) {
    if (!v->cpu) return;
    bufs_free(&v->b);
    if (v->m.net) dcl_model_free(&v->m);
    dcl_device_free(v->cpu);
    free(v->dev_grads), free(v->cpu_grads);
    memset(v, 0, sizeof *v);
}

// Copies the device's weights to the CPU model, before the step at g runs on both.
static dcl_status verify_begin(struct verifier *v, dcl_model *m, size_t N, size_t D) {
    dcl_arena *p = dcl_net_params(m->net);
    dcl_status s = DCL_OK;
    if (!v->cpu) {
        s = dcl_device_open(&v->cpu, "cpu");
        if (s == DCL_OK) s = dcl_model_init(&v->m, v->cpu, &m->cfg, N);
        if (s == DCL_OK) s = bufs_init(&v->b, v->cpu, &v->m, N, D, 1, 0);
        v->dev_grads = malloc(p->n * sizeof *v->dev_grads);
        v->cpu_grads = malloc(p->n * sizeof *v->cpu_grads);
        if (s == DCL_OK && (!v->dev_grads || !v->cpu_grads))
            s = dcl__fail(DCL_ERR_NOMEM, "out of host memory for --verify-every");
        if (s != DCL_OK) return s;
    }
    s = dcl_buffer_read(p->buf, 0, p->n, v->dev_grads); // staging for the weights
    if (s == DCL_OK) s = dcl_buffer_write(dcl_net_params(v->m.net)->buf, 0, p->n, v->dev_grads);
    return s;
}

// Runs step g on the CPU and compares its gradients with the device's.
static dcl_status verify_end(struct verifier *v, dcl_model *m, dcl_dataset *ds,
                             const dcl_train_opts *o, int64_t g, double lr) {
    dcl_arena *gd = dcl_net_grads(m->net), *gc = dcl_net_grads(v->m.net);
    dcl_status s = step(v->cpu, &v->m, ds, o, &v->b, g, 0, lr);
    if (s == DCL_OK) s = dcl_buffer_read(gd->buf, 0, gd->n, v->dev_grads);
    if (s == DCL_OK) s = dcl_buffer_read(gc->buf, 0, gc->n, v->cpu_grads);
    if (s != DCL_OK) return s;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < gd->count; i++) {
        const dcl_arena_view *w = &gd->views[i];
        double scale = 0, diff = 0;
        for (size_t j = w->off; j < w->off + w->n; j++) {
            scale = fmax(scale, fabs(v->cpu_grads[j]));
            double d = fabs((double)v->dev_grads[j] - v->cpu_grads[j]);
            if (!(d <= diff)) diff = d; // NaN sticks
        }
        double rel = scale > 0 ? diff / scale : diff;
        if (!(rel <= worst)) worst = rel, worst_name = w->name;
    }
    if (worst <= VERIFY_RTOL) {
        dcl_log(DCL_LOG_VERBOSE,
                "verify step %lld: gradients agree with the CPU reference (worst "
                "%.2g of a tensor's largest value, in %s)",
                (long long)g + 1, worst, worst_name);
        return DCL_OK;
    }
    if (o->verify_strict)
        return dcl__fail(DCL_ERR_MISMATCH,
                         "verify step %lld: the device's gradient %s differs from the CPU "
                         "reference by %.3g of its largest value (tolerance %g); run 'diffcl "
                         "check' on this device",
                         (long long)g + 1, worst_name, worst, VERIFY_RTOL);
    dcl_log(DCL_LOG_INFO,
            "warning: verify step %lld: the device's gradient %s differs from the CPU reference "
            "by %.3g of its largest value (tolerance %g); run 'diffcl check' on this device",
            (long long)g + 1, worst_name, worst, VERIFY_RTOL);
    return DCL_OK;
}

// ---- the last consistent state ----------------------------------------------------------------
//
// The trainer keeps a host copy of everything a step reads and writes: the weights, the EMA
// weights and Adam's moments, with the counters. It is taken at the start and at every read-back
// (every log_every steps, at every save and at the end), where the queue has drained anyway, into
// a second copy that replaces the first only once every read has succeeded. It is what every
// checkpoint is written from, what a non-finite step rolls back to, and what a device failure
// goes on from (so at most log_every steps are lost).

struct snapshot {
    float *cur, *next; // each 4 P: weights, EMA weights, Adam m, Adam v
    size_t P;
    int64_t step; // m->cfg.step of cur; -1 until the first copy is complete
    int n_losses; // loss points recorded at that step
    dcl__train_counters c;
};

static dcl_status snapshot_take(struct snapshot *sn, dcl_model *m, struct bufs *b, int n_losses,
                                const dcl__train_counters *c) {
    size_t P = sn->P;
    dcl_buffer *src[4] = {dcl_net_params(m->net)->buf, m->ema.buf, b->adam_m.buf, b->adam_v.buf};
    for (int i = 0; i < 4; i++) {
        dcl_status s = dcl_buffer_read(src[i], 0, P, sn->next + (size_t)i * P);
        if (s != DCL_OK) return s;
    }
    float *t = sn->cur;
    sn->cur = sn->next, sn->next = t;
    sn->step = m->cfg.step, sn->n_losses = n_losses, sn->c = *c;
    return DCL_OK;
}

// The first copy: m's weights and EMA weights, and the moments and counters of the checkpoint
// `resume` (zero when NULL).
static dcl_status snapshot_init(struct snapshot *sn, dcl_model *m, const char *resume) {
    size_t P = dcl_net_params(m->net)->n;
    sn->P = P, sn->step = -1;
    sn->cur = malloc(4 * P * sizeof *sn->cur), sn->next = malloc(4 * P * sizeof *sn->next);
    if (!sn->cur || !sn->next)
        return dcl__fail(DCL_ERR_NOMEM, "out of host memory for the training state's copy");
    memset(&sn->c, 0, sizeof sn->c);
    memset(sn->cur + 2 * P, 0, 2 * P * sizeof *sn->cur);
    dcl_status s = dcl_buffer_read(dcl_net_params(m->net)->buf, 0, P, sn->cur);
    if (s == DCL_OK) s = dcl_buffer_read(m->ema.buf, 0, P, sn->cur + P);
    if (s == DCL_OK && resume)
        s = dcl__train_load(resume, m, sn->cur + 2 * P, sn->cur + 3 * P, &sn->c);
    if (s == DCL_OK) sn->step = m->cfg.step, sn->n_losses = 0;
    return s;
}

static void snapshot_free(struct snapshot *sn) {
    free(sn->cur), free(sn->next);
    memset(sn, 0, sizeof *sn);
}

// Puts the snapshot back on m's device.
static dcl_status snapshot_restore(const struct snapshot *sn, dcl_model *m, struct bufs *b) {
    dcl_buffer *dst[4] = {dcl_net_params(m->net)->buf, m->ema.buf, b->adam_m.buf, b->adam_v.buf};
    dcl_status s = DCL_OK;
    for (int i = 0; i < 4 && s == DCL_OK; i++)
        s = dcl_buffer_write(dst[i], 0, sn->P, sn->cur + i * sn->P);
    m->cfg.step = sn->step;
    return s;
}

// Moves the run to device `to`: frees the model and buffers on the failed device and rebuilds
// them on `to` from the snapshot.
static dcl_status move_to(dcl_device *to, dcl_model *m, struct bufs *b, const struct snapshot *sn,
                          size_t N, size_t D, size_t window) {
    dcl_model_config cfg = m->cfg;
    cfg.step = sn->step;
    size_t max_batch = m->max_batch;
    bufs_free(b);
    dcl_model_free(m);
    dcl_status s = dcl_model_init(m, to, &cfg, max_batch);
    if (s == DCL_OK) s = bufs_init(b, to, m, N, D, window, 0);
    if (s == DCL_OK) s = snapshot_restore(sn, m, b);
    return s;
}

// One training run's context.
struct trainer {
    dcl_device *dev;
    dcl_model *m;
    dcl_dataset *ds;
    const dcl_train_opts *o;
    struct bufs b;
    struct verifier v;
    struct snapshot sn;
    int64_t first, end, horizon; // the step dcl_train began at, its last, the schedule's horizon
    int64_t *skip;               // steps found non-finite since the snapshot: not run on replay
    int n_skip, cap_skip;
    dcl_train_log_fn log;
    void *log_ctx;
    float *losses;
    int *n_losses;
    double t0;
};

static int must_skip(const struct trainer *t, int64_t g) {
    for (int i = 0; i < t->n_skip; i++)
        if (t->skip[i] == g) return 1;
    return 0;
}

static dcl_status add_skip(struct trainer *t, int64_t g) {
    if (t->n_skip == t->cap_skip) {
        int cap = t->cap_skip ? 2 * t->cap_skip : 16;
        int64_t *p = realloc(t->skip, (size_t)cap * sizeof *p);
        if (!p) return dcl__fail(DCL_ERR_NOMEM, "out of host memory");
        t->skip = p, t->cap_skip = cap;
    }
    t->skip[t->n_skip++] = g;
    return DCL_OK;
}

// Data parallelism: o->sync compares the processes' copies of the state (and may replace this
// one, which then goes back on the device).
static dcl_status sync_state(struct trainer *t) {
    if (!t->o->sync) return DCL_OK;
    int r = t->o->sync(t->o->sync_ctx, t->sn.cur, 4 * t->sn.P, t->sn.step);
    if (r < 0) return (dcl_status)r;
    return r == 1 ? snapshot_restore(&t->sn, t->m, &t->b) : DCL_OK;
}

// A read-back at m->cfg.step: the steps since the snapshot, their losses and gradient norms in
// one read. All finite: the counters advance, a log window that ends here is reported, and a new
// snapshot is taken. The first non-finite step: it is marked to be skipped, the snapshot goes
// back on the device and *rolled is set (the caller replays from the snapshot's step; every step
// is a function of the state and its index, so the replayed steps are the same bits).
static dcl_status read_back(struct trainer *t, int *rolled) {
    dcl_model *m = t->m;
    const dcl_train_opts *o = t->o;
    struct bufs *b = &t->b;
    size_t N = (size_t)o->batch, D = dcl_net_dim(&m->cfg.net);
    size_t n = (size_t)(m->cfg.step - t->sn.step);
    *rolled = 0;
    dcl_status s = n ? dcl_buffer_read(b->losses, 0, n, b->hloss) : DCL_OK;
    if (s == DCL_OK && n) s = dcl_buffer_read(b->gsq, 0, n, b->hgsq);
    if (s != DCL_OK) return s;
    dcl__train_counters c = t->sn.c;
    for (size_t i = 0; i < n; i++) {
        if (b->skipped[i]) {
            c.skipped++, c.run_skips++;
            continue;
        }
        if (isfinite(b->hloss[i]) && isfinite(b->hgsq[i])) {
            c.win_sum += b->hloss[i], c.win_n++, c.run_skips = 0;
            continue;
        }
        int64_t g = t->sn.step + (int64_t)i;
        dcl_log(DCL_LOG_INFO,
                "warning: step %lld: the loss (%g) or the gradient norm (%g) is not finite; the "
                "step is skipped (%lld in a row, %lld in all)",
                (long long)g + 1, b->hloss[i] / (double)(N * D), sqrt(b->hgsq[i]),
                (long long)c.run_skips + 1, (long long)c.skipped + 1);
        if (c.run_skips + 1 >= o->max_skips)
            return dcl__fail(DCL_ERR_DIVERGED,
                             "training diverged: %lld steps in a row up to step %lld had a "
                             "non-finite loss or gradient; try a lower --lr or --clip",
                             (long long)c.run_skips + 1, (long long)g + 1);
        s = add_skip(t, g);
        if (s == DCL_OK) s = snapshot_restore(&t->sn, m, b);
        if (t->n_losses) *t->n_losses = t->sn.n_losses;
        *rolled = 1;
        return s;
    }
    // A log window ends here (or the run does): report the mean over its finite steps. At the end
    // of a run the window's sums stay in the state, so a resumed run reports the same windows.
    int64_t g = m->cfg.step;
    if (g % o->log_every == 0 || g == t->end) {
        double loss = c.win_n ? c.win_sum / ((double)c.win_n * (double)(N * D)) : NAN;
        if (c.win_n && t->losses && t->n_losses) t->losses[(*t->n_losses)++] = (float)loss;
        if (c.win_n && t->log) {
            dcl_train_report r = {.step = g - t->first,
                                  .total = t->end - t->first,
                                  .loss = loss,
                                  .global_step = g,
                                  .skipped = c.skipped,
                                  .steps_per_s =
                                      (double)(g - t->first) / fmax(now() - t->t0, 1e-9)};
            s = bucket_losses(b, shard_size(o), D, r.bucket_loss); // this process's shard
            if (s == DCL_OK) s = t->log(t->log_ctx, &r);
        }
        if (g % o->log_every == 0) c.win_sum = 0, c.win_n = 0;
    }
    t->n_skip = 0;
    if (s == DCL_OK) s = snapshot_take(&t->sn, m, b, t->n_losses ? *t->n_losses : 0, &c);
    if (s == DCL_OK) s = sync_state(t);
    return s;
}

// Writes the snapshot, with its training state, to path.
static dcl_status save_snapshot(const struct trainer *t, const char *path) {
    const struct snapshot *sn = &t->sn;
    dcl__train_tensors ts = {sn->cur, sn->cur + sn->P, sn->cur + 2 * sn->P, sn->cur + 3 * sn->P};
    return dcl__train_save(t->m, &ts, sn->step, &sn->c, t->o, t->end, t->horizon,
                           dcl_device_get_info(t->dev)->spec, path);
}

// --save-every: a periodic checkpoint, then the older ones beyond keep go. A failed save is a
// warning: training goes on to the next save, and the previous checkpoints stay.
static void save_periodic(const struct trainer *t) {
    char path[4096];
    dcl_train_checkpoint_name(t->o->out, t->sn.step, path, sizeof path);
    if (save_snapshot(t, path) != DCL_OK) {
        dcl_log(DCL_LOG_INFO, "warning: step %lld: %s; training goes on", (long long)t->sn.step,
                dcl_last_error());
        return;
    }
    dcl_log(DCL_LOG_VERBOSE, "step %lld: saved %s", (long long)t->sn.step, path);
    dcl__train_prune(t->o->out, t->o->keep);
}

// Steps from m->cfg.step to t->end on t->dev.
static dcl_status run(struct trainer *t) {
    dcl_model *m = t->m;
    const dcl_train_opts *o = t->o;
    size_t N = (size_t)o->batch, D = dcl_net_dim(&m->cfg.net);
    int reference = dcl_device_get_info(t->dev)->backend == DCL_BACKEND_CPU;
    dcl_status s = DCL_OK;
    for (int64_t g = m->cfg.step; g < t->end && s == DCL_OK;) {
        size_t slot = (size_t)(g - t->sn.step);
        int skip = t->b.skipped[slot] = (unsigned char)must_skip(t, g);
        double lr = dcl_train_lr(o, g, t->horizon);
        int verify = !skip && !reference && o->verify_every > 0 && (g + 1) % o->verify_every == 0;
        if (verify) s = verify_begin(&t->v, m, N, D);
        if (s == DCL_OK && !skip) s = step(t->dev, m, t->ds, o, &t->b, g, slot, lr);
        if (s == DCL_OK && verify) s = verify_end(&t->v, m, t->ds, o, g, lr);
        if (s != DCL_OK) break;
        m->cfg.step = ++g;
        int cancel = o->progress && o->progress(o->progress_ctx, g - t->first, t->end - t->first);
        // Every process reads back at the same steps (o->sync is collective), with or without out.
        int save = o->save_every > 0 && g % o->save_every == 0 && g < t->end;
        if (!(g % o->log_every == 0 || g == t->end || save || cancel)) continue;
        int rolled = 0;
        s = read_back(t, &rolled);
        if (s == DCL_OK && cancel)
            s = dcl__fail(DCL_ERR_CANCELLED, "training stopped after step %lld",
                          (long long)t->sn.step);
        if (s == DCL_OK && rolled) g = t->sn.step;
        else if (s == DCL_OK && save && o->out) save_periodic(t);
    }
    return s;
}

// After a failure: what can be saved is the last consistent state, with its own step count.
static void save_on_failure(struct trainer *t, dcl_status s) {
    char why[2048];
    snprintf(why, sizeof why, "%s", dcl_last_error());
    if (save_snapshot(t, t->o->out) == DCL_OK) {
        dcl__fail(s, "%s\nthe last consistent state (step %lld of %lld) was saved to %s", why,
                  (long long)t->sn.step, (long long)t->end, t->o->out);
        return;
    }
    char also[1024];
    snprintf(also, sizeof also, "%s", dcl_last_error());
    dcl__fail(s, "%s\nsaving the last consistent state to %s failed too: %s", why, t->o->out, also);
}

dcl_status dcl_train(dcl_device *dev, dcl_model *m, dcl_dataset *ds, const dcl_train_opts *o,
                     dcl_train_log_fn log, void *log_ctx, float *losses, int *n_losses) {
    if (o->steps < 0 || o->batch < 1 || o->log_every < 1 || !(o->lr > 0) || o->save_every < 0 ||
        o->max_skips < 1)
        return dcl__fail(DCL_ERR_ARG,
                         "training needs steps >= 0, batch >= 1, log_every >= 1, lr > 0, "
                         "save_every >= 0 and max_skips >= 1 (got %d, %d, %d, %g, %d, %d)",
                         o->steps, o->batch, o->log_every, o->lr, o->save_every, o->max_skips);
    if (o->shard_count > 1 && (o->shard_rank < 0 || o->shard_rank >= o->shard_count ||
                               o->batch % o->shard_count || !o->reduce))
        return dcl__fail(DCL_ERR_ARG,
                         "a shard needs 0 <= shard_rank < shard_count, a batch that divides by "
                         "shard_count and a reduce function (got rank %d of %d, batch %d)",
                         o->shard_rank, o->shard_count, o->batch);
    if (o->reduce && (o->verify_every > 0 || o->fallback))
        return dcl__fail(DCL_ERR_ARG, "data-parallel training (a reduce function) cannot verify "
                                      "steps or fall back to another device");
    size_t D = dcl_net_dim(&m->cfg.net);
    if (dcl_dataset_dim(ds) != D)
        return dcl__fail(DCL_ERR_ARG, "dataset '%s' has %zu values per example but the model %zu",
                         dcl_dataset_spec(ds), dcl_dataset_dim(ds), D);
    if (dcl_net_num_classes(&m->cfg.net) && !dcl_dataset_num_classes(ds))
        return dcl__fail(DCL_ERR_ARG,
                         "the model is class-conditional but dataset '%s' has no "
                         "labels",
                         dcl_dataset_spec(ds));
    size_t N = shard_size(o), window = (size_t)o->log_every;
    struct trainer t = {.dev = dev,
                        .m = m,
                        .ds = ds,
                        .o = o,
                        .sn = {.step = -1},
                        .first = m->cfg.step,
                        .end = m->cfg.step + o->steps,
                        .log = log,
                        .log_ctx = log_ctx,
                        .losses = losses,
                        .n_losses = n_losses,
                        .t0 = now()};
    t.horizon = o->lr_horizon > 0 ? o->lr_horizon : t.end;
    if (n_losses) *n_losses = 0;
    // The first copy comes before the buffers, so a device that fails setting them up falls back
    // too: the weights from the device, the moments zero or the checkpoint's.
    dcl_status s = snapshot_init(&t.sn, m, o->resume);
    if (s == DCL_OK) s = bufs_init(&t.b, dev, m, N, D, window, o->reduce != NULL);
    if (s == DCL_OK && o->resume) s = snapshot_restore(&t.sn, m, &t.b);
    if (s == DCL_OK) s = sync_state(&t); // every process starts from the same state
    if (s == DCL_OK) s = run(&t);
    // A device failure: go on from the last consistent state on the fallback device, if any.
    while (s != DCL_OK && dcl_status_is_device_failure(s) && t.sn.step >= 0 && o->fallback &&
           t.dev != o->fallback) {
        dcl_log(DCL_LOG_ERROR, "device %s failed after %lld of %lld steps: %s",
                dcl_device_get_info(t.dev)->spec, (long long)(m->cfg.step - t.first),
                (long long)o->steps, dcl_last_error());
        dcl_log(DCL_LOG_ERROR,
                "continuing on the CPU reference from step %lld, the last consistent state "
                "(--device auto falls back; name a device to stop instead)",
                (long long)t.sn.step);
        t.dev = o->fallback;
        if (n_losses) *n_losses = t.sn.n_losses;
        t.n_skip = 0;
        s = move_to(t.dev, m, &t.b, &t.sn, N, D, window);
        if (s == DCL_OK) s = run(&t);
    }
    if (s == DCL_OK && o->out) s = save_snapshot(&t, o->out); // the final state
    else if ((dcl_status_is_device_failure(s) || s == DCL_ERR_CANCELLED || s == DCL_ERR_DIVERGED) &&
             t.sn.step >= 0 && o->out && m->net)
        save_on_failure(&t, s);
    bufs_free(&t.b);
    verifier_free(&t.v);
    snapshot_free(&t.sn);
    free(t.skip);
    return s;
}
