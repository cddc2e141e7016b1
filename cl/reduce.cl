// Two-pass reductions: each group folds a grid-stride slice into one partial, then one group folds
// the partials, both with the work-group tree of cl/common.h (group_sum, GROUP_REDUCE).

// partial[group] = Σ over this group's slice of in (squared when square != 0).
kernel void reduce_sum_partial(global float *partial, global const float *in, uint in_off, uint n,
                               uint square, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    float acc = 0.0f;
    FOR_EACH(i, n) {
        float v = in[in_off + i];
        acc += square ? v * v : v;
    }
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    GROUP_REDUCE(scratch, lid, lsz);
    if (lid == 0) partial[get_group_id(0)] = scratch[0];
}

// out[0] = Σ partial[0, n_partial); launched as one group.
kernel void reduce_sum_final(global float *out, uint out_off, global const float *partial,
                             uint n_partial, local float *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    float acc = 0.0f;
    for (uint i = lid; i < n_partial; i += lsz) acc += partial[i];
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    GROUP_REDUCE(scratch, lid, lsz);
    if (lid == 0) out[out_off] = scratch[0];
}

// partial[group] = number of NaN and ±Inf in this group's slice of in.
kernel void count_nonfinite_partial(global uint *partial, global const float *in, uint in_off,
                                    uint n, local uint *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint acc = 0;
    // Exponent bits all ones: NaN or ±Inf (a bit test survives -cl-fast-relaxed-math).
    FOR_EACH(i, n) acc += (as_uint(in[in_off + i]) & 0x7f800000u) == 0x7f800000u;
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    GROUP_REDUCE(scratch, lid, lsz);
    if (lid == 0) partial[get_group_id(0)] = scratch[0];
}

kernel void count_nonfinite_final(global uint *out, uint out_off, global const uint *partial,
                                  uint n_partial, local uint *scratch) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    uint acc = 0;
    for (uint i = lid; i < n_partial; i += lsz) acc += partial[i];
    scratch[lid] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    GROUP_REDUCE(scratch, lid, lsz);
    if (lid == 0) out[out_off] = scratch[0];
}
