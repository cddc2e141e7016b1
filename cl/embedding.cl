// Embeddings: the sinusoidal time embedding and the class-embedding lookup with its gradient.

// out (N, E): out[r, j] = sin(arg), out[r, half + j] = cos(arg), half = E/2,
// arg = 1000 t[r] freq_j, freq_j = exp(−ln(10⁴) j / half). The float steps and their order match
// the CPU reference, so the two differ only by the devices' exp, sin and cos.
kernel void time_embedding(global float *out, uint out_off, global const float *t, uint t_off,
                           uint N, uint E) {
    uint half_e = E / 2;
    FOR_EACH(i, (size_t)N * E) {
        // c = i − r·E rather than i % E (cl/README.md: Oclgrind cannot run LLVM's `freeze`).
        size_t r = i / E;
        uint c = (uint)(i - r * E);
        uint j = c < half_e ? c : c - half_e;
        float freq = exp(-9.21034037f * (float)j / (float)half_e);
        float arg = 1000.0f * t[t_off + r] * freq;
        out[out_off + i] = c < half_e ? sin(arg) : cos(arg);
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
