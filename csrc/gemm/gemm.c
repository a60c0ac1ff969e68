/* gemm.c: the one blocked GEMM engine that every op calls.
 *
 *   for b < batch:  C_b (M x N) = act(A_b (M x K) @ B_b (K x N) + bias)
 *
 * GotoBLAS/BLIS structure, vectorized along N (the pixels of an NCHW image):
 *
 *   units (image, row part, column part), taken by threads     -- pool, dynamic
 *     for kc-block of K (KC)                                    -- C partials stay in cache
 *       [pack B's kc x nc block if B's columns are not contiguous]
 *       for micro-panel of columns (NR)                         -- B micro-panel KC x NR in L1
 *         for micro-panel of rows (MR)                          -- A streams from L2
 *           micro-kernel (m x n tile, bias+activation on the last kc-block)
 *     (rows outermost instead by the rule in oxo_gemm_run, or when the block has a dot-
 *     product tail or one column tile: the A micro-panel then stays in L1 for the row's
 *     tiles and its tail, and B's next kc-block and C's next rows are prefetched meanwhile)
 *
 *   or, when an image's B fits in half of L2 (deep layers on small maps: r50.c5,
 *   r50.c4.reduce, in either layout, strided or not), no KC blocks (run_block_full_k):
 *     [pack B's K x nc block if B's columns are not contiguous]
 *     for micro-panel of rows (MR)                              -- A read in long row streams
 *       for micro-panel of columns (NR)                         -- B from L2
 *         micro-kernel over all of K
 *
 * Every output element is computed by exactly one thread with one FMA chain over K in
 * order, so the result does not depend on the thread count.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../onexone.h"
#include "../threads.h"
#include "pack.h"

/* Block sizes in elements (f32; f64 halves KC so a block keeps its byte size).
 * KC x NC of B (256 x 512 floats = 512 KiB) lives in the 1 MiB L2; MR x KC of A in L1. */
enum { OXO_KC_F32 = 256, OXO_NC = 512, OXO_MIN_FLOPS_PER_THREAD = 1 << 18 };
/* One core's L2 on the machines measured (Zen 4: 1 MiB; Intel server cores: 1-2 MiB). */
#define OXO_L2_BYTES (1024.0 * 1024.0)

static size_t kc_for(oxo_dtype dt) { return dt == OXO_F64 ? OXO_KC_F32 / 2 : OXO_KC_F32; }

oxo_blocking oxo_gemm_blocking(oxo_dtype dt)
{
    oxo_blocking b = {kc_for(dt), OXO_NC};
    return b;
}

/* GEMMs 21-24 columns wide: the narrow set or the full set's masked tile, by
 * oxo_probe_full_width (probe.c). Tests force either (oxo_gemm_narrow_mode). */
static atomic_int narrow_mode = 0; /* 0: by the probe, 1: the narrow set, 2: masked zmm tiles */
void oxo_gemm_narrow_mode(int mode) { atomic_store(&narrow_mode, mode); }

static atomic_int peel_mode = 0; /* 0: by the rule (partition), 1: always, 2: never */
void oxo_gemm_peel_mode(int mode) { atomic_store(&peel_mode, mode); }

static atomic_int allow_full_k = 1;
static atomic_size_t full_k_runs = 0;
void oxo_gemm_allow_full_k(int allow) { atomic_store(&allow_full_k, allow != 0); }
size_t oxo_gemm_full_k_runs(void) { return atomic_load(&full_k_runs); }
static atomic_int allow_tall = 1; /* 0 never, 1 by the rule, 2 wherever the ISA has the set */
void oxo_gemm_allow_tall(int mode) { atomic_store(&allow_tall, mode); }
static atomic_int allow_wide = 1;
void oxo_gemm_allow_wide(int allow) { atomic_store(&allow_wide, allow != 0); }
static atomic_int pairs_mode = 0; /* 0: by the rule, 1: never, 2: wherever the set fits */
void oxo_gemm_pairs_mode(int mode) { atomic_store(&pairs_mode, mode); }

static size_t elsize(oxo_dtype dt) { return dt == OXO_F64 ? 8 : 4; }
static size_t cdiv(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t round_up(size_t a, size_t b) { return cdiv(a, b) * b; }
static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Is column j of B at B + j (the fast path that needs no packing)? */
static int b_columns_contiguous(const oxo_gemm *g)
{
    if (g->pack_b) return 0;
    if (g->b_w == 0 || g->b_w >= g->N) return g->cs_bw == 1;
    return g->cs_bw == 1 && g->cs_bh == (ptrdiff_t)g->b_w;
}

/* The work of one call: every thread gets one contiguous range of "units", a unit being
 * (image, row part, column part). Parts are balanced, aligned to the register tile. */
typedef struct plan {
    const oxo_gemm *g;
    const oxo_kernels *ks;
    size_t es, kc, mr, nr;
    size_t m_parts, n_parts; /* how each image's C is cut between threads: part r of R */
    size_t m_grains, n_grains; /* covers grains [r*G/R, (r+1)*G/R) of MR rows / vector columns */
    size_t units;
    size_t groups; /* >= 1 */
    int pack_b;                 /* B blocks are packed (not read in place) */
    oxo_pack_b_fn packer;       /* and come from here */
    const void *pack_ctx;
    size_t pack_ld; /* row stride of a packed B block */
    size_t n_main;  /* columns [n_main, N) of every image go to the dot kernel */
    size_t tail_ld; /* row stride of the transposed tail columns */
    int cols_outer; /* loop order inside a block, see run_block */
    int write_prefetch; /* rows outermost: the next row tile's C prefetched, see oxo_gemm_run */
    int prefetch_a; /* OXO_TILE_PREFETCH_A on every tile, see oxo_gemm_run */
    int full_k;     /* blocks run all of K per micro-kernel call, see run_block_full_k */
    size_t peel;    /* columns before B's first vector-aligned one (B read in place), or 0 */
    ptrdiff_t cs_c; /* C's column stride: 1, or C transposed (see oxo_gemm.cs_c) */
} plan;

/* The narrow tail of an image's columns (fewer than one vector) as dot products: a row of A
 * against each tail column of B, both contiguous along K, instead of a mostly masked vector
 * tile. */
static void dot_tail(const plan *pl, const oxo_tile *t, size_t i, size_t mrows, char *C,
                     const char *bias, const char *bt, size_t ntail)
{
    const oxo_gemm *g = pl->g;
    const size_t es = pl->es, dmr = pl->ks->dot_mr, dnr = pl->ks->dot_nr;
    oxo_dot_tile d;
    d.k = t->k;
    d.rs_a = g->rs_a;
    d.rs_bt = (ptrdiff_t)pl->tail_ld;
    d.rs_c = g->rs_c;
    d.cs_c = pl->cs_c;
    d.bias_mode = t->bias_mode;
    d.act = t->act;
    d.flags = t->flags;
    for (size_t ii = 0; ii < mrows; ii += dmr) {
        d.m = mrows - ii < dmr ? mrows - ii : dmr;
        d.a = (const char *)t->a + (ptrdiff_t)ii * g->rs_a * (ptrdiff_t)es;
        for (size_t jj = 0; jj < ntail; jj += dnr) {
            d.n = ntail - jj < dnr ? ntail - jj : dnr;
            d.bt = bt + jj * pl->tail_ld * es;
            d.c = C + ((ptrdiff_t)(i + ii) * g->rs_c + (ptrdiff_t)(pl->n_main + jj) * pl->cs_c) * (ptrdiff_t)es;
            d.bias = !bias ? NULL
                     : g->bias_mode == OXO_BIAS_ROW ? (const void *)(bias + (i + ii) * es)
                                                    : (const void *)(bias + (pl->n_main + jj) * es);
            pl->ks->dot(&d);
        }
    }
}

/* One cache block of output slot s (an image and a group): rows [i0, i1) x columns [j0, j1)
 * through all of K, plus the image's dot-product tail columns when ntail > 0 (so the A
 * micro-panel they need is still in L1). */
/* The micro-kernel on the tile at rows [i, i+MR) and columns [j, j+NR) of a block whose B
 * columns start at j0 (clipped to i1, j1); t carries the rest of the call. */
static inline void run_tile(const plan *pl, oxo_tile *t, const char *Ak, const char *Bblk, char *C,
                            const char *bias, size_t i, size_t i1, size_t j, size_t j0, size_t j1)
{
    const oxo_gemm *g = pl->g;
    const size_t es = pl->es;
    t->m = i1 - i < pl->mr ? i1 - i : pl->mr;
    t->n = j1 - j < pl->nr ? j1 - j : pl->nr;
    t->a = Ak + (ptrdiff_t)i * g->rs_a * (ptrdiff_t)es;
    t->b = Bblk + (j - j0) * es;
    t->c = C + ((ptrdiff_t)i * g->rs_c + (ptrdiff_t)j * pl->cs_c) * (ptrdiff_t)es;
    t->bias = !bias ? NULL
              : g->bias_mode == OXO_BIAS_ROW ? (const void *)(bias + i * es)
                                             : (const void *)(bias + j * es);
    pl->ks->gemm(t);
}

/* A hint that rows [0, rows) of `bytes` each, `ld` bytes apart, are about to be written. */
static void prefetch_rows_for_write(const char *c, ptrdiff_t ld, size_t rows, size_t bytes)
{
    for (size_t r = 0; r < rows; r++, c += ld)
        for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 1, 2);
}

