// The CPU reference's thread pool: a job is a number of chunks whose boundaries the caller fixes
// from the problem size alone, so a result never depends on how many threads ran it (host/README.md,
// "How the CPU reference threads"). Internal to host/device/cpu/.
#ifndef DIFFCL_CPU_POOL_H
#define DIFFCL_CPU_POOL_H

#include <stddef.h>

// Elementwise ops cut their n elements into chunks of this many (64 KiB of floats): small enough
// that a 2^17-element activation gives every core work, large enough that a chunk outweighs the
// cost of handing it to a thread. A constant, never derived from the thread count.
#define DCL_CPU_CHUNK ((size_t)16384)

// A job with less work than this (in elements, or their equivalent) runs on the calling thread
// without waking the pool. Only where it runs depends on this, never its chunks or its result.
#define DCL_CPU_MIN_PARALLEL ((size_t)49152)

// Runs fn(arg, c) for every chunk c in [0, n_chunks) — on the pool's threads and the calling
// one when n_chunks > 1, work >= DCL_CPU_MIN_PARALLEL and a CPU device is open, otherwise in order
// on the calling thread. Chunks must write disjoint memory; fn must not call this again.
void dcl__cpu_parallel(size_t n_chunks, size_t work, void (*fn)(void *arg, size_t chunk),
                       void *arg);

// A loop over the items [lo, hi) of an op: rows, planes, channels or elements.
struct dcl_op_args;
typedef void (*dcl__cpu_range_fn)(const struct dcl_op_args *a, size_t lo, size_t hi);

// body over n items in chunks of grain items (the last one shorter), through dcl__cpu_parallel;
// cost is the elements one item touches, for the inline threshold only.
void dcl__cpu_for(const struct dcl_op_args *a, size_t n, size_t grain, size_t cost,
                  dcl__cpu_range_fn body);

// Items of per_item elements in a chunk: about DCL_CPU_CHUNK elements, at least one item.
size_t dcl__cpu_grain(size_t per_item);

// Open CPU devices hold the pool: the first acquire makes it usable (its threads start on the
// first parallel job), the last release joins its threads and frees it.
void dcl__cpu_pool_acquire(void);
void dcl__cpu_pool_release(void);

// Test hook: the number of jobs handed to the pool since the process started.
size_t dcl__cpu_pool_jobs(void);

#endif
