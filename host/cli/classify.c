// `diffcl classify`: trains the image classifier of include/diffcl/classifier.h on a labelled
// image set, writes it as safetensors and reports its accuracy on the test split, overall and per
// class (the classifier that image-sample metrics use).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/progress.h"      // cli_bar
#include "core/error.h"        // dcl__fail
#include "diffcl/classifier.h" // dcl_classifier_*
#include "diffcl/data.h"       // dcl_dataset_*
#include "diffcl/log.h"        // dcl_log

const cli_command cli_classify_command = {
    .name = "classify",
    .summary = "train the image classifier that sample metrics use, report its test accuracy",
    .usage = "diffcl classify --data SPEC --out FILE.safetensors [--test SPEC] [--steps N]\n"
             "                [--batch N] [--lr X] [--seed S] [--device SPEC]",
    .details =
        "Trains a small CNN (four 3x3 convolutions with GroupNorm and SiLU, global average\n"
        "pooling, a linear layer; include/diffcl/classifier.h) with softmax cross-entropy and\n"
        "AdamW (linear warm-up, cosine decay) on a labelled image set, writes its weights and\n"
        "config to --out, then classifies every image of --test and prints the accuracy,\n"
        "overall and per class. Its 4*base-dimensional pooled features are what a Frechet\n"
        "distance of image samples is computed in (in this classifier's feature space, not\n"
        "Inception's). --test defaults to the test split for --data fashion-mnist and shapesS.\n",
    .examples = "  diffcl classify --data fashion-mnist --out clf.safetensors\n"
                "  diffcl classify --data fashion-mnist --out clf.safetensors --steps 500 "
                "--device cpu\n",
};

typedef struct classify_log {
    cli_bar bar;
    double loss, accuracy;
    int have;
} classify_log;

static dcl_status on_log(void *ctx, const dcl_classifier_report *r) {
    classify_log *l = ctx;
    l->loss = r->loss, l->accuracy = r->accuracy, l->have = 1;
    cli_bar_note(&l->bar, "loss %.4f | batch accuracy %.1f%%", r->loss, 100.0 * r->accuracy);
    return DCL_OK;
}

// The test split: --test, or the train spec's test split for Fashion-MNIST and shapesS (its
// default size, 10000 images); NULL for none.
static const char *test_spec(const char *data, const char *test, char *buf, size_t cap) {
    if (test) return test;
    if (strcmp(data, "fashion-mnist") == 0) return "fashion-mnist:split=test";
    size_t len = strcspn(data, ":");
    if (len > 6 && len < 32 && strncmp(data, "shapes", 6) == 0) {
        snprintf(buf, cap, "%.*s:split=test", (int)len, data);
        return buf;
    }
    return NULL;
}

// Classifies every image of the labelled set spec; prints the accuracy overall and per class.
static dcl_status evaluate(dcl_classifier *c, const char *spec, uint64_t seed, int quiet) {
    dcl_dataset *ds = NULL;
    dcl_status s = dcl_dataset_open(&ds, spec, seed);
    if (s != DCL_OK) return s;
    const dcl_classifier_config *g = dcl_classifier_get_config(c);
    int C, H, W, K = g->classes;
    size_t N = dcl_dataset_size(ds);
    const int32_t *labels = dcl_dataset_labels(ds);
    if (!dcl_dataset_image_shape(ds, &C, &H, &W) || C != g->channels || H != g->height ||
        W != g->width || !labels || dcl_dataset_num_classes(ds) > K) {
        dcl_dataset_free(ds);
        return dcl__fail(DCL_ERR_ARG,
                         "--test %s is not a labelled set of %d×%d×%d images of at most %d classes",
                         spec, g->channels, g->height, g->width, K);
    }
    int64_t *correct = calloc((size_t)K, sizeof *correct);
    int64_t *count = calloc((size_t)K, sizeof *count);
    if (!correct || !count) s = DCL_ERR_NOMEM;
    cli_bar bar;
    cli_bar_start(&bar, "test", "image", (int64_t)N, quiet);
    double t0 = cli_now();
    if (s == DCL_OK)
        s = dcl_classifier_evaluate(c, dcl_dataset_points(ds), labels, N, correct, count,
                                    cli_bar_progress, &bar);
    if (s == DCL_OK) {
        cli_bar_finish(&bar, NULL);
        int64_t right = 0;
        for (int k = 0; k < K; k++) right += correct[k];
        printf("test accuracy on %s: %.2f%% (%lld of %zu images, %.1f s)\n", spec,
               100.0 * (double)right / (double)N, (long long)right, N, cli_now() - t0);
        for (int k = 0; k < K; k++) {
            const char *name = dcl_dataset_class_name(ds, k);
            printf("  %2d  %-12s %6.2f%%  (%lld of %lld)\n", k, name ? name : "",
                   count[k] ? 100.0 * (double)correct[k] / (double)count[k] : NAN,
                   (long long)correct[k], (long long)count[k]);
        }
        if (fflush(stdout) != 0) s = dcl__fail(DCL_ERR_IO, "writing to stdout failed");
    }
    free(correct), free(count);
    dcl_dataset_free(ds);
    return s;
}

