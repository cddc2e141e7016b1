// `diffcl sample`: draws samples from a checkpoint with any sampler and writes them as CSV and
// plots (samples over data, trajectories coloured by t). Also the sampling shared with `eval`.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/error.h"   // dcl__fail
#include "cli/progress.h" // cli_bar
#include "diffcl/data.h"  // dcl_dataset_open, dcl_dataset_fresh, dcl_csv_write
#include "diffcl/image.h" // dcl_image_grid_write
#include "diffcl/log.h"   // dcl_log
#include "diffcl/model.h" // dcl_model_load, dcl_model_sample
#include "diffcl/plot.h"  // dcl_plot_scatter, dcl_plot_trajectories

const cli_command cli_sample_command = {
    .name = "sample",
    .summary = "draw samples from a trained model; write CSV and plots",
    .usage = "diffcl sample --model FILE [--sampler NAME] [--steps K] [--n N] [--seed S]\n"
             "              [--out CSV|PNG] [--plot PNG] [--trajectories PNG]",
    .details =
        "Everything about the model (process, prediction, network, dataset) comes from the\n"
        "checkpoint. Samplers, on a time grid from t = 1 (noise) to t = 0 (data)\n"
        "(\"tutorial\": Nakkiran et al. 2024, \"Step-by-Step Diffusion: An Elementary "
        "Tutorial\"):\n"
        "  ddpm   stochastic: the Gaussian posterior step (tutorial Algorithm 1); --ddpm-variance\n"
        "         tutorial uses sigma_q^2 dt (ve only), posterior the exact posterior variance\n"
        "  ddim   deterministic for --eta 0 (tutorial Algorithm 2); --eta 1 matches ddpm\n"
        "  euler  first-order ODE: the flow's velocity or the probability-flow ODE\n"
        "  heun   second-order ODE (two network evaluations per step)\n"
        "  dpm++2m  DPM-Solver++(2M) (Lu et al. 2022): second-order multistep ODE solver, one\n"
        "         evaluation per step; 10-25 steps do what euler or ddim need 100 for\n"
        "  dpm++2m-sde  its stochastic form (fresh noise each step, like ddpm; its first order\n"
        "         is ddpm's posterior step), more steps than dpm++2m but often sharper samples\n"
        "--schedule places the steps: uniform in t (the default), logsnr (uniform in the\n"
        "log signal-to-noise ratio log(a/b), the default of the dpm++ samplers) or karras (Karras "
        "et al.\n"
        "2022, rho = 7); both end at t = 1e-3 (vp-linear: its first step) before the last\n"
        "step to t = 0. Flow's log-SNR is log((1 - t)/t).\n"
        "The default is euler for flow models and ddim otherwise. The EMA weights are used\n"
        "unless --raw. --plot draws the samples over fresh points of the training dataset.\n"
        "With no --out, --plot or --trajectories the samples go to MODEL_samples.png (image\n"
        "models: a grid) or MODEL_samples.csv (points) in the current folder, MODEL being the\n"
        "checkpoint's name without .safetensors. Outputs are checked before sampling starts.\n"
        "\n"
        "Class-conditional models sample one row per class by default (--label all), with\n"
        "classifier-free guidance eps~ = eps(x, null) + W (eps(x, y) - eps(x, null)): W = 1 is\n"
        "plain conditional sampling, W = 0 unconditional, larger W follows the class more\n"
        "closely (default 3). The same combination is applied whatever the model predicts.\n",
    .examples = "  diffcl sample --model spiral.safetensors          # writes spiral_samples.csv\n"
                "  diffcl sample --model spiral.safetensors --plot samples.png\n"
                "  diffcl sample --model spiral.safetensors --sampler euler --steps 100 --n 10000 "
                "--seed 1 \\\n      --out samples.csv --plot samples.png --trajectories traj.png\n"
                "  diffcl sample --model ve.safetensors --sampler ddpm --steps 1000\n"
                "  diffcl sample --model fm.safetensors --n 100 --label all --guidance 3 --sampler "
                "ddim --steps 50 --out grid.png\n",
};

void cli_sample_flags_default(cli_sample_flags *f) {
    memset(f, 0, sizeof *f);
    f->steps = 100;
    f->n = 0; // 10000 points, or 100 images (see cli_sample_model)
    f->seed = 1;
    f->variance = "posterior";
    f->guidance = NAN;
    f->label = "all";
}

