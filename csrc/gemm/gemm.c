/* gemm.c: the one blocked GEMM engine that every op calls.
 *
 *   for b < batch:  C_b (M x N) = act(A_b (M x K) @ B_b (K x N) + bias)
 *
 * GotoBLAS/BLIS structure, vectorized along N (the pixels of an NCHW image):
 *
 *   tasks (b, row block, column block) split over threads      -- OpenMP, static
 *     for kc-block of K (KC)                                    -- C partials stay in cache
 *       [pack B's kc x nc block if B's columns are not contiguous]
 *       for micro-panel of rows (MR)                            -- A micro-panel MR x KC in L1
 *         for micro-tile of columns (NR)                        -- B block KC x NC in L2
 *           micro-kernel (m x n tile, bias+activation on the last kc-block)
 *
 * Every output element is computed by exactly one thread with one FMA chain over K in
 * order, so the result does not depend on the thread count.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../onexone.h"
#include "../threads.h"

/* Block sizes in elements (f32; f64 halves KC so a block keeps its byte size).
 * KC x NC of B (256 x 512 floats = 512 KiB) lives in the 1 MiB L2; MR x KC of A in L1. */
enum { OXO_KC_F32 = 256, OXO_NC = 512, OXO_MIN_FLOPS_PER_THREAD = 1 << 18 };

static size_t kc_for(oxo_dtype dt) { return dt == OXO_F64 ? OXO_KC_F32 / 2 : OXO_KC_F32; }

oxo_blocking oxo_gemm_blocking(oxo_dtype dt)
{
    oxo_blocking b = {kc_for(dt), 0, OXO_NC};
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), dt);
    b.mc = ks ? ks->mr : 0;
    return b;
}

