// Embeddings: the sinusoidal time embedding and the class-embedding lookup with its gradient.

// out (N, E): out[r, j] = sin(arg), out[r, half + j] = cos(arg), half = E/2,
// arg = 1000 t[r] freq_j, freq_j = exp(−ln(10⁴) j / half). The float steps and their order match
// the CPU reference, so the two differ only by the devices' exp, sin and cos. One work-item per
// row and 8 frequencies j (float8, whose sin and cos PoCL runs as SIMD code), both halves from the
// same arg; j runs to E − half (an odd E's last column is cos of j = half).
kernel void time_embedding(global float *out, uint out_off, global const float *t, uint t_off,
                           uint N, uint E) {
    uint half_e = E / 2, J = E - half_e, J8 = (J + 7) / 8;
    FOR_EACH(i, (size_t)N * J8) {
        uint r = (uint)i / J8, j = ((uint)i - r * J8) * 8;
        float8 jf = (float8)((float)j) + (float8)(0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f);
        float8 freq = exp(-9.21034037f * jf / (float)half_e);
        float8 arg = 1000.0f * t[t_off + r] * freq;
        global float *row = out + out_off + r * E;
        store8(row, j, half_e, sin(arg));
        store8(row + half_e, j, J, cos(arg));
    }
}

// out (N, E): out[n, e] = table[labels[n], e], or 0 when labels[n] >= K. labels (N) as uint bits.
kernel void embedding_forward(global float *out, uint out_off, global const float *table,
                              uint table_off, global const uint *labels, uint labels_off, uint N,
                              uint K, uint E) {
    FOR_EACH(i, (size_t)N * E) {
        uint t = (uint)i, n = t / E, e = t - n * E, label = labels[labels_off + n];
        out[out_off + i] = label < K ? table[table_off + label * E + e] : 0.0f;
    }
}

// dtable[k, e] += Σ_{n: labels[n] = k} dout[n, e]: one work-item per table element gathers over
// the batch in order (deterministic, no atomics). dtable (K, E); dout (N, E)
kernel void embedding_backward(global float *dtable, uint dtable_off, global const float *dout,
                               uint dout_off, global const uint *labels, uint labels_off, uint N,
                               uint K, uint E) {
    FOR_EACH(i, (size_t)K * E) {
        uint t = (uint)i, k = t / E, e = t - k * E;
        float acc = 0.0f;
        for (uint n = 0; n < N; n++)
            if (labels[labels_off + n] == k) acc += dout[dout_off + n * E + e];
        dtable[dtable_off + i] += acc;
    }
}
