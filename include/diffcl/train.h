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
    int lr_schedule;     // after the warm-up: DCL_LR_CONSTANT (default), _COSINE or _LINEAR
    double lr_min;       // cosine and linear: the rate at lr_horizon and after (0)
    int64_t lr_horizon;  // cosine and linear: the step the decay ends at; 0: the run's last step
    double beta1, beta2; // Adam (0.9, 0.999)
    double weight_decay; // AdamW decoupled decay (0)
    double clip;         // global gradient-norm clip, 0 = off (1)
    double ema;          // EMA decay (0.999), ramped as min(ema, (1 + k) / (10 + k))
    int log_every;       // read the loss back every this many steps (100)
    int min_snr;         // time weighting: 0 none (plain MSE); 1 Min-SNR-γ (see dcl_loss_weight)
    double snr_gamma;    // γ of Min-SNR (5)
    int verify_every;    // every this many steps, the CPU reference repeats the step (0: never)
    int verify_strict;   // a disagreement stops training (DCL_ERR_MISMATCH) instead of a warning
    // Device failures. The trainer keeps the last consistent state on the host (weights, EMA
    // weights, Adam moments, counters: taken at the start and at every read-back, every
    // log_every steps and at every save, so at most log_every steps are lost). After a failure of the device
    // (DCL_ERR_OPENCL, DCL_ERR_BUILD, DCL_ERR_DEVICE_MEM, DCL_ERR_BLAS) training
    dcl_device *fallback; // goes on from that state on this device (dcl_device_open_fallback),
                          // and the model lives there afterwards; or, when NULL,
    const char *out;      // stops after saving that state here (a checkpoint at its own step).
                          // out is also where the checkpoint is written at the end.
    // Checkpoints (out must be set): every save_every steps (0: only at the end) a checkpoint
    // with the training state goes to dcl_train_checkpoint_name(out, step), and the newest keep
    // (default 2) of those are kept, older ones removed after the new one is committed. The final
    // state, the state at a cancellation, at a divergence and after a device failure go to out.
    int save_every;
    int keep;
    // Non-finite steps: a step whose loss or gradient norm is NaN or Inf is skipped (weights, EMA
    // and moments as before it); max_skips consecutive skips stop training with
    // DCL_ERR_DIVERGED (default 10).
    int max_skips;
    // A checkpoint written by dcl_train to continue from: its Adam moments, skip counters and
    // log-window position are loaded (m must already hold its weights: dcl_model_load).
    const char *resume;
    // Progress: called after every step with the steps done in this call and o->steps; non-zero
    // stops training after that step (the state saved to out, DCL_ERR_CANCELLED). It costs
    // no device synchronisation (a step counter; each step's uploads wait for the previous step's
    // work, so the count runs at most one step ahead of the device). NULL: none.
    dcl_progress_fn progress;
    void *progress_ctx;
    // Data parallelism (the CLI's MPI mode: host/cli/mpi.c; the library knows no MPI). With
    // shard_count > 1 this process computes examples [shard_rank·B/shard_count,
    // (shard_rank + 1)·B/shard_count) of each step's global batch of B = batch examples, drawn
    // from the same Philox elements as a single process's (batch must divide by shard_count).
    int shard_rank, shard_count;
    // Called in every step, between the backward pass and the AdamW step, with n = P + 2 host
    // floats: the shard's gradient (P; the gradient of its examples' share of the global mean),
    // its Σ (pred − target)² and a failure flag (1: this process failed before the call, the
    // rest is 0). It must replace data by its sum over the processes, the same bits on each
    // (MPI_Allreduce); a flag above 0 then stops training (DCL_ERR_CANCELLED, naming no rank:
    // the failed one reports itself). The gradient-norm clip and the non-finite-step test use the
    // summed values, so every process takes the same decisions. Needs shard_count >= 1.
    dcl_status (*reduce)(void *ctx, float *data, size_t n);
    void *reduce_ctx;
    // Called at every read-back (every log_every steps, at saves and at the end) with the host
    // copy of the state at `step` (4 P floats: weights, EMA weights, Adam m, Adam v), which is
    // what checkpoints are written from. It compares the processes' copies: DCL_OK when they are
    // the same bits; 1 after replacing state by one every process now holds (the trainer puts
    // it back on the device: for processes on devices of different kinds, which drift apart in
    // the last bits); an error status stops training.
    int (*sync)(void *ctx, float *state, size_t n, int64_t step);
    void *sync_ctx;
} dcl_train_opts;

