// `diffcl eval`: how close samples are to the data (sliced Wasserstein-2, beside the floor that
// two data sets of the same size give) and, for a fixed training set, how many samples sit on a
// training point (memorisation: §3.7 of Nakkiran et al. 2024, "Step-by-Step Diffusion: An
// Elementary Tutorial").
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"          // cli_json_string
#include "cli/progress.h"      // cli_bar
#include "core/error.h"        // dcl__fail
#include "diffcl/classifier.h" // dcl_classifier_*
#include "diffcl/data.h"       // dcl_dataset_*
#include "diffcl/eval.h"       // dcl_sw2, dcl_memorised_fraction, dcl_nearest_rms
#include "diffcl/log.h"        // dcl_log
#include "diffcl/plot.h"       // dcl_plot_panels

const cli_command cli_eval_command = {
    .name = "eval",
    .summary = "compare samples with the data: sliced W2 and memorisation",
    .usage = "diffcl eval (--model FILE [sampler flags] | --samples CSV) [--data SPEC]\n"
             "            [--projections N] [--radius R] [--classifier FILE]\n"
             "            [--sweep guidance=W,...|steps=K,... [--plot FILE.png]] [--json]",
    .details =
        "With --model, draws samples as 'diffcl sample' does (same flags, same defaults); with\n"
        "--samples, reads them from a CSV file. --data defaults to the model's dataset (and is\n"
        "required with --samples). Sampling and the nearest-image search show a progress bar.\n"
        "\n"
        "SW2 is the sliced Wasserstein-2 distance between the samples and as many fresh data\n"
        "points: the root mean, over --projections random directions, of the squared W2\n"
        "distance of the 1-D projections. Two independent data sets of the same size are not\n"
        "at distance 0, so the data-vs-data value is printed beside it as the floor.\n"
        "For a fixed training set (NAME:n=K) eval also prints the fraction of samples within\n"
        "--radius of a training point, and the same fraction for fresh data as the baseline:\n"
        "a model that memorised its training set puts most samples on it. For images it prints\n"
        "each sample's RMS distance to the nearest training image instead (beside held-out\n"
        "test images' for Fashion-MNIST and shapesS); the SW2 then compares whole images.\n"
        "\n"
        "--classifier FILE (a 'diffcl classify' checkpoint of the same images; models of\n"
        "fashion-mnist or shapesS, whose test split is the reference) adds the\n"
        "fraction of samples the classifier assigns to the label they were drawn with (overall\n"
        "and per class), and the Frechet distance between Gaussians fitted to its penultimate\n"
        "features of the samples and of as many test images (at most 5000) - FID's formula in\n"
        "this classifier's feature space, not Inception-FID, so comparable only between runs\n"
        "evaluated with the same classifier and n - beside the floor: the same distance between\n"
        "two disjoint sets of test images of that size.\n"
        "\n"
        "--sweep guidance=0,1,2,3,5 (class-conditional models) or steps=5,10,20,50 repeats the\n"
        "evaluation at each value of that sampling flag, the others as given, and prints one\n"
        "row per value: SW2, and with --classifier the class accuracy and Frechet distance, then\n"
        "the floors; --plot FILE.png draws them against the swept value (the Frechet distance\n"
        "beside its floor, and the class accuracy; SW2 and its floor without a classifier).\n"
        "The nearest-image search is skipped in a sweep.\n",
    .examples = "  diffcl eval --model spiral.safetensors\n"
                "  diffcl eval --samples samples.csv --data spiral\n"
                "  diffcl eval --model memorise.safetensors --radius 0.05 --json\n"
                "  diffcl eval --model fm.safetensors --classifier clf.safetensors --n 1000 "
                "--guidance 3 \\\n      --sampler ddim --steps 50\n"
                "  diffcl eval --model fm.safetensors --classifier clf.safetensors --n 1000 "
                "--sweep guidance=0,1,2,3,5 \\\n      --sampler ddim --steps 50 --plot sweep.png\n",
};

