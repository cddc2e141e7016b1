// Philox4x32-10 counter-based random numbers, identical on the CPU and on every OpenCL device.
//
// A value depends only on (seed, purpose, step, element index): key = seed (64 bit), counter =
// (index / 4 lo, index / 4 hi, step, purpose); element i takes word i % 4 of its counter block.
// Uniforms are (0.5 + (u >> 9)) * 2^-23, exact in float, so bitwise equal on every IEEE device.
// Normals use Box-Muller on the pairs (w0, w1) and (w2, w3) of a block: elements 4b+0 and 4b+1
// are r cos θ and r sin θ of pair (w0, w1), elements 4b+2, 4b+3 those of (w2, w3).
#ifndef DIFFCL_RNG_H
#define DIFFCL_RNG_H

#include <stdint.h>

// Version of the mapping above; stored in checkpoints. Any change to the mapping bumps it.
#define DCL_RNG_STREAM_VERSION 1

// What a stream is used for: the counter's fourth word, so uses never share values.
enum dcl_rng_purpose {
    DCL_RNG_TEST = 0,       // tests and benchmarks
    DCL_RNG_INIT = 1,       // parameter initialisation
    DCL_RNG_DATA = 2,       // which training example or fresh data point
    DCL_RNG_TIME = 3,       // per-example t
    DCL_RNG_NOISE = 4,      // forward-process noise ε
    DCL_RNG_LABEL_DROP = 5, // classifier-free guidance label dropout
    DCL_RNG_SAMPLER = 6,    // sampler noise (base sample and per-step noise)
};

// The Philox4x32-10 block function (Random123): out = philox(ctr, key).
void dcl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

// (0.5 + (u >> 9)) * 2^-23: a uniform in the open interval (0, 1), exact in float.
static inline float dcl_u01(uint32_t u) { return (0.5f + (float)(u >> 9)) * 0x1p-23f; }

// Element `index` of the stream (seed, purpose, step), as the fill ops produce it.
uint32_t dcl_rng_bits_at(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t index);
float dcl_rng_uniform_at(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t index);
float dcl_rng_normal_at(uint64_t seed, uint32_t purpose, uint32_t step, uint64_t index);

#endif
