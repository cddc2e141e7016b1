// The check runner: runs one op case on a device and on the CPU reference from the same inputs,
// with sentinel guards around every tensor (ggml's pattern), and compares the results element by
// element. The cases themselves are cases.c.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "crosscheck/case.h"
#include "crosscheck/crosscheck.h"
#include "diffcl/log.h" // dcl_log_get_level, dcl_log_set_level

#define GUARD 16    // guard elements after every tensor (and the `off` ones before it)
#define MAX_SHOWN 5 // mismatches listed in r->detail

// The word that fills tensor k's guards (and an OUT tensor's own elements before the op). Each is
// chosen so that a stray access shows: an input's guards are NaN with a payload of its own, so an
// out-of-bounds read poisons a sum or a count; an output's guards are another NaN, which no value
// computed from inputs (which carries the input's payload, or none) reproduces; an in-out
// tensor's guards are an ordinary number, so an in-place op writing one past the end computes
// something else from it (a NaN there would pass through a*x + b*y unchanged).
static uint32_t guard_word(enum role role, int k) {
    if (role == IN) return 0x7fc0e000u + (uint32_t)k;
    if (role == OUT) return 0x7fc0dcb1u;
    return 0xc49a522bu; // -1234.5677f
}

dcl_status dcl_check_reference_open(dcl_device **ref) {
    *ref = NULL;
    // The comparison's own reference device is not the user's pick: open it without the
    // "device cpu: ..." line, which would read as if the user had chosen the CPU.
    int level = dcl_log_get_level();
    if (level == DCL_LOG_INFO) dcl_log_set_level(DCL_LOG_ERROR);
    dcl_status s = dcl_device_open(ref, "cpu");
    dcl_log_set_level(level);
    if (s != DCL_OK) return dcl__fail_context(s, "opening the CPU reference for op checks");
    return DCL_OK;
}

// Appends printf-style text to r->detail, silently truncating.
static void note(dcl_check_result *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void note(dcl_check_result *r, const char *fmt, ...) {
    size_t k = strlen(r->detail);
    if (k + 1 >= sizeof r->detail) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail + k, sizeof r->detail - k, fmt, ap);
    va_end(ap);
}

// Compares one output region element by element; returns the number of mismatches. An OUT
// element still holding the guard word g was never written (by the device, or by the reference:
// a NaN on both sides would otherwise compare equal); raw-bit outputs are exempt, since random
// bits may take any value.
static size_t compare(dcl_check_result *r, const struct problem *p, const struct tensor *t,
                      const uint32_t *got, const uint32_t *want, uint32_t g, size_t *shown) {
    size_t bad = 0;
    for (size_t i = 0; i < t->len; i++) {
        int ok;
        float a = bits_float(got[i]), b = bits_float(want[i]);
        if (t->role == OUT && !t->bits && (got[i] == g || want[i] == g)) {
            ok = 0;
        } else if (t->bits) {
            ok = got[i] == want[i];
        } else if (!isfinite(a) || !isfinite(b)) {
            ok = (isnan(a) && isnan(b)) || a == b; // same non-finite class in the same place
        } else {
            double d = fabs((double)a - (double)b);
            if (d > r->max_abs) r->max_abs = d;
            if (b != 0.0f && d / fabs((double)b) > r->max_rel) r->max_rel = d / fabs((double)b);
            ok = d <= (t->atol > 0 ? t->atol : p->atol) + p->rtol * fabs((double)b);
        }
        if (ok) continue;
        if (bad++ == 0 && *shown == 0) note(r, "mismatches:");
        if (*shown < MAX_SHOWN) {
            (*shown)++;
            if (t->bits) note(r, " %s[%zu] dev=0x%08x ref=0x%08x;", t->name, i, got[i], want[i]);
            else if (t->role == OUT && (got[i] == g || want[i] == g))
                note(r, " %s[%zu] %s never written;", t->name, i, got[i] == g ? "dev" : "ref");
            else note(r, " %s[%zu] dev=%.9g ref=%.9g;", t->name, i, a, b);
        }
    }
    return bad;
}

// Reports the first word of [lo, hi) that is not the guard word g; returns 1 if any.
static int guard_damaged(dcl_check_result *r, const struct tensor *t, const uint32_t *buf,
                         size_t lo, size_t hi, uint32_t g, const char *where) {
    for (size_t i = lo; i < hi; i++) {
        if (buf[i] == g) continue;
        note(r, " %s: guard %s written at buffer element %zu (0x%08x);", t->name, where, i, buf[i]);
        return 1;
    }
    return 0;
}

// Host copies and device buffers of one run; freed on every path by free_run.
struct run {
    uint32_t *init[MAX_TENSORS], *got[MAX_TENSORS], *want[MAX_TENSORS];
    dcl_buffer *dbuf[MAX_TENSORS], *rbuf[MAX_TENSORS];
};

