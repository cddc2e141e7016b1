// Convolution as GEMM on NCHW images: im2col and its adjoint col2im (the GEMM runs in CLBlast;
// the CNHW <-> NCHW swap is cl/layout.cl's swap01, the bias cl/bias.cl's channel_bias_*, or both at
// once: conv_output below), and whole convolutions as direct kernels (last). Sizes are below 2^32
// (the host checks), so indices are uint; no %
// beside a / (cl/README.md).

// col (C·k·k, N·Ho·Wo): col[(c·k + ky)·k + kx, (n·Ho + oy)·Wo + ox] =
// in[n, c, oy·s − pad + ky, ox·s − pad + kx], zero outside. One work-item per (c, ky, kx, n) writes
// that sample's Ho·Wo contiguous entries row by row: zeros left of the image, a strided copy of one
// input row, zeros right of it. The index arithmetic is paid once per Ho·Wo elements and a CPU
// device runs plain copy loops (one work-item per (c, n, oy, ox) was 2-3x slower on PoCL).
kernel void im2col(global float *col, uint col_off, global const float *in, uint in_off, uint N,
                   uint C, uint H, uint W, uint k, uint s, uint pad, uint Ho, uint Wo) {
    uint P = N * Ho * Wo, kk = k * k;
    FOR_EACH(i, (size_t)C * kk * N) {
        uint t = (uint)i, ckk = t / N, n = t - ckk * N;
        uint c = ckk / kk, q = ckk - c * kk, ky = q / k, kx = q - ky * k;
        // In padded coordinates (x + pad), so everything stays unsigned: the columns ox in [lo, hi)
        // read xp = ox·s + kx within [pad, W + pad).
        uint lo = kx >= pad ? 0 : (pad - kx + s - 1) / s;
        uint hi = W + pad > kx ? min(Wo, (W + pad - kx + s - 1) / s) : 0;
        lo = min(lo, hi);
        global float *dst = col + col_off + ckk * P + n * Ho * Wo;
        global const float *img = in + in_off + (n * C + c) * H * W;
        for (uint oy = 0; oy < Ho; oy++, dst += Wo) {
            uint yp = oy * s + ky, ox = 0;
            if (yp < pad || yp - pad >= H) {
                for (; ox < Wo; ox++) dst[ox] = 0.0f;
                continue;
            }
            global const float *src = img + (yp - pad) * W; // ox >= lo keeps ox·s + kx − pad >= 0
            for (; ox < lo; ox++) dst[ox] = 0.0f;
            if (s == 1) // a plain copy, 8 at a time
                for (; ox + 8 <= hi; ox += 8)
                    vstore8(vload8(0, src + (ox + kx - pad)), 0, dst + ox);
            for (; ox < hi; ox++) dst[ox] = src[ox * s + kx - pad];
            for (; ox < Wo; ox++) dst[ox] = 0.0f;
        }
    }
}

