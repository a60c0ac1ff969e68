/* gemm_vec_template.h: the register-tile micro-kernels, written once for every vector ISA
 * and dtype. An ISA file (kernels/<isa>/gemm-<isa>.c) defines the vector vocabulary below
 * and includes this file once per dtype:
 *
 *   OXO_T            element type               OXO_V      vector type
 *   OXO_L            lanes per vector           OXO_M      lane-mask type
 *   OXO_MR, OXO_NV   broadcast tile: OXO_MR rows x OXO_NV vectors of C (OXO_MR <= 8; a file
 *                    may instead define OXO_TILE_MR (<= 16) and OXO_TILE_NV for one include)
 *   OXO_DMR, OXO_DNR dot tile: rows x columns of C
 *   OXO_MASK(n)      mask of the first n lanes (1 <= n <= OXO_L)
 *   OXO_LOAD(p) OXO_LOADM(m,p) OXO_STORE(p,v) OXO_STOREM(p,m,v) OXO_SET1(x) OXO_ZERO()
 *   OXO_FMA(a,b,c) = a*b+c fused   OXO_ADD OXO_MAX OXO_MIN   OXO_HSUM(v) -> OXO_T
 *   OXO_NAME(x)      the exported symbol for x, e.g. oxo_f32_##x##__avx512
 *
 * gemm ("broadcast") kernel, the workhorse: for each p, OXO_NV vectors of B's row p are
 * loaded, each of the m rows' A[i, p] is broadcast, and m*OXO_NV FMAs update the
 * accumulators. Tile: C is m x n with m <= OXO_MR, n <= OXO_NV*OXO_L, vectorized along n.
 * Edge policy: the last vector of B and C is loaded and stored under a lane mask, so an
 * edge tile touches exactly its m x n elements (full tiles too, unless the ISA file defines
 * OXO_FULL_TILE_PLAIN); m < OXO_MR runs a kernel compiled for that m.
 *
 * dot kernel: C[i, j] = sum_p A[i, p] Bt[j, p], vectorized along p with a masked tail,
 * reduced across lanes once at the end.
 *
 * Reduction order: a sequential FMA chain along p per element (gemm) or per lane (dot); the
 * tile shape, ISA and thread never change which chain an element gets.
 */

#ifndef OXO_UNROLL
#define OXO_UNROLL _Pragma("GCC unroll 16")
#endif

#include "vec_activate.h"

#ifndef OXO_TILE_MR
#define OXO_TILE_MR OXO_MR
#define OXO_TILE_NV OXO_NV
#endif
#if OXO_TILE_MR > 8 && defined(OXO_TSTORE)
#define OXO_TILE_NO_TSTORE /* the transposed store takes at most 8 rows */
#endif

#ifndef OXO_KEEP_MASK
#define OXO_KEEP_MASK(m) ((void)0)
#endif

/* The k loop of the broadcast kernel: for each p, NV vectors of B's row p, each row's
 * A[i, p] broadcast, MR*NV FMAs. With prefetch, NV vectors at address pf + p*rs_b elements are
 * fetched towards L2 on the way (a hint: never faults, whatever the address; an integer, so
 * no pointer is formed past the arrays).
 * B's last vector is loaded under its mask even in full tiles. Measured on Zen 4 against a
 * plain load there, in alternating processes:
 * - a full-tile instance of its own (MR x NV, plain load): zmm tiles 0.99-1.01x; the 8 x 24
 *   ymm tile, NHWC 144->24 at 56x56, 1.02-1.04x (one clean run, one noisy);
 * - the flag on every instance (4 copies of the loop): 0.91-0.95x on every layer, where an
 *   in-process toggle in the same build had shown 1.05-1.07x. Code layout moves these loops
 *   by more than the masked load costs.
 * A standalone 8 x 24 ymm loop does lose 7% to the masked load (108 / 116 GFLOP/s).
 * AVX2's masked load (vmaskmovps) costs more than AVX-512's: its float32 set defines
 * OXO_FULL_TILE_PLAIN, and full tiles then run a copy of the loop with a plain load
 * (plain = 1; see gemm-avx2.c for what it measured). So does AVX-512's float32 8 x 48 set
 * since stop 30, measured on an Intel core (see gemm-avx512.c). */
