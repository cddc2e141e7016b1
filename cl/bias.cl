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
// take blocks of 8 neighbouring elements of one (n, c) plane (float8, lanes past R read 0; block b
// to work-item b mod lsz), fold them by sum8 and then group_sum, in an order fixed by the launch
// shape (deterministic, no atomics). scratch: one float per work-item.
kernel void channel_bias_backward(global float *dbias, uint dbias_off, global const float *dout,
                                  uint dout_off, uint N, uint C, uint R, uint per_sample,
                                  local float *scratch) {
    uint sums = per_sample ? N * C : C, planes = per_sample ? 1 : N, R8 = (R + 7) / 8;
    for (uint row = get_group_id(0); row < sums; row += get_num_groups(0)) {
        float8 acc = (float8)(0.0f);
        for (uint b = get_local_id(0); b < planes * R8; b += get_local_size(0)) {
            // per_sample: row (n, c) is one plane; else plane n of channel row.
            uint n = b / R8, r = (b - n * R8) * 8, base = per_sample ? row * R : (n * C + row) * R;
            acc += load8(dout + dout_off + base, r, R);
        }
        float total = group_sum(scratch, sum8(acc));
        if (get_local_id(0) == 0) {
            if (per_sample) dbias[dbias_off + row] = total;
            else dbias[dbias_off + row] += total;
        }
    }
}