int cli_cmd_classify(int argc, char **argv) {
    const char *data = "fashion-mnist", *out = NULL, *test = NULL;
    dcl_classifier_train_opts o;
    dcl_classifier_train_opts_default(&o);
    uint64_t steps = (uint64_t)o.steps, batch = (uint64_t)o.batch, seed = 0, base = 16;
    uint64_t log_every = (uint64_t)o.log_every;
    double lr = o.lr;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"data", 'd', CLI_OPT_STRING, (void *)&data, "SPEC",
         "labelled image set: fashion-mnist, idx:IMAGES,LABELS, png:FOLDER", "fashion-mnist", 0, 0},
        {"out", 'o', CLI_OPT_STRING, (void *)&out, "FILE", "the classifier (.safetensors)", NULL, 0,
         0},
        {"test", 0, CLI_OPT_STRING, (void *)&test, "SPEC", "labelled images to report accuracy on",
         "the test split of fashion-mnist and shapesS", 0, 0},
        {"steps", 0, CLI_OPT_U64, &steps, "N", "optimizer steps", "2000", 1, 10000000},
        {"batch", 'b', CLI_OPT_U64, &batch, "N", "images per step", "128", 1, 4096},
        {"lr", 0, CLI_OPT_DOUBLE, &lr, "X", "peak learning rate (warm-up, cosine decay)", "0.003",
         0, 0},
        {"base", 0, CLI_OPT_U64, &base, "N", "channels of the first convolution (F = 4 base)", "16",
         8, 256},
        {"log-every", 0, CLI_OPT_U64, &log_every, "N", "read loss and accuracy back every N steps",
         "100", 1, 1000000},
        {"seed", 's', CLI_OPT_U64, &seed, "S", "seed of the weights and of the batches", "0", 0,
         UINT64_MAX},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_classify_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (!out) return cli_usage_error("classify", "--out FILE.safetensors is required");
    if (!(lr > 0 && lr < 1))
        return cli_usage_error("classify", "--lr must be in (0, 1), got %g", lr);
    if (base % 8)
        return cli_usage_error("classify", "--base must be a multiple of 8, got %llu",
                               (unsigned long long)base);
    o.steps = (int)steps, o.batch = (int)batch, o.lr = lr, o.log_every = (int)log_every;
    if (o.warmup > o.steps / 10) o.warmup = o.steps / 10;

    dcl_dataset *ds = NULL;
    dcl_device *dev = NULL, *fallback = NULL;
    dcl_classifier *c = NULL;
    dcl_status s = cli_check_output("--out", out);
    if (s == DCL_OK) s = dcl_dataset_open(&ds, data, seed);
    int C = 0, H = 0, W = 0, K = ds ? dcl_dataset_num_classes(ds) : 0;
    if (s == DCL_OK && (!dcl_dataset_image_shape(ds, &C, &H, &W) || K < 2))
        s = dcl__fail(DCL_ERR_ARG, "--data %s is not a labelled image set of at least 2 classes",
                      data);
    if (s == DCL_OK) s = cli_open_device(common.device, &dev, &fallback);
    dcl_classifier_config cfg;
    dcl_classifier_config_default(&cfg, C, H, W, K);
    cfg.base = (int)base;
    if (s == DCL_OK) s = dcl_classifier_init(&c, dev, &cfg, seed, (size_t)batch);
    classify_log l = {0};
    double t0 = cli_now();
    if (s == DCL_OK) {
        dcl_log(DCL_LOG_INFO,
                "training a classifier (base %d, %zu features) on %s (%zu images of %dx%dx%d, %d "
                "classes) on %s: %d steps of %d",
                cfg.base, dcl_classifier_feature_dim(c), data, dcl_dataset_size(ds), C, H, W, K,
                dcl_device_get_info(dev)->spec, o.steps, o.batch);
        int quiet = dcl_log_get_level() < DCL_LOG_INFO;
        cli_bar_start(&l.bar, "classify", "step", o.steps, quiet);
        o.progress = cli_bar_progress, o.progress_ctx = &l.bar;
        s = dcl_classifier_train(c, ds, &o, on_log, &l);
        if (s == DCL_OK) {
            char summary[160];
            double secs = cli_now() - t0;
            snprintf(summary, sizeof summary,
                     "%.0f images/s; loss %.4f, batch accuracy %.1f%% at the end",
                     (double)o.steps * o.batch / (secs > 1e-9 ? secs : 1e-9), l.loss,
                     100.0 * l.accuracy);
            cli_bar_finish(&l.bar, l.have ? summary : NULL);
        }
    }
    if (s == DCL_OK) s = dcl_classifier_save(c, out, data);
    if (s == DCL_OK) dcl_log(DCL_LOG_INFO, "wrote %s (trained in %.1f s)", out, cli_now() - t0);
    char ts_buf[64];
    const char *ts = test_spec(data, test, ts_buf, sizeof ts_buf);
    if (s == DCL_OK && ts) s = evaluate(c, ts, seed, dcl_log_get_level() < DCL_LOG_INFO);
    else if (s == DCL_OK) dcl_log(DCL_LOG_INFO, "no --test set given: test accuracy not measured");
    dcl_classifier_free(c);
    dcl_device_free(dev);
    dcl_device_free(fallback);
    dcl_dataset_free(ds);
    return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
}