static inline __attribute__((always_inline)) void
OXO_NAME(gemm_loop)(OXO_V acc[OXO_TILE_MR][OXO_TILE_NV], const OXO_T *a, const ptrdiff_t rs_a, const OXO_T *b,
                    const ptrdiff_t rs_b, const ptrdiff_t cs_a, const size_t k, OXO_M tail,
                    const int MR, const int NV, const int prefetch, uintptr_t pf, const int prefetch_a,
                    const int plain)
{
    /* A's rows as one moving base (two past 8 rows) and fixed byte offsets from it: one
     * pointer to advance per step of k instead of one per row. With a pointer per row GCC ran
     * short of general registers in the 8 x 3 tile and kept three row pointers in vector
     * registers, moved back on every use: 3 moves per step of k on port 0, an FMA port of
     * Intel's cores. See OXO_NAME(gemm) for what it measured. */
    const ptrdiff_t r1 = rs_a * (ptrdiff_t)sizeof(OXO_T), r3 = 3 * r1, r5 = 5 * r1, r7 = 7 * r1;
    const ptrdiff_t cs = cs_a * (ptrdiff_t)sizeof(OXO_T);
    const char *a0 = (const char *)a, *a8 = MR > 8 ? a0 + 8 * r1 : a0; /* no pointer past A's rows */
    const uintptr_t pa = (uintptr_t)a + (uintptr_t)(MR * r1); /* the next tile's rows */
    OXO_UNROLL_K for (size_t p = 0; p < k; p++) {
        /* with prefetch_a (MR = 16, A's rows contiguous along K): row p % 16 of the next
         * tile, at the line that holds column p rounded down to 16, so 16 steps fetch one
         * line of each row: all of the next tile's K-block by the end of this one's. */
        if (prefetch_a) __builtin_prefetch((const void *)(pa + (uintptr_t)((ptrdiff_t)(p % 16) * r1 + (ptrdiff_t)(p / 16 * 16) * cs)), 0, 3);
        if (prefetch) {
            OXO_UNROLL for (int v = 0; v < NV; v++) __builtin_prefetch((const void *)(pf + v * sizeof(OXO_V)), 0, 2);
            pf += (uintptr_t)(rs_b * (ptrdiff_t)sizeof(OXO_T));
        }
        OXO_KEEP_MASK(tail);
        OXO_V bv[OXO_TILE_NV];
        OXO_UNROLL for (int v = 0; v < NV - 1; v++) bv[v] = OXO_LOAD(b + v * OXO_L);
        bv[NV - 1] = plain ? OXO_LOAD(b + (NV - 1) * OXO_L) : OXO_LOADM(tail, b + (NV - 1) * OXO_L);
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            const int j = i % 8;
            const char *base = i < 8 ? a0 : a8;
            const ptrdiff_t o = j == 0 ? 0 : j == 1 ? r1 : j == 2 ? 2 * r1 : j == 3 ? r3 : j == 4 ? 4 * r1
                              : j == 5 ? r5 : j == 6 ? 2 * r3 : r7;
            const OXO_V ai = OXO_SET1(*(const OXO_T *)(base + o));
            OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_FMA(ai, bv[v], acc[i][v]);
        }
        a0 += cs;
        a8 += cs;
        b += rs_b;
    }
}

/* C with columns cs_c apart (cs_c != 1): element (i, j) at c[i*rs_c + j*cs_c], j < n. With
 * rows contiguous (rs_c 1: the tile's columns are the rows of a transposed C) the ISA's
 * OXO_TSTORE(c, cs_c, n, acc, MR, NV) writes each column as one masked vector of MR rows,
 * where the ISA file has one; otherwise, and for the (rare) accumulating load, through a
 * buffer on the stack, one element at a time. */
static inline __attribute__((always_inline)) void
OXO_NAME(gemm_load_strided_c)(OXO_V acc[OXO_TILE_MR][OXO_TILE_NV], const OXO_T *c, const ptrdiff_t rs_c,
                              const ptrdiff_t cs_c, const size_t n, const int MR, const int NV)
{
    OXO_T buf[OXO_TILE_MR][OXO_TILE_NV * OXO_L] __attribute__((aligned(64))) = {{0}};
    const size_t nn = n < (size_t)NV * OXO_L ? n : (size_t)NV * OXO_L;
    for (size_t j = 0; j < nn; j++) {
        OXO_UNROLL for (int i = 0; i < MR; i++) buf[i][j] = c[i * rs_c + (ptrdiff_t)j * cs_c];
    }
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_LOAD(buf[i] + v * OXO_L);
    }
}

