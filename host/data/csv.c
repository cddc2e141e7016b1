// CSV files of points: a strict reader for untrusted files (every error names the file, line and
// column) and an atomic writer. Rules of the reader (diffcl's own; CSV has no standard for these):
// comma-separated decimal numbers, spaces and tabs around them ignored; LF or CRLF line ends; a
// UTF-8 BOM ignored; blank lines and lines starting with '#' skipped; an optional header: a first
// row whose every field is a name (has a letter, is not a number); every row with the same
// number of columns; NaN, Inf, values beyond float range, hex floats, empty fields and NUL bytes
// rejected; limits DCL_CSV_MAX_*.
#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"         // dcl__fail
#include "data/data_internal.h" // dcl__csv_read
#include "diffcl/data.h"        // DCL_CSV_MAX_*, dcl_csv_write
#include "io/atomic_file.h"     // dcl__atomic_file_*

// A number longer than this is not a number anyone wrote on purpose.
#define FIELD_MAX 64
// The line reader's buffer: room for a whole maximal line (+ "\r\n") after any leftover.
#define BUF_CAP (2 * (DCL_CSV_MAX_LINE + 2))

typedef struct line_reader {
    FILE *f;
    char *buf; // BUF_CAP bytes; [pos, len) not yet returned
    size_t pos, len;
    int eof;
    size_t lineno; // of the line last returned, from 1
} line_reader;

enum { LINE_OK = 1, LINE_EOF = 0, LINE_TOO_LONG = -1, LINE_READ_ERROR = -2 };

// The next line without its "\n" or "\r\n", pointing into the reader's buffer.
static int next_line(line_reader *r, const char **line, size_t *n) {
    for (;;) {
        char *start = r->buf + r->pos;
        size_t avail = r->len - r->pos;
        char *nl = memchr(start, '\n', avail);
        if (nl || (r->eof && avail > 0)) {
            size_t len = nl ? (size_t)(nl - start) : avail;
            r->pos += len + (nl != NULL);
            r->lineno++;
            if (len > 0 && start[len - 1] == '\r') len--;
            if (len > DCL_CSV_MAX_LINE) return LINE_TOO_LONG;
            *line = start;
            *n = len;
            return LINE_OK;
        }
        if (r->eof) return LINE_EOF;
        if (avail > DCL_CSV_MAX_LINE + 1) {
            r->lineno++;
            return LINE_TOO_LONG;
        }
        memmove(r->buf, start, avail);
        r->pos = 0;
        r->len = avail;
        size_t got = fread(r->buf + r->len, 1, BUF_CAP - r->len, r->f);
        r->len += got;
        if (got == 0) {
            if (ferror(r->f)) return LINE_READ_ERROR;
            r->eof = 1;
        }
    }
}

enum field_kind { FIELD_NUMBER, FIELD_EMPTY, FIELD_TEXT, FIELD_NONFINITE, FIELD_RANGE, FIELD_LONG };

static int is_space(char c) { return c == ' ' || c == '\t'; }

// "nan", "inf", "infinity" (any case, optional sign, "nan(...)"): strtod would accept them.
static int is_nonfinite_word(const char *s) {
    if (*s == '+' || *s == '-') s++;
    char w[4] = {0};
    for (int i = 0; i < 3 && s[i]; i++) w[i] = (char)(s[i] | 0x20);
    return strcmp(w, "nan") == 0 || strcmp(w, "inf") == 0;
}

// Classifies the field [a, a + len) and, for a number, stores it in *v.
static enum field_kind parse_field(const char *a, size_t len, float *v) {
    if (len == 0) return FIELD_EMPTY;
    if (len > FIELD_MAX) return FIELD_LONG;
    char tmp[FIELD_MAX + 1];
    memcpy(tmp, a, len);
    tmp[len] = '\0';
    if (is_nonfinite_word(tmp)) return FIELD_NONFINITE;
    // Plain decimal notation only: this rejects hex floats and words before strtod sees them.
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789+-.eE", tmp[i])) return FIELD_TEXT;
    char *end;
    errno = 0;
    double d = strtod(tmp, &end);
    if (end != tmp + len) return FIELD_TEXT;
    // ERANGE on underflow (1e-400) gives a tiny or zero value, which is fine as a float.
    // From FLT_MAX + half an ulp up, rounding to float gives Inf.
    if ((errno == ERANGE && fabs(d) > 1.0) || !(fabs(d) < 0x1.ffffffp+127)) return FIELD_RANGE;
    *v = (float)d;
    return FIELD_NUMBER;
}

static const char *field_problem(enum field_kind k) {
    switch (k) {
    case FIELD_EMPTY: return "empty field (a stray or trailing comma?)";
    case FIELD_TEXT: return "not a number";
    case FIELD_NONFINITE: return "NaN and Inf are not allowed";
    case FIELD_RANGE: return "out of the range of a float";
    case FIELD_LONG: return "longer than 64 characters";
    case FIELD_NUMBER: break;
    }
    return "bad value";
}

