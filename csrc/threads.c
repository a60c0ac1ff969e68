/* threads.c: thread counts and scratch memory. */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* dladdr */
#endif
#include <stdlib.h>
#ifdef _WIN32
#include <malloc.h>
#endif
#if defined(_OPENMP) && !defined(_WIN32)
#include <dlfcn.h>
#include <pthread.h>
#endif

#include "onexone.h"
#include "threads.h"

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
    return omp_get_max_threads(); /* honours OMP_NUM_THREADS, omp_set_num_threads, threadpoolctl */
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

/* GNU libgomp's thread pool does not survive fork(): a parallel region in the child waits
 * forever for the parent's threads. A child of a process that has used onexone therefore
 * runs single-threaded (as PyTorch does). */
static volatile int in_forked_child = 0;
static void mark_forked_child(void) { in_forked_child = 1; }

void oxo_threads_init(void)
{
#if defined(_OPENMP) && !defined(_WIN32)
    static int done = 0;
    if (!done) {
        done = 1;
        pthread_atfork(NULL, NULL, mark_forked_child);
    }
#endif
}

int oxo_resolve_threads(int n)
{
    if (in_forked_child) return 1;
    return n > 0 ? n : oxo_max_threads();
}

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
