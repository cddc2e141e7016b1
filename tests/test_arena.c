// Arenas (named views in one buffer) on the CPU reference and, where present, an OpenCL device:
// layout, lookup, isolation of views, same-layout arenas, and rejected names and sizes.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/arena.h"
#include "diffcl/ops.h"

static void test_device(const char *spec) {
    dcl_device *dev;
    if (dcl_device_open(&dev, spec) != DCL_OK) {
        fprintf(stderr, "cannot open %s: %s\n", spec, dcl_last_error());
        check_failures++;
        return;
    }
    dcl_arena_view specs[3] = {
        {"mlp.fc1.weight", 0, 6}, {"mlp.fc1.bias", 0, 17}, {"mlp.fc2.weight", 0, 1}};
    dcl_arena params, grads;
    CHECK_EQ(dcl_arena_init(&params, dev, "params", specs, 3), DCL_OK);
    CHECK_EQ(params.count, 3);
    CHECK_EQ(params.views[0].off, 0);
    CHECK_EQ(params.views[1].off, 16); // 16-element alignment
    CHECK_EQ(params.views[2].off, 48);
    CHECK_EQ(params.n, 64);
    CHECK_EQ(dcl_arena_find(&params, "mlp.fc1.bias"), 1);
    CHECK_EQ(dcl_arena_find(&params, "mlp.fc1"), -1);

    // Writing one view leaves its neighbours (zero-initialised) untouched.
    CHECK_EQ(dcl_fill(dev, dcl_arena_ptr(&params, 1), 2.5f, 17), DCL_OK);
    float host[64];
    CHECK_EQ(dcl_buffer_read(params.buf, 0, 64, host), DCL_OK);
    for (int i = 0; i < 64; i++) CHECK_EQ(host[i] == (i >= 16 && i < 33 ? 2.5f : 0.0f), 1);

    CHECK_EQ(dcl_arena_init_like(&grads, &params, "grads"), DCL_OK);
    CHECK_EQ(grads.n, params.n);
    CHECK_EQ(grads.views[2].off, params.views[2].off);
    CHECK(strcmp(grads.views[1].name, "mlp.fc1.bias") == 0);
    CHECK(strcmp(dcl_buffer_name(grads.buf), "grads") == 0);
    dcl_arena_free(&grads);
    dcl_arena_free(&params);

    dcl_arena bad;
    dcl_arena_view dup[2] = {{"w", 0, 1}, {"w", 0, 2}};
    CHECK_EQ(dcl_arena_init(&bad, dev, "dup", dup, 2), DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "'w'") != NULL);
    CHECK(bad.buf == NULL);

    // Too large for one buffer: refused before allocation, naming the tensor and both sizes.
    dcl_buffer *huge;
    CHECK_EQ(dcl_buffer_alloc(&huge, dev, (size_t)UINT32_MAX + 2, "huge.tensor"),
             DCL_ERR_DEVICE_MEM);
    CHECK(strstr(dcl_last_error(), "huge.tensor") != NULL);
    CHECK(strstr(dcl_last_error(), "MiB") != NULL);
    dcl_device_free(dev);
}

int main(void) {
    test_device("cpu");
#ifdef DIFFCL_HAVE_OPENCL
    dcl_device_info *list;
    int n, n_platforms;
    if (dcl_device_list(&list, &n, &n_platforms) == DCL_OK) {
        for (int i = 0; i < n; i++)
            if (list[i].backend == DCL_BACKEND_OPENCL && list[i].usable) test_device(list[i].spec);
        free(list);
    }
#endif
    return check_exit();
}
