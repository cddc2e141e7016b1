// The CPU reference's thread pool (pthreads): workers that take chunks of one job at a time, the
// thread count (DIFFCL_THREADS, dcl_cpu_set_threads), the pinning of OpenBLAS to one thread and
// the loop over fixed chunks of items that the ops use (dcl__cpu_for).
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "device/cpu/cpu_pool.h"
#include "diffcl/device.h" // dcl_cpu_set_threads, dcl_cpu_threads
#include "diffcl/log.h"

#define MAX_THREADS 256

// How long a thread polls before it sleeps on a condition variable: a worker for the next job
// after its last chunk, the caller for the chunks other threads still run. The jobs of a training
// step follow each other within microseconds, and a futex wake-up per job cost the spiral MLP a
// fifth of its time; polling longer would only take a core from other processes while diffcl has
// nothing to run.
#define SPIN_NS 100000

// The job word packs what a thread needs to take a chunk, so that one compare-and-swap both checks
// and takes it: the job's generation (16 bits), its chunk count and the next chunk to take (24
// bits each). Jobs of more chunks run on the calling thread.
#define GEN_SHIFT 48
#define COUNT_SHIFT 24
#define FIELD_MASK ((UINT64_C(1) << 24) - 1)

#if defined(DIFFCL_HAVE_CBLAS) && defined(__GNUC__)
// OpenBLAS's own call, weak so that another CBLAS (which lacks it) links and leaves it NULL.
extern void openblas_set_num_threads(int num_threads) __attribute__((weak));
#endif

// One job at a time runs on the pool: `run` is held by its caller for the whole job, and a second
// caller that finds it taken runs its job alone instead of waiting (no thread ever waits on
// another's job, so none can deadlock on it). A thread that takes a chunk reads fn and arg after
// its compare-and-swap on `job` succeeded: the caller does not change them before every chunk is
// done, so a worker that wakes late finds the job's chunks all taken (or a later job's word) and
// never holds the caller up.
static struct {
    pthread_mutex_t run;
    pthread_mutex_t lock; // guards users, want, threads, workers, n_workers, started; sleeping
    pthread_cond_t wake;  // workers: a job to take, or stop
    pthread_cond_t done;  // the caller: every chunk done
    int users;            // open CPU devices
    int want;             // dcl_cpu_set_threads (0: DIFFCL_THREADS or every core)
    int threads;          // what want resolved to; 0 until the first job or dcl_cpu_threads
    pthread_t *workers;   // threads − 1 of them once started
    int n_workers, started;
    void (*fn)(void *arg, size_t chunk);
    void *arg;
    uint64_t gen;           // the caller's count of jobs (under run)
    _Atomic uint64_t job;   // generation | chunks | next chunk (GEN_SHIFT, COUNT_SHIFT)
    atomic_size_t finished; // chunks of the current job done
    atomic_int sleepers;    // workers asleep on wake (or about to be)
    atomic_int waiting;     // the caller is asleep on done (or about to be)
    atomic_int stop;        // workers: return
    atomic_size_t jobs;     // jobs handed to the pool (dcl__cpu_pool_jobs)
} pool = {.run = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

// A hint to the core that this thread polls (frees the sibling hyper-thread, saves power).
static inline void cpu_relax(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Polls until pred() holds or SPIN_NS have passed; returns pred()'s last value. After a few
// pause instructions it polls between sched_yield calls: on a machine busier than its cores a
// polling thread then hands its core to whoever waits for it (the thread it waits on, often).
static int spin_until(int (*pred)(void)) {
    int64_t t0 = 0;
    for (unsigned i = 0;; i++) {
        if (pred()) return 1;
        if (i < 64) cpu_relax();
        else sched_yield();
        if (i % 16 == 15) {
            int64_t t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) return pred();
        }
    }
}

// seq_cst: a worker that goes to sleep reads the job word after counting itself in sleepers.
static int chunk_left(void) {
    uint64_t s = atomic_load(&pool.job);
    return (s & FIELD_MASK) < (s >> COUNT_SHIFT & FIELD_MASK);
}

static int work_or_stop(void) { return chunk_left() || atomic_load(&pool.stop); }

// Takes and runs chunks of the current job until none is left.
static void take_chunks(void) {
    uint64_t s = atomic_load_explicit(&pool.job, memory_order_acquire);
    for (;;) {
        size_t c = s & FIELD_MASK, n = s >> COUNT_SHIFT & FIELD_MASK;
        if (c >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.job, &s, s + 1, memory_order_acquire,
                                                   memory_order_acquire))
            continue;
        pool.fn(pool.arg, c);
        // seq_cst, then waiting: the caller sets waiting before it reads finished (Dekker), so
        // either it sees this chunk done or this thread sees it waiting and wakes it.
        if (atomic_fetch_add(&pool.finished, 1) + 1 == n && atomic_load(&pool.waiting)) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
        s = atomic_load_explicit(&pool.job, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    for (;;) {
        if (!spin_until(work_or_stop)) {
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1); // before the check: the caller's side of Dekker
            while (!work_or_stop()) pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
        }
        if (atomic_load(&pool.stop)) return NULL;
        take_chunks();
    }
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
    atomic_store(&pool.stop, 1);
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.n_workers; i++) pthread_join(pool.workers[i], NULL);
    free(pool.workers);
    pthread_mutex_lock(&pool.lock);
    pool.workers = NULL, pool.n_workers = 0, pool.started = 0;
    atomic_store(&pool.stop, 0);
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
    while (pool.n_workers < want &&
           pthread_create(&pool.workers[pool.n_workers], NULL, worker_main, NULL) == 0)
        pool.n_workers++;
}

