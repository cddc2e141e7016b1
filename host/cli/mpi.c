// Data-parallel training under mpirun (built with DIFFCL_MPI): every rank holds the model, trains
// on its shard of each global batch, and the gradients are summed with MPI_Allreduce through the
// trainer's reduce hook (diffcl/train.h); the ranks' states are compared at every read-back.
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/error.h"   // dcl__fail
#include "diffcl/log.h"   // dcl_log, dcl_log_set_callback
#include "diffcl/train.h" // dcl_train_opts

// A rank that failed waits this long for the others to stop with it, then aborts the job.
#define MPI_STOP_WAIT_S 10.0

static struct {
    int active; // started by mpirun and MPI initialised
    int rank, size, local_rank, local_size;
    int mixed;               // ranks on devices of different kinds: states re-synced, not compared
    int peer_stopped;        // a reduce carried another rank's stop flag
    MPI_Comm comm, end_comm; // training; the final handshake (never matched with training's)
    char device[192];        // this rank's device, for messages
    dcl_progress_fn progress;
    void *progress_ctx;
    double reduce_s; // time inside MPI_Allreduce of the gradients
    long reduces;
    size_t reduce_floats;
} mp;

// Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE, MPICH's Hydra PMI_SIZE, PMIx launchers PMIX_RANK.
static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static double now_s(void) { return MPI_Wtime(); }

// Every message of the library and the CLI names its rank.
static void rank_log(void *ud, int level, const char *msg) {
    (void)ud;
    char line[2048];
    snprintf(line, sizeof line, "rank %d: %s", mp.rank, msg);
    cli_log(NULL, level, line);
}

static int start(void) {
    if (mp.active) return 1;
    if (!launched_by_mpirun()) return 0;
    int have = 0;
    MPI_Initialized(&have);
    if (!have && MPI_Init(NULL, NULL) != MPI_SUCCESS) return 0;
    MPI_Comm_dup(MPI_COMM_WORLD, &mp.comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &mp.end_comm);
    MPI_Comm_rank(mp.comm, &mp.rank);
    MPI_Comm_size(mp.comm, &mp.size);
    // Ranks sharing this machine (its memory): the local rank picks the GPU.
    MPI_Comm local;
    MPI_Comm_split_type(mp.comm, MPI_COMM_TYPE_SHARED, mp.rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &mp.local_rank);
    MPI_Comm_size(local, &mp.local_size);
    MPI_Comm_free(&local);
    mp.active = 1;
    if (mp.size > 1) dcl_log_set_callback(rank_log, NULL);
    return 1;
}

int cli_mpi_writes(void) { return !mp.active || mp.rank == 0; }

// cl:gpu on a machine with several usable GPUs: the (local rank mod count)-th of them.
static const char *rank_device(const char *spec, char *buf, size_t size) {
    if (!spec || strcmp(spec, "cl:gpu") != 0) return spec;
    dcl_device_info *list = NULL;
    int n = 0, platforms = 0, gpus = 0;
    if (dcl_device_list(&list, &n, &platforms) != DCL_OK) return spec;
    for (int i = 0; i < n; i++) gpus += list[i].usable && strcmp(list[i].type, "gpu") == 0;
    for (int i = 0, k = 0; gpus > 1 && i < n; i++) {
        if (!list[i].usable || strcmp(list[i].type, "gpu") != 0) continue;
        if (k++ == mp.local_rank % gpus) {
            snprintf(buf, size, "%s", list[i].spec);
            spec = buf;
        }
    }
    free(list);
    return spec;
}

