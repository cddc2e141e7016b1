// Checkpoints with training state: the learning-rate schedule, the periodic checkpoints' names,
// saving and loading the Adam moments and counters, pruning, and finding the one to resume from.
#define _POSIX_C_SOURCE 200809L // strdup

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "diffcl/log.h"
#include "diffcl/safetensors.h" // dcl_safetensors_write, dcl_safetensors_read
#include "model/model_impl.h"   // dcl__model_config_json
#include "train/state.h"

#define STATE_VERSION 1
#define SUFFIX ".safetensors"

static const char *const schedule_names[] = {"constant", "cosine", "linear"};

dcl_status dcl_lr_schedule_parse(const char *name, int *kind) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, schedule_names[i]) == 0) return *kind = i, DCL_OK;
    return dcl__fail(DCL_ERR_ARG,
                     "unknown learning-rate schedule '%s': use constant, cosine or "
                     "linear",
                     name);
}

const char *dcl_lr_schedule_name(int kind) {
    return kind >= 0 && kind < 3 ? schedule_names[kind] : "?";
}

double dcl_train_lr(const dcl_train_opts *o, int64_t g, int64_t horizon) {
    if (o->warmup > 0 && g < o->warmup) return o->lr * (double)(g + 1) / o->warmup;
    if (o->lr_schedule == DCL_LR_CONSTANT) return o->lr;
    double span = (double)(horizon - o->warmup);
    double p = span > 0 ? (double)(g - o->warmup) / span : 1.0;
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    if (o->lr_schedule == DCL_LR_COSINE)
        return o->lr_min + (o->lr - o->lr_min) * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
    return o->lr + (o->lr_min - o->lr) * p;
}

// The length of out without a trailing ".safetensors".
static size_t stem_len(const char *out) {
    size_t n = strlen(out), k = strlen(SUFFIX);
    return n > k && strcmp(out + n - k, SUFFIX) == 0 ? n - k : n;
}

void dcl_train_checkpoint_name(const char *out, int64_t step, char *buf, size_t size) {
    snprintf(buf, size, "%.*s-step%08lld" SUFFIX, (int)stem_len(out), out, (long long)step);
}

// FNV-1a (64-bit) of the config's JSON with the step left out.
static uint64_t config_hash(const dcl_model_config *cfg) {
    dcl_model_config c = *cfg;
    c.step = 0;
    char *text = dcl__model_config_json(&c);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = text ? text : ""; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    free(text);
    return h;
}

static char *state_json(const dcl_model_config *cfg, int64_t step, const dcl__train_counters *c,
                        const dcl_train_opts *o, int64_t end, int64_t horizon, const char *device) {
    (void)horizon; // the explicit o->lr_horizon is stored: 0 follows the run's end
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)config_hash(cfg));
    json_t *root = json_pack(
        "{s:i, s:I, s:I, s:I, s:I, s:f, s:I, s:s, s:f, s:f, s:i, s:I, s:i, s:f, s:f, s:f, s:f, "
        "s:f, s:i, s:i, s:f, s:s, s:s}",
        "version", STATE_VERSION, "step", (json_int_t)step, "end", (json_int_t)end, "skipped",
        (json_int_t)c->skipped, "run_skips", (json_int_t)c->run_skips, "win_sum", c->win_sum,
        "win_n", (json_int_t)c->win_n, "lr_schedule", dcl_lr_schedule_name(o->lr_schedule), "lr",
        o->lr, "lr_min", o->lr_min, "warmup", o->warmup, "lr_horizon", (json_int_t)o->lr_horizon,
        "batch", o->batch, "beta1", o->beta1, "beta2", o->beta2, "weight_decay", o->weight_decay,
        "clip", o->clip, "ema", o->ema, "log_every", o->log_every, "min_snr", o->min_snr,
        "snr_gamma", o->snr_gamma, "config_hash", hash, "device", device ? device : "");
    if (!root) return NULL;
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

