// Fills with Philox streams: out[i] is element first + i of stream (seed, purpose, step), a value
// that depends on nothing else (not the launch shape, not the device).

kernel void rng_bits(global uint *out, uint out_off, ulong seed, uint purpose, uint step,
                     ulong first, uint n) {
    FOR_EACH(i, n) {
        ulong index = first + i;
        out[out_off + i] = rng_word(rng_block(seed, purpose, step, index), (uint)(index & 3));
    }
}

kernel void rng_uniform(global float *out, uint out_off, ulong seed, uint purpose, uint step,
                        ulong first, uint n) {
    FOR_EACH(i, n) {
        ulong index = first + i;
        out[out_off + i] =
            rng_u01(rng_word(rng_block(seed, purpose, step, index), (uint)(index & 3)));
    }
}

kernel void rng_normal(global float *out, uint out_off, ulong seed, uint purpose, uint step,
                       ulong first, uint n) {
    FOR_EACH(i, n) out[out_off + i] = rng_normal_at(seed, purpose, step, first + i);
}
