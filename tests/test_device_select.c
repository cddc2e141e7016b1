// Device selection (`--device` / DIFFCL_DEVICE) on fabricated device lists: what each spec picks,
// DCL_ERR_ARG for malformed specs, DCL_ERR_NO_DEVICE (listing what exists) when nothing matches;
// and the real list, whose first entry is the CPU reference.
#define _POSIX_C_SOURCE 200809L // setenv
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "device/backend.h" // dcl__cpu_info
#include "diffcl/device.h"

#define MAX_LIST 4

struct list {
    const char *name;
    int n;
    dcl_device_info d[MAX_LIST];
};

static void add_cl(struct list *l, int platform, int device, const char *type, const char *name,
                   const char *platform_name, int usable) {
    dcl_device_info *d = &l->d[l->n];
    memset(d, 0, sizeof *d);
    d->backend = DCL_BACKEND_OPENCL;
    d->index = l->n++;
    d->platform = platform, d->device = device;
    snprintf(d->spec, sizeof d->spec, "cl:%d:%d", platform, device);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->platform_name, sizeof d->platform_name, "%s", platform_name);
    snprintf(d->type, sizeof d->type, "%s", type);
    d->usable = usable;
    if (!usable) snprintf(d->why_not, sizeof d->why_not, "probe build failed: no OpenCL C 1.2");
}

static void init_list(struct list *l, const char *name) {
    memset(l, 0, sizeof *l);
    l->name = name;
    dcl__cpu_info(&l->d[0]);
    l->n = 1;
}

#define POCL_NAME "pthread-haswell-AMD EPYC 7B13", "Portable Computing Language"
#define GPU_NAME "NVIDIA GeForce RTX 3090", "NVIDIA CUDA"

// spec must select index `want`.
static void expect_index(const struct list *l, const char *spec, int want) {
    int idx = -1;
    dcl_status s = dcl_device_select(l->d, l->n, spec, &idx);
    if (s != DCL_OK || idx != want) {
        fprintf(stderr, "list '%s', spec '%s': got %s index %d, expected index %d (%s)\n", l->name,
                spec ? spec : "(null)", dcl_status_name(s), idx, want, dcl_last_error());
        check_failures++;
    }
}

// spec must fail with `want`; DCL_ERR_NO_DEVICE's message must list every device of the list.
static void expect_error(const struct list *l, const char *spec, dcl_status want) {
    int idx = -1;
    dcl_clear_error();
    dcl_status s = dcl_device_select(l->d, l->n, spec, &idx);
    if (s != want) {
        fprintf(stderr, "list '%s', spec '%.40s': got %s (index %d), expected %s\n", l->name, spec,
                dcl_status_name(s), idx, dcl_status_name(want));
        check_failures++;
        return;
    }
    const char *msg = dcl_last_error();
    if (!*msg) {
        fprintf(stderr, "list '%s', spec '%.40s': %s without a message\n", l->name, spec,
                dcl_status_name(s));
        check_failures++;
    }
    if (want != DCL_ERR_NO_DEVICE) return;
    for (int i = 0; i < l->n; i++) {
        if (strstr(msg, l->d[i].spec) && strstr(msg, l->d[i].name)) continue;
        fprintf(stderr, "list '%s', spec '%s': the message does not list %s (%s):\n%s\n", l->name,
                spec, l->d[i].spec, l->d[i].name, msg);
        check_failures++;
    }
}

