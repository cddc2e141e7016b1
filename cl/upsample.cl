// Nearest-neighbour ×2 upsampling of NCHW images and its backward. Sizes are below 2^32 (the host
// checks), so indices are uint; no % beside a / (cl/README.md).

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