// Fresh points from the (unfixed) distribution behind spec: n of them, from stream `salt`.
static dcl_status fresh_points(dcl_dataset *ds, size_t n, uint64_t salt, float **out) {
    *out = malloc(n * dcl_dataset_dim(ds) * sizeof **out);
    if (!*out) return DCL_ERR_NOMEM;
    return dcl_dataset_fresh(ds, *out, n, salt);
}

typedef struct nearest_stats {
    double mean, min;
    size_t n;
} nearest_stats;

// Brute force over every training point, in chunks of samples so a bar can show the progress.
static void nearest(const char *label, const float *x, size_t n, const float *train, size_t n_train,
                    size_t D, nearest_stats *out) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    out->n = 0, out->mean = NAN, out->min = NAN;
    if (!d) return;
    cli_bar bar;
    cli_bar_start(&bar, label, "sample", (int64_t)n, dcl_log_get_level() < DCL_LOG_INFO);
    const size_t chunk = 8;
    for (size_t i = 0; i < n && !cli_signal_pending(); i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        dcl_nearest_rms(x + i * D, k, train, n_train, D, d + i);
        cli_bar_update(&bar, (int64_t)(i + k));
    }
    cli_bar_finish(&bar, NULL);
    double sum = 0, lo = INFINITY;
    for (size_t i = 0; i < n; i++) sum += d[i], lo = fmin(lo, d[i]);
    out->n = n, out->mean = n ? sum / (double)n : NAN, out->min = lo;
    free(d);
}

// The spec of n held-out images of the image set `spec` into out: for the sets with a test split
// (fashion-mnist, shapesS); 0 for the others.
static int test_split_spec(const char *spec, size_t n, char *out, size_t cap) {
    size_t len = strcspn(spec, ":");
    int has = (len == 13 && strncmp(spec, "fashion-mnist", 13) == 0) ||
              (len > 6 && strncmp(spec, "shapes", 6) == 0);
    if (!has || len > 64) return 0;
    snprintf(out, cap, "%.*s:split=test,n=%zu", (int)len, spec, n);
    return 1;
}

// Images: each sample's distance to its nearest training image (memorisation shows as ≈ 0), and
// for a set with a test split the same for as many held-out test images, the level of a model
// that generalises.
static dcl_status image_memorisation(dcl_dataset *ds, const char *spec, const float *x, size_t N,
                                     size_t D, nearest_stats *near, nearest_stats *base) {
    dcl_log(DCL_LOG_INFO, "nearest training image for %zu samples among %zu", N,
            dcl_dataset_size(ds));
    nearest("nearest", x, N, dcl_dataset_points(ds), dcl_dataset_size(ds), D, near);
    char test_spec[128];
    if (strstr(spec, "split=test") ||
        !test_split_spec(spec, N < 10000 ? N : 10000, test_spec, sizeof test_spec))
        return DCL_OK; // no held-out set, or the samples' data is that set already
    dcl_dataset *test = NULL;
    dcl_status s = dcl_dataset_open(&test, test_spec, 0);
    if (s == DCL_OK)
        nearest("held-out", dcl_dataset_points(test), dcl_dataset_size(test),
                dcl_dataset_points(ds), dcl_dataset_size(ds), D, base);
    dcl_dataset_free(test);
    return s;
}

#define MAX_CLASSES 64

// What a classifier says of image samples: the fraction classified as their conditioning label
// (overall and per class), and the Fréchet distance between its penultimate features of the
// samples and of as many held-out test images, beside the distance between two disjoint sets of
// test images of that size (the floor).
typedef struct clf_result {
    int done, K;
    double accuracy, fd, fd_floor;
    int64_t correct[MAX_CLASSES], count[MAX_CLASSES];
    size_t F, n_ref;
} clf_result;

