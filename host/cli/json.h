// A tiny JSON writer for the CLI's --json output: string literals and numbers, written to a FILE.
#ifndef DIFFCL_CLI_JSON_H
#define DIFFCL_CLI_JSON_H

#include <stdio.h>

// s as a JSON string literal, quotes included: escapes '"', '\\' and control characters, and
// writes U+FFFD for bytes that are not valid UTF-8 (driver strings are not guaranteed to be).
void cli_json_string(FILE *f, const char *s);
// v as a JSON number (shortest round-trip form), or null when v is NaN or infinite.
void cli_json_number(FILE *f, double v);
// A float as the shortest decimal that reads back as the same float (atol 1e-5, not
// 9.9999997e-06), or null when it is NaN or infinite.
void cli_json_float(FILE *f, float v);
// "true" or "false".
void cli_json_bool(FILE *f, int v);

#endif
