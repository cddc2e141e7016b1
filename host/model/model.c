// Models: creation, the safetensors checkpoint (weights, "ema." weights and a JSON config in
// __metadata__), and sampling with a model (the sampler callback and dcl_model_sample).
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "diffcl/log.h"
#include "diffcl/model.h"
#include "model/model_impl.h"
#include "diffcl/ops.h"         // dcl_copy, dcl_fill, dcl_axpby
#include "diffcl/rng.h"         // DCL_RNG_STREAM_VERSION
#include "diffcl/safetensors.h" // dcl_safetensors_write, dcl_safetensors_read
#include "diffcl/unet.h"        // dcl_unet_param_count

#define CONFIG_VERSION 1

// The parameters of the network c describes, counted from its config alone (nothing allocated).
// DCL_ERR_ARG for a config the network refuses.
static dcl_status config_params(const dcl_net_config *c, size_t *count) {
    *count = 0;
    if (c->kind == DCL_NET_UNET) return dcl_unet_param_count(&c->unet, count);
    // The MLP (nn/mlp.c): layer i of 0..depth maps in_i to out_i with a weight and a bias; in_0 is
    // dim + emb_dim, out_depth is dim, every other width is `width`.
    const dcl_mlp_config *m = &c->mlp;
    if (m->dim < 1 || m->width < 1 || m->depth < 0 || m->depth > 1000 || m->emb_dim < 2)
        return dcl__fail(DCL_ERR_ARG, "mlp: dim %d, width %d, depth %d, emb_dim %d out of range",
                         m->dim, m->width, m->depth, m->emb_dim);
    size_t D = (size_t)m->dim, H = (size_t)m->width, in0 = D + (size_t)m->emb_dim;
    if (m->depth == 0) *count = (in0 + 1) * D;
    else *count = (in0 + 1) * H + (size_t)(m->depth - 1) * (H + 1) * H + (H + 1) * D;
    return DCL_OK;
}

// A network whose weights cannot be one buffer of dev is a usage error that says what fits, found
// before anything is allocated (not a device failure, so --device auto does not fall back).
static dcl_status check_fits(dcl_device *dev, const dcl_net_config *c, size_t params) {
    uint64_t max = dcl_device_get_info(dev)->max_alloc, bytes = (uint64_t)params * 4;
    if (bytes <= max && params <= UINT32_MAX) return DCL_OK;
    uint64_t fit = max / 4 < UINT32_MAX ? max / 4 : UINT32_MAX;
    return dcl__fail(DCL_ERR_ARG,
                     "the %s has %zu parameters (%.1f MiB), more than device %s holds in one "
                     "buffer (%.1f MiB, %llu parameters); use a smaller %s",
                     dcl_net_kind_name(c->kind), params, (double)bytes / 1048576.0,
                     dcl_device_get_info(dev)->spec, (double)max / 1048576.0,
                     (unsigned long long)fit,
                     c->kind == DCL_NET_UNET ? "--base or --mult" : "--width or --depth");
}