// Features (n, F) on the host of the host images x (n, D), in chunks of the classifier's batch.
static dcl_status features(dcl_classifier *c, dcl_device *dev, const float *x, size_t n, size_t D,
                           float *out) {
    size_t F = dcl_classifier_feature_dim(c), B = 256;
    dcl_buffer *buf = NULL;
    dcl_status s = dcl_buffer_alloc(&buf, dev, B * (D + F), "eval.features");
    for (size_t i = 0; s == DCL_OK && i < n; i += B) {
        size_t k = n - i < B ? n - i : B;
        s = dcl_buffer_write(buf, 0, k * D, x + i * D);
        if (s == DCL_OK) s = dcl_classifier_features(c, dcl_at(buf, 0), k, dcl_at(buf, B * D));
        if (s == DCL_OK) s = dcl_buffer_read(buf, B * D, k * F, out + i * F);
    }
    dcl_buffer_free(buf);
    return s;
}

static dcl_status frechet(const float *a, size_t na, const float *b, size_t nb, size_t F,
                          double *out) {
    double *m = malloc(2 * F * (F + 1) * sizeof *m);
    if (!m) return dcl__fail(DCL_ERR_NOMEM, "eval: no memory for %zu features", F);
    double *ma = m, *ca = m + F, *mb = ca + F * F, *cb = mb + F;
    dcl_status s = dcl_gaussian_fit(a, na, F, ma, ca);
    if (s == DCL_OK) s = dcl_gaussian_fit(b, nb, F, mb, cb);
    if (s == DCL_OK) s = dcl_frechet_distance(ma, ca, mb, cb, F, out);
    free(m);
    return s;
}

// The classifier's metrics of samples x (N, D) with labels (N, may be NULL: no accuracy). The
// reference images are the first N of the data's test split, the floor set the next N.
static dcl_status classify_samples(const char *path, const char *device, const char *data_spec,
                                   const float *x, const int32_t *labels, size_t N, size_t D,
                                   clf_result *r) {
    dcl_device *dev = NULL, *fallback = NULL;
    dcl_classifier *c = NULL;
    dcl_dataset *test = NULL;
    float *f = NULL;
    int32_t *pred = NULL;
    size_t n_ref = N < 5000 ? N : 5000;
    dcl_status s = cli_open_device(device, &dev, &fallback);
    if (s == DCL_OK) s = dcl_classifier_load(&c, dev, path, 256);
    if (s == DCL_OK) {
        const dcl_classifier_config *cc = dcl_classifier_get_config(c);
        r->K = cc->classes, r->F = dcl_classifier_feature_dim(c);
        if ((size_t)cc->channels * cc->height * cc->width != D || r->K > MAX_CLASSES)
            s = dcl__fail(DCL_ERR_ARG,
                          "--classifier %s classifies %dx%dx%d images of %d classes; "
                          "the samples have %zu values each",
                          path, cc->channels, cc->height, cc->width, r->K, D);
    }
    char spec[128];
    test_split_spec(data_spec, 2 * n_ref, spec, sizeof spec);
    if (s == DCL_OK) s = dcl_dataset_open(&test, spec, 0);
    if (s == DCL_OK && dcl_dataset_size(test) < 2 * n_ref)
        s = dcl__fail(DCL_ERR_ARG, "eval: --n %zu needs %zu test images, the test split has %zu", N,
                      2 * n_ref, dcl_dataset_size(test));
    if (s == DCL_OK && !(f = malloc((N + 2 * n_ref) * r->F * sizeof *f)))
        s = dcl__fail(DCL_ERR_NOMEM, "eval: no memory for the features");
    if (s == DCL_OK) s = features(c, dev, x, N, D, f);
    if (s == DCL_OK) s = features(c, dev, dcl_dataset_points(test), 2 * n_ref, D, f + N * r->F);
    if (s == DCL_OK) s = frechet(f, N, f + N * r->F, n_ref, r->F, &r->fd);
    if (s == DCL_OK)
        s = frechet(f + (N + n_ref) * r->F, n_ref, f + N * r->F, n_ref, r->F, &r->fd_floor);
    if (s == DCL_OK && labels) {
        // Accuracy: the samples' predicted classes against the labels they were drawn with.
        dcl_buffer *buf = NULL;
        pred = malloc(N * sizeof *pred);
        s = pred ? dcl_buffer_alloc(&buf, dev, N * D, "eval.samples") : DCL_ERR_NOMEM;
        if (s == DCL_OK) s = dcl_buffer_write(buf, 0, N * D, x);
        if (s == DCL_OK) s = dcl_classifier_predict(c, dcl_at(buf, 0), N, pred);
        dcl_buffer_free(buf);
        int64_t hit = 0, total = 0;
        for (size_t i = 0; s == DCL_OK && i < N; i++) {
            if (labels[i] < 0 || labels[i] >= r->K) continue; // unconditional samples
            r->count[labels[i]]++, total++;
            if (pred[i] == labels[i]) r->correct[labels[i]]++, hit++;
        }
        r->accuracy = total ? (double)hit / (double)total : NAN;
    } else {
        r->accuracy = NAN;
    }
    r->n_ref = n_ref, r->done = s == DCL_OK;
    free(f), free(pred);
    dcl_dataset_free(test);
    dcl_classifier_free(c);
    dcl_device_free(dev);
    dcl_device_free(fallback);
    return s;
}

