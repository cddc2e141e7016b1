// Activations and their gradients. Backward kernels overwrite din (activation gradients). Each
// work-item takes 8 neighbouring elements as a float8 (FOR_EACH8, cl/common.h): every lane computes
// what the scalar formula does, so a result does not depend on the launch shape, and PoCL runs exp
// as SIMD code (the scalar loop, not vectorised, cost 2-3x the CPU reference's time).

kernel void relu_forward(global float *out, uint out_off, global const float *in, uint in_off,
                         uint n) {
    // x < 0 ? 0 : x keeps NaN as NaN (as the CPU reference and PyTorch do), so divergence shows.
    FOR_EACH8(i, n) {
        float8 x = load8(in + in_off, i, n);
        store8(out + out_off, i, n, select(x, (float8)(0.0f), x < 0.0f));
    }
}

// din = dout · [in > 0]
kernel void relu_backward(global float *din, uint din_off, global const float *in, uint in_off,
                          global const float *dout, uint dout_off, uint n) {
    FOR_EACH8(i, n) {
        float8 x = load8(in + in_off, i, n), d = load8(dout + dout_off, i, n);
        store8(din + din_off, i, n, select((float8)(0.0f), d, x > 0.0f));
    }
}

// out = x σ(x)
kernel void silu_forward(global float *out, uint out_off, global const float *in, uint in_off,
                         uint n) {
    FOR_EACH8(i, n) {
        float8 x = load8(in + in_off, i, n);
        store8(out + out_off, i, n, x / (1.0f + exp(-x)));
    }
}

// din = dout · σ(x) (1 + x (1 − σ(x)))
kernel void silu_backward(global float *din, uint din_off, global const float *in, uint in_off,
                          global const float *dout, uint dout_off, uint n) {
    FOR_EACH8(i, n) {
        float8 x = load8(in + in_off, i, n), d = load8(dout + dout_off, i, n);
        float8 s = 1.0f / (1.0f + exp(-x));
        store8(din + din_off, i, n, d * s * (1.0f + x * (1.0f - s)));
    }
}
