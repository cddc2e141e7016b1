// The MLP denoiser for low-dimensional data such as 2-D points: input x (D) and a sinusoidal
// embedding of t (E) → depth hidden layers of width H with ReLU or SiLU → output of x's size.
// Parameters live in one arena under PyTorch-style dotted names; forward saves what backward needs.
//
// Dimension legend: N batch; D data dimension; E time-embedding size; H hidden width.
//
// The network: h0 = [x (N, D), time_embedding(t) (N, E)] (dcl_time_embedding) → depth hidden
// Linear layers of width H, each followed by the activation → output Linear (H → D). Linear is
// y = x Wᵀ + b with W (out, in), as torch.nn.Linear.
//
// Parameter names, in arena order (views 2i and 2i + 1), for i = 0..depth:
//   "layers.{i}.weight" (out_i, in_i), "layers.{i}.bias" (out_i)
// with in_0 = D + E, in_i = H otherwise, out_i = H for hidden layers and out_depth = D. Layers are
// numbered consecutively (layer `depth` is the output layer): an nn.Sequential of Linear and
// activation modules would number them 0, 2, 4, ..., so a PyTorch port renames them.
#ifndef DIFFCL_MLP_H
#define DIFFCL_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/arena.h"
#include "diffcl/device.h"

typedef enum dcl_activation { DCL_ACT_RELU = 0, DCL_ACT_SILU = 1 } dcl_activation;

typedef struct dcl_mlp_config {
    int dim;            // D: data dimension (input and output), at least 1
    int width;          // H: hidden width (default 128)
    int depth;          // hidden layers, 0..1000 (default 3)
    int emb_dim;        // E: sinusoidal time-embedding size, even, at least 2 (default 32)
    dcl_activation act; // of every hidden layer (default DCL_ACT_RELU)
} dcl_mlp_config;

typedef struct dcl_mlp dcl_mlp;

// The defaults above (those of `diffcl train`) for data of dimension `dim`.
void dcl_mlp_config_default(dcl_mlp_config *c, int dim);

// Allocates parameters (initialised from Philox purpose DCL_RNG_INIT with `seed`, PyTorch's
// nn.Linear default: U(−1/√fan_in, 1/√fan_in) for weights and biases), gradients, and activations
// for batches up to max_batch.
dcl_status dcl_mlp_init(dcl_mlp **out, dcl_device *dev, const dcl_mlp_config *cfg, uint64_t seed,
                        size_t max_batch);
void dcl_mlp_free(dcl_mlp *m);
const dcl_mlp_config *dcl_mlp_get_config(const dcl_mlp *m);
// Shape of parameter view i in PyTorch's convention (weight (out, in), bias (out)) into shape[];
// returns its number of dimensions (1 or 2), or 0 when i is not a view.
int dcl_mlp_tensor_shape(const dcl_mlp *m, int i, uint64_t shape[2]);
dcl_arena *dcl_mlp_params(dcl_mlp *m); // the weights (training updates these; EMA copies them)
dcl_arena *dcl_mlp_grads(dcl_mlp *m);  // same layout as params

// out (N, D) = f(x (N, D), t (N)); saves activations for dcl_mlp_backward. N <= max_batch.
// out may be x (x is consumed first).
dcl_status dcl_mlp_forward(dcl_mlp *m, dcl_ptr out, dcl_ptr x, dcl_ptr t, size_t N);
// Accumulates (+=) the parameter gradients of Σ dout ⊙ out for the last dcl_mlp_forward (not
// forward_with), into dcl_mlp_grads; N must be that forward's batch. dout (N, D) is only read.
dcl_status dcl_mlp_backward(dcl_mlp *m, dcl_ptr dout, size_t N);
// Forward with parameters taken from another arena of the same layout (the EMA weights), on the
// same device. It reuses the activation buffers, so a dcl_mlp_backward must follow a fresh
// dcl_mlp_forward.
dcl_status dcl_mlp_forward_with(dcl_mlp *m, const dcl_arena *params, dcl_ptr out, dcl_ptr x,
                                dcl_ptr t, size_t N);

#endif
