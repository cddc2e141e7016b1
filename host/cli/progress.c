// Progress bars: rate and ETA in place on a terminal (tqdm's layout), periodic plain lines when
// stderr is not one.
#define _POSIX_C_SOURCE 200809L // fileno, ioctl's TIOCGWINSZ

#include "cli/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli.h" // cli_now, cli_progress_line

#define BAR_WIDTH 30

static void fmt_time(char *buf, size_t size, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, size, "--:--");
    else if (s < 3600) snprintf(buf, size, "%02d:%02d", (int)s / 60, (int)s % 60);
    else snprintf(buf, size, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
}

// "34.9 steps/s", or "2.41 s/step" when slower than one a second; "? steps/s" before the first.
static void fmt_rate(char *buf, size_t size, const cli_bar *p, int64_t done, double elapsed) {
    if (done <= 0 || elapsed <= 0) snprintf(buf, size, "? %ss/s", p->unit);
    else if (done >= elapsed) snprintf(buf, size, "%.1f %ss/s", (double)done / elapsed, p->unit);
    else snprintf(buf, size, "%.2f s/%s", elapsed / (double)done, p->unit);
}

void cli_bar_start(cli_bar *p, const char *label, const char *unit, int64_t total, int quiet) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total > 0 ? total : 1;
    p->t0 = p->last = cli_now();
    p->tty = isatty(fileno(stderr));
    p->quiet = quiet;
    p->next_line = p->total / 10 > 0 ? p->total / 10 : 1;
    if (p->tty && !quiet) cli_bar_update(p, 0);
}

void cli_bar_note(cli_bar *p, const char *fmt, ...) {
    p->note[0] = '\0';
    if (!fmt) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note, sizeof p->note, fmt, ap);
    va_end(ap);
}

static int terminal_columns(void) {
    struct winsize w;
    if (ioctl(fileno(stderr), TIOCGWINSZ, &w) == 0 && w.ws_col >= 20) return w.ws_col;
    return 80;
}

static void print(cli_bar *p, int64_t done) {
    double el = cli_now() - p->t0;
    char rate[32], eta[16], elapsed[16], line[512];
    fmt_rate(rate, sizeof rate, p, done, el);
    fmt_time(elapsed, sizeof elapsed, el);
    fmt_time(eta, sizeof eta, done > 0 ? (double)(p->total - done) * el / (double)done : -1);
    int pct = (int)(100 * done / p->total);
    if (p->tty) {
        // tqdm's layout; the bar takes what the terminal has left (up to BAR_WIDTH), and the
        // line is kept within one terminal line so '\r' can overwrite it.
        char rest[400], bar[BAR_WIDTH + 1] = "";
        snprintf(rest, sizeof rest, "%lld/%lld %ss %s<%s %s%s%s", (long long)done,
                 (long long)p->total, p->unit, elapsed, eta, rate, p->note[0] ? "  " : "", p->note);
        int cols = terminal_columns();
        int width = cols - 1 - (int)(strlen(p->label) + strlen(rest)) - 10;
        if (width > BAR_WIDTH) width = BAR_WIDTH;
        int64_t fill = width > 0 ? width * done / p->total : 0;
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width >= 8 ? width : 0] = '\0'; // no bar at all when it would be shorter than 8
        snprintf(line, sizeof line, "%s %3d%% %s%s%s%s", p->label, pct, bar[0] ? "[" : "", bar,
                 bar[0] ? "] " : "", rest);
        if ((int)strlen(line) >= cols) line[cols - 1] = '\0';
        cli_progress_line(line);
    } else {
        fprintf(stderr, "%s %3d%% %lld/%lld %ss %s<%s %s%s%s\n", p->label, pct, (long long)done,
                (long long)p->total, p->unit, elapsed, eta, rate, p->note[0] ? "  " : "", p->note);
        fflush(stderr);
    }
}

void cli_bar_update(cli_bar *p, int64_t done) {
    if (p->quiet) return;
    double t = cli_now();
    p->done = done;
    if (p->tty) {
        if (t - p->last < 0.1 && done > 0 && done < p->total) return; // ten redraws a second
    } else if (done >= p->total || (done < p->next_line && t - p->last < 30)) {
        return; // the end is cli_bar_finish's line
    } else {
        while (p->next_line <= done) p->next_line += p->total / 10 > 0 ? p->total / 10 : 1;
    }
    p->last = t;
    print(p, done);
}

void cli_bar_finish(cli_bar *p, const char *summary) {
    if (p->quiet) return;
    double el = cli_now() - p->t0;
    char rate[32], elapsed[16];
    fmt_rate(rate, sizeof rate, p, p->total, el);
    if (el < 60) snprintf(elapsed, sizeof elapsed, "%.1f s", el);
    else fmt_time(elapsed, sizeof elapsed, el);
    cli_progress_clear();
    fprintf(stderr, "%s %lld/%lld %ss in %s (%s)%s%s\n", p->label, (long long)p->total,
            (long long)p->total, p->unit, elapsed, rate, summary ? ": " : "",
            summary ? summary : "");
    fflush(stderr);
}

int cli_bar_progress(void *ctx, int64_t done, int64_t total) {
    cli_bar *p = ctx;
    if (total > 0) p->total = total;
    cli_bar_update(p, done);
    return cli_signal_pending() != 0;
}
