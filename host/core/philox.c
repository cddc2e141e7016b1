// Philox4x32-10 (Random123) and the stream mapping of rng.h, the CPU twin of cl/common.h.
#include <math.h>

#include "diffcl/rng.h"

void dcl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += 0x9E3779B9u; // golden ratio
            k1 += 0xBB67AE85u; // sqrt(3) - 1
        }
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void block(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t index, uint32_t w[4]) {
    uint64_t b = index >> 2;
    uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), step, purpose};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    dcl_philox4x32_10(ctr, key, w);
}

uint32_t dcl_rng_bits_at(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t index) {
    uint32_t w[4];
    block(seed, purpose, step, index, w);
    return w[index & 3];
}

float dcl_rng_uniform_at(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t index) {
    return dcl_u01(dcl_rng_bits_at(seed, purpose, step, index));
}

// Box-Muller on the pair of words that holds this element: r = sqrt(-2 ln u1), θ = 2π u2.
float dcl_rng_normal_at(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t index) {
    uint32_t w[4];
    block(seed, purpose, step, index, w);
    int pair = (int)(index & 2);
    float u1 = dcl_u01(w[pair]), u2 = dcl_u01(w[pair + 1]);
    float r = sqrtf(-2.0f * logf(u1));
    float theta = 6.2831853071795864769f * u2;
    return (index & 1) ? r * sinf(theta) : r * cosf(theta);
}
