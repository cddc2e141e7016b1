// The network interface: a tagged pointer to the MLP or the U-Net. Two kinds do not need a
// function table; a switch per call reads more plainly.
#include <stdlib.h>

#include "core/error.h"
#include "diffcl/net.h"

struct dcl_net {
    dcl_net_kind kind;
    dcl_mlp *mlp;
    dcl_unet *unet;
};

const char *dcl_net_kind_name(dcl_net_kind kind) { return kind == DCL_NET_UNET ? "unet" : "mlp"; }

size_t dcl_net_dim(const dcl_net_config *c) {
    if (c->kind == DCL_NET_UNET)
        return (size_t)c->unet.channels * (size_t)c->unet.height * (size_t)c->unet.width;
    return (size_t)c->mlp.dim;
}

int dcl_net_num_classes(const dcl_net_config *c) {
    return c->kind == DCL_NET_UNET ? c->unet.num_classes : 0;
}

dcl_status dcl_net_init(dcl_net **out, dcl_device *dev, const dcl_net_config *cfg, uint64_t seed,
                        size_t max_batch) {
    *out = NULL;
    dcl_net *n = calloc(1, sizeof *n);
    if (!n) return dcl__fail(DCL_ERR_NOMEM, "out of host memory for a network");
    n->kind = cfg->kind;
    dcl_status s = cfg->kind == DCL_NET_UNET
                       ? dcl_unet_init(&n->unet, dev, &cfg->unet, seed, max_batch)
                       : dcl_mlp_init(&n->mlp, dev, &cfg->mlp, seed, max_batch);
    if (s != DCL_OK) {
        free(n);
        return s;
    }
    *out = n;
    return DCL_OK;
}

void dcl_net_free(dcl_net *n) {
    if (!n) return;
    dcl_mlp_free(n->mlp);
    dcl_unet_free(n->unet);
    free(n);
}

dcl_arena *dcl_net_params(dcl_net *n) {
    return n->kind == DCL_NET_UNET ? dcl_unet_params(n->unet) : dcl_mlp_params(n->mlp);
}

dcl_arena *dcl_net_grads(dcl_net *n) {
    return n->kind == DCL_NET_UNET ? dcl_unet_grads(n->unet) : dcl_mlp_grads(n->mlp);
}

int dcl_net_tensor_shape(const dcl_net *n, int i, uint64_t shape[4]) {
    return n->kind == DCL_NET_UNET ? dcl_unet_tensor_shape(n->unet, i, shape)
                                   : dcl_mlp_tensor_shape(n->mlp, i, shape);
}

dcl_status dcl_net_forward(dcl_net *n, const dcl_arena *params, dcl_ptr out, dcl_ptr x, dcl_ptr t,
                           dcl_ptr labels, size_t N) {
    if (n->kind == DCL_NET_UNET) return dcl_unet_forward(n->unet, params, out, x, t, labels, N);
    if (labels.buf)
        return dcl__fail(DCL_ERR_ARG, "the mlp network is unconditional: it takes no labels");
    return params ? dcl_mlp_forward_with(n->mlp, params, out, x, t, N)
                  : dcl_mlp_forward(n->mlp, out, x, t, N);
}

dcl_status dcl_net_backward(dcl_net *n, dcl_ptr dout, size_t N) {
    return n->kind == DCL_NET_UNET ? dcl_unet_backward(n->unet, dout, N)
                                   : dcl_mlp_backward(n->mlp, dout, N);
}
