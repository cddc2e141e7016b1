// Activations and their gradients. Backward kernels overwrite din (activation gradients).

kernel void relu_forward(global float *out, uint out_off, global const float *in, uint in_off,
                         uint n) {
    // x < 0 ? 0 : x keeps NaN as NaN (as the CPU reference and PyTorch do), so divergence shows.
    FOR_EACH(i, n) {
        float x = in[in_off + i];
        out[out_off + i] = x < 0.0f ? 0.0f : x;
    }
}

// din = dout · [in > 0]
kernel void relu_backward(global float *din, uint din_off, global const float *in, uint in_off,
                          global const float *dout, uint dout_off, uint n) {
    FOR_EACH(i, n) din[din_off + i] = in[in_off + i] > 0.0f ? dout[dout_off + i] : 0.0f;
}

// out = x σ(x)
kernel void silu_forward(global float *out, uint out_off, global const float *in, uint in_off,
                         uint n) {
    FOR_EACH(i, n) {
        float x = in[in_off + i];
        out[out_off + i] = x / (1.0f + exp(-x));
    }
}

// din = dout · σ(x) (1 + x (1 − σ(x)))
kernel void silu_backward(global float *din, uint din_off, global const float *in, uint in_off,
                          global const float *dout, uint dout_off, uint n) {
    FOR_EACH(i, n) {
        float x = in[in_off + i];
        float s = 1.0f / (1.0f + exp(-x));
        din[din_off + i] = dout[dout_off + i] * s * (1.0f + x * (1.0f - s));
    }
}
