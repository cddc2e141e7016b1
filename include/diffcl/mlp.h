// The MLP denoiser for low-dimensional data (DESIGN §5): input x (D) and a sinusoidal embedding of
// t (E) → depth hidden layers of width H with ReLU or SiLU → output of x's size. Parameters live in
// one arena under PyTorch-style dotted names; forward saves what backward needs.
#ifndef DIFFCL_MLP_H
#define DIFFCL_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/arena.h"
#include "diffcl/device.h"

typedef enum dcl_activation { DCL_ACT_RELU = 0, DCL_ACT_SILU = 1 } dcl_activation;

typedef struct dcl_mlp_config {
    int dim;     // D: data dimension (input and output)
    int width;   // H: hidden width (default 128)
    int depth;   // hidden layers (default 3)
    int emb_dim; // E: sinusoidal time-embedding size, even (default 32)
    dcl_activation act;
} dcl_mlp_config;

typedef struct dcl_mlp dcl_mlp;

// Allocates parameters (initialised from Philox purpose DCL_RNG_INIT with `seed`, PyTorch's
// nn.Linear default: U(−1/√fan_in, 1/√fan_in) for weights and biases), gradients, and activations
// for batches up to max_batch.
dcl_status dcl_mlp_init(dcl_mlp **out, dcl_device *dev, const dcl_mlp_config *cfg, uint64_t seed,
                        size_t max_batch);
void dcl_mlp_free(dcl_mlp *m);
const dcl_mlp_config *dcl_mlp_get_config(const dcl_mlp *m);
dcl_arena *dcl_mlp_params(dcl_mlp *m); // the weights (training updates these; EMA copies them)
dcl_arena *dcl_mlp_grads(dcl_mlp *m);  // same layout as params

// out (N, D) = f(x (N, D), t (N)); saves activations for dcl_mlp_backward. N <= max_batch.
dcl_status dcl_mlp_forward(dcl_mlp *m, dcl_ptr out, dcl_ptr x, dcl_ptr t, size_t N);
// Accumulates (+=) the parameter gradients of Σ dout ⊙ out for the last forward. dout (N, D)
dcl_status dcl_mlp_backward(dcl_mlp *m, dcl_ptr dout, size_t N);
// Forward with parameters taken from another arena of the same layout (the EMA weights).
dcl_status dcl_mlp_forward_with(dcl_mlp *m, const dcl_arena *params, dcl_ptr out, dcl_ptr x,
                                dcl_ptr t, size_t N);

#endif
