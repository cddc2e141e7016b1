// Cross-checking ops against the CPU reference, and timing them: the op-case table (cases.c)
// shared by tests/test_ops.c, `diffcl check` and `diffcl bench ops`. Each case builds
// deterministic inputs for a size n; the check (run.c) runs the op on a device and on the CPU
// reference and compares outputs element by element with |a − b| <= atol + rtol·|ref| (NaN/Inf in
// the same places) and untouched guard regions; the timing (perf.c) runs it again and again.
// Full training steps (train_step.c) and sampling trajectories (samplers.c) are checked the same
// way. Every comparison takes the reference device from the caller (dcl_check_reference_open).
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

// Opens the CPU reference device the comparisons run against, without the "device cpu: ..." info
// line (it is not the user's pick). The caller frees it with dcl_device_free.
dcl_status dcl_check_reference_open(dcl_device **ref);

int dcl_check_case_count(void);
const char *dcl_check_case_name(int i); // NULL when i is not a case
// Runs case i at size n with every tensor at element offset off (inputs from seed) on dev and on
// the reference device ref; fills *r. A returned error means the op itself failed (r->pass = 0).
dcl_status dcl_check_case_run(dcl_device *dev, dcl_device *ref, int i, size_t n, size_t off,
                              uint64_t seed, dcl_check_result *r);

// ---- timing the cases (`diffcl bench ops`) ----------------------------------------------------

// What one call of a case does at its size n.
typedef struct dcl_check_cost {
    size_t n;     // the case's size parameter
    double bytes; // the least traffic: each input read once, each output written once, each
                  // in-out tensor both (4 bytes an element); the embedding counts the table's
                  // rows its labels pick
    double flops; // adds and multiplies, for the ops made of those only (GEMM 2·M·N·K, linear
                  // combinations, sums, biases); 0 when not counted
} dcl_check_cost;

// The tensors of a case at its benchmark size on one device, filled with its inputs.
typedef struct dcl_check_perf dcl_check_perf;

// Default total of a case's tensors (words) that sets its benchmark size: 64 MiB, beyond most
// CPUs' caches, and long enough on a GPU that launching a kernel is a small part of a call.
#define DCL_CHECK_PERF_ELEMENTS ((size_t)1 << 24)

// Sets up case i on dev at size n, or with n = 0 at the size where its tensors hold about
// `elements` words in all (0: DCL_CHECK_PERF_ELEMENTS).
dcl_status dcl_check_perf_init(dcl_check_perf **out, dcl_device *dev, int i, size_t n,
                               size_t elements);
const dcl_check_cost *dcl_check_perf_cost(const dcl_check_perf *f);
// Enqueues one call of the op (dcl_device_finish waits for it). In-out tensors drift from call to
// call (gradients accumulate, AdamW steps); the timing does not depend on their values.
dcl_status dcl_check_perf_run(dcl_check_perf *f);
void dcl_check_perf_free(dcl_check_perf *f);

// Two full training steps (the second's loss and every gradient tensor, every parameter after
// AdamW) of a small model of the given kind on dev and on the reference ref, same seed and data,
// each compared as a row passed to fn (names "train.mlp.loss", "train.unet.grad.conv_in.weight",
// ...). The U-Net's data is Fashion-MNIST: dcl_check_train_available says whether it is installed.
typedef void (*dcl_check_row_fn)(void *ctx, const dcl_check_result *r);
// With model (a checkpoint), its own network, config, data and weights instead (kind ignored).
dcl_status dcl_check_train_step(dcl_device *dev, dcl_device *ref, dcl_net_kind kind,
                                const char *model, dcl_check_row_fn fn, void *ctx);
int dcl_check_train_available(dcl_net_kind kind);

// Sampling trajectories of every sampler (ddpm, ddim with eta 0.5, euler, heun; 20 steps) with a
// small model on dev and on the reference ref from the same seed, compared after every step: one
// row per sampler, failing at the first step whose difference exceeds 2e-5 × step, and one row
// with the sliced W2 distance between the two sets of final samples.
// With model (a checkpoint), that model instead (8 samples of an image model).
dcl_status dcl_check_samplers(dcl_device *dev, dcl_device *ref, const char *model,
                              dcl_check_row_fn fn, void *ctx);

#endif
