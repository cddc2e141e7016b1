// Bias of a linear layer: forward add and its (accumulating) parameter gradient.

// out (N, D) = in (N, D) + bias (D); out may be in.
kernel void bias_add(global float *out, uint out_off, global const float *in, uint in_off,
                     global const float *bias, uint bias_off, uint N, uint D) {
    FOR_EACH(i, (size_t)N * D) out[out_off + i] = in[in_off + i] + bias[bias_off + i % D];
}

// dbias (D) += Σ_r dout (N, D)[r, d]: one work-item per feature, rows summed in order, so the
// result does not depend on the launch shape.
kernel void bias_backward(global float *dbias, uint dbias_off, global const float *dout,
                          uint dout_off, uint N, uint D) {
    FOR_EACH(d, D) {
        float acc = 0.0f;
        for (uint r = 0; r < N; r++) acc += dout[dout_off + (size_t)r * D + d];
        dbias[dbias_off + d] += acc;
    }
}
