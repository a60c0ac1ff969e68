/* threads.c: onexone's thread pool, thread counts and scratch memory.
 *
 * How many threads: OpenMP decides. omp_get_max_threads() is the default, so OMP_NUM_THREADS,
 * omp_set_num_threads() and threadpoolctl's threadpool_limits() apply to onexone exactly as
 * to any OpenMP library. A build without OpenMP cannot honour those limits and runs
 * single-threaded.
 *
 * Who runs the parallel loops: a small pthread pool, not OpenMP's, because of how idle
 * threads wait. GNU libgomp's idle workers busy-wait (GOMP_SPINCOUNT pause loops, about 7 ms
 * by default on Zen 4); NumPy's OpenBLAS idle workers busy-wait too (a nop/rdtsc loop for
 * 2^28 cycles, ~0.1 s, never yielding). On a 2-core machine, alternating calls then starve
 * each other's second thread until the scheduler preempts a spinner: 60x slower pairs.
 * onexone cannot change OpenBLAS, so its own workers wait the one way that wins the core
 * back: they sleep, and a sleeping thread that is woken preempts a busy-waiting one (a
 * spinning thread, having used its share, does not). They spin only while jobs come in a
 * tight loop: a worker whose last job came within OXO_SPIN_NS of the one before spins up to
 * OXO_SPIN_NS (pause, no syscalls) before it sleeps, so back-to-back calls find it awake.
 * And the caller never waits for a worker that has not started: once the caller's own share
 * is done it takes back the job from any worker that has not claimed it.
 *
 * One job at a time: if another thread of the process is using the pool, a call runs on its
 * calling thread alone (no oversubscription; results do not depend on the thread count).
 * After fork() the child starts with an empty pool and makes new workers when needed.
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* dladdr */
#endif
#include <stdlib.h>
#ifdef _WIN32
#include <malloc.h>
#endif

#include "onexone.h"
#include "threads.h"

#if defined(_OPENMP) && !defined(_WIN32)
#define OXO_POOL 1
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#endif

/* ---- thread counts ----------------------------------------------------------------------- */
enum { OXO_MAX_THREADS = 1024 }; /* per call: the caller and OXO_MAX_WORKERS workers */

int oxo_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int oxo_max_threads(void)
{
#ifdef _OPENMP
    /* honours OMP_NUM_THREADS, omp_set_num_threads, threadpoolctl, and OMP_THREAD_LIMIT
     * (which omp_get_max_threads does not apply); at most the OXO_MAX_THREADS a call can use */
    int n = omp_get_max_threads();
    const int limit = omp_get_thread_limit();
    if (limit > 0 && limit < n) n = limit;
    return n < OXO_MAX_THREADS ? n : OXO_MAX_THREADS;
#else
    return 1;
#endif
}

const char *oxo_openmp_library(void)
{
#if defined(_OPENMP) && !defined(_WIN32)
    Dl_info info;
    if (dladdr((void *)&omp_get_max_threads, &info) && info.dli_fname) return info.dli_fname;
#endif
    return NULL;
}

int oxo_resolve_threads(int n)
{
#ifdef OXO_POOL
    return n > 0 ? n : oxo_max_threads();
#else
    (void)n;
    return 1;
#endif
}

/* ---- units of work ------------------------------------------------------------------------- */
void oxo_units_init(oxo_units *q, size_t units, int nt)
{
    size_t n = nt > 1 ? (size_t)nt : 1;
    if (n > OXO_UNIT_RANGES) n = OXO_UNIT_RANGES;
    if (n > units) n = units ? units : 1;
    q->ranges = n;
    for (size_t i = 0; i < n; i++) {
        atomic_init(&q->r[i].next, i * units / n);
        q->r[i].end = (i + 1) * units / n;
    }
}

int oxo_units_take(oxo_units *q, int tid, size_t *unit)
{
    const size_t n = q->ranges, first = (size_t)tid % n;
    for (size_t k = 0; k < n; k++) {
        const size_t i = (first + k) % n;
        if (atomic_load_explicit(&q->r[i].next, memory_order_relaxed) >= q->r[i].end) continue;
        const size_t u = atomic_fetch_add_explicit(&q->r[i].next, 1, memory_order_relaxed);
        if (u < q->r[i].end) {
            *unit = u;
            return 1;
        }
    }
    return 0;
}

/* ---- the pool ------------------------------------------------------------------------------ */
#ifdef OXO_POOL

enum { OXO_MAX_WORKERS = OXO_MAX_THREADS - 1 };
#define OXO_SPIN_NS 20000LL /* see above; measured with benches and python -m onexone bench */

typedef struct job {
    oxo_thread_fn fn;
    void *ctx;
    atomic_int pending; /* workers not yet done */
    long long posted;   /* now_ns() when the caller posted it */
} job;