// The class of every sample and the guidance weight, for a conditional model (K classes).
static dcl_status resolve_labels(const cli_sample_flags *f, int K, cli_samples *out) {
    size_t N = out->N;
    int explicit_label = strcmp(f->label, "all") != 0;
    if (K == 0) {
        out->guidance.w = 1;
        if (explicit_label && strcmp(f->label, "none") != 0)
            return dcl__fail(DCL_ERR_ARG, "--label: this model is unconditional (no classes)");
        if (!isnan(f->guidance) && f->guidance != 1)
            return dcl__fail(DCL_ERR_ARG, "--guidance: this model is unconditional (no classes)");
        return DCL_OK;
    }
    out->guidance.w = isnan(f->guidance) ? 3.0 : f->guidance;
    if (!(out->guidance.w >= 0 && out->guidance.w <= 100))
        return dcl__fail(DCL_ERR_ARG, "--guidance must be in [0, 100], got %g", out->guidance.w);
    if (strcmp(f->label, "none") == 0) return DCL_OK; // the null class: unconditional samples
    out->labels = malloc(N * sizeof *out->labels);
    if (!out->labels) return dcl__fail(DCL_ERR_NOMEM, "out of host memory for labels");
    int y = -1;
    if (explicit_label) {
        char *end;
        long v = strtol(f->label, &end, 10);
        if (*end || end == f->label || v < 0 || v >= K) {
            // A class name from the model's dataset ("Sneaker").
            dcl_dataset *ds = NULL;
            if (dcl_dataset_open(&ds, out->cfg.data, out->cfg.seed) == DCL_OK)
                for (int k = 0; k < K && y < 0; k++) {
                    const char *name = dcl_dataset_class_name(ds, k);
                    if (name && strcmp(name, f->label) == 0) y = k;
                }
            dcl_dataset_free(ds);
            dcl_clear_error();
            if (y < 0)
                return dcl__fail(DCL_ERR_ARG,
                                 "--label '%s': use a class 0..%d, a class name, all or none",
                                 f->label, K - 1);
        } else {
            y = (int)v;
        }
    }
    // all: one row per class, N / K samples each.
    out->cols = N >= (size_t)K ? (int)(N / (size_t)K) : 1;
    for (size_t i = 0; i < N; i++)
        out->labels[i] = y >= 0 ? y : (int32_t)((i / (size_t)out->cols) % (size_t)K);
    if (y < 0) out->rows_are_classes = 1;
    out->guidance.labels = out->labels;
    return DCL_OK;
}

// Resolves the sampler flags against the model's process.
static dcl_status sampler_opts(const cli_sample_flags *f, const dcl_model_config *c,
                               dcl_sampler_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = c->process.kind == DCL_PROCESS_FLOW ? DCL_SAMPLER_EULER : DCL_SAMPLER_DDIM;
    if (f->sampler && dcl_sampler_parse(f->sampler, &o->kind) != DCL_OK) return DCL_ERR_ARG;
    o->steps = (int)f->steps;
    o->schedule = o->kind == DCL_SAMPLER_DPMPP_2M || o->kind == DCL_SAMPLER_DPMPP_2M_SDE
                      ? DCL_SCHEDULE_LOGSNR
                      : DCL_SCHEDULE_UNIFORM;
    if (f->schedule && dcl_schedule_parse(f->schedule, &o->schedule) != DCL_OK) return DCL_ERR_ARG;
    o->eta = f->eta;
    if (strcmp(f->variance, "tutorial") == 0) o->ddpm_tutorial = 1;
    else if (strcmp(f->variance, "posterior") != 0)
        return dcl__fail(DCL_ERR_ARG, "--ddpm-variance '%s': use tutorial or posterior",
                         f->variance);
    if (o->ddpm_tutorial && c->process.kind != DCL_PROCESS_VE)
        return dcl__fail(DCL_ERR_ARG,
                         "--ddpm-variance tutorial is the ve process's sigma_q^2 dt; this "
                         "model's process is %s (use posterior)",
                         dcl_process_name(c->process.kind));
    if (!(f->eta >= 0 && f->eta <= 1)) return dcl__fail(DCL_ERR_ARG, "--eta must be in [0, 1]");
    return DCL_OK;
}

// After a device failure under --device auto, *on becomes the CPU reference and the caller does
// again what failed (sampling starts from its seed, so nothing else needs to be restored).
static int fall_back(dcl_status s, dcl_device **on, dcl_device *fallback) {
    if (!dcl_status_is_device_failure(s) || !fallback || *on == fallback) return 0;
    cli_progress_clear();
    dcl_log(DCL_LOG_ERROR, "device %s failed: %s", dcl_device_get_info(*on)->spec,
            dcl_last_error());
    dcl_log(DCL_LOG_ERROR, "sampling on the CPU reference instead (--device auto)");
    *on = fallback;
    return 1;
}