// What eval measures.
typedef struct eval_result {
    char title[256];       // where the samples come from
    const char *data_spec; // what they are compared with (--data, else the model's)
    size_t N, D, n_train;
    double sw2, sw2_floor;
    double mem, mem_base; // memorised fractions (points, fixed training set); -1: not measured
    int image;
    nearest_stats near, near_base; // images
    clf_result clf;                // --classifier
} eval_result;

typedef struct eval_flags {
    cli_sample_flags f;
    const char *samples_csv, *data_spec, *classifier;
    const char *sweep, *plot; // --sweep NAME=V1,V2,...; --plot FILE.png
    uint64_t projections;
    double radius;
    int json;
    int sweeping; // inside a sweep: skip the nearest-image search
} eval_flags;

// Draws or reads the samples and measures them against the data. DCL_ERR_ARG: a bad flag.
static dcl_status eval_compute(const eval_flags *e, const char *device, eval_result *r) {
    cli_samples smp = {0};
    dcl_dataset *sample_set = NULL, *ds = NULL;
    const float *x = NULL;
    dcl_status s;
    memset(r, 0, sizeof *r);
    r->mem = r->mem_base = -1;
    r->data_spec = e->data_spec;
    if (e->f.model) {
        s = cli_sample_model(&e->f, device, &smp);
        if (s == DCL_OK) {
            x = smp.x, r->N = smp.N, r->D = smp.D;
            cli_samples_title(&smp, r->title, sizeof r->title);
        }
    } else {
        char spec[4096];
        snprintf(spec, sizeof spec, "csv:%s", e->samples_csv);
        s = dcl_dataset_open(&sample_set, spec, 0);
        if (s == DCL_OK) {
            x = dcl_dataset_points(sample_set), r->N = dcl_dataset_size(sample_set);
            r->D = dcl_dataset_dim(sample_set);
            snprintf(r->title, sizeof r->title, "%s", e->samples_csv);
        }
    }
    // The data: seed of the model (so a fixed set is the model's training set) or 0.
    if (s == DCL_OK) s = dcl_dataset_open(&ds, r->data_spec, e->f.model ? smp.cfg.seed : 0);
    if (s == DCL_OK && dcl_dataset_dim(ds) != r->D)
        s = dcl__fail(DCL_ERR_ARG, "--data %s has %zu dimensions but the samples have %zu",
                      r->data_spec, dcl_dataset_dim(ds), r->D);
    float *data = NULL, *floor_set = NULL;
    size_t N = r->N, D = r->D;
    r->image = s == DCL_OK && dcl_dataset_image_shape(ds, NULL, NULL, NULL);
    if (s == DCL_OK && r->image && !e->sweeping)
        s = image_memorisation(ds, r->data_spec, x, N, D, &r->near, &r->near_base);
    if (s == DCL_OK && cli_signal_pending())
        s = dcl__fail(DCL_ERR_CANCELLED, "eval stopped by a signal");
    char unused[128];
    if (s == DCL_OK && e->classifier &&
        (!r->image || !test_split_spec(r->data_spec, 1, unused, sizeof unused)))
        s = dcl__fail(DCL_ERR_ARG,
                      "--classifier measures images of a set with a test split (fashion-mnist, "
                      "shapesS) against that split; these samples are of %s",
                      r->data_spec);
    if (s == DCL_OK && e->classifier)
        s = classify_samples(e->classifier, device, r->data_spec, x, e->f.model ? smp.labels : NULL,
                             N, D, &r->clf);
    if (s == DCL_OK) s = fresh_points(ds, N, 2, &data);
    if (s == DCL_OK) s = fresh_points(ds, N, 3, &floor_set);
    if (s == DCL_OK) {
        r->sw2 = dcl_sw2(x, N, data, N, D, (int)e->projections, 7);
        r->sw2_floor = dcl_sw2(floor_set, N, data, N, D, (int)e->projections, 7);
        r->n_train = dcl_dataset_size(ds);
        if (r->n_train && !r->image) {
            const float *train = dcl_dataset_points(ds);
            r->mem = dcl_memorised_fraction(x, N, train, r->n_train, D, e->radius);
            r->mem_base = dcl_memorised_fraction(data, N, train, r->n_train, D, e->radius);
        }
    }
    free(data), free(floor_set);
    dcl_dataset_free(ds);
    dcl_dataset_free(sample_set);
    cli_samples_free(&smp);
    return s;
}

