// A small CNN image classifier that diffcl trains itself (softmax cross-entropy, AdamW), for
// measuring image samples: the fraction classified as their conditioning label, and the Fréchet
// distance between its penultimate features of samples and of test images (a distance in this
// classifier's feature space, not Inception's FID).
//
// Dimension legend: N batch; C, H, W the images' channels, height and width (values scaled as the
// datasets scale pixels, p / 127.5 − 1 in [−1, 1], so a diffusion model's samples are classified
// as they come); K classes; F = 4·base the feature dimension.
//
// The network (Conv2d 3×3 with zero padding 1 and GroupNorm with eps 1e-5, as PyTorch's):
//   h1 = SiLU(GroupNorm(Conv(C → base, stride 1)(x)))          "conv1", "norm1"
//   h2 = SiLU(GroupNorm(Conv(base → 2 base, stride 2)(h1)))    "conv2", "norm2"
//   h3 = SiLU(GroupNorm(Conv(2 base → 4 base, stride 2)(h2)))  "conv3", "norm3"
//   h4 = SiLU(GroupNorm(Conv(4 base → 4 base, stride 2)(h3)))  "conv4", "norm4"
//   f (N, F) = the mean of h4 over its positions (global average pooling: the features)
//   logits (N, K) = Linear(F → K)(f)                            "fc"
// Parameters "{conv1..4,norm1..4,fc}.{weight,bias}" in that order, PyTorch's shapes and default
// initialisation (U(−1/√fan_in, 1/√fan_in) from Philox (seed, DCL_RNG_INIT, view index), bitwise
// equal on every device; GroupNorm weight 1, bias 0).
#ifndef DIFFCL_CLASSIFIER_H
#define DIFFCL_CLASSIFIER_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/arena.h"  // dcl_arena
#include "diffcl/data.h"   // dcl_dataset
#include "diffcl/device.h" // dcl_device, dcl_ptr
#include "diffcl/sample.h" // dcl_progress_fn

typedef struct dcl_classifier_config {
    int channels, height, width; // the images' C, H, W
    int classes;                 // K >= 2
    int base;                    // channels of the first convolution (16); F = 4·base
    int groups;                  // GroupNorm groups, dividing base (8)
} dcl_classifier_config;

// base 16, groups 8 for C×H×W images of K classes.
void dcl_classifier_config_default(dcl_classifier_config *c, int C, int H, int W, int K);

typedef struct dcl_classifier dcl_classifier;

// A classifier on dev with weights from seed, for batches of up to max_batch images (the forward
// functions below take any N and work in chunks of max_batch).
dcl_status dcl_classifier_init(dcl_classifier **out, dcl_device *dev,
                               const dcl_classifier_config *cfg, uint64_t seed, size_t max_batch);
void dcl_classifier_free(dcl_classifier *c);
const dcl_classifier_config *dcl_classifier_get_config(const dcl_classifier *c);
size_t dcl_classifier_feature_dim(const dcl_classifier *c); // F
dcl_arena *dcl_classifier_params(dcl_classifier *c);
// Training steps taken (by dcl_classifier_train_step, or stored in a loaded checkpoint).
int64_t dcl_classifier_step(const dcl_classifier *c);

// logits (N, K) of images x (N, C, H, W), both on c's device, with the weights of params (an
// arena of c's layout, such as a copy) or c's own when NULL.
dcl_status dcl_classifier_logits(dcl_classifier *c, const dcl_arena *params, dcl_ptr x, size_t N,
                                 dcl_ptr logits);
// The penultimate features feats (N, F) of images x (N, C, H, W), both on c's device.
dcl_status dcl_classifier_features(dcl_classifier *c, dcl_ptr x, size_t N, dcl_ptr feats);
// The most likely class of each image x (N, C, H, W) on c's device into pred (N) on the host
// (argmax of the logits; the lowest class on ties). Reads back N·K floats.
dcl_status dcl_classifier_predict(dcl_classifier *c, dcl_ptr x, size_t N, int32_t *pred);

typedef struct dcl_classifier_train_opts {
    int steps;           // optimizer steps (2000: 4.3 epochs of Fashion-MNIST)
    int batch;           // N (128)
    double lr;           // peak learning rate (3e-3), after a linear warm-up, cosine decay to 0
    int warmup;          // warm-up steps (100)
    double beta1, beta2; // Adam (0.9, 0.999)
    double weight_decay; // AdamW decoupled decay (1e-4)
    double clip;         // global gradient-norm clip, 0 = off (1)
    int log_every;       // read loss and batch accuracy back every this many steps (100)
    dcl_progress_fn progress; // after every step (done, steps); non-zero stops: DCL_ERR_CANCELLED
    void *progress_ctx;
} dcl_classifier_train_opts;

void dcl_classifier_train_opts_default(dcl_classifier_train_opts *o);

// One optimizer step on images x (N, C, H, W) with labels (N, uint32 bits), both on c's device,
// N <= max_batch, at learning rate lr; step counts from 1 (Adam's bias correction). When loss.buf
// is set, loss[0] receives Σ of the N per-image cross-entropies (on the device; no read-back).
dcl_status dcl_classifier_train_step(dcl_classifier *c, const dcl_classifier_train_opts *o,
                                     double lr, dcl_ptr x, dcl_ptr labels, size_t N, dcl_ptr loss);

// What dcl_classifier_train reports every log_every steps and at the end.
typedef struct dcl_classifier_report {
    int64_t step, total; // steps done, of o->steps
    double loss;         // mean cross-entropy over the steps since the last report
    double accuracy;     // the last batch's fraction classified correctly
    double steps_per_s;  // since the start
} dcl_classifier_report;

typedef dcl_status (*dcl_classifier_log_fn)(void *ctx, const dcl_classifier_report *r);

// o->steps steps on batches of the labelled image set ds (with the classifier's C, H, W; labels
// below K), continuing c's step count; batch k is the dataset's (its seed's Philox stream, step k). A loss that is not finite stops with DCL_ERR_MISMATCH.
dcl_status dcl_classifier_train(dcl_classifier *c, dcl_dataset *ds,
                                const dcl_classifier_train_opts *o, dcl_classifier_log_fn log,
                                void *log_ctx);

// Classifies the N images x (N, C, H, W) on the host with labels (N) in 0..K−1 in chunks:
// correct[k] and count[k] (K each, overwritten) per true class k. progress as above (done images).
dcl_status dcl_classifier_evaluate(dcl_classifier *c, const float *x, const int32_t *labels,
                                   size_t N, int64_t *correct, int64_t *count,
                                   dcl_progress_fn progress, void *progress_ctx);

// The weights as safetensors, with __metadata__ {"format": "pt", "diffcl_classifier": the config
// as JSON {"version", "channels", "height", "width", "classes", "base", "groups", "step", "data"}}.
// data (may be NULL) names the training set.
dcl_status dcl_classifier_save(dcl_classifier *c, const char *path, const char *data);
// A classifier from a checkpoint of dcl_classifier_save: the config and every tensor's shape are
// checked before anything is allocated, and weights that are not finite are refused
// (DCL_ERR_FORMAT, naming the file and tensor).
dcl_status dcl_classifier_load(dcl_classifier **out, dcl_device *dev, const char *path,
                               size_t max_batch);

#endif
