// Scaled dot-product self-attention over the positions of an image (the twin of
// host/device/cpu/cpu_attention.c: the same float operations in the same order). qkv (N, 3C, R):
// queries, keys and values of sample n, head h at channels h·d … h·d + d − 1 of each part,
// d = C / heads. One work-item per query row (or key row), no local memory, no barriers: every
// sum runs in a fixed order inside one work-item, so results do not depend on the launch shape.

// The work-item's accumulators: channels are done in blocks of this many, each block a pass
// over the other rows that recomputes the scores (d <= 16 is one pass; d = 64, four).
#define ATTN_BLOCK 16

// (Σ_c x[c·R + i]·y[c·R + j])·scale over c < d in order.
inline float attn_dot(global const float *x, global const float *y, uint i, uint j, uint d, uint R,
                      float scale) {
    float s = 0.0f;
    for (uint c = 0; c < d; c++) s += x[c * R + i] * y[c * R + j];
    return s * scale;
}

// Four attn_dots at once: over the columns j … j + 3 of y (attn_dot4), over the columns
// i … i + 3 of x (attn_dot4x), or of x and y alike (attn_diag4). Each lane is the same sum in
// the same order as attn_dot's; four independent chains keep a CPU device's adders busy where one
// chain would wait on each add.
inline float4 attn_dot4(global const float *x, global const float *y, uint i, uint j, uint d,
                        uint R, float scale) {
    float4 s = (float4)(0.0f);
    for (uint c = 0; c < d; c++) s += x[c * R + i] * vload4(0, y + c * R + j);
    return s * scale;
}

inline float4 attn_dot4x(global const float *x, global const float *y, uint i, uint j, uint d,
                         uint R, float scale) {
    float4 s = (float4)(0.0f);
    for (uint c = 0; c < d; c++) s += vload4(0, x + c * R + i) * y[c * R + j];
    return s * scale;
}

inline float4 attn_diag4(global const float *x, global const float *y, uint i, uint d, uint R) {
    float4 s = (float4)(0.0f);
    for (uint c = 0; c < d; c++) s += vload4(0, x + c * R + i) * vload4(0, y + c * R + i);
    return s;
}

// One work-item per row r = (n·heads + h)·R + i: S[i, j] = attn_dot(q, k)·scale, m = max_j,
// l = Σ_j exp(S − m), out[h·d + c, i] = (Σ_j exp(S − m)·v[c, j]) / l, lse = m + log l.
// out (N, C, R); lse (N, heads, R); qkv (N, 3C, R); scale = 1/√d from the host
kernel void attention_forward(global float *out, uint out_off, global float *lse, uint lse_off,
                              global const float *qkv, uint qkv_off, float scale, uint N,
                              uint heads, uint C, uint R) {
    uint d = C / heads;
    FOR_EACH(r, (size_t)N * heads * R) {
        uint nh = (uint)r / R, i = (uint)r - nh * R, n = nh / heads, h = nh - n * heads;
        global const float *q = qkv + qkv_off + (n * 3 * C + h * d) * R;
        global const float *k = q + C * R, *v = k + C * R;
        global float *o = out + out_off + (n * C + h * d) * R + i;
        float m = attn_dot(q, k, i, 0, d, R, scale);
        uint j4 = 1;
        for (; j4 + 4 <= R; j4 += 4) {
            float4 s = attn_dot4(q, k, i, j4, d, R, scale);
            if (s.x > m) m = s.x;
            if (s.y > m) m = s.y;
            if (s.z > m) m = s.z;
            if (s.w > m) m = s.w;
        }
        for (uint j = j4; j < R; j++) {
            float s = attn_dot(q, k, i, j, d, R, scale);
            if (s > m) m = s;
        }
        float l = 0.0f;
        for (uint c0 = 0; c0 < d; c0 += ATTN_BLOCK) {
            uint nb = min(d - c0, (uint)ATTN_BLOCK);
            float acc[ATTN_BLOCK];
            for (uint cc = 0; cc < nb; cc++) acc[cc] = 0.0f;
            uint j = 0;
            for (; j + 4 <= R; j += 4) {
                float4 e = exp(attn_dot4(q, k, i, j, d, R, scale) - m);
                if (c0 == 0) l = l + e.x + e.y + e.z + e.w;
                for (uint cc = 0; cc < nb; cc++) {
                    global const float *vc = v + (c0 + cc) * R + j;
                    acc[cc] = acc[cc] + e.x * vc[0] + e.y * vc[1] + e.z * vc[2] + e.w * vc[3];
                }
            }
            for (; j < R; j++) {
                float e = exp(attn_dot(q, k, i, j, d, R, scale) - m);
                if (c0 == 0) l += e;
                for (uint cc = 0; cc < nb; cc++) acc[cc] += e * v[(c0 + cc) * R + j];
            }
            for (uint cc = 0; cc < nb; cc++) o[(c0 + cc) * R] = acc[cc] / l;
        }
        lse[lse_off + r] = m + log(l);
    }
}