static void print_json(const eval_flags *e, const eval_result *r) {
    printf("{\"samples\": ");
    cli_json_string(stdout, r->title);
    printf(", \"n\": %zu, \"data\": ", r->N);
    cli_json_string(stdout, r->data_spec);
    printf(", \"sw2\": %.6g, \"sw2_floor\": %.6g, \"projections\": %llu", r->sw2, r->sw2_floor,
           (unsigned long long)e->projections);
    if (r->mem >= 0)
        printf(", \"radius\": %g, \"memorised\": %.6g, \"memorised_fresh_data\": %.6g", e->radius,
               r->mem, r->mem_base);
    if (r->image && r->near.n)
        printf(", \"nearest_train_rms\": {\"mean\": %.6g, \"min\": %.6g}", r->near.mean,
               r->near.min);
    if (r->image && r->near_base.n)
        printf(", \"nearest_train_rms_held_out\": {\"mean\": %.6g, \"min\": %.6g}",
               r->near_base.mean, r->near_base.min);
    if (r->clf.done) {
        printf(", \"classifier\": ");
        cli_json_string(stdout, e->classifier);
        printf(", \"class_accuracy\": %.6g, \"class_accuracy_per_class\": [", r->clf.accuracy);
        for (int k = 0; k < r->clf.K; k++)
            printf("%s%.6g", k ? ", " : "",
                   r->clf.count[k] ? (double)r->clf.correct[k] / (double)r->clf.count[k] : NAN);
        printf("], \"frechet_distance\": %.6g, \"frechet_distance_floor\": %.6g, "
               "\"feature_dim\": %zu, \"reference_images\": %zu",
               r->clf.fd, r->clf.fd_floor, r->clf.F, r->clf.n_ref);
    }
    printf("}\n");
}

