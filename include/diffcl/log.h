// The library's messages (it never writes to stdout). Levels: 0 errors only, 1 info (default: what
// device was picked, progress), 2 verbose (build times, fallbacks), 3 debug; -1 nothing (tests that
// provoke failures by the thousand). DIFFCL_LOG=N sets the start level. Messages go to stderr as
// "diffcl: TEXT" ("diffcl: error: TEXT" at level 0) unless a callback takes them.
#ifndef DIFFCL_LOG_H
#define DIFFCL_LOG_H

enum dcl_log_level {
    DCL_LOG_SILENT = -1,
    DCL_LOG_ERROR = 0,
    DCL_LOG_INFO = 1,
    DCL_LOG_VERBOSE = 2,
    DCL_LOG_DEBUG = 3
};

void dcl_log_set_level(int level);
int dcl_log_get_level(void);

// Receives each message at or below the current level: msg is one line of text without the
// "diffcl: " prefix and without a newline, valid only during the call. ud is the pointer given to
// dcl_log_set_callback.
typedef void (*dcl_log_fn)(void *ud, int level, const char *msg);
// Sends messages to fn (NULL: back to stderr). Set it before using diffcl from several threads:
// the callback is one process-wide setting, and fn may be called from any thread that uses diffcl.
void dcl_log_set_callback(dcl_log_fn fn, void *ud);

// Formats a message and passes it on when level <= dcl_log_get_level().
void dcl_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
