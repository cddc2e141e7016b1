// `diffcl check`: runs the op-case table (host/crosscheck/) on each device against the CPU
// reference, then training steps and sampling trajectories, and prints a table for bug reports,
// or the results as JSON.
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "crosscheck/crosscheck.h" // dcl_check_reference_open, dcl_check_case_*, dcl_check_train_step
#include "cli/json.h"   // cli_json_string, cli_json_number, cli_json_float, cli_json_bool
#include "diffcl/log.h" // dcl_log_get_level

const cli_command cli_check_command = {
    .name = "check",
    .summary = "cross-check every op on a device against the CPU reference",
    .usage =
        "diffcl check [--device SPEC|all] [--model FILE] [--sizes LIST] [--seed N] [--offset N]\n"
        "             [--ops-only] [--json]",
    .details =
        "Runs every case of the op table (elementwise ops, GEMM, forward and backward,\n"
        "reductions, random numbers) on each device at ragged sizes with every tensor at a\n"
        "non-zero element offset, and compares element by element with the CPU reference:\n"
        "|a - b| <= atol + rtol*|ref|, NaN/Inf in the same places, guard regions around outputs\n"
        "untouched. Then two full training steps of a small MLP and of a small class-conditional\n"
        "U-Net (on Fashion-MNIST, when installed) run on the device and on the CPU reference\n"
        "from the same seed and data: the second step's loss and every gradient tensor, and\n"
        "every parameter after AdamW, are compared, each tensor against its largest value.\n"
        "Last, each sampler runs 20 steps from the same noise on both, compared after every\n"
        "step; a row fails at the first step beyond its tolerance and names it.\n"
        "The table is meant to be pasted into a bug report. With 'all' and no usable\n"
        "OpenCL device, the CPU reference is checked against itself (which only exercises the\n"
        "harness).\n"
        "\n"
        "Exit status: 0 every case passed; 1 a case gave wrong results; 3 or 5 a device could\n"
        "not be opened or an op failed to run (these take precedence over 1).\n",
    .examples = "  diffcl check\n"
                "  diffcl check --device cl:gpu --sizes 1,4097 --seed 7\n"
                "  diffcl check --device cl:0:0 --json > check.json\n"
                "  diffcl check --device cl:gpu --model fm.safetensors\n",
    .device_help = "device to check, or 'all' for every usable OpenCL device",
    .device_def = "all",
};

typedef struct check_opts {
    cli_sizes sizes;
    uint64_t seed, offset;
    int json;
    int train;         // also training steps and sampling (not --ops-only)
    const char *model; // --model: a checkpoint's own network and config for those
} check_opts;

// What all devices' runs add up to, for the final line and the exit code.
typedef struct check_summary {
    int runs, passed, failed, errors;
    int open_errors;         // devices that could not be opened
    int exit_error;          // exit code of the first error (0: none)
    char first_failure[256]; // "gemm_tn n=257 on cl:0:0"
    int json_items;          // results printed so far (for JSON commas)
} check_summary;

// Prints text with every line after the first indented by pad spaces.
static void print_indented(const char *text, int pad) {
    printf("%*s", pad, "");
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (*p == '\n' && p[1]) printf("%*s", pad, "");
    }
    if (!*text || text[strlen(text) - 1] != '\n') putchar('\n');
}

static int case_name_width(void) {
    int w = 4;
    for (int i = 0; i < dcl_check_case_count(); i++) {
        int l = (int)strlen(dcl_check_case_name(i));
        if (l > w) w = l;
    }
    return w;
}

static void print_header(const dcl_device_info *d, const check_opts *o, int w) {
    printf("== %s  %s\n", d->spec, d->name);
    printf("   platform: %s", d->platform_name);
    if (cli_known(d->driver)) printf("; driver %s", d->driver);
    if (cli_known(d->version)) printf("; %s", d->version);
    printf("; diffcl %s\n", DIFFCL_VERSION_STRING);
    printf("   seed %" PRIu64 ", offset %" PRIu64 ", sizes", o->seed, o->offset);
    for (int i = 0; i < o->sizes.n; i++) printf("%s%zu", i ? "," : " ", o->sizes.v[i]);
    printf("\n\n%-*s  %8s  %11s  %11s  %8s  %8s  %s\n", w, "case", "n", "max abs err",
           "max rel err", "atol", "rtol", "result");
}

