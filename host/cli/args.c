// Flag parsing for every subcommand: long and short flags, range-checked numbers and size lists,
// the common flags, per-command help, and "did you mean" hints from an edit distance.
#include "cli/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"       // CLI_EXIT_USAGE
#include "diffcl/device.h" // dcl_cpu_set_threads
#include "diffcl/log.h"    // dcl_log_set_level

#define N_COMMON 5
#define MAX_CANDIDATES 64

static const char *const generic_device_help =
    "device to run on: auto, cpu, cl, cl:gpu, cl:cpu, cl:accelerator, cl:P:D or cl:NAME";

// The flags every command takes (--device only where the command runs on one); their
// destinations point into *c and *help. Returns how many there are.
static int common_opts(cli_opt o[N_COMMON], const cli_command *cmd, cli_common *c, int *help) {
    int n = 0;
    if (!cmd->no_device)
        o[n++] = (cli_opt){.name = "device",
                           .kind = CLI_OPT_STRING,
                           .dest = (void *)&c->device,
                           .metavar = "SPEC",
                           .help = cmd->device_help ? cmd->device_help : generic_device_help,
                           .def = cmd->device_def ? cmd->device_def : "$DIFFCL_DEVICE, else auto"};
    if (!cmd->no_device)
        o[n++] = (cli_opt){.name = "threads",
                           .kind = CLI_OPT_U64,
                           .dest = &c->threads,
                           .metavar = "N",
                           .help = "threads of the CPU reference (same results for any N)",
                           .def = "$DIFFCL_THREADS, else every core",
                           .min = 1,
                           .max = 256};
    o[n++] = (cli_opt){.name = "verbose",
                       .short_name = 'v',
                       .kind = CLI_OPT_COUNT,
                       .dest = &c->verbose,
                       .help = "more log output on stderr (-vv: debug)"};
    o[n++] = (cli_opt){.name = "quiet",
                       .short_name = 'q',
                       .kind = CLI_OPT_FLAG,
                       .dest = &c->quiet,
                       .help = "only errors on stderr, no progress"};
    o[n++] = (cli_opt){.name = "help",
                       .short_name = 'h',
                       .kind = CLI_OPT_FLAG,
                       .dest = help,
                       .help = "show this help"};
    return n;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[2048], shown[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_escape(msg, shown, sizeof shown); // control bytes of a path or value shown as \xNN
    fprintf(stderr, "diffcl: error: %s\n", shown);
    if (cmd) fprintf(stderr, "run 'diffcl %s --help' for its flags\n", cmd);
    else fputs("run 'diffcl --help' for the commands\n", stderr);
    return CLI_EXIT_USAGE;
}

// ---- edit distance and suggestions -------------------------------------------------------------

static int same_letter(char x, char y) {
    return tolower((unsigned char)x) == tolower((unsigned char)y);
}

int cli_edit_distance(const char *a, const char *b) {
    // Optimal string alignment distance over three rolling rows; names are short, so cap at 63.
    enum { MAXLEN = 63 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXLEN) la = MAXLEN;
    if (lb > MAXLEN) lb = MAXLEN;
    int rows[3][MAXLEN + 1];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cost = !same_letter(a[i - 1], b[j - 1]);
            int d = prev[j] + 1;
            if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;
            if (prev[j - 1] + cost < d) d = prev[j - 1] + cost;
            if (i > 1 && j > 1 && same_letter(a[i - 1], b[j - 2]) &&
                same_letter(a[i - 2], b[j - 1]) && prev2[j - 2] + 1 < d)
                d = prev2[j - 2] + 1;
            cur[j] = d;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *cli_suggest(const char *word, const char *const *candidates, int n) {
    size_t len = strlen(word);
    if (len == 0) return NULL;
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        int d = cli_edit_distance(word, candidates[i]);
        // A prefix of three or more letters ("dev" for "devices") counts as a near miss.
        if (d > limit && len >= 3 && strncmp(candidates[i], word, len) == 0) d = limit;
        if (d < best_d) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

// ---- help --------------------------------------------------------------------------------------

// "  -v, --verbose" or "      --sizes LIST" into buf; returns its length.
static int flag_label(char *buf, size_t size, const cli_opt *o) {
    char shortpart[8] = "    ";
    if (o->short_name) snprintf(shortpart, sizeof shortpart, "-%c, ", o->short_name);
    return snprintf(buf, size, "  %s--%s%s%s", shortpart, o->name, o->metavar ? " " : "",
                    o->metavar ? o->metavar : "");
}

static void print_flags(FILE *f, const cli_opt *opts, int n, int width) {
    for (int i = 0; i < n; i++) {
        char label[96];
        flag_label(label, sizeof label, &opts[i]);
        int len = fprintf(f, "%-*s  %s", width, label, opts[i].help);
        if (opts[i].def) {
            // A default that would run past the 100th column goes on a line of its own.
            if (len + (int)strlen(opts[i].def) + 12 > 100)
                fprintf(f, "\n%*s(default: %s)", width + 2, "", opts[i].def);
            else fprintf(f, " (default: %s)", opts[i].def);
        }
        fputc('\n', f);
    }
}

static int label_width(const cli_opt *opts, int n, int width) {
    for (int i = 0; i < n; i++) {
        char label[96];
        int w = flag_label(label, sizeof label, &opts[i]);
        if (w > width) width = w;
    }
    return width;
}

void cli_print_help(FILE *f, const cli_command *cmd, const cli_opt *opts, int n_opts) {
    cli_common dummy = {0};
    int help = 0;
    cli_opt common[N_COMMON];
    int nc = common_opts(common, cmd, &dummy, &help);
    int width = label_width(common, nc, label_width(opts, n_opts, 0));

    fprintf(f, "diffcl %s: %s\n\nUsage: %s\n", cmd->name, cmd->summary, cmd->usage);
    if (cmd->details) fprintf(f, "\n%s", cmd->details);
    if (n_opts > 0) {
        fputs("\nFlags:\n", f);
        print_flags(f, opts, n_opts, width);
    }
    fputs("\nCommon flags:\n", f);
    print_flags(f, common, nc, width);
    if (cmd->examples) fprintf(f, "\nExamples:\n%s", cmd->examples);
}

// ---- parsing -----------------------------------------------------------------------------------

static const cli_opt *find_long(const cli_opt *a, int na, const cli_opt *b, int nb,
                                const char *name, size_t len) {
    for (int i = 0; i < na + nb; i++) {
        const cli_opt *o = i < na ? &a[i] : &b[i - na];
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    }
    return NULL;
}

static const cli_opt *find_short(const cli_opt *a, int na, const cli_opt *b, int nb, char c) {
    for (int i = 0; i < na + nb; i++) {
        const cli_opt *o = i < na ? &a[i] : &b[i - na];
        if (o->short_name && o->short_name == c) return o;
    }
    return NULL;
}

static int unknown_flag(const cli_command *cmd, const cli_opt *a, int na, const cli_opt *b, int nb,
                        const char *flag, size_t len) {
    const char *names[MAX_CANDIDATES];
    int n = 0;
    for (int i = 0; i < na + nb && n < MAX_CANDIDATES; i++)
        names[n++] = i < na ? a[i].name : b[i - na].name;
    char word[64];
    size_t dashes = strspn(flag, "-");
    size_t wl = len > dashes ? len - dashes : 0;
    if (wl >= sizeof word) wl = sizeof word - 1;
    memcpy(word, flag + dashes, wl);
    word[wl] = '\0';
    const char *hint = cli_suggest(word, names, n);
    if (hint)
        return cli_usage_error(cmd->name, "unknown flag '%.*s' for '%s' (did you mean '--%s'?)",
                               (int)len, flag, cmd->name, hint);
    return cli_usage_error(cmd->name, "unknown flag '%.*s' for '%s'", (int)len, flag, cmd->name);
}

static int parse_u64(const char *s, size_t len, uint64_t *out) {
    if (len == 0 || len > 20) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i])) return 0;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

static int bad_number(const cli_command *cmd, const cli_opt *o, const char *value) {
    if (o->kind == CLI_OPT_SIZES)
        return cli_usage_error(cmd->name,
                               "--%s expects a comma-separated list of up to %d integers from "
                               "%llu to %llu, got '%s'",
                               o->name, CLI_MAX_SIZES, (unsigned long long)o->min,
                               (unsigned long long)o->max, value);
    if (o->min == 0 && o->max == UINT64_MAX)
        return cli_usage_error(cmd->name, "--%s expects a non-negative integer, got '%s'", o->name,
                               value);
    return cli_usage_error(cmd->name, "--%s expects an integer from %llu to %llu, got '%s'",
                           o->name, (unsigned long long)o->min, (unsigned long long)o->max, value);
}

// Stores value into o's destination; returns CLI_PARSED or the usage exit code.
static int set_value(const cli_command *cmd, const cli_opt *o, const char *value) {
    switch (o->kind) {
    case CLI_OPT_FLAG: *(int *)o->dest = 1; return CLI_PARSED;
    case CLI_OPT_COUNT: *(int *)o->dest += 1; return CLI_PARSED;
    case CLI_OPT_STRING:
        if (!*value)
            return cli_usage_error(cmd->name, "--%s needs a non-empty value (%s: %s)", o->name,
                                   o->metavar, o->help);
        *(const char **)o->dest = value;
        return CLI_PARSED;
    case CLI_OPT_U64: {
        uint64_t v;
        if (!parse_u64(value, strlen(value), &v) || v < o->min || v > o->max)
            return bad_number(cmd, o, value);
        *(uint64_t *)o->dest = v;
        return CLI_PARSED;
    }
    case CLI_OPT_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(v))
            return cli_usage_error(cmd->name, "--%s expects a number, got '%s'", o->name, value);
        *(double *)o->dest = v;
        return CLI_PARSED;
    }
    case CLI_OPT_SIZES: {
        cli_sizes s = {{0}, 0};
        const char *p = value;
        for (;;) {
            size_t len = strcspn(p, ",");
            uint64_t v;
            if (s.n == CLI_MAX_SIZES || !parse_u64(p, len, &v) || v < o->min || v > o->max)
                return bad_number(cmd, o, value);
            s.v[s.n++] = (size_t)v;
            if (p[len] == '\0') break;
            p += len + 1;
        }
        *(cli_sizes *)o->dest = s;
        return CLI_PARSED;
    }
    }
    return CLI_PARSED;
}

