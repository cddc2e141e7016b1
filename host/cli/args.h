// Flag parsing shared by every subcommand: a table of flags per command, the flags every command
// takes (--device, -v/--verbose, -q/--quiet, -h/--help), help text and "did you mean" hints.
#ifndef DIFFCL_CLI_ARGS_H
#define DIFFCL_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_MAX_SIZES 16
#define CLI_COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))
// cli_parse's "go on and run the command" answer (every other answer is an exit code).
#define CLI_PARSED (-1)

enum cli_opt_kind {
    CLI_OPT_FLAG,   // int *: set to 1
    CLI_OPT_COUNT,  // int *: incremented each time (-vv)
    CLI_OPT_STRING, // const char **: points into argv
    CLI_OPT_U64,    // uint64_t *: a decimal integer in [min, max]
    CLI_OPT_SIZES,  // cli_sizes *: comma-separated decimal integers, each in [min, max]
    CLI_OPT_DOUBLE, // double *: a finite number (the command checks its range)
};

typedef struct cli_sizes {
    size_t v[CLI_MAX_SIZES];
    int n;
} cli_sizes;

typedef struct cli_opt {
    const char *name; // long name without the dashes: "sizes"
    char short_name;  // 'j', or 0 for none
    enum cli_opt_kind kind;
    void *dest;          // see enum cli_opt_kind
    const char *metavar; // "N", "LIST"; NULL for flags
    const char *help;    // one line
    const char *def;     // the default as help shows it, or NULL
    uint64_t min, max;   // allowed range of a U64 and of each SIZES entry
} cli_opt;

typedef struct cli_command {
    const char *name;        // "check"
    const char *summary;     // one line, for the global help too
    const char *usage;       // "diffcl check [--device SPEC|all] ..."
    const char *details;     // paragraphs after the usage line, or NULL
    const char *examples;    // one example per line
    const char *device_help; // what --device means for this command (NULL: the generic text)
    const char *device_def;  // its default as help shows it (NULL: "auto")
    int no_device;           // the command runs on no device: it takes no --device flag
} cli_command;

// The flags every command takes.
typedef struct cli_common {
    const char *device; // --device SPEC; NULL when not given
    int verbose;        // number of -v
    int quiet;          // -q
    uint64_t threads;   // --threads N; 0 when not given
} cli_common;

// Parses argv[1..argc) (argv[0] is the command name) against opts and the common flags, then sets
// the log level (-v: verbose, -vv: debug, -q: errors only). Returns CLI_PARSED when the command
// should run; otherwise the exit code to return at once: 0 after printing help for -h/--help
// anywhere, CLI_EXIT_USAGE after printing an error that names the flag and what it allows.
int cli_parse(const cli_command *cmd, const cli_opt *opts, int n_opts, int argc, char **argv,
              cli_common *common);

// The command's help: summary, usage, details, every flag with its default, examples.
void cli_print_help(FILE *f, const cli_command *cmd, const cli_opt *opts, int n_opts);

// Prints "diffcl: error: <message>" and "run 'diffcl CMD --help' ..." to stderr; returns
// CLI_EXIT_USAGE. cmd may be NULL (then the hint names 'diffcl --help').
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

// Edit distance with adjacent transpositions counting 1 ("devcies" -> "devices" is 1).
int cli_edit_distance(const char *a, const char *b);
// The candidate closest to word if it is close enough to be a likely typo, else NULL.
const char *cli_suggest(const char *word, const char *const *candidates, int n);

#endif
