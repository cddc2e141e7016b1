// Full training steps of a small model on a device against the CPU reference, from the same seed
// and the same data: the loss, every gradient tensor and every parameter after AdamW, each as a
// row of dcl_check_result (what `diffcl check` runs after the single ops). Two steps, because the
// U-Net's output convolution starts at zero: in the first step no gradient reaches the layers
// before it, and the second step is the first that exercises every backward op. The U-Net's rows
// are followed by those of a colour 3×32×32 U-Net with attention blocks.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h> // rmdir

#include "crosscheck/crosscheck.h"
#include "core/error.h"
#include "diffcl/data.h"
#include "diffcl/image.h" // dcl_image_grid_write: the colour U-Net's PNG folder
#include "diffcl/rng.h"   // dcl_rng_uniform_at, DCL_RNG_TEST
#include "diffcl/train.h"

#define CHECK_LR 1e-3

// The model each network kind is checked with: small, so a step takes well under a second on a
// CPU, but with every layer kind of the default network.
static dcl_status check_model(dcl_net_kind kind, dcl_model_config *c, const char **data,
                              int *batch) {
    memset(c, 0, sizeof *c);
    dcl_status s = dcl_process_parse("flow", &c->process);
    c->pred = DCL_PREDICT_VELOCITY;
    c->seed = 7;
    c->net.kind = kind;
    if (kind == DCL_NET_MLP) {
        c->net.mlp = (dcl_mlp_config){.dim = 2, .width = 64, .depth = 3, .emb_dim = 16};
        *data = "spiral", *batch = 256;
    } else {
        dcl_unet_config_default(&c->net.unet, 1, 28, 28);
        c->net.unet.base = 8, c->net.unet.groups = 4, c->net.unet.emb_dim = 8;
        c->net.unet.num_classes = 10;
        c->cond_drop = 0.25;
        *data = "fashion-mnist:n=256", *batch = 8;
    }
    snprintf(c->data, sizeof c->data, "%s", *data);
    return s;
}

// Trains `steps` (2 or 3) steps on dev from fresh weights or from the checkpoint at path; returns
// the last step's loss, and its gradients and the parameters after it in host copies.
static dcl_status one_step(dcl_device *dev, const dcl_model_config *c, const char *path,
                           dcl_dataset *ds, int batch, int steps, float *loss, float **grads,
                           float **params, dcl_model *m) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = steps, o.batch = batch, o.log_every = 1, o.warmup = 0, o.lr = CHECK_LR;
    float losses[4];
    int n_losses = 0;
    dcl_status s = path ? dcl_model_load(m, dev, path, (size_t)batch)
                        : dcl_model_init(m, dev, c, (size_t)batch);
    if (s == DCL_OK) s = dcl_train(dev, m, ds, &o, NULL, NULL, losses, &n_losses);
    if (s != DCL_OK) return s;
    *loss = losses[steps - 1];
    dcl_arena *g = dcl_net_grads(m->net), *p = dcl_net_params(m->net);
    *grads = malloc(g->n * sizeof **grads);
    *params = malloc(p->n * sizeof **params);
    if (!*grads || !*params) return dcl__fail(DCL_ERR_NOMEM, "check: out of host memory");
    s = dcl_buffer_read(g->buf, 0, g->n, *grads);
    if (s == DCL_OK) s = dcl_buffer_read(p->buf, 0, p->n, *params);
    return s;
}

// Compares a against ref over n values: |a − ref| <= atol + rtol · max|ref| (norm-wise, as a
// tensor's values feed the next layer together).
static void compare(dcl_check_result *r, const char *name, const float *a, const float *ref,
                    size_t n, float atol, float rtol) {
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->n = r->elements = n;
    r->atol = atol, r->rtol = rtol;
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= r->max_abs)) r->max_abs = d, worst = i; // NaN sticks
    }
    r->max_rel = scale > 0 ? r->max_abs / scale : r->max_abs;
    r->pass = r->max_abs <= atol + rtol * scale;
    if (!r->pass)
        snprintf(r->detail, sizeof r->detail, "worst at [%zu]: device %.9g, reference %.9g", worst,
                 n ? a[worst] : 0.0, n ? ref[worst] : 0.0);
}

int dcl_check_train_available(dcl_net_kind kind) {
    dcl_model_config c;
    const char *data;
    int batch;
    dcl_dataset *ds = NULL;
    int ok = check_model(kind, &c, &data, &batch) == DCL_OK &&
             dcl_dataset_open(&ds, data, c.seed) == DCL_OK;
    dcl_dataset_free(ds);
    dcl_clear_error();
    return ok;
}

