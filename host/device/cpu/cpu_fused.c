// The CPU reference's fused ops (include/diffcl/ops.h, "fused ops"): each one pass over memory
// with the roundings, in order, of the op sequence it replaces, so its result is bitwise the same.
#include "device/cpu/cpu_impl.h"

static float *fptr(dcl_ptr p) { return (float *)p.buf->handle + p.off; }

// One output row o[r] = x[r] (+ b) (+ s) (+ y[r]). Called with constant flags, so each call is
// compiled to a branch-free loop; y may be o (each element is read before it is written).
static inline void conv_output_row(float *o, const float *x, const float *y, float b, float s,
                                   size_t R, int has_b, int has_s, int has_y) {
    for (size_t r = 0; r < R; r++) {
        float v = x[r];
        if (has_b) v += b;
        if (has_s) v += s;
        if (has_y) v += y[r];
        o[r] = v;
    }
}

void dcl__cpu_conv_output_rows(float *o, const float *x, size_t ldx, const float *y, float b,
                               float s, size_t rows, size_t R, int has) {
    for (size_t i = 0; i < rows; i++, o += R, x += ldx, y = y ? y + R : NULL) switch (has) {
        case 0: conv_output_row(o, x, y, b, s, R, 0, 0, 0); break;
        case 1: conv_output_row(o, x, y, b, s, R, 1, 0, 0); break;
        case 2: conv_output_row(o, x, y, b, s, R, 0, 1, 0); break;
        case 3: conv_output_row(o, x, y, b, s, R, 1, 1, 0); break;
        case 4: conv_output_row(o, x, y, b, s, R, 0, 0, 1); break;
        case 5: conv_output_row(o, x, y, b, s, R, 1, 0, 1); break;
        case 6: conv_output_row(o, x, y, b, s, R, 0, 1, 1); break;
        default: conv_output_row(o, x, y, b, s, R, 1, 1, 1); break;
        }
}

void dcl__cpu_conv_output_plane(float *o, const float *x, const float *y, float b, float s,
                                size_t R, int has) {
    dcl__cpu_conv_output_rows(o, x, R, y, b, s, 1, R, has);
}

// out[n, c, r] = cnhw[c, n, r] (+ bias[c]) (+ sbias[n, c]) (+ res[n, c, r]); a term is present
// when its view is not empty. res may be out.
dcl_status dcl__cpu_conv_output(void *ctx, const struct dcl_op_args *a) {
    (void)ctx;
    size_t N = a->p.chan.N, C = a->p.chan.C, R = a->p.chan.R;
    float *out = fptr(a->out[0]);
    const float *cnhw = fptr(a->in[0]), *bias = a->in_len[1] ? fptr(a->in[1]) : NULL;
    const float *sbias = a->in_len[2] ? fptr(a->in[2]) : NULL;
    const float *res = a->in_len[3] ? fptr(a->in[3]) : NULL;
    int has = (bias ? 1 : 0) | (sbias ? 2 : 0) | (res ? 4 : 0);
    for (size_t n = 0; n < N; n++)
        for (size_t c = 0; c < C; c++) {
            size_t nc = n * C + c;
            float *o = out + nc * R;
            const float *x = cnhw + (c * N + n) * R, *y = res ? res + nc * R : NULL;
            float b = bias ? bias[c] : 0.0f, s = sbias ? sbias[nc] : 0.0f;
            dcl__cpu_conv_output_plane(o, x, y, b, s, R, has);
        }
    return DCL_OK;
}