/* The tile's C into registers (OXO_TILE_ACCUM, OXO_TILE_ADDC): rows of C contiguous or not. */
static inline __attribute__((always_inline)) void
OXO_NAME(gemm_load_c)(OXO_V acc[OXO_TILE_MR][OXO_TILE_NV], const OXO_T *c, const ptrdiff_t rs_c, const ptrdiff_t cs_c,
                      const size_t n, const OXO_M tail, const int MR, const int NV)
{
    if (cs_c != 1) {
        OXO_NAME(gemm_load_strided_c)(acc, c, rs_c, cs_c, n, MR, NV);
        return;
    }
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int v = 0; v < NV - 1; v++) acc[i][v] = OXO_LOAD(c + i * rs_c + v * OXO_L);
        acc[i][NV - 1] = OXO_LOADM(tail, c + i * rs_c + (NV - 1) * OXO_L);
    }
}

static inline __attribute__((always_inline)) void
OXO_NAME(gemm_store_strided_c)(OXO_V acc[OXO_TILE_MR][OXO_TILE_NV], OXO_T *c, const ptrdiff_t rs_c,
                               const ptrdiff_t cs_c, const size_t n, const int MR, const int NV)
{
#if defined(OXO_TSTORE) && !defined(OXO_TILE_NO_TSTORE)
    if (rs_c == 1) {
        OXO_TSTORE(c, cs_c, n, acc, MR, NV);
        return;
    }
#endif
    OXO_T buf[OXO_TILE_MR][OXO_TILE_NV * OXO_L] __attribute__((aligned(64)));
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int v = 0; v < NV; v++) OXO_STORE(buf[i] + v * OXO_L, acc[i][v]);
    }
    const size_t nn = n < (size_t)NV * OXO_L ? n : (size_t)NV * OXO_L; /* n, as the compiler sees */
    for (size_t j = 0; j < nn; j++) {
        OXO_UNROLL for (int i = 0; i < MR; i++) c[i * rs_c + (ptrdiff_t)j * cs_c] = buf[i][j];
    }
}

static inline __attribute__((always_inline)) void
OXO_NAME(gemm_tile)(const oxo_tile *t, const int MR, const int NV, const int prefetch_a)
{
    const OXO_T *a = (const OXO_T *)t->a;
    const OXO_T *b = (const OXO_T *)t->b;
    OXO_T *c = (OXO_T *)t->c;
    const ptrdiff_t rs_a = t->rs_a, cs_a = t->cs_a, rs_b = t->rs_b, rs_c = t->rs_c;
    const size_t k = t->k;
    const OXO_M tail = OXO_MASK((int)(t->n - (size_t)(NV - 1) * OXO_L));

    OXO_V acc[OXO_TILE_MR][OXO_TILE_NV]; /* fixed sizes: constant indices after unrolling stay in registers */
    if (t->flags & OXO_TILE_ACCUM) {
        OXO_NAME(gemm_load_c)(acc, c, rs_c, t->cs_c, t->n, tail, MR, NV);
    } else {
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_ZERO();
        }
    }

    /* the prefetching and the plain loop are two copies, so the loop tests no flag; where
     * the ISA file asks (OXO_FULL_TILE_PLAIN), two more for full tiles, whose last vector of
     * B is then loaded without its mask */
#ifdef OXO_FULL_TILE_PLAIN
    if (t->n == (size_t)NV * OXO_L) {
        if (t->flags & OXO_TILE_PREFETCH_B) OXO_NAME(gemm_loop)(acc, a, rs_a, b, rs_b, cs_a, k, tail, MR, NV, 1, (uintptr_t)b + (uintptr_t)(t->pf_off * (ptrdiff_t)sizeof(OXO_T)), 0, 1);
        else OXO_NAME(gemm_loop)(acc, a, rs_a, b, rs_b, cs_a, k, tail, MR, NV, 0, 0, 0, 1);
    } else
