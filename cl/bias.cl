// Biases: of a linear layer on rows (N, D) and of a convolution per channel on (N, C, R), each
// with its (accumulating) parameter gradient.

// out (N, D) = in (N, D) + bias (D); out may be in. One work-item per 8 columns of a row (float8,
// cl/common.h): the index arithmetic once per 8 elements, not a 64-bit i % D for each.
kernel void bias_add(global float *out, uint out_off, global const float *in, uint in_off,
                     global const float *bias, uint bias_off, uint N, uint D) {
    uint D8 = (D + 7) / 8;
    FOR_EACH(t, (size_t)N * D8) {
        uint r = (uint)t / D8, d = ((uint)t - r * D8) * 8;
        float8 v = load8(in + in_off + r * D, d, D) + load8(bias + bias_off, d, D);
        store8(out + out_off + r * D, d, D, v);
    }
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

// out[n, c, r] = in[n, c, r] + bias[c] (per_sample 0) or + bias[n, c] (per_sample 1); out may be
// in. out, in (N, C, R)
kernel void channel_bias_add(global float *out, uint out_off, global const float *in, uint in_off,
                             global const float *bias, uint bias_off, uint N, uint C, uint R,
                             uint per_sample) {
    FOR_EACH(i, (size_t)N * C * R) {
        uint nc = (uint)i / R, c = nc - (nc / C) * C;
        out[out_off + i] = in[in_off + i] + bias[bias_off + (per_sample ? nc : c)];
    }
}

// per_sample 0: dbias[c] += Σ_{n,r} dout[n, c, r]; per_sample 1: dbias[n, c] = Σ_r dout[n, c, r].
// One work-group per sum (grid-stride over them, so any number of groups works): its work-items
// read neighbouring elements and fold them with group_sum, in an order fixed by the launch shape
// (deterministic, no atomics). scratch: one float per work-item.
kernel void channel_bias_backward(global float *dbias, uint dbias_off, global const float *dout,
                                  uint dout_off, uint N, uint C, uint R, uint per_sample,
                                  local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint sums = per_sample ? N * C : C, len = per_sample ? R : N * R;
    for (uint row = get_group_id(0); row < sums; row += get_num_groups(0)) {
        float acc = 0.0f;
        for (uint j = lid; j < len; j += lsz) {
            // per_sample: row (n, c) is contiguous; else element j = (n, r) of channel row.
            uint n = j / R, idx = per_sample ? row * R + j : (n * C + row) * R + (j - n * R);
            acc += dout[dout_off + idx];
        }
        float total = group_sum(scratch, acc);
        if (lid == 0) {
            if (per_sample) dbias[dbias_off + row] = total;
            else dbias[dbias_off + row] += total;
        }
    }
}