dcl_status dcl_model_init(dcl_model *m, dcl_device *dev, const dcl_model_config *cfg,
                          size_t max_batch) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->max_batch = max_batch;
    if (!(cfg->cond_drop >= 0 && cfg->cond_drop <= 1))
        return dcl__fail(DCL_ERR_ARG, "the label drop probability must be in [0, 1], got %g",
                         cfg->cond_drop);
    size_t params;
    dcl_status s = config_params(&cfg->net, &params);
    if (s == DCL_OK && dev) s = check_fits(dev, &cfg->net, params);
    if (s != DCL_OK) return s;
    s = dcl_net_init(&m->net, dev, &cfg->net, cfg->seed, max_batch);
    if (s == DCL_OK) s = dcl_arena_init_like(&m->ema, dcl_net_params(m->net), "ema");
    if (s == DCL_OK)
        s = dcl_copy(dev, dcl_at(m->ema.buf, 0), dcl_at(dcl_net_params(m->net)->buf, 0), m->ema.n);
    // dcl_buffer_alloc refuses a buffer beyond the device's largest allocation before trying it
    // (its message names CL_DEVICE_MAX_MEM_ALLOC_SIZE, the size asked and the most allowed):
    // activations for too large a batch, nothing wrong with the device, so not a device failure
    // (which --device auto would answer by falling back to the CPU).
    if (s == DCL_ERR_DEVICE_MEM && strstr(dcl_last_error(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"))
        s = dcl__fail_context(DCL_ERR_ARG, "too large for device %s",
                              dcl_device_get_info(dev)->spec);
    if (s != DCL_OK) dcl_model_free(m);
    return s;
}

void dcl_model_free(dcl_model *m) {
    if (m->ema.buf) dcl_arena_free(&m->ema);
    dcl_net_free(m->net);
    memset(m, 0, sizeof *m);
}

static const char *act_name(dcl_activation a) { return a == DCL_ACT_SILU ? "silu" : "relu"; }

// The network's part of the config.
static json_t *net_json(const dcl_net_config *n) {
    if (n->kind == DCL_NET_MLP)
        return json_pack("{s:s, s:i, s:i, s:i, s:i, s:s}", "type", "mlp", "dim", n->mlp.dim,
                         "width", n->mlp.width, "depth", n->mlp.depth, "emb_dim", n->mlp.emb_dim,
                         "activation", act_name(n->mlp.act));
    const dcl_unet_config *u = &n->unet;
    json_t *mult = json_array();
    for (int l = 0; mult && l < u->levels; l++)
        json_array_append_new(mult, json_integer(u->mult[l]));
    json_t *j = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:o, s:i, s:i, s:i}", "type", "unet",
                          "channels", u->channels, "height", u->height, "width", u->width, "base",
                          u->base, "levels", u->levels, "mult", mult, "groups", u->groups,
                          "emb_dim", u->emb_dim, "num_classes", u->num_classes);
    // Written only when they differ from the first version's network, whose files have none:
    // res_blocks, and the attention resolutions as heights with the heads.
    if (j && u->res_blocks > 1) json_object_set_new(j, "res_blocks", json_integer(u->res_blocks));
    if (j && u->attn) {
        json_t *attn = json_array();
        for (int l = 0; attn && l < u->levels; l++)
            if ((u->attn >> l) & 1) json_array_append_new(attn, json_integer(u->height >> l));
        json_object_set_new(j, "attn", attn);
        json_object_set_new(j, "heads", json_integer(u->heads > 0 ? u->heads : 1));
    }
    return j;
}

