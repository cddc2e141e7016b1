// `diffcl train`: trains a diffusion or flow model on a dataset and saves it as a safetensors
// checkpoint that `diffcl sample` needs nothing else to use.
#define _POSIX_C_SOURCE 200809L // access

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/progress.h" // cli_bar
#include "core/error.h"   // dcl__fail
#include "diffcl/image.h" // dcl_image_grid_write
#include "diffcl/log.h"   // dcl_log, dcl_log_get_level
#include "diffcl/plot.h"  // dcl_plot_curve
#include "diffcl/train.h" // dcl_train, dcl_model_*

const cli_command cli_train_command = {
    .name = "train",
    .summary = "train a diffusion or flow model on a dataset",
    .usage =
        "diffcl train [--data SPEC] [--process NAME] [--predict NAME] [--steps N] [--batch N]\n"
        "             [--out FILE] [--loss-plot PNG] [...]",
    .details =
        "Trains a denoiser network (an MLP for points, a U-Net for images) with AdamW (linear\n"
        "warm-up, gradient-norm clipping, EMA of the weights) on the mean squared error between\n"
        "the network's output and the target of the chosen parametrization, with t ~ U[0,1] per\n"
        "example (integer steps for vp-linear), optionally weighted by Min-SNR-gamma\n"
        "(--loss-weight min-snr). The loss shown is the unweighted mean squared error.\n"
        "All randomness comes from Philox streams of --seed: the same flags give the same\n"
        "checkpoint bit for bit on one device.\n"
        "\n"
        "Processes (x_t = a(t) x0 + b(t) eps; t = 0 data, t = 1 noise):\n"
        "  flow        a = 1 - t, b = t                 predictions: velocity (default), x0, eps, "
        "v\n"
        "  ve          a = 1, b = sigma_q sqrt(t)       predictions: x0 (default), eps, v, prev\n"
        "  vp-linear   a = sqrt(abar), b = sqrt(1-abar) predictions: eps (default), x0, v\n"
        "  vp-cosine   as vp-linear, cosine abar         predictions: v (default), eps, x0\n"
        "  (eps on vp-cosine suits ddpm; ddim/euler/heun amplify its errors near t = 1)\n"
        "\n"
        "Datasets: spiral, moons, checkerboard, gmm8, annulus, swissroll (fresh points every\n"
        "step), NAME:n=K for a fixed training set of K points, csv:PATH for your own points;\n"
        "images: fashion-mnist, idx:IMAGES[,LABELS], png:FOLDER. Points train an MLP, images a\n"
        "U-Net (--net). A labelled image set trains a class-conditional model whose labels are\n"
        "dropped to a null class with probability --cond-drop, for classifier-free guidance\n"
        "('diffcl sample --guidance W'); --uncond ignores the labels.\n"
        "\n"
        "Checkpoints hold the training state too (Adam moments, step, skip counters, options):\n"
        "--save-every N also writes OUT-stepNNNNNNNN.safetensors every N steps, keeping the "
        "newest\n"
        "--keep; --resume PATH (a checkpoint, a folder: its newest, or OUT: its newest periodic\n"
        "one) continues bit for bit on the same device, with the checkpoint's model, data and\n"
        "seed (naming different ones is refused) and its options unless given; --steps is the\n"
        "total. The first SIGINT/SIGTERM saves OUT after the current step and exits 130/143.\n"
        "A step whose loss or gradient is NaN/Inf is skipped; --max-skips in a row stop with\n"
        "exit 7 and the last finite state in OUT.\n"
        "\n"
        "Device failures: the weights, EMA weights and optimizer state are copied to the host\n"
        "at every --log-every. If the device fails, --device auto (the default) continues on the\n"
        "CPU reference from that copy; a named device stops with exit 5 after saving the copy to\n"
        "--out (a checkpoint at the step it reached, which --resume continues).\n"
        "\n"
        "Under mpirun (a build with MPI): data-parallel training, each rank on its share of\n"
        "--batch (which must divide by the ranks), rank 0 alone writing (README: MPI).\n"
        "\n"
        "Progress goes to stderr: a bar with steps/s and ETA on a terminal, else a line every\n"
        "10% (and at least every 30 s), with the loss read back every --log-every steps. The\n"
        "folders of --out, --loss-plot and --loss-csv are checked before training starts (exit\n"
        "4). --loss-csv writes the same curve as numbers (step,loss per --log-every; 'diffcl\n"
        "plot' draws several runs' on one plot).\n",
    .examples =
        "  diffcl train\n"
        "  diffcl train --data spiral --process flow --steps 3000 --out spiral.safetensors\n"
        "  diffcl train --process ve --sigma-q 3 --predict x0 --out ve.safetensors\n"
        "  diffcl train --data spiral:n=10 --steps 6000 --out memorise.safetensors\n"
        "  diffcl train --data fashion-mnist --process vp-cosine --steps 4000 --batch 64 \\\n"
        "      --out fm.safetensors --sample-every 500\n"
        "  diffcl train --steps 20000 --save-every 500 --lr-schedule cosine --out run.safetensors\n"
        "  diffcl train --resume run.safetensors --steps 30000\n",
};

typedef struct train_flags {
    const char *data, *process, *predict, *act, *out, *loss_plot, *loss_csv, *loss_weight, *net;
    const char *resume, *lr_schedule;
    double sigma_q, lr, clip, ema, weight_decay, snr_gamma, cond_drop, lr_min;
    uint64_t steps, batch, warmup, width, depth, emb, seed, log_every, prev_steps;
    uint64_t base, groups, sample_every, verify_every, save_every, keep, max_skips;
    uint64_t res_blocks, heads;
    int argc; // the command line, to tell which flags were given (--resume)
    char **argv;
    int verify_strict;
    cli_sizes mult, attn;
    int uncond;
} train_flags;

