// Cross-checking ops against the CPU reference: the op-case table shared by tests/test_ops.c,
// `diffcl check` and `diffcl bench`. Each case builds deterministic inputs for a size n, runs the
// op on a device and on the CPU reference, and compares outputs element by element with
// |a − b| <= atol + rtol·|ref| (NaN/Inf in the same places) and untouched guard regions.
#ifndef DIFFCL_CROSSCHECK_H
#define DIFFCL_CROSSCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/device.h"
#include "diffcl/net.h" // dcl_net_kind

typedef struct dcl_check_result {
    char name[96];    // case name, e.g. "gemm_tn", "silu_backward", "train.mlp.grad.layers.0.bias"
    size_t n;         // the case's size parameter
    size_t elements;  // output elements compared
    double max_abs;   // largest |a − b|
    double max_rel;   // largest |a − b| / |ref| over elements with ref != 0
    float atol, rtol; // the case's tolerance
    int pass;         // every element within tolerance, non-finite positions equal, guards intact
    char detail[512]; // first mismatches (index, device value, reference value) or guard damage
} dcl_check_result;

int dcl_check_case_count(void);
const char *dcl_check_case_name(int i);
// Runs case i at size n with every tensor at element offset off (inputs from seed) on dev and on
// a CPU reference device; fills *r. A returned error means the op itself failed (r->pass = 0).
dcl_status dcl_check_case_run(dcl_device *dev, int i, size_t n, size_t off, uint64_t seed,
                              dcl_check_result *r);

// Two full training steps (the second's loss and every gradient tensor, every parameter after
// AdamW) of a small model of the given kind on dev and on the CPU reference, same seed and data,
// each compared as a row passed to fn (names "train.mlp.loss", "train.unet.grad.conv_in.weight", ...). The U-Net's
// data is Fashion-MNIST: dcl_check_train_available says whether it is installed.
typedef void (*dcl_check_row_fn)(void *ctx, const dcl_check_result *r);
// With model (a checkpoint), its own network, config, data and weights instead (kind ignored).
dcl_status dcl_check_train_step(dcl_device *dev, dcl_net_kind kind, const char *model,
                                dcl_check_row_fn fn, void *ctx);
int dcl_check_train_available(dcl_net_kind kind);

// Sampling trajectories of every sampler (ddpm, ddim with eta 0.5, euler, heun; 20 steps) with a
// small model on dev and on the CPU reference from the same seed, compared after every step: one
// row per sampler, failing at the first step whose difference exceeds 2e-5 × step, and one row
// with the sliced W2 distance between the two sets of final samples.
// With model (a checkpoint), that model instead (8 samples of an image model).
dcl_status dcl_check_samplers(dcl_device *dev, const char *model, dcl_check_row_fn fn, void *ctx);

#endif