// din (N, C, H, W): each pixel gathers the col entries it fed, in (ky, kx) order (no atomics, so
// the sums do not depend on scheduling; cpu_col2im adds in the same order). Overwrites din.
// Output row oy saw padded row yp = y + pad through kernel row ky when oy·s = yp − ky: the ky
// ≡ yp (mod s) from ky0 = yp mod s on, with oy counting down from yp / s. One work-item per 8
// neighbouring pixels of a row: with stride 1 their entries for one (ky, kx) are 8 neighbouring
// col entries, added as one float8 (a lane outside the image or the columns adds +0, which leaves
// a sum that started at +0 unchanged, so each pixel's sum is bitwise that of the pixel-by-pixel
// loop, which other strides run).
kernel void col2im(global float *din, uint din_off, global const float *col, uint col_off, uint N,
                   uint C, uint H, uint W, uint k, uint s, uint pad, uint Ho, uint Wo) {
    uint P = N * Ho * Wo, W8 = (W + 7) / 8;
    FOR_EACH(i, (size_t)N * C * H * W8) {
        uint t = (uint)i, row = t / W8, x0 = (t - row * W8) * 8, nc = row / H, y = row - nc * H;
        uint n = nc / C, c = nc - n * C, yp = y + pad;
        global const float *cols = col + col_off + c * k * k * P + n * Ho * Wo;
        float lane[8];
        if (s == 1) {
            float8 acc = (float8)(0.0f);
            // Pixel x = x0 + j took col column ox = x + pad − kx, for kx <= x + pad, ox < Wo;
            // ky <= yp keeps oy = yp − ky >= 0.
            for (uint ky = 0; ky < k && ky <= yp; ky++) {
                if (yp - ky >= Ho) continue;
                global const float *rowp = cols + ky * k * P + (yp - ky) * Wo;
                for (uint kx = 0; kx < k; kx++, rowp += P) {
                    if (x0 + pad >= kx && x0 + 7 + pad - kx < Wo && x0 + 8 <= W) {
                        acc += vload8(0, rowp + x0 + pad - kx);
                        continue;
                    }
                    for (uint j = 0; j < 8; j++) {
                        uint xp = x0 + j + pad;
                        lane[j] = x0 + j < W && xp >= kx && xp - kx < Wo ? rowp[xp - kx] : 0.0f;
                    }
                    acc += vload8(0, lane);
                }
            }
            vstore8(acc, 0, lane);
        } else {
            for (uint j = 0; j < 8 && x0 + j < W; j++) {
                uint xp = x0 + j + pad, oy0 = yp / s, ox0 = xp / s;
                uint ky0 = yp - oy0 * s, kx0 = xp - ox0 * s;
                float acc = 0.0f;
                // ky <= yp keeps oy >= 0 (oy wraps only after the last pass, unused).
                for (uint ky = ky0, oy = oy0; ky < k && ky <= yp; ky += s, oy--) {
                    if (oy >= Ho) continue;
                    for (uint kx = kx0, ox = ox0; kx < k && kx <= xp; kx += s, ox--) {
                        if (ox >= Wo) continue;
                        acc += cols[(ky * k + kx) * P + oy * Wo + ox];
                    }
                }
                lane[j] = acc;
            }
        }
        global float *out = din + din_off + row * W + x0;
        for (uint j = 0; j < 8 && x0 + j < W; j++) out[j] = lane[j];
    }
}

// A convolution's output from the GEMM's CNHW result, in one pass: out[n, c, r] = cnhw[c, n, r]
// + bias[c] + sbias[n, c] + res[n, c, r], added left to right, each term only when its bit of
// `has` is set (1 bias, 2 sbias, 4 res), so the sum rounds as swap01, channel_bias_add and axpby
// in turn. out (N, C, R); cnhw (C, N, R); bias (C); sbias (N, C); res (N, C, R), may be out (each
// element is read before it is written, by the same work-item). One work-item per 8 neighbouring
// elements of an (n, c) plane (float8, cl/common.h load8/store8): the divisions once per block.
kernel void conv_output(global float *out, uint out_off, global const float *cnhw, uint cnhw_off,
                        global const float *bias, uint bias_off, global const float *sbias,
                        uint sbias_off, global const float *res, uint res_off, uint N, uint C,
                        uint R, uint has) {
    uint R8 = (R + 7) / 8;
    FOR_EACH(i, (size_t)N * C * R8) {
        uint t = (uint)i, nc = t / R8, r = (t - nc * R8) * 8, n = nc / C, c = nc - n * C;
        float8 v = load8(cnhw + cnhw_off + (c * N + n) * R, r, R);
        if (has & 1u) v += bias[bias_off + c];
        if (has & 2u) v += sbias[sbias_off + nc];
        if (has & 4u) v += load8(res + res_off + nc * R, r, R);
        store8(out + out_off + nc * R, r, R, v);
    }
}

// Whole convolutions (conv2d_forward, conv2d_backward), direct: each work-item one output element
// and its whole dot product, so no columns are stored. The U-Net runs im2col + CLBlast's GEMM on
// OpenCL instead (host/nn/layers.c); these give the ops an OpenCL version to check the CPU
// reference's against (host/crosscheck/cases.c). Geometry as im2col; w (Co, C, k, k).