// The default prediction of each process: the tutorial's (Nakkiran et al. 2024) for flow and ve,
// DDPM's eps for vp-linear, and v for vp-cosine, whose a(1) ≈ 5e-5 turns small eps errors near
// t = 1 into large x0 errors (x0 = (x_t − b eps) / a) in deterministic samplers: measured on the
// spiral (1500 steps, ddim 100), SW2 0.34 with eps and 0.04 with v.
static dcl_prediction default_prediction(dcl_process_kind k) {
    switch (k) {
    case DCL_PROCESS_FLOW: return DCL_PREDICT_VELOCITY;
    case DCL_PROCESS_VE: return DCL_PREDICT_X0;
    case DCL_PROCESS_VP_COSINE: return DCL_PREDICT_V;
    default: return DCL_PREDICT_EPS;
    }
}

// The network for the dataset: an MLP for points, a U-Net for images (unless --net says).
static int make_net(const train_flags *f, dcl_dataset *ds, dcl_net_config *n) {
    int C, H, W, image = dcl_dataset_image_shape(ds, &C, &H, &W);
    if (strcmp(f->net, "auto") == 0) n->kind = image ? DCL_NET_UNET : DCL_NET_MLP;
    else if (strcmp(f->net, "mlp") == 0) n->kind = DCL_NET_MLP;
    else if (strcmp(f->net, "unet") == 0) n->kind = DCL_NET_UNET;
    else return cli_usage_error("train", "--net '%s': use auto, mlp or unet", f->net);
    if (n->kind == DCL_NET_MLP) {
        if (strcmp(f->act, "relu") == 0) n->mlp.act = DCL_ACT_RELU;
        else if (strcmp(f->act, "silu") == 0) n->mlp.act = DCL_ACT_SILU;
        else return cli_usage_error("train", "--act '%s': use relu or silu", f->act);
        if (f->emb % 2) return cli_usage_error("train", "--emb must be even (sin and cos halves)");
        n->mlp.dim = (int)dcl_dataset_dim(ds);
        n->mlp.width = (int)f->width;
        n->mlp.depth = (int)f->depth;
        n->mlp.emb_dim = (int)f->emb;
        return CLI_PARSED;
    }
    if (!image)
        return cli_usage_error("train", "--net unet needs images; '%s' holds points", f->data);
    dcl_unet_config *u = &n->unet;
    dcl_unet_config_default(u, C, H, W);
    if (f->base) u->base = (int)f->base, u->emb_dim = (int)f->base;
    if (f->groups) u->groups = (int)f->groups;
    if (f->mult.n) {
        if (f->mult.n > DCL_UNET_MAX_LEVELS)
            return cli_usage_error("train", "--mult takes at most %d levels", DCL_UNET_MAX_LEVELS);
        u->levels = f->mult.n;
        for (int l = 0; l < f->mult.n; l++) u->mult[l] = (int)f->mult.v[l];
    }
    if (f->res_blocks) u->res_blocks = (int)f->res_blocks;
    if (f->heads && !f->attn.n)
        return cli_usage_error("train", "--heads is for attention blocks: add --attn LIST");
    if (f->heads) u->heads = (int)f->heads;
    u->num_classes = f->uncond ? 0 : dcl_dataset_num_classes(ds);
    // The shape first (H and W divisible by 2^(levels − 1)), then --attn's heights as levels.
    u->attn = 0;
    size_t params;
    if (dcl_unet_param_count(u, &params) != DCL_OK)
        return cli_usage_error("train", "%s", dcl_last_error());
    for (int i = 0; i < f->attn.n; i++) {
        int l = 0;
        while (l < u->levels && (size_t)(u->height >> l) != f->attn.v[i]) l++;
        if (l == u->levels) {
            char have[64];
            dcl_unet_attn_heights(u, have, sizeof have);
            return cli_usage_error("train",
                                   "--attn %zu: the network has no resolution of height %zu; its "
                                   "heights are %s (%d×%d images, %d levels of --mult)",
                                   f->attn.v[i], f->attn.v[i], have, u->height, u->width,
                                   u->levels);
        }
        u->attn |= 1u << l;
    }
    if (dcl_unet_param_count(u, &params) != DCL_OK)
        return cli_usage_error("train", "%s", dcl_last_error());
    return CLI_PARSED;
}

// Flags → model config; usage errors are reported here.
static int make_config(const train_flags *f, dcl_dataset *ds, dcl_model_config *c) {
    memset(c, 0, sizeof *c);
    if (dcl_process_parse(f->process, &c->process) != DCL_OK)
        return cli_usage_error("train", "--process: %s", dcl_last_error());
    if (!(f->sigma_q > 0)) return cli_usage_error("train", "--sigma-q must be > 0");
    if (c->process.kind == DCL_PROCESS_VE) c->process.sigma_q = f->sigma_q;
    c->pred = default_prediction(c->process.kind);
    if (f->predict && dcl_prediction_parse(f->predict, &c->pred) != DCL_OK)
        return cli_usage_error("train", "--predict: %s", dcl_last_error());
    if (dcl_prediction_check(&c->process, c->pred) != DCL_OK)
        return cli_usage_error("train", "--predict: %s", dcl_last_error());
    if (c->pred == DCL_PREDICT_PREV) c->prev_dt = 1.0 / (double)f->prev_steps;
    if (!(f->cond_drop >= 0 && f->cond_drop <= 1))
        return cli_usage_error("train", "--cond-drop must be in [0, 1]");
    int rc = make_net(f, ds, &c->net);
    if (rc != CLI_PARSED) return rc;
    c->cond_drop = dcl_net_num_classes(&c->net) ? f->cond_drop : 0;
    c->seed = f->seed;
    if (strlen(f->data) >= sizeof c->data)
        return cli_usage_error("train", "--data is longer than %zu characters", sizeof c->data - 1);
    snprintf(c->data, sizeof c->data, "%s", f->data);
    return CLI_PARSED;
}