// The config as compact JSON (malloc'd), the value of __metadata__["diffcl"].
static char *config_json(const dcl_model_config *c) {
    // Seeds are 64-bit unsigned, which JSON integers are not reliably: a decimal string.
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    json_t *root = json_pack(
        "{s:i, s:i, s:s, s:f, s:s, s:f, s:o, s:f, s:s, s:s, s:I}", "version", CONFIG_VERSION,
        "rng_stream_version", DCL_RNG_STREAM_VERSION, "process", dcl_process_name(c->process.kind),
        "sigma_q", c->process.sigma_q, "prediction", dcl_prediction_name(c->pred), "prev_dt",
        c->prev_dt, "net", net_json(&c->net), "cond_drop", c->cond_drop, "data", c->data, "seed",
        seed, "step", (json_int_t)c->step);
    if (!root) return NULL;
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

// Config integers are read as json_int_t and range-checked before they become ints, so a value
// such as 2^32 + 128 is an error instead of wrapping to 128.
static int in_range(json_int_t v, int lo, int hi) { return v >= lo && v <= hi; }

static dcl_status parse_net(const char *path, json_t *j, dcl_net_config *n) {
    json_error_t err;
    const char *type = NULL, *act = NULL;
    if (json_unpack_ex(j, &err, 0, "{s:s}", "type", &type))
        return dcl__fail(DCL_ERR_FORMAT, "%s: model config: net: %s", path, err.text);
    if (strcmp(type, "mlp") == 0) {
        dcl_mlp_config *m = &n->mlp;
        json_int_t dim, width, depth, emb;
        n->kind = DCL_NET_MLP;
        if (json_unpack_ex(j, &err, JSON_STRICT, "{s:s, s:I, s:I, s:I, s:I, s:s}", "type", &type,
                           "dim", &dim, "width", &width, "depth", &depth, "emb_dim", &emb,
                           "activation", &act))
            return dcl__fail(DCL_ERR_FORMAT, "%s: model config: net: %s", path, err.text);
        if (strcmp(act, "relu") && strcmp(act, "silu"))
            return dcl__fail(DCL_ERR_FORMAT, "%s: activation '%s' is not relu or silu", path, act);
        m->act = strcmp(act, "silu") == 0 ? DCL_ACT_SILU : DCL_ACT_RELU;
        if (!in_range(dim, 1, 4096) || !in_range(width, 1, 65536) || !in_range(depth, 1, 64) ||
            !in_range(emb, 2, 4096) || emb % 2)
            return dcl__fail(DCL_ERR_FORMAT,
                             "%s: mlp shape out of range (dim %lld, width %lld, depth %lld, "
                             "emb_dim %lld)",
                             path, (long long)dim, (long long)width, (long long)depth,
                             (long long)emb);
        m->dim = (int)dim, m->width = (int)width, m->depth = (int)depth, m->emb_dim = (int)emb;
        return DCL_OK;
    }
    if (strcmp(type, "unet") == 0) {
        dcl_unet_config *u = &n->unet;
        json_t *mult = NULL, *attn = NULL;
        // channels, height, width, base, levels, groups, emb_dim, num_classes; res_blocks and
        // heads, absent from files of the first version (1 block per level, no attention)
        json_int_t v[10] = {[8] = 1, [9] = 1};
        n->kind = DCL_NET_UNET;
        if (json_unpack_ex(j, &err, JSON_STRICT,
                           "{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s?:I, s?:o, s?:I}",
                           "type", &type, "channels", &v[0], "height", &v[1], "width", &v[2],
                           "base", &v[3], "levels", &v[4], "mult", &mult, "groups", &v[5],
                           "emb_dim", &v[6], "num_classes", &v[7], "res_blocks", &v[8], "attn",
                           &attn, "heads", &v[9]))
            return dcl__fail(DCL_ERR_FORMAT, "%s: model config: net: %s", path, err.text);
        int ok = in_range(v[0], 1, 4) && in_range(v[1], 1, 4096) && in_range(v[2], 1, 4096) &&
                 in_range(v[3], 1, 4096) && in_range(v[4], 1, DCL_UNET_MAX_LEVELS) &&
                 in_range(v[8], 1, DCL_UNET_MAX_RES_BLOCKS) && in_range(v[9], 1, 4096) &&
                 (!attn || json_is_array(attn)) && json_is_array(mult) &&
                 json_array_size(mult) == (size_t)v[4] && in_range(v[5], 1, 4096) &&
                 in_range(v[6], 2, 4096) && in_range(v[7], 0, 100000);
        if (ok) {
            u->channels = (int)v[0], u->height = (int)v[1], u->width = (int)v[2];
            u->base = (int)v[3], u->levels = (int)v[4], u->groups = (int)v[5];
            u->emb_dim = (int)v[6], u->num_classes = (int)v[7];
            u->res_blocks = (int)v[8], u->heads = (int)v[9], u->attn = 0;
        }
        // Attention resolutions as heights H/2^l of the network's levels.
        for (size_t i = 0; ok && attn && i < json_array_size(attn); i++) {
            json_t *h = json_array_get(attn, i);
            int l = 0;
            while (l < u->levels &&
                   (!json_is_integer(h) || json_integer_value(h) != u->height >> l))
                l++;
            ok = l < u->levels;
            if (ok) u->attn |= 1u << l;
        }
        for (int l = 0; ok && l < u->levels; l++) {
            json_t *m = json_array_get(mult, (size_t)l);
            ok = json_is_integer(m) && in_range(json_integer_value(m), 1, 64);
            if (ok) u->mult[l] = (int)json_integer_value(m);
        }
        if (!ok)
            return dcl__fail(DCL_ERR_FORMAT,
                             "%s: unet shape out of range (%lldx%lldx%lld, base %lld, levels %lld, "
                             "mult, groups %lld, emb_dim %lld, classes %lld, res_blocks %lld, "
                             "attn, heads %lld)",
                             path, (long long)v[0], (long long)v[1], (long long)v[2],
                             (long long)v[3], (long long)v[4], (long long)v[5], (long long)v[6],
                             (long long)v[7], (long long)v[8], (long long)v[9]);
        return DCL_OK;
    }
    return dcl__fail(DCL_ERR_FORMAT, "%s: network type '%s' is not supported (mlp, unet)", path,
                     type);
}

static dcl_status parse_config(const char *path, const char *text, dcl_model_config *c) {
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: __metadata__ \"diffcl\" is not valid JSON (%s at column %d)", path,
                         err.text, err.column);
    json_int_t version = 0, rng_version = 0;
    const char *process = NULL, *pred = NULL, *data = NULL, *seed = NULL;
    json_t *net = NULL;
    json_int_t step = 0;
    double sigma_q = 0, prev_dt = 0, cond_drop = 0;
    memset(c, 0, sizeof *c);
    int bad = json_unpack_ex(
        root, &err, JSON_STRICT, "{s:I, s:I, s:s, s:F, s:s, s:F, s:o, s?F, s:s, s:s, s:I}",
        "version", &version, "rng_stream_version", &rng_version, "process", &process, "sigma_q",
        &sigma_q, "prediction", &pred, "prev_dt", &prev_dt, "net", &net, "cond_drop", &cond_drop,
        "data", &data, "seed", &seed, "step", &step);
    dcl_status s = DCL_OK;
    if (bad) s = dcl__fail(DCL_ERR_FORMAT, "%s: model config: %s", path, err.text);
    else if (version != CONFIG_VERSION)
        s = dcl__fail(DCL_ERR_FORMAT, "%s: model config version %lld; this diffcl reads version %d",
                      path, (long long)version, CONFIG_VERSION);
    else if (rng_version != DCL_RNG_STREAM_VERSION)
        s = dcl__fail(DCL_ERR_FORMAT,
                      "%s: trained with RNG stream version %lld; this diffcl has %d", path,
                      (long long)rng_version, DCL_RNG_STREAM_VERSION);
    else if (step < 0 || !(cond_drop >= 0 && cond_drop <= 1) || !(prev_dt >= 0 && prev_dt <= 1))
        s = dcl__fail(DCL_ERR_FORMAT, "%s: step, cond_drop or prev_dt out of range", path);
    if (s == DCL_OK) s = parse_net(path, net, &c->net);
    if (s == DCL_OK) s = dcl_process_parse(process, &c->process);
    if (s == DCL_OK) s = dcl_prediction_parse(pred, &c->pred);
    if (s == DCL_OK) {
        c->process.sigma_q = sigma_q;
        c->prev_dt = prev_dt;
        c->cond_drop = cond_drop;
        c->step = step;
        // Digits only, within 64 bits: strtoull alone would take "-1" and clamp overflows.
        char *end;
        errno = 0;
        c->seed = strtoull(seed, &end, 10);
        int seed_ok = *seed >= '0' && *seed <= '9' && !*end && errno == 0;
        snprintf(c->data, sizeof c->data, "%s", data);
        if (!(sigma_q > 0) || !seed_ok)
            s = dcl__fail(DCL_ERR_FORMAT, "%s: bad sigma_q (%g) or seed ('%s')", path, sigma_q,
                          seed);
    }
    if (s == DCL_OK) s = dcl_prediction_check(&c->process, c->pred);
    // Messages from the schedule parsers do not name the file yet.
    if (s != DCL_OK && !strstr(dcl_last_error(), path)) dcl__fail_context(s, "%s", path);
    json_decref(root);
    return s;
}

