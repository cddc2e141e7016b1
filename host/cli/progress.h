// Progress bars for long work (train, sample): a bar with done/total, rate and ETA redrawn in place on a terminal, plain
// lines every ~10% (or 30 s) otherwise, so logs stay readable.
#ifndef DIFFCL_CLI_PROGRESS_H
#define DIFFCL_CLI_PROGRESS_H

#include <stdint.h>

typedef struct cli_bar {
    char label[32];
    int64_t total;
    double t0, last;   // start and last print (seconds, monotonic)
    int tty;           // stderr is a terminal
    int quiet;         // print nothing
    int64_t next_line; // non-terminal: print when done reaches this
} cli_bar;

void cli_bar_start(cli_bar *p, const char *label, int64_t total, int quiet);
// done of total finished; extra is appended ("loss 0.0123"), may be NULL.
void cli_bar_update(cli_bar *p, int64_t done, const char *extra);
// Ends the bar with a newline and the total time.
void cli_bar_finish(cli_bar *p, const char *extra);

#endif
