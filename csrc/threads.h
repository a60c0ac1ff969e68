/* threads.h: parallel execution and scratch memory for the C engine (see threads.c). */
#ifndef ONEXONE_THREADS_H
#define ONEXONE_THREADS_H
#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Run fn(ctx, tid) once on each of nt threads, tid = 0 .. used-1, the caller being thread 0;
 * returns how many threads ran (1 when nt <= 1, without threads, or when the pool is busy
 * with another caller's job). fn must not depend on getting all nt threads. */
typedef void (*oxo_thread_fn)(void *ctx, int tid);
int oxo_parallel(int nt, oxo_thread_fn fn, void *ctx);

/* 64-byte aligned scratch; NULL on failure or overflow. */
void *oxo_aligned_alloc(size_t bytes);
void oxo_aligned_free(void *p);

#endif
