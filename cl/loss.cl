// Losses of classifiers: the softmax cross-entropy, loss and gradient in one pass (the twin of
// host/device/cpu/cpu_loss.c, the same float operations in the same order).

// One work-item per row r, y = labels[r] (uint32 bits), m = max_k x[r, k], S = Σ_k exp(x − m):
// loss[r] = log S − (x[r, y] − m), dlogits[r, k] = (exp(x[r, k] − m) / S − [k = y])·scale
// (scale = 1/N from the host); a label >= K gives loss 0 and a zero row.
// loss (N); dlogits, logits (N, K); labels (N)
kernel void softmax_cross_entropy(global float *loss, uint loss_off, global float *dlogits,
                                  uint dlogits_off, global const float *logits, uint logits_off,
                                  global const uint *labels, uint labels_off, float scale, uint N,
                                  uint K) {
    FOR_EACH(r, N) {
        global const float *x = logits + logits_off + r * K;
        global float *d = dlogits + dlogits_off + r * K;
        uint y = labels[labels_off + r];
        if (y >= K) {
            loss[loss_off + r] = 0.0f;
            for (uint k = 0; k < K; k++) d[k] = 0.0f;
            continue;
        }
        float m = x[0];
        for (uint k = 1; k < K; k++)
            if (x[k] > m) m = x[k];
        float S = 0.0f;
        for (uint k = 0; k < K; k++) {
            d[k] = exp(x[k] - m);
            S += d[k];
        }
        loss[loss_off + r] = log(S) - (x[y] - m);
        for (uint k = 0; k < K; k++) d[k] = (d[k] / S - (k == y ? 1.0f : 0.0f)) * scale;
    }
}