/* Output slot s: image s / groups (all images, summed, with reduce_batch) and group q. */
typedef struct slot {
    size_t q, b_first, b_end; /* the group, the images [b_first, b_end) that feed it */
    char *C;                  /* its C */
    const char *bias;         /* its bias, or NULL */
} slot;

/* How many output slots a call has: images x groups, or the groups alone with reduce_batch. */
static size_t slot_count(const plan *pl)
{
    return (pl->g->reduce_batch ? 1 : pl->g->batch) * pl->groups;
}

static slot slot_of(const plan *pl, size_t s)
{
    const oxo_gemm *g = pl->g;
    const ptrdiff_t es = (ptrdiff_t)pl->es;
    slot o;
    o.q = s % pl->groups;
    o.b_first = g->reduce_batch ? 0 : s / pl->groups;
    o.b_end = g->reduce_batch ? g->batch : o.b_first + 1;
    o.C = (char *)g->C + ((g->reduce_batch ? 0 : (ptrdiff_t)o.b_first * g->bs_c) +
                          (ptrdiff_t)o.q * g->gs_c) * es;
    o.bias = g->bias ? (const char *)g->bias + (ptrdiff_t)o.q * g->gs_bias * es : NULL;
    return o;
}

/* Where image b's group q of A and of B (read in place) start. */
static const char *a_of(const plan *pl, size_t b, size_t q)
{
    const oxo_gemm *g = pl->g;
    return (const char *)g->A + ((ptrdiff_t)b * g->bs_a + (ptrdiff_t)q * g->gs_a) * (ptrdiff_t)pl->es;
}

static const char *b_of(const plan *pl, size_t b, size_t q)
{
    const oxo_gemm *g = pl->g;
    return (const char *)g->B + ((ptrdiff_t)b * g->bs_b + (ptrdiff_t)q * g->gs_b) * (ptrdiff_t)pl->es;
}

/* A tile description with the call's strides, bias mode and activation filled in. */
static oxo_tile tile_of(const plan *pl)
{
    const oxo_gemm *g = pl->g;
    oxo_tile t;
    memset(&t, 0, sizeof t);
    t.rs_a = g->rs_a;
    t.cs_a = g->cs_a;
    t.rs_c = g->rs_c;
    t.cs_c = pl->cs_c;
    t.bias_mode = g->bias ? g->bias_mode : OXO_BIAS_NONE;
    t.act = g->act;
    return t;
}