int cli_mpi_train_begin(struct dcl_train_opts *o, const char **device, const char **loss_plot,
                        uint64_t *sample_every) {
    if (!start()) return CLI_PARSED;
    static char spec[64];
    *device = rank_device(*device, spec, sizeof spec);
    // Every rank must run the same schedule, or one would wait for the others' reductions.
    long long mine[5] = {o->batch, o->steps, o->log_every, o->save_every, o->max_skips};
    long long lo[5], hi[5];
    MPI_Allreduce(mine, lo, 5, MPI_LONG_LONG, MPI_MIN, mp.comm);
    MPI_Allreduce(mine, hi, 5, MPI_LONG_LONG, MPI_MAX, mp.comm);
    if (memcmp(lo, hi, sizeof lo) != 0)
        return cli_usage_error("train",
                               "the ranks were started with different --batch, --steps, "
                               "--log-every, --save-every or --max-skips; give every rank the "
                               "same training flags (only --device may differ)");
    if (o->batch % mp.size)
        return cli_usage_error("train",
                               "--batch %d does not divide by the %d MPI ranks; use a multiple "
                               "of %d (--batch is the global batch)",
                               o->batch, mp.size, mp.size);
    if (o->verify_every)
        return cli_usage_error("train", "--verify-every is not available under mpirun");
    if (mp.rank > 0) *loss_plot = NULL, *sample_every = 0; // rank 0 alone writes
    return CLI_PARSED;
}

void cli_mpi_device(const dcl_device *dev) {
    if (!mp.active || !dev) return;
    const dcl_device_info *d = dcl_device_get_info(dev);
    snprintf(mp.device, sizeof mp.device, "%s (%s)", d->spec, d->name);
    dcl_log(DCL_LOG_INFO, "trains on %s (rank %d of %d; %d of %d on this machine)", mp.device,
            mp.rank, mp.size, mp.local_rank, mp.local_size);
    // Devices of different kinds round differently: their states are re-synced, not compared.
    char kind[400];
    snprintf(kind, sizeof kind, "%d|%s|%s|%s", (int)d->backend, d->name, d->platform_name,
             d->driver);
    uint64_t h = 1469598103934665603ull, lo = 0, hi = 0;
    for (const char *c = kind; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
    MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, mp.comm);
    MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, mp.comm);
    mp.mixed = lo != hi;
    if (mp.mixed && mp.rank == 0)
        dcl_log(DCL_LOG_INFO, "the ranks train on devices of different kinds: rank 0's state is "
                              "sent to the others every --log-every steps (slower)");
    if (mp.rank > 0) dcl_log_set_level(DCL_LOG_ERROR); // rank 0 alone logs progress
}

// The trainer's reduce hook: the sum over the ranks, in place. A pending signal joins the stop
// flag (the last value), so every rank stops at the same step.
static dcl_status reduce(void *ctx, float *data, size_t n) {
    (void)ctx;
    float mine = data[n - 1];
    if (cli_signal_pending()) data[n - 1] += 1;
    double t0 = now_s();
    for (size_t off = 0; off < n;) {
        int k = n - off > (size_t)1 << 30 ? 1 << 30 : (int)(n - off);
        if (MPI_Allreduce(MPI_IN_PLACE, data + off, k, MPI_FLOAT, MPI_SUM, mp.comm) != MPI_SUCCESS)
            return dcl__fail(DCL_ERR_IO, "rank %d: MPI_Allreduce of the gradients failed", mp.rank);
        off += (size_t)k;
    }
    mp.reduce_s += now_s() - t0, mp.reduces++, mp.reduce_floats = n;
    if (data[n - 1] > mine) mp.peer_stopped = 1;
    return DCL_OK;
}

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

// The trainer's sync hook: the ranks' states must hash alike (same device kind), or rank 0's is
// broadcast (mixed kinds).
static int sync_state(void *ctx, float *state, size_t n, int64_t step) {
    (void)ctx;
    long long mine[2] = {(long long)n, (long long)step}, lo[2], hi[2];
    MPI_Allreduce(mine, lo, 2, MPI_LONG_LONG, MPI_MIN, mp.comm);
    MPI_Allreduce(mine, hi, 2, MPI_LONG_LONG, MPI_MAX, mp.comm);
    if (lo[0] != hi[0] || lo[1] != hi[1])
        return dcl__fail(DCL_ERR_MISMATCH,
                         "the ranks hold models of %lld to %lld parameters at steps %lld to %lld; "
                         "start every rank with the same flags",
                         lo[0] / 4, hi[0] / 4, lo[1], hi[1]);
    uint64_t h = fnv1a(state, n * sizeof *state);
    uint64_t *all = malloc((size_t)mp.size * sizeof *all);
    if (!all) return dcl__fail(DCL_ERR_NOMEM, "out of host memory");
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, mp.comm);
    char differ[256] = "";
    size_t len = 0;
    for (int r = 1; r < mp.size && len < sizeof differ - 16; r++)
        if (all[r] != all[0])
            len += (size_t)snprintf(differ + len, sizeof differ - len, "%s%d", len ? ", " : "", r);
    free(all);
    if (!len) return DCL_OK;
    if (!mp.mixed)
        return dcl__fail(DCL_ERR_MISMATCH,
                         "step %lld: the training state of rank(s) %s differs from rank 0's "
                         "(checksums of weights, EMA weights and Adam moments); the ranks "
                         "should have applied the same steps",
                         (long long)step, differ);
    for (size_t off = 0; off < n;) {
        int k = n - off > (size_t)1 << 30 ? 1 << 30 : (int)(n - off);
        MPI_Bcast(state + off, k, MPI_FLOAT, 0, mp.comm);
        off += (size_t)k;
    }
    return h != fnv1a(state, n * sizeof *state); // 1: replaced
}

