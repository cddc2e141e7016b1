// A denoising network behind one interface: the MLP for low-dimensional points (mlp.h) or the
// U-Net for images (unet.h). The trainer, checkpoints and samplers see only this.
//
// Dimensions: N batch; D values per example (D for points, C·H·W for images).
#ifndef DIFFCL_NET_H
#define DIFFCL_NET_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/arena.h"
#include "diffcl/device.h"
#include "diffcl/mlp.h"
#include "diffcl/unet.h"

typedef enum dcl_net_kind { DCL_NET_MLP = 0, DCL_NET_UNET = 1 } dcl_net_kind;

typedef struct dcl_net_config {
    dcl_net_kind kind;
    dcl_mlp_config mlp;   // kind MLP
    dcl_unet_config unet; // kind UNET
} dcl_net_config;

typedef struct dcl_net dcl_net;

// "mlp" or "unet".
const char *dcl_net_kind_name(dcl_net_kind kind);
// Values per example (D).
size_t dcl_net_dim(const dcl_net_config *c);
// Classes of a conditional network (0: unconditional). Label K is the null class.
int dcl_net_num_classes(const dcl_net_config *c);

dcl_status dcl_net_init(dcl_net **out, dcl_device *dev, const dcl_net_config *cfg, uint64_t seed,
                        size_t max_batch);
void dcl_net_free(dcl_net *n);
dcl_arena *dcl_net_params(dcl_net *n);
dcl_arena *dcl_net_grads(dcl_net *n);
// PyTorch shape of parameter view i; returns its number of dimensions (0: not a view).
int dcl_net_tensor_shape(const dcl_net *n, int i, uint64_t shape[4]);

// out (N, D) = f(x (N, D), t (N), labels (N, uint32 bits; buf NULL: unconditional / null class)).
// params NULL: the network's own weights (saves what backward needs); otherwise another arena of
// the same layout, such as the EMA weights (forward only).
dcl_status dcl_net_forward(dcl_net *n, const dcl_arena *params, dcl_ptr out, dcl_ptr x, dcl_ptr t,
                           dcl_ptr labels, size_t N);
// Accumulates (+=) the parameter gradients of Σ dout ⊙ out for the last own-weights forward.
dcl_status dcl_net_backward(dcl_net *n, dcl_ptr dout, size_t N);

#endif
