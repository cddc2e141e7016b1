// Shared by every program (the host prepends it, after its #define preamble): tuning defaults,
// the contraction policy, the grid-stride loop, the work-group sum, and Philox4x32-10 with the
// stream mapping of include/diffcl/rng.h. cl/README.md says how a program is put together.

// Tuning values come from the host's preamble (host/device/opencl/cl_program.c); these defaults
// hold when a file is compiled alone (clang -x cl). DCL_WG_SIZE is the local size the host uses
// for 1-D launches unless a kernel's or the device's limit is lower; kernels must stay correct for
// any local size (tests force odd ones), so it may only steer performance.
#ifndef DCL_WG_SIZE
#define DCL_WG_SIZE 256
#endif

// No fused multiply-add contraction: a*b+c rounds twice, as the CPU reference does, so simple
// elementwise ops agree bitwise with it on every device that honours the pragma.
#pragma OPENCL FP_CONTRACT OFF

// Every 1-D kernel strides over the grid, so it is correct for any global and local size.
#define FOR_EACH(i, n) for (size_t i = get_global_id(0); i < (size_t)(n); i += get_global_size(0))

// Kernels that take 8 elements per work-item (explicit float8, which a CPU device such as PoCL
// runs as SIMD code where it would not vectorise the scalar loop): block i8 = 8·k of n elements.
#define FOR_EACH8(i8, n)                                                                           \
    for (size_t i8 = get_global_id(0) * 8; i8 < (size_t)(n); i8 += get_global_size(0) * 8)

// p[i, i + 8) as a float8; past n (a short last block) the lanes read `fill` (load8: 0).
inline float8 load8_or(global const float *p, size_t i, size_t n, float fill) {
    if (i + 8 <= n) return vload8(0, p + i);
    float lane[8];
    for (uint j = 0; j < 8; j++) lane[j] = i + j < n ? p[i + j] : fill;
    return vload8(0, lane);
}
inline float8 load8(global const float *p, size_t i, size_t n) { return load8_or(p, i, n, 0.0f); }

// p[i, min(i + 8, n)) = the first lanes of v.
inline void store8(global float *p, size_t i, size_t n, float8 v) {
    if (i + 8 <= n) {
        vstore8(v, 0, p + i);
        return;
    }
    float lane[8];
    vstore8(v, 0, lane);
    for (uint j = 0; j < 8 && i + j < n; j++) p[i + j] = lane[j];
}

// Σ of a float8's lanes in a fixed order: (lanes 0-3 + lanes 4-7), then pairs, then the two.
// Through a private array: Oclgrind's uninitialised-value checker crashes on .lo/.hi of a float8.
inline float sum8(float8 v) {
    float t[8];
    vstore8(v, 0, t);
    return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
}

// Folds scratch[0, lsz) into scratch[0] (float or uint) by a tree for any local size, not only
// powers of two: at each level work-item lid adds lid + half. The order is fixed by lsz alone, so
// results are deterministic. Every work-item of the group must reach it (uniform control flow).
#define GROUP_REDUCE(scratch, lid, lsz)                                                            \
    do {                                                                                           \
        uint half_ = 1;                                                                            \
        while (half_ < (lsz)) half_ <<= 1;                                                         \
        for (half_ >>= 1; half_ > 0; half_ >>= 1) {                                                \
            if ((lid) < half_ && (lid) + half_ < (lsz)) scratch[lid] += scratch[(lid) + half_];    \
            barrier(CLK_LOCAL_MEM_FENCE);                                                          \
        }                                                                                          \
    } while (0)

// Σ of v over the work-group, returned to every work-item; scratch holds get_local_size(0)
// floats. The first barrier lets a previous call's readers of scratch[0] finish, so calls may
// follow each other. Every work-item of the group must call it (uniform control flow).
inline float group_sum(local float *scratch, float v) {
    uint lid = get_local_id(0), lsz = get_local_size(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    GROUP_REDUCE(scratch, lid, lsz);
    return scratch[0];
}

// Philox4x32-10 (Random123): ten rounds of two 32x32->64 multiplies, with the key bumped by the
// Weyl constants between rounds.
inline uint4 philox4x32_10(uint4 c, uint2 k) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k.x += 0x9E3779B9u;
            k.y += 0xBB67AE85u;
        }
        uint hi0 = mul_hi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        uint hi1 = mul_hi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    }
    return c;
}

// The counter block holding stream element `index`: ctr = (index/4 lo, index/4 hi, step, purpose).
inline uint4 rng_block(ulong seed, uint purpose, uint step, ulong index) {
    ulong b = index >> 2;
    return philox4x32_10((uint4)((uint)b, (uint)(b >> 32), step, purpose),
                         (uint2)((uint)seed, (uint)(seed >> 32)));
}

inline uint rng_word(uint4 w, uint j) { return j == 0 ? w.x : j == 1 ? w.y : j == 2 ? w.z : w.w; }

// (0.5 + (u >> 9)) * 2^-23: uniform in (0, 1), exact in float, bitwise equal everywhere.
inline float rng_u01(uint u) { return (0.5f + (float)(u >> 9)) * 0x1p-23f; }

// Box-Muller on the word pair (w0, w1) or (w2, w3) holding `index`: r cos θ for even elements,
// r sin θ for odd ones, r = sqrt(-2 ln u1), θ = 2π u2.
inline float rng_normal_at(ulong seed, uint purpose, uint step, ulong index) {
    uint4 w = rng_block(seed, purpose, step, index);
    uint pair = (uint)(index & 2);
    float u1 = rng_u01(rng_word(w, pair)), u2 = rng_u01(rng_word(w, pair + 1));
    float r = sqrt(-2.0f * log(u1));
    float theta = 6.2831853071795864769f * u2;
    return (index & 1) ? r * sin(theta) : r * cos(theta);
}