static void print_row(const dcl_check_result *r, const char *name, int w, dcl_status s) {
    if (s != DCL_OK) {
        printf("%-*s  %8zu  %11s  %11s  %8s  %8s  ERROR\n", w, name, r->n, "-", "-", "-", "-");
        const char *msg = dcl_last_error();
        print_indented(*msg ? msg : dcl_status_str(s), w + 2);
        return;
    }
    printf("%-*s  %8zu  %11.3g  %11.3g  %8.2g  %8.2g  %s\n", w, name, r->n, r->max_abs, r->max_rel,
           (double)r->atol, (double)r->rtol, r->pass ? "PASS" : "FAIL");
    if (!r->pass && r->detail[0]) print_indented(r->detail, w + 2);
}

static void json_begin_item(check_summary *sum) {
    fputs(sum->json_items++ ? ",\n  " : "[\n  ", stdout);
}

static void print_json_result(const dcl_device_info *d, const dcl_check_result *r, const char *name,
                              const check_opts *o, dcl_status s, check_summary *sum) {
    json_begin_item(sum);
    fputs("{\"device\": ", stdout);
    cli_json_string(stdout, d->spec);
    fputs(", \"device_name\": ", stdout);
    cli_json_string(stdout, d->name);
    fputs(", \"driver\": ", stdout);
    cli_json_string(stdout, d->driver);
    fputs(", \"case\": ", stdout);
    cli_json_string(stdout, name);
    printf(", \"n\": %zu, \"offset\": %" PRIu64 ", \"seed\": %" PRIu64 ", \"elements\": %zu", r->n,
           o->offset, o->seed, r->elements);
    fputs(", \"max_abs\": ", stdout);
    cli_json_number(stdout, r->max_abs);
    fputs(", \"max_rel\": ", stdout);
    cli_json_number(stdout, r->max_rel);
    fputs(", \"atol\": ", stdout);
    cli_json_float(stdout, r->atol);
    fputs(", \"rtol\": ", stdout);
    cli_json_float(stdout, r->rtol);
    fputs(", \"pass\": ", stdout);
    cli_json_bool(stdout, s == DCL_OK && r->pass);
    fputs(", \"detail\": ", stdout);
    cli_json_string(stdout, r->detail);
    fputs(", \"error\": ", stdout);
    if (s == DCL_OK) {
        fputs("null", stdout);
    } else {
        const char *msg = dcl_last_error();
        cli_json_string(stdout, *msg ? msg : dcl_status_str(s));
    }
    fputs("}", stdout);
}

// A device that could not be opened: reported on stderr, and as an item in JSON mode.
static void record_open_error(const char *spec, dcl_status s, const check_opts *o,
                              check_summary *sum) {
    const char *msg = dcl_last_error();
    if (o->json) {
        json_begin_item(sum);
        fputs("{\"device\": ", stdout);
        cli_json_string(stdout, spec);
        fputs(", \"pass\": false, \"error\": ", stdout);
        cli_json_string(stdout, *msg ? msg : dcl_status_str(s));
        fputs("}", stdout);
    }
    int code = cli_report(s);
    sum->open_errors++;
    if (!sum->exit_error) sum->exit_error = code;
    if (!sum->first_failure[0])
        snprintf(sum->first_failure, sizeof sum->first_failure, "opening %s", spec);
}

static void record_result(const dcl_check_result *r, const char *name, const char *spec,
                          dcl_status s, check_summary *sum) {
    sum->runs++;
    if (s == DCL_OK && r->pass) {
        sum->passed++;
        return;
    }
    if (s != DCL_OK) {
        sum->errors++;
        if (!sum->exit_error) sum->exit_error = cli_exit_code(s);
    } else {
        sum->failed++;
    }
    if (!sum->first_failure[0])
        snprintf(sum->first_failure, sizeof sum->first_failure, "%s n=%zu on %s%s", name, r->n,
                 spec, s != DCL_OK ? " (the op failed to run)" : "");
}

