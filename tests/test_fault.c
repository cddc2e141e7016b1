// Fault injection (host/device/opencl/cl_fault.c): on every OpenCL device, the k-th OpenCL call of
// a short training run and its save is made to fail, for every k the run of a small MLP makes
// (and every few k for a small class-conditional U-Net), and
//   - a named device: the run ends with a device-failure status whose message names the device,
//     never with success; the checkpoint file is always loadable: untouched, or the last
//     consistent state (rescued) at the step it was taken;
//   - --device auto (a CPU fallback): the run succeeds on the CPU reference (unless the model's
//     set-up failed, which the caller handles), its checkpoint bitwise the CPU reference's when
//     redone from step 0 and within 1e-5 of it when continued from the copy after step 1;
//   - with DIFFCL_CL_SYNC=1, a kernel whose event reports a negative status is a failure too;
//   - opening a device and building its programs, made to fail at each call, fails cleanly;
// and after every run the OpenCL objects alive are exactly those the open device holds (zero once
// it is closed): nothing leaks on any error path. Built only with DIFFCL_FAULT_INJECTION.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h> // the error codes the faults use
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "testlib_idx.h"       // check_write_idx
#include "device/test_hooks.h" // dcl__cl_fault_arm, dcl__cl_live_objects
#include "diffcl/data.h"
#include "diffcl/log.h"
#include "diffcl/train.h"

#define STEPS 2 // log_every 1: a consistent state after each step

static const cl_int codes[] = {CL_OUT_OF_RESOURCES, CL_MEM_OBJECT_ALLOCATION_FAILURE,
                               CL_INVALID_COMMAND_QUEUE};
#define N_CODES (sizeof codes / sizeof *codes)

// The network under test: a small MLP on the spiral, or a small class-conditional U-Net on 8×8
// images; training uses batches of `batch`.
static dcl_model_config config;
static int batch;

static char tmpdir[256], idx_spec[sizeof config.data];

static void use_mlp(void) {
    memset(&config, 0, sizeof config);
    CHECK_EQ(dcl_process_parse("flow", &config.process), DCL_OK);
    config.pred = DCL_PREDICT_VELOCITY;
    config.net.kind = DCL_NET_MLP;
    config.net.mlp = (dcl_mlp_config){.dim = 2, .width = 8, .depth = 2, .emb_dim = 4};
    snprintf(config.data, sizeof config.data, "spiral");
    config.seed = 3;
    batch = 32;
}

static void use_unet(void) {
    use_mlp();
    config.net.kind = DCL_NET_UNET;
    dcl_unet_config *u = &config.net.unet;
    dcl_unet_config_default(u, 1, 8, 8);
    u->base = 4, u->levels = 2, u->mult[0] = 1, u->mult[1] = 2;
    u->groups = 2, u->emb_dim = 4, u->num_classes = 3;
    config.cond_drop = 0.5;
    memcpy(config.data, idx_spec, sizeof config.data);
    batch = 4;
}

static dcl_train_opts tiny_opts(const char *out, dcl_device *fallback) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = STEPS, o.batch = batch, o.log_every = 1, o.warmup = 1;
    o.out = out, o.fallback = fallback;
    return o;
}

// OpenCL calls the last train() made before dcl_train began, and in all.
static long setup_calls, all_calls;

// Initialises the model on dev and trains it with o; the model is freed.
static dcl_status train(dcl_device *dev, const dcl_train_opts *o, int *moved) {
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    long c0 = dcl__cl_fault_calls();
    dcl_status s = dcl_dataset_open(&ds, config.data, config.seed);
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &config, (size_t)batch);
    setup_calls = dcl__cl_fault_calls() - c0;
    if (s == DCL_OK) s = dcl_train(dev, &m, ds, o, NULL, NULL, NULL, NULL);
    if (moved) *moved = m.net && dcl_buffer_device(dcl_net_params(m.net)->buf) != dev;
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    all_calls = dcl__cl_fault_calls() - c0;
    return s;
}

