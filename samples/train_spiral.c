// diffcl as a library: trains a flow-matching model on the 2-D spiral, saves it, draws 2,000 samples
// and plots them over the data. Build with samples/CMakeLists.txt (find_package(diffcl)) or
//   cc train_spiral.c $(pkg-config --cflags --libs --static diffcl)
// Run: train_spiral [DEVICE [OUT]]: DEVICE auto (default), cpu, cl:0:0, ...; writes
// OUT.safetensors and OUT.png (OUT: spiral).
#include <stdio.h>

#include <diffcl/diffcl.h>

#define N 2000 // samples drawn, data points plotted

// Every diffcl function returns a dcl_status; dcl_last_error() then says what failed.
#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((s = (call)) != DCL_OK) goto done;                                                     \
    } while (0)

static dcl_status on_report(void *ctx, const dcl_train_report *r) {
    (void)ctx;
    printf("step %4lld/%lld  loss %.4f\n", (long long)r->step, (long long)r->total, r->loss);
    return DCL_OK;
}

int main(int argc, char **argv) {
    const char *spec = argc > 1 ? argv[1] : "auto", *out = argc > 2 ? argv[2] : "spiral";
    static float data[N * 2], x[N * 2];
    char model_path[1024], plot_path[1024];
    snprintf(model_path, sizeof model_path, "%s.safetensors", out);
    snprintf(plot_path, sizeof plot_path, "%s.png", out);
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    dcl_model_config cfg;
    dcl_model_config_default(&cfg); // flow matching, an MLP for 2-D points, data "spiral"
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = 1000, o.batch = 512;
    dcl_sampler_opts so = {.kind = DCL_SAMPLER_EULER, .steps = 50};
    dcl_status s;

    printf("diffcl %s\n", dcl_version());
    TRY(dcl_device_open(&dev, spec));
    TRY(dcl_dataset_open(&ds, cfg.data, cfg.seed));
    TRY(dcl_model_init(&m, dev, &cfg, N)); // batches up to N: training's 512, sampling's N
    TRY(dcl_train(dev, &m, ds, &o, on_report, NULL, NULL, NULL));
    TRY(dcl_model_save(&m, model_path));
    TRY(dcl_model_sample(&m, &so, N, 1, 1, NULL, x, NULL)); // seed 1, EMA weights, no labels
    TRY(dcl_dataset_fresh(ds, data, N, 0));
    TRY(dcl_plot_scatter(plot_path, "flow matching, 1000 steps, euler 50", data, N, x, N));
    printf("wrote %s and %s\n", model_path, plot_path);
done:
    if (s != DCL_OK) fprintf(stderr, "train_spiral: %s: %s\n", dcl_status_str(s), dcl_last_error());
    dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
    return s == DCL_OK ? 0 : 1;
}