static int progress(void *ctx, int64_t done, int64_t total) {
    (void)ctx;
    if (mp.progress) mp.progress(mp.progress_ctx, done, total);
    return 0; // a signal stops every rank at the same step, through the reduce's stop flag
}

void cli_mpi_train_opts(struct dcl_train_opts *o) {
    if (!mp.active) return;
    o->shard_rank = mp.rank, o->shard_count = mp.size;
    o->reduce = reduce, o->reduce_ctx = NULL;
    o->sync = sync_state, o->sync_ctx = NULL;
    o->fallback = NULL; // a rank that moved to another device would no longer match the others
    if (mp.rank > 0) o->out = NULL;
    mp.progress = o->progress, mp.progress_ctx = o->progress_ctx;
    o->progress = progress, o->progress_ctx = NULL;
    mp.reduce_s = 0, mp.reduces = 0;
}

void cli_mpi_bench_begin(void) {
    if (!start()) return;
    if (mp.rank > 0 && !freopen("/dev/null", "w", stdout)) return; // rank 0 alone prints
}

void cli_mpi_bench_report(double seconds, int steps) {
    if (!mp.active || !mp.reduces) return;
    double ms = mp.reduce_s / (double)mp.reduces * 1e3;
    printf("mpi     %d ranks: all-reduce %.3f ms/step (%.0f%% of a step), %.2f MB per rank per "
           "step (ring: 2 x 4 bytes x %zu)\n",
           mp.size, ms, 100 * ms / (seconds / steps * 1e3), 8.0 * (double)mp.reduce_floats / 1e6,
           mp.reduce_floats);
}

int cli_mpi_end(int rc) {
    if (!mp.active) return rc;
    if (rc && !mp.peer_stopped)
        dcl_log(DCL_LOG_ERROR, "rank %d on %s failed (exit %d); the job stops", mp.rank,
                mp.device[0] ? mp.device : "no device yet", rc);
    // Every rank meets here. A rank that failed outside a reduction cannot tell whether the others
    // wait for it in one: after MPI_STOP_WAIT_S it aborts the job rather than leave them hanging.
    MPI_Request req;
    MPI_Ibarrier(mp.end_comm, &req);
    int done = 0;
    double t0 = now_s();
    while (!done) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        if (rc && now_s() - t0 > MPI_STOP_WAIT_S) {
            dcl_log(DCL_LOG_ERROR,
                    "rank %d on %s: the other ranks did not stop within %.0f s; aborting the job",
                    mp.rank, mp.device[0] ? mp.device : "no device yet", MPI_STOP_WAIT_S);
            MPI_Abort(MPI_COMM_WORLD, rc);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    // The job's outcome: the worst exit code of a rank that failed itself (not one stopped by it).
    int mine = mp.peer_stopped ? 0 : rc, worst = 0;
    MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, mp.end_comm);
    if (worst) rc = worst;
    MPI_Comm_free(&mp.comm);
    MPI_Comm_free(&mp.end_comm);
    mp.active = 0;
    dcl_log_set_callback(cli_log, NULL);
    MPI_Finalize();
    return rc;
}
