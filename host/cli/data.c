// `diffcl data`: writes the points of a dataset as CSV, or their scatter plot as PNG, so a dataset
// spec can be looked at before training on it.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "diffcl/data.h" // dcl_dataset_*, dcl_csv_write
#include "diffcl/log.h"  // dcl_log
#include "diffcl/plot.h" // dcl_plot_scatter

#define DEFAULT_N 10000

const cli_command cli_data_command = {
    .name = "data",
    .summary = "write a dataset's points as CSV or their scatter plot as PNG",
    .usage = "diffcl data --data SPEC --out FILE.csv|FILE.png [--n N] [--seed N]",
    .details =
        "Draws points of a dataset the way training sees them and writes them to --out: a CSV\n"
        "(header x0,x1,... then one row per point) or a PNG scatter plot, chosen by the file's\n"
        "extension. Built-in 2D sets: spiral, moons, checkerboard, gmm8, annulus, swissroll.\n"
        "Options follow a colon: n=N fixes a training set of N points drawn once from the seed\n"
        "(spiral:n=40, as in the tutorial's figure 6), noise=STD sets the noise. csv:PATH reads\n"
        "points from a CSV file (header optional). A fresh set gives --n points (the first\n"
        "training batch of that size); a fixed set or a CSV gives all of its points.\n",
    .examples = "  diffcl data --data spiral --out spiral.png\n"
                "  diffcl data --data spiral:n=40 --seed 3 --out spiral40.csv\n"
                "  diffcl data --data moons:noise=0.1 --n 2000 --out moons.png\n"
                "  diffcl data --data csv:points.csv --out points.png\n",
    .device_help = "not used: datasets are made on the host",
    .device_def = "-",
};

// ".csv" -> 'c', ".png" -> 'p', anything else 0 (any case).
static int output_kind(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    if (strcasecmp(dot, ".csv") == 0) return 'c';
    if (strcasecmp(dot, ".png") == 0) return 'p';
    return 0;
}

int cli_cmd_data(int argc, char **argv) {
    const char *spec = NULL, *out = NULL;
    uint64_t n = 0, seed = 0;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"data", 'd', CLI_OPT_STRING, (void *)&spec, "SPEC",
         "dataset: spiral, moons, checkerboard, gmm8, annulus, swissroll or csv:PATH", NULL, 0, 0},
        {"out", 'o', CLI_OPT_STRING, (void *)&out, "FILE",
         "output: FILE.csv (points) or FILE.png (scatter plot)", NULL, 0, 0},
        {"n", 'n', CLI_OPT_U64, &n, "N",
         "points of a fresh set (a fixed set writes all of its own)", "10000", 1, DCL_CSV_MAX_ROWS},
        {"seed", 's', CLI_OPT_U64, &seed, "N", "seed of the dataset's random numbers", "0", 0,
         UINT64_MAX},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_data_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (!spec) return cli_usage_error("data", "--data SPEC is required (e.g. --data spiral)");
    if (!out) return cli_usage_error("data", "--out FILE.csv or --out FILE.png is required");
    int kind = output_kind(out);
    if (!kind)
        return cli_usage_error("data", "--out must end in .csv (points) or .png (plot), got '%s'",
                               out);

    dcl_dataset *ds = NULL;
    dcl_status s = dcl_dataset_open(&ds, spec, seed);
    if (s != DCL_OK) return cli_report(s);
    size_t D = dcl_dataset_dim(ds), count = dcl_dataset_size(ds);
    const float *points = dcl_dataset_points(ds);
    float *fresh = NULL;
    if (!points) {
        count = n ? (size_t)n : DEFAULT_N;
        fresh = malloc(count * D * sizeof *fresh);
        if (!fresh) s = DCL_ERR_NOMEM;
        else s = dcl_dataset_batch(ds, fresh, count, 0);
        points = fresh;
    } else if (n) {
        dcl_log(DCL_LOG_INFO, "--n %llu is not used: '%s' is a fixed set of %zu points",
                (unsigned long long)n, spec, count);
    }
    if (s == DCL_OK && kind == 'c') {
        s = dcl_csv_write(out, points, count, D);
    } else if (s == DCL_OK) {
        if (D != 2) {
            dcl_dataset_free(ds);
            free(fresh);
            return cli_usage_error("data",
                                   "a PNG scatter plot needs 2D points; '%s' has %zu columns "
                                   "(write it as .csv instead)",
                                   spec, D);
        }
        char title[128];
        snprintf(title, sizeof title, "%s, seed %llu", spec, (unsigned long long)seed);
        s = dcl_plot_scatter(out, title, points, count, NULL, 0);
    }
    if (s == DCL_OK)
        dcl_log(DCL_LOG_INFO, "wrote %zu points of %s (seed %llu) to %s", count, spec,
                (unsigned long long)seed, out);
    dcl_dataset_free(ds);
    free(fresh);
    return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
}
