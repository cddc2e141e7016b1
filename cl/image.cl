// Image plumbing of the U-Net on NCHW tensors: nearest-neighbour ×2 upsampling and its backward,
// channel concatenation and its split, and the class-embedding lookup and its gradient. Sizes are
// below 2^32 (the host checks), so indices are uint; divisions come with a subtraction, never a %
// of the same operands (see cl/embed.cl).

// out (N, C, 2H, 2W): out[p, y, x] = in[p, y/2, x/2] with p = (n, c).
kernel void upsample2x_forward(global float *out, uint out_off, global const float *in, uint in_off,
                               uint N, uint C, uint H, uint W) {
    uint W2 = 2 * W, HW4 = 4 * H * W;
    FOR_EACH(i, (size_t)N * C * HW4) {
        uint t = (uint)i, p = t / HW4, q = t - p * HW4, y = q / W2, x = q - y * W2;
        out[out_off + i] = in[in_off + (p * H + y / 2) * W + x / 2];
    }
}

// din (N, C, H, W) = the 2×2 block sum of dout, added in row-major order (overwrites).
kernel void upsample2x_backward(global float *din, uint din_off, global const float *dout,
                                uint dout_off, uint N, uint C, uint H, uint W) {
    uint HW = H * W, W2 = 2 * W;
    FOR_EACH(i, (size_t)N * C * HW) {
        uint t = (uint)i, p = t / HW, q = t - p * HW, y = q / W, x = q - y * W;
        uint d = dout_off + (p * 2 * H + 2 * y) * W2 + 2 * x;
        din[din_off + i] = dout[d] + dout[d + 1] + dout[d + W2] + dout[d + W2 + 1];
    }
}

// out (N, C1 + C2, R) = [a (N, C1, R), b (N, C2, R)]: per sample, a's C1·R block, then b's.
kernel void concat_channels(global float *out, uint out_off, global const float *a, uint a_off,
                            global const float *b, uint b_off, uint N, uint C1, uint C2, uint R) {
    uint A = C1 * R, B = C2 * R, S = A + B;
    FOR_EACH(i, (size_t)N * S) {
        uint t = (uint)i, n = t / S, q = t - n * S;
        out[out_off + i] = q < A ? a[a_off + n * A + q] : b[b_off + n * B + (q - A)];
    }
}

// da (N, C1, R), db (N, C2, R) = the two channel blocks of dout (N, C1 + C2, R) (overwrite).
// One work-item per dout element, writing it to da or db.
kernel void split_channels(global float *da, uint da_off, global float *db, uint db_off,
                           global const float *dout, uint dout_off, uint N, uint C1, uint C2,
                           uint R) {
    uint A = C1 * R, B = C2 * R, S = A + B;
    FOR_EACH(i, (size_t)N * S) {
        uint t = (uint)i, n = t / S, q = t - n * S;
        float v = dout[dout_off + i];
        if (q < A) da[da_off + n * A + q] = v;
        else db[db_off + n * B + (q - A)] = v;
    }
}

// out (N, E): out[n, e] = table[labels[n], e], or 0 when labels[n] >= K. labels (N) as uint bits.
kernel void embedding_forward(global float *out, uint out_off, global const float *table,
                              uint table_off, global const uint *labels, uint labels_off, uint N,
                              uint K, uint E) {
    FOR_EACH(i, (size_t)N * E) {
        uint t = (uint)i, n = t / E, e = t - n * E, label = labels[labels_off + n];
        out[out_off + i] = label < K ? table[table_off + label * E + e] : 0.0f;
    }
}

// dtable[k, e] += Σ_{n: labels[n] = k} dout[n, e]: one work-item per table element gathers over
// the batch in order (deterministic, no atomics). dtable (K, E); dout (N, E)
kernel void embedding_backward(global float *dtable, uint dtable_off, global const float *dout,
                               uint dout_off, global const uint *labels, uint labels_off, uint N,
                               uint K, uint E) {
    FOR_EACH(i, (size_t)K * E) {
        uint t = (uint)i, k = t / E, e = t - k * E;
        float acc = 0.0f;
        for (uint n = 0; n < N; n++)
            if (labels[labels_off + n] == k) acc += dout[dout_off + n * E + e];
        dtable[dtable_off + i] += acc;
    }
}
