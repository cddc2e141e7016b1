// A trained model: the network, its EMA weights and the configuration that `sample` needs (process,
// prediction, network shape, dataset, step, seed), saved together as one safetensors checkpoint.
#ifndef DIFFCL_MODEL_H
#define DIFFCL_MODEL_H

#include <stdint.h>

#include "diffcl/arena.h"
#include "diffcl/device.h"
#include "diffcl/mlp.h"
#include "diffcl/sample.h" // dcl_sampler_opts
#include "diffcl/schedule.h"

typedef struct dcl_model_config {
    dcl_process process;
    dcl_prediction pred;
    double prev_dt; // prev only: the sampler step the model was trained for (1 / steps)
    dcl_mlp_config net;
    char data[512]; // dataset spec it was trained on
    uint64_t seed;
    int64_t step; // training steps done
} dcl_model_config;

typedef struct dcl_model {
    dcl_model_config cfg;
    dcl_mlp *net;  // weights being trained (params) and their gradients
    dcl_arena ema; // exponential moving average of the weights (same layout)
} dcl_model;

// A new model on dev with freshly initialised weights (EMA = weights).
dcl_status dcl_model_init(dcl_model *m, dcl_device *dev, const dcl_model_config *cfg,
                          size_t max_batch);
void dcl_model_free(dcl_model *m);

// Saves weights under their dotted names and the EMA weights under "ema." + name, with
// __metadata__ {"format": "pt", "diffcl": <config JSON>}. Atomic.
dcl_status dcl_model_save(const dcl_model *m, const char *path);
// Loads a checkpoint written by dcl_model_save onto dev. Errors name the file and what is wrong.
dcl_status dcl_model_load(dcl_model *m, dcl_device *dev, const char *path, size_t max_batch);

// Number of trained parameters (the weights, without EMA copies or alignment padding).
size_t dcl_model_parameter_count(const dcl_model *m);

// Draws N samples on the model's device: x (N, D) host memory; traj, when not NULL, receives every
// x_{t_k} (o->steps + 1, N, D). use_ema picks the EMA weights (what sampling normally uses).
// The model must have been created for batches of at least N.
dcl_status dcl_model_sample(dcl_model *m, const dcl_sampler_opts *o, size_t N, uint64_t seed,
                            int use_ema, float *x, float *traj);

// The sampler's model callback (dcl_denoiser_fn) for a dcl_model: ctx is a dcl_model_denoiser.
typedef struct dcl_model_denoiser {
    dcl_model *model;
    int use_ema;   // 1: the EMA weights (default for sampling)
    dcl_buffer *t; // scratch (>= N): t broadcast to the batch
} dcl_model_denoiser;
dcl_status dcl_model_denoise(void *ctx, dcl_ptr out, dcl_ptr x, double t, size_t N);

#endif