// The training-step rows of one device: printed like op rows, counted in the summary.
struct train_rows {
    const dcl_device_info *d;
    const check_opts *o;
    check_summary *sum;
    int w, rows, failed;
};

static void train_row_status(struct train_rows *t, const dcl_check_result *r, dcl_status s) {
    if (t->o->json) print_json_result(t->d, r, r->name, t->o, s, t->sum);
    else print_row(r, r->name, t->w, s);
    t->rows++;
    t->failed += s != DCL_OK || !r->pass;
    record_result(r, r->name, t->d->spec, s, t->sum);
}

static void train_row(void *ctx, const dcl_check_result *r) { train_row_status(ctx, r, DCL_OK); }

// Opens spec, runs every case at every size against ref, prints the rows; adds to *sum.
static void check_device(const char *spec, dcl_device *ref, const check_opts *o,
                         check_summary *sum) {
    dcl_device *dev = NULL;
    dcl_clear_error();
    dcl_status s = dcl_device_open(&dev, spec);
    if (s != DCL_OK) {
        record_open_error(spec, s, o, sum);
        return;
    }
    const dcl_device_info *d = dcl_device_get_info(dev);
    int w = case_name_width();
    if (!o->json) print_header(d, o, w);

    int n_cases = dcl_check_case_count();
    int total = n_cases * o->sizes.n, done = 0, failed = 0;
    double start = cli_now();
    for (int c = 0; c < n_cases; c++) {
        const char *name = dcl_check_case_name(c);
        for (int k = 0; k < o->sizes.n; k++, done++) {
            size_t n = o->sizes.v[k];
            double elapsed = cli_now() - start;
            cli_progress("check %s: %d/%d %s n=%zu, %.0f s left", d->spec, done + 1, total, name, n,
                         done ? elapsed / done * (total - done) : 0.0);
            dcl_check_result r;
            memset(&r, 0, sizeof r);
            r.n = n;
            dcl_clear_error();
            s = dcl_check_case_run(dev, ref, c, n, (size_t)o->offset, o->seed, &r);
            cli_progress_clear();
            if (o->json) print_json_result(d, &r, name, o, s, sum);
            else print_row(&r, name, w, s);
            failed += s != DCL_OK || !r.pass;
            record_result(&r, name, d->spec, s, sum);
        }
    }
    if (!o->train) {
        if (!o->json)
            printf("\n%s: %d of %d passed%s\n\n", d->spec, total - failed, total,
                   failed ? "" : " (all)");
        dcl_device_free(dev);
        return;
    }
    // One training step of each network against the CPU reference.
    struct train_rows t = {d, o, sum, w > 44 ? w : 44, 0, 0};
    for (int k = 0; k < (o->model ? 1 : 2); k++) {
        dcl_net_kind kind = k ? DCL_NET_UNET : DCL_NET_MLP;
        if (!o->model && !dcl_check_train_available(kind)) {
            if (!o->json)
                printf("\n(%s training step skipped: its data, Fashion-MNIST, is not installed)\n",
                       dcl_net_kind_name(kind));
            continue;
        }
        if (!o->json)
            printf("\n%s: two training steps; the second's loss and gradients and the parameters "
                   "after it, against the CPU reference:\n",
                   o->model ? o->model : dcl_net_kind_name(kind));
        cli_progress("check %s: %s training steps", d->spec, dcl_net_kind_name(kind));
        dcl_clear_error();
        s = dcl_check_train_step(dev, ref, kind, o->model, train_row, &t);
        cli_progress_clear();
        if (s != DCL_OK) {
            dcl_check_result r;
            memset(&r, 0, sizeof r);
            snprintf(r.name, sizeof r.name, "train.%s", dcl_net_kind_name(kind));
            train_row_status(&t, &r, s);
        }
    }
    if (!o->json) printf("\nsampling trajectories, compared after every step:\n");
    cli_progress("check %s: sampling trajectories", d->spec);
    dcl_clear_error();
    s = dcl_check_samplers(dev, ref, o->model, train_row, &t);
    cli_progress_clear();
    if (s != DCL_OK) {
        dcl_check_result r;
        memset(&r, 0, sizeof r);
        snprintf(r.name, sizeof r.name, "sample");
        train_row_status(&t, &r, s);
    }
    if (!o->json)
        printf("\n%s: %d of %d ops passed%s; %d of %d training and sampling rows passed\n\n",
               d->spec, total - failed, total, failed ? "" : " (all)", t.rows - t.failed, t.rows);
    dcl_device_free(dev);
}

