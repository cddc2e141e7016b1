// Layout: ops that move elements without arithmetic (every result is a copy, bitwise): column
// and channel concatenation with its split, and the swap of two leading axes. Sizes are below 2^32
// (the host checks), so indices are uint; no % beside a / (cl/README.md).

// out (N, D1 + D2) = [a (N, D1), b (N, D2)] row by row: a copy, bitwise.
kernel void concat_cols(global float *out, uint out_off, global const float *a, uint a_off,
                        global const float *b, uint b_off, uint N, uint D1, uint D2) {
    uint W = D1 + D2;
    FOR_EACH(i, (size_t)N * W) {
        size_t r = i / W;
        uint c = (uint)(i - r * W); // not i % W (cl/README.md)
        out[out_off + i] = c < D1 ? a[a_off + r * D1 + c] : b[b_off + r * D2 + (c - D1)];
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

// out (B, A, R) = in (A, B, R) with the first two axes swapped: a copy, bitwise. One work-item per
// output element, so the writes are contiguous and the reads contiguous within runs of R.
kernel void swap01(global float *out, uint out_off, global const float *in, uint in_off, uint A,
                   uint B, uint R) {
    FOR_EACH(i, (size_t)A * B * R) {
        uint t = (uint)i, ba = t / R, r = t - ba * R, b = ba / A, a = ba - b * A;
        out[out_off + i] = in[in_off + (a * B + b) * R + r];
    }
}
