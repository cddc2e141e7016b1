// Models: creation, the safetensors checkpoint (weights, "ema." weights and a JSON config in
// __metadata__), and sampling with a model (the sampler callback and dcl_model_sample).
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "diffcl/log.h"
#include "diffcl/model.h"
#include "diffcl/ops.h"         // dcl_copy, dcl_fill
#include "diffcl/rng.h"         // DCL_RNG_STREAM_VERSION
#include "diffcl/safetensors.h" // dcl_safetensors_write, dcl_safetensors_read

#define CONFIG_VERSION 1

dcl_status dcl_model_init(dcl_model *m, dcl_device *dev, const dcl_model_config *cfg,
                          size_t max_batch) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    dcl_status s = dcl_mlp_init(&m->net, dev, &cfg->net, cfg->seed, max_batch);
    if (s == DCL_OK) s = dcl_arena_init_like(&m->ema, dcl_mlp_params(m->net), "ema");
    if (s == DCL_OK)
        s = dcl_copy(dev, dcl_at(m->ema.buf, 0), dcl_at(dcl_mlp_params(m->net)->buf, 0), m->ema.n);
    if (s != DCL_OK) dcl_model_free(m);
    return s;
}

void dcl_model_free(dcl_model *m) {
    if (m->ema.buf) dcl_arena_free(&m->ema);
    dcl_mlp_free(m->net);
    memset(m, 0, sizeof *m);
}

static const char *act_name(dcl_activation a) { return a == DCL_ACT_SILU ? "silu" : "relu"; }

// The config as compact JSON (malloc'd), the value of __metadata__["diffcl"].
static char *config_json(const dcl_model_config *c) {
    // Seeds are 64-bit unsigned, which JSON integers are not reliably: a decimal string.
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    json_t *net = json_pack("{s:s, s:i, s:i, s:i, s:i, s:s}", "type", "mlp", "dim", c->net.dim,
                            "width", c->net.width, "depth", c->net.depth, "emb_dim", c->net.emb_dim,
                            "activation", act_name(c->net.act));
    json_t *root = json_pack(
        "{s:i, s:i, s:s, s:f, s:s, s:f, s:o, s:s, s:s, s:I}", "version", CONFIG_VERSION,
        "rng_stream_version", DCL_RNG_STREAM_VERSION, "process", dcl_process_name(c->process.kind),
        "sigma_q", c->process.sigma_q, "prediction", dcl_prediction_name(c->pred), "prev_dt",
        c->prev_dt, "net", net, "data", c->data, "seed", seed, "step", (json_int_t)c->step);
    if (!root) return NULL;
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

static dcl_status parse_config(const char *path, const char *text, dcl_model_config *c) {
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: __metadata__ \"diffcl\" is not valid JSON (%s at "
                         "column %d)",
                         path, err.text, err.column);
    int version = 0, rng_version = 0;
    const char *process = NULL, *pred = NULL, *data = NULL, *seed = NULL, *type = NULL, *act = NULL;
    json_int_t step = 0;
    double sigma_q = 0, prev_dt = 0;
    memset(c, 0, sizeof *c);
    int bad = json_unpack_ex(
        root, &err, JSON_STRICT,
        "{s:i, s:i, s:s, s:F, s:s, s:F, s:{s:s, s:i, s:i, s:i, s:i, s:s}, s:s, s:s, s:I}",
        "version", &version, "rng_stream_version", &rng_version, "process", &process, "sigma_q",
        &sigma_q, "prediction", &pred, "prev_dt", &prev_dt, "net", "type", &type, "dim",
        &c->net.dim, "width", &c->net.width, "depth", &c->net.depth, "emb_dim", &c->net.emb_dim,
        "activation", &act, "data", &data, "seed", &seed, "step", &step);
    dcl_status s = DCL_OK;
    if (bad) s = dcl__fail(DCL_ERR_FORMAT, "%s: model config: %s", path, err.text);
    else if (version != CONFIG_VERSION)
        s = dcl__fail(DCL_ERR_FORMAT, "%s: model config version %d; this diffcl reads version %d",
                      path, version, CONFIG_VERSION);
    else if (rng_version != DCL_RNG_STREAM_VERSION)
        s = dcl__fail(DCL_ERR_FORMAT, "%s: trained with RNG stream version %d; this diffcl has %d",
                      path, rng_version, DCL_RNG_STREAM_VERSION);
    else if (strcmp(type, "mlp") != 0)
        s = dcl__fail(DCL_ERR_FORMAT, "%s: network type '%s' is not supported (mlp)", path, type);
    else if (strcmp(act, "relu") && strcmp(act, "silu"))
        s = dcl__fail(DCL_ERR_FORMAT, "%s: activation '%s' is not relu or silu", path, act);
    else if (c->net.dim < 1 || c->net.dim > 4096 || c->net.width < 1 || c->net.width > 65536 ||
             c->net.depth < 1 || c->net.depth > 64 || c->net.emb_dim < 2 || c->net.emb_dim % 2 ||
             c->net.emb_dim > 4096 || step < 0)
        s = dcl__fail(DCL_ERR_FORMAT,
                      "%s: network shape out of range (dim %d, width %d, depth %d, "
                      "emb_dim %d)",
                      path, c->net.dim, c->net.width, c->net.depth, c->net.emb_dim);
    if (s == DCL_OK) s = dcl_process_parse(process, &c->process);
    if (s == DCL_OK) s = dcl_prediction_parse(pred, &c->pred);
    if (s == DCL_OK) {
        c->process.sigma_q = sigma_q;
        c->prev_dt = prev_dt;
        c->net.act = strcmp(act, "silu") == 0 ? DCL_ACT_SILU : DCL_ACT_RELU;
        c->step = step;
        char *end;
        c->seed = strtoull(seed, &end, 10);
        snprintf(c->data, sizeof c->data, "%s", data);
        if (!(sigma_q > 0) || *end || !*seed)
            s = dcl__fail(DCL_ERR_FORMAT, "%s: bad sigma_q (%g) or seed ('%s')", path, sigma_q,
                          seed);
    }
    if (s == DCL_OK) s = dcl_prediction_check(&c->process, c->pred);
    if (s != DCL_OK && !bad) dcl__fail_context(s, "%s", path);
    json_decref(root);
    return s;
}

