// The op cases set up for timing (`diffcl bench ops`, ggml's perf mode over its test table): a
// case's tensors allocated on one device and filled with its inputs, the op ready to run again
// and again, and what one call moves and computes.
#include <stdlib.h>

#include "core/error.h"
#include "crosscheck/case.h"
#include "crosscheck/crosscheck.h"

// Inputs repeat a pattern of this many words drawn as the check draws them: drawing every word
// (a normal deviate through log and sin/cos each) would take longer than timing the op.
#define PATTERN 4096

struct dcl_check_perf {
    dcl_device *dev;
    const struct check_case *c;
    struct problem p;
    dcl_buffer *buf[MAX_TENSORS];
    dcl_ptr ptr[MAX_TENSORS];
    dcl_check_cost cost;
};

static size_t total_words(const struct check_case *c, size_t n) {
    struct problem p = {0};
    c->setup(c, n, &p);
    size_t words = 0;
    for (int k = 0; k < p.nt; k++) words += p.t[k].len;
    return words;
}

// The size n at which the case's tensors hold about `elements` words in all. Every case grows
// (about) linearly in n, so two setups give the slope.
static size_t default_size(const struct check_case *c, size_t elements) {
    double a = (double)total_words(c, 1024), b = (double)total_words(c, 2048);
    double slope = (b - a) / 1024;
    double n = slope > 0 ? 1024 + ((double)elements - a) / slope : 1024;
    if (n < 1) return 1;
    if (n > (double)((size_t)1 << 24)) return (size_t)1 << 24;
    return (size_t)n;
}

// Writes tensor k's inputs: PATTERN words of its distribution, repeated.
static void fill_pattern(const struct problem *p, int k, uint32_t *words) {
    const struct tensor *t = &p->t[k];
    size_t m = t->len < PATTERN ? t->len : PATTERN;
    for (size_t j = 0; j < m; j++) words[j] = dcl__check_gen_word(t->gen, p->seed, (uint32_t)k, j);
    for (size_t j = m; j < t->len; j++) words[j] = words[j - m];
}

dcl_status dcl_check_perf_init(dcl_check_perf **out, dcl_device *dev, int i, size_t n,
                               size_t elements) {
    *out = NULL;
    if (i < 0 || i >= dcl__check_n_cases)
        return dcl__fail(DCL_ERR_ARG, "op case %d does not exist (there are %d)", i,
                         dcl__check_n_cases);
    const struct check_case *c = &dcl__check_cases[i];
    if (!dev) return dcl__fail(DCL_ERR_ARG, "op case %s: no device", c->name);
    if (n == 0) n = default_size(c, elements ? elements : DCL_CHECK_PERF_ELEMENTS);
    if (n > ((size_t)1 << 24))
        return dcl__fail(DCL_ERR_ARG, "op case %s: size %zu out of range [1, 2^24]", c->name, n);

    dcl_check_perf *f = calloc(1, sizeof *f);
    uint32_t *init[MAX_TENSORS] = {0};
    if (!f) return dcl__fail(DCL_ERR_NOMEM, "op case %s: out of host memory", c->name);
    f->dev = dev, f->c = c;
    f->p.seed = 1;
    c->setup(c, n, &f->p);
    const struct problem *p = &f->p;
    f->cost.n = n;
    f->cost.flops = p->flops;
    f->cost.bytes = p->bytes;
    dcl_status s = DCL_OK;
    for (int k = 0; k < p->nt && s == DCL_OK; k++) {
        // The least traffic a call needs: inputs read once, outputs written once, in-out both.
        if (!(p->bytes > 0))
            f->cost.bytes += 4.0 * (double)p->t[k].len * (p->t[k].role == INOUT ? 2 : 1);
        init[k] = malloc(p->t[k].len * 4);
        if (!init[k]) s = dcl__fail(DCL_ERR_NOMEM, "op case %s: out of host memory", c->name);
        else fill_pattern(p, k, init[k]);
    }
    if (s == DCL_OK && c->derive) c->derive(p, init, 0);
    for (int k = 0; k < p->nt && s == DCL_OK; k++) {
        s = dcl_buffer_alloc(&f->buf[k], dev, p->t[k].len, p->t[k].name);
        if (s == DCL_OK) s = dcl_buffer_write(f->buf[k], 0, p->t[k].len, init[k]);
        f->ptr[k] = dcl_at(f->buf[k], 0);
    }
    for (int k = 0; k < MAX_TENSORS; k++) free(init[k]);
    if (s != DCL_OK) {
        dcl_check_perf_free(f);
        return dcl__fail_context(s, "setting up op case %s (n=%zu) on %s", c->name, n,
                                 dcl_device_get_info(dev)->spec);
    }
    *out = f;
    return DCL_OK;
}

const dcl_check_cost *dcl_check_perf_cost(const dcl_check_perf *f) { return &f->cost; }

dcl_status dcl_check_perf_run(dcl_check_perf *f) {
    dcl_status s = f->c->run(f->dev, &f->p, f->ptr);
    if (s != DCL_OK)
        return dcl__fail_context(s, "op case %s (n=%zu) on %s", f->c->name, f->cost.n,
                                 dcl_device_get_info(f->dev)->spec);
    return DCL_OK;
}

void dcl_check_perf_free(dcl_check_perf *f) {
    if (!f) return;
    for (int k = 0; k < MAX_TENSORS; k++) dcl_buffer_free(f->buf[k]);
    free(f);
}