dcl_status dcl__train_save(const dcl_model *m, const dcl__train_tensors *t, int64_t step,
                           const dcl__train_counters *c, const dcl_train_opts *o, int64_t end,
                           int64_t horizon, const char *device, const char *path) {
    const dcl_arena *params = dcl_net_params(m->net);
    int n = params->count;
    size_t P = params->n;
    // A state with a NaN or Inf is never committed.
    const float *all[4] = {t->weights, t->ema, t->adam_m, t->adam_v};
    for (int k = 0; k < 4; k++)
        for (size_t i = 0; i < P; i++)
            if (!isfinite(all[k][i]))
                return dcl__fail(DCL_ERR_MISMATCH,
                                 "not saving %s: the state at step %lld holds a non-finite value",
                                 path, (long long)step);
    dcl_model_config cfg = m->cfg;
    cfg.step = step;
    dcl_st_tensor *ts = calloc((size_t)(4 * n), sizeof *ts);
    char **names = calloc((size_t)(3 * n), sizeof *names);
    char *cj = dcl__model_config_json(&cfg),
         *sj = state_json(&cfg, step, c, o, end, horizon, device);
    dcl_status s = ts && names && cj && sj ? DCL_OK : dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
    static const char *const prefix[3] = {"ema.", "train.adam_m.", "train.adam_v."};
    for (int i = 0; i < n && s == DCL_OK; i++) {
        const dcl_arena_view *v = &params->views[i];
        ts[i].name = v->name;
        ts[i].data = t->weights + v->off;
        ts[i].ndim = dcl_net_tensor_shape(m->net, i, ts[i].shape);
        for (int k = 0; k < 3 && s == DCL_OK; k++) {
            size_t len = strlen(prefix[k]) + strlen(v->name) + 1;
            char *name = names[k * n + i] = malloc(len);
            if (!name) s = dcl__fail(DCL_ERR_NOMEM, "saving %s", path);
            else snprintf(name, len, "%s%s", prefix[k], v->name);
            ts[(k + 1) * n + i] = ts[i];
            ts[(k + 1) * n + i].name = name;
            ts[(k + 1) * n + i].data = all[k + 1] + v->off;
        }
    }
    const char *meta[] = {"format", "pt", "diffcl", cj, "diffcl_train", sj};
    if (s == DCL_OK) s = dcl_safetensors_write(path, ts, 4 * n, meta, 3);
    for (int i = 0; names && i < 3 * n; i++) free(names[i]);
    free(names), free(ts), free(cj), free(sj);
    return s;
}

// Parses a "diffcl_train" entry.
static dcl_status parse_state(const char *path, const char *text, dcl_train_info *info,
                              dcl__train_counters *c) {
    memset(info, 0, sizeof *info);
    memset(c, 0, sizeof *c);
    // Every optimizer option is in the entry; the rest of info->opts stays zero.
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    int version = 0, warmup = 0, batch = 0, log_every = 0, min_snr = 0;
    json_int_t step = 0, end = 0, skipped = 0, run_skips = 0, win_n = 0, horizon = 0;
    const char *sched = "", *hash = "", *device = "";
    dcl_train_opts *o = &info->opts;
    int bad = !root ||
              json_unpack_ex(root, &err, 0,
                             "{s:i, s:I, s:I, s:I, s:I, s:F, s:I, s:s, s:F, s:F, s:i, s:I, s:i, "
                             "s:F, s:F, s:F, s:F, s:F, s:i, s:i, s:F, s:s, s:s}",
                             "version", &version, "step", &step, "end", &end, "skipped", &skipped,
                             "run_skips", &run_skips, "win_sum", &c->win_sum, "win_n", &win_n,
                             "lr_schedule", &sched, "lr", &o->lr, "lr_min", &o->lr_min, "warmup",
                             &warmup, "lr_horizon", &horizon, "batch", &batch, "beta1", &o->beta1,
                             "beta2", &o->beta2, "weight_decay", &o->weight_decay, "clip", &o->clip,
                             "ema", &o->ema, "log_every", &log_every, "min_snr", &min_snr,
                             "snr_gamma", &o->snr_gamma, "config_hash", &hash, "device", &device);
    bad = bad || version != STATE_VERSION || step < 0 || end < step || skipped < 0 ||
          run_skips < 0 || win_n < 0 || batch < 1 || log_every < 1 || warmup < 0 ||
          dcl_lr_schedule_parse(sched, &o->lr_schedule) != DCL_OK;
    if (!bad) {
        info->step = step, info->end = end, info->skipped = skipped;
        c->skipped = skipped, c->run_skips = run_skips, c->win_n = win_n;
        o->warmup = warmup, o->lr_horizon = horizon, o->batch = batch, o->log_every = log_every;
        o->min_snr = min_snr;
        info->config_hash = strtoull(hash, NULL, 16);
        snprintf(info->device, sizeof info->device, "%s", device);
    }
    json_decref(root);
    return bad ? dcl__fail(DCL_ERR_FORMAT,
                           "%s: the training state (__metadata__ \"diffcl_train\") "
                           "is malformed",
                           path)
               : DCL_OK;
}