char *dcl__model_config_json(const dcl_model_config *c) { return config_json(c); }

dcl_status dcl__model_save_host(const dcl_model *m, const float *weights, const float *ema,
                                const char *path) {
    dcl_arena *params = dcl_net_params(m->net);
    int n = params->count;
    dcl_st_tensor *t = calloc((size_t)(2 * n), sizeof *t);
    char **names = calloc((size_t)n, sizeof *names);
    char *cfg = config_json(&m->cfg);
    dcl_status s = t && names && cfg ? DCL_OK : dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
    for (int i = 0; i < n && s == DCL_OK; i++) {
        const dcl_arena_view *v = &params->views[i];
        size_t len = strlen(v->name) + 5;
        if (!(names[i] = malloc(len))) {
            s = dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
            break;
        }
        snprintf(names[i], len, "ema.%s", v->name);
        t[i].name = v->name;
        t[i].data = weights + v->off;
        t[i].ndim = dcl_net_tensor_shape(m->net, i, t[i].shape);
        t[n + i] = t[i];
        t[n + i].name = names[i];
        t[n + i].data = ema + v->off;
    }
    const char *meta[] = {"format", "pt", "diffcl", cfg};
    if (s == DCL_OK) s = dcl_safetensors_write(path, t, 2 * n, meta, 2);
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names), free(t), free(cfg);
    return s;
}

