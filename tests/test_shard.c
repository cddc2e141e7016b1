// The trainer's data-parallel hooks (dcl_train_opts shard, reduce and sync) without MPI: two
// forked processes on the CPU reference, each training its half of the batch, sum their gradients
// through pipes. Their weights must stay bit for bit equal; their global gradient must match one
// process's within the summation-order bound; the sync hook must see every read-back; a shard's
// examples must be those rows of the whole batch (dcl_dataset_batch_at); bad shards are refused;
// another process's stop flag ends training with the last consistent state saved.
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "diffcl/data.h" // dcl_dataset_batch_at
#include "diffcl/log.h"
#include "diffcl/train.h"

#define BATCH 128
#define STEPS 10
#define LOG_EVERY 4

static dcl_model_config config(void) {
    dcl_model_config c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(dcl_process_parse("flow", &c.process), DCL_OK);
    c.pred = DCL_PREDICT_VELOCITY;
    c.net.kind = DCL_NET_MLP;
    c.net.mlp =
        (dcl_mlp_config){.dim = 2, .width = 16, .depth = 2, .emb_dim = 8, .act = DCL_ACT_RELU};
    snprintf(c.data, sizeof c.data, "spiral");
    c.seed = 5;
    return c;
}

static dcl_train_opts opts(int steps) {
    dcl_train_opts o;
    dcl_train_opts_default(&o);
    o.steps = steps, o.batch = BATCH, o.warmup = 2, o.log_every = LOG_EVERY;
    return o;
}

// One process of the pair: its pipes to and from the other, its rank, the sync hook's calls.
typedef struct peer {
    int to, from, rank;
    int syncs;
} peer;

static int full_write(int fd, const void *p, size_t n) {
    for (size_t k = 0; k < n;) {
        ssize_t w = write(fd, (const char *)p + k, n - k);
        if (w <= 0) return -1;
        k += (size_t)w;
    }
    return 0;
}

static int full_read(int fd, void *p, size_t n) {
    for (size_t k = 0; k < n;) {
        ssize_t r = read(fd, (char *)p + k, n - k);
        if (r <= 0) return -1;
        k += (size_t)r;
    }
    return 0;
}

// The sum in rank order (rank 0's + rank 1's), so both processes get the same bits. The data
// (a small model: well under a pipe's 64 KiB) goes out before the other's comes in.
static dcl_status reduce(void *ctx, float *data, size_t n) {
    peer *p = ctx;
    float *other = malloc(n * sizeof *other);
    if (!other || full_write(p->to, data, n * sizeof *data) ||
        full_read(p->from, other, n * sizeof *other)) {
        free(other);
        return DCL_ERR_IO;
    }
    for (size_t i = 0; i < n; i++) data[i] = p->rank == 0 ? data[i] + other[i] : other[i] + data[i];
    free(other);
    return DCL_OK;
}

// One process whose "other" raises the stop flag at its third reduction.
static dcl_status reduce_stop(void *ctx, float *data, size_t n) {
    if (++*(int *)ctx == 3) data[n - 1] += 1;
    return DCL_OK;
}

static int sync_state(void *ctx, float *state, size_t n, int64_t step) {
    (void)state, (void)n, (void)step;
    ((peer *)ctx)->syncs++;
    return DCL_OK;
}

