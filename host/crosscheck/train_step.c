// Full training steps of a small model on a device against the CPU reference, from the same seed
// and the same data: the loss, every gradient tensor and every parameter after AdamW, each as a
// row of dcl_check_result (what `diffcl check` runs after the single ops). Two steps, because the
// U-Net's output convolution starts at zero: in the first step no gradient reaches the layers
// before it, and the second step is the first that exercises every backward op.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crosscheck/crosscheck.h"
#include "core/error.h"
#include "diffcl/data.h"
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

// Trains two steps on dev from fresh weights or from the checkpoint at path; returns the second
// step's loss, and its gradients and the parameters after it in host copies.
static dcl_status one_step(dcl_device *dev, const dcl_model_config *c, const char *path,
                           dcl_dataset *ds, int batch, float *loss, float **grads, float **params,
                           dcl_model *m) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = 2, o.batch = batch, o.log_every = 1, o.warmup = 0, o.lr = CHECK_LR;
    float losses[3];
    int n_losses = 0;
    dcl_status s = path ? dcl_model_load(m, dev, path, (size_t)batch)
                        : dcl_model_init(m, dev, c, (size_t)batch);
    if (s == DCL_OK) s = dcl_train(dev, m, ds, &o, NULL, NULL, losses, &n_losses);
    if (s != DCL_OK) return s;
    *loss = losses[1];
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

dcl_status dcl_check_train_step(dcl_device *dev, dcl_device *cpu, dcl_net_kind kind,
                                const char *model, dcl_check_row_fn fn, void *ctx) {
    dcl_model_config c;
    const char *data;
    int batch;
    dcl_dataset *ds = NULL;
    dcl_model md = {0}, mc = {0};
    float loss_d = 0, loss_c = 0, *gd = NULL, *pd = NULL, *gc = NULL, *pc = NULL;
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
    if (s == DCL_OK) s = dcl_dataset_open(&ds, data, c.seed);
    if (s == DCL_OK) s = one_step(cpu, &c, model, ds, batch, &loss_c, &gc, &pc, &mc);
    if (s == DCL_OK) s = one_step(dev, &c, model, ds, batch, &loss_d, &gd, &pd, &md);
    if (s == DCL_OK) {
        const char *net = dcl_net_kind_name(kind);
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
