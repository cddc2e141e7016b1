// The diffcl command-line tool: the subcommand table, the global help and version, and the one
// mapping from library statuses to the documented exit codes.
//
// Exit codes (also in the global help):
//   0  success
//   1  a check or test ran and its results were wrong (DCL_ERR_MISMATCH: also --verify-strict)
//   2  usage error: unknown command or flag, missing or malformed value, malformed --device
//   3  no such device, or no OpenCL platform (DCL_ERR_NO_DEVICE, DCL_ERR_NO_OPENCL)
//   4  input file, format or I/O error (DCL_ERR_IO, DCL_ERR_FORMAT; also a failed write to stdout)
//   5  device or driver failure (DCL_ERR_OPENCL, DCL_ERR_BUILD, DCL_ERR_DEVICE_MEM, DCL_ERR_BLAS)
//   6  any other error (DCL_ERR_NOMEM, DCL_ERR_UNSUPPORTED, unknown statuses)
//   7  training diverged: --max-skips non-finite steps in a row (DCL_ERR_DIVERGED); the last
//      finite state is saved to --out
//   130, 143  stopped by SIGINT or SIGTERM (DCL_ERR_CANCELLED)
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/args.h" // cli_usage_error, cli_suggest
#include "cli/cli.h"
#include "diffcl/log.h" // dcl_log_set_callback
#include "diffcl/rng.h" // DCL_RNG_STREAM_VERSION

typedef struct command {
    const cli_command *help; // name and summary
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {&cli_train_command, cli_cmd_train},       {&cli_sample_command, cli_cmd_sample},
    {&cli_eval_command, cli_cmd_eval},         {&cli_data_command, cli_cmd_data},
    {&cli_devices_command, cli_cmd_devices},   {&cli_check_command, cli_cmd_check},
    {&cli_bench_command, cli_cmd_bench},       {&cli_tune_command, cli_cmd_tune},
    {&cli_classify_command, cli_cmd_classify}, {&cli_plot_command, cli_cmd_plot},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

int cli_exit_code(dcl_status s) {
    switch (s) {
    case DCL_OK: return CLI_EXIT_OK;
    case DCL_ERR_MISMATCH: return CLI_EXIT_FAILED;
    case DCL_ERR_ARG: return CLI_EXIT_USAGE;
    case DCL_ERR_NO_DEVICE:
    case DCL_ERR_NO_OPENCL: return CLI_EXIT_NO_DEVICE;
    case DCL_ERR_IO:
    case DCL_ERR_FORMAT: return CLI_EXIT_INPUT;
    case DCL_ERR_OPENCL:
    case DCL_ERR_BUILD:
    case DCL_ERR_DEVICE_MEM:
    case DCL_ERR_BLAS: return CLI_EXIT_DEVICE;
    case DCL_ERR_CANCELLED: return cli_signal_exit_code();
    case DCL_ERR_DIVERGED: return CLI_EXIT_DIVERGED;
    case DCL_ERR_NOMEM:
    case DCL_ERR_UNSUPPORTED: return CLI_EXIT_INTERNAL;
    }
    return CLI_EXIT_INTERNAL;
}

static void print_help(FILE *f) {
    fputs("diffcl " DIFFCL_VERSION_STRING
          ": diffusion and flow-matching models on any OpenCL device,\n"
          "with a plain-C CPU reference that every OpenCL result is checked against.\n"
          "\n"
          "Usage: diffcl COMMAND [FLAGS]\n"
          "       diffcl help COMMAND | diffcl COMMAND --help\n"
          "       diffcl --version\n"
          "\n"
          "Commands:\n",
          f);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].help->name, commands[i].help->summary);
    fprintf(f, "  %-9s %s\n", "help", "show the help of a command");
    fputs(
        "\n"
        "Flags every command takes:\n"
        "  --device SPEC   auto (default), cpu, cl, cl:gpu, cl:cpu, cl:accelerator, cl:P:D\n"
        "                  (indices from 'diffcl devices'), cl:NAME (part of a device or\n"
        "                  platform name, any case); check and bench also take 'all';\n"
        "                  data, which runs on the host, takes no --device\n"
        "  --threads N     threads of the CPU reference (default: $DIFFCL_THREADS, else\n"
        "                  every core); results are the same for any N\n"
        "  -v, --verbose   more log output on stderr (-vv: debug)\n"
        "  -q, --quiet     only errors on stderr\n"
        "  -h, --help      the command's flags, defaults and examples\n"
        "\n"
        "Environment:\n"
        "  DIFFCL_DEVICE       device when --device is not given\n"
        "  DIFFCL_LOG          start log level: 0 errors, 1 info (default), 2 verbose, 3 debug\n"
        "  DIFFCL_CL_DIR       read OpenCL kernels from this folder instead of the built-in copy\n"
        "  DIFFCL_CL_OPTIONS   extra OpenCL build options\n"
        "  DIFFCL_CL_CACHE     'off' disables the compiled-program cache\n"
        "  DIFFCL_CL_CACHE_DIR the cache's folder (default $XDG_CACHE_HOME/diffcl or\n"
        "                      ~/.cache/diffcl)\n"
        "  DIFFCL_CL_SYNC      1: wait after every kernel, so an error names its kernel\n"
        "  DIFFCL_CPU_OPS      ops to run on the CPU reference (for bisecting a bad kernel)\n"
        "  DIFFCL_THREADS      threads of the CPU reference when --threads is not given\n"
        "\n"
        "Exit status:\n"
        "  0  success\n"
        "  1  a check or test gave wrong results (a mismatch with the CPU reference)\n"
        "  2  usage error (unknown command or flag, missing or malformed value)\n"
        "  3  no such device, or no OpenCL platform\n"
        "  4  input file, format or I/O error\n"
        "  5  device or driver failure (OpenCL call, kernel build, device memory, BLAS)\n"
        "  6  other internal error\n"
        "  7  training diverged (--max-skips non-finite steps in a row; the last finite state\n"
        "     is saved to --out)\n"
        "  130, 143  stopped by SIGINT or SIGTERM (a second one within 5 s stops at once)\n",
        f);
}

