// A trained model: the network, its EMA weights and the configuration that `sample` needs (process,
// prediction, network, dataset, step, seed), saved together as one safetensors checkpoint; and
// sampling from it, class-conditional with classifier-free guidance when the network has classes.
//
// Dimensions: N samples; D values per sample (dcl_net_dim).
#ifndef DIFFCL_MODEL_H
#define DIFFCL_MODEL_H

#include <stdint.h>

#include "diffcl/arena.h"
#include "diffcl/device.h"
#include "diffcl/net.h"
#include "diffcl/sample.h" // dcl_sampler_opts
#include "diffcl/schedule.h"

typedef struct dcl_model_config {
    dcl_process process;
    dcl_prediction pred;
    double prev_dt; // prev only: the sampler step the model was trained for (1 / steps)
    dcl_net_config net;
    double cond_drop; // class-conditional: probability that a training label becomes the null class
    char data[512];   // dataset spec it was trained on
    uint64_t seed;
    int64_t step; // training steps done
} dcl_model_config;

// The CLI's `train` defaults for 2-D points: flow matching (dcl_process_parse("flow")) predicting
// the velocity, an MLP for 2-D points with dcl_mlp_config_default's width, depth, embedding and activation, data
// "spiral", seed 0, step 0, no label drop. For other points set net.mlp.dim and data; for images
// set net.kind = DCL_NET_UNET and fill net.unet with dcl_unet_config_default.
void dcl_model_config_default(dcl_model_config *c);

typedef struct dcl_model {
    dcl_model_config cfg;
    dcl_net *net;     // weights being trained (params) and their gradients
    dcl_arena ema;    // exponential moving average of the weights (same layout)
    size_t max_batch; // the largest batch the network takes (dcl_model_init's)
} dcl_model;

// A new model on dev with freshly initialised weights (EMA = weights), for batches up to
// max_batch (sampling with guidance evaluates 2N at once). A network whose weights do not fit in
// one buffer of dev is DCL_ERR_ARG saying how many parameters fit, before anything is allocated.
dcl_status dcl_model_init(dcl_model *m, dcl_device *dev, const dcl_model_config *cfg,
                          size_t max_batch);
void dcl_model_free(dcl_model *m);

// Saves weights under their dotted names and the EMA weights under "ema." + name, with
// __metadata__ {"format": "pt", "diffcl": <config JSON>}. Atomic.
dcl_status dcl_model_save(const dcl_model *m, const char *path);
// Loads a checkpoint written by dcl_model_save onto dev. Errors name the file and what is wrong.
// Before anything is allocated, the config's parameter count (counted from the config alone) is
// compared with the values the file holds, so a corrupt config cannot ask for gigabytes; a config
// the network refuses (U-Net groups or sizes), an integer out of range, a tensor of the wrong
// shape and a NaN or Inf weight (named by tensor) are all DCL_ERR_FORMAT. Tensors besides the
// weights and "ema." weights are ignored.
dcl_status dcl_model_load(dcl_model *m, dcl_device *dev, const char *path, size_t max_batch);
// Reads only the config of a checkpoint (no device): what a caller checks before loading it, such
// as whether the model draws images or points. Errors as dcl_model_load's.
dcl_status dcl_model_read_config(const char *path, dcl_model_config *cfg);

// Number of trained parameters (the weights, without EMA copies or alignment padding).
size_t dcl_model_parameter_count(const dcl_model *m);

// What to sample: classes and classifier-free guidance (Ho & Salimans 2022, "Classifier-Free
// Diffusion Guidance"; w here is their 1 + w):
//   ε̃ = ε̂(x, ∅) + w (ε̂(x, y) − ε̂(x, ∅))
// w = 1 is plain conditional sampling, w = 0 unconditional, w > 1 strengthens the class. Every
// prediction is affine in ε̂ at fixed (x_t, t), so the same combination is applied to the
// network's output whatever it predicts.
typedef struct dcl_guidance {
    const int32_t *labels; // (N) class of each sample; NULL: unconditional (the null class)
    double w;              // guidance weight (1: none)
} dcl_guidance;

// Draws N samples on the model's device: x (N, D) host memory; traj, when not NULL, receives every
// x_{t_k} (o->steps + 1, N, D). use_ema picks the EMA weights (what sampling normally uses).
// g may be NULL (unconditional). The model must take batches of N (2N with guidance w != 1).
// o->progress, when set, is called after each sampler step.
dcl_status dcl_model_sample(dcl_model *m, const dcl_sampler_opts *o, size_t N, uint64_t seed,
                            int use_ema, const dcl_guidance *g, float *x, float *traj);

// The sampler's model callback (dcl_denoiser_fn) for a dcl_model: ctx is a dcl_model_denoiser.
typedef struct dcl_model_denoiser {
    dcl_model *model;
    int use_ema;      // 1: the EMA weights (default for sampling)
    double w;         // guidance weight; labels.buf NULL or w == 1: one evaluation
    dcl_ptr labels;   // (2N) uint32 bits: the classes, then N null classes; buf NULL: none
    dcl_buffer *t;    // scratch (2N): t broadcast to the batch
    dcl_buffer *x2;   // scratch (2N, D) with guidance: x twice
    dcl_buffer *out2; // scratch (2N, D) with guidance: conditional then unconditional outputs
} dcl_model_denoiser;
dcl_status dcl_model_denoise(void *ctx, dcl_ptr out, dcl_ptr x, double t, size_t N);

#endif