// --sample-every: a grid of GRID_N images from fixed noise (seed 1), one row per class for a
// conditional model, so progress can be watched.
#define GRID_N 100

typedef struct log_state {
    cli_bar bar;
    double loss;     // the last read-back loss: the mean over its window
    double ema_loss; // smoothed loss for display
    int64_t window;  // steps in that window
    int64_t last_step;
    int have;
    dcl_model *model;
    dcl_dataset *ds;
    int64_t sample_every;
    const char *grid_path;
} log_state;

static dcl_status write_grid(log_state *l) {
    const dcl_model_config *c = &l->model->cfg;
    const dcl_unet_config *u = &c->net.unet;
    int K = dcl_net_num_classes(&c->net), rows = K ? K : 10, cols = GRID_N / rows;
    size_t N = (size_t)rows * (size_t)cols, D = dcl_net_dim(&c->net);
    float *x = malloc(N * D * sizeof *x);
    int32_t *labels = malloc(N * sizeof *labels);
    const char **names = calloc((size_t)rows, sizeof *names);
    if (!x || !labels || !names) {
        free(x), free(labels), free(names);
        return dcl__fail(DCL_ERR_NOMEM, "out of host memory for a sample grid");
    }
    for (size_t i = 0; i < N; i++) labels[i] = (int32_t)(i / (size_t)cols);
    for (int r = 0; K && r < rows; r++) names[r] = dcl_dataset_class_name(l->ds, r);
    dcl_sampler_opts o = {.kind = DCL_SAMPLER_DDIM, .steps = 50};
    dcl_guidance g = {K ? labels : NULL, K ? 3.0 : 1.0};
    dcl_status s = dcl_model_sample(l->model, &o, N, 1, 1, &g, x, NULL);
    if (s == DCL_OK)
        s = dcl_image_grid_write(l->grid_path, x, N, u->channels, u->height, u->width, cols, 2, 2,
                                 K ? names : NULL, K ? rows : 0);
    free(x), free(labels), free(names);
    return s;
}

// Every --log-every steps: the loss joins the bar's note; the bar itself advances every step
// (cli_bar_progress).
static dcl_status on_log(void *ctx, const dcl_train_report *r) {
    log_state *l = ctx;
    l->ema_loss = l->have ? 0.7 * l->ema_loss + 0.3 * r->loss : r->loss;
    l->loss = r->loss, l->window = r->step - l->last_step, l->last_step = r->step;
    l->have = 1;
    if (l->model->cfg.net.kind == DCL_NET_UNET) // where in t the error sits, for image models
        cli_bar_note(&l->bar, "loss %.4f (smoothed %.4f) | by t: %.3f %.3f %.3f %.3f", r->loss,
                     l->ema_loss, r->bucket_loss[0], r->bucket_loss[1], r->bucket_loss[2],
                     r->bucket_loss[3]);
    else if (r->skipped)
        cli_bar_note(&l->bar, "loss %.4f (smoothed %.4f) | %lld non-finite steps skipped", r->loss,
                     l->ema_loss, (long long)r->skipped);
    else cli_bar_note(&l->bar, "loss %.4f (smoothed %.4f)", r->loss, l->ema_loss);
    if (!l->sample_every || r->global_step % l->sample_every) return DCL_OK;
    dcl_status s = write_grid(l);
    cli_progress_clear();
    // A progress picture never ends a run.
    if (s == DCL_OK)
        dcl_log(DCL_LOG_INFO, "step %lld: wrote %s", (long long)r->global_step, l->grid_path);
    else
        dcl_log(DCL_LOG_INFO, "warning: step %lld: the sample grid failed (%s); training goes on",
                (long long)r->global_step, dcl_last_error());
    return DCL_OK;
}

// The loss read back every log_every steps from step first on: as a plot (--loss-plot) and as
// CSV rows step,loss (--loss-csv); either path may be NULL.
static dcl_status write_losses(const char *plot, const char *csv, const dcl_model_config *c,
                               const float *losses, int n, int log_every, int64_t first) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * 3 * sizeof *x), *rows = x + (n > 0 ? n : 1);
    if (!x) return DCL_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        x[i] = (float)(first + (int64_t)(i + 1) * log_every);
        rows[2 * i] = x[i], rows[2 * i + 1] = losses[i];
    }
    char title[640];
    snprintf(title, sizeof title, "training loss: %s, %s prediction, %s",
             dcl_process_name(c->process.kind), dcl_prediction_name(c->pred), c->data);
    dcl_status s = DCL_OK;
    if (plot) s = dcl_plot_curve(plot, title, "step", "loss (MSE)", x, losses, (size_t)n, 1);
    if (s == DCL_OK && csv) s = dcl_csv_write_named(csv, rows, (size_t)n, 2, "step,loss");
    free(x);
    return s;
}

// Everything a run needs once the flags are resolved.
typedef struct train_run {
    dcl_dataset *ds;
    dcl_model_config cfg;
    dcl_train_opts o;
    size_t max_batch;
    char grid_path[4096]; // --sample-every's grid: "model.safetensors" → "model-samples.png"
    char ckpt[4096];      // --resume: the checkpoint resumed from ("" when not resuming)
    char out[4096]; // --resume without --out: the run's final name ("run-step00000500" → "run")
    dcl_train_info info; // its training state
} train_run;

