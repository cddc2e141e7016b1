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
#include "model/model_impl.h" // dcl__model_save_host

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
    dcl_buffer *gsq;                                          // (1): Σ g²
    dcl_buffer *losses;                                       // (log_every): Σ (pred − target)²
    dcl_arena adam_m, adam_v;
    float *hx0, *ht, *hw, *hcoef, *hloss; // host staging: (N, D), (N), (N), (N, 4), (window)
    int32_t *hlabels;                     // (N)
};

static void bufs_free(struct bufs *b) {
    dcl_buffer *all[] = {b->x0, b->eps, b->xt,   b->target, b->pred,   b->dpred, b->diff,
                         b->t,  b->w,   b->coef, b->gsq,    b->losses, b->labels};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dcl_buffer_free(all[i]);
    if (b->adam_m.buf) dcl_arena_free(&b->adam_m);
    if (b->adam_v.buf) dcl_arena_free(&b->adam_v);
    free(b->hx0), free(b->ht), free(b->hw), free(b->hcoef), free(b->hloss), free(b->hlabels);
    memset(b, 0, sizeof *b);
}

static dcl_status bufs_init(struct bufs *b, dcl_device *dev, dcl_model *m, size_t N, size_t D,
                            size_t window) {
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
        {&b->gsq, 1, "train.gsq"},       {&b->losses, window, "train.losses"},
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
    if (s == DCL_OK && !(b->hx0 && b->ht && b->hw && b->hcoef && b->hloss && b->hlabels))
        s = dcl__fail(DCL_ERR_NOMEM, "out of host memory for training");
    return s;
}