static int write_file(const char *path, const unsigned char *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f) fclose(f);
    return ok;
}

// A checkpoint's bytes and what it holds (weights then EMA weights, read on the CPU).
typedef struct ckpt {
    unsigned char *bytes;
    size_t size;
    float *w; // 2 P
    size_t P;
    long long step;
} ckpt;

static int ckpt_read(ckpt *k, const char *path, dcl_device *cpu) {
    memset(k, 0, sizeof *k);
    dcl_model m = {0};
    if (!check_read_file(path, &k->bytes, &k->size)) return 0;
    if (dcl_model_load(&m, cpu, path, 1) != DCL_OK) {
        fprintf(stderr, "%s does not load: %s\n", path, dcl_last_error());
        return 0;
    }
    k->P = dcl_net_params(m.net)->n;
    k->step = m.cfg.step;
    k->w = malloc(2 * k->P * sizeof *k->w);
    int ok = k->w && dcl_buffer_read(dcl_net_params(m.net)->buf, 0, k->P, k->w) == DCL_OK &&
             dcl_buffer_read(m.ema.buf, 0, k->P, k->w + k->P) == DCL_OK;
    dcl_model_free(&m);
    return ok;
}

static void ckpt_free(ckpt *k) {
    free(k->bytes), free(k->w);
    memset(k, 0, sizeof *k);
}

static int same_bytes(const ckpt *a, const ckpt *b) {
    return a->size == b->size && memcmp(a->bytes, b->bytes, a->size) == 0;
}

static double max_diff(const ckpt *a, const ckpt *b) {
    if (a->P != b->P) return 1e30;
    double d = 0;
    for (size_t i = 0; i < 2 * a->P; i++) {
        double e = fabs((double)a->w[i] - b->w[i]);
        if (!(e <= d)) d = e;
    }
    return d;
}

static long live(const char *when, long want) {
    char desc[256];
    long n = dcl__cl_live_objects(desc, sizeof desc);
    if (n != want) {
        fprintf(stderr, "%s: %ld OpenCL objects alive, want %ld (%s)\n", when, n, want, desc);
        check_failures++;
    }
    return n;
}

// One sweep: for k = 1, 1 + stride, ... the k-th OpenCL call of train(dev, o) fails, until a run
// makes fewer than k calls. verdict(k, status, moved) checks the outcome.
typedef void (*verdict_fn)(const char *spec, long k, dcl_status s, int moved, void *ctx);

static long sweep(const char *spec, const char *name, dcl_device *dev, const dcl_train_opts *o,
                  const cl_int *code, long stride, long baseline, verdict_fn verdict, void *ctx) {
    long k, runs = 0;
    for (k = 1;; k += stride) {
        int moved = 0;
        dcl__cl_fault_arm(k, code ? *code : codes[k % N_CODES]);
        dcl_status s = train(dev, o, &moved);
        int fired = dcl__cl_fault_fired();
        dcl__cl_fault_arm(0, CL_SUCCESS);
        char when[96];
        snprintf(when, sizeof when, "%s: %s, call %ld failing", spec, name, k);
        live(when, baseline);
        if (!fired) { // the run made fewer than k calls: the sweep is complete
            CHECK_EQ(s, DCL_OK);
            break;
        }
        runs++;
        verdict(spec, k, s, moved, ctx);
    }
    printf("%-8s %-38s %4ld runs: OpenCL call 1, %ld, %ld, ... fails\n", spec, name, runs,
           1 + stride, 1 + 2 * stride);
    CHECK(runs > 50); // the sweep reached the training step, not just the set-up
    return runs;
}

struct refs {
    dcl_device *cpu;
    const char *path;
    ckpt dev, cpu_ref, before; // fault-free runs; the file's content before each run
    long rescued, untouched, redone, continued;
};