// Trains `steps` on the CPU reference (as shard `rank` of 2 when p is not NULL) and writes the
// weights (P) and the last step's gradient (P) to fd.
static int train_and_send(dcl_train_opts o, peer *p, int fd) {
    dcl_model_config c = config();
    dcl_device *dev = NULL;
    dcl_dataset *ds = NULL;
    dcl_model m = {0};
    if (p) {
        o.shard_rank = p->rank, o.shard_count = 2;
        o.reduce = reduce, o.reduce_ctx = p, o.sync = sync_state, o.sync_ctx = p;
    }
    dcl_status s = dcl_device_open(&dev, "cpu");
    if (s == DCL_OK) s = dcl_dataset_open(&ds, "spiral", c.seed);
    if (s == DCL_OK) s = dcl_model_init(&m, dev, &c, BATCH);
    if (s == DCL_OK) s = dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL);
    dcl_arena *w = s == DCL_OK ? dcl_net_params(m.net) : NULL, *g = w ? dcl_net_grads(m.net) : NULL;
    size_t P = w ? w->n : 0;
    float *h = malloc((2 * P + 1) * sizeof *h);
    if (s == DCL_OK && !h) s = DCL_ERR_NOMEM;
    if (s == DCL_OK) s = dcl_buffer_read(w->buf, 0, P, h);
    if (s == DCL_OK) s = dcl_buffer_read(g->buf, 0, P, h + P);
    if (s != DCL_OK)
        fprintf(stderr, "training (rank %d) failed: %s\n", p ? p->rank : -1, dcl_last_error());
    uint64_t n = s == DCL_OK ? P : 0;
    int bad = full_write(fd, &n, sizeof n) || (n && full_write(fd, h, 2 * P * sizeof *h));
    if (p) bad |= full_write(fd, &p->syncs, sizeof p->syncs);
    free(h);
    if (m.net) dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
    return bad || s != DCL_OK;
}

// Reads what train_and_send wrote: *P and the weights and gradient (malloc'd) or NULL.
static float *receive(int fd, size_t *P, int *syncs) {
    uint64_t n = 0;
    if (full_read(fd, &n, sizeof n) || !n) return NULL;
    float *h = malloc(2 * n * sizeof *h);
    if (!h || full_read(fd, h, 2 * n * sizeof *h) ||
        (syncs && full_read(fd, syncs, sizeof *syncs))) {
        free(h);
        return NULL;
    }
    *P = (size_t)n;
    return h;
}