// Malformed specs are DCL_ERR_ARG whatever the list holds.
static void check_malformed(const struct list *l) {
    static const char *const bad[] = {"gpu",   "cl:",     "cl:x:y", "cl:0:", "cl:-1:0", "opencl",
                                      "cl::0", "cl:0:0x", "cl:1:",  " cpu",  "cpu ",    "cl:0:0:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_error(l, bad[i], DCL_ERR_ARG);
    char longspec[300];
    memset(longspec, 'a', sizeof longspec - 1);
    longspec[sizeof longspec - 1] = '\0';
    expect_error(l, longspec, DCL_ERR_ARG);
    memcpy(longspec, "cl:", 3); // a very long device name
    expect_error(l, longspec, DCL_ERR_ARG);
}

static void check_fabricated(void) {
    struct list l;

    init_list(&l, "cpu only");
    expect_index(&l, "auto", 0);
    expect_index(&l, NULL, 0);
    expect_index(&l, "", 0);
    expect_index(&l, "cpu", 0);
    expect_error(&l, "cl", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:gpu", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:cpu", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:0:0", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:pocl", DCL_ERR_NO_DEVICE);
    check_malformed(&l);

    // auto: an OpenCL CPU device (PoCL) loses to the CPU reference on the same cores, unless
    // DIFFCL_AUTO=opencl prefers it (its tuning file could too: test_tune's domain).
    init_list(&l, "cpu + PoCL");
    add_cl(&l, 0, 0, "cpu", POCL_NAME, 1);
    expect_index(&l, "auto", 0);
    expect_index(&l, NULL, 0);
    CHECK(strstr(dcl_device_auto_why(l.d, l.n, 0), "only OpenCL devices are CPUs") != NULL);
    setenv("DIFFCL_AUTO", "opencl", 1);
    expect_index(&l, "auto", 1);
    expect_index(&l, NULL, 1);
    CHECK(strstr(dcl_device_auto_why(l.d, l.n, 1), "DIFFCL_AUTO=opencl") != NULL);
    setenv("DIFFCL_AUTO", "gpu", 1); // not a value it knows: an error naming the variable
    expect_error(&l, "auto", DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "DIFFCL_AUTO") != NULL);
    expect_index(&l, "cpu", 0); // only auto reads it
    unsetenv("DIFFCL_AUTO");
    expect_index(&l, "cpu", 0);
    expect_index(&l, "cl", 1);
    expect_index(&l, "cl:cpu", 1);
    expect_index(&l, "cl:0:0", 1);
    expect_index(&l, "cl:portable", 1); // platform name, any case
    expect_index(&l, "cl:HASWELL", 1);  // device name, any case
    expect_error(&l, "cl:gpu", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:accelerator", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:1:0", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:0:1", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:99:0", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:nvidia", DCL_ERR_NO_DEVICE);
    check_malformed(&l);

    init_list(&l, "cpu + gpu + PoCL");
    add_cl(&l, 0, 0, "gpu", GPU_NAME, 1);
    add_cl(&l, 1, 0, "cpu", POCL_NAME, 1);
    expect_index(&l, "auto", 1);
    CHECK(strstr(dcl_device_auto_why(l.d, l.n, 1), "GPU or accelerator") != NULL);
    setenv("DIFFCL_AUTO", "opencl", 1); // a GPU still comes first
    expect_index(&l, "auto", 1);
    unsetenv("DIFFCL_AUTO");
    expect_index(&l, "cpu", 0);
    expect_index(&l, "cl", 1);
    expect_index(&l, "cl:gpu", 1);
    expect_index(&l, "cl:cpu", 2);
    expect_index(&l, "cl:0:0", 1);
    expect_index(&l, "cl:1:0", 2);
    expect_index(&l, "cl:nvidia", 1);
    expect_index(&l, "cl:rtx 3090", 1);
    expect_index(&l, "cl:Portable", 2);
    expect_error(&l, "cl:99:0", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:2:0", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:intel", DCL_ERR_NO_DEVICE);
    check_malformed(&l);

    // auto prefers a GPU even when another OpenCL device comes first.
    init_list(&l, "cpu + PoCL + gpu");
    add_cl(&l, 0, 0, "cpu", POCL_NAME, 1);
    add_cl(&l, 1, 0, "gpu", GPU_NAME, 1);
    expect_index(&l, "auto", 2);
    expect_index(&l, "cl", 1);
    expect_index(&l, "cl:gpu", 2);
    expect_index(&l, "cl:cpu", 1);

    // An accelerator wins like a GPU; with both, the first in the list.
    init_list(&l, "cpu + PoCL + accelerator + gpu");
    add_cl(&l, 0, 0, "cpu", POCL_NAME, 1);
    add_cl(&l, 1, 0, "accelerator", "Intel FPGA Emulation Device", "Intel FPGA SDK", 1);
    add_cl(&l, 2, 0, "gpu", GPU_NAME, 1);
    expect_index(&l, "auto", 2);
    expect_index(&l, "cl:accelerator", 2);

    // A device that failed its probe is never picked, and saying why is part of the message.
    init_list(&l, "cpu + unusable gpu");
    add_cl(&l, 0, 0, "gpu", GPU_NAME, 0);
    expect_index(&l, "auto", 0);
    CHECK(strstr(dcl_device_auto_why(l.d, l.n, 0), "no usable OpenCL device") != NULL);
    setenv("DIFFCL_AUTO", "opencl", 1); // nothing OpenCL to prefer
    expect_index(&l, "auto", 0);
    unsetenv("DIFFCL_AUTO");
    expect_index(&l, "cpu", 0);
    expect_error(&l, "cl", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:gpu", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:nvidia", DCL_ERR_NO_DEVICE);
    expect_error(&l, "cl:0:0", DCL_ERR_NO_DEVICE);
    CHECK(strstr(dcl_last_error(), "probe build failed") != NULL);

    // An unusable GPU before a usable one: both auto and cl:gpu skip it.
    init_list(&l, "cpu + unusable gpu + gpu");
    add_cl(&l, 0, 0, "gpu", GPU_NAME, 0);
    add_cl(&l, 0, 1, "gpu", "AMD Radeon RX 7900", "AMD Accelerated Parallel Processing", 1);
    expect_index(&l, "auto", 2);
    expect_index(&l, "cl:gpu", 2);
    expect_index(&l, "cl:0:1", 2);
}

// The real list: the CPU reference first, indices equal to positions, specs cl:P:D that select
// their own entry.
static void check_real_list(void) {
    dcl_device_info *list = NULL;
    int n = 0, n_platforms = -1;
    dcl_status s = dcl_device_list(&list, &n, &n_platforms);
    CHECK_EQ(s, DCL_OK);
    if (s != DCL_OK) return;
    CHECK(n >= 1);
    CHECK(n_platforms >= 0);
    CHECK_EQ(list[0].backend, DCL_BACKEND_CPU);
    CHECK(strcmp(list[0].spec, "cpu") == 0);
    CHECK(strcmp(list[0].type, "reference") == 0);
    CHECK_EQ(list[0].platform, -1);
    CHECK(list[0].usable);
    CHECK(list[0].compute_units >= 1);
    CHECK(list[0].global_mem > 0 && list[0].max_alloc > 0);
    for (int i = 0; i < n; i++) {
        printf("%-8s %s (%s)%s%s\n", list[i].spec, list[i].name, list[i].type,
               list[i].usable ? "" : " not usable: ", list[i].usable ? "" : list[i].why_not);
        CHECK_EQ(list[i].index, i);
        CHECK(memchr(list[i].name, '\0', sizeof list[i].name) != NULL);
        if (i == 0) continue;
        CHECK_EQ(list[i].backend, DCL_BACKEND_OPENCL);
        char spec[32];
        snprintf(spec, sizeof spec, "cl:%d:%d", list[i].platform, list[i].device);
        CHECK(strcmp(list[i].spec, spec) == 0);
        int idx = -1;
        s = dcl_device_select(list, n, list[i].spec, &idx);
        if (list[i].usable) CHECK(s == DCL_OK && idx == i);
        else CHECK_EQ(s, DCL_ERR_NO_DEVICE);
    }
    // auto on this machine: the first usable GPU or accelerator, else the CPU reference.
    int want = 0, got = -1;
    for (int i = n - 1; i > 0; i--)
        if (list[i].usable &&
            (!strcmp(list[i].type, "gpu") || !strcmp(list[i].type, "accelerator")))
            want = i;
    CHECK_EQ(dcl_device_select(list, n, "auto", &got), DCL_OK);
    CHECK_EQ(got, want);
    printf("auto: %s: %s\n", list[got >= 0 ? got : 0].spec, dcl_device_auto_why(list, n, got));
    free(list);
    CHECK_EQ(dcl_device_list(&list, &n, NULL), DCL_OK); // the platform count is optional
    free(list);
}

// Opening: "cpu" by spec and through DIFFCL_DEVICE; a bad spec is an error with no device.
static void check_open(void) {
    dcl_device *dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, "cpu"), DCL_OK);
    if (dev) CHECK(strcmp(dcl_device_get_info(dev)->spec, "cpu") == 0);
    dcl_device_free(dev);

    dev = (dcl_device *)&dev; // must be reset to NULL on failure
    CHECK_EQ(dcl_device_open(&dev, "gpu"), DCL_ERR_ARG);
    CHECK(dev == NULL);

    setenv("DIFFCL_DEVICE", "cpu", 1);
    dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, NULL), DCL_OK);
    if (dev) CHECK(strcmp(dcl_device_get_info(dev)->spec, "cpu") == 0);
    dcl_device_free(dev);
    setenv("DIFFCL_DEVICE", "cl:", 1);
    dev = NULL;
    CHECK_EQ(dcl_device_open(&dev, ""), DCL_ERR_ARG);
    CHECK(dev == NULL);
    unsetenv("DIFFCL_DEVICE");
}

int main(void) {
    unsetenv("DIFFCL_AUTO");
    setenv("DIFFCL_CL_TUNE", "off", 1); // no tuning file of this machine may change what auto picks
    check_fabricated();
    check_real_list();
    check_open();
    return check_exit();
}