// The growing result.
typedef struct points {
    float *x;
    size_t n_values, cap, rows, D;
} points;

static dcl_status grow(points *p, const char *path, size_t lineno) {
    if (p->rows >= DCL_CSV_MAX_ROWS || p->n_values + p->D > DCL_CSV_MAX_VALUES)
        return dcl__fail(DCL_ERR_FORMAT,
                         "%s line %zu: too many values (at most %d rows and %llu values in all)",
                         path, lineno, DCL_CSV_MAX_ROWS, (unsigned long long)DCL_CSV_MAX_VALUES);
    if (p->n_values + p->D <= p->cap) return DCL_OK;
    size_t cap = p->cap ? 2 * p->cap : 4096;
    if (cap > DCL_CSV_MAX_VALUES) cap = DCL_CSV_MAX_VALUES;
    float *x = realloc(p->x, cap * sizeof *x);
    if (!x) return dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory at line %zu", path, lineno);
    p->x = x;
    p->cap = cap;
    return DCL_OK;
}

static int has_letter(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') return 1;
    return 0;
}

// Parses one non-blank line: the header (when first and every field is a name, i.e. text with a
// letter that is not a number) or a data row.
static dcl_status parse_line(points *p, const char *path, size_t lineno, const char *line, size_t n,
                             size_t *header_cols, size_t *first_row_line) {
    if (memchr(line, '\0', n))
        return dcl__fail(DCL_ERR_FORMAT, "%s line %zu: contains a NUL byte (not a text file?)",
                         path, lineno);
    // Pass 1: count the fields.
    size_t cols = 1, names = 0;
    for (size_t i = 0; i < n; i++) cols += line[i] == ',';
    if (cols > DCL_CSV_MAX_COLS)
        return dcl__fail(DCL_ERR_FORMAT, "%s line %zu: %zu columns, at most %d are allowed", path,
                         lineno, cols, DCL_CSV_MAX_COLS);
    int first = p->rows == 0 && *header_cols == 0;
    size_t expected = p->rows ? p->D : *header_cols;
    if (expected && cols != expected)
        return dcl__fail(DCL_ERR_FORMAT, "%s line %zu: %zu columns, expected %zu as on line %zu",
                         path, lineno, cols, expected, *first_row_line);
    if (p->rows == 0) {
        p->D = cols;
        if (*first_row_line == 0) *first_row_line = lineno;
    }
    dcl_status s = grow(p, path, lineno);
    if (s != DCL_OK) return s;

    // Pass 2: parse every field into the next row.
    float *row = p->x + p->n_values;
    const char *f = line, *end = line + n;
    enum field_kind bad = FIELD_NUMBER;
    size_t bad_col = 0;
    const char *bad_a = NULL;
    size_t bad_len = 0;
    for (size_t c = 0; c < cols; c++) {
        const char *comma = memchr(f, ',', (size_t)(end - f));
        const char *a = f, *b = comma ? comma : end;
        while (a < b && is_space(*a)) a++;
        while (b > a && is_space(b[-1])) b--;
        enum field_kind k = parse_field(a, (size_t)(b - a), &row[c]);
        if (k == FIELD_TEXT && has_letter(a, (size_t)(b - a))) names++;
        if (k != FIELD_NUMBER && bad == FIELD_NUMBER)
            bad = k, bad_col = c + 1, bad_a = a, bad_len = (size_t)(b - a);
        f = comma ? comma + 1 : end;
    }
    if (bad == FIELD_NUMBER) {
        p->rows++;
        p->n_values += cols;
        return DCL_OK;
    }
    if (first && names == cols) {
        *header_cols = cols; // a header row: its names are not used
        return DCL_OK;
    }
    // The field is echoed with control bytes as \xNN: a raw CR would rewind the terminal line.
    int cut = bad_len > 24;
    char shown[4 * 24 + 1];
    size_t j = 0;
    for (size_t i = 0; i < (cut ? 24 : bad_len); i++) {
        unsigned char ch = (unsigned char)bad_a[i];
        if (ch >= 0x20 && ch != 0x7f) shown[j++] = (char)ch;
        else j += (size_t)snprintf(shown + j, sizeof shown - j, "\\x%02x", ch);
    }
    shown[j] = '\0';
    int cr = memchr(bad_a, '\r', bad_len) != NULL;
    return dcl__fail(DCL_ERR_FORMAT, "%s line %zu, column %zu: %s: '%s%s'%s", path, lineno, bad_col,
                     field_problem(bad), shown, cut ? "..." : "",
                     cr ? " (a CR inside a line: are the line ends CR only? use LF or CRLF)" : "");
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i])) return 0;
    return 1;
}

