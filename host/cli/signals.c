// SIGINT and SIGTERM: the first asks long work to stop cleanly (the progress callbacks return
// non-zero, so training finishes its step and saves, sampling writes nothing); a second one within
// CLI_SIGNAL_FORCE_S seconds of the first ends the process at once with 128 + the signal.
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define CLI_SIGNAL_FORCE_S 5

static volatile sig_atomic_t pending;  // the first signal's number, 0 if none
static volatile sig_atomic_t first_at; // its CLOCK_MONOTONIC second

static void on_signal(int sig) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); // async-signal-safe (POSIX.1-2008)
    if (pending && ts.tv_sec - first_at <= CLI_SIGNAL_FORCE_S) {
        static const char msg[] = "\ndiffcl: second signal, stopping now\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    pending = sig, first_at = (sig_atomic_t)ts.tv_sec;
}

void cli_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_signal_pending(void) { return pending; }

int cli_signal_exit_code(void) { return pending ? 128 + pending : CLI_EXIT_INTERNAL; }