// Trains the pair for `steps`; out[r] receives rank r's weights and gradient.
static void train_pair(int steps, float *out[2], size_t *P, int syncs[2]) {
    int ab[2], ba[2], res[2][2];
    CHECK(pipe(ab) == 0 && pipe(ba) == 0 && pipe(res[0]) == 0 && pipe(res[1]) == 0);
    pid_t pid[2];
    for (int r = 0; r < 2; r++) {
        pid[r] = fork();
        if (pid[r] == 0) {
            peer p = {r == 0 ? ab[1] : ba[1], r == 0 ? ba[0] : ab[0], r, 0};
            _exit(train_and_send(opts(steps), &p, res[r][1]));
        }
    }
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    size_t Pr[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
        close(res[r][1]);
        out[r] = receive(res[r][0], &Pr[r], &syncs[r]);
        close(res[r][0]);
    }
    for (int r = 0; r < 2; r++) {
        int st = 0;
        if (!out[r]) kill(pid[r], SIGKILL); // its peer failed: it may wait in a reduction
        waitpid(pid[r], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CHECK(out[0] && out[1] && Pr[0] == Pr[1]);
    *P = Pr[0];
}

static float *train_one(int steps, size_t *P) {
    int res[2];
    CHECK(pipe(res) == 0);
    pid_t pid = fork();
    if (pid == 0) _exit(train_and_send(opts(steps), NULL, res[1]));
    close(res[1]);
    float *h = receive(res[0], P, NULL);
    close(res[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(h && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return h;
}

int main(void) {
    dcl_log_set_level(DCL_LOG_ERROR);
    // A shard's examples are those rows of the whole batch, labels too.
    dcl_dataset *ds = NULL;
    CHECK_EQ(dcl_dataset_open(&ds, "spiral:n=50", 3), DCL_OK);
    float whole[2 * 96], part[2 * 32];
    CHECK_EQ(dcl_dataset_batch(ds, whole, 96, 7), DCL_OK);
    CHECK_EQ(dcl_dataset_batch_at(ds, part, NULL, 40, 32, 7), DCL_OK);
    CHECK(memcmp(part, whole + 2 * 40, sizeof part) == 0);
    dcl_dataset_free(ds);
    CHECK_EQ(dcl_dataset_open(&ds, "moons", 3), DCL_OK);
    CHECK_EQ(dcl_dataset_batch(ds, whole, 96, 7), DCL_OK);
    CHECK_EQ(dcl_dataset_batch_at(ds, part, NULL, 64, 32, 7), DCL_OK);
    CHECK(memcmp(part, whole + 2 * 64, sizeof part) == 0);
    dcl_dataset_free(ds);

    // Step 1: the pair's global gradient against one process's. Each element sums BATCH terms in
    // another order: within 2 γ_{B−1} of Σ|t_i| (Higham, "Accuracy and Stability of Numerical
    // Algorithms", §4.2), applied to each tensor's largest value.
    size_t P = 0, P1 = 0;
    float *pair[2] = {NULL, NULL};
    int syncs[2] = {0, 0};
    float *one = train_one(1, &P1);
    train_pair(1, pair, &P, syncs);
    double u = 1.0 / (1 << 24), tol = 2 * (BATCH - 1) * u / (1 - (BATCH - 1) * u);
    if (one && pair[0] && pair[1] && P == P1) {
        double scale = 0, diff = 0;
        for (size_t i = 0; i < P; i++) {
            scale = fmax(scale, fabs(one[P + i]));
            diff = fmax(diff, fabs((double)one[P + i] - pair[0][P + i]));
        }
        printf("step 1: gradient of 2 shards vs one process: max |diff| %.3g = %.3g of the "
               "largest (tolerance %.3g)\n",
               diff, diff / scale, tol);
        CHECK(diff <= tol * scale);
    }
    for (int r = 0; r < 2; r++) free(pair[r]);
    free(one);

    // STEPS steps: both processes hold the same weights, bit for bit, and the sync hook ran at
    // the start and at every read-back (steps 4, 8 and 10).
    train_pair(STEPS, pair, &P, syncs);
    if (pair[0] && pair[1]) CHECK(memcmp(pair[0], pair[1], 2 * P * sizeof(float)) == 0);
    CHECK_EQ(syncs[0], 1 + STEPS / LOG_EVERY + 1);
    CHECK_EQ(syncs[1], syncs[0]);
    for (int r = 0; r < 2; r++) free(pair[r]);

    // Bad shards are refused before any work.
    dcl_model_config c = config();
    dcl_device *dev = NULL;
    dcl_model m = {0};
    CHECK_EQ(dcl_device_open(&dev, "cpu"), DCL_OK);
    CHECK_EQ(dcl_dataset_open(&ds, "spiral", 5), DCL_OK);
    CHECK_EQ(dcl_model_init(&m, dev, &c, BATCH), DCL_OK);
    peer p = {-1, -1, 0, 0};
    dcl_train_opts o = opts(1);
    o.shard_count = 3, o.reduce = reduce, o.reduce_ctx = &p; // 128 does not divide by 3
    CHECK_EQ(dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL), DCL_ERR_ARG);
    o.shard_count = 2, o.reduce = NULL; // no reduce
    CHECK_EQ(dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL), DCL_ERR_ARG);
    o.reduce = reduce, o.verify_every = 1; // cannot verify
    CHECK_EQ(dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL), DCL_ERR_ARG);

    // A stop flag from another process ends training at that step (DCL_ERR_CANCELLED) with the
    // last consistent state (the read-back at step 2) saved to out.
    char dir[] = "/tmp/diffcl-test-shard-XXXXXX", out[64];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(out, sizeof out, "%s/stop.safetensors", dir);
    int calls = 0;
    o = opts(10);
    o.log_every = 2, o.reduce = reduce_stop, o.reduce_ctx = &calls, o.out = out;
    CHECK_EQ(dcl_train(dev, &m, ds, &o, NULL, NULL, NULL, NULL), DCL_ERR_CANCELLED);
    CHECK_EQ(calls, 3);
    dcl_train_info info;
    CHECK_EQ(dcl_train_info_read(out, &info), DCL_OK);
    CHECK_EQ(info.step, 2);
    unlink(out), rmdir(dir);
    dcl_model_free(&m);
    dcl_dataset_free(ds);
    dcl_device_free(dev);
    return check_exit();
}
