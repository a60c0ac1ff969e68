/* probe.c: the machine's measured fp32 FMA peak, the ceiling for "fraction of peak".
 * Every thread runs the active ISA's probe (12 independent FMA chains, as in
 * shared/probe/peak.c) for the same number of rounds; the wall time of the slowest
 * thread gives the rate. */
#include <time.h>

#include "onexone.h"
#include "threads.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile float probe_sink;

typedef struct probe_job {
    const oxo_kernels *ks;
    long iters;
} probe_job;

static void probe_thread(void *arg, int tid)
{
    const probe_job *j = (const probe_job *)arg;
    (void)tid;
    probe_sink = j->ks->fma_probe(j->iters);
}

double oxo_probe_peak_gflops(int n_threads, double seconds)
{
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), OXO_F32);
    const int nt = oxo_resolve_threads(n_threads);
    const double flop_per_round = 12.0 * (double)ks->lanes * 2.0;
    /* calibrate on one thread: rounds for about a tenth of the time */
    long iters = 1 << 16;
    double t0 = now_s();
    probe_sink = ks->fma_probe(iters);
    double dt = now_s() - t0;
    while (dt < 0.01) {
        iters *= 4;
        t0 = now_s();
        probe_sink = ks->fma_probe(iters);
        dt = now_s() - t0;
    }
    iters = (long)((double)iters * seconds / dt) + 1;
    probe_job job = {ks, iters};
    double start = now_s();
    const int ran = oxo_parallel(nt, probe_thread, &job);
    const double wall = now_s() - start;
    return (double)ran * (double)iters * flop_per_round / wall * 1e-9;
}
