// What the CLI's files share: exit codes, the subcommands, error reporting and small helpers
// (byte sizes, clocks, terminal progress, the devices a command runs on).
#ifndef DIFFCL_CLI_H
#define DIFFCL_CLI_H

#include <stdio.h>

#include "cli/args.h" // cli_command
#include "diffcl/device.h"
#include "diffcl/model.h"  // dcl_model, dcl_model_config
#include "diffcl/sample.h" // dcl_sampler_opts
#include "diffcl/status.h"
#include "diffcl/version.h" // DIFFCL_VERSION_STRING, dcl_version

// Documented exit codes (the top-level help lists them; cli_exit_code in main.c maps statuses).
enum cli_exit {
    CLI_EXIT_OK = 0,        // success
    CLI_EXIT_FAILED = 1,    // a check or test ran and its results were wrong
    CLI_EXIT_USAGE = 2,     // unknown command or flag, missing or bad value
    CLI_EXIT_NO_DEVICE = 3, // no such device, or no OpenCL platform
    CLI_EXIT_INPUT = 4,     // input file, format or I/O error
    CLI_EXIT_DEVICE = 5,    // device or driver failure (OpenCL call, build, device memory, BLAS)
    CLI_EXIT_INTERNAL = 6,  // anything else
    CLI_EXIT_DIVERGED = 7,  // training diverged (DCL_ERR_DIVERGED)
};

// Subcommands: argv[0] is the command's name, argv[1..argc) its flags. Each returns an exit code.
int cli_cmd_devices(int argc, char **argv);
int cli_cmd_check(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);
int cli_cmd_train(int argc, char **argv);
int cli_cmd_sample(int argc, char **argv);
int cli_cmd_eval(int argc, char **argv);
int cli_cmd_data(int argc, char **argv);
int cli_cmd_plot(int argc, char **argv);
int cli_cmd_tune(int argc, char **argv);
int cli_cmd_classify(int argc, char **argv);
// Their names, summaries and help texts.
extern const cli_command cli_devices_command;
extern const cli_command cli_check_command;
extern const cli_command cli_bench_command;
extern const cli_command cli_train_command;
extern const cli_command cli_sample_command;
extern const cli_command cli_eval_command;
extern const cli_command cli_tune_command;
extern const cli_command cli_data_command;
extern const cli_command cli_plot_command;
extern const cli_command cli_classify_command;

// The exit code for a library status (main.c: the only mapping). DCL_ERR_CANCELLED after a signal
// is 128 + the signal (130 SIGINT, 143 SIGTERM).
int cli_exit_code(dcl_status s);

// Signals (signals.c). main installs the handlers: the first SIGINT or SIGTERM is only recorded
// (long work polls cli_signal_pending through its progress callback and stops cleanly); a second
// within 5 s exits at once with 128 + the signal.
void cli_signals_install(void);
// The first signal received (SIGINT, SIGTERM), or 0.
int cli_signal_pending(void);
// 128 + cli_signal_pending().
int cli_signal_exit_code(void);
// Prints "diffcl: error: <dcl_last_error()>" (the status text when that is empty) to stderr and
// returns cli_exit_code(s).
int cli_report(dcl_status s);
// After DCL_ERR_CANCELLED in a command that writes only at its end (sample, eval): prints
// "diffcl: <message>; nothing was written" and returns cli_signal_exit_code() (130, 143).
int cli_report_cancelled(void);

// Whether a device-info string carries a value (not empty, not the "-" placeholder).
static inline int cli_known(const char *s) { return s && s[0] && !(s[0] == '-' && !s[1]); }

// "512 B", "48.0 KiB", "15.6 GiB".
void cli_format_bytes(char *out, size_t size, unsigned long long bytes);
// Seconds on CLOCK_MONOTONIC.
double cli_now(void);
// Seconds per training step (forward + backward, no optimizer) of the U-Net of config c at batch N
// on dev, after a warm-up: at least 3 steps and 1 s (bench.c; `diffcl tune` compares devices by it).
dcl_status cli_unet_step_time(dcl_device *dev, const dcl_unet_config *c, size_t N, double *seconds);