// "FAILED: 3 of 116 runs wrong, ...; first failure: ..." or "OK: all 116 runs passed".
static void print_summary(FILE *f, const char *prefix, const check_summary *sum) {
    if (!sum->first_failure[0]) {
        fprintf(f, "%sOK: all %d runs passed\n", prefix, sum->runs);
        return;
    }
    fprintf(f, "%sFAILED: %d of %d runs passed, %d wrong, %d could not run", prefix, sum->passed,
            sum->runs, sum->failed, sum->errors);
    if (sum->open_errors)
        fprintf(f, ", %d device%s could not be opened", sum->open_errors,
                sum->open_errors == 1 ? "" : "s");
    fprintf(f, "; first failure: %s\n", sum->first_failure);
}

static void print_cpu_only_note(const cli_targets *t, int json) {
    char why[96], note[256];
    if (t->n_platforms == 0) snprintf(why, sizeof why, "no OpenCL platform found");
    else
        snprintf(why, sizeof why, "no usable OpenCL device (%d failed the capability probe)",
                 t->n_unusable);
    snprintf(note, sizeof note,
             "%s: checking the CPU reference against itself, which only exercises the harness",
             why);
    if (json) fprintf(stderr, "diffcl: note: %s\n", note);
    else printf("note: %s\n\n", note);
}

int cli_cmd_check(int argc, char **argv) {
    check_opts o = {{{1, 31, 257, 1000}, 4}, 1234, 3, 0, 1, NULL};
    int ops_only = 0;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"sizes", 0, CLI_OPT_SIZES, &o.sizes, "LIST", "sizes n to run every case at",
         "1,31,257,1000", 1, 1u << 24},
        {"seed", 0, CLI_OPT_U64, &o.seed, "N", "seed of the inputs", "1234", 0, UINT64_MAX},
        {"offset", 0, CLI_OPT_U64, &o.offset, "N", "element offset of every tensor", "3", 0,
         1u << 20},
        {"json", 'j', CLI_OPT_FLAG, &o.json, NULL, "print a JSON array of results", NULL, 0, 0},
        {"ops-only", 0, CLI_OPT_FLAG, &ops_only, NULL, "skip the training and sampling checks",
         NULL, 0, 0},
        {"model", 'm', CLI_OPT_STRING, &o.model, "FILE",
         "check training steps and sampling on this checkpoint's network", NULL, 0, 0},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_check_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    o.train = !ops_only;

    cli_targets t;
    dcl_status s = cli_targets_init(&t, common.device ? common.device : "all", 0);
    if (s != DCL_OK) return cli_report(s);
    if (t.n == 0) {
        print_cpu_only_note(&t, o.json);
        t.specs[t.n++] = "cpu";
    }

    dcl_device *ref = NULL;
    s = dcl_check_reference_open(&ref);
    if (s != DCL_OK) {
        cli_targets_free(&t);
        return cli_report(s);
    }
    check_summary sum;
    memset(&sum, 0, sizeof sum);
    for (int i = 0; i < t.n; i++) check_device(t.specs[i], ref, &o, &sum);
    dcl_device_free(ref);
    cli_targets_free(&t);

    if (o.json) {
        fputs(sum.json_items ? "\n]\n" : "[]\n", stdout);
        if (sum.first_failure[0] && sum.runs > 0 && dcl_log_get_level() >= DCL_LOG_INFO)
            print_summary(stderr, "diffcl: check ", &sum);
    } else if (sum.runs > 0) {
        print_summary(stdout, "", &sum);
    }
    if (sum.exit_error) return sum.exit_error;
    return sum.failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}