static void run_block(const plan *pl, size_t s, size_t i0, size_t i1, size_t j0, size_t j1,
                      size_t ntail, char *bpack, char *tpack)
{
    const oxo_gemm *g = pl->g;
    const size_t es = pl->es, groups = pl->groups;
    const slot o = slot_of(pl, s);
    const size_t q = o.q, b_first = o.b_first, b_end = o.b_end;
    char *C = o.C;
    const char *bias = o.bias;

    oxo_tile t = tile_of(pl);
    /* How a block continues C: one FMA chain per element across the blocks; or, summing over
     * images (the weight gradient: every pixel of every image, 10^5 or more terms), blocked
     * summation: each block's chain from 0, added to C once. One chain lost float32 digits
     * with the count (a relative error near 2e-5 for 32 x 56 x 56 pixels, 70x NumPy's
     * matmul) and stopped growing at 2^24 on a sum of ones; per block of KC pixels both
     * errors shrink by about KC. */
    const int continued = g->reduce_batch ? OXO_TILE_ADDC : OXO_TILE_ACCUM;

    for (size_t bb = b_first; bb < b_end; bb++) {
        const size_t image = bb * groups + q; /* what packers see */
        const char *A = a_of(pl, bb, q);
        size_t p0 = 0;
        do { /* at least once, so K == 0 still writes bias/activation */
            const size_t kc = g->K - p0 < pl->kc ? g->K - p0 : pl->kc;
            const int first = p0 == 0 && bb == b_first && !g->accumulate;
            const int last = p0 + kc >= g->K && bb + 1 == b_end;
            t.flags = (first ? 0 : continued) | (last ? OXO_TILE_FINAL : 0) |
                      (pl->prefetch_a ? OXO_TILE_PREFETCH_A : 0);
            t.k = kc;

            if (ntail) pl->packer(pl->pack_ctx, image, p0, kc, pl->n_main, ntail, tpack, pl->tail_ld, 1);
            const char *Bblk = NULL;
            ptrdiff_t rs_b = 0;
            if (j0 < j1) {
                if (pl->pack_b) {
                    pl->packer(pl->pack_ctx, image, p0, kc, j0, j1 - j0, bpack, pl->pack_ld, 0);
                    Bblk = bpack;
                    rs_b = (ptrdiff_t)pl->pack_ld;
                } else {
                    Bblk = b_of(pl, bb, q) + ((ptrdiff_t)p0 * g->rs_b + (ptrdiff_t)j0) * (ptrdiff_t)es;
                    rs_b = g->rs_b;
                }
            }
            t.rs_b = rs_b;

            const char *Ak = A + (ptrdiff_t)p0 * g->cs_a * (ptrdiff_t)es;
            if (pl->cols_outer && ntail == 0 && j1 - j0 > pl->nr) {
                /* columns outermost: a KC x NR micro-panel of B stays in L1-L2 while the rows'
                 * micro-panels of A stream by (B is re-read NR-tile times less) */
                const int flags = t.flags;
                t.pf_off = (ptrdiff_t)pl->nr;
                for (size_t j = j0; j < j1; j += pl->nr) {
                    /* the first row tile fetches the next micro-panel into L2 meanwhile */
                    t.flags = flags | OXO_TILE_PREFETCH_B;
                    for (size_t i = i0; i < i1; i += pl->mr) {
                        run_tile(pl, &t, Ak, Bblk, C, bias, i, i1, j, j0, j1);
                        t.flags = flags;
                    }
                }
            } else {
                /* rows outermost: the MR x KC micro-panel of A stays in L1 for the row's
                 * tiles and its dot-product tail, and C is written as MR long sequential
                 * streams (what the prefetchers want when C goes to L3 or DRAM) */
                const int flags = t.flags;
                for (size_t i = i0; i < i1; i += pl->mr) {
                    /* B read in place comes from L3 (a new image) or at best L2: the first
                     * block's first row tile fetches its rows 16 ahead, the second row tile
                     * of every block but the last fetches the next block's (kc rows on).
                     * And the first block writes C: the next row tile's rows are fetched
                     * for writing meanwhile (where pl->write_prefetch: not on Intel's cores).
                     * Measured on Zen 4, alternating calls, batch 8, without -> with:
                     * 2 threads r50.c4.reduce 1.09x, c4.expand 1.09x,
                     * c2.expand 1.06x, mv2.56.exp 1.14x, mv2.14.exp 1.15x, NHWC
                     * mv2.56.exp 1.17-1.46x, stride-2 256->1024 1.07x; 1 thread
                     * r50.c4.reduce 1.09x; batch 1 (an image that stays in cache) 0.98-1.05x.
                     * Not kept: the next block (next KC rows, or the unit's next column block)
                     * prefetched a slice per row tile instead, batch 8, 1 and 2 threads:
                     * 512->128 at 28x28 0.97-0.98x, 1024->256 at 14x14 1.00x; B read in place
                     * packed anyway when batch > 1 (sequential reads): 0.70-1.00x. */
                    t.flags = flags;
                    if (!pl->pack_b && p0 == 0 && i == i0) {
                        t.flags |= OXO_TILE_PREFETCH_B;
                        t.pf_off = 16 * rs_b;
                    } else if (!pl->pack_b && i == i0 + pl->mr && p0 + kc < g->K) {
                        t.flags |= OXO_TILE_PREFETCH_B;
                        t.pf_off = (ptrdiff_t)kc * rs_b;
                    }
                    if (first && pl->write_prefetch && pl->cs_c == 1 && i + pl->mr < i1)
                        prefetch_rows_for_write(C + ((ptrdiff_t)(i + pl->mr) * g->rs_c + (ptrdiff_t)j0) * (ptrdiff_t)es,
                                                g->rs_c * (ptrdiff_t)es, min_size(pl->mr, i1 - i - pl->mr),
                                                (j1 - j0 + ntail) * es);
                    for (size_t j = j0; j < j1; j += pl->nr) run_tile(pl, &t, Ak, Bblk, C, bias, i, i1, j, j0, j1);
                    if (ntail) {
                        t.m = i1 - i < pl->mr ? i1 - i : pl->mr;
                        t.a = Ak + (ptrdiff_t)i * g->rs_a * (ptrdiff_t)es;
                        dot_tail(pl, &t, i, t.m, C, bias, tpack, ntail);
                    }
                }
            }
            p0 += kc;
        } while (p0 < g->K);
    }
}

/* A block of one image with all of K per micro-kernel call (pl->full_k: the image's B fits
 * in half of L2). B's K x width block is packed whole when it is not read in place. Row
 * tiles outermost; each column tile's accumulators run the whole of K, so C is written once,
 * and A's rows are read as MR long sequential streams. With KC blocks, A comes in KC-long
 * pieces of rows far apart (W of r50.c5.reduce: 1 KiB of each 8 KiB row per block), which
 * the hardware prefetchers do not follow. Same sums as run_block: an element's chain over K
 * is the same with or without the blocks, and the dot-product tail keeps its KC blocks (its
 * sums are reduced across lanes once per block). */
static void run_block_full_k(const plan *pl, size_t s, size_t i0, size_t i1, size_t j0, size_t j1,
                             size_t ntail, char *bpack, char *tpack)
{
    const oxo_gemm *g = pl->g;
    const size_t es = pl->es;
    const slot o = slot_of(pl, s);
    const size_t image = o.b_first * pl->groups + o.q; /* what packers see */
    const char *A = a_of(pl, o.b_first, o.q);
    const int accum = g->accumulate ? OXO_TILE_ACCUM : 0;

    oxo_tile t = tile_of(pl);
    const char *B = NULL;
    t.rs_b = 0;
    if (j0 < j1 && pl->pack_b) {
        pl->packer(pl->pack_ctx, image, 0, g->K, j0, j1 - j0, bpack, pl->pack_ld, 0);
        B = bpack;
        t.rs_b = (ptrdiff_t)pl->pack_ld;
    } else if (j0 < j1) {
        B = b_of(pl, o.b_first, o.q) + j0 * es;
        t.rs_b = g->rs_b;
    }
    if (ntail) pl->packer(pl->pack_ctx, image, 0, g->K, pl->n_main, ntail, tpack, pl->tail_ld, 1);
    for (size_t i = i0; i < i1; i += pl->mr) {
        t.k = g->K;
        t.flags = accum | OXO_TILE_FINAL | (pl->prefetch_a ? OXO_TILE_PREFETCH_A : 0);
        for (size_t j = j0; j < j1; j += pl->nr) run_tile(pl, &t, A, B, o.C, o.bias, i, i1, j, j0, j1);
        t.m = i1 - i < pl->mr ? i1 - i : pl->mr;
        for (size_t p0 = 0; ntail && p0 < g->K; p0 += pl->kc) {
            t.k = g->K - p0 < pl->kc ? g->K - p0 : pl->kc;
            t.flags = (p0 ? OXO_TILE_ACCUM : accum) | (p0 + t.k >= g->K ? OXO_TILE_FINAL : 0);
            t.a = A + ((ptrdiff_t)i * g->rs_a + (ptrdiff_t)p0 * g->cs_a) * (ptrdiff_t)es;
            dot_tail(pl, &t, i, t.m, o.C, o.bias, tpack + p0 * es, ntail);
        }
    }
}