// The backward's pass over query rows, one work-item per row r = (n·heads + h)·R + i:
// P[i, j] = exp(S[i, j] − lse_i), D_i = Σ_c dout[c, i]·out[c, i], dP[i, j] = Σ_c dout[c, i]·v[c, j],
// dS = P·(dP − D_i), dq[c, i] = (Σ_j dS[i, j]·k[c, j])·scale.
// dqkv (N, 3C, R), only its queries written here; dout, out (N, C, R); qkv (N, 3C, R);
// lse (N, heads, R)
kernel void attention_backward_query(global float *dqkv, uint dqkv_off, global const float *dout,
                                     uint dout_off, global const float *qkv, uint qkv_off,
                                     global const float *out, uint out_off, global const float *lse,
                                     uint lse_off, float scale, uint N, uint heads, uint C,
                                     uint R) {
    uint d = C / heads;
    FOR_EACH(r, (size_t)N * heads * R) {
        uint nh = (uint)r / R, i = (uint)r - nh * R, n = nh / heads, h = nh - n * heads;
        uint part = (n * 3 * C + h * d) * R, head = (n * C + h * d) * R;
        global const float *q = qkv + qkv_off + part, *k = q + C * R, *v = k + C * R;
        global const float *g = dout + dout_off + head, *o = out + out_off + head;
        global float *dq = dqkv + dqkv_off + part + i;
        float L = lse[lse_off + r];
        float D = attn_dot(g, o, i, i, d, R, 1.0f);
        for (uint c0 = 0; c0 < d; c0 += ATTN_BLOCK) {
            uint nb = min(d - c0, (uint)ATTN_BLOCK);
            float acc[ATTN_BLOCK];
            for (uint cc = 0; cc < nb; cc++) acc[cc] = 0.0f;
            uint j = 0;
            for (; j + 4 <= R; j += 4) {
                float4 p = exp(attn_dot4(q, k, i, j, d, R, scale) - L);
                float4 ds = p * (attn_dot4(g, v, i, j, d, R, 1.0f) - D);
                for (uint cc = 0; cc < nb; cc++) {
                    global const float *kc = k + (c0 + cc) * R + j;
                    acc[cc] = acc[cc] + ds.x * kc[0] + ds.y * kc[1] + ds.z * kc[2] + ds.w * kc[3];
                }
            }
            for (; j < R; j++) {
                float p = exp(attn_dot(q, k, i, j, d, R, scale) - L);
                float ds = p * (attn_dot(g, v, i, j, d, R, 1.0f) - D);
                for (uint cc = 0; cc < nb; cc++) acc[cc] += ds * k[(c0 + cc) * R + j];
            }
            for (uint cc = 0; cc < nb; cc++) dq[(c0 + cc) * R] = acc[cc] * scale;
        }
    }
}

// The pass over key rows, one work-item per row r = (n·heads + h)·R + j, gathering over the
// queries i (no scatter, no atomics): dk[c, j] = (Σ_i dS[i, j]·q[c, i])·scale,
// dv[c, j] = Σ_i P[i, j]·dout[c, i], with P, D_i and dS recomputed as in the query pass.
// dqkv (N, 3C, R), its keys and values written here; the rest as attention_backward_query
kernel void attention_backward_key(global float *dqkv, uint dqkv_off, global const float *dout,
                                   uint dout_off, global const float *qkv, uint qkv_off,
                                   global const float *out, uint out_off, global const float *lse,
                                   uint lse_off, float scale, uint N, uint heads, uint C, uint R) {
    uint d = C / heads;
    FOR_EACH(r, (size_t)N * heads * R) {
        uint nh = (uint)r / R, j = (uint)r - nh * R, n = nh / heads, h = nh - n * heads;
        uint part = (n * 3 * C + h * d) * R, head = (n * C + h * d) * R;
        global const float *q = qkv + qkv_off + part, *k = q + C * R, *v = k + C * R;
        global const float *g = dout + dout_off + head, *o = out + out_off + head;
        global const float *L = lse + lse_off + nh * R;
        global float *dk = dqkv + dqkv_off + part + C * R + j, *dv = dk + C * R;
        for (uint c0 = 0; c0 < d; c0 += ATTN_BLOCK) {
            uint nb = min(d - c0, (uint)ATTN_BLOCK);
            float acck[ATTN_BLOCK], accv[ATTN_BLOCK];
            for (uint cc = 0; cc < nb; cc++) acck[cc] = accv[cc] = 0.0f;
            uint i = 0;
            for (; i + 4 <= R; i += 4) {
                float4 p = exp(attn_dot4x(q, k, i, j, d, R, scale) - vload4(0, L + i));
                float4 D = attn_diag4(g, o, i, d, R);
                float4 ds = p * (attn_dot4x(g, v, i, j, d, R, 1.0f) - D);
                for (uint cc = 0; cc < nb; cc++) {
                    global const float *qc = q + (c0 + cc) * R + i, *gc = g + (c0 + cc) * R + i;
                    acck[cc] = acck[cc] + ds.x * qc[0] + ds.y * qc[1] + ds.z * qc[2] + ds.w * qc[3];
                    accv[cc] = accv[cc] + p.x * gc[0] + p.y * gc[1] + p.z * gc[2] + p.w * gc[3];
                }
            }
            for (; i < R; i++) {
                float p = exp(attn_dot(q, k, i, j, d, R, scale) - L[i]);
                float D = attn_dot(g, o, i, i, d, R, 1.0f);
                float ds = p * (attn_dot(g, v, i, j, d, R, 1.0f) - D);
                for (uint cc = 0; cc < nb; cc++) {
                    acck[cc] += ds * q[(c0 + cc) * R + i];
                    accv[cc] += p * g[(c0 + cc) * R + i];
                }
            }
            for (uint cc = 0; cc < nb; cc++) {
                dk[(c0 + cc) * R] = acck[cc] * scale;
                dv[(c0 + cc) * R] = accv[cc];
            }
        }
    }
}