static void train_flags_default(train_flags *f, dcl_train_opts *o) {
    *f = (train_flags){.data = "spiral",
                       .process = "flow",
                       .act = "relu",
                       .net = "auto",
                       .out = "model.safetensors",
                       .loss_weight = "uniform",
                       .sigma_q = 3,
                       .cond_drop = 0.1,
                       .steps = 3000,
                       .warmup = 100,
                       .width = 128,
                       .depth = 3,
                       .emb = 32,
                       .prev_steps = 100,
                       .lr_schedule = "constant"};
    dcl_train_opts_default(o);
    f->keep = (uint64_t)o->keep, f->max_skips = (uint64_t)o->max_skips;
    f->lr = o->lr, f->clip = o->clip, f->ema = o->ema, f->weight_decay = o->weight_decay;
    f->snr_gamma = o->snr_gamma;
}

static int unet_res_blocks(const dcl_unet_config *u) {
    return u->res_blocks > 0 ? u->res_blocks : 1;
}
static int unet_heads(const dcl_unet_config *u) { return u->heads > 0 ? u->heads : 1; }

// --attn's heights as the levels of u (bit l: height H/2^l); a height u lacks sets bit 31.
static unsigned attn_bits(const train_flags *f, const dcl_unet_config *u) {
    unsigned bits = 0;
    for (int i = 0; i < f->attn.n; i++) {
        int l = 0;
        while (l < u->levels && (size_t)(u->height >> l) != f->attn.v[i]) l++;
        bits |= l < u->levels ? 1u << l : 1u << 31;
    }
    return bits;
}

// The U-Net's flags, "--base 16 --mult 1,2,2 --groups 8 --res-blocks 1 --attn 16,8 --heads 1".
static void unet_flags(const dcl_unet_config *u, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "--base %d --mult ", u->base);
    for (int l = 0; l < u->levels && n < size; l++)
        n += (size_t)snprintf(buf + n, size - n, "%s%d", l ? "," : "", u->mult[l]);
    if (n < size)
        n += (size_t)snprintf(buf + n, size - n, " --groups %d --res-blocks %d", u->groups,
                              unet_res_blocks(u));
    for (int l = 0, k = 0; l < u->levels && n < size; l++)
        if ((u->attn >> l) & 1)
            n +=
                (size_t)snprintf(buf + n, size - n, "%s%d", k++ ? "," : " --attn ", u->height >> l);
    if (u->attn && n < size) snprintf(buf + n, size - n, " --heads %d", unet_heads(u));
}

// Whether --mult lists other multipliers than the U-Net u has.
static int mult_differs(const cli_sizes *m, const dcl_unet_config *u) {
    if (m->n != u->levels) return 1;
    for (int l = 0; l < m->n; l++)
        if (m->v[l] != (size_t)u->mult[l]) return 1;
    return 0;
}

// Whether --name (or its short form -c, when c is not 0) was given on the command line.
static int given_as(const train_flags *f, const char *name, char c) {
    size_t n = strlen(name);
    for (int i = 1; i < f->argc; i++) {
        const char *a = f->argv[i];
        if (strcmp(a, "--") == 0) break;
        if (strncmp(a, "--", 2) == 0 && strncmp(a + 2, name, n) == 0 &&
            (a[2 + n] == 0 || a[2 + n] == '='))
            return 1;
        if (c && a[0] == '-' && a[1] == c) return 1;
    }
    return 0;
}

static int given(const train_flags *f, const char *name) { return given_as(f, name, 0); }

