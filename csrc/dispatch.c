/* dispatch.c: which micro-kernels run. The CPU is asked once (CPUID, and XGETBV for the
 * register state the OS saves: a CPU with AVX-512 under an OS that does not save zmm state
 * must not run AVX-512 code). The kernel table is the only place that lists the ISAs. */
#include "onexone.h"

#include <stdatomic.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define OXO_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
static void cpuid(int leaf, int sub, unsigned r[4])
{
    int regs[4];
    __cpuidex(regs, leaf, sub);
    for (int i = 0; i < 4; i++) r[i] = (unsigned)regs[i];
}
static unsigned long long xgetbv0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cpuid(int leaf, int sub, unsigned r[4])
{
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static unsigned long long xgetbv0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif
#endif

static oxo_isa detect(void)
{
#ifdef OXO_X86
    unsigned r[4];
    cpuid(0, 0, r);
    const unsigned max_leaf = r[0];
    if (max_leaf < 7) return OXO_ISA_SCALAR;
    cpuid(1, 0, r);
    const int osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1, fma = (r[2] >> 12) & 1;
    if (!osxsave || !avx || !fma) return OXO_ISA_SCALAR;
    const unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return OXO_ISA_SCALAR; /* XMM and YMM state */
    cpuid(7, 0, r);
    const int avx2 = (r[1] >> 5) & 1;
    const int avx512f = (r[1] >> 16) & 1, avx512vl = (r[1] >> 31) & 1;
    if (!avx2) return OXO_ISA_SCALAR;
    /* opmask, upper ZMM0-15 and ZMM16-31 state */
    if (avx512f && avx512vl && (xcr0 & 0xE6) == 0xE6) return OXO_ISA_AVX512;
    return OXO_ISA_AVX2;
#else
    return OXO_ISA_SCALAR;
#endif
}

/* The kernel table: one row per ISA, one column per dtype. */
static const oxo_kernels *const table[OXO_ISA_COUNT][2] = {
    {&oxo_f32_kernels_scalar, &oxo_f64_kernels_scalar},
#ifdef OXO_HAVE_X86_KERNELS
    {&oxo_f32_kernels_avx2, &oxo_f64_kernels_avx2},
    {&oxo_f32_kernels_avx512, &oxo_f64_kernels_avx512},
#else
    {0, 0},
    {0, 0},
#endif
};

static int detected = -1;
static int active = -1;

oxo_isa oxo_isa_detected(void)
{
    if (detected < 0) {
        oxo_isa best = detect();
        while (best > OXO_ISA_SCALAR && !table[best][0]) best = (oxo_isa)(best - 1);
        detected = (int)best;
    }
    return (oxo_isa)detected;
}

oxo_isa oxo_isa_active(void)
{
    if (active < 0) active = (int)oxo_isa_detected();
    return (oxo_isa)active;
}

int oxo_isa_set(oxo_isa isa)
{
    if ((int)isa < 0 || isa >= OXO_ISA_COUNT || isa > oxo_isa_detected() || !table[isa][0])
        return OXO_EINVAL;
    active = (int)isa;
    return OXO_OK;
}

const char *oxo_isa_name(oxo_isa isa)
{
    static const char *const names[OXO_ISA_COUNT] = {"scalar", "avx2", "avx512"};
    return ((int)isa >= 0 && isa < OXO_ISA_COUNT) ? names[isa] : "unknown";
}

const oxo_kernels *oxo_kernels_for(oxo_isa isa, oxo_dtype dt)
{
    if ((int)isa < 0 || isa >= OXO_ISA_COUNT) return 0;
    return table[isa][dt == OXO_F64 ? 1 : 0];
}

/* One core's L2 in bytes, for the GEMM engine's choice of loop order (never for its sums).
 * glibc's sysconf reads it from CPUID; elsewhere, or when it says nothing, 1 MiB (Zen 4's,
 * the smallest of the server cores measured). */
size_t oxo_l2_bytes(void)
{
    static atomic_size_t cached = 0; /* callers may race here: they store the same value */
    size_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!v) {
        long l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
        l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        v = l2 >= (64L << 10) && l2 <= (64L << 20) ? (size_t)l2 : (size_t)1 << 20;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}
