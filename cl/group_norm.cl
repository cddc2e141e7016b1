// GroupNorm (Wu & He) on NCHW: the forward with its saved statistics, and the backward as two
// kernels (the input gradient per group, the parameter gradients per channel). Group (n, g) is the
// M = C/G·R consecutive elements from (n·C + g·C/G)·R on. One work-group per group or channel
// (grid-stride over them): N·G rows of thousands of elements are too few to occupy a GPU with one
// work-item each, and a work-group reads its row in contiguous runs. Sums are trees in an order
// fixed by the launch shape (group_sum, cl/common.h), so results are deterministic; no atomics.

// Each row is walked in blocks of 8 neighbouring elements of one channel (float8; a channel's
// short last block reads 0 past R, cl/common.h load8), block b of a row going to work-item
// b mod lsz: the index arithmetic is paid once per 8 elements and PoCL runs the loops as SIMD code
// (per-element scalar loops with a division each cost 10x the CPU reference's time there). The
// work-item folds its float8 by sum8 (cl/common.h) before the group's tree.

// Two passes per group (mean, then the mean square deviation from it: no cancellation of E[x²] −
// E[x]²), then out = (x − mean)·rstd·gamma[c] + beta[c]. out, in (N, C, R); mean, rstd (N, G)
kernel void group_norm_forward(global float *out, uint out_off, global float *mean, uint mean_off,
                               global float *rstd, uint rstd_off, global const float *in,
                               uint in_off, global const float *gamma, uint gamma_off,
                               global const float *beta, uint beta_off, uint N, uint C, uint R,
                               uint G, float eps, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint Cg = C / G, M = Cg * R, R8 = (R + 7) / 8, B = Cg * R8;
    for (uint row = get_group_id(0); row < N * G; row += get_num_groups(0)) {
        uint c0 = (row - (row / G) * G) * Cg;
        global const float *x = in + in_off + row * M;
        float8 acc = (float8)(0.0f);
        for (uint b = lid; b < B; b += lsz) {
            uint cc = b / R8, r = (b - cc * R8) * 8;
            acc += load8(x + cc * R, r, R);
        }
        float mu = group_sum(scratch, sum8(acc)) / (float)M;
        acc = (float8)(0.0f);
        for (uint b = lid; b < B; b += lsz) {
            uint cc = b / R8, r = (b - cc * R8) * 8;
            float8 d = load8_or(x + cc * R, r, R, mu) - mu; // lanes past R: mu − mu = 0
            acc += d * d;
        }
        float rs = rsqrt(group_sum(scratch, sum8(acc)) / (float)M + eps);
        if (lid == 0) {
            mean[mean_off + row] = mu;
            rstd[rstd_off + row] = rs;
        }
        for (uint b = lid; b < B; b += lsz) {
            uint cc = b / R8, r = (b - cc * R8) * 8;
            float ga = gamma[gamma_off + c0 + cc], be = beta[beta_off + c0 + cc];
            float8 v = (load8(x + cc * R, r, R) - mu) * rs * ga + be;
            store8(out + out_off + row * M + cc * R, r, R, v);
        }
    }
}

// din = rstd·(g − Σg/M − x̂·Σ g·x̂/M) per group, g = gamma[c]·dout, x̂ = (x − mean)·rstd
// (overwrites). din, dout, in (N, C, R); mean, rstd (N, G); gamma (C). A block's lanes past R
// read dout = 0, so g = 0 and they add nothing.
kernel void group_norm_backward_data(global float *din, uint din_off, global const float *dout,
                                     uint dout_off, global const float *in, uint in_off,
                                     global const float *mean, uint mean_off,
                                     global const float *rstd, uint rstd_off,
                                     global const float *gamma, uint gamma_off, uint N, uint C,
                                     uint R, uint G, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint Cg = C / G, M = Cg * R, R8 = (R + 7) / 8, B = Cg * R8;
    for (uint row = get_group_id(0); row < N * G; row += get_num_groups(0)) {
        uint c0 = (row - (row / G) * G) * Cg;
        global const float *x = in + in_off + row * M, *dy = dout + dout_off + row * M;
        float mu = mean[mean_off + row], rs = rstd[rstd_off + row];
        float8 sg8 = (float8)(0.0f), sgx8 = (float8)(0.0f);
        for (uint b = lid; b < B; b += lsz) {
            uint cc = b / R8, r = (b - cc * R8) * 8;
            float8 g = gamma[gamma_off + c0 + cc] * load8(dy + cc * R, r, R);
            sg8 += g;
            sgx8 += g * ((load8(x + cc * R, r, R) - mu) * rs);
        }
        float sg = group_sum(scratch, sum8(sg8)) / (float)M;
        float sgx = group_sum(scratch, sum8(sgx8)) / (float)M;
        for (uint b = lid; b < B; b += lsz) {
            uint cc = b / R8, r = (b - cc * R8) * 8;
            float8 g = gamma[gamma_off + c0 + cc] * load8(dy + cc * R, r, R);
            float8 xhat = (load8(x + cc * R, r, R) - mu) * rs;
            store8(din + din_off + row * M + cc * R, r, R, rs * (g - sg - xhat * sgx));
        }
    }
}

// dgamma[c] += Σ_{n,r} dout·x̂, dbeta[c] += Σ_{n,r} dout: one work-group per channel, its blocks
// of 8 taken sample by sample (lanes past R read dout = 0 and add nothing).
kernel void group_norm_backward_params(global float *dgamma, uint dgamma_off, global float *dbeta,
                                       uint dbeta_off, global const float *dout, uint dout_off,
                                       global const float *in, uint in_off,
                                       global const float *mean, uint mean_off,
                                       global const float *rstd, uint rstd_off, uint N, uint C,
                                       uint R, uint G, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint Cg = C / G, R8 = (R + 7) / 8;
    for (uint c = get_group_id(0); c < C; c += get_num_groups(0)) {
        uint g = c / Cg;
        float8 sdg = (float8)(0.0f), sdb = (float8)(0.0f);
        for (uint b = lid; b < N * R8; b += lsz) {
            uint n = b / R8, r = (b - n * R8) * 8, i = (n * C + c) * R, st = n * G + g;
            float8 d = load8(dout + dout_off + i, r, R);
            sdg += d * ((load8(in + in_off + i, r, R) - mean[mean_off + st]) * rstd[rstd_off + st]);
            sdb += d;
        }
        float tg = group_sum(scratch, sum8(sdg));
        float tb = group_sum(scratch, sum8(sdb));
        if (lid == 0) {
            dgamma[dgamma_off + c] += tg;
            dbeta[dbeta_off + c] += tb;
        }
    }
}