/* A worker's slot: NULL (idle), a job posted by the caller, or TAKEN once the worker has
 * claimed it. The caller takes back (CAS job -> NULL) a job no worker claimed by the time its
 * own share is done, so a worker that wakes late never delays a call. */
#define TAKEN ((job *)1)

typedef struct worker {
    pthread_t thread;
    int tid;
    job *_Atomic todo;
    int sleeping;      /* under pool.lock */
    pthread_cond_t wake;
} worker;

static struct {
    pthread_mutex_t submit; /* held by the thread whose job the pool runs */
    pthread_mutex_t lock;   /* sleeping flags and condition variables */
    int nworkers;
    worker *workers[OXO_MAX_WORKERS];
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, 0, {0}};

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void pause_a_little(void)
{
#if defined(__x86_64__) || defined(__i386__)
    for (int i = 0; i < 16; i++) __builtin_ia32_pause();
#else
    for (volatile int i = 0; i < 16; i++) {
    }
#endif
}

static void *worker_main(void *arg)
{
    worker *w = (worker *)arg;
    long long idle_since = now_ns(), last_gap = 0;
    for (;;) {
        job *j = atomic_load_explicit(&w->todo, memory_order_acquire);
        if (!j && last_gap < OXO_SPIN_NS) { /* jobs are coming back to back: stay awake */
            while (!(j = atomic_load_explicit(&w->todo, memory_order_acquire)) &&
                   now_ns() - idle_since < OXO_SPIN_NS)
                pause_a_little();
        }
        if (!j) {
            pthread_mutex_lock(&pool.lock);
            while (!(j = atomic_load_explicit(&w->todo, memory_order_acquire))) {
                w->sleeping = 1;
                pthread_cond_wait(&w->wake, &pool.lock);
                w->sleeping = 0;
            }
            pthread_mutex_unlock(&pool.lock);
        }
        last_gap = now_ns() - idle_since;
        job *expected = j;
        if (j != TAKEN && atomic_compare_exchange_strong(&w->todo, &expected, TAKEN)) {
            /* the gap between jobs is measured to when this one was posted: counting the
             * worker's own wake-up (10-20 us) would keep a worker that slept once asleep for
             * good whenever calls come every 10-20 us */
            last_gap = j->posted - idle_since;
            j->fn(j->ctx, w->tid);
            atomic_store_explicit(&w->todo, NULL, memory_order_relaxed);
            atomic_fetch_sub_explicit(&j->pending, 1, memory_order_release);
        } else {
            /* the caller took its job back before this worker could claim it: calls are
             * shorter than a wake-up, so stay awake for the next one (spin) rather than
             * sleep and miss every call that follows */
            last_gap = 0;
        }
        idle_since = now_ns();
    }
    return NULL;
}

#ifdef __linux__
/* Under OMP_PROC_BIND or OMP_PLACES, libgomp binds the initial thread to its first place when
 * it loads, and a new thread inherits its creator's CPU mask: every worker would share that
 * one core (2 threads ran as slowly as 1). Bind worker tid where OpenMP binds thread tid of a
 * team ("close"): the place tid after the creating thread's. Without binding, nothing. */
static void bind_like_openmp(pthread_t thread, int tid)
{
    if (omp_get_proc_bind() == omp_proc_bind_false) return;
    const int places = omp_get_num_places();
    if (places <= 0) return;
    const int here = omp_get_place_num(); /* -1: the creating thread is not bound */
    const int place = ((here < 0 ? 0 : here) + tid) % places;
    const int nprocs = omp_get_place_num_procs(place);
    if (nprocs <= 0) return;
    int *ids = (int *)malloc((size_t)nprocs * sizeof *ids);
    if (!ids) return;
    omp_get_place_proc_ids(place, ids);
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < nprocs; i++)
        if (ids[i] >= 0 && ids[i] < CPU_SETSIZE) CPU_SET(ids[i], &set);
    free(ids);
    if (CPU_COUNT(&set) > 0) pthread_setaffinity_np(thread, sizeof set, &set);
}
#else
static void bind_like_openmp(pthread_t thread, int tid) { (void)thread, (void)tid; }
#endif

/* Make sure workers 1..n-1 exist; returns how many threads can run (<= n). */
static int grow(int n)
{
    if (n - 1 > OXO_MAX_WORKERS) n = OXO_MAX_WORKERS + 1;
    while (pool.nworkers < n - 1) {
        worker *w = (worker *)calloc(1, sizeof(worker));
        if (!w) break;
        w->tid = pool.nworkers + 1;
        atomic_init(&w->todo, NULL);
        pthread_cond_init(&w->wake, NULL);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int rc = pthread_create(&w->thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            pthread_cond_destroy(&w->wake);
            free(w);
            break;
        }
        bind_like_openmp(w->thread, w->tid);
        pool.workers[pool.nworkers++] = w;
    }
    return pool.nworkers + 1 < n ? pool.nworkers + 1 : n;
}