static dcl_status read_state(const dcl_st_file *f, const char *path, dcl_train_info *info,
                             dcl__train_counters *c) {
    const char *text = dcl_safetensors_meta(f, "diffcl_train");
    if (!text)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s has no training state (a checkpoint written before diffcl saved "
                         "it, or not by 'diffcl train'); it cannot be resumed",
                         path);
    return parse_state(path, text, info, c);
}

dcl_status dcl_train_info_read(const char *path, dcl_train_info *info) {
    dcl_st_file *f;
    dcl__train_counters c;
    dcl_status s = dcl_safetensors_read(&f, path);
    if (s == DCL_OK) s = read_state(f, path, info, &c);
    dcl_safetensors_free(f);
    return s;
}

dcl_status dcl__train_load(const char *path, const dcl_model *m, float *adam_m, float *adam_v,
                           dcl__train_counters *c) {
    dcl_st_file *f;
    dcl_train_info info;
    dcl_status s = dcl_safetensors_read(&f, path);
    if (s == DCL_OK) s = read_state(f, path, &info, c);
    if (s == DCL_OK && info.config_hash != config_hash(&m->cfg))
        s = dcl__fail(DCL_ERR_ARG, "%s: the training state belongs to a different model config",
                      path);
    if (s == DCL_OK && info.step != m->cfg.step)
        s = dcl__fail(DCL_ERR_ARG, "%s: the training state is at step %lld, the model at %lld",
                      path, (long long)info.step, (long long)m->cfg.step);
    const dcl_arena *params = dcl_net_params(m->net);
    float *dst[2] = {adam_m, adam_v};
    static const char *const prefix[2] = {"train.adam_m.", "train.adam_v."};
    for (int k = 0; k < 2 && s == DCL_OK; k++) memset(dst[k], 0, params->n * sizeof *dst[k]);
    for (int i = 0; i < params->count && s == DCL_OK; i++) {
        const dcl_arena_view *v = &params->views[i];
        for (int k = 0; k < 2 && s == DCL_OK; k++) {
            char name[DCL_ARENA_NAME_MAX + 16];
            snprintf(name, sizeof name, "%s%s", prefix[k], v->name);
            const dcl_st_tensor *t = dcl_safetensors_find(f, name);
            if (!t || dcl_st_tensor_numel(t) != v->n)
                s = dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' is %s", path, name,
                              t ? "of the wrong size" : "missing");
            else memcpy(dst[k] + v->off, t->data, v->n * sizeof *t->data);
            for (size_t j = 0; s == DCL_OK && j < v->n; j++)
                if (!isfinite(dst[k][v->off + j]))
                    s = dcl__fail(DCL_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value", path,
                                  name);
        }
    }
    dcl_safetensors_free(f);
    return s;
}

