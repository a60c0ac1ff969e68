/* probe.c: the machine's measured fp32 FMA peak, the ceiling for "fraction of peak".
 * Every thread runs the active ISA's probe (12 independent FMA chains, as in
 * shared/probe/peak.c) for the same number of rounds; the wall time of the slowest
 * thread gives the rate. */
#include <stdatomic.h>
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

/* 1 where a 512-bit FMA issues at the rate of a 256-bit one (two 512-bit FMA units a core, as
 * on Intel's server cores), 0 where it costs two (Zen 4): the full and the narrow set's
 * probes, best of 3 of 2000 rounds each, once per process (about 30 us). The GEMM engine's
 * choice of tile for 21-24 columns (gemm.c) rests on it, never a result: every element's FMA
 * chain is the same on either tile. Its choice of the pairs sets (NHWC with 17-24 or 5-8
 * filters, gemm.c) rests on it too, and those round differently (two chains per sum): the
 * same call gives the same bits on every thread count, but the bits follow the probe's
 * answer (steady on the machines measured, also with both cores busy). */
int oxo_probe_full_width(const oxo_kernels *ks)
{
    static atomic_int full_width = -1; /* the answer, -1 before the probe ran */
    int v = atomic_load_explicit(&full_width, memory_order_relaxed);
    if (v >= 0 || !ks->narrow) return v > 0;
    double wide = 1e9, half = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double t = now_s();
        probe_sink = ks->fma_probe(2000);
        const double a = now_s() - t;
        t = now_s();
        probe_sink = ks->narrow->fma_probe(2000);
        const double b = now_s() - t;
        if (a < wide) wide = a;
        if (b < half) half = b;
    }
    v = wide < 1.5 * half;
    atomic_store_explicit(&full_width, v, memory_order_relaxed);
    return v;
}