// One optimizer step at global step g (0-based): draw x0 and t, form x_t and the target, take the
// loss's gradient through the network, then AdamW and the EMA update.
static dcl_status step(dcl_device *dev, dcl_model *m, dcl_dataset *ds, const dcl_train_opts *o,
                       struct bufs *b, int64_t g, size_t slot) {
    const dcl_model_config *c = &m->cfg;
    size_t N = (size_t)o->batch, D = dcl_net_dim(&c->net);
    dcl_arena *params = dcl_net_params(m->net), *grads = dcl_net_grads(m->net);
    int K = dcl_net_num_classes(&c->net);
    uint32_t sg = (uint32_t)g;

    // Data, per-example t and the schedule's coefficients come from the host (small uploads);
    // x_t = a x0 + b ε and the target are formed on the device.
    dcl_status s = dcl_dataset_batch_labels(ds, b->hx0, K ? b->hlabels : NULL, N, (uint64_t)g);
    // Classifier-free guidance training: each label becomes the null class K with probability
    // cond_drop (Philox LABEL_DROP), so one network learns ε̂(x, y) and ε̂(x, ∅).
    for (size_t n = 0; K && n < N && s == DCL_OK; n++) {
        if (b->hlabels[n] < 0 || b->hlabels[n] >= K)
            s = dcl__fail(DCL_ERR_FORMAT, "dataset '%s' has label %d; the model has %d classes",
                          dcl_dataset_spec(ds), (int)b->hlabels[n], K);
        else if (dcl_rng_uniform_at(c->seed, DCL_RNG_LABEL_DROP, sg, n) < c->cond_drop)
            b->hlabels[n] = K;
    }
    if (s == DCL_OK && K) s = dcl_buffer_write(b->labels, 0, N, b->hlabels);
    for (size_t n = 0; n < N && s == DCL_OK; n++) {
        double t =
            dcl_process_train_t(&c->process, dcl_rng_uniform_at(c->seed, DCL_RNG_TIME, sg, n));
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
        s = dcl_rng_normal(dev, dcl_at(b->eps, 0), c->seed, DCL_RNG_NOISE, sg, 0, N * D);
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

    // AdamW with linear warm-up; the clip factor is computed on the device from Σ g².
    double lr = o->lr * (o->warmup > 0 && g < o->warmup ? (double)(g + 1) / o->warmup : 1.0);
    if (s == DCL_OK) s = dcl_sumsq(dev, dcl_at(b->gsq, 0), dcl_at(grads->buf, 0), grads->n);
    if (s == DCL_OK)
        s = dcl_adamw_step(dev, dcl_at(params->buf, 0), dcl_at(b->adam_m.buf, 0),
                           dcl_at(b->adam_v.buf, 0), dcl_at(grads->buf, 0), dcl_at(b->gsq, 0),
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
        if (s == DCL_OK) s = bufs_init(&v->b, v->cpu, &v->m, N, D, 1);
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
                             const dcl_train_opts *o, int64_t g) {
    dcl_arena *gd = dcl_net_grads(m->net), *gc = dcl_net_grads(v->m.net);
    dcl_status s = step(v->cpu, &v->m, ds, o, &v->b, g, 0);
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
// On an OpenCL device the trainer keeps a host copy of everything a step reads and writes: the
// weights, the EMA weights and Adam's moments. It is taken at the start and after every loss
// read-back, where the queue has drained anyway, into a second copy that replaces the first only
// once every read has succeeded. A device failure then loses at most log_every steps.

struct snapshot {
    float *cur, *next; // each 4 P: weights, EMA weights, Adam m, Adam v
    size_t P;
    int64_t step; // m->cfg.step of cur; -1 until the first copy is complete
    int n_losses; // loss points recorded at that step
};

// b NULL: at the start, when Adam's moments are zero.
static dcl_status snapshot_take(struct snapshot *sn, dcl_model *m, struct bufs *b, int n_losses) {
    size_t P = dcl_net_params(m->net)->n;
    if (!sn->cur) {
        sn->P = P, sn->step = -1;
        sn->cur = malloc(4 * P * sizeof *sn->cur), sn->next = malloc(4 * P * sizeof *sn->next);
        if (!sn->cur || !sn->next)
            return dcl__fail(DCL_ERR_NOMEM, "out of host memory for the training state's copy");
    }
    dcl_buffer *src[4] = {dcl_net_params(m->net)->buf, m->ema.buf, b ? b->adam_m.buf : NULL,
                          b ? b->adam_v.buf : NULL};
    for (int i = 0; i < 4; i++) {
        float *dst = sn->next + (size_t)i * P;
        dcl_status s = src[i] ? dcl_buffer_read(src[i], 0, P, dst) : DCL_OK;
        if (!src[i]) memset(dst, 0, P * sizeof *dst);
        if (s != DCL_OK) return s;
    }
    float *t = sn->cur;
    sn->cur = sn->next, sn->next = t;
    sn->step = m->cfg.step, sn->n_losses = n_losses;
    return DCL_OK;
}

static void snapshot_free(struct snapshot *sn) {
    free(sn->cur), free(sn->next);
    memset(sn, 0, sizeof *sn);
}

// Moves the run to device `to`: frees the model and buffers on the failed device and rebuilds
// them on `to` from the snapshot.
static dcl_status move_to(dcl_device *to, dcl_model *m, struct bufs *b, const struct snapshot *sn,
                          size_t N, size_t D, size_t window) {
    dcl_model_config cfg = m->cfg;
    cfg.step = sn->step;
    size_t max_batch = m->max_batch, P = sn->P;
    bufs_free(b);
    dcl_model_free(m);
    dcl_status s = dcl_model_init(m, to, &cfg, max_batch);
    if (s == DCL_OK) s = bufs_init(b, to, m, N, D, window);
    dcl_buffer *dst[4] = {s == DCL_OK ? dcl_net_params(m->net)->buf : NULL, m->ema.buf,
                          b->adam_m.buf, b->adam_v.buf};
    for (int i = 0; i < 4 && s == DCL_OK; i++) s = dcl_buffer_write(dst[i], 0, P, sn->cur + i * P);
    return s;
}

// The end of a log window (step k of this call, its loss in `slot`): the window's losses in one
// read, the report, and a new copy of the last consistent state.
static dcl_status read_back(dcl_model *m, const dcl_train_opts *o, struct bufs *b,
                            struct snapshot *sn, int64_t k, size_t slot, int64_t total,
                            dcl_train_log_fn log, void *log_ctx, float *losses, int *n_losses,
                            double t0) {
    size_t N = (size_t)o->batch, D = dcl_net_dim(&m->cfg.net);
    dcl_status s = dcl_buffer_read(b->losses, 0, slot + 1, b->hloss);
    double sum = 0;
    for (size_t i = 0; i <= slot; i++) sum += b->hloss[i];
    double loss = sum / ((double)(slot + 1) * (double)(N * D));
    // No status names a diverged run; MISMATCH ("results were wrong", exit 1 in the CLI) is the
    // closest, and the message says what happened.
    if (s == DCL_OK && !isfinite(loss))
        s = dcl__fail(DCL_ERR_MISMATCH,
                      "training diverged at step %lld: the loss is %g; try a lower "
                      "--lr or --clip (no checkpoint was written)",
                      (long long)m->cfg.step, loss);
    if (s != DCL_OK) return s;
    if (losses && n_losses) losses[(*n_losses)++] = (float)loss;
    if (log) {
        dcl_train_report r = {.step = k + 1,
                              .total = total,
                              .loss = loss,
                              .steps_per_s = (double)(k + 1) / fmax(now() - t0, 1e-9)};
        s = bucket_losses(b, N, D, r.bucket_loss);
        if (s == DCL_OK) s = log(log_ctx, &r);
    }
    if (s == DCL_OK && sn) s = snapshot_take(sn, m, b, n_losses ? *n_losses : 0);
    return s;
}

// Steps from m->cfg.step to `end` on dev; k counts steps from `first`, the step dcl_train began
// at, so log windows keep their places across a move.
static dcl_status run(dcl_device *dev, dcl_model *m, dcl_dataset *ds, const dcl_train_opts *o,
                      struct bufs *b, struct verifier *v, struct snapshot *sn, int64_t first,
                      int64_t end, dcl_train_log_fn log, void *log_ctx, float *losses,
                      int *n_losses, double t0) {
    size_t N = (size_t)o->batch, D = dcl_net_dim(&m->cfg.net);
    int reference = dcl_device_get_info(dev)->backend == DCL_BACKEND_CPU;
    dcl_status s = DCL_OK;
    for (int64_t g = m->cfg.step; g < end && s == DCL_OK; g++) {
        int64_t k = g - first;
        size_t slot = (size_t)(k % o->log_every);
        int verify = !reference && o->verify_every > 0 && (k + 1) % o->verify_every == 0;
        if (verify) s = verify_begin(v, m, N, D);
        if (s == DCL_OK) s = step(dev, m, ds, o, b, g, slot);
        if (s == DCL_OK && verify) s = verify_end(v, m, ds, o, g);
        if (s != DCL_OK) break;
        m->cfg.step = g + 1;
        if (slot + 1 == (size_t)o->log_every || g + 1 == end)
            s = read_back(m, o, b, sn, k, slot, end - first, log, log_ctx, losses, n_losses, t0);
        if (s == DCL_OK && o->progress && o->progress(o->progress_ctx, k + 1, end - first))
            s = dcl__fail(DCL_ERR_CANCELLED, "training stopped after step %lld",
                          (long long)m->cfg.step);
    }
    return s;
}

dcl_status dcl_train(dcl_device *dev, dcl_model *m, dcl_dataset *ds, const dcl_train_opts *o,
                     dcl_train_log_fn log, void *log_ctx, float *losses, int *n_losses) {
    if (o->steps < 0 || o->batch < 1 || o->log_every < 1 || !(o->lr > 0))
        return dcl__fail(DCL_ERR_ARG,
                         "training needs steps >= 0, batch >= 1, log_every >= 1 and "
                         "lr > 0 (got %d, %d, %d, %g)",
                         o->steps, o->batch, o->log_every, o->lr);
    size_t D = dcl_net_dim(&m->cfg.net);
    if (dcl_dataset_dim(ds) != D)
        return dcl__fail(DCL_ERR_ARG, "dataset '%s' has %zu values per example but the model %zu",
                         dcl_dataset_spec(ds), dcl_dataset_dim(ds), D);
    if (dcl_net_num_classes(&m->cfg.net) && !dcl_dataset_num_classes(ds))
        return dcl__fail(DCL_ERR_ARG,
                         "the model is class-conditional but dataset '%s' has no "
                         "labels",
                         dcl_dataset_spec(ds));
    size_t N = (size_t)o->batch, window = (size_t)o->log_every;
    int64_t first = m->cfg.step, end = first + o->steps;
    int guarded = dcl_device_get_info(dev)->backend != DCL_BACKEND_CPU && (o->fallback || o->out);
    struct bufs b = {0};
    struct verifier v = {0};
    struct snapshot sn = {.step = -1};
    if (n_losses) *n_losses = 0;
    double t0 = now();
    dcl_status s = guarded ? snapshot_take(&sn, m, NULL, 0) : DCL_OK;
    if (s == DCL_OK) s = bufs_init(&b, dev, m, N, D, window);
    if (s == DCL_OK)
        s = run(dev, m, ds, o, &b, &v, guarded ? &sn : NULL, first, end, log, log_ctx, losses,
                n_losses, t0);
    // A device failure: go on from the last consistent state on the fallback device, if any.
    while (s != DCL_OK && dcl_status_is_device_failure(s) && sn.step >= 0 && o->fallback &&
           dev != o->fallback) {
        dcl_log(DCL_LOG_ERROR, "device %s failed after %lld of %lld steps: %s",
                dcl_device_get_info(dev)->spec, (long long)(m->cfg.step - first),
                (long long)o->steps, dcl_last_error());
        dcl_log(DCL_LOG_ERROR,
                "continuing on the CPU reference from step %lld, the last consistent state "
                "(--device auto falls back; name a device to stop instead)",
                (long long)sn.step);
        dev = o->fallback;
        if (n_losses) *n_losses = sn.n_losses;
        s = move_to(dev, m, &b, &sn, N, D, window);
        if (s == DCL_OK)
            s = run(dev, m, ds, o, &b, &v, &sn, first, end, log, log_ctx, losses, n_losses, t0);
    }
    if (s == DCL_OK && o->out)
        s = guarded ? dcl__model_save_host(m, sn.cur, sn.cur + sn.P, o->out) // the final state
                    : dcl_model_save(m, o->out);
    else if (dcl_status_is_device_failure(s) && sn.step >= 0 && o->out && m->net) {
        // What can be saved: the last consistent state, with its own step count.
        char why[2048];
        snprintf(why, sizeof why, "%s", dcl_last_error());
        int64_t at = m->cfg.step;
        m->cfg.step = sn.step;
        dcl_status saved = dcl__model_save_host(m, sn.cur, sn.cur + sn.P, o->out);
        m->cfg.step = at;
        if (saved == DCL_OK)
            dcl__fail(s, "%s\nthe last consistent state (step %lld of %lld) was saved to %s", why,
                      (long long)sn.step, (long long)end, o->out);
        else {
            char also[1024];
            snprintf(also, sizeof also, "%s", dcl_last_error());
            dcl__fail(s, "%s\nsaving the last consistent state to %s failed too: %s", why, o->out,
                      also);
        }
    }
    bufs_free(&b);
    verifier_free(&v);
    snapshot_free(&sn);
    return s;
}