static int takes_value(const cli_opt *o) {
    return o->kind != CLI_OPT_FLAG && o->kind != CLI_OPT_COUNT;
}

static int missing_value(const cli_command *cmd, const cli_opt *o, const char *got) {
    if (got)
        return cli_usage_error(cmd->name, "--%s needs a value (%s: %s), got the flag '%s'", o->name,
                               o->metavar, o->help, got);
    return cli_usage_error(cmd->name, "--%s needs a value (%s: %s)", o->name, o->metavar, o->help);
}

// The value of a flag that takes one: inline ("--x=v", "-xv") or the next argument. A string
// value may not look like a flag: "--device -v" is far more likely a forgotten SPEC.
static int next_value(const cli_command *cmd, const cli_opt *o, const char *inline_value, int argc,
                      char **argv, int *i, const char **value) {
    if (inline_value) {
        *value = inline_value;
        return CLI_PARSED;
    }
    if (*i + 1 >= argc) return missing_value(cmd, o, NULL);
    const char *v = argv[*i + 1];
    if (o->kind == CLI_OPT_STRING && v[0] == '-' && v[1] != '\0') return missing_value(cmd, o, v);
    *i += 1;
    *value = v;
    return CLI_PARSED;
}

static int parse_long(const cli_command *cmd, const cli_opt *opts, int n_opts,
                      const cli_opt *common, int nc, int argc, char **argv, int *i) {
    const char *arg = argv[*i];
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const cli_opt *o = find_long(opts, n_opts, common, nc, name, len);
    if (!o) return unknown_flag(cmd, opts, n_opts, common, nc, arg, len + 2);
    if (!takes_value(o)) {
        if (eq) return cli_usage_error(cmd->name, "--%s takes no value, got '%s'", o->name, arg);
        return set_value(cmd, o, NULL);
    }
    const char *value;
    int rc = next_value(cmd, o, eq ? eq + 1 : NULL, argc, argv, i, &value);
    return rc != CLI_PARSED ? rc : set_value(cmd, o, value);
}