// The folder of path (".") and its file name.
static void split_path(const char *path, char *dir, size_t size, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, size, "."), *base = path;
    else
        snprintf(dir, size, "%.*s", slash == path ? 1 : (int)(slash - path), path),
            *base = slash + 1;
}

// The step of a periodic checkpoint name "STEM-stepDIGITS.safetensors" of stem, or -1.
static int64_t periodic_step(const char *name, const char *stem, size_t stem_n) {
    size_t n = strlen(name), k = strlen(SUFFIX);
    if (n <= stem_n + 5 + k || strncmp(name, stem, stem_n) != 0 ||
        strncmp(name + stem_n, "-step", 5) != 0 || strcmp(name + n - k, SUFFIX) != 0)
        return -1;
    int64_t step = 0;
    for (const char *p = name + stem_n + 5; p < name + n - k; p++) {
        if (*p < '0' || *p > '9' || step > INT64_MAX / 10 - 10) return -1;
        step = step * 10 + (*p - '0');
    }
    return step;
}

typedef struct found {
    char path[8192];
    int64_t step;
} found;

static int by_step_desc(const void *a, const void *b) {
    int64_t x = ((const found *)a)->step, y = ((const found *)b)->step;
    return (x < y) - (x > y);
}

// Lists out's periodic checkpoints, newest first; *n their count (caller frees).
static found *list_periodic(const char *out, int *n) {
    char dir[4000];
    const char *base;
    split_path(out, dir, sizeof dir, &base);
    size_t stem_n = stem_len(base);
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    found *list = NULL;
    int cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int64_t step = periodic_step(e->d_name, base, stem_n);
        if (step < 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            found *l = realloc(list, (size_t)cap * sizeof *l);
            if (!l) break;
            list = l;
        }
        snprintf(list[*n].path, sizeof list[*n].path, "%s/%s", dir, e->d_name);
        list[(*n)++].step = step;
    }
    closedir(d);
    if (list) qsort(list, (size_t)*n, sizeof *list, by_step_desc);
    return list;
}

void dcl__train_prune(const char *out, int keep) {
    int n;
    found *list = list_periodic(out, &n);
    for (int i = keep < 0 ? 0 : keep; i < n; i++)
        if (remove(list[i].path) == 0)
            dcl_log(DCL_LOG_VERBOSE, "removed the older checkpoint %s", list[i].path);
    free(list);
}

// Whether name is a candidate in a folder scan: "*.safetensors" and not a temporary file.
static int is_candidate(const char *name) {
    size_t n = strlen(name), k = strlen(SUFFIX);
    return n > k && strcmp(name + n - k, SUFFIX) == 0 && !strstr(name, ".tmp-") && name[0] != '.';
}

dcl_status dcl_train_find_resume(const char *path, char *buf, size_t size) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(buf, size, "%s", path);
        return DCL_OK;
    }
    found *list = NULL;
    int n = 0;
    if (stat(path, &st) == 0) { // a folder: every checkpoint in it
        DIR *d = opendir(path);
        if (!d) return dcl__fail(DCL_ERR_IO, "--resume %s: cannot read the folder", path);
        int cap = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (!is_candidate(e->d_name)) continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                found *l = realloc(list, (size_t)cap * sizeof *l);
                if (!l) break;
                list = l;
            }
            snprintf(list[n].path, sizeof list[n].path, "%s/%s", path, e->d_name);
            list[n++].step = 0;
        }
        closedir(d);
    } else list = list_periodic(path, &n);
    // The highest step among those with a readable training state.
    int best = -1;
    int64_t best_step = -1;
    for (int i = 0; i < n; i++) {
        dcl_train_info info;
        if (dcl_train_info_read(list[i].path, &info) != DCL_OK) continue;
        if (info.step > best_step) best = i, best_step = info.step;
    }
    dcl_clear_error();
    dcl_status s = DCL_OK;
    if (best < 0)
        s = dcl__fail(DCL_ERR_IO, "--resume %s: no checkpoint with training state found there",
                      path);
    else snprintf(buf, size, "%s", list[best].path);
    free(list);
    return s;
}