static void print_classifier(const eval_flags *e, const clf_result *c) {
    if (c->accuracy == c->accuracy) {
        printf("class acc.    %.1f%% of samples classified as their label (%s)\n",
               100 * c->accuracy, e->classifier);
        printf("per class    ");
        for (int k = 0; k < c->K; k++)
            if (c->count[k]) printf(" %d:%.0f%%", k, 100.0 * c->correct[k] / c->count[k]);
        printf("\n");
    }
    printf("Fréchet dist. %.4f   (the classifier's %zu-d penultimate features, NOT Inception-FID; "
           "against %zu test images)\n",
           c->fd, c->F, c->n_ref);
    printf("Fréchet floor %.4f   (test images vs %zu other test images)\n", c->fd_floor, c->n_ref);
}

static void print_text(const eval_flags *e, const eval_result *r) {
    printf("samples       %zu from %s\n", r->N, r->title);
    printf("data          %s\n", r->data_spec);
    printf("SW2           %.4f   (%llu projections)\n", r->sw2, (unsigned long long)e->projections);
    printf("SW2 floor     %.4f   (data vs data, %zu points each)\n", r->sw2_floor, r->N);
    // A model that generalises puts about as many samples near training points as fresh data has
    // there; one that memorised puts far more (tutorial §3.7, figure 6).
    if (r->mem >= 0)
        printf("memorised     %.1f%% of samples within %g of one of the %zu training points "
               "(fresh data: %.1f%%): %s\n",
               100 * r->mem, e->radius, r->n_train, 100 * r->mem_base,
               r->mem > 0.5 && r->mem > 2 * r->mem_base ? "the model reproduces its training set"
                                                        : "no sign of memorisation");
    if (r->image && r->near.n) {
        printf("nearest train %.4f mean, %.4f min (RMS per pixel, [-1, 1] scale, over %zu "
               "samples)\n",
               r->near.mean, r->near.min, r->N);
        if (r->near_base.n)
            printf("held out      %.4f mean, %.4f min (%zu test images: what a model that "
                   "does not copy its training set gives)\n",
                   r->near_base.mean, r->near_base.min, r->near_base.n);
    }
    if (r->clf.done) print_classifier(e, &r->clf);
}

// ---- --sweep: one evaluation per value of a sampling flag, a table and a plot ----------------------

#define MAX_SWEEP 16

typedef struct sweep {
    int steps; // the swept flag: 1 --steps, 0 --guidance
    float v[MAX_SWEEP];
    size_t n;
    eval_result r[MAX_SWEEP];
} sweep;

// Parses "guidance=0,1,3" or "steps=5,10,20" into sw. DCL_ERR_ARG with a message on a bad list.
static dcl_status parse_sweep(const char *arg, sweep *sw) {
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : 0;
    if (eq && len == 8 && strncmp(arg, "guidance", 8) == 0) sw->steps = 0;
    else if (eq && len == 5 && strncmp(arg, "steps", 5) == 0) sw->steps = 1;
    else return dcl__fail(DCL_ERR_ARG, "'%s': use guidance=W1,W2,... or steps=K1,K2,...", arg);
    sw->n = 0;
    for (const char *p = eq + 1;;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end != ',' && *end != '\0'))
            return dcl__fail(DCL_ERR_ARG, "'%s': '%s' is not a number", arg, p);
        if (sw->n == MAX_SWEEP)
            return dcl__fail(DCL_ERR_ARG, "'%s': at most %d values", arg, MAX_SWEEP);
        if (sw->steps ? !(v >= 1 && v <= 100000 && v == floor(v)) : !(v >= 0 && v <= 100))
            return dcl__fail(DCL_ERR_ARG, "'%s': %g is not %s", arg, v,
                             sw->steps ? "a whole number of steps in 1..100000"
                                       : "a guidance weight in [0, 100]");
        sw->v[sw->n++] = (float)v;
        if (*end == '\0') break;
        p = end + 1;
    }
    return DCL_OK;
}