dcl_status dcl_model_save(const dcl_model *m, const char *path) {
    dcl_arena *params = dcl_mlp_params(m->net);
    int n = params->count;
    dcl_st_tensor *t = calloc((size_t)(2 * n), sizeof *t);
    char **names = calloc((size_t)n, sizeof *names);
    float *host = malloc(2 * params->n * sizeof *host);
    char *cfg = config_json(&m->cfg);
    dcl_status s = t && names && host && cfg ? DCL_OK : dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
    if (s == DCL_OK) s = dcl_buffer_read(params->buf, 0, params->n, host);
    if (s == DCL_OK) s = dcl_buffer_read(m->ema.buf, 0, params->n, host + params->n);
    for (int i = 0; i < n && s == DCL_OK; i++) {
        const dcl_arena_view *v = &params->views[i];
        size_t len = strlen(v->name) + 5;
        if (!(names[i] = malloc(len))) {
            s = dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
            break;
        }
        snprintf(names[i], len, "ema.%s", v->name);
        t[i].name = v->name;
        t[i].data = host + v->off;
        t[i].ndim = dcl_mlp_tensor_shape(m->net, i, t[i].shape);
        t[n + i] = t[i];
        t[n + i].name = names[i];
        t[n + i].data = host + params->n + v->off;
    }
    const char *meta[] = {"format", "pt", "diffcl", cfg};
    if (s == DCL_OK) s = dcl_safetensors_write(path, t, 2 * n, meta, 2);
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names), free(t), free(host), free(cfg);
    return s;
}

// Copies the file's tensor `name` into view i of arena a, checking its shape.
static dcl_status load_view(const dcl_st_file *f, const char *path, const char *name,
                            const dcl_mlp *net, dcl_arena *a, int i) {
    const dcl_st_tensor *t = dcl_safetensors_find(f, name);
    if (!t) return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    uint64_t shape[2];
    int ndim = dcl_mlp_tensor_shape(net, i, shape);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: tensor '%s' has the wrong shape for the network in "
                         "its config",
                         path, name);
    return dcl_buffer_write(a->buf, a->views[i].off, a->views[i].n, t->data);
}

