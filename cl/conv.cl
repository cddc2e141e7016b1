// Convolution as GEMM on NCHW images: im2col and its adjoint col2im (the GEMM runs in CLBlast;
// the CNHW <-> NCHW swap is cl/layout.cl's swap01, the bias cl/bias.cl's channel_bias_*, or both at
// once: conv_output below), and whole convolutions: direct kernels, and same convolutions on
// zero-bordered planes (last). Sizes are below 2^32 (the host checks), so indices are uint; no %
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
// and its whole dot product, so no columns are stored: the ops' shapes other than same
// convolutions (those run on padded planes, below), which the U-Net runs as im2col + GEMM
// (host/nn/layers.c). Geometry as im2col; w (Co, C, k, k).

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

// Same convolutions (stride 1, k = 2p + 1, Ho = H, Wo = W) on zero-bordered planes: each kernel
// tap (ky, kx) is a constant shift of one padded CNHW layout, so the convolution is a GEMM that
// reads its input in place, with no column matrix (conv2d_forward and conv2d_backward on OpenCL,
// host/device/opencl/cl_ops.c). Plane c of a padded tensor (C, L) holds in[n, c, y, x] at
// o + (n·Hp + y)·Wp + x, with Wp = W + p, Hp = H + p and o = p·Wp + p, and 0 everywhere else: the
// p zeros after each row are the left border of the next, the p zero rows after each image the
// top border of the next. Output position j ∈ [0, Q16) (Q16: N·Hp·Wp rounded up to 16) is
// plane position o + j; it reads tap (ky, kx) at j + ky·Wp + kx, within [0, L) (the host sizes
// L, a multiple of Wp). Positions on a border compute values that are never read.
#ifndef CONV_RM
#define CONV_RM 8 // output planes per work-item of conv_taps_* (the host assumes 8)
#endif

// out (C, L) = the padded planes of in (N, C, H, W). One work-item per (c, r): positions
// [r·Wp, r·Wp + Wp) of plane c are the p zeros after image row r − p − 1, then image row r − p
// (W pixels, or zeros on a border row).
kernel void conv_pad(global float *out, uint out_off, global const float *in, uint in_off, uint N,
                     uint C, uint H, uint W, uint p, uint L) {
    uint Wp = W + p, Hp = H + p, R = L / Wp;
    FOR_EACH(i, (size_t)C * R) {
        uint t = (uint)i, c = t / R, r = t - c * R, n = 0, y = H; // y = H: a border row
        if (r >= p && r - p < N * Hp) n = (r - p) / Hp, y = r - p - n * Hp;
        global float *dst = out + out_off + c * L + r * Wp;
        for (uint x = 0; x < p; x++) dst[x] = 0.0f;
        global const float *src = in + in_off + ((n * C + c) * H + y) * W;
        for (uint x = 0; x < W; x += 8)
            store8(dst + p, x, W, y < H ? load8(src, x, W) : (float8)(0.0f));
    }
}

// out (N, C, H, W) = the image positions of the padded planes src (C, L), + bias[c] + sbias[n, c]
// + res[n, c, y, x] added left to right, each term only when its bit of `has` is set (1, 2, 4),
// as conv_output adds them; res may be out. One work-item per row of an (n, c) plane, 8 columns
// at a time.
kernel void conv_unpad(global float *out, uint out_off, global const float *src, uint src_off,
                       global const float *bias, uint bias_off, global const float *sbias,
                       uint sbias_off, global const float *res, uint res_off, uint N, uint C,
                       uint H, uint W, uint p, uint L, uint has) {
    uint Wp = W + p, Hp = H + p, o = p * Wp + p;
    FOR_EACH(i, (size_t)N * C * H) {
        uint t = (uint)i, nc = t / H, y = t - nc * H, n = nc / C, c = nc - n * C;
        global const float *s = src + src_off + c * L + o + (n * Hp + y) * Wp;
        uint e = t * W;
        for (uint x = 0; x < W; x += 8) {
            float8 v = load8(s, x, W);
            if (has & 1u) v += bias[bias_off + c];
            if (has & 2u) v += sbias[sbias_off + nc];
            if (has & 4u) v += load8(res + res_off + e, x, W);
            store8(out + out_off + e, x, W, v);
        }
    }
}

