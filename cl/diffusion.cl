// The diffusion training step's own ops: the forward process (noisy input and regression target
// from x0 and the noise) and the gradient of the weighted mean squared error against that target.

// xt = c0 x0 + c1 ε and target = c2 x0 + c3 ε, coef (N, 4) per row. xt, target, x0, eps (N, D)
kernel void forward_process(global float *xt, uint xt_off, global float *target, uint target_off,
                            global const float *x0, uint x0_off, global const float *eps,
                            uint eps_off, global const float *coef, uint coef_off, uint N, uint D) {
    FOR_EACH(i, (size_t)N * D) {
        size_t c = coef_off + (i / D) * 4;
        float x = x0[x0_off + i], e = eps[eps_off + i];
        xt[xt_off + i] = coef[c] * x + coef[c + 1] * e;
        target[target_off + i] = coef[c + 2] * x + coef[c + 3] * e;
    }
}

// dout = (scale w[r]) (pred − target), scale = 2 / (N·D) from the host (overwrites).
// dout, pred, target (N, D); w (N)
kernel void mse_backward(global float *dout, uint dout_off, global const float *pred, uint pred_off,
                         global const float *target, uint target_off, global const float *w,
                         uint w_off, float scale, uint N, uint D) {
    FOR_EACH(i, (size_t)N * D) {
        float sw = scale * w[w_off + i / D];
        dout[dout_off + i] = sw * (pred[pred_off + i] - target[target_off + i]);
    }
}