// Runs the sampler with a progress bar over its steps.
static dcl_status draw(const cli_sample_flags *f, cli_samples *out) {
    cli_bar bar;
    cli_bar_start(&bar, "sample", "step", out->opts.steps, dcl_log_get_level() < DCL_LOG_INFO);
    out->opts.progress = cli_bar_progress, out->opts.progress_ctx = &bar;
    double t0 = cli_now();
    dcl_status s = dcl_model_sample(&out->model, &out->opts, out->N, f->seed, !f->raw,
                                    &out->guidance, out->x, out->traj);
    out->opts.progress = NULL, out->opts.progress_ctx = NULL;
    out->seconds = cli_now() - t0;
    if (s != DCL_OK) return s;
    double evals = (double)out->N * out->opts.steps *
                   (out->opts.kind == DCL_SAMPLER_HEUN ? 2.0 : 1.0) *
                   (out->guidance.labels && out->guidance.w != 1.0 ? 2.0 : 1.0);
    char summary[128];
    snprintf(summary, sizeof summary, "%zu samples, %.0f samples/s, %.0f network evaluations/s",
             out->N, (double)out->N / out->seconds, evals / out->seconds);
    cli_bar_finish(&bar, summary);
    return DCL_OK;
}

// The networks refuse a batch whose buffers exceed the kernels' 2^32 elements with "... max_batch
// B ... X elements ...; use a smaller batch". sample has no --batch: the message names --n and
// the most this model draws at once instead (X grows at least linearly with B, so B·2^32/X/2
// fits; guided sampling evaluates 2N at once).
static dcl_status too_many(size_t N, int defaulted) {
    const char *msg = dcl_last_error(), *b = strstr(msg, "max_batch "),
               *x = strstr(msg, " elements");
    if (!b || !x) return DCL_ERR_ARG;
    double B = strtod(b + 10, NULL), X
    = 0;
    const char *d = x;
    while (d > msg && ((d[-1] >= '0' && d[-1] <= '9') || d[-1] == '.')) d--;
    X
    = strtod(d, NULL);
    if (!(B > 0 && X > 0)) return DCL_ERR_ARG;
    double most = floor(B * 4294967295.0 / X / 2);
    return dcl__fail(DCL_ERR_ARG,
                     "--n %zu%s: this model draws at most %.0f samples at once (more would need "
                     "buffers beyond the kernels' 2^32 elements); use --n %.0f or less and "
                     "several seeds",
                     N, defaulted ? " (the default)" : "", most, most);
}

// NaN or Inf samples are never reported as success (a broken model or config: prev_dt 1e-300).
static dcl_status check_finite(const char *model, const cli_samples *r) {
    size_t bad = 0, n = r->N * r->D;
    for (size_t i = 0; i < n; i++) bad += !isfinite(r->x[i]);
    if (!bad) return DCL_OK;
    return dcl__fail(DCL_ERR_FORMAT,
                     "%s: sampling gave %zu non-finite values (NaN or Inf) in %zu samples; the "
                     "model or its config is broken, nothing was written",
                     model, bad, r->N);
}