static dcl_status sweep_run(eval_flags *e, const char *device, sweep *sw) {
    e->sweeping = 1;
    for (size_t i = 0; i < sw->n; i++) {
        if (sw->steps) e->f.steps = (uint64_t)sw->v[i];
        else e->f.guidance = sw->v[i];
        dcl_log(DCL_LOG_INFO, "sweep %zu/%zu: %s %g", i + 1, sw->n,
                sw->steps ? "steps" : "guidance", (double)sw->v[i]);
        dcl_status s = eval_compute(e, device, &sw->r[i]);
        if (s != DCL_OK) return s;
    }
    return DCL_OK;
}

static void sweep_print(const eval_flags *e, const sweep *sw) {
    const char *name = sw->steps ? "steps" : "guidance";
    const eval_result *r0 = &sw->r[0];
    if (e->json) {
        printf("{\"samples\": ");
        cli_json_string(stdout, e->f.model);
        printf(", \"data\": ");
        cli_json_string(stdout, r0->data_spec);
        printf(", \"n\": %zu, \"sweep\": \"%s\", \"points\": [", r0->N, name);
        for (size_t i = 0; i < sw->n; i++) {
            const eval_result *r = &sw->r[i];
            printf("%s{\"%s\": %g, \"sw2\": %.6g, \"sw2_floor\": %.6g", i ? ", " : "", name,
                   (double)sw->v[i], r->sw2, r->sw2_floor);
            if (r->clf.done)
                printf(", \"class_accuracy\": %.6g, \"frechet_distance\": %.6g, "
                       "\"frechet_distance_floor\": %.6g",
                       r->clf.accuracy, r->clf.fd, r->clf.fd_floor);
            printf("}");
        }
        printf("]}\n");
        return;
    }
    printf("samples       %zu per point from %s\n", r0->N, e->f.model);
    printf("data          %s\n", r0->data_spec);
    printf("\n%-10s SW2%s\n", name, r0->clf.done ? "       class acc.  Fréchet dist." : "");
    for (size_t i = 0; i < sw->n; i++) {
        const eval_result *r = &sw->r[i];
        printf("%-10g %.4f", (double)sw->v[i], r->sw2);
        if (r->clf.done) printf("    %5.1f%%      %.4f", 100 * r->clf.accuracy, r->clf.fd);
        printf("\n");
    }
    printf("\nfloors        SW2 %.4f (data vs data)", r0->sw2_floor);
    if (r0->clf.done)
        printf(", Fréchet %.4f (test vs test images; the classifier's %zu-d features, NOT "
               "Inception-FID)",
               r0->clf.fd_floor, r0->clf.F);
    printf("\n");
}

// The plot: Fréchet distance (with its floor) and class accuracy against the swept value with a
// classifier, else SW2 and its floor.
static dcl_status sweep_plot(const eval_flags *e, const sweep *sw) {
    float y[4][MAX_SWEEP];
    int clf = sw->r[0].clf.done;
    for (size_t i = 0; i < sw->n; i++) {
        const eval_result *r = &sw->r[i];
        y[0][i] = (float)(clf ? r->clf.fd : r->sw2);
        y[1][i] = (float)(clf ? r->clf.fd_floor : r->sw2_floor);
        y[2][i] = (float)(clf ? 100 * r->clf.accuracy : 0);
    }
    const dcl_plot_series dist[2] = {{"samples", sw->v, y[0], sw->n},
                                     {"floor (data vs data)", sw->v, y[1], sw->n}};
    const dcl_plot_series acc = {NULL, sw->v, y[2], sw->n};
    const dcl_plot_panel panels[2] = {
        {clf ? "Frechet distance" : "sliced W2", dist, 2, 0},
        {"class accuracy (%)", &acc, 1, 0},
    };
    char title[160];
    snprintf(title, sizeof title, "%s sweep, %zu samples per point",
             sw->steps ? "steps" : "guidance", sw->r[0].N);
    return dcl_plot_panels(e->plot, title, sw->steps ? "sampler steps" : "guidance weight", panels,
                           clf ? 2 : 1);
}

