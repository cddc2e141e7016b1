// Progress bars for long work (train's steps, sample's and eval's sampler steps, eval's nearest-
// image search): a bar with done/total, rate and ETA redrawn in place when stderr is a terminal,
// plain lines every ~10% (or 30 s) otherwise, so logs stay readable. Only the CLI draws them.
#ifndef DIFFCL_CLI_PROGRESS_H
#define DIFFCL_CLI_PROGRESS_H

#include <stdint.h>

typedef struct cli_bar {
    char label[32];    // "train"
    char unit[16];     // singular: "step" (rates read "steps/s", or "s/step" below one a second)
    char note[200];    // appended to every line ("loss 0.0123"); set with cli_bar_note
    int64_t total;     // > 0
    int64_t done;      // the last update's
    double t0, last;   // start and last print (seconds, monotonic)
    int tty;           // stderr is a terminal: redraw in place
    int quiet;         // print nothing
    int64_t next_line; // not a terminal: print when done reaches this
} cli_bar;

// Starts a bar (on a terminal, draws it at 0 at once). quiet: print nothing at all.
void cli_bar_start(cli_bar *p, const char *label, const char *unit, int64_t total, int quiet);
// done of total finished; redraws at most ten times a second on a terminal, else prints a line at
// each tenth of the total and at least every 30 s.
void cli_bar_update(cli_bar *p, int64_t done);
// Sets the text appended to the following lines (printf format); NULL clears it.
void cli_bar_note(cli_bar *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
// Ends the bar with one line: "LABEL DONE/TOTAL UNITs in MM:SS (RATE)" and then `summary` (may be
// NULL) instead of the note.
void cli_bar_finish(cli_bar *p, const char *summary);
// A dcl_progress_fn whose ctx is a cli_bar (the library's training and sampler callbacks); asks the
// work to stop once SIGINT or SIGTERM has arrived (cli_signal_pending).
int cli_bar_progress(void *ctx, int64_t done, int64_t total);

#endif
