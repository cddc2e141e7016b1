// Logging to stderr. Levels: 0 errors only, 1 info (default: what device was picked, progress),
// 2 verbose (build times, fallbacks), 3 debug; -1 nothing (tests that provoke failures by the
// thousand). DIFFCL_LOG=N sets the start level.
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
void dcl_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
