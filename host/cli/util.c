// Helpers shared by the subcommands: error reports, byte sizes, the monotonic clock, terminal
// progress lines, and the list of devices a command runs on.
#define _POSIX_C_SOURCE 200809L // clock_gettime, isatty, fileno

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "diffcl/log.h" // dcl_log, dcl_log_get_level

int cli_report(dcl_status s) {
    const char *msg = dcl_last_error();
    cli_progress_clear();
    fprintf(stderr, "diffcl: error: %s", msg && *msg ? msg : dcl_status_str(s));
    if (dcl_log_get_level() >= DCL_LOG_VERBOSE) fprintf(stderr, " [%s]", dcl_status_name(s));
    fputc('\n', stderr);
    return cli_exit_code(s);
}

void cli_format_bytes(char *out, size_t size, unsigned long long bytes) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    unsigned long long whole = bytes, div = 1;
    while (whole >= 1024 && u < 5) {
        whole /= 1024;
        div *= 1024;
        u++;
    }
    if (bytes % div == 0) snprintf(out, size, "%llu %s", whole, units[u]);
    else snprintf(out, size, "%.1f %s", (double)bytes / (double)div, units[u]);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- progress ----------------------------------------------------------------------------------

static int progress_shown; // a progress line is on the terminal and must be erased

int cli_progress_enabled(void) {
    return isatty(fileno(stderr)) && dcl_log_get_level() >= DCL_LOG_INFO;
}

void cli_progress(const char *fmt, ...) {
    if (!cli_progress_enabled()) return;
    char line[80]; // kept under one terminal line so '\r' can overwrite it
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    progress_shown = 1;
}

void cli_progress_clear(void) {
    if (!progress_shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    progress_shown = 0;
}

// ---- targets -----------------------------------------------------------------------------------

dcl_status cli_targets_init(cli_targets *t, const char *spec, int with_cpu) {
    memset(t, 0, sizeof *t);
    dcl_status s = dcl_device_list(&t->list, &t->n_list, &t->n_platforms);
    if (s != DCL_OK) return s;
    t->specs = malloc((size_t)(t->n_list + 1) * sizeof *t->specs);
    if (!t->specs) {
        cli_targets_free(t);
        return DCL_ERR_NOMEM;
    }
    if (strcmp(spec, "all") != 0) {
        t->specs[t->n++] = spec;
        return DCL_OK;
    }
    if (with_cpu) t->specs[t->n++] = "cpu";
    for (int i = 0; i < t->n_list; i++) {
        const dcl_device_info *d = &t->list[i];
        if (d->backend != DCL_BACKEND_OPENCL) continue;
        if (d->usable) {
            t->specs[t->n++] = d->spec;
        } else {
            dcl_log(DCL_LOG_INFO, "skipping %s (%s): %s", d->spec, d->name, d->why_not);
            t->n_unusable++;
        }
    }
    return DCL_OK;
}

void cli_targets_free(cli_targets *t) {
    free(t->specs);
    free(t->list);
    memset(t, 0, sizeof *t);
}
