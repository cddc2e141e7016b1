// The CPU reference's fused ops (include/diffcl/ops.h, "fused ops"): each one pass over memory
// with the roundings, in order, of the op sequence it replaces, so its result is bitwise the same.
#include "device/cpu/cpu_impl.h"

static float *fptr(dcl_ptr p) { return (float *)p.buf->handle + p.off; }

// out[n, c, r] = cnhw[c, n, r] (+ bias[c]) (+ sbias[n, c]) (+ res[n, c, r]); a term is present
// when its view is not empty. res may be out.
dcl_status dcl__cpu_conv_output(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t N = a->p.chan.N, C = a->p.chan.C, R = a->p.chan.R;
    float *out = fptr(a->out[0]);
    const float *cnhw = fptr(a->in[0]), *bias = a->in_len[1] ? fptr(a->in[1]) : NULL;
    const float *sbias = a->in_len[2] ? fptr(a->in[2]) : NULL;
    const float *res = a->in_len[3] ? fptr(a->in[3]) : NULL;
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++) {
            size_t nc = n * C + c;
            float *o = out + nc * R;
            const float *x = cnhw + (c * N + n) * R, *y = res ? res + nc * R : NULL;
            float b = bias ? bias[c] : 0.0f, s = sbias ? sbias[nc] : 0.0f;
            // y may be o: each element is read before it is written.
            for (size_t r = 0; r < R; r++) {
                float v = x[r];
                if (bias) v += b;
                if (sbias) v += s;
                if (y) v += y[r];
                o[r] = v;
            }
        }
    return DCL_OK;
}