/* Where column part r of an image starts (r = n_parts: its end). The grid of grains starts
 * at the peel's end, so that every part's tiles are vector-aligned and only part 0 runs the
 * peel (with the grid from column 0 each part ran a peel of its own, one more vector of
 * FMAs per row tile each); no inner bound falls among the dot-product tail's columns. Zen 4,
 * batch 1, 2 threads, x 16 bytes past a 64-byte boundary, alternating calls in both orders:
 * with the peel in every part, grid from column 0 -> from the peel's end, mv2.28.exp and
 * incep3a.5x5red 1.15x (8 parts of 98 columns; peel_pays now drops their peel, same gain);
 * where the peel pays (mv2.112.proj, parts of 6272 columns) 0.99-1.01x. */
static size_t column_bound(const plan *pl, size_t r)
{
    if (r == 0) return 0;
    if (r >= pl->n_parts) return pl->g->N;
    return min_size(pl->peel + r * pl->n_grains / pl->n_parts * pl->ks->lanes, pl->n_main);
}

/* One unit: its columns in cache blocks of about NC, the image's tail with the last block. */
static void run_unit(const plan *pl, size_t unit, char *bpack, char *tpack)
{
    const oxo_gemm *g = pl->g;
    const size_t slot = unit / (pl->m_parts * pl->n_parts); /* image x group */
    const size_t r = unit % (pl->m_parts * pl->n_parts);
    const size_t rm = r / pl->n_parts, rn = r % pl->n_parts, lanes = pl->ks->lanes;
    const size_t i0 = rm * pl->m_grains / pl->m_parts * pl->mr;
    const size_t j0 = column_bound(pl, rn);
    const size_t i1 = min_size((rm + 1) * pl->m_grains / pl->m_parts * pl->mr, g->M);
    size_t j1 = column_bound(pl, rn + 1);
    if (i0 >= i1 || j0 >= j1) return;
    const size_t ntail = j1 > pl->n_main ? j1 - pl->n_main : 0;
    j1 -= ntail;

    void (*const run)(const plan *, size_t, size_t, size_t, size_t, size_t, size_t, char *, char *) =
        pl->full_k ? run_block_full_k : run_block;
    size_t jb = j0; /* the first pl->peel columns alone: later tiles' B vectors are aligned */
    if (pl->peel && j1 - j0 > pl->peel && j0 == 0) {
        run(pl, slot, i0, i1, j0, j0 + pl->peel, 0, bpack, tpack);
        jb += pl->peel;
    }
    const size_t blocks = j1 > jb ? cdiv(j1 - jb, OXO_NC) : 1;
    const size_t width = j1 > jb ? round_up(cdiv(j1 - jb, blocks), lanes) : 0;
    for (size_t j = jb, q = 0; q < blocks; q++, j += width) {
        const size_t je = j + width < j1 ? j + width : j1;
        run(pl, slot, i0, i1, j < je ? j : je, je, q + 1 == blocks ? ntail : 0, bpack, tpack);
    }
}

/* Cut each image's C into m_parts x n_parts so that there are about `per_thread` units per
 * thread (batch * parts a multiple of that, for balance). Each thread takes the units of its
 * own contiguous range one by one, then helps with the others' (oxo_units, threads.h), and a
 * worker that has not started by the time the caller's share is done is left out (threads.c).
 * Ranges, not threads taking turns unit by unit (neighbouring column stripes of the same rows
 * of C on different cores): on an Intel Xeon (two 512-bit FMA units), 2 threads, batch 1,
 * alternating processes, GFLOP/s turns -> ranges: 32->192 at 28x28 122-132 -> 187-272,
 * 64->64 at 28x28 159-202 -> 193-250, 192->16 at 28x28 180-201 -> 241-262 (turns ran those at
 * one thread's speed); 160->960 at 7x7, 32->16 at 112x112 and larger calls (a unit a thread)
 * the same.
 * How many per thread, measured at 2 threads: one unit each is fastest on large calls (finer
 * units cost up to 8% on layers whose output exceeds L2); calls of a few tens of microseconds
 * want finer units, so the caller can take over the share of a worker that wakes late (beside
 * NumPy's BLAS: 1.1-1.2x the sum of the two alone with 4 units, 1.3x with 1). Not kept: a
 * batch cut into row parts as well (parts = threads), batch 8, 2 threads, alternating calls:
 * 1024->256 at 14x14 1.02-1.06x, deep reductions at 14x14-17x17 1.01-1.02x, but 512->128 at
 * 28x28 0.91x, 2048->512 at 7x7 0.97x, and no steady sign in the peer benchmark. */
enum { OXO_SMALL_CALL_FLOPS = 16 << 20 };

