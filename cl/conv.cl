// Convolution as GEMM on NCHW images: im2col and its adjoint col2im, the CNHW <-> NCHW axis swap,
// and the per-channel bias with its gradient. Sizes are below 2^32 (the host checks), so indices
// are uint. Divisions come with a subtraction, never a % of the same operands (see cl/embed.cl).

// Σ of v over the work-group, returned to every work-item; scratch holds get_local_size(0) floats.
// A tree for any local size (not only powers of two), as reduce.cl's GROUP_REDUCE. Every
// work-item of the group must call it (uniform control flow); the first barrier lets a previous
// call's readers of scratch[0] finish.
inline float group_sum(local float *scratch, float v) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    uint half_ = 1;
    while (half_ < lsz) half_ <<= 1;
    for (half_ >>= 1; half_ > 0; half_ >>= 1) {
        if (lid < half_ && lid + half_ < lsz) scratch[lid] += scratch[lid + half_];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    return scratch[0];
}

// col (C·k·k, N·Ho·Wo): col[(c·k + ky)·k + kx, (n·Ho + oy)·Wo + ox] =
// in[n, c, oy·s − pad + ky, ox·s − pad + kx], zero outside. One work-item per (c, n, oy, ox)
// writes its k·k column entries (Caffe's layout of the work): neighbouring work-items write
// neighbouring addresses, and the index arithmetic is paid once per k·k elements.
kernel void im2col(global float *col, uint col_off, global const float *in, uint in_off, uint N,
                   uint C, uint H, uint W, uint k, uint s, uint pad, uint Ho, uint Wo) {
    uint HWo = Ho * Wo, P = N * HWo;
    FOR_EACH(i, (size_t)C * P) {
        uint t = (uint)i, c = t / P, p = t - c * P;
        uint n = p / HWo, rp = p - n * HWo, oy = rp / Wo, ox = rp - oy * Wo;
        global const float *img = in + in_off + (n * C + c) * H * W;
        uint out = col_off + c * k * k * P + p;
        // In padded coordinates (y + pad), so everything stays unsigned.
        for (uint ky = 0; ky < k; ky++) {
            uint yp = oy * s + ky;
            int row_inside = yp >= pad && yp - pad < H;
            for (uint kx = 0; kx < k; kx++, out += P) {
                uint xp = ox * s + kx;
                float v = 0.0f;
                if (row_inside && xp >= pad && xp - pad < W) v = img[(yp - pad) * W + (xp - pad)];
                col[out] = v;
            }
        }
    }
}

// din (N, C, H, W): each pixel gathers the col entries it fed, in (ky, kx) order (no atomics, so
// the sums do not depend on scheduling; cpu_col2im adds in the same order). Overwrites din.
// Output row oy saw padded row yp = y + pad through kernel row ky when oy·s = yp − ky: the ky
// ≡ yp (mod s) from ky0 = yp mod s on, with oy counting down from yp / s.
kernel void col2im(global float *din, uint din_off, global const float *col, uint col_off, uint N,
                   uint C, uint H, uint W, uint k, uint s, uint pad, uint Ho, uint Wo) {
    uint HW = H * W, P = N * Ho * Wo;
    FOR_EACH(i, (size_t)N * C * HW) {
        uint t = (uint)i, nc = t / HW, q = t - nc * HW, y = q / W, x = q - y * W;
        uint n = nc / C, c = nc - n * C;
        uint yp = y + pad, xp = x + pad, oy0 = yp / s, ox0 = xp / s;
        uint ky0 = yp - oy0 * s, kx0 = xp - ox0 * s;
        global const float *cols = col + col_off + c * k * k * P + n * Ho * Wo;
        float acc = 0.0f;
        // ky <= yp keeps oy >= 0 (oy wraps only after the last pass, unused).
        for (uint ky = ky0, oy = oy0; ky < k && ky <= yp; ky += s, oy--) {
            if (oy >= Ho) continue;
            for (uint kx = kx0, ox = ox0; kx < k && kx <= xp; kx += s, ox--) {
                if (ox >= Wo) continue;
                acc += cols[(ky * k + kx) * P + oy * Wo + ox];
            }
        }
        din[din_off + i] = acc;
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