dcl_status cli_sample_model(const cli_sample_flags *f, const char *device, cli_samples *out) {
    memset(out, 0, sizeof *out);
    // The default count depends on the model: 10000 points, or 100 images (a 10×10 grid).
    // Guided sampling evaluates the conditional and unconditional batches together (2N).
    dcl_status s = dcl_model_read_config(f->model, &out->cfg);
    size_t N = (size_t)f->n;
    if (!N) N = out->cfg.net.kind == DCL_NET_UNET ? 100 : 10000;
    dcl_device *dev = NULL, *fallback = NULL, *on;
    if (s == DCL_OK) s = cli_open_device(device, &dev, &fallback);
    on = dev;
    if (s == DCL_OK) s = dcl_model_load(&out->model, on, f->model, 2 * N);
    if (fall_back(s, &on, fallback)) s = dcl_model_load(&out->model, on, f->model, 2 * N);
    if (s == DCL_ERR_ARG) s = too_many(N, !f->n);
    if (s == DCL_OK) s = sampler_opts(f, &out->model.cfg, &out->opts);
    size_t D = s == DCL_OK ? dcl_net_dim(&out->model.cfg.net) : 0;
    if (s == DCL_OK) {
        out->cfg = out->model.cfg;
        out->N = N, out->D = D;
        s = resolve_labels(f, dcl_net_num_classes(&out->cfg.net), out);
    }
    if (s == DCL_OK) {
        out->x = malloc(N * D * sizeof *out->x);
        if (f->want_traj) out->traj = malloc(((size_t)f->steps + 1) * N * D * sizeof *out->traj);
        out->t = malloc(((size_t)f->steps + 1) * sizeof *out->t);
        if (!out->x || !out->t || (f->want_traj && !out->traj)) s = DCL_ERR_NOMEM;
    }
    if (s == DCL_OK) s = dcl_sampler_times(&out->model.cfg.process, &out->opts, out->t);
    if (s == DCL_OK) {
        dcl_log(DCL_LOG_INFO, "sampling %zu %s with %s, %d steps, seed %llu", N,
                out->cfg.net.kind == DCL_NET_UNET ? "images" : "points",
                dcl_sampler_name(out->opts.kind), out->opts.steps, (unsigned long long)f->seed);
        s = draw(f, out);
        if (fall_back(s, &on, fallback)) {
            dcl_model_free(&out->model);
            s = dcl_model_load(&out->model, on, f->model, 2 * N);
            if (s == DCL_OK) s = draw(f, out);
        }
    }
    if (out->model.net) dcl_model_free(&out->model);
    dcl_device_free(dev);
    dcl_device_free(fallback);
    // A signal that came after the last step still means: write nothing.
    if (s == DCL_OK && cli_signal_pending())
        s = dcl__fail(DCL_ERR_CANCELLED, "stopped by a signal before anything was written");
    if (s == DCL_OK) s = check_finite(f->model, out);
    if (s != DCL_OK) cli_samples_free(out);
    return s;
}

void cli_samples_free(cli_samples *s) {
    free(s->x), free(s->traj), free(s->t), free(s->labels);
    memset(s, 0, sizeof *s);
}

// "flow/velocity, euler 100 steps" for plot titles; one too long for buf ends in "...".
void cli_samples_title(const cli_samples *s, char *buf, size_t size) {
    int n = snprintf(buf, size, "%s/%s on %s, %s %d steps", dcl_process_name(s->cfg.process.kind),
                     dcl_prediction_name(s->cfg.pred), s->cfg.data, dcl_sampler_name(s->opts.kind),
                     s->opts.steps);
    if (n >= 0 && (size_t)n >= size && size >= 4) memcpy(buf + size - 4, "...", 4);
}