// --resume: finds the checkpoint, refuses flags that contradict it, and takes what was not given
// from it (the model, the dataset, the seed, the optimizer options, the run's last step).
static int resolve_resume(train_flags *f, train_run *r) {
    dcl_status s = dcl_train_find_resume(f->resume, r->ckpt, sizeof r->ckpt);
    dcl_model_config c;
    if (s == DCL_OK) s = dcl_model_read_config(r->ckpt, &c);
    if (s == DCL_OK) s = dcl_train_info_read(r->ckpt, &r->info);
    if (s != DCL_OK) return cli_report(s);
    const dcl_net_config *n = &c.net;
    const char *diff = NULL;
    char want[600] = "", have[600] = "";
    dcl_process p;
    dcl_prediction pred;
    if (given(f, "data") && strcmp(f->data, c.data) != 0)
        diff = "dataset", snprintf(want, sizeof want, "%s", f->data),
        snprintf(have, sizeof have, "%s", c.data);
    else if (given(f, "seed") && f->seed != c.seed)
        diff = "seed", snprintf(want, sizeof want, "%llu", (unsigned long long)f->seed),
        snprintf(have, sizeof have, "%llu", (unsigned long long)c.seed);
    else if (given(f, "process") &&
             (dcl_process_parse(f->process, &p) != DCL_OK || p.kind != c.process.kind))
        diff = "process", snprintf(want, sizeof want, "%s", f->process),
        snprintf(have, sizeof have, "%s", dcl_process_name(c.process.kind));
    else if (given(f, "predict") &&
             (dcl_prediction_parse(f->predict, &pred) != DCL_OK || pred != c.pred))
        diff = "prediction", snprintf(want, sizeof want, "%s", f->predict),
        snprintf(have, sizeof have, "%s", dcl_prediction_name(c.pred));
    else if (given(f, "net") && strcmp(f->net, "auto") != 0 &&
             strcmp(f->net, n->kind == DCL_NET_UNET ? "unet" : "mlp") != 0)
        diff = "network", snprintf(want, sizeof want, "%s", f->net),
        snprintf(have, sizeof have, "%s", n->kind == DCL_NET_UNET ? "unet" : "mlp");
    else if (n->kind == DCL_NET_MLP && ((given(f, "width") && f->width != (uint64_t)n->mlp.width) ||
                                        (given(f, "depth") && f->depth != (uint64_t)n->mlp.depth) ||
                                        (given(f, "emb") && f->emb != (uint64_t)n->mlp.emb_dim)))
        diff = "network",
        snprintf(want, sizeof want, "--width %llu --depth %llu --emb %llu",
                 (unsigned long long)f->width, (unsigned long long)f->depth,
                 (unsigned long long)f->emb),
        snprintf(have, sizeof have, "--width %d --depth %d --emb %d", n->mlp.width, n->mlp.depth,
                 n->mlp.emb_dim);
    else if (n->kind == DCL_NET_UNET &&
             ((given(f, "base") && f->base != (uint64_t)n->unet.base) ||
              (given(f, "groups") && f->groups != (uint64_t)n->unet.groups) ||
              (given(f, "mult") && mult_differs(&f->mult, &n->unet)) ||
              (given(f, "res-blocks") && f->res_blocks != (uint64_t)unet_res_blocks(&n->unet)) ||
              (given(f, "heads") && f->heads != (uint64_t)unet_heads(&n->unet)) ||
              (given(f, "attn") && attn_bits(f, &n->unet) != n->unet.attn)))
        diff = "network",
        snprintf(want, sizeof want,
                 "the U-Net of --base/--groups/--mult/--res-blocks/--attn/--heads"),
        unet_flags(&n->unet, have, sizeof have);
    if (diff)
        return cli_usage_error("train",
                               "--resume %s: the checkpoint's %s is %s, not %s; resume without "
                               "that flag or start a new run",
                               r->ckpt, diff, have, want);
    // Optimizer options: the checkpoint's unless given.
    const dcl_train_opts *k = &r->info.opts;
    if (!given_as(f, "batch", 'b')) f->batch = (uint64_t)k->batch;
    if (!given(f, "lr")) f->lr = k->lr;
    if (!given(f, "warmup")) f->warmup = (uint64_t)k->warmup;
    if (!given(f, "clip")) f->clip = k->clip;
    if (!given(f, "ema")) f->ema = k->ema;
    if (!given(f, "weight-decay")) f->weight_decay = k->weight_decay;
    if (!given(f, "snr-gamma")) f->snr_gamma = k->snr_gamma;
    if (!given(f, "loss-weight")) f->loss_weight = k->min_snr ? "min-snr" : "uniform";
    if (!given(f, "log-every")) f->log_every = (uint64_t)k->log_every;
    if (!given(f, "lr-schedule")) f->lr_schedule = dcl_lr_schedule_name(k->lr_schedule);
    if (!given(f, "lr-min")) f->lr_min = k->lr_min;
    if (!given(f, "steps")) f->steps = (uint64_t)r->info.end;
    if (f->steps <= (uint64_t)c.step)
        return cli_usage_error("train",
                               "--resume %s: the checkpoint is at step %lld already; raise "
                               "--steps (the total) above it",
                               r->ckpt, (long long)c.step);
    r->cfg = c;
    f->data = r->cfg.data, f->seed = c.seed;
    if (!given_as(f, "out", 'o')) { // the run's final checkpoint: drop "-stepDIGITS"
        snprintf(r->out, sizeof r->out, "%s", r->ckpt);
        char *p = NULL, *q = NULL;
        for (char *x = strstr(r->out, "-step"); x; x = strstr(x + 1, "-step")) p = x;
        if (p) q = p + 5;
        while (q && *q >= '0' && *q <= '9') q++;
        if (p && q > p + 5 && strcmp(q, ".safetensors") == 0) memmove(p, q, strlen(q) + 1);
        f->out = r->out;
    }
    return CLI_PARSED;
}

// Flags → dataset, model config and training options, every check before any expensive work
// (the outputs' folders first, then the dataset). Returns CLI_PARSED or an exit code.
static int resolve_train(train_flags *f, train_run *r) {
    dcl_train_opts *o = &r->o;
    if (f->resume) {
        int rc = resolve_resume(f, r);
        if (rc != CLI_PARSED) return rc;
    }
    if (!(f->lr > 0) || f->clip < 0 || f->weight_decay < 0 || f->ema < 0 || f->ema >= 1)
        return cli_usage_error("train", "need --lr > 0, --clip >= 0, --weight-decay >= 0 and "
                                        "0 <= --ema < 1");
    if (strcmp(f->loss_weight, "min-snr") == 0) o->min_snr = 1;
    else if (strcmp(f->loss_weight, "uniform") != 0)
        return cli_usage_error("train", "--loss-weight '%s': use uniform or min-snr",
                               f->loss_weight);
    if (!(f->snr_gamma > 0)) return cli_usage_error("train", "--snr-gamma must be > 0");
    dcl_status s = cli_check_output("--out", f->out);
    if (s == DCL_OK && f->loss_plot) s = cli_check_output_as("--loss-plot", f->loss_plot, ".png");
    if (s == DCL_OK && f->loss_csv) s = cli_check_output_as("--loss-csv", f->loss_csv, ".csv");
    if (s == DCL_ERR_ARG) return cli_usage_error("train", "%s", dcl_last_error());
    if (s != DCL_OK) return cli_report(s);

    if (dcl_lr_schedule_parse(f->lr_schedule, &o->lr_schedule) != DCL_OK)
        return cli_usage_error("train", "--lr-schedule: %s", dcl_last_error());
    if (!(f->lr_min >= 0 && f->lr_min <= f->lr))
        return cli_usage_error("train", "need 0 <= --lr-min <= --lr");
    s = r->ckpt[0] ? dcl_dataset_open(&r->ds, r->cfg.data, r->cfg.seed)
                   : dcl_dataset_open(&r->ds, f->data, f->seed);
    if (s == DCL_ERR_ARG) return cli_usage_error("train", "--data: %s", dcl_last_error());
    if (s != DCL_OK) return cli_report(s);
    int rc = r->ckpt[0] ? CLI_PARSED : make_config(f, r->ds, &r->cfg);
    if (rc != CLI_PARSED) return rc;
    // Defaults that depend on the network.
    int unet = r->cfg.net.kind == DCL_NET_UNET;
    o->steps = (int)(f->steps - (uint64_t)r->cfg.step), o->warmup = (int)f->warmup;
    o->snr_gamma = f->snr_gamma, o->lr_min = f->lr_min;
    o->lr_horizon = r->ckpt[0] ? r->info.opts.lr_horizon : 0;
    o->save_every = (int)f->save_every, o->keep = (int)f->keep, o->max_skips = (int)f->max_skips;
    o->resume = r->ckpt[0] ? r->ckpt : NULL;
    o->batch = f->batch ? (int)f->batch : unet ? 64 : 1024;
    o->lr = f->lr;
    o->log_every = f->log_every ? (int)f->log_every : unet ? 25 : 100;
    o->clip = f->clip, o->ema = f->ema, o->weight_decay = f->weight_decay;
    o->verify_every = (int)f->verify_every, o->verify_strict = f->verify_strict;
    o->out = f->out;
    if (f->sample_every && (!unet || f->sample_every % (uint64_t)o->log_every))
        return cli_usage_error("train",
                               "--sample-every is for image models and must be a "
                               "multiple of --log-every (%d)",
                               o->log_every);
    cli_path_beside(f->out, "-samples.png", 0, r->grid_path, sizeof r->grid_path);
    // Sampling a guided grid during training evaluates 2 GRID_N images at once.
    r->max_batch = (size_t)o->batch;
    if (f->sample_every && r->max_batch < 2 * GRID_N) r->max_batch = 2 * GRID_N;
    return CLI_PARSED;
}

