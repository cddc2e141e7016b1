// A tiny test framework: CHECK, CHECK_EQ and CHECK_NEAR print file:line, the expression and both
// values on failure and count it in check_failures; a test's main returns check_exit().
#ifndef DIFFCL_TESTS_CHECK_H
#define DIFFCL_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

// Integers (any width, compared as long long; unsigned 64-bit values compare bitwise).
#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ != check_b_) {                                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld, 0x%llx vs 0x%llx)\n", \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_, (unsigned long long)check_a_,  \
                    (unsigned long long)check_b_);                                                 \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

// |a − b| <= atol + rtol·|b| (b is the reference); NaN never passes.
#define CHECK_NEAR(a, b, atol, rtol)                                                               \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        double check_tol_ = (double)(atol) + fabs(check_b_) * (double)(rtol);                      \
        if (!(fabs(check_a_ - check_b_) <= check_tol_)) {                                          \
            fprintf(stderr,                                                                        \
                    "%s:%d: CHECK_NEAR failed: %s ~ %s (%.9g vs %.9g, |diff| %.3g > %.3g)\n",      \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_, fabs(check_a_ - check_b_),     \
                    check_tol_);                                                                   \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

// What a test's main returns: 0 when every check passed.
static inline int check_exit(void) {
    if (check_failures) fprintf(stderr, "%d check(s) failed\n", check_failures);
    return check_failures ? 1 : 0;
}

#endif
