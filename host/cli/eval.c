// `diffcl eval`: how close samples are to the data (sliced Wasserstein-2, beside the floor that
// two data sets of the same size give) and, for a fixed training set, how many samples sit on a
// training point (memorisation: §3.7 of Nakkiran et al. 2024, "Step-by-Step Diffusion: An
// Elementary Tutorial").
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"     // cli_json_string
#include "cli/progress.h" // cli_bar
#include "core/error.h"   // dcl__fail
#include "diffcl/data.h"  // dcl_dataset_*
#include "diffcl/eval.h"  // dcl_sw2, dcl_memorised_fraction, dcl_nearest_rms
#include "diffcl/log.h"   // dcl_log

const cli_command cli_eval_command = {
    .name = "eval",
    .summary = "compare samples with the data: sliced W2 and memorisation",
    .usage = "diffcl eval (--model FILE [sampler flags] | --samples CSV) [--data SPEC]\n"
             "            [--projections N] [--radius R] [--json]",
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
        "test images' for Fashion-MNIST); the SW2 then compares whole images.\n",
    .examples = "  diffcl eval --model spiral.safetensors\n"
                "  diffcl eval --samples samples.csv --data spiral\n"
                "  diffcl eval --model memorise.safetensors --radius 0.05 --json\n",
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

// Images: each sample's distance to its nearest training image (memorisation shows as ≈ 0), and
// for Fashion-MNIST the same for as many held-out test images, the level of a model that
// generalises.
static dcl_status image_memorisation(dcl_dataset *ds, const char *spec, const float *x, size_t N,
                                     size_t D, nearest_stats *near, nearest_stats *base) {
    dcl_log(DCL_LOG_INFO, "nearest training image for %zu samples among %zu", N,
            dcl_dataset_size(ds));
    nearest("nearest", x, N, dcl_dataset_points(ds), dcl_dataset_size(ds), D, near);
    if (strncmp(spec, "fashion-mnist", 13) != 0 || strstr(spec, "split=test")) return DCL_OK;
    char test_spec[64];
    snprintf(test_spec, sizeof test_spec, "fashion-mnist:split=test,n=%zu", N < 10000 ? N : 10000);
    dcl_dataset *test = NULL;
    dcl_status s = dcl_dataset_open(&test, test_spec, 0);
    if (s == DCL_OK)
        nearest("held-out", dcl_dataset_points(test), dcl_dataset_size(test),
                dcl_dataset_points(ds), dcl_dataset_size(ds), D, base);
    dcl_dataset_free(test);
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
} eval_result;

typedef struct eval_flags {
    cli_sample_flags f;
    const char *samples_csv, *data_spec;
    uint64_t projections;
    double radius;
    int json;
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
    if (s == DCL_OK && r->image)
        s = image_memorisation(ds, r->data_spec, x, N, D, &r->near, &r->near_base);
    if (s == DCL_OK && cli_signal_pending())
        s = dcl__fail(DCL_ERR_CANCELLED, "eval stopped by a signal");
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
    if (r->image)
        printf(", \"nearest_train_rms\": {\"mean\": %.6g, \"min\": %.6g}", r->near.mean,
               r->near.min);
    if (r->image && r->near_base.n)
        printf(", \"nearest_train_rms_held_out\": {\"mean\": %.6g, \"min\": %.6g}",
               r->near_base.mean, r->near_base.min);
    printf("}\n");
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
    if (r->image) {
        printf("nearest train %.4f mean, %.4f min (RMS per pixel, [-1, 1] scale, over %zu "
               "samples)\n",
               r->near.mean, r->near.min, r->N);
        if (r->near_base.n)
            printf("held out      %.4f mean, %.4f min (%zu test images: what a model that "
                   "does not copy its training set gives)\n",
                   r->near_base.mean, r->near_base.min, r->near_base.n);
    }
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
    if (e.f.model && !e.data_spec) {
        dcl_status s = dcl_model_read_config(e.f.model, &cfg);
        if (s != DCL_OK) return cli_report(s);
        e.data_spec = cfg.data;
    }
    eval_result r;
    dcl_status s = eval_compute(&e, common.device, &r);
    if (s == DCL_ERR_ARG && e.f.model) return cli_usage_error("eval", "%s", dcl_last_error());
    if (s == DCL_ERR_CANCELLED) return cli_report_cancelled();
    if (s != DCL_OK) return cli_report(s);
    if (e.json) print_json(&e, &r);
    else print_text(&e, &r);
    return CLI_EXIT_OK;
}