static size_t gcd(size_t a, size_t b)
{
    while (b) {
        const size_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Does a core have 2 MiB of L2 or more (Intel's server cores, with their slow shared L3;
 * Zen 4 has 1 MiB and a fast L3)? Two rules below measured opposite there and here. */
static int l2_2mib(void) { return oxo_l2_bytes() >= (2u << 20); }

/* Do this core's 512-bit FMAs run at full width (oxo_probe_full_width, on the f32 set)? */
static int full_width_fmas(void)
{
    const oxo_kernels *f32 = oxo_kernels_for(oxo_isa_active(), OXO_F32);
    return f32 && oxo_probe_full_width(f32);
}

/* Does a unit `width` columns wide gain by its peel? Aligning costs each row tile one more
 * vector of FMAs per K block (the peel and the next tile both part-filled: 48 columns at
 * offset 12 take 1 + 3 vectors instead of 3) in the part that holds column 0; the other
 * parts start aligned (column_bound) at no cost. It pays where the part is wide, and more
 * where split loads cost more. Zen 4 (512-bit FMAs at half width), x 16 bytes past a 64-byte
 * boundary, alternating calls, peel / none: 1 thread 512->2048 at 6x8 0.74x, 2048->320 at
 * 8x8 0.80x, 256->256 at 12x16 0.93x, 256->512 at 24x24 0.96x, 784-1024 columns 0.98-0.99x,
 * 3136 and 12544 columns 0.96-1.09x (mostly above 1); 2 threads, parts of 1568 columns
 * (mv2.56.exp) 1.06x, 6272 (mv2.112.proj) 1.03x, 392 (r50.c3) 0.98-1.01x. On an Intel core
 * (two full-width FMA units), 1-2 threads, 784 columns (r50.c3.reduce, incep3a.1x1)
 * 1.10-1.12x, 3136 columns 1.20-1.25x. Hence parts of at least 16 vectors there (at most
 * 6% more FMAs in part 0), 64 on the others. */
static int peel_pays(const plan *pl, size_t width)
{
    const int mode = atomic_load_explicit(&peel_mode, memory_order_relaxed);
    if (mode) return mode == 1;
    const size_t vectors = full_width_fmas() ? 16 : 64;
    return width >= vectors * pl->ks->lanes;
}

static void partition(plan *pl, int *nt, double flops)
{
    const size_t per_thread = flops < OXO_SMALL_CALL_FLOPS ? 4 : 1;
    const oxo_gemm *g = pl->g;
    const size_t lanes = pl->ks->lanes;
    const size_t images = slot_count(pl);
    const size_t want = *nt > 1 ? (size_t)*nt * per_thread : 1;
    const size_t parts = want / gcd(want, images);
    const size_t max_n = cdiv(g->N, 2 * lanes), max_m = cdiv(g->M, pl->mr); /* parts' floor */
    pl->m_parts = pl->n_parts = 1;
    if (parts > 1) {
        /* Rows, even where C is wider than tall, when B is read in place, fits in one core's
         * L2, K >= 64 and each part gets at least 4 row tiles: each thread then runs the
         * one-thread order (rows outermost) on its rows. Zen 4, batch 1, 2 threads,
         * alternating calls, columns -> rows (noisy host: several runs each): r50.c3.expand
         * 1.01-1.12x, r50.c2.expand 1.01-1.19x, incep3a.1x1 1.02-1.04x, 96->192 and 128->256
         * at 28x28 1.03-1.05x; 64->64 at 56x56 0.88x and 1.10x. With K of 16-32 (mv2.56.exp,
         * mv2.28.exp) rows lost (0.71-0.95x): columns stay. */
        const int rows_fit = !pl->pack_b && max_m >= 4 * parts && g->K >= 64 &&
                             (double)g->K * (double)g->N * (double)pl->es <= OXO_L2_BYTES;
        const int cut_columns = !rows_fit && (g->M < g->N ? max_n >= parts || max_n >= max_m : max_m < parts && max_n > max_m);
        if (cut_columns) {
            pl->n_parts = parts < max_n ? parts : max_n;
        } else {
            /* every row part packs the same B blocks again: then no more parts than threads
             * (im2col, 512->64 3x3 stride 2 on 7x7, 2 threads: 4 parts a thread 780 us, 1 part
             * 235 us) */
            const size_t nt1 = (size_t)*nt, rows = pl->pack_b ? nt1 / gcd(nt1, images) : parts;
            pl->m_parts = rows < max_m ? rows : max_m;
        }
    }
    if (pl->peel && (pl->peel >= g->N || !peel_pays(pl, g->N / pl->n_parts))) pl->peel = 0;
    pl->n_grains = cdiv(g->N - pl->peel, lanes); /* the grid starts after the peel */
    pl->m_grains = cdiv(g->M, pl->mr);
    pl->units = images * pl->m_parts * pl->n_parts;
    if ((size_t)*nt > pl->units) *nt = (int)pl->units;
}

/* What every thread of one call shares: the plan, the scratch, the next unit to take. */
typedef struct run {
    const plan *pl;
    char *scratch;
    size_t per_thread, bpack_bytes, tpack_bytes;
    oxo_units units;
} run;

static void run_thread(void *arg, int tid)
{
    run *r = (run *)arg;
    char *mine = r->scratch ? r->scratch + r->per_thread * (size_t)tid : NULL;
    char *bpack = r->bpack_bytes ? mine : NULL;
    char *tpack = r->tpack_bytes ? mine + r->bpack_bytes : NULL;
    size_t u;
    while (oxo_units_take(&r->units, tid, &u)) run_unit(r->pl, u, bpack, tpack);
}

int oxo_gemm_run(const oxo_gemm *g)
{
    if (g->M == 0 || g->N == 0 || (g->batch == 0 && !g->reduce_batch)) return OXO_OK;
    if (g->batch == 0) { /* a sum over no images: the bias (or zeros), activated */
        oxo_gemm empty = *g;
        empty.batch = 1;
        empty.K = 0;
        return oxo_gemm_run(&empty);
    }
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), g->dtype);
    if (!ks) return OXO_EINVAL;
    /* 17-24 or 5-8 columns, A contiguous along K, B packed anyway from its strided
     * description, C's rows contiguous (NHWC with F = 17-24 or 5-8): the pairs sets (a vector
     * holds 8 columns x 2 steps of K, see gemm-avx512.c), where the ISA has them (AVX-512
     * float32) and its 512-bit FMAs run at full width. Measured on an Intel core (two 512-bit
     * FMA units), NHWC, batch 1, alternating processes, GFLOP/s before -> pairs:
     * - 17-24 columns (was: the zmm tile, second vector masked), 2 threads: 144->24 at 56x56
     *   213-231 -> 288-321, 320->24 at 14x14 137-147 -> 175-181, 160->24 at 7x7 73-76 -> 83,
     *   96->20 at 28x28 172-173 -> 206-210, 16->24 at 112x112 1.0-1.1x, 24->24 at 56x56 1.05x;
     *   1 thread 144->24 103-106 -> 132-141, 96->20 1.16x;
     * - 5-8 columns (was: dot products along K), 2 threads: 64->8 at 56x56 106-109 -> 172-178,
     *   256->8 at 28x28 112-113 -> 161-196, 128->7 1.3-1.5x, 64->5 and 64->6 1.05-1.4x; 1 thread
     *   1.4-2.2x;
     * Not taken: 9-16 columns (the tall set; pairs 32->16 at 112x112 0.89-0.94x, 96->12 at
     * 56x56 0.77-0.96x, 192->16 at 28x28 0.88-1.1x) and 1-4 (dot products; 256->4 0.70x, 64->2
     * 0.88x, 128->1 0.70x). Zen 4 (FMAs at half width) keeps its narrow ymm set, unmeasured. */
    /* the shape both the pairs and the wide sets take: NHWC's, with W^T packed per block */
    const int nhwc_shape = g->cs_a == 1 && !g->pack_b && !b_columns_contiguous(g) && (!g->cs_c || g->cs_c == 1);
    const int pmode = atomic_load_explicit(&pairs_mode, memory_order_relaxed);
    const int pairs_cols = g->N > 16 || (g->N > 4 && g->N <= 8);
    const int pairs = ks->pairs && pmode != 1 && g->N <= ks->pairs->nr && nhwc_shape &&
                      (pmode == 2 || (pairs_cols && full_width_fmas()));
    if (pairs) {
        ks = ks->pairs;
        if (ks->pairs && g->N <= ks->pairs->nr) ks = ks->pairs; /* 8 columns or fewer: 16-row tiles */
    }
    /* N = 21..24 (NHWC with F = 24): the zmm set would run one vector and a dot-product tail
     * of up to 8 columns; the narrow set's 8 x 24 ymm tile fits them. Measured on Zen 4,
     * alternating calls, NHWC 144->24 at 56x56, GFLOP/s zmm / narrow: 1 thread 74.1 / 84.6,
     * 2 threads 147.7 / 167.5. Wider N loses: F = 40 0.94-1.05x, 120 0.92-0.98x, NCHW 3080
     * pixels 0.73-0.81x. Where 512-bit FMAs run at full width (oxo_probe_full_width), the ymm
     * tile leaves half of each FMA unused; the zmm set's tile with its second vector masked
     * to the 5-8 columns leaves a quarter: on an Intel Xeon (two 512-bit FMA units), NHWC
     * F = 24 at 14x14-112x112, narrow -> masked, 1 thread 1.26-1.38x, 2 threads 1.25-1.47x. */
    const size_t ntail = g->N % ks->lanes;
    const int n21_24 = !pairs && ks->narrow && g->N < 2 * ks->lanes && 4 * ntail > ks->lanes && 2 * ntail <= ks->lanes;
    const int mode = atomic_load_explicit(&narrow_mode, memory_order_relaxed);
    const int masked = n21_24 && (mode == 2 || (mode == 0 && oxo_probe_full_width(ks)));
    if (n21_24 && !masked) ks = ks->narrow;
    /* At most one vector wide (NHWC with F <= 16, NCHW maps of <= 16 pixels), unless all in
     * dot tiles (see n_main) or stored transposed: the tall set (16 x 1 zmm). Measured on an
     * Intel core with two 512-bit FMA units, alternating calls, 1 / 2 threads, tall / the full
     * set's 8 x 16: NHWC 192->16 at 28x28 1.12x (to 0.90x of NCHW), 96->16 at 56x56 1.10x /
     * 1.11x, 256->16 1.04x / 1.09x, 64->12 1.10x / 1.08x, 1024->16 and 2048->16 at 7x7-28x28
     * 0.99-1.05x; NCHW at 4x4 1024->256 1.19x / 1.20x, 960->160 1.33x / 1.30x, 2048->512
     * 1.11x / 1.01-1.13x, 512->512 at 3x3 1.11x / 1.08x. Only there: on Zen 4 (512-bit FMAs
     * at half width), alternating calls, 2 / 1 threads, tall / 8 x 16: NCHW 1024->256 at 4x4
     * 0.50x / 0.48x, stride-2 r50.c5.reduce (4x4 of 2048 channels) 0.45x / 0.49x, NHWC
     * 2048->16 at 7x7 0.65x / 0.55x, NHWC incep3a.5x5red 0.96x / 0.99x, mv2.112.proj 0.99x /
     * 0.97x, 960->160 at 4x4 and NHWC 96->16 at 56x56 0.99-1.01x. */
    const int tall_mode = atomic_load_explicit(&allow_tall, memory_order_relaxed);
    const int tall = !pairs && ks->tall && (tall_mode == 2 || (tall_mode == 1 && full_width_fmas())) &&
                     g->N <= ks->lanes && (2 * g->N > ks->lanes || g->cs_a != 1) && (!g->cs_c || g->cs_c == 1);
    if (tall) ks = ks->tall;
    /* 64 or 128 columns, B packed, A contiguous along K (NHWC with F = 64 or 128): the wide
     * set's 6 x 64 tile where 512-bit FMAs run at full width. The 8 x 48 grid leaves 16 or
     * 32 columns to a tile of 1 or 2 vectors, whose 8 or 16 FMAs a step need 8 broadcasts.
     * Intel core, NHWC, batch 1, 2 threads, alternating processes, 8 x 48 -> 6 x 64 tile:
     * r50.c2.reduce (F = 64) 246-268 -> 275-325, r50.c3.reduce (128) 299-313 -> 330-354,
     * incep3a.1x1 (64) 263-280 -> 262-317. Not for wider F (256-2048 0.9-1.1x, mv2.7.last
     * 0.79-0.93x) nor NCHW (6 x 64 everywhere: 0.80-1.03x). */
    const int wide = !pairs && !tall && ks->wide && atomic_load_explicit(&allow_wide, memory_order_relaxed) &&
                     (g->N == 64 || g->N == 128) && nhwc_shape && full_width_fmas();
    if (wide) ks = ks->wide;

    plan pl;
    pl.g = g;
    pl.ks = ks;
    pl.es = elsize(g->dtype);
    pl.kc = kc_for(g->dtype);
    pl.mr = ks->mr;
    pl.nr = ks->nr;
    pl.groups = g->groups > 1 ? g->groups : 1;
    pl.pack_b = !b_columns_contiguous(g);
    pl.packer = g->pack_b ? g->pack_b : pairs ? oxo_pack_pairs_f32 : g->dtype == OXO_F64 ? oxo_pack_strided_f64 : oxo_pack_strided_f32;
    pl.pack_ctx = g->pack_b ? g->pack_ctx : (const void *)g;
    /* A tail narrower than half a vector goes to the dot kernel (it needs A contiguous
     * along K); wider tails stay in masked vector tiles. A masked tile for the narrow tails
     * too, 1 thread, masked / dot: 4 columns (14x14) K = 64-384 0.95-0.98x, K = 32 1.005x;
     * 1 column (7x7) 0.80-0.94x. */
    const size_t tail = g->N % ks->lanes;
    pl.n_main = (!masked && tail && 2 * tail <= ks->lanes && g->cs_a == 1 && ks->dot) ? g->N - tail : g->N;
    /* All of K per micro-kernel call (run_block_full_k) where that pays: one image per output,
     * K longer than one block, an image's B within half of L2 (so is its packed block, at most
     * NC columns wide) and the tail's transposed columns within 512 KiB. Measured against KC
     * blocks, alternating calls, on an Intel core with 2 MiB of L2 (the rule sees only L2's
     * size): 1 thread r50.c4.reduce 1.06x, r50.c5.reduce 1.08x, r50.c5.expand 1.06x,
     * 2048->512 at 6x8 1.12x, 1024->256 at 16x16 (B 1 MiB) 1.02x; 2 threads, batch 8,
     * 1.04-1.07x on those layers. B packed, 1 thread: NHWC r50.c5.reduce 1.09x, r50.c5.expand
     * 1.08x, stride-2 r50.c5.reduce 1.21x, im2col r50.c5.3x3 1.05x (2 threads 0.95-1.15x,
     * noisy). Not kept: KC cut so that a KC x NR micro-panel of B fits in L1 for GEMMs of
     * one column tile (7x7 maps, batch 8, 1 thread): 160->960 KC 80 0.93x, 320->1280 KC 160
     * 0.98x; 96->576 at 14x14 KC 48 0.94x. */
    const size_t lanes = ks->lanes;
    pl.cs_c = g->cs_c ? g->cs_c : 1;
    pl.full_k = atomic_load_explicit(&allow_full_k, memory_order_relaxed) && !g->reduce_batch &&
                g->K > pl.kc && g->N >= lanes &&
                (double)g->K * (double)g->N * (double)pl.es <= 0.5 * (double)oxo_l2_bytes() &&
                lanes * g->K * pl.es <= (512u << 10);
    pl.tail_ld = round_up(pl.full_k ? g->K : pl.kc, 16);
    /* B read in place whose rows (and images, groups) all start at the same offset from a
     * vector boundary: the first `peel` columns run as a narrow block of their own, so the
     * vector loads of every later tile are aligned (a NumPy array of a few MiB starts 16 bytes
     * past a 64-byte boundary: every zmm load then spans two cache lines); kept only where it
     * pays (partition, peel_pays). */
    pl.peel = 0;
    {
        const size_t vb = lanes * pl.es;
        const uintptr_t a = (uintptr_t)g->B;
        if (!pl.pack_b && a % pl.es == 0 && (size_t)g->rs_b * pl.es % vb == 0 &&
            (g->batch <= 1 || (size_t)g->bs_b * pl.es % vb == 0) &&
            (pl.groups <= 1 || (size_t)g->gs_b * pl.es % vb == 0))
            pl.peel = (vb - a % vb) % vb / pl.es;
    }

    /* Threads: as many as asked, but none that would get less than a minimum of work. */
    const double flops = 2.0 * (double)g->batch * (double)g->M * (double)g->N * (double)(g->K + 1);
    int nt = oxo_resolve_threads(g->n_threads);
    const double cap = flops / OXO_MIN_FLOPS_PER_THREAD;
    if (cap < nt) nt = cap < 1 ? 1 : (int)cap;

    partition(&pl, &nt, flops);
    /* Loop order (run_block). Columns outermost, each B micro-panel prefetched while the one
     * before it is in use, when threads split an image's columns (batch 1 on several
     * threads) or when an image's B is too big for L2 (it comes from L3 or DRAM, once; but
     * see below);
     * rows outermost otherwise (C is then the larger stream: whole rows of it are written in
     * sequence). Measured, 2 threads, medians of alternating calls, GFLOP/s columns / rows:
     * batch 1, 24->144 at 56x56 186 / 175, 128->512 at 28x28 215 / 195; batch 8, 256->64 at
     * 56x56 180 / 142, 144->24 at 56x56 183 / 153, 32->192 at 28x28 111 / 157 (columns
     * without the prefetch), 16->96 at 112x112 79 / 122, 192->64 at 28x28 185 / 196.
     * Except for a reduction of at most 20 channels over long rows (N >= 2048): a tile's few
     * FMAs then cost less than its stores, which want the rows' sequential streams, whoever
     * splits the columns. Measured on an Intel core, batch 1, 2 threads, alternating calls,
     * rows / columns: 16->96 at 112x112 1.52-1.64x, 8->64 at 112x112 1.98x, 3->64 1.62x,
     * 12->96 at 56x56 2.32x, 16->64 1.61x, 20->96 1.29x; 24->144 0.995x, 32->96 1.07x, 64->256
     * 0.99x; 16->256 at 28x28 (784 columns) 0.90x.
     * And an image's B bigger than L2 keeps the columns outermost only for K > 32 and fewer
     * than 16 row tiles: with the rows-outer prefetching (run_block) the rows order waits for
     * each new block of B once per block, which many row tiles amortize, while a short K
     * leaves a micro-panel too little work to hide the next one's fetch. Zen 4, alternating
     * calls, columns -> rows, batch 8 (each image new to the caches): 1 thread 32->64 and
     * 24->48 at 112x112 1.37-1.43x, mv2.112.proj 1.01-1.15x, 1024->256, 512->256 at 28x28 and
     * 128->128 at 56x56 1.04-1.06x, r50.c3.reduce 1.04-1.07x; 2 threads the same and
     * mv2.112.proj 1.18-1.27x; but r50.c2.reduce (8 row tiles) 0.94-0.98x and mv2.56.proj
     * (3) 0.92-1.02x, so those stay. Batch 1: 0.99-1.02x; im2col 3x3: 0.98-1.01x. */
    const double b_bytes = (double)g->K * (double)g->N * (double)pl.es;
    const int short_k = g->K <= 20 && g->N >= 2048;
    /* And at most 3 row tiles (F <= 24 filters) on a core with 2 MiB of L2 or more keep the
     * columns outermost whatever K and B's size: the rows order reads B once per row tile.
     * On an Intel core (2 MiB of L2, a slow shared L3), alternating calls, rows -> columns:
     * batch 1, 1 thread, mv2.112.proj 1.25x, 16->16 at 112x112 1.28-1.31x, 32->8 1.47x,
     * 32->24 1.17-1.27x, 8->16 1.07-1.12x, 16->16 and 32->16 at 28x28 1.06-1.08x; 2 threads
     * 1.07-1.17x (32->16 at 28x28 0.94x); batch 8 mv2.112.proj 1.39-1.41x, mv2.56.proj 1.06-1.07x,
     * 16->16 1.58-1.78x, 32->8 1.42x, 8->16 1.34-1.40x; 192->16 at 28x28 0.95-1.00x. Zen 4
     * (1 MiB of L2, 32 MiB of fast L3) measured the opposite on mv2.112.proj (rows 1.01-1.27x
     * faster, above), so the rule keys on the L2's size, the one difference it can see. */
    const int few_rows = l2_2mib() && g->M <= 3 * pl.mr;
    /* And B read in place with K of 48 to a KC x NR micro-panel of 24 KiB (float32 K <= 128)
     * keeps the columns outermost where 512-bit FMAs run at full width, while the call's C
     * is within twice one core's L2: the micro-panel then stays in L1 while A's rows pass,
     * where rows outermost reads B's block from L2 again for every row tile, 3 vectors a row
     * of K per 24 FMAs, which such a core issues in half the cycles of Zen 4's (whose order
     * stays). Intel core (two 512-bit FMA units), alternating calls with two outputs written
     * in turns, rows -> columns, batch 1: 2 threads
     * r50.c2.expand 1.07x, r50.c3.expand 1.02x, 64->64 at 56x56 1.09x, 128->256 at 28x28
     * 1.05x; 1 thread 1.09x, 1.04x, 1.06x; one output: float64 K = 64 1.05-1.10x, grad_x
     * 256->64 at 56x56 (K = 64) 1.06x. A larger C, written column tile by column tile, goes
     * on to DRAM without the rows' sequential streams: batch 8 in the peer benchmark (which
     * then wrote two outputs of 26 MB in turns) ran r50.c2.expand at 98-102 GFLOP/s against
     * 269 by rows, r50.c3.expand (13 MB) 238-247 against 297; 64->64 (6.4 MB) 1.00x. K of
     * 16-32 (mv2.56.exp, mv2.112.exp) lose with the columns outermost (0.62-0.97x: their
     * tiles' stores want the rows' streams), B packed (NHWC) 0.93-1.05x. */
    const double c_bytes = (double)slot_count(&pl) * (double)g->M * (double)g->N * (double)pl.es;
    const int l1_panel = !pl.pack_b && g->K >= 48 && g->K * pl.nr * pl.es <= (24u << 10) &&
                         c_bytes <= 2.0 * (double)oxo_l2_bytes() && full_width_fmas();
    pl.cols_outer = few_rows || l1_panel || (pl.n_parts > 1 && !short_k) ||
                    (b_bytes > OXO_L2_BYTES && g->K > 32 && g->M < 16 * pl.mr);

    /* The rows order's prefetch of the next row tile's C (run_block): a burst of a few hundred
     * prefetches before each row tile. Zen 4 gained by it (above); on an Intel core (2 MiB of
     * L2, slow shared L3) the burst stalls at its first fill buffers and the tile waits, so
     * it is left out there. Intel, alternating calls, the peer benchmark's pairs, with ->
     * without: 2 threads, batch 8, mv2.56.exp 1.11-1.16x, r50.c2.expand 1.11x, r50.c3.expand 1.06x,
     * mv2.28.exp 1.14x, mv2.112.exp 1.24x, deeper layers 0.99-1.02x; batch 1 mv2.112.exp
     * 1.11x, 0.99x on 24->144 and 64->256 at 56x56; 1 thread, batch 8 1.05-1.17x, batch 1
     * 1.01-1.10x. (B's prefetches, spread through the tile's k loop, stay: without them
     * 0.96-1.00x.) And not for one image's short reduction (short_k, above), whose row tile
     * is a few FMAs a column: the burst costs more than it hides of a C that comes from L3.
     * Zen 4, mv2.112.exp (16->96 at 112x112), batch 1, alternating calls, with -> without:
     * 2 threads 1.05x (three runs), 1 thread 1.05x; batch 8 0.96-1.04x, so batch 8 keeps it. */
    pl.write_prefetch = !l2_2mib() && !(short_k && slot_count(&pl) == 1);

    /* The tall set's 16-row tiles fetch the next tile's 16 rows of A on the way (one line per
     * step of k, gemm_loop; not the tiles that prefetch B instead) where a thread's share of A and C is more than one core's L2, so
     * that A comes from L3 or DRAM: that set's tile reads 16 new rows of A for every 16 x 16
     * of C and does little work per row. Intel core (2 MiB of L2), alternating processes,
     * GFLOP/s without -> with: 1 thread, batch 1, NHWC mv2.112.proj (32->16 at 112x112)
     * 68-92 -> 99-111, 256->16 at 56x56 93-105 -> 103-121; batch 8, 2 threads, NHWC
     * mv2.112.proj 150-154 -> 191-195, incep3a.5x5red (192->16 at 28x28) 162-166 -> 196-214.
     * Not kept: the same for A within L2 (incep3a.5x5red batch 1, NCHW 512->512 at 3x3:
     * 0.94-0.98x), and for the 8-row sets' tiles (batch 8, 2 threads, NCHW and NHWC r50.c2.reduce,
     * r50.c4.reduce, mv2.56.*: 0.85-1.02x). */
    const double ac_bytes = (double)slot_count(&pl) * (double)g->M * ((double)g->K + (double)g->N) * (double)pl.es;
    /* The lines fetched at step k are read a tile's K steps later: 16 rows x K of them must
     * wait in L1, so not for K-blocks over 512 (run_block_full_k's whole K): NHWC 1024->16
     * at 28x28 and 2048->16 at 14x14, 1 thread, 0.89-1.00x with it (noisy), 512->16 at
     * 56x56 (K 512) 1.11-1.24x in each of 5 pairs. */
    const size_t k_tile = pl.full_k ? g->K : min_size(g->K, pl.kc);
    pl.prefetch_a = tall && g->cs_a == 1 && ac_bytes > (double)nt * (double)oxo_l2_bytes() &&
                    16 * k_tile * pl.es <= (32u << 10);

    /* One allocation for every thread's scratch: a packed B block and the tail columns. */
    const size_t k_block = pl.full_k ? g->K : pl.kc;
    size_t bpack_bytes;
    if (pairs) { /* half as many rows, each 2 x the columns rounded up to a vector's 8 */
        pl.pack_ld = 2 * round_up(g->N, 8);
        bpack_bytes = round_up(cdiv(k_block, 2) * pl.pack_ld * pl.es, 64);
    } else {
        pl.pack_ld = round_up((pl.full_k ? min_size(round_up(g->N, lanes), OXO_NC) : OXO_NC) + lanes, 16);
        bpack_bytes = pl.pack_b ? round_up(k_block * pl.pack_ld * pl.es, 64) : 0;
    }
    const size_t tpack_bytes = pl.n_main < g->N ? round_up(ks->lanes * pl.tail_ld * pl.es, 64) : 0;
    const size_t per_thread = bpack_bytes + tpack_bytes;
    char *scratch = NULL;
    if (per_thread) {
        scratch = oxo_scratch_alloc(per_thread * (size_t)nt);
        if (!scratch) return OXO_ENOMEM;
    }

    if (pl.full_k) atomic_fetch_add_explicit(&full_k_runs, 1, memory_order_relaxed);
    run r = {&pl, scratch, per_thread, bpack_bytes, tpack_bytes};
    oxo_units_init(&r.units, pl.units, nt);
    oxo_parallel(nt, run_thread, &r);
    oxo_scratch_free(scratch);
    return OXO_OK;
}
