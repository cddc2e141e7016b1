// Internal to the trainer: checkpoints that carry the training state (Adam moments, counters, the
// optimizer options) next to the weights, and the periodic checkpoints' names and pruning.
#ifndef DIFFCL_TRAIN_STATE_H
#define DIFFCL_TRAIN_STATE_H

#include "diffcl/train.h"

// What a run carries from step to step besides the tensors.
typedef struct dcl__train_counters {
    int64_t skipped;   // non-finite steps skipped so far
    int64_t run_skips; // of which the last ones in a row
    double win_sum;    // Σ per-step squared errors of the current log window's finite steps
    int64_t win_n;     // their number
} dcl__train_counters;

// Host copies in the layout of dcl_net_params(m->net), each P values.
typedef struct dcl__train_tensors {
    const float *weights, *ema, *adam_m, *adam_v;
} dcl__train_tensors;

// Writes a checkpoint of m's config at `step` with the weights and EMA weights as dcl_model_save
// does, plus "train.adam_m.NAME" / "train.adam_v.NAME" and __metadata__ "diffcl_train".
dcl_status dcl__train_save(const dcl_model *m, const dcl__train_tensors *t, int64_t step,
                           const dcl__train_counters *c, const dcl_train_opts *o, int64_t end,
                           int64_t horizon, const char *device, const char *path);
// Reads the moments (into adam_m, adam_v: P values each, padding zeroed) and the counters of a
// checkpoint written by dcl__train_save for m's network.
dcl_status dcl__train_load(const char *path, const dcl_model *m, float *adam_m, float *adam_v,
                           dcl__train_counters *c);
// Removes all but the newest `keep` periodic checkpoints of out.
void dcl__train_prune(const char *out, int keep);

#endif
