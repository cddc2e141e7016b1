// The op cases' shared definitions: how a case describes one instance of its op at a size n
// (tensors, roles, input distributions, parameters, tolerance, cost) and the case table itself,
// read by the check runner (run.c) and the timing loop (perf.c).
#ifndef DIFFCL_CROSSCHECK_CASE_H
#define DIFFCL_CROSSCHECK_CASE_H

#include <stdint.h>
#include <string.h>

#include "diffcl/device.h" // dcl_device, dcl_ptr

#define MAX_TENSORS 8 // outputs and inputs of one case (group_norm_backward: 8)

// How a case uses a tensor. INOUT tensors are read and written (gemm's C with beta != 0, a
// gradient that accumulates, an in-place op); OUT tensors start as NaN sentinels, so an op that
// reads its output before writing it (gemm with beta == 0 must not) turns NaN.
enum role { IN, OUT, INOUT };

// How inputs are drawn: all start from N(0, 1) of the seed's stream.
enum gen {
    GEN_NORMAL,
    GEN_KINK,      // every 16th element an exact +0 or -0 (ReLU's kink), a few ±Inf and NaN
    GEN_WIDE,      // every 8th element scaled by 30, so exp() saturates (SiLU's tails)
    GEN_NONFINITE, // every 16th element NaN (with payload), +Inf or -Inf
    GEN_UNIT,      // uniform in (0, 1) instead (diffusion times)
    GEN_POSITIVE,  // |x| + 0.5 (Adam's second moments, squared norms)
    GEN_SHIFTED,   // x + 8: a mean far from 0 next to the spread (GroupNorm's two passes)
    GEN_LABEL,     // uint32 labels 0..9, and now and then 0xffffffff (embedding: K = 7)
};

struct tensor {
    const char *name;
    size_t len; // elements the op touches
    enum role role;
    enum gen gen;
    int bits;    // compare 32-bit words exactly (uint outputs, copies, exact fills)
    double atol; // > 0: this output's own atol, where it sums far more terms than the others
};

// One instance of a case at a size n: tensors, op parameters, the tolerance and the cost.
struct problem {
    int nt;
    struct tensor t[MAX_TENSORS];
    size_t n, M, N, K, D, D2;
    int ta, tb;
    float alpha, beta, a, b, c;
    uint64_t seed, first;
    uint32_t purpose, step;
    float lr, beta1, beta2, eps, wd, clip; // adamw_step
    int64_t adam_step;
    size_t C, H, W, R, G, k, stride, pad; // images (N, C, H, W) or (N, C, R); C2 is D2
    int per_sample;
    double atol, rtol;
    // Adds and multiplies of one call, set by the setups of ops made of those only (GEMM, linear
    // combinations, sums, bias adds and their gradients, the forward process, the MSE gradient);
    // 0 where a count would mislead (exp, sin/cos, sqrt and divides: SiLU, the time embedding,
    // normal random numbers, GroupNorm, AdamW) or where an op only moves data. The bytes a call
    // moves follow from the tensors (perf.c) unless the setup sets bytes (an op that touches only
    // part of a tensor: the embedding reads and updates only the labelled rows of its table).
    double flops, bytes;
};

struct check_case {
    const char *name;
    void (*setup)(const struct check_case *c, size_t n, struct problem *p);
    dcl_status (*run)(dcl_device *dev, const struct problem *p, const dcl_ptr *t);
    int ta, tb;  // gemm transposes
    int variant; // case-specific: gemm shape, in-place, ...
    // Optional: rewrites inputs that must be consistent with others (GroupNorm's saved mean and
    // rstd from its input) in init[k][off...] after they were drawn.
    void (*derive)(const struct problem *p, uint32_t *const *init, size_t off);
};

// The case table (cases.c): every op of DCL_OP_MAP has at least one row named after it.
extern const struct check_case dcl__check_cases[];
extern const int dcl__check_n_cases;

// Word i of an input tensor k of distribution g, drawn from the seed's stream.
uint32_t dcl__check_gen_word(enum gen g, uint64_t seed, uint32_t k, size_t i);

static inline uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