// out (N, Co, Ho, Wo) = Σ_{c, ky, kx} w[o, c, ky, kx]·in[n, c, oy·s − pad + ky, ox·s − pad + kx],
// then + bias[o], + sbias[n, o], + res[n, o, r] as conv_output adds them (`has` as there); res may
// be out (read before written, by the same work-item).
kernel void conv2d_forward(global float *out, uint out_off, global const float *in, uint in_off,
                           global const float *w, uint w_off, global const float *bias,
                           uint bias_off, global const float *sbias, uint sbias_off,
                           global const float *res, uint res_off, uint N, uint C, uint H, uint W,
                           uint k, uint s, uint pad, uint Ho, uint Wo, uint Co, uint has) {
    uint HWo = Ho * Wo;
    FOR_EACH(i, (size_t)N * Co * HWo) {
        uint t = (uint)i, no = t / HWo, r = t - no * HWo, n = no / Co, o = no - n * Co;
        uint oy = r / Wo, ox = r - oy * Wo;
        float acc = 0.0f;
        for (uint c = 0; c < C; c++) {
            global const float *img = in + in_off + (n * C + c) * H * W;
            global const float *wk = w + w_off + (o * C + c) * k * k;
            // In padded coordinates (y + pad), so everything stays unsigned.
            for (uint ky = 0; ky < k; ky++) {
                uint yp = oy * s + ky;
                if (yp < pad || yp - pad >= H) continue;
                for (uint kx = 0; kx < k; kx++) {
                    uint xp = ox * s + kx;
                    if (xp < pad || xp - pad >= W) continue;
                    acc += wk[ky * k + kx] * img[(yp - pad) * W + (xp - pad)];
                }
            }
        }
        if (has & 1u) acc += bias[bias_off + o];
        if (has & 2u) acc += sbias[sbias_off + no];
        if (has & 4u) acc += res[res_off + i];
        out[out_off + i] = acc;
    }
}

// dw (Co, C, k, k) += Σ_{n, oy, ox} dout[n, o, oy, ox]·in[n, c, oy·s − pad + ky, ox·s − pad + kx]:
// one work-item per weight, looping over the whole batch.
kernel void conv2d_backward_weight(global float *dw, uint dw_off, global const float *dout,
                                   uint dout_off, global const float *in, uint in_off, uint N,
                                   uint C, uint H, uint W, uint k, uint s, uint pad, uint Ho,
                                   uint Wo, uint Co) {
    uint kk = k * k, HWo = Ho * Wo;
    FOR_EACH(i, (size_t)Co * C * kk) {
        uint t = (uint)i, oc = t / kk, q = t - oc * kk, o = oc / C, c = oc - o * C;
        uint ky = q / k, kx = q - ky * k;
        float acc = 0.0f;
        for (uint n = 0; n < N; n++) {
            global const float *img = in + in_off + (n * C + c) * H * W;
            global const float *dy = dout + dout_off + (n * Co + o) * HWo;
            for (uint oy = 0; oy < Ho; oy++) {
                uint yp = oy * s + ky;
                if (yp < pad || yp - pad >= H) continue;
                for (uint ox = 0; ox < Wo; ox++) {
                    uint xp = ox * s + kx;
                    if (xp < pad || xp - pad >= W) continue;
                    acc += dy[oy * Wo + ox] * img[(yp - pad) * W + (xp - pad)];
                }
            }
        }
        dw[dw_off + i] += acc;
    }
}

// din (N, C, H, W) = Σ over the (ky, kx, o) that saw the pixel of w[o, c, ky, kx]·dout[n, o, oy, ox]
// (overwrites): col2im's gather of wᵀ·dout, without the columns.
kernel void conv2d_backward_data(global float *din, uint din_off, global const float *dout,
                                 uint dout_off, global const float *w, uint w_off, uint N, uint C,
                                 uint H, uint W, uint k, uint s, uint pad, uint Ho, uint Wo,
                                 uint Co) {
    uint HW = H * W, HWo = Ho * Wo;
    FOR_EACH(i, (size_t)N * C * HW) {
        uint t = (uint)i, nc = t / HW, q = t - nc * HW, y = q / W, x = q - y * W;
        uint n = nc / C, c = nc - n * C;
        uint yp = y + pad, xp = x + pad, oy0 = yp / s, ox0 = xp / s;
        uint ky0 = yp - oy0 * s, kx0 = xp - ox0 * s;
        float acc = 0.0f;
        // As col2im: ky <= yp keeps oy >= 0 (oy wraps only after the last pass, unused).
        for (uint ky = ky0, oy = oy0; ky < k && ky <= yp; ky += s, oy--) {
            if (oy >= Ho) continue;
            for (uint kx = kx0, ox = ox0; kx < k && kx <= xp; kx += s, ox--) {
                if (ox >= Wo) continue;
                for (uint o = 0; o < Co; o++)
                    acc += w[w_off + ((o * C + c) * k + ky) * k + kx] *
                           dout[dout_off + (n * Co + o) * HWo + oy * Wo + ox];
            }
        }
        din[din_off + i] = acc;
    }
}