dcl_status dcl_model_save(const dcl_model *m, const char *path) {
    dcl_arena *params = dcl_net_params(m->net);
    float *host = malloc(2 * params->n * sizeof *host);
    dcl_status s = host ? DCL_OK : dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
    if (s == DCL_OK) s = dcl_buffer_read(params->buf, 0, params->n, host);
    if (s == DCL_OK) s = dcl_buffer_read(m->ema.buf, 0, params->n, host + params->n);
    if (s == DCL_OK) s = dcl__model_save_host(m, host, host + params->n, path);
    free(host);
    return s;
}

// Copies the file's tensor `name` into view i of arena a, checking its shape.
static dcl_status load_view(const dcl_st_file *f, const char *path, const char *name,
                            const dcl_net *net, dcl_arena *a, int i) {
    const dcl_st_tensor *t = dcl_safetensors_find(f, name);
    if (!t) return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    uint64_t shape[4];
    int ndim = dcl_net_tensor_shape(net, i, shape);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s: tensor '%s' has the wrong shape for the network in "
                         "its config",
                         path, name);
    // A flipped exponent bit makes a weight NaN or Inf, and every sample NaN: refused here.
    const float *w = t->data;
    for (size_t k = 0; k < a->views[i].n; k++)
        if (!isfinite(w[k]))
            return dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value (%g at %zu)",
                             path, name, (double)w[k], k);
    return dcl_buffer_write(a->buf, a->views[i].off, a->views[i].n, t->data);
}

// The config in an open checkpoint's __metadata__.
static dcl_status file_config(const dcl_st_file *f, const char *path, dcl_model_config *cfg) {
    const char *text = dcl_safetensors_meta(f, "diffcl");
    if (!text)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s is a safetensors file but not a diffcl model (no "
                         "\"diffcl\" entry in __metadata__)",
                         path);
    return parse_config(path, text, cfg);
}

dcl_status dcl_model_read_config(const char *path, dcl_model_config *cfg) {
    dcl_st_file *f;
    dcl_status s = dcl_safetensors_read(&f, path);
    if (s != DCL_OK) return s;
    s = file_config(f, path, cfg);
    dcl_safetensors_free(f);
    return s;
}

dcl_status dcl_model_load(dcl_model *m, dcl_device *dev, const char *path, size_t max_batch) {
    memset(m, 0, sizeof *m);
    dcl_st_file *f;
    dcl_status s = dcl_safetensors_read(&f, path);
    if (s != DCL_OK) return s;
    dcl_model_config cfg;
    s = file_config(f, path, &cfg);
    // The config against the file before anything is allocated: a corrupt config (width 20000 in a
    // 300 KB file) would otherwise ask for gigabytes. Weights and EMA take 2 values per parameter.
    size_t n_params = 0, held = 0;
    if (s == DCL_OK && (s = config_params(&cfg.net, &n_params)) == DCL_ERR_ARG)
        s = dcl__fail_context(DCL_ERR_FORMAT, "%s: model config", path); // the file's error
    for (int i = 0; s == DCL_OK && i < dcl_safetensors_count(f); i++) {
        held += (size_t)dcl_st_tensor_numel(dcl_safetensors_tensor(f, i));
    }
    if (s == DCL_OK && n_params > held / 2)
        s = dcl__fail(DCL_ERR_FORMAT,
                      "%s: its config describes a %s of %zu parameters but the file holds %zu "
                      "values: the config does not match the tensors",
                      path, dcl_net_kind_name(cfg.net.kind), n_params, held);
    if (s == DCL_OK) s = dcl_model_init(m, dev, &cfg, max_batch);
    dcl_arena *params = s == DCL_OK ? dcl_net_params(m->net) : NULL;
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
    const dcl_arena *params = d->use_ema ? &d->model->ema : NULL;
    size_t D = dcl_net_dim(&d->model->cfg.net);
    int guided = d->labels.buf && d->w != 1.0;
    dcl_status s = dcl_fill(dev, dcl_at(d->t, 0), (float)t, guided ? 2 * N : N);
    if (s != DCL_OK) return s;
    if (!guided)
        return dcl_net_forward(d->model->net, params, out, x, dcl_at(d->t, 0), d->labels, N);
    // One batch of 2N: x with its classes, then x with the null class.
    s = dcl_copy(dev, dcl_at(d->x2, 0), x, N * D);
    if (s == DCL_OK) s = dcl_copy(dev, dcl_at(d->x2, N * D), x, N * D);
    if (s == DCL_OK)
        s = dcl_net_forward(d->model->net, params, dcl_at(d->out2, 0), dcl_at(d->x2, 0),
                            dcl_at(d->t, 0), d->labels, 2 * N);
    // f̃ = f(x, ∅) + w (f(x, y) − f(x, ∅)) = w f(x, y) + (1 − w) f(x, ∅).
    if (s == DCL_OK)
        s = dcl_axpby(dev, out, dcl_at(d->out2, 0), dcl_at(d->out2, N * D), (float)d->w,
                      (float)(1.0 - d->w), N * D);
    return s;
}