// y (Co, L) at o + j, j ∈ [0, Q16) = Σ_{c, ky, kx} w[co, c, ky, kx]·(x (C, L) shifted by tap
// (ky, kx)). One work-item per block of CONV_RM output planes × 16 positions (as gemm_rows, with
// x's rows read in place): each output is one fma chain over (c, ky, kx) in order, the order of
// im2col's rows, so it is bitwise what im2col + gemm_rows give. Planes past Co repeat Co − 1 and
// are not stored.
kernel void conv_taps_forward(global float *y, uint y_off, global const float *x, uint x_off,
                              global const float *w, uint w_off, uint Co, uint C, uint k, uint Wp,
                              uint L, uint Q16) {
    uint kk = k * k, o = k / 2 * (Wp + 1), nbj = Q16 / 16, nbi = (Co + CONV_RM - 1) / CONV_RM;
    FOR_EACH(blk, (size_t)nbi * nbj) {
        uint bj = (uint)blk / nbi, bi = (uint)blk - bj * nbi, i0 = bi * CONV_RM, j0 = bj * 16;
        global const float *wr[CONV_RM];
#pragma unroll
        for (uint r = 0; r < CONV_RM; r++) wr[r] = w + w_off + min(i0 + r, Co - 1) * C * kk;
        float16 acc[CONV_RM];
#pragma unroll
        for (uint r = 0; r < CONV_RM; r++) acc[r] = (float16)(0.0f);
        global const float *xc = x + x_off + j0;
        for (uint c = 0, q = 0; c < C; c++, xc += L)
            for (uint ky = 0; ky < k; ky++)
                for (uint kx = 0; kx < k; kx++, q++) {
                    float16 bv = vload16(0, xc + ky * Wp + kx);
#pragma unroll
                    for (uint r = 0; r < CONV_RM; r++)
                        acc[r] = fma((float16)(wr[r][q]), bv, acc[r]);
                }
#pragma unroll
        for (uint r = 0; r < CONV_RM; r++)
            if (i0 + r < Co) vstore16(acc[r], 0, y + y_off + (i0 + r) * L + o + j0);
    }
}

// dx (C, L) at o + j = Σ_{ky, kx} (Σ_co w[co, c, ky, kx]·dy (Co, L) at o + j − (ky − p)·Wp −
// (kx − p)), the transposed convolution, dy's borders 0. As conv_taps_forward, with each tap's sum
// over co its own fma chain, added to the total in (ky, kx) order: bitwise what gemm_rows (Wᵀ·dy)
// + col2im give (a tap that reads only borders adds +0, as col2im's skipped terms).
kernel void conv_taps_data(global float *dx, uint dx_off, global const float *dy, uint dy_off,
                           global const float *w, uint w_off, uint Co, uint C, uint k, uint Wp,
                           uint L, uint Q16) {
    uint kk = k * k, p = k / 2, o = p * (Wp + 1), nbj = Q16 / 16;
    uint nbi = (C + CONV_RM - 1) / CONV_RM;
    FOR_EACH(blk, (size_t)nbi * nbj) {
        uint bj = (uint)blk / nbi, bi = (uint)blk - bj * nbi, i0 = bi * CONV_RM, j0 = bj * 16;
        global const float *wr[CONV_RM]; // w[co, c, t] = wr[c][co·C·kk + t]
#pragma unroll
        for (uint r = 0; r < CONV_RM; r++) wr[r] = w + w_off + min(i0 + r, C - 1) * kk;
        float16 tot[CONV_RM];
#pragma unroll
        for (uint r = 0; r < CONV_RM; r++) tot[r] = (float16)(0.0f);
        for (uint ky = 0, t = 0; ky < k; ky++)
            for (uint kx = 0; kx < k; kx++, t++) {
                global const float *d = dy + dy_off + j0 + (2 * p - ky) * Wp + (2 * p - kx);
                float16 acc[CONV_RM];
#pragma unroll
                for (uint r = 0; r < CONV_RM; r++) acc[r] = (float16)(0.0f);
                for (uint co = 0; co < Co; co++) {
                    float16 bv = vload16(0, d + co * L);
#pragma unroll
                    for (uint r = 0; r < CONV_RM; r++)
                        acc[r] = fma((float16)(wr[r][co * C * kk + t]), bv, acc[r]);
                }
#pragma unroll
                for (uint r = 0; r < CONV_RM; r++) tot[r] += acc[r];
            }
#pragma unroll
        for (uint r = 0; r < CONV_RM; r++)
            if (i0 + r < C) vstore16(tot[r], 0, dx + dx_off + (i0 + r) * L + o + j0);
    }
}