static size_t finished_n; // the chunk count all_finished waits for (under run)

static int all_finished(void) { return atomic_load(&pool.finished) == finished_n; }

// Publishes the job, takes chunks of it along with the workers and returns when all are done.
// Called with pool.run held.
static void run_job(size_t n_chunks, void (*fn)(void *arg, size_t chunk), void *arg) {
    pool.fn = fn, pool.arg = arg;
    atomic_store(&pool.finished, 0);
    pool.gen++;
    atomic_fetch_add(&pool.jobs, 1);
    atomic_store(&pool.job, pool.gen << GEN_SHIFT | (uint64_t)n_chunks << COUNT_SHIFT);
    // After the store (seq_cst): a worker counts itself asleep before it checks for work, so
    // either it sees this job or this thread sees it asleep and wakes it.
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    take_chunks();
    finished_n = n_chunks;
    if (spin_until(all_finished)) return;
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.waiting, 1);
    while (!all_finished()) pthread_cond_wait(&pool.done, &pool.lock);
    atomic_store(&pool.waiting, 0);
    pthread_mutex_unlock(&pool.lock);
}

void dcl__cpu_parallel(size_t n_chunks, size_t work, void (*fn)(void *arg, size_t chunk),
                       void *arg) {
    int pooled = n_chunks > 1 && n_chunks <= FIELD_MASK && work >= DCL_CPU_MIN_PARALLEL &&
                 pthread_mutex_trylock(&pool.run) == 0;
    if (pooled) {
        pthread_mutex_lock(&pool.lock);
        if (!pool.threads) pool.threads = resolve_threads(pool.want);
        if (pool.users > 0 && !pool.started && pool.threads > 1) start_workers();
        int ready = pool.users > 0 && pool.n_workers > 0;
        pthread_mutex_unlock(&pool.lock);
        if (ready) run_job(n_chunks, fn, arg);
        pthread_mutex_unlock(&pool.run);
        if (ready) return;
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
    pool.workers = NULL, pool.n_workers = 0, pool.started = 0;
    atomic_store(&pool.sleepers, 0);
    atomic_store(&pool.waiting, 0);
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

size_t dcl__cpu_pool_jobs(void) { return atomic_load(&pool.jobs); }

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
