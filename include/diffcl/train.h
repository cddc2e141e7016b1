// Training loop: per-example t ~ U[0, 1] (integer steps for discrete vp), x_t = a(t) x0 + b(t) ε
// and the target of the model's prediction formed on the device, mean squared error, AdamW with
// linear warm-up and gradient-norm clipping, EMA of the weights (the denoiser training of Nakkiran
// et al. 2024, "Step-by-Step Diffusion: An Elementary Tutorial"). All randomness comes from Philox
// streams of the seed, so the same seed gives the same run on any device.
#ifndef DIFFCL_TRAIN_H
#define DIFFCL_TRAIN_H

#include <stdint.h>

#include "diffcl/data.h"
#include "diffcl/model.h"

typedef struct dcl_train_opts {
    int steps;           // optimizer steps (default 3000)
    int batch;           // N (default 1024)
    double lr;           // peak learning rate (default 1e-3)
    int warmup;          // linear warm-up steps (default 100)
    double beta1, beta2; // Adam (0.9, 0.999)
    double weight_decay; // AdamW decoupled decay (0)
    double clip;         // global gradient-norm clip, 0 = off (1)
    double ema;          // EMA decay (0.999), ramped as min(ema, (1 + k) / (10 + k))
    int log_every;       // read the loss back every this many steps (100)
    int min_snr;         // time weighting: 0 none (plain MSE); 1 Min-SNR-γ (see dcl_loss_weight)
    double snr_gamma;    // γ of Min-SNR (5)
    int verify_every;    // every this many steps, the CPU reference repeats the step (0: never)
    int verify_strict;   // a disagreement stops training (DCL_ERR_MISMATCH) instead of a warning
    // Device failures. On an OpenCL device with fallback or out set, the trainer keeps the last
    // consistent state on the host (weights, EMA weights, Adam moments: taken at the start and at
    // every loss read-back, so at most log_every steps are lost). After a failure of the device
    // (DCL_ERR_OPENCL, DCL_ERR_BUILD, DCL_ERR_DEVICE_MEM, DCL_ERR_BLAS) training
    dcl_device *fallback; // goes on from that state on this device (dcl_device_open_fallback),
                          // and the model lives there afterwards; or, when NULL,
    const char *out;      // stops after saving that state here (a checkpoint at its own step).
                          // out is also where the checkpoint is written at the end.
    // Progress: called after every step with the steps done in this call and o->steps. It costs
    // no device synchronisation (a step counter; each step's uploads wait for the previous step's
    // work, so the count runs at most one step ahead of the device). NULL: none.
    dcl_progress_fn progress;
    void *progress_ctx;
} dcl_train_opts;

void dcl_train_opts_default(dcl_train_opts *o);

// The per-example loss weight at time t. Min-SNR-γ (Hang et al. 2023) weights the ε-prediction
// loss by min(SNR, γ) / SNR with SNR = a²/b²; the same weighting is applied to any prediction by
// expressing its error in ε units (ε̂ = ce[0] x_t + ce[1] f, so an error δ in f is ce[1] δ in ε).
// Returns 1 when o->min_snr is 0.
double dcl_loss_weight(const dcl_model_config *c, const dcl_train_opts *o, double t);

#define DCL_TRAIN_BUCKETS 4

// What the trainer reports every log_every steps and at the end.
typedef struct dcl_train_report {
    int64_t step, total; // steps done in this call, of o->steps
    double loss;         // mean (unweighted) squared error over the steps since the last report
    double steps_per_s;  // since the start of this call
    // The last step's squared error by t: bucket i holds t in [i/4, (i+1)/4) (NaN if empty).
    double bucket_loss[DCL_TRAIN_BUCKETS];
} dcl_train_report;

// The report callback; a status other than DCL_OK stops training with that status (the CLI writes
// sample grids from here with --sample-every).
typedef dcl_status (*dcl_train_log_fn)(void *ctx, const dcl_train_report *r);

// Trains m (already initialised) on ds for o->steps steps from m->cfg.step on; updates m->cfg.step.
// losses, when not NULL, receives the loss at each log point (capacity steps / log_every + 2).
// A loss that is not finite stops training with DCL_ERR_MISMATCH (the run's results went wrong;
// the message says at which step and what to try).
dcl_status dcl_train(dcl_device *dev, dcl_model *m, dcl_dataset *ds, const dcl_train_opts *o,
                     dcl_train_log_fn log, void *log_ctx, float *losses, int *n_losses);

#endif
