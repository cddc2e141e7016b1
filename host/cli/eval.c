// `diffcl eval`: how close samples are to the data (sliced Wasserstein-2, beside the floor that
// two data sets of the same size give) and, for a fixed training set, how many samples sit on a
// training point (memorisation, tutorial §3.7).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/json.h"    // cli_json_string
#include "core/error.h"  // dcl__fail
#include "diffcl/data.h" // dcl_dataset_*
#include "diffcl/eval.h" // dcl_sw2, dcl_memorised_fraction, dcl_nearest_rms
#include "diffcl/log.h"  // dcl_log

const cli_command cli_eval_command = {
    .name = "eval",
    .summary = "compare samples with the data: sliced W2 and memorisation",
    .usage =
        "diffcl eval (--model FILE [sampler flags] | --samples CSV --data SPEC) [--data SPEC]\n"
        "            [--projections N] [--radius R] [--json]",
    .details =
        "With --model, draws samples as 'diffcl sample' does (same flags, same defaults); with\n"
        "--samples, reads them from a CSV file. --data defaults to the model's dataset.\n"
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

static void nearest(const float *x, size_t n, const float *train, size_t n_train, size_t D,
                    nearest_stats *out) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    out->n = 0, out->mean = NAN, out->min = NAN;
    if (!d) return;
    dcl_nearest_rms(x, n, train, n_train, D, d);
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
    nearest(x, N, dcl_dataset_points(ds), dcl_dataset_size(ds), D, near);
    if (strncmp(spec, "fashion-mnist", 13) != 0 || strstr(spec, "split=test")) return DCL_OK;
    char test_spec[64];
    snprintf(test_spec, sizeof test_spec, "fashion-mnist:split=test,n=%zu", N < 10000 ? N : 10000);
    dcl_dataset *test = NULL;
    dcl_status s = dcl_dataset_open(&test, test_spec, 0);
    if (s == DCL_OK)
        nearest(dcl_dataset_points(test), dcl_dataset_size(test), dcl_dataset_points(ds),
                dcl_dataset_size(ds), D, base);
    dcl_dataset_free(test);
    return s;
}

