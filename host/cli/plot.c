// `diffcl plot`: curves from CSV files on one set of axes (say, the loss of two training runs
// that `diffcl train --loss-csv` wrote), each a labelled series, written as PNG.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"  // dcl__fail
#include "diffcl/data.h" // dcl_dataset_* (csv:PATH)
#include "diffcl/log.h"  // dcl_log
#include "diffcl/plot.h" // dcl_plot_panels

#define MAX_CURVES 6 // the plot's distinct series colours

const cli_command cli_plot_command = {
    .name = "plot",
    .summary = "draw curves from CSV files on one set of axes as PNG",
    .usage = "diffcl plot --csv FILE[=LABEL][,FILE[=LABEL]...] --out FILE.png [--title T]\n"
             "            [--xlabel X] [--ylabel Y] [--log-y]",
    .details = "Each CSV file (a header row, then numbers; what 'diffcl train --loss-csv' and\n"
               "'diffcl data --out FILE.csv' write) is one curve: its first column is x, its\n"
               "second y, rows in order. LABEL names the curve in the legend (default: the file\n"
               "name). At most 6 curves; file names may not contain ',' or '='.\n",
    .examples =
        "  diffcl train --data fashion-mnist --steps 1000 --loss-csv plain.csv ...\n"
        "  diffcl train --data fashion-mnist --steps 1000 --attn 7 --loss-csv attn.csv ...\n"
        "  diffcl plot --csv plain.csv=plain,attn.csv='attention at 7x7' --log-y \\\n"
        "      --out loss.png\n",
    .no_device = 1,
};

typedef struct curve {
    char path[1024], label[128];
    dcl_dataset *ds;
    float *x, *y;
} curve;

// Splits "FILE[=LABEL],..." into curves. DCL_ERR_ARG with a message on a malformed list.
static dcl_status parse_list(const char *list, curve *c, int *n) {
    *n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ","), eq = strcspn(p, "=");
        if (*n == MAX_CURVES) return dcl__fail(DCL_ERR_ARG, "at most %d curves", MAX_CURVES);
        size_t file_len = eq < len ? eq : len;
        if (file_len == 0) return dcl__fail(DCL_ERR_ARG, "'%s': an empty file name", list);
        if (file_len >= 1000 || len - file_len >= sizeof c->label)
            return dcl__fail(DCL_ERR_ARG, "'%.*s': too long", (int)len, p);
        curve *k = &c[(*n)++];
        memcpy(k->path, p, file_len);
        k->path[file_len] = '\0';
        if (eq < len) {
            memcpy(k->label, p + eq + 1, len - eq - 1);
            k->label[len - eq - 1] = '\0';
        } else {
            const char *base = strrchr(k->path, '/');
            snprintf(k->label, sizeof k->label, "%.100s", base ? base + 1 : k->path);
        }
        p += len;
        if (*p == ',') p++;
    }
    if (*n == 0) return dcl__fail(DCL_ERR_ARG, "no file given");
    return DCL_OK;
}

// Reads curve k's CSV into its x and y.
static dcl_status read_curve(curve *k) {
    char spec[sizeof k->path + 8];
    snprintf(spec, sizeof spec, "csv:%.1000s", k->path); // parse_list keeps paths shorter
    dcl_status s = dcl_dataset_open(&k->ds, spec, 0);
    if (s != DCL_OK) return s;
    size_t n = dcl_dataset_size(k->ds), D = dcl_dataset_dim(k->ds);
    if (D < 2)
        return dcl__fail(DCL_ERR_FORMAT, "%s: %zu column(s); a curve needs x and y", k->path, D);
    k->x = malloc((n ? n : 1) * sizeof *k->x);
    k->y = malloc((n ? n : 1) * sizeof *k->y);
    if (!k->x || !k->y) return dcl__fail(DCL_ERR_NOMEM, "no memory for %s", k->path);
    const float *p = dcl_dataset_points(k->ds);
    for (size_t i = 0; i < n; i++) k->x[i] = p[i * D], k->y[i] = p[i * D + 1];
    return DCL_OK;
}

int cli_cmd_plot(int argc, char **argv) {
    const char *list = NULL, *out = NULL, *title = NULL, *xlabel = "step", *ylabel = "loss";
    int log_y = 0;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"csv", 0, CLI_OPT_STRING, &list, "LIST", "FILE[=LABEL],...: one curve per file", NULL, 0,
         0},
        {"out", 'o', CLI_OPT_STRING, &out, "FILE.png", "where to write the plot", NULL, 0, 0},
        {"title", 0, CLI_OPT_STRING, &title, "T", "the plot's title", "none", 0, 0},
        {"xlabel", 0, CLI_OPT_STRING, &xlabel, "X", "x axis label", "step", 0, 0},
        {"ylabel", 0, CLI_OPT_STRING, &ylabel, "Y", "y axis label", "loss", 0, 0},
        {"log-y", 0, CLI_OPT_FLAG, &log_y, NULL, "logarithmic y axis", NULL, 0, 0},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_plot_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (!list) return cli_usage_error("plot", "--csv FILE[=LABEL],... is required");
    if (!out) return cli_usage_error("plot", "--out FILE.png is required");
    static curve c[MAX_CURVES];
    int n = 0;
    if (parse_list(list, c, &n) != DCL_OK)
        return cli_usage_error("plot", "--csv %s", dcl_last_error());
    dcl_status s = cli_check_output_as("--out", out, ".png");
    dcl_plot_series series[MAX_CURVES];
    for (int i = 0; i < n && s == DCL_OK; i++) {
        s = read_curve(&c[i]);
        if (s == DCL_OK)
            series[i] = (dcl_plot_series){c[i].label, c[i].x, c[i].y, dcl_dataset_size(c[i].ds)};
    }
    dcl_plot_panel panel = {ylabel, series, (size_t)n, log_y};
    if (s == DCL_OK) s = dcl_plot_panels(out, title, xlabel, &panel, 1);
    if (s == DCL_OK) dcl_log(DCL_LOG_INFO, "wrote %s (%d curves)", out, n);
    for (int i = 0; i < n; i++) {
        dcl_dataset_free(c[i].ds);
        free(c[i].x), free(c[i].y);
    }
    return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
}