// The weight gradient's partial sums over chunks of KC positions (a multiple of 8, fixed by the
// host from the sizes alone): part[ch, co, c, t] = Σ_{j in chunk ch} dy[co, o + j]·x[c, j + ky·Wp
// + kx], t = ky·k + kx, dy's borders 0 (so only image positions add). One work-item per chunk,
// 4 output planes and 3 consecutive taps of one input plane, in float8 lanes (lane l adds the
// j ≡ l (mod 8) in order), folded by sum8. Planes and taps past the ends repeat the last one and
// are not stored.
kernel void conv_taps_weight(global float *part, uint part_off, global const float *dy, uint dy_off,
                             global const float *x, uint x_off, uint Co, uint C, uint k, uint Wp,
                             uint L, uint Q16, uint KC) {
    uint kk = k * k, o = k / 2 * (Wp + 1), nt = (kk + 2) / 3, nco = (Co + 3) / 4;
    uint nch = (Q16 + KC - 1) / KC, E = Co * C * kk;
    FOR_EACH(i, (size_t)nch * nco * C * nt) {
        uint u = (uint)i, v = u / nt, t0 = (u - v * nt) * 3, cb = v / C, c = v - cb * C;
        uint ch = cb / nco, co0 = (cb - ch * nco) * 4, j0 = ch * KC, j1 = min(j0 + KC, Q16);
        global const float *a[4], *b[3];
#pragma unroll
        for (uint r = 0; r < 4; r++) a[r] = dy + dy_off + min(co0 + r, Co - 1) * L + o;
#pragma unroll
        for (uint q = 0; q < 3; q++) {
            uint tq = min(t0 + q, kk - 1), ky = tq / k;
            b[q] = x + x_off + c * L + ky * Wp + (tq - ky * k);
        }
        float8 acc[4][3];
#pragma unroll
        for (uint r = 0; r < 4; r++)
#pragma unroll
            for (uint q = 0; q < 3; q++) acc[r][q] = (float8)(0.0f);
        for (uint j = j0; j < j1; j += 8) {
            float8 av[4], bv[3];
#pragma unroll
            for (uint r = 0; r < 4; r++) av[r] = vload8(0, a[r] + j);
#pragma unroll
            for (uint q = 0; q < 3; q++) bv[q] = vload8(0, b[q] + j);
#pragma unroll
            for (uint r = 0; r < 4; r++)
#pragma unroll
                for (uint q = 0; q < 3; q++) acc[r][q] = fma(av[r], bv[q], acc[r][q]);
        }
#pragma unroll
        for (uint r = 0; r < 4; r++)
#pragma unroll
            for (uint q = 0; q < 3; q++)
                if (co0 + r < Co && t0 + q < kk)
                    part[part_off + ch * E + ((co0 + r) * C + c) * kk + t0 + q] = sum8(acc[r][q]);
    }
}

// dw (E) += Σ_ch part[ch, e] over the nch chunks in order (conv_taps_weight's partial sums).
kernel void conv_taps_weight_sum(global float *dw, uint dw_off, global const float *part,
                                 uint part_off, uint E, uint nch) {
    FOR_EACH(e, E) {
        float s = 0.0f;
        for (uint ch = 0; ch < nch; ch++) s += part[part_off + ch * E + e];
        dw[dw_off + e] += s;
    }
}