// One-line progress on stderr, shown only when stderr is a terminal and the log level is at
// least info. cli_progress_clear erases it before regular output is printed.
int cli_progress_enabled(void);
void cli_progress(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void cli_progress_clear(void);
// The CLI's dcl_log_fn: the library's messages on stderr, on a line of their own below a live bar.
void cli_log(void *ud, int level, const char *msg);
// Draws one line in place of the current progress line (the caller keeps it within the terminal).
void cli_progress_line(const char *line);

// Checks, before any expensive work, that `path` can be written: its folder exists, is a folder
// and is writable (access(2): a read-only mount fails for root too), its file system is not full,
// and path is not a folder. DCL_ERR_IO (exit 4) with a message naming the flag and the path
// otherwise.
dcl_status cli_check_output(const char *flag, const char *path);
// The same, and path must end in one of exts (comma-separated, case ignored: ".png" or
// ".csv,.png"); a wrong extension is DCL_ERR_ARG (a usage error). exts NULL: any name.
dcl_status cli_check_output_as(const char *flag, const char *path, const char *exts);
// Copies in to out (size bytes, NUL-terminated, cut if too long) with control bytes (below 0x20,
// 0x7f) as \xNN, so a path or a CSV field cannot move the cursor or clear the terminal when
// echoed. cli_report and cli_log escape what they print.
void cli_escape(const char *in, char *out, size_t size);
// path without its extension, then suffix: "runs/m.safetensors" + "_samples.csv" →
// "runs/m_samples.csv", or "m_samples.csv" with in_cwd (the current folder).
void cli_path_beside(const char *path, const char *suffix, int in_cwd, char *buf, size_t size);

// Opens the device a command runs on and, for --device auto on an OpenCL device, the CPU reference
// to fall back to after a device failure (else *fallback is NULL). Both NULL on failure.
dcl_status cli_open_device(const char *spec, dcl_device **dev, dcl_device **fallback);

// The devices a command runs on. spec "all" means every usable OpenCL device, preceded by the
// CPU reference when with_cpu; any other spec is one target, opened later by dcl_device_open
// (which reports an unknown spec with the list of devices).
typedef struct cli_targets {
    dcl_device_info *list; // every device (dcl_device_list); owned
    int n_list;
    int n_platforms;    // OpenCL platforms found
    const char **specs; // what to open: into list[] or the caller's spec string
    int n;
    int n_unusable; // OpenCL devices that "all" skipped because their probe failed
} cli_targets;

dcl_status cli_targets_init(cli_targets *t, const char *spec, int with_cpu);
void cli_targets_free(cli_targets *t);

// ---- sampling from a checkpoint (sample.c; also used by eval) -----------------------------------

typedef struct cli_sample_flags {
    const char *model, *sampler, *variance, *schedule;
    const char *label; // class-conditional: "all", "none", a class number or name
    uint64_t steps, n, seed;
    double eta;
    double guidance; // NaN: the default (3 for conditional models)
    int raw;         // the trained weights instead of their EMA
    int want_traj;   // keep every x_{t_k}
} cli_sample_flags;

void cli_sample_flags_default(cli_sample_flags *f);

// The flag-table rows of the sampler flags, shared by sample and eval.
// clang-format off
#define CLI_SAMPLE_OPTS(f)                                                                         \
    {"model", 'm', CLI_OPT_STRING, &(f).model, "FILE", "checkpoint written by 'diffcl train'",     \
     NULL, 0, 0},                                                                                  \
    {"sampler", 0, CLI_OPT_STRING, &(f).sampler, "NAME", "ddpm, ddim, euler, heun, dpm++2m[-sde]",     \
     "euler (flow), ddim", 0, 0},                                                                  \
    {"schedule", 0, CLI_OPT_STRING, &(f).schedule, "NAME", "time grid: uniform, logsnr or karras", \
     "uniform (logsnr for dpm++2m)", 0, 0},                                                        \
    {"steps", 0, CLI_OPT_U64, &(f).steps, "K", "sampler steps", "100", 1, 100000},                 \
    {"n", 'n', CLI_OPT_U64, &(f).n, "N", "number of samples", "10000 points, 100 images", 1,       \
     1u << 22},                                                                                    \
    {"seed", 0, CLI_OPT_U64, &(f).seed, "S", "seed of the sampler's noise", "1", 0, UINT64_MAX},   \
    {"eta", 0, CLI_OPT_DOUBLE, &(f).eta, "X", "ddim: 0 deterministic ... 1 like ddpm", "0", 0, 0}, \
    {"ddpm-variance", 0, CLI_OPT_STRING, &(f).variance, "NAME",                                    \
     "ddpm: posterior or tutorial (ve)", "posterior", 0, 0},                                       \
    {"raw", 0, CLI_OPT_FLAG, &(f).raw, NULL, "sample with the trained weights, not their EMA",     \
     NULL, 0, 0},                                                                                  \
    {"guidance", 'w', CLI_OPT_DOUBLE, &(f).guidance, "W",                                          \
     "class-conditional: classifier-free guidance weight", "3", 0, 0},                             \
    {"label", 0, CLI_OPT_STRING, &(f).label, "Y",                                                  \
     "class-conditional: a class (number or name), all (a row each) or none", "all", 0, 0}
// clang-format on

// Samples drawn from a checkpoint, with what drew them.
typedef struct cli_samples {
    dcl_model_config cfg;  // the model's config
    dcl_sampler_opts opts; // the sampler as resolved from the flags
    dcl_guidance guidance; // classes and guidance weight as resolved
    int32_t *labels;       // (N) the class of each sample, or NULL
    int rows_are_classes;  // labels are one class per row of `cols` samples
    int cols;
    dcl_model model; // (internal: freed before cli_sample_model returns)
    size_t N, D;
    float *x;       // (N, D)
    float *traj;    // (steps + 1, N, D) when want_traj
    double *t;      // the time grid (steps + 1)
    double seconds; // sampling time
} cli_samples;

// Opens device, loads f->model, samples. DCL_ERR_ARG means a bad flag (message set).
dcl_status cli_sample_model(const cli_sample_flags *f, const char *device, cli_samples *out);
void cli_samples_free(cli_samples *s);
// "flow/velocity on spiral, euler 100 steps" for titles.
void cli_samples_title(const cli_samples *s, char *buf, size_t size);

// ---- data-parallel training under mpirun (mpi.c, built with DIFFCL_MPI; else these do nothing) --
//
// Not started by mpirun (or mpiexec), or built without MPI, the commands run as one process.
struct dcl_train_opts;
#ifdef DIFFCL_MPI
// `train`, after its flags: initialises MPI; usage errors (exit 2) when --batch does not divide by
// the ranks, --verify-every is given or the ranks' training flags differ; resolves --device for
// this rank (cl:gpu with several GPUs: the one of index local rank mod their count); ranks other
// than 0 write no --loss-plot and no sample grid. CLI_PARSED to go on.
int cli_mpi_train_begin(struct dcl_train_opts *o, const char **device, const char **loss_plot,
                        uint64_t *sample_every);
// After the device is open: each rank logs it; then ranks other than 0 log only errors.
void cli_mpi_device(const dcl_device *dev);
// Just before dcl_train: this rank's shard, the gradient reduce and the state check; no device
// fallback; ranks other than 0 write no checkpoint.
void cli_mpi_train_opts(struct dcl_train_opts *o);
// Whether this process writes outputs and results (rank 0, or no MPI).
int cli_mpi_writes(void);
// `bench`: initialises MPI; ranks other than 0 print nothing.
void cli_mpi_bench_begin(void);
// `bench train`: the all-reduce's time per step of the last dcl_train (rank 0 prints it).
void cli_mpi_bench_report(double seconds, int steps);
// The end of the command with exit code rc: every rank meets the others (a rank that failed and
// cannot, within seconds, aborts the job naming its rank and device), the job's worst exit code
// is returned everywhere, MPI is finalised.
int cli_mpi_end(int rc);
#else
static inline int cli_mpi_train_begin(struct dcl_train_opts *o, const char **device,
                                      const char **loss_plot, uint64_t *sample_every) {
    (void)o, (void)device, (void)loss_plot, (void)sample_every;
    return CLI_PARSED;
}
static inline void cli_mpi_device(const dcl_device *dev) { (void)dev; }
static inline void cli_mpi_train_opts(struct dcl_train_opts *o) { (void)o; }
static inline int cli_mpi_writes(void) { return 1; }
static inline void cli_mpi_bench_begin(void) {}
static inline void cli_mpi_bench_report(double seconds, int steps) { (void)seconds, (void)steps; }
static inline int cli_mpi_end(int rc) { return rc; }
#endif

#endif