static void print_version(void) {
    printf("diffcl %s\n", dcl_version());
#ifdef DIFFCL_HAVE_OPENCL
    puts("OpenCL backend: built in");
#else
    puts("OpenCL backend: not built (DIFFCL_OPENCL=OFF)");
#endif
    printf("RNG stream version: %d\n", DCL_RNG_STREAM_VERSION);
}

static const command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].help->name, name) == 0) return &commands[i];
    return NULL;
}

static int unknown_command(const char *name) {
    const char *names[N_COMMANDS + 1];
    for (int i = 0; i < N_COMMANDS; i++) names[i] = commands[i].help->name;
    names[N_COMMANDS] = "help";
    const char *hint = cli_suggest(name, names, N_COMMANDS + 1);
    if (hint) return cli_usage_error(NULL, "unknown command '%s' (did you mean '%s'?)", name, hint);
    return cli_usage_error(NULL, "unknown command '%s'", name);
}

// Everything but the final flush of stdout; returns the exit code.
static int run(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        print_version();
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) {
        if (argc == 2 || strcmp(argv[2], "help") == 0) {
            print_help(stdout);
            return CLI_EXIT_OK;
        }
        const command *c = find_command(argv[2]);
        if (!c) return unknown_command(argv[2]);
        char *help_argv[] = {argv[2], "--help", NULL};
        return c->run(2, help_argv);
    }
    if (name[0] == '-')
        return cli_usage_error(NULL,
                               "'%s' before the command: flags go after it "
                               "(e.g. 'diffcl devices %s')",
                               name, name);
    const command *c = find_command(name);
    if (!c) return unknown_command(name);
    return c->run(argc - 1, argv + 1);
}

int main(int argc, char **argv) {
    dcl_clear_error();
    dcl_log_set_callback(cli_log, NULL);
    cli_signals_install();
    int rc = run(argc, argv);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "diffcl: error: writing to standard output failed: %s\n", strerror(errno));
        if (rc == CLI_EXIT_OK) rc = CLI_EXIT_INPUT;
    }
    return rc;
}