static void before_fork(void) { pthread_mutex_lock(&pool.submit); }
static void after_fork_parent(void) { pthread_mutex_unlock(&pool.submit); }
static void after_fork_child(void)
{
    /* the workers did not come along: forget them (their memory is the parent's to keep) */
    pool.nworkers = 0;
    pthread_mutex_init(&pool.lock, NULL);
    pthread_mutex_unlock(&pool.submit);
}

void oxo_threads_init(void)
{
    static int done = 0;
    if (!done) {
        done = 1;
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    }
}

int oxo_parallel(int nt, oxo_thread_fn fn, void *ctx)
{
    if (nt <= 1 || pthread_mutex_trylock(&pool.submit) != 0) {
        fn(ctx, 0); /* one thread, or the pool is busy with another caller's job */
        return 1;
    }
    nt = grow(nt);
    job j;
    j.fn = fn;
    j.ctx = ctx;
    atomic_init(&j.pending, nt - 1);
    j.posted = now_ns();
    for (int t = 1; t < nt; t++) {
        worker *w = pool.workers[t - 1];
        atomic_store_explicit(&w->todo, &j, memory_order_release);
    }
    pthread_mutex_lock(&pool.lock);
    for (int t = 1; t < nt; t++) {
        worker *w = pool.workers[t - 1];
        if (w->sleeping) pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&pool.lock);

    fn(ctx, 0);

    for (int t = 1; t < nt; t++) { /* take back what nobody started */
        job *expected = &j;
        if (atomic_compare_exchange_strong(&pool.workers[t - 1]->todo, &expected, NULL))
            atomic_fetch_sub_explicit(&j.pending, 1, memory_order_relaxed);
    }
    while (atomic_load_explicit(&j.pending, memory_order_acquire) > 0) sched_yield();
    pthread_mutex_unlock(&pool.submit);
    return nt;
}

#else /* no pool: everything on the calling thread */

void oxo_threads_init(void) {}

int oxo_parallel(int nt, oxo_thread_fn fn, void *ctx)
{
    (void)nt;
    fn(ctx, 0);
    return 1;
}

#endif

/* ---- scratch memory -------------------------------------------------------------------- */
void *oxo_aligned_alloc(size_t bytes)
{
    if (bytes == 0) bytes = 64;
    if (bytes > ((size_t)-1) - 64) return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
#ifdef _WIN32
    return _aligned_malloc(bytes, 64);
#else
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
#endif
}

void oxo_aligned_free(void *p)
{
#ifdef _WIN32
    _aligned_free(p);
#else
    free(p);
#endif
}

/* ---- scratch kept between calls -------------------------------------------------------- *
 * Each block carries its size in a 64-byte header. The slots hold blocks nobody uses. */
enum { OXO_SCRATCH_SLOTS = 4 };
#define OXO_SCRATCH_KEEP_MAX ((size_t)64 << 20)

#if defined(__STDC_NO_ATOMICS__) || defined(_MSC_VER)
void *oxo_scratch_alloc(size_t bytes) { return oxo_aligned_alloc(bytes); }
void oxo_scratch_free(void *p) { oxo_aligned_free(p); }
#else
#include <stdatomic.h>
static _Atomic(char *) scratch_slots[OXO_SCRATCH_SLOTS];

static size_t scratch_size(const char *block) { return *(const size_t *)block; }

/* Carries block along the slots, leaving in each the larger of it and the slot's block (so
 * the slots keep the largest blocks), and frees what falls off the end. Every exchange hands
 * a block from one owner to another: a block another thread takes meanwhile is its own. */
static void scratch_keep(char *block)
{
    for (int i = 0; i < OXO_SCRATCH_SLOTS && block; i++) {
        char *old = atomic_exchange(&scratch_slots[i], block);
        if (old && scratch_size(old) > scratch_size(block)) block = atomic_exchange(&scratch_slots[i], old);
        else block = old;
    }
    oxo_aligned_free(block);
}

void *oxo_scratch_alloc(size_t bytes)
{
    if (bytes > ((size_t)-1) - 128) return NULL;
    for (int i = 0; i < OXO_SCRATCH_SLOTS; i++) {
        char *block = atomic_exchange(&scratch_slots[i], NULL);
        if (!block) continue;
        if (scratch_size(block) >= bytes) return block + 64;
        scratch_keep(block); /* too small for this call: back for another */
    }
    char *block = oxo_aligned_alloc(bytes + 64);
    if (!block) return NULL;
    *(size_t *)block = bytes;
    return block + 64;
}

void oxo_scratch_free(void *p)
{
    if (!p) return;
    char *block = (char *)p - 64;
    if (scratch_size(block) <= OXO_SCRATCH_KEEP_MAX) scratch_keep(block);
    else oxo_aligned_free(block);
}
#endif