void dcl_train_opts_default(dcl_train_opts *o);

// The per-example loss weight at time t. Min-SNR-γ (Hang et al. 2023) weights the ε-prediction
// loss by min(SNR, γ) / SNR with SNR = a²/b²; the same weighting is applied to any prediction by
// expressing its error in ε units (ε̂ = ce[0] x_t + ce[1] f, so an error δ in f is ce[1] δ in ε).
// Returns 1 when o->min_snr is 0.
double dcl_loss_weight(const dcl_model_config *c, const dcl_train_opts *o, double t);

#define DCL_TRAIN_BUCKETS 4

// What the trainer reports every log_every steps and at the end. Windows are aligned to global
// steps (m->cfg.step a multiple of log_every), so a resumed run reports the same windows.
typedef struct dcl_train_report {
    int64_t step, total; // steps done in this call, of o->steps
    double loss;         // mean (unweighted) squared error over the window's finite steps
    int64_t global_step; // m->cfg.step at this report
    int64_t skipped;     // non-finite steps skipped in the whole run so far
    double steps_per_s;  // since the start of this call
    // The last step's squared error by t: bucket i holds t in [i/4, (i+1)/4) (NaN if empty).
    double bucket_loss[DCL_TRAIN_BUCKETS];
} dcl_train_report;

// The report callback; a status other than DCL_OK stops training with that status (the CLI writes
// sample grids from here with --sample-every).
typedef dcl_status (*dcl_train_log_fn)(void *ctx, const dcl_train_report *r);

// Learning-rate schedules after the linear warm-up.
enum { DCL_LR_CONSTANT, DCL_LR_COSINE, DCL_LR_LINEAR };
// "constant", "cosine", "linear" → the enum; DCL_ERR_ARG otherwise.
dcl_status dcl_lr_schedule_parse(const char *name, int *kind);
const char *dcl_lr_schedule_name(int kind);
// The learning rate of global step g (0-based) for a run whose decay ends at `horizon`:
// warm-up lr (g + 1) / warmup for g < warmup, then with p = (g − warmup) / (horizon − warmup)
// clamped to [0, 1]: constant lr; cosine lr_min + (lr − lr_min)(1 + cos πp) / 2; linear
// lr + (lr_min − lr) p.
double dcl_train_lr(const dcl_train_opts *o, int64_t g, int64_t horizon);

// The name of the periodic checkpoint of `out` at `step`: "run.safetensors" →
// "run-step00000500.safetensors" (the step in at least 8 digits, so names sort by step).
void dcl_train_checkpoint_name(const char *out, int64_t step, char *buf, size_t size);

// What a checkpoint's training state says (its "diffcl_train" metadata entry).
typedef struct dcl_train_info {
    int64_t step, end;    // steps done; the last step of the run it belongs to
    int64_t skipped;      // non-finite steps skipped so far
    dcl_train_opts opts;  // the run's optimizer options (pointers NULL)
    uint64_t config_hash; // FNV-1a of the model config (step left out)
    char device[160];     // the device that wrote it
} dcl_train_info;
// Reads the training state of a checkpoint; DCL_ERR_FORMAT (naming the file) when it has none.
dcl_status dcl_train_info_read(const char *path, dcl_train_info *info);
// The checkpoint to resume from for PATH: PATH itself when it is a file; for a folder, or a file
// name that does not exist, the checkpoint with training state and the highest step among the
// folder's *.safetensors files (or PATH's periodic checkpoints); temporary files are ignored.
// DCL_ERR_IO when there is none.
dcl_status dcl_train_find_resume(const char *path, char *buf, size_t size);

// Trains m (already initialised) on ds for o->steps steps from m->cfg.step on; updates m->cfg.step.
// losses, when not NULL, receives the loss at each log point (capacity steps / log_every + 2).
// A non-finite step is skipped (see max_skips); DCL_ERR_DIVERGED after max_skips in a row, with
// the last finite state saved to out. After a cancellation by o->progress (at a complete step)
// the state is saved to out too and DCL_ERR_CANCELLED returned.
dcl_status dcl_train(dcl_device *dev, dcl_model *m, dcl_dataset *ds, const dcl_train_opts *o,
                     dcl_train_log_fn log, void *log_ctx, float *losses, int *n_losses);

#endif