int cli_cmd_eval(int argc, char **argv) {
    cli_sample_flags f;
    cli_sample_flags_default(&f);
    const char *samples_csv = NULL, *data_spec = NULL;
    uint64_t projections = 256;
    double radius = 0.05;
    int json = 0;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        CLI_SAMPLE_OPTS(f),
        {"samples", 0, CLI_OPT_STRING, &samples_csv, "CSV", "evaluate these samples instead", NULL,
         0, 0},
        {"data", 0, CLI_OPT_STRING, &data_spec, "SPEC", "the data to compare with", "the model's",
         0, 0},
        {"projections", 0, CLI_OPT_U64, &projections, "N", "random directions of the SW2", "256", 1,
         100000},
        {"radius", 0, CLI_OPT_DOUBLE, &radius, "R", "memorisation: distance to a training point",
         "0.05", 0, 0},
        {"json", 'j', CLI_OPT_FLAG, &json, NULL, "print the results as JSON", NULL, 0, 0},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_eval_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (!f.model == !samples_csv)
        return cli_usage_error("eval", "give exactly one of --model FILE and --samples CSV");
    if (samples_csv && !data_spec)
        return cli_usage_error("eval", "--samples needs --data SPEC (the data to compare with)");
    if (!(radius > 0)) return cli_usage_error("eval", "--radius must be > 0");

    // The samples: drawn from the model, or read from the CSV file.
    cli_samples r = {0};
    dcl_dataset *sample_set = NULL, *ds = NULL;
    const float *x = NULL;
    size_t N = 0, D = 0;
    char title[256] = "";
    dcl_status s;
    if (f.model) {
        s = cli_sample_model(&f, common.device, &r);
        if (s == DCL_ERR_ARG) return cli_usage_error("eval", "%s", dcl_last_error());
        if (s == DCL_OK) {
            x = r.x, N = r.N, D = r.D;
            cli_samples_title(&r, title, sizeof title);
            if (!data_spec) data_spec = r.cfg.data;
        }
    } else {
        char spec[4096];
        snprintf(spec, sizeof spec, "csv:%s", samples_csv);
        s = dcl_dataset_open(&sample_set, spec, 0);
        if (s == DCL_OK) {
            x = dcl_dataset_points(sample_set), N = dcl_dataset_size(sample_set);
            D = dcl_dataset_dim(sample_set);
            snprintf(title, sizeof title, "%s", samples_csv);
        }
    }
    // The data: seed of the model (so a fixed set is the model's training set) or 0.
    if (s == DCL_OK) s = dcl_dataset_open(&ds, data_spec, f.model ? r.cfg.seed : 0);
    if (s == DCL_OK && dcl_dataset_dim(ds) != D)
        s = dcl__fail(DCL_ERR_ARG, "--data %s has %zu dimensions but the samples have %zu",
                      data_spec, dcl_dataset_dim(ds), D);
    float *data = NULL, *floor_set = NULL;
    double sw2 = 0, sw2_floor = 0, mem = -1, mem_base = -1;
    int image = s == DCL_OK && dcl_dataset_image_shape(ds, NULL, NULL, NULL);
    nearest_stats near = {0}, near_base = {0};
    if (s == DCL_OK && image) s = image_memorisation(ds, data_spec, x, N, D, &near, &near_base);
    if (s == DCL_OK) s = fresh_points(ds, N, 2, &data);
    if (s == DCL_OK) s = fresh_points(ds, N, 3, &floor_set);
    if (s == DCL_OK) {
        sw2 = dcl_sw2(x, N, data, N, D, (int)projections, 7);
        sw2_floor = dcl_sw2(floor_set, N, data, N, D, (int)projections, 7);
        if (dcl_dataset_size(ds) && !image) {
            const float *train = dcl_dataset_points(ds);
            size_t n_train = dcl_dataset_size(ds);
            mem = dcl_memorised_fraction(x, N, train, n_train, D, radius);
            mem_base = dcl_memorised_fraction(data, N, train, n_train, D, radius);
        }
    }
    if (s == DCL_OK && json) {
        printf("{\"samples\": ");
        cli_json_string(stdout, title);
        printf(", \"n\": %zu, \"data\": ", N);
        cli_json_string(stdout, data_spec);
        printf(", \"sw2\": %.6g, \"sw2_floor\": %.6g, \"projections\": %llu", sw2, sw2_floor,
               (unsigned long long)projections);
        if (mem >= 0)
            printf(", \"radius\": %g, \"memorised\": %.6g, \"memorised_fresh_data\": %.6g", radius,
                   mem, mem_base);
        if (image)
            printf(", \"nearest_train_rms\": {\"mean\": %.6g, \"min\": %.6g}", near.mean, near.min);
        if (image && near_base.n)
            printf(", \"nearest_train_rms_held_out\": {\"mean\": %.6g, \"min\": %.6g}",
                   near_base.mean, near_base.min);
        printf("}\n");
    } else if (s == DCL_OK) {
        printf("samples       %zu from %s\n", N, title);
        printf("data          %s\n", data_spec);
        printf("SW2           %.4f   (%llu projections)\n", sw2, (unsigned long long)projections);
        printf("SW2 floor     %.4f   (data vs data, %zu points each)\n", sw2_floor, N);
        // A model that generalises puts about as many samples near training points as fresh
        // data has there; one that memorised puts far more (tutorial §3.7, figure 6).
        if (mem >= 0)
            printf("memorised     %.1f%% of samples within %g of one of the %zu training points "
                   "(fresh data: %.1f%%): %s\n",
                   100 * mem, radius, dcl_dataset_size(ds), 100 * mem_base,
                   mem > 0.5 && mem > 2 * mem_base ? "the model reproduces its training set"
                                                   : "no sign of memorisation");
        if (image) {
            printf("nearest train %.4f mean, %.4f min (RMS per pixel, [-1, 1] scale, over %zu "
                   "samples)\n",
                   near.mean, near.min, N);
            if (near_base.n)
                printf("held out      %.4f mean, %.4f min (%zu test images: what a model that "
                       "does not copy its training set gives)\n",
                       near_base.mean, near_base.min, near_base.n);
        }
    }
    free(data), free(floor_set);
    dcl_dataset_free(ds);
    dcl_dataset_free(sample_set);
    cli_samples_free(&r);
    return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
}