// A bundle of short flags ("-vq", "-vv"); a flag that takes a value ends the bundle.
static int parse_short(const cli_command *cmd, const cli_opt *opts, int n_opts,
                       const cli_opt *common, int nc, int argc, char **argv, int *i) {
    const char *arg = argv[*i];
    for (const char *p = arg + 1; *p; p++) {
        const cli_opt *o = find_short(opts, n_opts, common, nc, *p);
        if (!o) {
            char flag[3] = {'-', *p, '\0'};
            return unknown_flag(cmd, opts, n_opts, common, nc, flag, 2);
        }
        if (!takes_value(o)) {
            set_value(cmd, o, NULL);
            continue;
        }
        const char *value;
        int rc = next_value(cmd, o, p[1] ? p + 1 : NULL, argc, argv, i, &value);
        return rc != CLI_PARSED ? rc : set_value(cmd, o, value);
    }
    return CLI_PARSED;
}

int cli_parse(const cli_command *cmd, const cli_opt *opts, int n_opts, int argc, char **argv,
              cli_common *c) {
    int help = 0;
    cli_opt common[N_COMMON];
    int nc = common_opts(common, cmd, c, &help);

    // Help wins over everything else on the line, so a half-typed command can still ask for it.
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            cli_print_help(stdout, cmd, opts, n_opts);
            return CLI_EXIT_OK;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int rc;
        if (arg[0] != '-' || arg[1] == '\0')
            return cli_usage_error(cmd->name, "'%s' takes no argument '%s'", cmd->name, arg);
        if (arg[1] == '-') rc = parse_long(cmd, opts, n_opts, common, nc, argc, argv, &i);
        else rc = parse_short(cmd, opts, n_opts, common, nc, argc, argv, &i);
        if (rc != CLI_PARSED) return rc;
    }
    if (c->quiet && c->verbose)
        return cli_usage_error(cmd->name, "--quiet and --verbose contradict each other");
    if (c->threads) dcl_cpu_set_threads((int)c->threads); // in [1, 256]: cannot fail
    if (c->quiet) dcl_log_set_level(DCL_LOG_ERROR);
    if (c->verbose) dcl_log_set_level(c->verbose >= 2 ? DCL_LOG_DEBUG : DCL_LOG_VERBOSE);
    return CLI_PARSED;
}
