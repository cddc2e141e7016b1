// The device counters (dcl_device_stats): a known sequence of ops, writes, reads and waits gives
// exact counts on the CPU reference and on every usable OpenCL device; reset zeroes them; work of
// zero elements is not counted.
#define _POSIX_C_SOURCE 200809L // unsetenv
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/ops.h"

#define N 1000

static void check_stats(const dcl_device *dev, uint64_t ops, uint64_t launches, uint64_t writes,
                        uint64_t write_bytes, uint64_t reads, uint64_t read_bytes, uint64_t waits) {
    dcl_device_stats s;
    dcl_device_stats_get(dev, &s);
    CHECK_EQ(s.ops, ops);
    CHECK_EQ(s.launches, launches);
    CHECK_EQ(s.writes, writes);
    CHECK_EQ(s.write_bytes, write_bytes);
    CHECK_EQ(s.reads, reads);
    CHECK_EQ(s.read_bytes, read_bytes);
    CHECK_EQ(s.waits, waits);
}

static void test_device(const char *spec, void *unused) {
    (void)unused;
    dcl_device *dev;
    if (dcl_device_open(&dev, spec) != DCL_OK) {
        fprintf(stderr, "cannot open %s: %s\n", spec, dcl_last_error());
        check_failures++;
        return;
    }
    // A blocking OpenCL read or finish is one wait; OpenCL writes are staged and queued without
    // waiting (except under DIFFCL_CL_SYNC); the CPU reference never waits.
    uint64_t w = dcl_device_get_info(dev)->backend == DCL_BACKEND_OPENCL;
    dcl_buffer *a = NULL, *b = NULL, *c = NULL;
    CHECK_EQ(dcl_buffer_alloc(&a, dev, N, "stats.a"), DCL_OK);
    CHECK_EQ(dcl_buffer_alloc(&b, dev, N, "stats.b"), DCL_OK);
    CHECK_EQ(dcl_buffer_alloc(&c, dev, 16, "stats.c"), DCL_OK);
    CHECK_EQ(dcl_device_finish(dev), DCL_OK);
    dcl_device_stats_reset(dev);
    check_stats(dev, 0, 0, 0, 0, 0, 0, 0);

    float host[N];
    for (int i = 0; i < N; i++) host[i] = (float)i - 500.0f;
    CHECK_EQ(dcl_buffer_write(a, 0, N, host), DCL_OK);
    CHECK_EQ(dcl_buffer_write(b, 10, 5, host), DCL_OK);
    check_stats(dev, 0, 0, 2, 4 * (N + 5), 0, 0, 0);

    // One kernel each (gemm: one CLBlast call).
    CHECK_EQ(dcl_fill(dev, dcl_at(b, 0), 1.0f, N), DCL_OK);
    CHECK_EQ(dcl_axpby(dev, dcl_at(b, 0), dcl_at(a, 0), dcl_at(b, 0), 2.0f, 3.0f, N), DCL_OK);
    CHECK_EQ(dcl_relu_forward(dev, dcl_at(a, 0), dcl_at(b, 0), N), DCL_OK);
    CHECK_EQ(dcl_gemm(dev, dcl_at(c, 0), dcl_at(a, 0), dcl_at(b, 0), 0, 0, 4, 4, 8, 1.0f, 0.0f),
             DCL_OK);
    check_stats(dev, 4, 4, 2, 4 * (N + 5), 0, 0, 0);

    // Nothing to do: neither an op nor a transfer.
    CHECK_EQ(dcl_fill(dev, dcl_at(b, 0), 0.0f, 0), DCL_OK);
    CHECK_EQ(dcl_buffer_read(a, 0, 0, host), DCL_OK);
    CHECK_EQ(dcl_buffer_write(a, 0, 0, host), DCL_OK);
    check_stats(dev, 4, 4, 2, 4 * (N + 5), 0, 0, 0);

    CHECK_EQ(dcl_buffer_read(a, 5, 10, host), DCL_OK);
    CHECK_EQ(dcl_buffer_read(c, 0, 16, host), DCL_OK);
    check_stats(dev, 4, 4, 2, 4 * (N + 5), 2, 4 * (10 + 16), 2 * w);
    CHECK_EQ(dcl_device_finish(dev), DCL_OK);
    check_stats(dev, 4, 4, 2, 4 * (N + 5), 2, 4 * (10 + 16), 3 * w);

    // A rejected call (out of range) counts nothing.
    CHECK_EQ(dcl_buffer_read(a, N - 1, 2, host), DCL_ERR_ARG);
    CHECK_EQ(dcl_fill(dev, dcl_at(a, N - 1), 0.0f, 2), DCL_ERR_ARG);
    check_stats(dev, 4, 4, 2, 4 * (N + 5), 2, 4 * (10 + 16), 3 * w);

    dcl_device_stats_reset(dev);
    check_stats(dev, 0, 0, 0, 0, 0, 0, 0);
    dcl_buffer_free(a);
    dcl_buffer_free(b);
    dcl_buffer_free(c);
    dcl_device_free(dev);
}

int main(void) {
    // The counts assume no per-launch synchronisation (DIFFCL_CL_SYNC adds a wait per launch) and
    // no op moved to the CPU reference (which adds transfers).
    unsetenv("DIFFCL_CL_SYNC");
    unsetenv("DIFFCL_CPU_OPS");
    printf("device cpu\n");
    test_device("cpu", NULL);
    return check_opencl_devices(test_device, NULL);
}