static void free_run(struct run *u) {
    for (int k = 0; k < MAX_TENSORS; k++) {
        free(u->init[k]), free(u->got[k]), free(u->want[k]);
        dcl_buffer_free(u->dbuf[k]), dcl_buffer_free(u->rbuf[k]);
    }
}

// Allocates the buffers of p on dev, writes the initial words, runs the case and reads every
// buffer back whole (guards included) into out[k].
static dcl_status run_on(dcl_device *dev, const struct check_case *c, const struct problem *p,
                         size_t off, uint32_t *const *init, dcl_buffer **bufs, uint32_t **out) {
    dcl_ptr ptr[MAX_TENSORS];
    dcl_status s = DCL_OK;
    for (int k = 0; k < p->nt && s == DCL_OK; k++) {
        size_t total = off + p->t[k].len + GUARD;
        s = dcl_buffer_alloc(&bufs[k], dev, total, p->t[k].name);
        if (s == DCL_OK) s = dcl_buffer_write(bufs[k], 0, total, init[k]);
        ptr[k] = dcl_at(bufs[k], off);
    }
    if (s == DCL_OK && (s = c->run(dev, p, ptr)) != DCL_OK)
        return dcl__fail_context(s, "op case %s (n=%zu, off=%zu) on %s", c->name, p->n, off,
                                 dcl_device_get_info(dev)->spec);
    for (int k = 0; k < p->nt && s == DCL_OK; k++)
        s = dcl_buffer_read(bufs[k], 0, off + p->t[k].len + GUARD, out[k]);
    return s;
}

dcl_status dcl_check_case_run(dcl_device *dev, dcl_device *ref, int i, size_t n, size_t off,
                              uint64_t seed, dcl_check_result *r) {
    memset(r, 0, sizeof *r);
    if (i < 0 || i >= dcl__check_n_cases)
        return dcl__fail(DCL_ERR_ARG, "op case %d does not exist (there are %d)", i,
                         dcl__check_n_cases);
    const struct check_case *c = &dcl__check_cases[i];
    snprintf(r->name, sizeof r->name, "%s", c->name);
    r->n = n;
    if (!dev || !ref) return dcl__fail(DCL_ERR_ARG, "op case %s: no device", c->name);
    if (n < 1 || n > ((size_t)1 << 24) || off > ((size_t)1 << 24))
        return dcl__fail(DCL_ERR_ARG, "op case %s: size %zu or offset %zu out of range [1, 2^24]",
                         c->name, n, off);

    struct problem p = {0};
    p.seed = seed;
    c->setup(c, n, &p);
    r->atol = (float)p.atol, r->rtol = (float)p.rtol;

    dcl_status s = DCL_OK;
    struct run u;
    memset(&u, 0, sizeof u);
    for (int k = 0; k < p.nt && s == DCL_OK; k++) {
        size_t total = off + p.t[k].len + GUARD;
        u.init[k] = malloc(total * 4), u.got[k] = malloc(total * 4), u.want[k] = malloc(total * 4);
        if (!u.init[k] || !u.got[k] || !u.want[k]) {
            s = dcl__fail(DCL_ERR_NOMEM, "op case %s: out of host memory", c->name);
            break;
        }
        uint32_t g = guard_word(p.t[k].role, k);
        for (size_t j = 0; j < total; j++) u.init[k][j] = g;
        if (p.t[k].role != OUT)
            for (size_t j = 0; j < p.t[k].len; j++)
                u.init[k][off + j] = dcl__check_gen_word(p.t[k].gen, seed, (uint32_t)k, j);
    }
    if (s == DCL_OK && c->derive) c->derive(&p, u.init, off);
    if (s == DCL_OK) s = run_on(ref, c, &p, off, u.init, u.rbuf, u.want);
    if (s == DCL_OK) s = run_on(dev, c, &p, off, u.init, u.dbuf, u.got);
    if (s != DCL_OK) {
        note(r, "%s", dcl_last_error());
        free_run(&u);
        return s;
    }

    size_t bad = 0, shown = 0;
    for (int k = 0; k < p.nt; k++) {
        const struct tensor *t = &p.t[k];
        size_t total = off + t->len + GUARD;
        if (t->role == IN) {
            // Inputs must come back untouched, guards and all.
            for (size_t j = 0; j < total; j++) {
                if (u.got[k][j] == u.init[k][j]) continue;
                note(r, " input %s modified at buffer element %zu;", t->name, j);
                bad++;
                break;
            }
            continue;
        }
        r->elements += t->len;
        uint32_t g = guard_word(t->role, k);
        bad += compare(r, &p, t, u.got[k] + off, u.want[k] + off, g, &shown);
        bad += (size_t)guard_damaged(r, t, u.got[k], 0, off, g, "before");
        bad += (size_t)guard_damaged(r, t, u.got[k], off + t->len, total, g, "after");
    }
    r->pass = bad == 0;
    free_run(&u);
    return DCL_OK;
}