#endif
    if (t->flags & OXO_TILE_PREFETCH_B) OXO_NAME(gemm_loop)(acc, a, rs_a, b, rs_b, cs_a, k, tail, MR, NV, 1, (uintptr_t)b + (uintptr_t)(t->pf_off * (ptrdiff_t)sizeof(OXO_T)), 0, 0);
    else if (prefetch_a) OXO_NAME(gemm_loop)(acc, a, rs_a, b, rs_b, cs_a, k, tail, MR, NV, 0, 0, 1, 0);
    else OXO_NAME(gemm_loop)(acc, a, rs_a, b, rs_b, cs_a, k, tail, MR, NV, 0, 0, 0, 0);

    if (t->flags & OXO_TILE_ADDC) {
        OXO_V cv[OXO_TILE_MR][OXO_TILE_NV];
        OXO_NAME(gemm_load_c)(cv, c, rs_c, t->cs_c, t->n, tail, MR, NV);
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_ADD(cv[i][v], acc[i][v]);
        }
    }
    if (t->flags & OXO_TILE_FINAL) {
        const OXO_T *bias = (const OXO_T *)t->bias;
        if (t->bias_mode == OXO_BIAS_ROW) {
            OXO_UNROLL for (int i = 0; i < MR; i++) {
                const OXO_V bi = OXO_SET1(bias[i]);
                OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_ADD(acc[i][v], bi);
            }
        } else if (t->bias_mode == OXO_BIAS_COL) {
            OXO_V bj[OXO_TILE_NV];
            OXO_UNROLL for (int v = 0; v < NV - 1; v++) bj[v] = OXO_LOAD(bias + v * OXO_L);
            bj[NV - 1] = OXO_LOADM(tail, bias + (NV - 1) * OXO_L);
            OXO_UNROLL for (int i = 0; i < MR; i++) {
                OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_ADD(acc[i][v], bj[v]);
            }
        }
        if (t->act != OXO_ACT_NONE) {
            OXO_UNROLL for (int i = 0; i < MR; i++) {
                OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = OXO_NAME(activate)(acc[i][v], t->act);
            }
        }
    }

    if (t->cs_c != 1) {
        OXO_NAME(gemm_store_strided_c)(acc, c, rs_c, t->cs_c, t->n, MR, NV);
        return;
    }
#ifdef OXO_FULL_TILE_PLAIN
    if (t->n == (size_t)NV * OXO_L) { /* and stores it plainly (vmaskmovps: slow on AMD's AVX2 cores) */
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            OXO_UNROLL for (int v = 0; v < NV; v++) OXO_STORE(c + i * rs_c + v * OXO_L, acc[i][v]);
        }
        return;
    }
#endif
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int v = 0; v < NV - 1; v++) OXO_STORE(c + i * rs_c + v * OXO_L, acc[i][v]);
        OXO_STOREM(c + i * rs_c + (NV - 1) * OXO_L, tail, acc[i][NV - 1]);
    }
}

/* One entry point per kernel set: picks the instance compiled for (m, number of vectors),
 * each a function of its own (reached by a jump). Inlined into one function, as before,
 * GCC allocated registers for all of the instances at once and the full tile's loop kept
 * three of A's row pointers in vector registers. Intel Xeon (two 512-bit FMA units),
 * alternating processes, GFLOP/s inlined with a pointer per row -> one function per instance
 * with a moving base (gemm_loop): 1 thread, batch 1, r50.c2.reduce 148 -> 162, r50.c4.expand
 * 156 -> 175, r50 layers 1.06-1.14x, mv2.28.exp 0.98x, the others 1.02-1.08x; 2 threads,
 * batch 8, 1.02-1.13x on all 18 layers of the peer suite; batch 1 0.97-1.14x. (The base
 * alone, still inlined: 0.93-1.15x; own functions alone, a pointer per row: 0.96-1.10x.)
 * An hour later, with the old build itself faster (r50.c3.reduce 140-145 -> 154 GFLOP/s),
 * the same comparison gave 0.96-1.06x: whatever bound the old loop then had moved. */
#if OXO_TILE_MR != 4 && OXO_TILE_MR != 6 && OXO_TILE_MR != 8 && OXO_TILE_MR != 12 && OXO_TILE_MR != 16
#error "gemm_vec_template.h: the instances cover tiles of 4, 6, 8, 12 or 16 rows"
#endif
#if OXO_TILE_NV > 4
#error "gemm_vec_template.h: the instances cover tiles of at most 4 vectors"
#endif
/* X(M, NV) for every instance: M = 1..OXO_TILE_MR rows, NV = 1..OXO_TILE_NV vectors; one
 * list for the functions and for the entry point's cases. */