static size_t elsize(oxo_dtype dt) { return dt == OXO_F64 ? 8 : 4; }
static size_t cdiv(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t round_up(size_t a, size_t b) { return cdiv(a, b) * b; }

/* Is column j of B at B + j (the fast path that needs no packing)? */
static int b_columns_contiguous(const oxo_gemm *g)
{
    if (g->b_w == 0 || g->b_w >= g->N) return g->cs_bw == 1;
    return g->cs_bw == 1 && g->cs_bh == (ptrdiff_t)g->b_w;
}

/* Copy B's (kc x nc) block at (p0, j0) of batch b into dst, rows ld apart. */
#define OXO_DEFINE_PACK_B(T, NAME)                                                             \
    static void NAME(const oxo_gemm *g, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,  \
                     T *dst, size_t ld)                                                        \
    {                                                                                          \
        const T *base = (const T *)g->B + (ptrdiff_t)b * g->bs_b;                              \
        const size_t bw = g->b_w ? g->b_w : g->N;                                              \
        for (size_t p = 0; p < kc; p++) {                                                      \
            const T *row = base + (ptrdiff_t)(p0 + p) * g->rs_b;                               \
            T *out = dst + p * ld;                                                             \
            size_t j = 0;                                                                      \
            while (j < nc) {                                                                   \
                const size_t hi = (j0 + j) / bw, lo = (j0 + j) % bw;                           \
                const size_t run = (bw - lo < nc - j) ? bw - lo : nc - j;                      \
                const T *src = row + (ptrdiff_t)hi * g->cs_bh + (ptrdiff_t)lo * g->cs_bw;      \
                if (g->cs_bw == 1) {                                                           \
                    memcpy(out + j, src, run * sizeof(T));                                     \
                } else {                                                                       \
                    for (size_t q = 0; q < run; q++) out[j + q] = src[(ptrdiff_t)q * g->cs_bw]; \
                }                                                                              \
                j += run;                                                                      \
            }                                                                                  \
        }                                                                                      \
    }
OXO_DEFINE_PACK_B(float, pack_b_f32)
OXO_DEFINE_PACK_B(double, pack_b_f64)

/* The work of one call, split into tasks: (image, row block, column block). */
typedef struct plan {
    const oxo_gemm *g;
    const oxo_kernels *ks;
    size_t es, kc, mr, nr;
    size_t m_blocks, n_blocks, mb, nb; /* number and size of row / column blocks */
    size_t tasks;
    int pack_b;
    size_t pack_ld; /* row stride of a packed B block */
} plan;

static void run_task(const plan *pl, size_t task, char *bpack)
{
    const oxo_gemm *g = pl->g;
    const size_t es = pl->es;
    const size_t b = task / (pl->m_blocks * pl->n_blocks);
    const size_t rest = task % (pl->m_blocks * pl->n_blocks);
    const size_t i0 = (rest / pl->n_blocks) * pl->mb, j0 = (rest % pl->n_blocks) * pl->nb;
    const size_t i1 = i0 + pl->mb < g->M ? i0 + pl->mb : g->M;
    const size_t j1 = j0 + pl->nb < g->N ? j0 + pl->nb : g->N;
    if (i0 >= i1 || j0 >= j1) return;

    const char *A = (const char *)g->A + (ptrdiff_t)b * g->bs_a * (ptrdiff_t)es;
    char *C = (char *)g->C + (ptrdiff_t)b * g->bs_c * (ptrdiff_t)es;
    const char *bias = (const char *)g->bias;

    oxo_tile t;
    t.rs_a = g->rs_a;
    t.cs_a = g->cs_a;
    t.rs_c = g->rs_c;
    t.bias_mode = g->bias ? g->bias_mode : OXO_BIAS_NONE;
    t.act = g->act;

    size_t p0 = 0;
    do { /* at least once, so K == 0 still writes bias/activation */
        const size_t kc = g->K - p0 < pl->kc ? g->K - p0 : pl->kc;
        const int last = p0 + kc >= g->K;
        t.flags = ((p0 > 0 || g->accumulate) ? OXO_TILE_ACCUM : 0) | (last ? OXO_TILE_FINAL : 0);
        t.k = kc;

        const char *Bblk;
        ptrdiff_t rs_b;
        if (pl->pack_b) {
            if (es == 4) pack_b_f32(g, b, p0, kc, j0, j1 - j0, (float *)bpack, pl->pack_ld);
            else pack_b_f64(g, b, p0, kc, j0, j1 - j0, (double *)bpack, pl->pack_ld);
            Bblk = bpack;
            rs_b = (ptrdiff_t)pl->pack_ld;
        } else {
            Bblk = (const char *)g->B +
                   ((ptrdiff_t)b * g->bs_b + (ptrdiff_t)p0 * g->rs_b + (ptrdiff_t)j0) * (ptrdiff_t)es;
            rs_b = g->rs_b;
        }
        t.rs_b = rs_b;

        for (size_t i = i0; i < i1; i += pl->mr) {
            t.m = i1 - i < pl->mr ? i1 - i : pl->mr;
            t.a = A + ((ptrdiff_t)i * g->rs_a + (ptrdiff_t)p0 * g->cs_a) * (ptrdiff_t)es;
            for (size_t j = j0; j < j1; j += pl->nr) {
                t.n = j1 - j < pl->nr ? j1 - j : pl->nr;
                t.b = Bblk + (j - j0) * es;
                t.c = C + ((ptrdiff_t)i * g->rs_c + (ptrdiff_t)j) * (ptrdiff_t)es;
                t.bias = !bias ? NULL
                         : g->bias_mode == OXO_BIAS_ROW ? (const void *)(bias + i * es)
                                                        : (const void *)(bias + j * es);
                pl->ks->gemm(&t);
            }
        }
        p0 += kc;
    } while (p0 < g->K);
}

int oxo_gemm_run(const oxo_gemm *g)
{
    if (g->batch == 0 || g->M == 0 || g->N == 0) return OXO_OK;
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), g->dtype);
    if (!ks) return OXO_EINVAL;

    plan pl;
    pl.g = g;
    pl.ks = ks;
    pl.es = elsize(g->dtype);
    pl.kc = kc_for(g->dtype);
    pl.mr = ks->mr;
    pl.nr = ks->nr;
    pl.pack_b = !b_columns_contiguous(g);

    /* Threads: as many as asked, but none that would get less than a minimum of work. */
    const double flops = 2.0 * (double)g->batch * (double)g->M * (double)g->N * (double)(g->K + 1);
    int nt = oxo_resolve_threads(g->n_threads);
    const double cap = flops / OXO_MIN_FLOPS_PER_THREAD;
    if (cap < nt) nt = cap < 1 ? 1 : (int)cap;

    /* Column blocks of at most NC (a multiple of the vector width), then row blocks when the
     * images' column blocks alone are too few to give every thread work. */
    const size_t lanes = ks->lanes;
    pl.n_blocks = cdiv(g->N, OXO_NC);
    if (g->batch * pl.n_blocks < (size_t)nt) {
        size_t want = cdiv((size_t)nt, g->batch);
        size_t max_nb = cdiv(g->N, lanes);
        pl.n_blocks = want < max_nb ? want : max_nb;
    }
    pl.nb = round_up(cdiv(g->N, pl.n_blocks), lanes);
    pl.n_blocks = cdiv(g->N, pl.nb);
    pl.m_blocks = 1;
    if (g->batch * pl.n_blocks < (size_t)nt) {
        size_t want = cdiv((size_t)nt, g->batch * pl.n_blocks);
        size_t max_mb = cdiv(g->M, pl.mr);
        pl.m_blocks = want < max_mb ? want : max_mb;
    }
    pl.mb = round_up(cdiv(g->M, pl.m_blocks), pl.mr);
    pl.m_blocks = cdiv(g->M, pl.mb);
    pl.tasks = g->batch * pl.m_blocks * pl.n_blocks;
    if ((size_t)nt > pl.tasks) nt = (int)pl.tasks;

    char *scratch = NULL;
    size_t per_thread = 0;
    if (pl.pack_b) {
        pl.pack_ld = round_up(pl.nb, 16);
        per_thread = round_up(pl.kc * pl.pack_ld * pl.es, 64);
        scratch = oxo_aligned_alloc(per_thread * (size_t)nt);
        if (!scratch) return OXO_ENOMEM;
    }

    OXO_PARALLEL(nt)
    {
        const int tid = OXO_THREAD_ID(), nth = OXO_NUM_THREADS_IN_TEAM();
        const size_t t0 = pl.tasks * (size_t)tid / (size_t)nth;
        const size_t t1 = pl.tasks * (size_t)(tid + 1) / (size_t)nth;
        char *bpack = scratch ? scratch + per_thread * (size_t)tid : NULL;
        for (size_t task = t0; task < t1; task++) run_task(&pl, task, bpack);
    }
    oxo_aligned_free(scratch);
    return OXO_OK;
}