static dcl_status read_lines(line_reader *r, points *p, const char *path) {
    size_t header_cols = 0, first_row_line = 0;
    const char *line;
    size_t n;
    int rc;
    while ((rc = next_line(r, &line, &n)) == LINE_OK) {
        if (r->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, n -= 3;
        if (is_blank(line, n) || line[0] == '#') continue;
        dcl_status s = parse_line(p, path, r->lineno, line, n, &header_cols, &first_row_line);
        if (s != DCL_OK) return s;
    }
    if (rc == LINE_TOO_LONG)
        return dcl__fail(DCL_ERR_FORMAT, "%s line %zu: longer than %d bytes", path, r->lineno,
                         DCL_CSV_MAX_LINE);
    if (rc == LINE_READ_ERROR)
        return dcl__fail(DCL_ERR_IO, "reading %s after line %zu: %s", path, r->lineno,
                         strerror(errno ? errno : EIO));
    if (p->rows == 0)
        return dcl__fail(DCL_ERR_FORMAT, "%s: no data rows (%zu lines, %s)", path, r->lineno,
                         header_cols ? "only a header" : "empty or only comments");
    return DCL_OK;
}

dcl_status dcl__csv_read(const char *path, float **x, size_t *n, size_t *D) {
    *x = NULL;
    *n = *D = 0;
    dcl_status opened;
    FILE *f = dcl__fopen_input(path, &opened);
    if (!f) return opened;
    line_reader r = {.f = f, .buf = malloc(BUF_CAP)};
    if (!r.buf) {
        fclose(f);
        return dcl__fail(DCL_ERR_NOMEM, "reading %s: out of memory", path);
    }
    // strtod under the "C" locale, whatever the program's locale (a ',' decimal point would
    // otherwise misread every number).
    locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    points p = {0};
    dcl_status s = read_lines(&r, &p, path);
    if (c_locale) {
        uselocale(old);
        freelocale(c_locale);
    }
    free(r.buf);
    fclose(f);
    if (s != DCL_OK) {
        free(p.x);
        return s;
    }
    *x = p.x;
    *n = p.rows;
    *D = p.D;
    return DCL_OK;
}

dcl_status dcl_csv_write(const char *path, const float *x, size_t n, size_t D) {
    return dcl_csv_write_named(path, x, n, D, NULL);
}

dcl_status dcl_csv_write_named(const char *path, const float *x, size_t n, size_t D,
                               const char *header) {
    if (!path || !*path) return dcl__fail(DCL_ERR_ARG, "CSV output needs a file name");
    if (header && (strlen(header) > 4096 || strchr(header, '\n')))
        return dcl__fail(DCL_ERR_ARG, "writing %s: a header is one line of at most 4096 bytes",
                         path);
    if (D == 0 || D > DCL_CSV_MAX_COLS || (n > 0 && !x))
        return dcl__fail(DCL_ERR_ARG, "writing %s: %zu columns (allowed 1..%d)%s", path, D,
                         DCL_CSV_MAX_COLS, n > 0 && !x ? " and no points" : "");
    dcl_atomic_file af = {0};
    dcl_status s = dcl__atomic_file_open(&af, path);
    if (s != DCL_OK) return s;
    // Rows go through a buffer flushed in large writes; one value takes at most 16 bytes.
    enum { CAP = 1 << 16 };
    char buf[CAP];
    size_t len = 0;
    if (header) len = (size_t)snprintf(buf, CAP, "%s", header);
    for (size_t j = 0; j < D && s == DCL_OK && !header; j++) {
        len += (size_t)snprintf(buf + len, CAP - len, "%sx%zu", j ? "," : "", j);
        if (len > CAP - 32) s = dcl__atomic_file_write(&af, buf, len), len = 0;
    }
    buf[len++] = '\n';
    // %.9g under the program's locale would print "0,5" in some; csv files use '.'.
    locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    for (size_t i = 0; i < n && s == DCL_OK; i++) {
        for (size_t j = 0; j < D; j++) {
            len += (size_t)snprintf(buf + len, CAP - len, "%s%.9g", j ? "," : "",
                                    (double)x[i * D + j]);
            if (len > CAP - 32) {
                s = dcl__atomic_file_write(&af, buf, len);
                len = 0;
                if (s != DCL_OK) break;
            }
        }
        buf[len++] = '\n';
    }
    if (c_locale) {
        uselocale(old);
        freelocale(c_locale);
    }
    if (s == DCL_OK && len) s = dcl__atomic_file_write(&af, buf, len);
    if (s == DCL_OK) return dcl__atomic_file_commit(&af);
    dcl__atomic_file_abort(&af);
    return s;
}