static void log_start(const train_flags *f, const train_run *r, const dcl_model *m) {
    const dcl_model_config *c = &r->cfg;
    char shape[400];
    if (c->net.kind == DCL_NET_UNET) {
        const dcl_unet_config *u = &c->net.unet;
        char flags[256];
        unet_flags(u, flags, sizeof flags);
        snprintf(shape, sizeof shape, "unet %d×%d×%d %s%s%s", u->channels, u->height, u->width,
                 flags, u->num_classes ? ", class-conditional" : "",
                 u->num_classes ? (c->cond_drop > 0 ? " with label drop" : "") : "");
    } else snprintf(shape, sizeof shape, "mlp %dx%d", c->net.mlp.depth, c->net.mlp.width);
    dcl_log(DCL_LOG_INFO, "training %s/%s on %s: %d steps of %d, %s (%zu parameters)",
            dcl_process_name(c->process.kind), dcl_prediction_name(c->pred), f->data, r->o.steps,
            r->o.batch, shape, dcl_model_parameter_count(m));
    dcl_unet_memory mem;
    if (c->net.kind == DCL_NET_UNET &&
        dcl_unet_memory_bytes(&c->net.unet, dcl_buffer_device(dcl_net_params(m->net)->buf),
                              r->max_batch, &mem) == DCL_OK)
        dcl_log(DCL_LOG_INFO,
                "unet: %zu parameters, %.1f MFLOP per image forward (about 3× that per training "
                "image), %.1f MiB of device memory at batch %zu",
                dcl_model_parameter_count(m), dcl_unet_flops(&c->net.unet) / 1e6,
                (double)mem.total / 1048576.0, r->max_batch);
    if (access(f->out, F_OK) == 0) dcl_log(DCL_LOG_INFO, "%s exists and will be replaced", f->out);
}

// Opens the device, trains and writes the checkpoint (and --loss-plot). *moved: the run finished
// on the CPU reference after a device failure.
static dcl_status run_training(const train_flags *f, const char *device, train_run *r,
                               int64_t *steps_done, int *moved) {
    dcl_device *dev = NULL, *fallback = NULL;
    dcl_model m = {0};
    int n_losses = 0;
    float *losses = malloc(((size_t)r->o.steps / (size_t)r->o.log_every + 2) * sizeof *losses);
    dcl_status s = losses ? cli_open_device(device, &dev, &fallback) : DCL_ERR_NOMEM;
    if (s == DCL_OK) cli_mpi_device(dev); // MPI: each rank logs its device
    // A batch the device cannot hold is a usage error found before anything is allocated.
    if (s == DCL_OK && r->cfg.net.kind == DCL_NET_UNET &&
        dcl_unet_check_memory(&r->cfg.net.unet, dev, r->max_batch, NULL) != DCL_OK) {
        s = dcl__fail_context(DCL_ERR_ARG, "--batch %zu%s", r->max_batch,
                              r->max_batch > (size_t)r->o.batch ? " (the sample grid's)" : "");
    }
    if (s == DCL_OK)
        s = r->o.resume ? dcl_model_load(&m, dev, r->o.resume, r->max_batch)
                        : dcl_model_init(&m, dev, &r->cfg, r->max_batch);
    if (dcl_status_is_device_failure(s) && fallback) {
        dcl_log(DCL_LOG_ERROR, "device %s failed: %s", dcl_device_get_info(dev)->spec,
                dcl_last_error());
        dcl_log(DCL_LOG_ERROR, "training on the CPU reference instead (--device auto)");
        s = r->o.resume ? dcl_model_load(&m, fallback, r->o.resume, r->max_batch)
                        : dcl_model_init(&m, fallback, &r->cfg, r->max_batch);
    }
    if (s == DCL_OK && r->o.resume) {
        const char *spec = dcl_device_get_info(dcl_buffer_device(dcl_net_params(m.net)->buf))->spec;
        dcl_log(DCL_LOG_INFO, "resuming %s at step %lld of %lld", r->o.resume,
                (long long)m.cfg.step, (long long)(m.cfg.step + r->o.steps));
        if (strcmp(spec, r->info.device) != 0)
            dcl_log(DCL_LOG_INFO,
                    "it was written on %s and goes on on %s: results agree within the "
                    "cross-device tolerance, not bit for bit",
                    r->info.device, spec);
    }
    if (s == DCL_OK) {
        log_start(f, r, &m);
        log_state l = {.model = &m,
                       .ds = r->ds,
                       .sample_every = (int64_t)f->sample_every,
                       .grid_path = r->grid_path};
        cli_bar_start(&l.bar, "train", "step", r->o.steps, dcl_log_get_level() < DCL_LOG_INFO);
        r->o.fallback = fallback;
        r->o.progress = cli_bar_progress, r->o.progress_ctx = &l.bar;
        cli_mpi_train_opts(&r->o); // MPI: this rank's shard, the gradient reduce, state checks
        s = dcl_train(dcl_buffer_device(dcl_net_params(m.net)->buf), &m, r->ds, &r->o, on_log, &l,
                      losses, &n_losses);
        if (s == DCL_OK) {
            double secs = cli_now() - l.bar.t0;
            char summary[192];
            snprintf(summary, sizeof summary,
                     "%.0f examples/s; final loss %.4f (mean of the last %lld steps; smoothed "
                     "%.4f)",
                     (double)r->o.steps * r->o.batch / (secs > 1e-9 ? secs : 1e-9), l.loss,
                     (long long)l.window, l.ema_loss);
            cli_bar_finish(&l.bar, l.have ? summary : NULL);
        }
        *steps_done = m.cfg.step;
        *moved = fallback && dcl_buffer_device(dcl_net_params(m.net)->buf) == fallback;
    }
    const char *csv = cli_mpi_writes() ? f->loss_csv : NULL; // MPI: rank 0 alone writes
    if (s == DCL_OK && (f->loss_plot || csv))
        s = write_losses(f->loss_plot, csv, &r->cfg, losses, n_losses, r->o.log_every,
                         r->cfg.step - r->cfg.step % r->o.log_every);
    if (m.net) dcl_model_free(&m);
    dcl_device_free(dev);
    dcl_device_free(fallback);
    free(losses);
    return s;
}