// The two models' last steps compared row by row: "train.<net>.loss", ".grad.<view>",
// ".param.<view>".
static dcl_status compare_steps(dcl_device *dev, dcl_device *cpu, const dcl_model_config *c,
                                const char *model, const char *data, int batch, int steps,
                                const char *net, dcl_check_row_fn fn, void *ctx) {
    dcl_dataset *ds = NULL;
    dcl_model md = {0}, mc = {0};
    float loss_d = 0, loss_c = 0, *gd = NULL, *pd = NULL, *gc = NULL, *pc = NULL;
    dcl_status s = dcl_dataset_open(&ds, data, c->seed);
    if (s == DCL_OK) s = one_step(cpu, c, model, ds, batch, steps, &loss_c, &gc, &pc, &mc);
    if (s == DCL_OK) s = one_step(dev, c, model, ds, batch, steps, &loss_d, &gd, &pd, &md);
    if (s == DCL_OK) {
        char name[sizeof((dcl_check_result *)0)->name];
        dcl_check_result r;
        snprintf(name, sizeof name, "train.%s.loss", net);
        compare(&r, name, &loss_d, &loss_c, 1, 0, 1e-4f);
        fn(ctx, &r);
        // Gradients: GEMMs sum in other orders and the time embedding's sin/cos may differ by a
        // few ulp of arguments up to 1000, so each tensor agrees to ~1e-5 of its largest value
        // on PoCL; 2e-3 leaves room for GPUs (the same bound as tests/test_unet.c).
        // Parameters after AdamW: the first step moves each weight by about lr whatever its
        // gradient's size, so tiny gradients that round differently may move a weight by a
        // visible fraction of lr: atol 0.1 lr.
        const dcl_arena *a = dcl_net_params(md.net);
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < a->count; i++) {
                const dcl_arena_view *v = &a->views[i];
                snprintf(name, sizeof name, "train.%s.%s.%s", net, pass ? "param" : "grad",
                         v->name);
                if (pass == 0) compare(&r, name, gd + v->off, gc + v->off, v->n, 1e-6f, 2e-3f);
                else compare(&r, name, pd + v->off, pc + v->off, v->n, (float)(0.1 * CHECK_LR), 0);
                fn(ctx, &r);
            }
    }
    if (md.net) dcl_model_free(&md);
    if (mc.net) dcl_model_free(&mc);
    free(gd), free(pd), free(gc), free(pc);
    dcl_dataset_free(ds);
    return s;
}

// The colour U-Net with attention: 3×32×32, base 8, mult 1,2,2, attention with 2 heads at 16 and
// 8 (so also in the middle), unconditional, on COLOR_IMAGES smooth random RGB images written as
// PNGs into a temporary folder (png:FOLDER; removed after). Three steps: proj starts at zero like
// conv_out, so the attention's qkv and norm first get gradients in the third.
#define COLOR_IMAGES 8
#define COLOR_SIDE 32

static dcl_status color_step(dcl_device *dev, dcl_device *cpu, dcl_check_row_fn fn, void *ctx) {
    dcl_model_config c;
    dcl_status s = check_model(DCL_NET_UNET, &c, &(const char *){NULL}, &(int){0});
    if (s != DCL_OK) return s;
    dcl_unet_config *u = &c.net.unet;
    dcl_unet_config_default(u, 3, COLOR_SIDE, COLOR_SIDE);
    u->base = 8, u->groups = 4, u->emb_dim = 8, u->attn = 6, u->heads = 2;
    c.cond_drop = 0;
    const char *tmp = getenv("TMPDIR");
    char dir[256], path[300], data[300];
    snprintf(dir, sizeof dir, "%s/diffcl-check-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return dcl__fail(DCL_ERR_IO, "check: cannot create %s", dir);
    // Image i: a colour gradient with a wave whose phase and frequency come from Philox.
    float x[3 * COLOR_SIDE * COLOR_SIDE];
    for (int i = 0; i < COLOR_IMAGES && s == DCL_OK; i++) {
        float a = dcl_rng_uniform_at(c.seed, DCL_RNG_TEST, (uint32_t)i, 0) * 6.2831853f;
        float f = 0.1f + 0.4f * dcl_rng_uniform_at(c.seed, DCL_RNG_TEST, (uint32_t)i, 1);
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < COLOR_SIDE; y++)
                for (int xx = 0; xx < COLOR_SIDE; xx++)
                    x[(ch * COLOR_SIDE + y) * COLOR_SIDE + xx] =
                        0.8f * sinf(a + f * (float)(xx + (ch + 1) * y)) * (float)(2 - ch) / 2.0f;
        snprintf(path, sizeof path, "%s/%d.png", dir, i);
        s = dcl_image_grid_write(path, x, 1, 3, COLOR_SIDE, COLOR_SIDE, 1, 0, 1, NULL, 0);
    }
    snprintf(data, sizeof data, "png:%s", dir);
    snprintf(c.data, sizeof c.data, "%s", data);
    if (s == DCL_OK) s = compare_steps(dev, cpu, &c, NULL, data, 4, 3, "unet_rgb_attn", fn, ctx);
    for (int i = 0; i < COLOR_IMAGES; i++) {
        snprintf(path, sizeof path, "%s/%d.png", dir, i);
        remove(path);
    }
    rmdir(dir);
    return s;
}

dcl_status dcl_check_train_step(dcl_device *dev, dcl_device *cpu, dcl_net_kind kind,
                                const char *model, dcl_check_row_fn fn, void *ctx) {
    dcl_model_config c;
    const char *data;
    int batch;
    dcl_status s = cpu ? DCL_OK : dcl__fail(DCL_ERR_ARG, "check: no reference device");
    if (s == DCL_OK && model) {
        // The checkpoint's own network, process, data and seed, from its trained weights.
        dcl_model probe = {0};
        s = dcl_model_load(&probe, cpu, model, 1);
        if (s == DCL_OK) c = probe.cfg, dcl_model_free(&probe);
        kind = c.net.kind, data = c.data, batch = kind == DCL_NET_UNET ? 8 : 256;
    } else if (s == DCL_OK) {
        s = check_model(kind, &c, &data, &batch);
    }
    if (s == DCL_OK)
        s = compare_steps(dev, cpu, &c, model, data, batch, 2, dcl_net_kind_name(kind), fn, ctx);
    // Then a colour U-Net with attention blocks.
    if (s == DCL_OK && kind == DCL_NET_UNET && !model) s = color_step(dev, cpu, fn, ctx);
    return s;
}