// A named device: failure, never success; the file loads, unchanged or at a consistent step.
static void verdict_named(const char *spec, long k, dcl_status s, int moved, void *ctx) {
    struct refs *r = ctx;
    (void)moved;
    if (!dcl_status_is_device_failure(s) || !strstr(dcl_last_error(), spec)) {
        fprintf(stderr, "%s call %ld: status %s, message: %s\n", spec, k, dcl_status_name(s),
                dcl_last_error());
        check_failures++;
    }
    ckpt now;
    if (!ckpt_read(&now, r->path, r->cpu)) {
        fprintf(stderr, "%s call %ld: the checkpoint does not load after the failure\n", spec, k);
        check_failures++;
        return;
    }
    if (same_bytes(&now, &r->before)) r->untouched++;
    else {
        r->rescued++;
        CHECK(now.step >= 0 && now.step < STEPS);
        CHECK(strstr(dcl_last_error(), "last consistent state") != NULL);
    }
    ckpt_free(&now);
    CHECK(write_file(r->path, r->before.bytes, r->before.size)); // the same start for every k
}

// --device auto: success, on the device or finished on the CPU reference.
static void verdict_auto(const char *spec, long k, dcl_status s, int moved, void *ctx) {
    struct refs *r = ctx;
    ckpt now;
    if (s != DCL_OK) {
        // Only a failure in the model's set-up (the caller's to handle: the CLI sets up on the
        // CPU instead) or before the first consistent copy exists (its two reads) may end it.
        if (!dcl_status_is_device_failure(s) || k > setup_calls + 2) {
            fprintf(stderr, "%s call %ld: auto run failed: %s: %s\n", spec, k, dcl_status_name(s),
                    dcl_last_error());
            check_failures++;
        }
        return;
    }
    if (!ckpt_read(&now, r->path, r->cpu)) {
        check_failures++;
        return;
    }
    CHECK_EQ(now.step, STEPS);
    if (!moved) {
        // Every injected failure is the device's: succeeding on it would mean one went unseen.
        fprintf(stderr, "%s call %ld: the run succeeded without moving to the CPU\n", spec, k);
        check_failures++;
    } else if (same_bytes(&now, &r->cpu_ref)) r->redone++; // from the start, on the CPU
    else r->continued++; // from the copy after step 1: part device, part CPU
    double d = max_diff(&now, &r->cpu_ref);
    if (!(d <= 1e-5)) {
        fprintf(stderr, "%s call %ld: weights differ from the CPU reference's by %g\n", spec, k, d);
        check_failures++;
    }
    ckpt_free(&now);
}

// With DIFFCL_CL_SYNC=1 every kernel's event is checked: a negative status fails the run.
static void verdict_sync(const char *spec, long k, dcl_status s, int moved, void *ctx) {
    (void)moved, (void)ctx;
    if (!dcl_status_is_device_failure(s)) {
        fprintf(stderr, "%s call %ld (sync): status %s\n", spec, k, dcl_status_name(s));
        check_failures++;
    }
}

// The named-device and auto sweeps for the current network; sweeps about `runs` calls.
static void sweep_network(const char *spec, const char *net, dcl_device *dev, dcl_device *cpu,
                          const char *path, long runs) {
    struct refs r = {.cpu = cpu, .path = path};
    dcl_train_opts named = tiny_opts(path, NULL), fallback = tiny_opts(path, cpu);
    // Fault-free references (the first run also builds every program the sweeps use).
    CHECK_EQ(train(cpu, &named, NULL), DCL_OK);
    CHECK(ckpt_read(&r.cpu_ref, path, cpu));
    CHECK_EQ(train(dev, &named, NULL), DCL_OK);
    CHECK(ckpt_read(&r.dev, path, cpu));
    CHECK(ckpt_read(&r.before, path, cpu));
    long stride = all_calls / runs + 1, baseline = dcl__cl_live_objects(NULL, 0);
    printf("%-8s %s: %ld OpenCL calls; device vs CPU reference after %d steps: max |diff| %.3g\n",
           spec, net, all_calls, STEPS, max_diff(&r.dev, &r.cpu_ref));
    char name[64];
    snprintf(name, sizeof name, "%s, named device", net);
    sweep(spec, name, dev, &named, NULL, stride, baseline, verdict_named, &r);
    printf("%-8s   checkpoint untouched %ld, last consistent state saved %ld\n", spec, r.untouched,
           r.rescued);
    CHECK(r.rescued > 0);

    CHECK(write_file(path, r.before.bytes, r.before.size));
    snprintf(name, sizeof name, "%s, auto (CPU fallback)", net);
    sweep(spec, name, dev, &fallback, NULL, stride, baseline, verdict_auto, &r);
    printf("%-8s   redone on the CPU from step 0: %ld, from step 1: %ld\n", spec, r.redone,
           r.continued);
    CHECK(r.redone > 0 && r.continued > 0);
    ckpt_free(&r.dev), ckpt_free(&r.cpu_ref), ckpt_free(&r.before);
}