int cli_cmd_eval(int argc, char **argv) {
    eval_flags e = {.projections = 256, .radius = 0.05};
    cli_sample_flags_default(&e.f);
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        CLI_SAMPLE_OPTS(e.f),
        {"samples", 0, CLI_OPT_STRING, &e.samples_csv, "CSV", "evaluate these samples instead",
         NULL, 0, 0},
        {"data", 0, CLI_OPT_STRING, &e.data_spec, "SPEC", "the data to compare with", "the model's",
         0, 0},
        {"projections", 0, CLI_OPT_U64, &e.projections, "N", "random directions of the SW2", "256",
         1, 100000},
        {"radius", 0, CLI_OPT_DOUBLE, &e.radius, "R", "memorisation: distance to a training point",
         "0.05", 0, 0},
        {"classifier", 0, CLI_OPT_STRING, &e.classifier, "FILE",
         "images: class accuracy and Fréchet distance with a 'diffcl classify' model", NULL, 0, 0},
        {"sweep", 0, CLI_OPT_STRING, &e.sweep, "NAME=LIST",
         "evaluate at each value: guidance=0,1,3 or steps=5,10,20", NULL, 0, 0},
        {"plot", 0, CLI_OPT_STRING, &e.plot, "FILE.png", "--sweep: draw the metrics against it",
         NULL, 0, 0},
        {"json", 'j', CLI_OPT_FLAG, &e.json, NULL, "print the results as JSON", NULL, 0, 0},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_eval_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (!e.f.model == !e.samples_csv)
        return cli_usage_error("eval", "give exactly one of --model FILE and --samples CSV");
    if (e.samples_csv && !e.data_spec)
        return cli_usage_error("eval", "--samples needs --data SPEC (the data to compare with)");
    if (!(e.radius > 0)) return cli_usage_error("eval", "--radius must be > 0");
    // --data defaults to the model's dataset.
    dcl_model_config cfg;
    if (e.f.model) {
        dcl_status s = dcl_model_read_config(e.f.model, &cfg);
        if (s != DCL_OK) return cli_report(s);
        if (!e.data_spec) e.data_spec = cfg.data;
    }
    if (e.sweep) {
        static sweep sw; // 16 results with their per-class counts: too large for the stack
        if (!e.f.model) return cli_usage_error("eval", "--sweep needs --model FILE");
        if (parse_sweep(e.sweep, &sw) != DCL_OK)
            return cli_usage_error("eval", "--sweep %s", dcl_last_error());
        if (!sw.steps && dcl_net_num_classes(&cfg.net) == 0)
            return cli_usage_error("eval", "--sweep guidance: %s is unconditional (no classes)",
                                   e.f.model);
        if (e.plot) {
            dcl_status s = cli_check_output_as("--plot", e.plot, ".png");
            if (s != DCL_OK) return cli_report(s);
        }
        dcl_status s = sweep_run(&e, common.device, &sw);
        if (s == DCL_ERR_ARG) return cli_usage_error("eval", "%s", dcl_last_error());
        if (s == DCL_ERR_CANCELLED) return cli_report_cancelled();
        if (s != DCL_OK) return cli_report(s);
        sweep_print(&e, &sw);
        if (e.plot && (s = sweep_plot(&e, &sw)) != DCL_OK) return cli_report(s);
        if (e.plot) dcl_log(DCL_LOG_INFO, "wrote %s", e.plot);
        return CLI_EXIT_OK;
    }
    if (e.plot) return cli_usage_error("eval", "--plot draws a --sweep; give --sweep too");
    eval_result r;
    dcl_status s = eval_compute(&e, common.device, &r);
    if (s == DCL_ERR_ARG && e.f.model) return cli_usage_error("eval", "%s", dcl_last_error());
    if (s == DCL_ERR_CANCELLED) return cli_report_cancelled();
    if (s != DCL_OK) return cli_report(s);
    if (e.json) print_json(&e, &r);
    else print_text(&e, &r);
    return CLI_EXIT_OK;
}
