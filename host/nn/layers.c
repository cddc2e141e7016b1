// Linear and 2-D convolution layers (nn/layers.h): forward and backward as sequences of device ops,
// and the parameter initialisation and layout check the networks share.
#include "nn/layers.h"

#include <stdlib.h> // getenv
#include <string.h> // strcmp

#include "core/error.h"     // TRY, dcl__fail
#include "device/backend.h" // dcl__cl_conv_planes
#include "diffcl/ops.h" // dcl_gemm, dcl_bias_*, dcl_im2col, dcl_col2im, dcl_swap01, dcl_conv_output,
                        // channel bias, dcl_conv2d_*
#include "diffcl/rng.h" // DCL_RNG_INIT

dcl_status dcl__linear_forward(dcl_device *dev, dcl_ptr out, dcl_ptr in, dcl_ptr w, dcl_ptr b,
                               size_t N, size_t I, size_t O) {
    TRY(dcl_gemm(dev, out, in, w, 0, 1, N, O, I, 1.0f, 0.0f));
    return b.buf ? dcl_bias_add(dev, out, out, b, N, O) : DCL_OK;
}

dcl_status dcl__linear_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dw, dcl_ptr db, dcl_ptr dout,
                                dcl_ptr in, dcl_ptr w, size_t N, size_t I, size_t O,
                                enum dcl__grad_mode din_mode) {
    // dw (O, I) += doutᵀ (O, N) · in (N, I)
    TRY(dcl_gemm(dev, dw, dout, in, 1, 0, O, I, N, 1.0f, 1.0f));
    if (db.buf) TRY(dcl_bias_backward(dev, db, dout, N, O));
    if (!din.buf) return DCL_OK;
    // din (N, I) (+)= dout (N, O) · w (O, I)
    float beta = din_mode == DCL__GRAD_ADD ? 1.0f : 0.0f;
    return dcl_gemm(dev, din, dout, w, 0, 0, N, I, O, 1.0f, beta);
}

dcl__conv2d_shape dcl__conv2d_shape_make(size_t ci, size_t co, size_t k, size_t stride, size_t pad,
                                         size_t H, size_t W) {
    dcl__conv2d_shape s = {
        .ci = ci, .H = H, .W = W, .co = co, .k = k, .stride = stride, .pad = pad};
    s.Ho = (H + 2 * pad - k) / stride + 1, s.Wo = (W + 2 * pad - k) / stride + 1;
    return s;
}

size_t dcl__conv2d_col_size(const dcl__conv2d_shape *s) {
    return s->ci * s->k * s->k * s->Ho * s->Wo;
}

size_t dcl__conv2d_out_size(const dcl__conv2d_shape *s) { return s->co * s->Ho * s->Wo; }

size_t dcl__conv2d_plane_size(const dcl__conv2d_shape *s) {
    return (2 * s->ci + s->co) * (s->H + s->pad) * (s->W + s->pad);
}

static int forced_columns(void) {
    const char *env = getenv("DIFFCL_CONV_COLUMNS");
    return env && strcmp(env, "1") == 0;
}

int dcl__conv2d_uses_columns(const dcl_device *dev) {
    return forced_columns() || dcl_device_get_info(dev)->backend != DCL_BACKEND_CPU;
}

int dcl__conv2d_whole(const dcl_device *dev, const dcl__conv2d_shape *s) {
#ifdef DIFFCL_HAVE_OPENCL
    return s->stride == 1 && 2 * s->pad + 1 == s->k && !forced_columns() &&
           dcl_device_get_info(dev)->backend == DCL_BACKEND_OPENCL && dcl__cl_conv_planes(dev);
#else
    (void)dev, (void)s;
    return 0;
#endif
}

