/* threads.h: the only place that knows whether OpenMP is there. Without it every parallel
 * region runs on the calling thread and the build still works. */
#ifndef ONEXONE_THREADS_H
#define ONEXONE_THREADS_H
#include <stddef.h>

#ifdef _OPENMP
#include <omp.h>
#define OXO_PRAGMA_(x) _Pragma(#x)
/* A region with one thread never enters the OpenMP runtime (cheaper, and safe after fork). */
#define OXO_PARALLEL(nt) OXO_PRAGMA_(omp parallel num_threads(nt) if ((nt) > 1))
#define OXO_THREAD_ID() omp_get_thread_num()
#define OXO_NUM_THREADS_IN_TEAM() omp_get_num_threads()
#else
#define OXO_PARALLEL(nt)
#define OXO_THREAD_ID() 0
#define OXO_NUM_THREADS_IN_TEAM() 1
#endif

/* 64-byte aligned scratch; NULL on failure or overflow. */
void *oxo_aligned_alloc(size_t bytes);
void oxo_aligned_free(void *p);

#endif