// What was written, and the command to run next (as llama.cpp's and sd's tools end).
static void report_training(const train_flags *f, const char *device, const train_run *r,
                            int64_t steps, int moved) {
    printf("wrote %s (%lld steps%s)\n", f->out, (long long)steps,
           moved ? "; finished on the CPU reference after a device failure" : "");
    if (f->loss_plot) printf("wrote %s\n", f->loss_plot);
    if (f->loss_csv) printf("wrote %s\n", f->loss_csv);
    fflush(stdout);
    char dev[160] = "", png[4096], then[4200];
    if (device) snprintf(dev, sizeof dev, " --device %s", device);
    cli_path_beside(f->out, "_samples.png", 1, png, sizeof png);
    // 2-D points: a scatter plot; images: the default output, a grid; other points: a CSV.
    if (r->cfg.net.kind == DCL_NET_UNET) snprintf(then, sizeof then, "   # a grid in %s", png);
    else if (dcl_net_dim(&r->cfg.net) == 2) snprintf(then, sizeof then, " --plot %s", png);
    else snprintf(then, sizeof then, "   # the samples in %.*s.csv", (int)strlen(png) - 4, png);
    dcl_log(DCL_LOG_INFO, "next: diffcl sample%s --model %s%s", dev, f->out, then);
    dcl_log(DCL_LOG_INFO, "      diffcl eval%s --model %s", dev, f->out);
}

