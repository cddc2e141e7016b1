// GroupNorm (Wu & He) on NCHW: the forward with its saved statistics, and the backward as two
// kernels (the input gradient per group, the parameter gradients per channel). Group (n, g) is the
// M = C/G·R consecutive elements from (n·C + g·C/G)·R on. One work-group per group or channel
// (grid-stride over them): N·G rows of thousands of elements are too few to occupy a GPU with one
// work-item each, and a work-group reads its row in contiguous runs. Sums are trees in an order
// fixed by the launch shape (group_sum, cl/common.h), so results are deterministic; no atomics.

// Two passes per group (mean, then the mean square deviation from it: no cancellation of E[x²] −
// E[x]²), then out = (x − mean)·rstd·gamma[c] + beta[c]. out, in (N, C, R); mean, rstd (N, G)
kernel void group_norm_forward(global float *out, uint out_off, global float *mean, uint mean_off,
                               global float *rstd, uint rstd_off, global const float *in,
                               uint in_off, global const float *gamma, uint gamma_off,
                               global const float *beta, uint beta_off, uint N, uint C, uint R,
                               uint G, float eps, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint Cg = C / G, M = Cg * R;
    for (uint row = get_group_id(0); row < N * G; row += get_num_groups(0)) {
        uint base = row * M, c0 = (row - (row / G) * G) * Cg;
        float acc = 0.0f;
        for (uint j = lid; j < M; j += lsz) acc += in[in_off + base + j];
        float mu = group_sum(scratch, acc) / (float)M;
        acc = 0.0f;
        for (uint j = lid; j < M; j += lsz) {
            float d = in[in_off + base + j] - mu;
            acc += d * d;
        }
        float rs = rsqrt(group_sum(scratch, acc) / (float)M + eps);
        if (lid == 0) {
            mean[mean_off + row] = mu;
            rstd[rstd_off + row] = rs;
        }
        for (uint j = lid; j < M; j += lsz) {
            uint c = c0 + j / R;
            out[out_off + base + j] =
                (in[in_off + base + j] - mu) * rs * gamma[gamma_off + c] + beta[beta_off + c];
        }
    }
}

// din = rstd·(g − Σg/M − x̂·Σ g·x̂/M) per group, g = gamma[c]·dout, x̂ = (x − mean)·rstd
// (overwrites). din, dout, in (N, C, R); mean, rstd (N, G); gamma (C)
kernel void group_norm_backward_data(global float *din, uint din_off, global const float *dout,
                                     uint dout_off, global const float *in, uint in_off,
                                     global const float *mean, uint mean_off,
                                     global const float *rstd, uint rstd_off,
                                     global const float *gamma, uint gamma_off, uint N, uint C,
                                     uint R, uint G, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint Cg = C / G, M = Cg * R;
    for (uint row = get_group_id(0); row < N * G; row += get_num_groups(0)) {
        uint base = row * M, c0 = (row - (row / G) * G) * Cg;
        float mu = mean[mean_off + row], rs = rstd[rstd_off + row];
        float sg = 0.0f, sgx = 0.0f;
        for (uint j = lid; j < M; j += lsz) {
            float g = gamma[gamma_off + c0 + j / R] * dout[dout_off + base + j];
            sg += g;
            sgx += g * ((in[in_off + base + j] - mu) * rs);
        }
        sg = group_sum(scratch, sg) / (float)M;
        sgx = group_sum(scratch, sgx) / (float)M;
        for (uint j = lid; j < M; j += lsz) {
            float g = gamma[gamma_off + c0 + j / R] * dout[dout_off + base + j];
            float xhat = (in[in_off + base + j] - mu) * rs;
            din[din_off + base + j] = rs * (g - sg - xhat * sgx);
        }
    }
}

// dgamma[c] += Σ_{n,r} dout·x̂, dbeta[c] += Σ_{n,r} dout: one work-group per channel.
kernel void group_norm_backward_params(global float *dgamma, uint dgamma_off, global float *dbeta,
                                       uint dbeta_off, global const float *dout, uint dout_off,
                                       global const float *in, uint in_off,
                                       global const float *mean, uint mean_off,
                                       global const float *rstd, uint rstd_off, uint N, uint C,
                                       uint R, uint G, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint Cg = C / G;
    for (uint c = get_group_id(0); c < C; c += get_num_groups(0)) {
        uint g = c / Cg;
        float sdg = 0.0f, sdb = 0.0f;
        for (uint j = lid; j < N * R; j += lsz) {
            uint n = j / R, i = (n * C + c) * R + (j - n * R), st = n * G + g;
            float d = dout[dout_off + i];
            sdg += d * ((in[in_off + i] - mean[mean_off + st]) * rstd[rstd_off + st]);
            sdb += d;
        }
        sdg = group_sum(scratch, sdg);
        sdb = group_sum(scratch, sdb);
        if (lid == 0) {
            dgamma[dgamma_off + c] += sdg;
            dbeta[dbeta_off + c] += sdb;
        }
    }
}
