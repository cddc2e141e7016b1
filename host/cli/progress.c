// Progress bar with rate and ETA on a terminal; periodic plain lines when stderr is not one.
#include "cli/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_time(char *buf, size_t size, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, size, "--:--");
    else if (s < 3600) snprintf(buf, size, "%02d:%02d", (int)s / 60, (int)s % 60);
    else snprintf(buf, size, "%d:%02d:%02d", (int)s / 3600, (int)s / 60 % 60, (int)s % 60);
}

void cli_bar_start(cli_bar *p, const char *label, int64_t total, int quiet) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->t0 = p->last = now();
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
    p->next_line = p->total / 10 > 0 ? p->total / 10 : 1;
}

static void print(cli_bar *p, int64_t done, const char *extra, int final) {
    double el = now() - p->t0, rate = done / (el > 1e-9 ? el : 1e-9);
    char eta[16], elapsed[16], line[256];
    fmt_time(eta, sizeof eta, rate > 0 ? (p->total - done) / rate : -1);
    fmt_time(elapsed, sizeof elapsed, el);
    snprintf(line, sizeof line, "%lld/%lld %.1f/s %s%s%s%s%s", (long long)done, (long long)p->total,
             rate, elapsed, final ? "" : " ETA ", final ? "" : eta, extra ? "  " : "",
             extra ? extra : "");
    if (p->tty) {
        char bar[31];
        int fill = (int)(30 * done / p->total);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %s%s", p->label, bar, line, final ? "\n" : "");
    } else {
        fprintf(stderr, "%s %3.0f%% %s\n", p->label, 100.0 * done / p->total, line);
    }
    fflush(stderr);
}

void cli_bar_update(cli_bar *p, int64_t done, const char *extra) {
    if (p->quiet) return;
    double t = now();
    if (p->tty) {
        if (t - p->last < 0.1 && done < p->total) return; // at most ten redraws a second
    } else if (done < p->next_line && t - p->last < 30) {
        return;
    } else {
        while (p->next_line <= done) p->next_line += p->total / 10 > 0 ? p->total / 10 : 1;
    }
    p->last = t;
    print(p, done, extra, 0);
}

void cli_bar_finish(cli_bar *p, const char *extra) {
    if (!p->quiet) print(p, p->total, extra, 1);
}