size_t dcl_model_parameter_count(const dcl_model *m) {
    const dcl_arena *a = dcl_net_params(m->net);
    size_t n = 0;
    for (int i = 0; i < a->count; i++) n += a->views[i].n;
    return n;
}

dcl_status dcl_model_sample(dcl_model *m, const dcl_sampler_opts *o, size_t N, uint64_t seed,
                            int use_ema, const dcl_guidance *g, float *x, float *traj) {
    const dcl_model_config *c = &m->cfg;
    int K = dcl_net_num_classes(&c->net);
    if (g && g->labels && K == 0)
        return dcl__fail(DCL_ERR_ARG, "this model is unconditional: it takes no labels");
    for (size_t i = 0; g && g->labels && i < N; i++)
        if (g->labels[i] < 0 || g->labels[i] >= K)
            return dcl__fail(DCL_ERR_ARG, "label %d is not a class of this model (0..%d)",
                             (int)g->labels[i], K - 1);
    // A prev model predicts x_{t-dt} for the dt it was trained with, whatever the sampler's step.
    dcl_sampler_opts so = *o;
    so.prev_dt = c->prev_dt;
    dcl_device *dev = dcl_buffer_device(dcl_net_params(m->net)->buf);
    size_t D = dcl_net_dim(&c->net);
    dcl_model_denoiser d = {.model = m, .use_ema = use_ema, .w = g ? g->w : 1.0};
    int guided = g && g->labels && d.w != 1.0;
    dcl_buffer *xb = NULL, *lb = NULL;
    uint32_t *labels = NULL;
    dcl_status s = dcl_buffer_alloc(&xb, dev, N * D, "sample.x");
    if (s == DCL_OK) s = dcl_buffer_alloc(&d.t, dev, 2 * N, "sample.t");
    if (s == DCL_OK && guided) s = dcl_buffer_alloc(&d.x2, dev, 2 * N * D, "sample.x2");
    if (s == DCL_OK && guided) s = dcl_buffer_alloc(&d.out2, dev, 2 * N * D, "sample.out2");
    if (s == DCL_OK && K > 0) {
        // Classes then null classes (only the first N are used without guidance); unconditional
        // sampling of a conditional model is the null class throughout.
        labels = malloc(2 * N * sizeof *labels);
        if (!labels) s = dcl__fail(DCL_ERR_NOMEM, "out of host memory for %zu labels", 2 * N);
        for (size_t i = 0; labels && i < 2 * N; i++)
            labels[i] = i < N && g && g->labels ? (uint32_t)g->labels[i] : (uint32_t)K;
        if (s == DCL_OK) s = dcl_buffer_alloc(&lb, dev, 2 * N, "sample.labels");
        if (s == DCL_OK) s = dcl_buffer_write(lb, 0, 2 * N, labels);
        d.labels = dcl_at(lb, 0);
    }
    if (s == DCL_OK)
        s = dcl_sample(dev, &c->process, c->pred, &so, dcl_model_denoise, &d, dcl_at(xb, 0), N, D,
                       seed, traj);
    if (s == DCL_OK) s = dcl_buffer_read(xb, 0, N * D, x);
    dcl_buffer *all[] = {xb, lb, d.t, d.x2, d.out2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dcl_buffer_free(all[i]);
    free(labels);
    return s;
}

void dcl_model_config_default(dcl_model_config *c) {
    memset(c, 0, sizeof *c);
    dcl_process_parse("flow", &c->process); // cannot fail
    c->pred = DCL_PREDICT_VELOCITY;
    c->net.kind = DCL_NET_MLP;
    dcl_mlp_config_default(&c->net.mlp, 2);
    memcpy(c->data, "spiral", sizeof "spiral");
}
