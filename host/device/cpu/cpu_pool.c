// The CPU reference's thread pool (pthreads): workers that take chunks of one job at a time, the
// thread count (DIFFCL_THREADS, dcl_cpu_set_threads), the pinning of OpenBLAS to one thread and
// the loop over fixed chunks of items that the ops use (dcl__cpu_for).
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h"
#include "device/cpu/cpu_pool.h"
#include "diffcl/device.h" // dcl_cpu_set_threads, dcl_cpu_threads
#include "diffcl/log.h"

#define MAX_THREADS 256

#if defined(DIFFCL_HAVE_CBLAS) && defined(__GNUC__)
// OpenBLAS's own call, weak so that another CBLAS (which lacks it) links and leaves it NULL.
extern void openblas_set_num_threads(int num_threads) __attribute__((weak));
#endif

// One job at a time runs on the pool: `run` is held by its caller for the whole job, and a second
// caller that finds it taken runs its job alone instead of waiting (no thread ever waits on
// another's job, so none can deadlock on it).
static struct {
    pthread_mutex_t run;
    pthread_mutex_t lock; // guards everything below
    pthread_cond_t wake;  // workers: a new generation, or stop
    pthread_cond_t done;  // the caller: busy reached 0
    int users;            // open CPU devices
    int want;             // dcl_cpu_set_threads (0: DIFFCL_THREADS or every core)
    int threads;          // what want resolved to; 0 until the first job or dcl_cpu_threads
    pthread_t *workers;   // threads − 1 of them once started
    int n_workers, started, stop;
    unsigned gen; // bumped per job
    int busy;     // workers still in the current job
    void (*fn)(void *arg, size_t chunk);
    void *arg;
    size_t n_chunks;
    atomic_size_t next; // the next chunk to take
    size_t jobs;        // jobs that ran on more than one thread (dcl__cpu_pool_jobs)
} pool = {.run = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static void take_chunks(void) {
    for (size_t c; (c = atomic_fetch_add(&pool.next, 1)) < pool.n_chunks;) pool.fn(pool.arg, c);
}

static void *worker_main(void *arg) {
    unsigned seen = (unsigned)(uintptr_t)arg; // the generation current when it was started
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && pool.gen == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stop) break;
        seen = pool.gen;
        pthread_mutex_unlock(&pool.lock);
        take_chunks();
        pthread_mutex_lock(&pool.lock);
        if (--pool.busy == 0) pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

// The thread count want asks for. Called with pool.lock held.
static int resolve_threads(int want) {
    if (want > 0) return want < MAX_THREADS ? want : MAX_THREADS;
    const char *env = getenv("DIFFCL_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 1) return v < MAX_THREADS ? (int)v : MAX_THREADS;
        dcl_log(DCL_LOG_ERROR, "DIFFCL_THREADS=%s is not a positive number; using every core", env);
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus < MAX_THREADS ? (int)cpus : MAX_THREADS;
}

// Joins the workers. Called with pool.run held (no job runs) and pool.lock not held.
static void stop_workers(void) {
    pthread_mutex_lock(&pool.lock);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.n_workers; i++) pthread_join(pool.workers[i], NULL);
    free(pool.workers);
    pthread_mutex_lock(&pool.lock);
    pool.workers = NULL, pool.n_workers = 0, pool.started = 0, pool.stop = 0;
    pthread_mutex_unlock(&pool.lock);
}

// Starts threads − 1 workers (fewer if the system refuses some: only the speed changes). Called
// with pool.run and pool.lock held.
static void start_workers(void) {
    pool.started = 1;
    int want = pool.threads - 1;
    if (want < 1) return;
    pool.workers = malloc((size_t)want * sizeof *pool.workers);
    if (!pool.workers) return;
    while (pool.n_workers < want && pthread_create(&pool.workers[pool.n_workers], NULL, worker_main,
                                                   (void *)(uintptr_t)pool.gen) == 0)
        pool.n_workers++;
}

void dcl__cpu_parallel(size_t n_chunks, size_t work, void (*fn)(void *arg, size_t chunk),
                       void *arg) {
    int pooled =
        n_chunks > 1 && work >= DCL_CPU_MIN_PARALLEL && pthread_mutex_trylock(&pool.run) == 0;
    if (pooled) {
        pthread_mutex_lock(&pool.lock);
        if (!pool.threads) pool.threads = resolve_threads(pool.want);
        if (pool.users > 0 && !pool.started && pool.threads > 1) start_workers();
        if (pool.users > 0 && pool.n_workers > 0) {
            pool.fn = fn, pool.arg = arg, pool.n_chunks = n_chunks;
            atomic_store(&pool.next, 0);
            pool.busy = pool.n_workers;
            pool.gen++;
            pool.jobs++;
            pthread_cond_broadcast(&pool.wake);
            pthread_mutex_unlock(&pool.lock);
            take_chunks();
            pthread_mutex_lock(&pool.lock);
            while (pool.busy > 0) pthread_cond_wait(&pool.done, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
            pthread_mutex_unlock(&pool.run);
            return;
        }
        pthread_mutex_unlock(&pool.lock);
        pthread_mutex_unlock(&pool.run);
    }
    for (size_t c = 0; c < n_chunks; c++) fn(arg, c);
}

struct range_job {
    const struct dcl_op_args *a;
    size_t n, grain;
    dcl__cpu_range_fn body;
};

static void range_chunk(void *arg, size_t c) {
    const struct range_job *j = arg;
    size_t lo = c * j->grain, hi = j->n - lo > j->grain ? lo + j->grain : j->n;
    j->body(j->a, lo, hi);
}

void dcl__cpu_for(const struct dcl_op_args *a, size_t n, size_t grain, size_t cost,
                  dcl__cpu_range_fn body) {
    struct range_job j = {a, n, grain, body};
    dcl__cpu_parallel((n + grain - 1) / grain, n * cost, range_chunk, &j);
}

size_t dcl__cpu_grain(size_t per_item) {
    return per_item >= DCL_CPU_CHUNK ? 1 : DCL_CPU_CHUNK / (per_item ? per_item : 1);
}

// fork() copies only the calling thread: the child forgets the parent's workers (their memory is
// left alone) and starts its own at its first job, instead of waiting for workers it lacks. The
// pool's locks are held across the fork so that the child's copies are consistent.
static void fork_prepare(void) {
    pthread_mutex_lock(&pool.run);
    pthread_mutex_lock(&pool.lock);
}

static void fork_parent(void) {
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.run);
}

static void fork_child(void) {
    pool.workers = NULL, pool.n_workers = 0, pool.started = 0, pool.busy = 0;
    // The condition variables may still count the parent's waiting workers, which a broadcast
    // would wait for in vain: fresh ones.
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    fork_parent();
}

static void register_fork(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void dcl__cpu_pool_acquire(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork);
    pthread_mutex_lock(&pool.lock);
    if (pool.users++ == 0) {
#if defined(DIFFCL_HAVE_CBLAS) && defined(__GNUC__)
        // The pool owns the cores: GEMMs are cut into chunks like every other op (cpu_gemm), and
        // OpenBLAS's own threads, which spin between calls, would only compete with it.
        if (openblas_set_num_threads) openblas_set_num_threads(1);
#endif
    }
    pthread_mutex_unlock(&pool.lock);
}

void dcl__cpu_pool_release(void) {
    pthread_mutex_lock(&pool.run); // waits for a job of another thread to end
    pthread_mutex_lock(&pool.lock);
    int last = --pool.users == 0;
    pthread_mutex_unlock(&pool.lock);
    if (last) stop_workers();
    pthread_mutex_unlock(&pool.run);
}

size_t dcl__cpu_pool_jobs(void) {
    pthread_mutex_lock(&pool.lock);
    size_t jobs = pool.jobs;
    pthread_mutex_unlock(&pool.lock);
    return jobs;
}

dcl_status dcl_cpu_set_threads(int n) {
    if (n < 0 || n > MAX_THREADS)
        return dcl__fail(DCL_ERR_ARG, "CPU threads %d out of range [0, %d] (0: the default)", n,
                         MAX_THREADS);
    pthread_mutex_lock(&pool.run);
    stop_workers(); // the next job starts the new number
    pthread_mutex_lock(&pool.lock);
    pool.want = n;
    pool.threads = resolve_threads(n);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.run);
    return DCL_OK;
}

int dcl_cpu_threads(void) {
    pthread_mutex_lock(&pool.lock);
    if (!pool.threads) pool.threads = resolve_threads(pool.want);
    int n = pool.threads;
    pthread_mutex_unlock(&pool.lock);
    return n;
}
