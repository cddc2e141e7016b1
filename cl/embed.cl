// Building the MLP's input: the sinusoidal time embedding and row-wise concatenation.

// out (N, E): out[r, j] = sin(arg), out[r, half + j] = cos(arg), half = E/2,
// arg = 1000 t[r] freq_j, freq_j = exp(−ln(10⁴) j / half). The float steps and their order match
// the CPU reference, so the two differ only by the devices' exp, sin and cos.
kernel void time_embedding(global float *out, uint out_off, global const float *t, uint t_off,
                           uint N, uint E) {
    uint half_e = E / 2;
    FOR_EACH(i, (size_t)N * E) {
        // c = i − r·E rather than i % E: a division and a remainder of the same operands make
        // LLVM emit a `freeze`, which Oclgrind's uninitialised-value checker cannot run.
        size_t r = i / E;
        uint c = (uint)(i - r * E);
        uint j = c < half_e ? c : c - half_e;
        float freq = exp(-9.21034037f * (float)j / (float)half_e);
        float arg = 1000.0f * t[t_off + r] * freq;
        out[out_off + i] = c < half_e ? sin(arg) : cos(arg);
    }
}

// out (N, D1 + D2) = [a (N, D1), b (N, D2)] row by row: a copy, bitwise.
kernel void concat_cols(global float *out, uint out_off, global const float *a, uint a_off,
                        global const float *b, uint b_off, uint N, uint D1, uint D2) {
    uint W = D1 + D2;
    FOR_EACH(i, (size_t)N * W) {
        size_t r = i / W;
        uint c = (uint)(i - r * W); // not i % W: see time_embedding
        out[out_off + i] = c < D1 ? a[a_off + r * D1 + c] : b[b_off + r * D2 + (c - D1)];
    }
}