int cli_cmd_train(int argc, char **argv) {
    train_flags f;
    train_run r = {0};
    train_flags_default(&f, &r.o);
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"data", 0, CLI_OPT_STRING, &f.data, "SPEC", "dataset (see above)", "spiral", 0, 0},
        {"process", 0, CLI_OPT_STRING, &f.process, "NAME", "flow, ve, vp-linear or vp-cosine",
         "flow", 0, 0},
        {"predict", 0, CLI_OPT_STRING, &f.predict, "NAME",
         "what the network predicts: velocity, x0, eps, v, prev", "per process", 0, 0},
        {"sigma-q", 0, CLI_OPT_DOUBLE, &f.sigma_q, "X", "ve: the noise scale at t = 1", "3", 0, 0},
        {"prev-steps", 0, CLI_OPT_U64, &f.prev_steps, "K",
         "prev: the sampler steps the model is trained for", "100", 1, 100000},
        {"steps", 0, CLI_OPT_U64, &f.steps, "N", "optimizer steps", "3000", 0, 100000000},
        {"batch", 'b', CLI_OPT_U64, &f.batch, "N", "examples per step", "1024 (mlp), 64 (unet)", 1,
         1u << 20},
        {"lr", 0, CLI_OPT_DOUBLE, &f.lr, "X", "peak learning rate", "0.001", 0, 0},
        {"warmup", 0, CLI_OPT_U64, &f.warmup, "N", "linear learning-rate warm-up steps", "100", 0,
         100000000},
        {"lr-schedule", 0, CLI_OPT_STRING, &f.lr_schedule, "NAME",
         "after the warm-up: constant, cosine or linear (to --lr-min)", "constant", 0, 0},
        {"lr-min", 0, CLI_OPT_DOUBLE, &f.lr_min, "X", "cosine, linear: the final learning rate",
         "0", 0, 0},
        {"clip", 0, CLI_OPT_DOUBLE, &f.clip, "X", "clip the gradient norm to X (0: off)", "1", 0,
         0},
        {"weight-decay", 0, CLI_OPT_DOUBLE, &f.weight_decay, "X", "AdamW decoupled weight decay",
         "0", 0, 0},
        {"ema", 0, CLI_OPT_DOUBLE, &f.ema, "X", "EMA decay of the weights used for sampling",
         "0.999", 0, 0},
        {"loss-weight", 0, CLI_OPT_STRING, &f.loss_weight, "NAME",
         "time weighting of the loss: uniform or min-snr", "uniform", 0, 0},
        {"snr-gamma", 0, CLI_OPT_DOUBLE, &f.snr_gamma, "X", "min-snr: the SNR cap gamma", "5", 0,
         0},
        {"net", 0, CLI_OPT_STRING, &f.net, "NAME", "network: auto, mlp or unet", "auto", 0, 0},
        {"width", 0, CLI_OPT_U64, &f.width, "H", "mlp: hidden width", "128", 1, 65536},
        {"depth", 0, CLI_OPT_U64, &f.depth, "L", "mlp: hidden layers", "3", 1, 64},
        {"emb", 0, CLI_OPT_U64, &f.emb, "E", "mlp: time-embedding size (even)", "32", 2, 4096},
        {"act", 0, CLI_OPT_STRING, &f.act, "NAME", "mlp: activation, relu or silu", "relu", 0, 0},
        {"base", 0, CLI_OPT_U64, &f.base, "C", "unet: channels at full resolution", "16", 1, 4096},
        {"mult", 0, CLI_OPT_SIZES, &f.mult, "LIST", "unet: channel multiplier per resolution",
         "1,2,2", 1, 64},
        {"groups", 0, CLI_OPT_U64, &f.groups, "G", "unet: GroupNorm groups", "8", 1, 4096},
        {"res-blocks", 0, CLI_OPT_U64, &f.res_blocks, "N", "unet: residual blocks per resolution",
         "1", 1, DCL_UNET_MAX_RES_BLOCKS},
        {"attn", 0, CLI_OPT_SIZES, &f.attn, "LIST",
         "unet: self-attention at these resolutions (heights, e.g. 16,8)", NULL, 1, 65536},
        {"heads", 0, CLI_OPT_U64, &f.heads, "N", "unet: attention heads (divide the channels)", "1",
         1, 4096},
        {"cond-drop", 0, CLI_OPT_DOUBLE, &f.cond_drop, "P",
         "labelled data: probability of training with the null class", "0.1", 0, 0},
        {"uncond", 0, CLI_OPT_FLAG, &f.uncond, NULL, "ignore the dataset's labels", NULL, 0, 0},
        {"seed", 0, CLI_OPT_U64, &f.seed, "N", "seed of every random stream", "0", 0, UINT64_MAX},
        {"log-every", 0, CLI_OPT_U64, &f.log_every, "N", "read the loss back every N steps",
         "100 (mlp), 25 (unet)", 1, 1000000},
        {"sample-every", 0, CLI_OPT_U64, &f.sample_every, "N",
         "images: write a sample grid (OUT-samples.png) every N steps", NULL, 1, 100000000},
        {"verify-every", 0, CLI_OPT_U64, &f.verify_every, "N",
         "every N steps, repeat the step on the CPU reference and compare gradients", NULL, 1,
         100000000},
        {"verify-strict", 0, CLI_OPT_FLAG, &f.verify_strict, NULL,
         "stop (exit 1) when --verify-every finds a disagreement, instead of warning", NULL, 0, 0},
        {"out", 'o', CLI_OPT_STRING, &f.out, "FILE", "checkpoint to write", "model.safetensors", 0,
         0},
        {"loss-plot", 0, CLI_OPT_STRING, &f.loss_plot, "PNG", "write the loss curve here", NULL, 0,
         0},
        {"loss-csv", 0, CLI_OPT_STRING, &f.loss_csv, "CSV",
         "write the loss curve as step,loss rows", NULL, 0, 0},
        {"save-every", 0, CLI_OPT_U64, &f.save_every, "N",
         "also save OUT-stepNNNNNNNN.safetensors every N steps", NULL, 1, 100000000},
        {"keep", 0, CLI_OPT_U64, &f.keep, "K", "--save-every: keep the newest K of those", "2", 1,
         1000000},
        {"max-skips", 0, CLI_OPT_U64, &f.max_skips, "M",
         "stop (exit 7) after M non-finite steps in a row", "10", 1, 1000000},
        {"resume", 0, CLI_OPT_STRING, &f.resume, "PATH",
         "continue a run from a checkpoint (a folder: its newest)", NULL, 0, 0},
    };
    f.argc = argc, f.argv = argv;
    cli_common common = {0};
    int rc = cli_parse(&cli_train_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc == CLI_PARSED) rc = resolve_train(&f, &r);
    // MPI (host/cli/mpi.c): under mpirun, data-parallel training; rank 0 alone writes.
    if (rc == CLI_PARSED)
        rc = cli_mpi_train_begin(&r.o, &common.device, &f.loss_plot, &f.sample_every);
    if (rc != CLI_PARSED) {
        dcl_dataset_free(r.ds);
        return cli_mpi_end(rc);
    }
    int64_t steps = 0;
    int moved = 0;
    dcl_status s = run_training(&f, common.device, &r, &steps, &moved);
    if (s == DCL_OK && cli_mpi_writes()) report_training(&f, common.device, &r, steps, moved);
    dcl_dataset_free(r.ds);
    if (s == DCL_OK) return cli_mpi_end(CLI_EXIT_OK);
    rc = cli_report(s);
    // A state was saved: say how to go on from it.
    if ((s == DCL_ERR_CANCELLED || s == DCL_ERR_DIVERGED || dcl_status_is_device_failure(s)) &&
        strstr(dcl_last_error(), "was saved to"))
        dcl_log(DCL_LOG_ERROR, "resume with: diffcl train --resume %s --out %s%s%s", f.out, f.out,
                common.device ? " --device " : "", common.device ? common.device : "");
    return cli_mpi_end(rc);
}
