// Helpers shared by the subcommands: error reports, byte sizes, the monotonic clock, terminal
// progress lines, output paths checked before the work, and the devices a command runs on.
#define _POSIX_C_SOURCE 200809L // clock_gettime, isatty, fileno, access

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> // strncasecmp
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/error.h" // dcl__fail
#include "diffcl/log.h" // dcl_log, dcl_log_get_level

void cli_escape(const char *in, char *out, size_t size) {
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;
    if (!size) return;
    for (const unsigned char *p = (const unsigned char *)in; p && *p && j + 5 <= size; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            out[j++] = (char)*p;
        } else {
            out[j++] = '\\', out[j++] = 'x', out[j++] = hex[*p >> 4], out[j++] = hex[*p & 15];
        }
    }
    out[j] = '\0';
}

int cli_report(dcl_status s) {
    const char *msg = dcl_last_error();
    char shown[2048];
    cli_escape(msg && *msg ? msg : dcl_status_str(s), shown, sizeof shown);
    cli_progress_clear();
    fprintf(stderr, "diffcl: error: %s", shown);
    if (dcl_log_get_level() >= DCL_LOG_VERBOSE) fprintf(stderr, " [%s]", dcl_status_name(s));
    fputc('\n', stderr);
    return cli_exit_code(s);
}

int cli_report_cancelled(void) {
    char shown[1024];
    cli_escape(dcl_last_error(), shown, sizeof shown);
    cli_progress_clear();
    fprintf(stderr, "diffcl: %s; nothing was written\n", shown);
    return cli_signal_exit_code();
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
    cli_progress_line(line);
}

void cli_progress_line(const char *line) {
    fflush(stdout);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    progress_shown = 1;
}

// The library's messages (dcl_log_set_callback): as the library prints them, but a live progress
// bar is erased first so the message gets a line of its own (the bar is redrawn at its next update).
void cli_log(void *ud, int level, const char *msg) {
    (void)ud;
    char shown[2048];
    cli_escape(msg, shown, sizeof shown);
    cli_progress_clear();
    fprintf(stderr, "%s%s\n", level == DCL_LOG_ERROR ? "diffcl: error: " : "diffcl: ", shown);
    fflush(stderr);
}

void cli_progress_clear(void) {
    if (!progress_shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    progress_shown = 0;
}

// ---- outputs -----------------------------------------------------------------------------------

// Whether path ends in one of exts (comma-separated, ".png,.csv"), ignoring case.
static int has_ext(const char *path, const char *exts) {
    size_t n = strlen(path);
    for (const char *e = exts; *e;) {
        size_t k = strcspn(e, ",");
        if (k && n > k && strncasecmp(path + n - k, e, k) == 0) return 1;
        e += k + (e[k] == ',');
    }
    return 0;
}

dcl_status cli_check_output(const char *flag, const char *path) {
    return cli_check_output_as(flag, path, NULL);
}

dcl_status cli_check_output_as(const char *flag, const char *path, const char *exts) {
    char shown[1024];
    cli_escape(path, shown, sizeof shown);
    if (!*path) return dcl__fail(DCL_ERR_ARG, "%s: empty file name", flag);
    struct stat st;
    int special = stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode);
    if (exts && !special && !has_ext(path, exts)) // /dev/stdout and FIFOs take any name
        return dcl__fail(DCL_ERR_ARG, "%s %s: the file name must end in %s", flag, shown, exts);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return dcl__fail(DCL_ERR_IO, "%s %s: that is a folder; give a file name", flag, shown);
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    char dshown[1024];
    cli_escape(dir, dshown, sizeof dshown);
    if (stat(dir, &st) != 0)
        return dcl__fail(DCL_ERR_IO, "%s %s: the folder %s %s", flag, shown, dshown,
                         errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return dcl__fail(DCL_ERR_IO, "%s %s: %s is not a folder", flag, shown, dshown);
    // access() answers for the real user and sees a read-only mount (EROFS), as root too.
    if (access(dir, W_OK | X_OK) != 0)
        return dcl__fail(DCL_ERR_IO, "%s %s: the folder %s is not writable (%s)", flag, shown,
                         dshown, strerror(errno));
    // A file that is there but not writable (a device or FIFO is written in place, a regular file
    // is replaced, which needs only the folder).
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && access(path, W_OK) != 0)
        return dcl__fail(DCL_ERR_IO, "%s %s: not writable (%s)", flag, shown, strerror(errno));
    struct statvfs vfs;
    if (stat(path, &st) != 0 && statvfs(dir, &vfs) == 0 && vfs.f_bavail == 0 && vfs.f_bfree == 0 &&
        vfs.f_blocks > 0)
        return dcl__fail(DCL_ERR_IO, "%s %s: the file system of %s is full", flag, shown, dshown);
    return DCL_OK;
}

void cli_path_beside(const char *path, const char *suffix, int in_cwd, char *buf, size_t size) {
    const char *base = strrchr(path, '/');
    const char *from = in_cwd && base ? base + 1 : path;
    const char *dot = strrchr(from, '.'), *slash = strrchr(from, '/');
    size_t stem =
        dot && dot != from && (!slash || dot > slash + 1) ? (size_t)(dot - from) : strlen(from);
    snprintf(buf, size, "%.*s%s", (int)stem, from, suffix);
}

// ---- devices -----------------------------------------------------------------------------------

dcl_status cli_open_device(const char *spec, dcl_device **dev, dcl_device **fallback) {
    *dev = NULL, *fallback = NULL;
    dcl_status s = dcl_device_open(dev, spec);
    // --device auto goes on on the CPU reference when the device fails (fallback is NULL for a
    // named device or the CPU reference itself).
    if (s == DCL_OK) s = dcl_device_open_fallback(*dev, fallback);
    // Every OpenCL kernel program is built now, so the first step does not stall silently on
    // compilation (dcl_device_prepare logs what it compiles and how long that took). With --device
    // auto a device that cannot build them is left for the CPU reference, as after a failure.
    if (s == DCL_OK) {
        s = dcl_device_prepare(*dev, NULL);
        if (s != DCL_OK && *fallback) {
            dcl_log(DCL_LOG_ERROR, "%s", dcl_last_error());
            dcl_log(DCL_LOG_ERROR, "going on on the CPU reference instead (--device auto)");
            dcl_device_free(*dev);
            *dev = *fallback, *fallback = NULL;
            s = DCL_OK;
        }
    }
    if (s != DCL_OK) {
        dcl_device_free(*dev), dcl_device_free(*fallback);
        *dev = NULL, *fallback = NULL;
    }
    return s;
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