dcl_status dcl_model_load(dcl_model *m, dcl_device *dev, const char *path, size_t max_batch) {
    memset(m, 0, sizeof *m);
    dcl_st_file *f;
    dcl_status s = dcl_safetensors_read(&f, path);
    if (s != DCL_OK) return s;
    const char *text = dcl_safetensors_meta(f, "diffcl");
    dcl_model_config cfg;
    if (!text)
        s = dcl__fail(DCL_ERR_FORMAT,
                      "%s is a safetensors file but not a diffcl model (no "
                      "\"diffcl\" entry in __metadata__)",
                      path);
    if (s == DCL_OK) s = parse_config(path, text, &cfg);
    if (s == DCL_OK) s = dcl_model_init(m, dev, &cfg, max_batch);
    dcl_arena *params = s == DCL_OK ? dcl_mlp_params(m->net) : NULL;
    for (int i = 0; s == DCL_OK && i < params->count; i++) {
        char ema[DCL_ARENA_NAME_MAX + 8];
        snprintf(ema, sizeof ema, "ema.%s", params->views[i].name);
        s = load_view(f, path, params->views[i].name, m->net, params, i);
        if (s == DCL_OK) s = load_view(f, path, ema, m->net, &m->ema, i);
    }
    if (s == DCL_OK && dcl_safetensors_count(f) != 2 * params->count)
        dcl_log(DCL_LOG_VERBOSE, "%s: %d tensors besides the model's are ignored", path,
                dcl_safetensors_count(f) - 2 * params->count);
    dcl_safetensors_free(f);
    if (s != DCL_OK && m->net) dcl_model_free(m);
    return s;
}

dcl_status dcl_model_denoise(void *ctx, dcl_ptr out, dcl_ptr x, double t, size_t N) {
    dcl_model_denoiser *d = ctx;
    dcl_device *dev = dcl_buffer_device(x.buf);
    dcl_status s = dcl_fill(dev, dcl_at(d->t, 0), (float)t, N);
    if (s != DCL_OK) return s;
    if (d->use_ema)
        return dcl_mlp_forward_with(d->model->net, &d->model->ema, out, x, dcl_at(d->t, 0), N);
    return dcl_mlp_forward(d->model->net, out, x, dcl_at(d->t, 0), N);
}

size_t dcl_model_parameter_count(const dcl_model *m) {
    const dcl_arena *a = dcl_mlp_params(m->net);
    size_t n = 0;
    for (int i = 0; i < a->count; i++) n += a->views[i].n;
    return n;
}

dcl_status dcl_model_sample(dcl_model *m, const dcl_sampler_opts *o, size_t N, uint64_t seed,
                            int use_ema, float *x, float *traj) {
    const dcl_model_config *c = &m->cfg;
    // A prev model predicts x_{t-dt} for the dt it was trained with, whatever the sampler's step.
    dcl_sampler_opts so = *o;
    so.prev_dt = c->prev_dt;
    dcl_device *dev = dcl_buffer_device(dcl_mlp_params(m->net)->buf);
    size_t D = (size_t)c->net.dim;
    dcl_buffer *xb = NULL, *tb = NULL;
    dcl_status s = dcl_buffer_alloc(&xb, dev, N * D, "sample.x");
    if (s == DCL_OK) s = dcl_buffer_alloc(&tb, dev, N, "sample.t");
    dcl_model_denoiser d = {m, use_ema, tb};
    if (s == DCL_OK)
        s = dcl_sample(dev, &c->process, c->pred, &so, dcl_model_denoise, &d, dcl_at(xb, 0), N, D,
                       seed, traj);
    if (s == DCL_OK) s = dcl_buffer_read(xb, 0, N * D, x);
    dcl_buffer_free(xb);
    dcl_buffer_free(tb);
    return s;
}