dcl_status dcl__conv2d_forward(dcl_device *dev, dcl_ptr out, dcl_ptr col, dcl_ptr cnhw, dcl_ptr in,
                               dcl_ptr w, dcl_ptr b, dcl_ptr sbias, dcl_ptr res, size_t N,
                               const dcl__conv2d_shape *s, size_t chunk) {
    size_t ci = s->ci, co = s->co, k = s->k, kk = ci * k * k;
    size_t ri = s->H * s->W, ro = s->Ho * s->Wo;
    if (!col.buf)
        return dcl_conv2d_forward(dev, out, in, w, b, sbias, res, N, ci, s->H, s->W, co, k,
                                  s->stride, s->pad);
    int whole = dcl__conv2d_whole(dev, s);
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        size_t n = N - n0 < chunk ? N - n0 : chunk;
        dcl_ptr x = dcl_ptr_add(in, n0 * ci * ri), y = dcl_ptr_add(out, n0 * co * ro);
        dcl_ptr sb = sbias.buf ? dcl_ptr_add(sbias, n0 * co) : sbias;
        dcl_ptr rs = res.buf ? dcl_ptr_add(res, n0 * co * ro) : res;
        if (whole) {
            TRY(dcl_conv2d_forward(dev, y, x, w, b, sb, rs, n, ci, s->H, s->W, co, k, s->stride,
                                   s->pad));
            continue;
        }
        TRY(dcl_im2col(dev, col, x, n, ci, s->H, s->W, k, s->stride, s->pad));
        // cnhw (co, n·Ho·Wo) = w (co, ci·k·k) · col (ci·k·k, n·Ho·Wo)
        TRY(dcl_gemm(dev, cnhw, w, col, 0, 0, co, n * ro, kk, 1.0f, 0.0f));
        // One pass instead of swap01 + a channel_bias_add per bias + axpby for the residual
        // (bitwise the same sums).
        TRY(dcl_conv_output(dev, y, cnhw, b, sb, rs, n, co, ro));
    }
    return DCL_OK;
}

dcl_status dcl__conv2d_backward(dcl_device *dev, dcl_ptr din, dcl_ptr dw, dcl_ptr db, dcl_ptr col,
                                dcl_ptr cnhw, dcl_ptr dout, dcl_ptr in, dcl_ptr w, size_t N,
                                const dcl__conv2d_shape *s, size_t chunk) {
    size_t ci = s->ci, co = s->co, k = s->k, kk = ci * k * k;
    size_t ri = s->H * s->W, ro = s->Ho * s->Wo;
    if (db.buf) TRY(dcl_channel_bias_backward(dev, db, dout, N, co, ro, 0));
    if (!col.buf)
        return dcl_conv2d_backward(dev, dw, din, dout, in, w, N, ci, s->H, s->W, co, k, s->stride,
                                   s->pad);
    int whole = dcl__conv2d_whole(dev, s);
    for (size_t n0 = 0; n0 < N; n0 += chunk) {
        size_t n = N - n0 < chunk ? N - n0 : chunk;
        if (whole) {
            TRY(dcl_conv2d_backward(dev, dw, din.buf ? dcl_ptr_add(din, n0 * ci * ri) : din,
                                    dcl_ptr_add(dout, n0 * co * ro), dcl_ptr_add(in, n0 * ci * ri),
                                    w, n, ci, s->H, s->W, co, k, s->stride, s->pad));
            continue;
        }
        TRY(dcl_swap01(dev, cnhw, dcl_ptr_add(dout, n0 * co * ro), n, co, ro));
        TRY(dcl_im2col(dev, col, dcl_ptr_add(in, n0 * ci * ri), n, ci, s->H, s->W, k, s->stride,
                       s->pad));
        // dw (co, ci·k·k) += cnhw (co, n·Ho·Wo) · colᵀ
        TRY(dcl_gemm(dev, dw, cnhw, col, 0, 1, co, kk, n * ro, 1.0f, 1.0f));
        if (!din.buf) continue;
        // col (ci·k·k, n·Ho·Wo) = wᵀ · cnhw, folded back onto the input positions.
        TRY(dcl_gemm(dev, col, w, cnhw, 1, 0, kk, n * ro, co, 1.0f, 0.0f));
        TRY(dcl_col2im(dev, dcl_ptr_add(din, n0 * ci * ri), col, n, ci, s->H, s->W, k, s->stride,
                       s->pad));
    }
    return DCL_OK;
}

dcl_status dcl__init_uniform(dcl_device *dev, dcl_ptr w, dcl_ptr scratch, float bound,
                             uint64_t seed, uint32_t step, size_t n) {
    TRY(dcl_rng_uniform(dev, w, seed, DCL_RNG_INIT, step, 0, n));
    TRY(dcl_fill(dev, scratch, 1.0f, n));
    return dcl_axpby(dev, w, w, scratch, 2.0f * bound, -bound, n);
}

dcl_status dcl__check_param_layout(const dcl_arena *params, const dcl_arena *own, dcl_device *dev,
                                   const char *what) {
    int same = params && params->buf && params->count == own->count && params->n == own->n &&
               dcl_buffer_device(params->buf) == dev;
    for (int i = 0; same && i < params->count; i++)
        same = params->views[i].off == own->views[i].off && params->views[i].n == own->views[i].n;
    if (same) return DCL_OK;
    return dcl__fail(DCL_ERR_ARG,
                     "%s: arena '%s' does not have the model's parameter layout on its device",
                     what, params && params->buf ? dcl_buffer_name(params->buf) : "(none)");
}