// Scatter of the samples over as many fresh points of the model's dataset.
static dcl_status plot_samples(const char *path, const cli_samples *r) {
    dcl_dataset *ds = NULL;
    float *data = NULL;
    size_t n_data = 0;
    // A model trained on a file that is gone still plots, without the data underneath.
    if (dcl_dataset_open(&ds, r->cfg.data, r->cfg.seed) == DCL_OK) {
        n_data = dcl_dataset_size(ds) ? dcl_dataset_size(ds) : r->N;
        data = malloc(n_data * r->D * sizeof *data);
        if (!data) n_data = 0;
        else if (dcl_dataset_size(ds))
            memcpy(data, dcl_dataset_points(ds), n_data * r->D * sizeof *data);
        else if (dcl_dataset_fresh(ds, data, n_data, 1) != DCL_OK) n_data = 0;
    } else {
        dcl_log(DCL_LOG_INFO, "plotting without data: %s", dcl_last_error());
        dcl_clear_error();
    }
    char title[256];
    cli_samples_title(r, title, sizeof title);
    dcl_status s = dcl_plot_scatter(path, title, data, n_data, r->x, r->N);
    free(data);
    dcl_dataset_free(ds);
    return s;
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// Samples as CSV, or images as a PNG grid: one row per class when the rows are classes (labelled
// with the class names of the model's dataset), else a square-ish grid.
static dcl_status write_samples(const char *path, const cli_samples *r) {
    if (!has_suffix(path, ".png")) return dcl_csv_write(path, r->x, r->N, r->D);
    if (r->cfg.net.kind != DCL_NET_UNET)
        return dcl__fail(DCL_ERR_ARG,
                         "--out %s: a PNG grid is for image models; use --plot for "
                         "points",
                         path);
    const dcl_unet_config *u = &r->cfg.net.unet;
    int cols = r->rows_are_classes ? r->cols : (int)ceil(sqrt((double)r->N));
    int rows = (int)((r->N + (size_t)cols - 1) / (size_t)cols), K = u->num_classes;
    const char **names = r->rows_are_classes ? calloc((size_t)rows, sizeof *names) : NULL;
    char(*fallback)[24] = names ? calloc((size_t)rows, sizeof *fallback) : NULL;
    dcl_dataset *ds = NULL;
    if (names && dcl_dataset_open(&ds, r->cfg.data, r->cfg.seed) != DCL_OK) dcl_clear_error();
    for (int i = 0; names && fallback && i < rows; i++) {
        names[i] = ds ? dcl_dataset_class_name(ds, i % K) : NULL;
        if (!names[i])
            snprintf(fallback[i], sizeof fallback[i], "class %d", i % K), names[i] = fallback[i];
    }
    dcl_status s =
        dcl_image_grid_write(path, r->x, r->N, u->channels, u->height, u->width, cols, 2, 2,
                             names && fallback ? names : NULL, names && fallback ? rows : 0);
    free(names), free(fallback);
    dcl_dataset_free(ds);
    return s;
}

// The outputs, checked before any sampling: a PNG grid only for image models, the plots only for
// 2-D points, every folder writable. With no output flag, --out defaults to the model's name with
// "_samples.png" (images) or "_samples.csv" (points), in the current folder.
static int check_outputs(const cli_sample_flags *f, const char **out, const char *plot,
                         const char *traj, char *def, size_t size) {
    dcl_model_config cfg;
    dcl_status s = dcl_model_read_config(f->model, &cfg);
    if (s != DCL_OK) return cli_report(s);
    int image = cfg.net.kind == DCL_NET_UNET;
    size_t D = dcl_net_dim(&cfg.net);
    if (!*out && !plot && !traj) {
        cli_path_beside(f->model, image ? "_samples.png" : "_samples.csv", 1, def, size);
        *out = def;
    }
    if (*out && has_suffix(*out, ".png") && !image)
        return cli_usage_error("sample",
                               "--out %s: a PNG grid is for image models; this model draws "
                               "%zu-D points (use .csv, or --plot PNG for 2-D points)",
                               *out, D);
    if ((plot || traj) && D != 2)
        return cli_usage_error("sample",
                               "--plot and --trajectories draw 2-D data; this model's "
                               "data has %zu dimensions",
                               D);
    if (*out) s = cli_check_output_as("--out", *out, image ? ".csv,.png" : ".csv");
    if (s == DCL_OK && plot) s = cli_check_output_as("--plot", plot, ".png");
    if (s == DCL_OK && traj) s = cli_check_output_as("--trajectories", traj, ".png");
    if (s == DCL_ERR_ARG) return cli_usage_error("sample", "%s", dcl_last_error());
    return s == DCL_OK ? CLI_PARSED : cli_report(s);
}

int cli_cmd_sample(int argc, char **argv) {
    cli_sample_flags f;
    cli_sample_flags_default(&f);
    const char *out = NULL, *plot = NULL, *traj = NULL;
    uint64_t paths = 300;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        CLI_SAMPLE_OPTS(f),
        {"out", 'o', CLI_OPT_STRING, &out, "FILE",
         "the samples: .csv values, or .png a grid (images)",
         "MODEL_samples.png (images), MODEL_samples.csv (points)", 0, 0},
        {"plot", 0, CLI_OPT_STRING, &plot, "PNG", "scatter of the samples over data (2-D)", NULL, 0,
         0},
        {"trajectories", 0, CLI_OPT_STRING, &traj, "PNG",
         "paths from noise to data, coloured by t (2-D)", NULL, 0, 0},
        {"paths", 0, CLI_OPT_U64, &paths, "N", "--trajectories: paths drawn", "300", 1, 100000},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_sample_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (!f.model) return cli_usage_error("sample", "--model FILE is required");
    char def[4096];
    if ((rc = check_outputs(&f, &out, plot, traj, def, sizeof def)) != CLI_PARSED) return rc;
    f.want_traj = traj != NULL;

    cli_samples r;
    dcl_status s = cli_sample_model(&f, common.device, &r);
    if (s == DCL_ERR_ARG) return cli_usage_error("sample", "%s", dcl_last_error());
    if (s == DCL_ERR_CANCELLED) return cli_report_cancelled();
    if (s != DCL_OK) return cli_report(s);
    if (out && (s = write_samples(out, &r)) == DCL_OK) printf("wrote %s (%zu samples)\n", out, r.N);
    if (s == DCL_OK && plot && (s = plot_samples(plot, &r)) == DCL_OK) printf("wrote %s\n", plot);
    if (s == DCL_OK && traj) {
        char title[256];
        cli_samples_title(&r, title, sizeof title);
        s = dcl_plot_trajectories(traj, title, r.traj, r.t, (size_t)r.opts.steps, r.N,
                                  (size_t)paths);
        if (s == DCL_OK) printf("wrote %s\n", traj);
    }
    cli_samples_free(&r);
    return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
}