#if OXO_TILE_NV == 4
#define OXO_VECS_(X, M) X(M, 1) X(M, 2) X(M, 3) X(M, 4)
#elif OXO_TILE_NV == 3
#define OXO_VECS_(X, M) X(M, 1) X(M, 2) X(M, 3)
#elif OXO_TILE_NV == 2
#define OXO_VECS_(X, M) X(M, 1) X(M, 2)
#else
#define OXO_VECS_(X, M) X(M, 1)
#endif
#define OXO_ROWS4_(X) OXO_VECS_(X, 1) OXO_VECS_(X, 2) OXO_VECS_(X, 3) OXO_VECS_(X, 4)
#define OXO_ROWS6_(X) OXO_ROWS4_(X) OXO_VECS_(X, 5) OXO_VECS_(X, 6)
#define OXO_ROWS8_(X) OXO_ROWS6_(X) OXO_VECS_(X, 7) OXO_VECS_(X, 8)
#define OXO_ROWS12_(X) OXO_ROWS8_(X) OXO_VECS_(X, 9) OXO_VECS_(X, 10) OXO_VECS_(X, 11) OXO_VECS_(X, 12)
#define OXO_ROWS16_(X) OXO_ROWS12_(X) OXO_VECS_(X, 13) OXO_VECS_(X, 14) OXO_VECS_(X, 15) OXO_VECS_(X, 16)
#if OXO_TILE_MR == 16
#define OXO_INSTANCES_(X) OXO_ROWS16_(X)
#elif OXO_TILE_MR == 12
#define OXO_INSTANCES_(X) OXO_ROWS12_(X)
#elif OXO_TILE_MR == 8
#define OXO_INSTANCES_(X) OXO_ROWS8_(X)
#elif OXO_TILE_MR == 6
#define OXO_INSTANCES_(X) OXO_ROWS6_(X)
#else
#define OXO_INSTANCES_(X) OXO_ROWS4_(X)
#endif

#define OXO_INST_(M, NV) \
    static __attribute__((noinline)) void OXO_NAME(gemm_##M##x##NV)(const oxo_tile *t) { OXO_NAME(gemm_tile)(t, M, NV, 0); }
#define OXO_CASE_(M, NV) case (M) * 8 + (NV): OXO_NAME(gemm_##M##x##NV)(t); break;

OXO_INSTANCES_(OXO_INST_)
#if OXO_TILE_MR == 16 && OXO_TILE_NV == 1
/* the tall set's full tiles with OXO_TILE_PREFETCH_A: an instance of their own, so that the
 * 16 x 1 loop without it keeps its registers (with both in one function GCC gave the plain
 * loop a stack operand: NHWC 96->16 at 56x56 0.84-0.93x) */
static __attribute__((noinline)) void OXO_NAME(gemm_16x1_pfa)(const oxo_tile *t) { OXO_NAME(gemm_tile)(t, 16, 1, 1); }
#endif

void OXO_NAME(gemm)(const oxo_tile *t)
{
    if (t->m == 0 || t->n == 0) return;
    const size_t nv = (t->n + OXO_L - 1) / OXO_L;
    if (t->m > OXO_TILE_MR || nv > OXO_TILE_NV) return; /* no such instance */
#if OXO_TILE_MR == 16 && OXO_TILE_NV == 1
    if (t->m == 16 && (t->flags & OXO_TILE_PREFETCH_A) && !(t->flags & OXO_TILE_PREFETCH_B)) {
        OXO_NAME(gemm_16x1_pfa)(t);
        return;
    }
#endif
    switch ((int)t->m * 8 + (int)nv) {
    OXO_INSTANCES_(OXO_CASE_)
    default: break;
    }
}
#undef OXO_VECS_
#undef OXO_ROWS4_
#undef OXO_ROWS6_
#undef OXO_ROWS8_
#undef OXO_ROWS12_
#undef OXO_ROWS16_
#undef OXO_INSTANCES_
#undef OXO_INST_
#undef OXO_CASE_

/* ---- dot kernel ------------------------------------------------------------------------ */
static inline __attribute__((always_inline)) void
OXO_NAME(dot_tile)(const oxo_dot_tile *t, const int MR, const int NR)
{
    const OXO_T *a = (const OXO_T *)t->a;
    const OXO_T *bt = (const OXO_T *)t->bt;
    const ptrdiff_t rs_a = t->rs_a, rs_bt = t->rs_bt;
    const size_t k = t->k;
    OXO_V acc[4][4];
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int j = 0; j < NR; j++) acc[i][j] = OXO_ZERO();
    }
    size_t p = 0;
    for (; p + OXO_L <= k; p += OXO_L) {
        OXO_V av[4];
        OXO_UNROLL for (int i = 0; i < MR; i++) av[i] = OXO_LOAD(a + i * rs_a + p);
        OXO_UNROLL for (int j = 0; j < NR; j++) {
            const OXO_V bv = OXO_LOAD(bt + j * rs_bt + p);
            OXO_UNROLL for (int i = 0; i < MR; i++) acc[i][j] = OXO_FMA(av[i], bv, acc[i][j]);
        }
    }
    if (p < k) {
        const OXO_M tail = OXO_MASK((int)(k - p));
        OXO_V av[4];
        OXO_UNROLL for (int i = 0; i < MR; i++) av[i] = OXO_LOADM(tail, a + i * rs_a + p);
        OXO_UNROLL for (int j = 0; j < NR; j++) {
            const OXO_V bv = OXO_LOADM(tail, bt + j * rs_bt + p);
            OXO_UNROLL for (int i = 0; i < MR; i++) acc[i][j] = OXO_FMA(av[i], bv, acc[i][j]);
        }
    }
    OXO_T *c = (OXO_T *)t->c;
    const OXO_T *bias = (const OXO_T *)t->bias;
    OXO_T sums[4][4];
