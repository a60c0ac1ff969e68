/* threads.h: parallel execution and scratch memory for the C engine (see threads.c). */
#ifndef ONEXONE_THREADS_H
#define ONEXONE_THREADS_H
#include <stdatomic.h>
#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Run fn(ctx, tid) once on each of nt threads, tid = 0 .. used-1, the caller being thread 0;
 * returns how many threads ran (1 when nt <= 1, without threads, or when the pool is busy
 * with another caller's job). fn must not depend on getting all nt threads. */
typedef void (*oxo_thread_fn)(void *ctx, int tid);
int oxo_parallel(int nt, oxo_thread_fn fn, void *ctx);

/* A call's units of work, taken by its threads: thread t first takes, in order, the units of
 * its own contiguous range (range t mod ranges of `ranges` equal ones), then helps with the
 * others' (so a worker that starts late, or never, only costs its range to the others).
 * Contiguous ranges keep each thread on neighbouring output columns, instead of threads
 * taking turns unit by unit. */
enum { OXO_UNIT_RANGES = 16 };
typedef struct oxo_units {
    size_t ranges;
    struct {
        _Alignas(64) atomic_size_t next;
        size_t end;
    } r[OXO_UNIT_RANGES];
} oxo_units;
void oxo_units_init(oxo_units *q, size_t units, int nt);
int oxo_units_take(oxo_units *q, int tid, size_t *unit); /* 0 when none is left */

/* 64-byte aligned scratch; NULL on failure or overflow. */
void *oxo_aligned_alloc(size_t bytes);
void oxo_aligned_free(void *p);

/* Large per-call scratch, kept for later calls: oxo_scratch_free keeps the largest
 * OXO_SCRATCH_SLOTS blocks of at most OXO_SCRATCH_KEEP_MAX bytes (it frees the others), and
 * oxo_scratch_alloc hands out a kept block large enough before it asks the allocator. A
 * fresh block costs a page fault per 4 KiB on first touch: measured on a KVM guest, a 4x4
 * 256->256 conv at 28x28 right after NumPy work took 1024 faults (about 1.5 ms) in every
 * call, as the C library handed its 2 MiB of scratch back to the OS after each; kept, none
 * from the second call on. Thread-safe (a block is taken out of its slot by an atomic
 * exchange); NULL on failure. */
void *oxo_scratch_alloc(size_t bytes);
void oxo_scratch_free(void *p);

#endif