static void test_device(const char *spec, void *unused) {
    (void)unused;
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    dcl_device *dev = NULL, *cpu = NULL, *sync_dev = NULL;
    CHECK_EQ(dcl_device_open(&cpu, "cpu"), DCL_OK);
    if (dcl_device_open(&dev, spec) != DCL_OK) {
        fprintf(stderr, "open %s: %s\n", spec, dcl_last_error());
        check_failures++;
        dcl_device_free(cpu);
        return;
    }
    use_unet(); // every 10th call or so
    sweep_network(spec, "U-Net", dev, cpu, path, 200);
    use_mlp(); // every call
    sweep_network(spec, "MLP", dev, cpu, path, 1000000);

    // DIFFCL_CL_SYNC=1: events exist (and must be released) and their status is checked.
    setenv("DIFFCL_CL_SYNC", "1", 1);
    dcl_status s = dcl_device_open(&sync_dev, spec);
    unsetenv("DIFFCL_CL_SYNC");
    CHECK_EQ(s, DCL_OK);
    if (s == DCL_OK) {
        dcl_train_opts named = tiny_opts(path, NULL);
        CHECK_EQ(train(sync_dev, &named, NULL), DCL_OK);
        long base2 = dcl__cl_live_objects(NULL, 0);
        const cl_int oor = CL_OUT_OF_RESOURCES;
        sweep(spec, "MLP, DIFFCL_CL_SYNC=1, failed events", sync_dev, &named, &oor, 1, base2,
              verdict_sync, NULL);
        dcl_device_free(sync_dev);
    }
    dcl_device_free(dev);
    live("after closing the devices", 0);

    // Opening: the context, the queue, the probe program's build (from the program cache or
    // source) and its kernel; each failing call fails the open or is recovered from (a cached
    // binary the driver refuses is built from source again), and nothing is left alive.
    long opens = 0;
    for (long k = 1;; k++) {
        dcl__cl_fault_arm(k, codes[k % N_CODES]);
        dcl_device *d = NULL;
        s = dcl_device_open(&d, spec);
        int fired = dcl__cl_fault_fired();
        dcl__cl_fault_arm(0, CL_SUCCESS);
        if (s != DCL_OK)
            CHECK(dcl_status_is_device_failure(s) && strstr(dcl_last_error(), spec) != NULL);
        dcl_device_free(d);
        live("after a failed open", 0);
        if (!fired) break;
        opens++;
    }
    printf("%-8s %-38s %4ld runs: OpenCL call 1, 2, 3, ... fails\n", spec, "opening the device",
           opens);
    CHECK(opens >= 4);
    dcl_device_free(cpu);
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    if (!check_tmpdir(tmpdir, sizeof tmpdir, "diffcl-test-fault") ||
        !check_write_idx(tmpdir, 12, 8, 3, idx_spec, sizeof idx_spec))
        return 1;
    // The program cache in a folder of our own, so the sweeps exercise loading from it.
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache", tmpdir);
    setenv("DIFFCL_CL_CACHE_DIR", cache, 1);
    dcl_log_set_level(DCL_LOG_SILENT); // thousands of expected failures: keep the log quiet
    int rc = check_opencl_devices(test_device, NULL);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return rc;
}