#ifdef OXO_REDUCE16
    if (MR == 4 && NR == 4) { /* all 16 reductions at once (fewer shuffles than 16 HSUMs) */
        OXO_V v[16];
        OXO_UNROLL for (int i = 0; i < 4; i++) {
            OXO_UNROLL for (int j = 0; j < 4; j++) v[4 * j + i] = acc[i][j];
        }
        OXO_REDUCE16(v, (OXO_T *)sums);
    } else
#endif
    {
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            OXO_UNROLL for (int j = 0; j < NR; j++) sums[i][j] = OXO_HSUM(acc[i][j]);
        }
    }
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int j = 0; j < NR; j++) {
            OXO_T *cij = c + i * t->rs_c + j * t->cs_c;
            OXO_T s = sums[i][j];
            if (t->flags & (OXO_TILE_ACCUM | OXO_TILE_ADDC)) s = *cij + s;
            if (t->flags & OXO_TILE_FINAL) {
                if (t->bias_mode == OXO_BIAS_ROW) s += bias[i];
                else if (t->bias_mode == OXO_BIAS_COL) s += bias[j];
                s = oxo_activate_scalar_(s, t->act);
            }
            *cij = s;
        }
    }
}

#define OXO_DOT_NR_CASES(M)                                                                    \
    switch (t->n) {                                                                            \
    case 1: OXO_NAME(dot_tile)(t, M, 1); break;                                                \
    case 2: OXO_NAME(dot_tile)(t, M, 2); break;                                                \
    case 3: OXO_NAME(dot_tile)(t, M, 3); break;                                                \
    case 4: OXO_NAME(dot_tile)(t, M, 4); break;                                                \
    default: break;                                                                            \
    }

void OXO_NAME(dot)(const oxo_dot_tile *t)
{
    switch (t->m) {
    case 1: OXO_DOT_NR_CASES(1) break;
    case 2: OXO_DOT_NR_CASES(2) break;
    case 3: OXO_DOT_NR_CASES(3) break;
    case 4: OXO_DOT_NR_CASES(4) break;
    default: break;
    }
}
#undef OXO_DOT_NR_CASES

/* FMA throughput probe (see oxo_kernels.fma_probe). */
float OXO_NAME(fma_probe)(long iters)
{
    OXO_V a[12];
    const OXO_V m = OXO_SET1((OXO_T)1.0000001), c = OXO_SET1((OXO_T)1e-7);
    OXO_UNROLL for (int i = 0; i < 12; i++) a[i] = OXO_SET1((OXO_T)i);
    for (long it = 0; it < iters; it++) {
        OXO_UNROLL for (int i = 0; i < 12; i++) a[i] = OXO_FMA(a[i], m, c);
        __asm__ volatile("" ::: "memory");
    }
    OXO_T s = 0;
    OXO_UNROLL for (int i = 0; i < 12; i++) s += OXO_HSUM(a[i]);
    return (float)s;
}

#undef OXO_TILE_MR
#undef OXO_TILE_NV
#undef OXO_TILE_NO_TSTORE
