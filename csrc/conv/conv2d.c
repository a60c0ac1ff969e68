/* conv2d.c: the KxK convolution over NCHW, two algorithms.
 *
 *   y[n, f, ho, wo] = act(sum_{c, kh, kw} w[f, c, kh, kw] * x[n, c, ho*sh - ph + kh*dh,
 *                                                             wo*sw - pw + kw*dw] + bias[f])
 *
 * im2col: one call of the GEMM engine, Y[n] (F x Ho*Wo) = W (F x C*KH*KW) @ B[n], where B[n] is
 * the im2col matrix of image n, never materialized: the engine asks oxo_pack_im2col_* for
 * the cache blocks it needs.
 *
 * direct: no im2col matrix. The output pixels of an image are laid on a grid of lanes
 * j = ho*G + wo (G, the pitch, >= Wo; lanes with wo >= Wo are computed by nobody) in which
 * every tap (kh, kw) reads the input at one fixed offset from j:
 *   - stride 1, rows of unit stride: the input itself, G = its row stride:
 *     x[c, ho - ph + kh*dh, wo - pw + kw*dw] = x_c[j + (kh*dh - ph)*G + (kw*dw - pw)],
 *     with the padding (and the wrap into the neighbouring row) masked off per lane;
 *   - otherwise (stride > 1, a strided or over-padded input) a zero-padded copy of x split
 *     into its sh x sw stride phases (the space-to-depth of the padded image; about x's
 *     size, not KH*KW times it), where the convolution has stride 1 and needs no padding.
 * The tiles of the grid (direct_nv vectors) and of F (direct_mr rows) go to the ISA's
 * direct micro-kernel (csrc/kernels/direct_vec_template.h), which runs the whole reduction
 * in registers and stores each output once, bias and activation fused; a grid that ends 1-4
 * lanes past whole vectors leaves those pixels to dot products (see tail_gather).
 * On an ISA with a second direct kernel, vectorized along output channels
 * (csrc/kernels/direct_fv_template.h, AVX-512), large layers run that one instead, always
 * on the padded copy (see "the kernel vectorized along output channels" below); grouped
 * layers too, where each group has at least a block (32 float32, 16 float64) of output
 * channels.
 *
 * Threads: the work is cut into units (image, rows of F, range of grid vectors), taken by
 * the pool's threads one by one; an output element is computed by exactly one unit with a
 * reduction order that depends only on the shape, so the result does not depend on the
 * thread count.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "../gemm/pack.h"
#include "../onexone.h"
#include "../threads.h"
#include "pixels.h"

enum {
    OXO_DIRECT_MIN_FLOPS_PER_THREAD = 1 << 18,
    OXO_DIRECT_L1_BYTES = 24 * 1024, /* input rows + weights of one channel block */
    OXO_DIRECT_MIN_C_IN_PLACE = 8,   /* fewer channels: the padded copy, taps innermost */
    OXO_DIRECT_MIN_TAPS_INNER = 4,   /* fewer taps: channels innermost even on the copy */
    OXO_DIRECT_COPY_ALONE = 256 * 1024, /* smaller padded copies: made by one thread */
};

static size_t elsize(oxo_dtype dt) { return dt == OXO_F64 ? 8 : 4; }
static size_t cdiv(size_t a, size_t b) { return (a + b - 1) / b; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* ---- im2col ------------------------------------------------------------------------------ */
int oxo_conv2d_im2col_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                           ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                           const void *bias, int act, void *y, int n_threads)
{
    /* one group of the grouped convolution (csrc/conv/conv2d_grouped.c) */
    return oxo_conv2d_im2col_grouped(dt, x, w, rs_w, cs_w, f, geom, 1, bias, act, y, n_threads);
}

/* ---- direct ------------------------------------------------------------------------------ */
typedef struct dplan {
    const oxo_kernels *ks;
    const oxo_conv2d_geom *g;
    size_t es, lanes, mr, nv;
    size_t n, c, h, w, f;    /* x (N, C, H, W), F output channels: per group (C/G, F/G) */
    size_t groups;           /* G: group q reads channels [q*c, (q+1)*c), writes [q*f, (q+1)*f) */
    size_t taps, cb;         /* KH*KW; channels per block of the micro-kernel */
    const char *wt;          /* weight (G*f, c*taps) */
    ptrdiff_t rs_w, cs_w;
    const char *bias;
    int act;
    char *y;                 /* (N, G*f, Ho*Wo) */
    size_t plane;            /* Ho*Wo */
    /* where the micro-kernel reads: the input itself or its padded phase-split copy */
    int in_place;
    int taps_inner;          /* the kernel's (channel, tap) order (copy only) */
    const char *src;         /* image 0, channel 0, grid lane 0 */
    ptrdiff_t src_n, src_c;  /* image and channel strides, elements */
    size_t pitch;            /* G */
    ptrdiff_t *tap_off;      /* [taps] */
    size_t grid_lanes, nvec; /* Ho*G lanes, in nvec vectors */
    size_t segs;             /* store segments per vector */
    /* the grid's last lanes as dot products (see tail_gather): tail_npix pixels from tail_pix0,
     * their receptive fields in tail_cols [image][pixel][C*taps] */
    size_t tail_pix0, tail_npix;
    const char *tail_cols;
    /* work split */
    size_t f_parts, v_parts, units;
    size_t scratch_per_thread;
} dplan;

/* Lanes [a, b) of a vector as bits (b <= 32). */
static uint32_t lane_bits(size_t a, size_t b)
{
    const uint32_t below_b = b >= 32 ? 0xFFFFFFFFu : (1u << b) - 1;
    return a >= b ? 0 : below_b & ~((1u << a) - 1);
}

/* Masks of the tile whose vectors are [va, va + nvt): for every tap, which lanes read the
 * input; for every vector, the output-row segments to store. Worked out per run of lanes
 * on one grid row, not per lane. */
static void tile_masks(const dplan *p, size_t va, size_t nvt, uint32_t *tap_mask, uint32_t *rowbits,
                       uint32_t *colbits, ptrdiff_t *st_off, uint32_t *st_mask)
{
    const oxo_conv2d_geom *g = p->g;
    const size_t L = p->lanes, G = p->pitch;
    memset(st_mask, 0, nvt * p->segs * sizeof *st_mask);
    for (size_t v = 0; v < nvt; v++) {
        uint32_t valid = 0;
        if (p->in_place) {
            memset(rowbits, 0, g->kh * sizeof *rowbits);
            memset(colbits, 0, g->kw * sizeof *colbits);
        }
        const size_t j0 = (va + v) * L, jend = min_sz(j0 + L, p->grid_lanes);
        size_t s = 0;
        for (size_t j = j0; j < jend;) {
            const size_t ho = j / G, wo = j % G, row_end = min_sz(jend, j + (G - wo));
            if (wo < g->wo) { /* lanes [j, e) are output pixels (ho, wo ..); the rest nobody's */
                const size_t e = min_sz(row_end, j + (g->wo - wo));
                const uint32_t bits = lane_bits(j - j0, e - j0);
                valid |= bits;
                if (p->segs == 1) { /* G == Wo: y index = grid lane */
                    st_off[v] = (ptrdiff_t)j0;
                    st_mask[v] |= bits;
                } else {
                    st_off[v * p->segs + s] = (ptrdiff_t)(ho * g->wo + wo) - (ptrdiff_t)(j - j0);
                    st_mask[v * p->segs + s++] = bits;
                }
                if (p->in_place) { /* stride 1: input row ho - ph + kh*dh, columns wo - pw + kw*dw */
                    for (size_t kh = 0; kh < g->kh; kh++) {
                        const ptrdiff_t r = (ptrdiff_t)ho - g->ph + (ptrdiff_t)kh * g->dh;
                        if (r >= 0 && r < (ptrdiff_t)p->h) rowbits[kh] |= bits;
                    }
                    for (size_t kw = 0; kw < g->kw; kw++) { /* wo in [pw - kw*dw, W + pw - kw*dw) */
                        const ptrdiff_t lo = g->pw - (ptrdiff_t)kw * g->dw, hi = lo + (ptrdiff_t)p->w;
                        const ptrdiff_t a = lo > (ptrdiff_t)wo ? lo : (ptrdiff_t)wo;
                        const ptrdiff_t b = hi < (ptrdiff_t)(wo + (e - j)) ? hi : (ptrdiff_t)(wo + (e - j));
                        if (a < b) colbits[kw] |= lane_bits(j - j0 + (size_t)(a - (ptrdiff_t)wo), j - j0 + (size_t)(b - (ptrdiff_t)wo));
                    }
                }
            }
            j = row_end;
        }
        if (!p->in_place) { /* a padded copy: the same masks for every tap (uniform) */
            tap_mask[v] = valid;
            continue;
        }
        for (size_t kh = 0, q = 0; kh < g->kh; kh++) {
            for (size_t kw = 0; kw < g->kw; kw++, q++) tap_mask[q * nvt + v] = valid & rowbits[kh] & colbits[kw];
        }
    }
}

/* The tail pixels of image b for output channels [f, f + m), by the ISA's dot kernel. */
static void tail_rows(const dplan *p, size_t b, size_t f, size_t m)
{
    const size_t es = p->es, k = p->c * p->taps, dmr = p->ks->dot_mr, dnr = p->ks->dot_nr;
    oxo_dot_tile t;
    t.k = k;
    t.rs_a = p->rs_w;
    t.rs_bt = (ptrdiff_t)k;
    t.rs_c = (ptrdiff_t)p->plane;
    t.cs_c = 1;
    t.bias_mode = p->bias ? OXO_BIAS_ROW : OXO_BIAS_NONE;
    t.act = p->act;
    t.flags = OXO_TILE_FINAL;
    for (size_t i = f; i < f + m; i += dmr) {
        t.m = min_sz(dmr, f + m - i);
        t.a = p->wt + (ptrdiff_t)i * p->rs_w * (ptrdiff_t)es;
        t.bias = p->bias ? p->bias + i * es : NULL;
        for (size_t j = 0; j < p->tail_npix; j += t.n) {
            t.n = min_sz(dnr, p->tail_npix - j);
            t.bt = p->tail_cols + (b * p->tail_npix + j) * k * es;
            t.c = p->y + ((b * p->f + i) * p->plane + p->tail_pix0 + j) * es;
            p->ks->dot(&t);
        }
    }
}

/* One unit: image b, group q, the group's output channels [f0, f1), grid vectors [v0, v1). */
static void run_unit(const dplan *p, size_t u, char *scratch)
{
    const size_t per_image = p->f_parts * p->v_parts;
    const size_t slot = u / per_image, r = u % per_image; /* image x group */
    const size_t b = slot / p->groups, q = slot % p->groups;
    const size_t fr = r / p->v_parts, vr = r % p->v_parts, panels = cdiv(p->f, p->mr);
    const size_t f0 = panels * fr / p->f_parts * p->mr, v0 = p->nvec * vr / p->v_parts;
    const size_t f1 = min_sz(panels * (fr + 1) / p->f_parts * p->mr, p->f);
    const size_t v1 = p->nvec * (vr + 1) / p->v_parts;
    if (f0 >= f1 || v0 >= v1) return;

    uint32_t *tap_mask = (uint32_t *)scratch;
    uint32_t *rowbits = tap_mask + p->taps * p->nv;
    uint32_t *colbits = rowbits + p->g->kh;
    uint32_t *st_mask = colbits + p->g->kw;
    ptrdiff_t *st_off = (ptrdiff_t *)(scratch + cdiv((size_t)((char *)(st_mask + p->nv * p->segs) - scratch), 64) * 64);

    oxo_direct_tile t;
    t.c = p->c;
    t.taps = p->taps;
    t.cb = p->cb;
    t.rs_w = p->rs_w;
    t.cs_w = p->cs_w;
    t.cs_x = p->src_c;
    t.tap_off = p->tap_off;
    t.tap_mask = tap_mask;
    t.uniform = !p->in_place;
    t.taps_inner = p->taps_inner;
    t.rs_y = (ptrdiff_t)p->plane;
    t.st_off = st_off;
    t.st_mask = st_mask;
    t.st_segs = p->segs;
    t.act = p->act;

    const char *src = p->src + ((ptrdiff_t)b * p->src_n + (ptrdiff_t)(q * p->c) * p->src_c) * (ptrdiff_t)p->es;
    char *y = p->y + slot * p->f * p->plane * p->es;
    const char *wq = p->wt + (ptrdiff_t)(q * p->f) * p->rs_w * (ptrdiff_t)p->es;
    const char *bq = p->bias ? p->bias + q * p->f * p->es : NULL;
    /* the unit's vectors in tiles of at most nv, as even as possible */
    const size_t nvec = v1 - v0, ntiles = cdiv(nvec, p->nv);
    for (size_t k = 0, va = v0; k < ntiles; k++) {
        const size_t nvt = nvec / ntiles + (k < nvec % ntiles);
        tile_masks(p, va, nvt, tap_mask, rowbits, colbits, st_off, st_mask);
        t.nv = nvt;
        t.x = src + (ptrdiff_t)(va * p->lanes) * (ptrdiff_t)p->es;
        for (size_t f = f0; f < f1; f += p->mr) {
            t.m = min_sz(p->mr, f1 - f);
            t.w = wq + (ptrdiff_t)f * p->rs_w * (ptrdiff_t)p->es;
            t.y = y + f * p->plane * p->es;
            t.bias = bq ? bq + f * p->es : NULL;
            p->ks->direct(&t);
            /* the tail's rows while this panel of W is in L2: the panel's turn among the
             * image's parts by pixels, all of them in its only part by pixels otherwise */
            if (p->tail_npix && k + 1 == ntiles && f / p->mr % p->v_parts == vr)
                tail_rows(p, b, f, t.m);
        }
        va += nvt;
    }
}

typedef struct drun {
    const dplan *p;
    char *scratch;
    atomic_size_t next;
} drun;

static void direct_thread(void *arg, int tid)
{
    drun *r = (drun *)arg;
    char *mine = r->scratch + r->p->scratch_per_thread * (size_t)tid;
    for (;;) {
        const size_t u = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
        if (u >= r->p->units) break;
        run_unit(r->p, u, mine);
    }
}

/* ---- the padded, stride-phase-split copy ------------------------------------------------ *
 * Channel c of image b becomes planes of Hh x U: plane (qh, qw), element (hh, u) is the
 * padded input at row hh*sh + qh, column u*sw + qw (zero outside x). Output pixel (ho, wo)
 * and tap (kh, kw) then read plane ((kh*dh) % sh, (kw*dw) % sw) at (ho + (kh*dh) / sh,
 * wo + (kw*dw) / sw): stride 1, pitch U, no padding. Only the phases some tap reads are
 * made: the distinct (kh*dh) % sh (at most min(sh, KH) of them) times the distinct
 * (kw*dw) % sw, so a stride larger than the kernel costs no more memory than a small one. */
typedef struct phases {
    ptrdiff_t *qh, *qw; /* the rows' and the columns' phases in use */
    size_t nh, nw;
} phases;

typedef struct phase_copy {
    const oxo_tensor4 *x;
    const oxo_conv2d_geom *g;
    const phases *ph;
    size_t es, hh, u, chan; /* plane rows, pitch, elements per channel */
    char *dst;
    size_t run;             /* items taken at once */
    void (*row2)(void *, void *, const void *, ptrdiff_t, size_t, size_t); /* ks->phase_row2 */
    int pairs;              /* stride 2 along w, both column phases, x's rows unit stride: an
                             * item makes a row phase's two planes in one pass over its rows */
    atomic_size_t next;
} phase_copy;

/* How many items (an item: image, channel and phase, or with pairs, image, channel and row
 * phase) the copy has. */
static size_t phase_items(const phase_copy *pc)
{
    return pc->x->n * pc->x->c * pc->ph->nh * (pc->pairs ? 1 : pc->ph->nw);
}

#define OXO_DEFINE_PHASE_COPY(T, NAME, ROW)                                                     \
    static void NAME(const phase_copy *pc, size_t item) /* item: (image, channel, phase) */   \
    {                                                                                          \
        const oxo_tensor4 *x = pc->x;                                                          \
        const oxo_conv2d_geom *g = pc->g;                                                      \
        const size_t nph = pc->ph->nh * pc->ph->nw;                                            \
        const size_t plane_id = item / nph, phase = item % nph;                                \
        const size_t b = plane_id / x->c, c = plane_id % x->c;                                 \
        const T *src = (const T *)x->data + (ptrdiff_t)b * x->sn + (ptrdiff_t)c * x->sc;       \
        T *pl = (T *)pc->dst + plane_id * pc->chan + phase * pc->hh * pc->u;                   \
        const ptrdiff_t qh = pc->ph->qh[phase / pc->ph->nw], qw = pc->ph->qw[phase % pc->ph->nw]; \
        ptrdiff_t ua, ue;                                                                      \
        oxo_phase_cols(qw, g->pw, g->sw, x->w, pc->u, &ua, &ue);                               \
        for (size_t hh = 0; hh < pc->hh; hh++) {                                               \
            const ptrdiff_t r = (ptrdiff_t)hh * g->sh + qh - g->ph;                            \
            const T *in = r < 0 || r >= (ptrdiff_t)x->h ? NULL : src + r * x->sh + (qw - g->pw) * x->sw; \
            ROW(pl + hh * pc->u, in, g->sw * x->sw, ua, ue, pc->u);                            \
        }                                                                                      \
    }
OXO_DEFINE_PHASE_COPY(float, phase_copy_f32, oxo_phase_row_f32)
OXO_DEFINE_PHASE_COPY(double, phase_copy_f64, oxo_phase_row_f64)

/* pc->pairs: item (image, channel, row phase) makes planes (qh, 0) and (qh, 1), reading
 * each of its input rows once, half the items (and their bookkeeping) of one plane each:
 * the copy took 31% of 512->512, 32 groups, 3x3 stride 2 at 28x28 (its rows are 15 wide).
 * Against the build before, alternating processes, batch 1, 1 thread: 3x3 stride 2 with
 * 32 groups 1.05-1.10x (256 channels at 56x56), 1.11-1.15x (512 at 28x28), 1.24-1.28x
 * (1024 at 14x14), 8 groups 1.08-1.13x, 4 groups 1.04-1.06x; without groups 1.00-1.08x.
 * Then with ks->phase_row2 (AVX-512 f32: a row of up to 16 outputs a phase in one masked
 * step), against the portable pairs, 1 / 2 threads: 1024 channels 1.09-1.19x / 1.05-1.08x,
 * 512 1.03-1.07x / 1.0-1.05x, 8 and 4 groups 1.02-1.07x / 1.0-1.06x, ungrouped 1.0x. */
#define OXO_DEFINE_PHASE_COPY2(T, NAME, ROW2)                                                   \
    static void NAME(const phase_copy *pc, size_t item) /* item: (image, channel, row phase) */ \
    {                                                                                          \
        const oxo_tensor4 *x = pc->x;                                                          \
        const oxo_conv2d_geom *g = pc->g;                                                      \
        const size_t nh = pc->ph->nh, plane_id = item / nh, iq = item % nh;                    \
        const size_t b = plane_id / x->c, c = plane_id % x->c;                                 \
        const T *src = (const T *)x->data + (ptrdiff_t)b * x->sn + (ptrdiff_t)c * x->sc;       \
        T *base = (T *)pc->dst + plane_id * pc->chan;                                          \
        const size_t plane = pc->hh * pc->u, zero_at = pc->ph->qw[0] == 0 ? 0 : 1;             \
        T *p0 = base + (iq * 2 + zero_at) * plane, *p1 = base + (iq * 2 + 1 - zero_at) * plane; \
        const ptrdiff_t qh = pc->ph->qh[iq];                                                   \
        for (size_t hh = 0; hh < pc->hh; hh++) {                                               \
            const ptrdiff_t r = (ptrdiff_t)hh * g->sh + qh - g->ph;                            \
            const T *in = r < 0 || r >= (ptrdiff_t)x->h ? NULL : src + r * x->sh;              \
            if (pc->row2) pc->row2(p0 + hh * pc->u, p1 + hh * pc->u, in, g->pw, x->w, pc->u);   \
            else ROW2(p0 + hh * pc->u, p1 + hh * pc->u, in, g->pw, x->w, pc->u);               \
        }                                                                                      \
    }
OXO_DEFINE_PHASE_COPY2(float, phase_copy2_f32, oxo_phase_row2_f32)
OXO_DEFINE_PHASE_COPY2(double, phase_copy2_f64, oxo_phase_row2_f64)

static void phase_copy_thread(void *arg, int tid)
{
    (void)tid;
    phase_copy *pc = (phase_copy *)arg;
    const size_t items = phase_items(pc);
    for (;;) { /* items in runs of pc->run: one shared counter update per run, not per plane */
        const size_t i0 = atomic_fetch_add_explicit(&pc->next, pc->run, memory_order_relaxed);
        if (i0 >= items) break;
        for (size_t i = i0; i < items && i < i0 + pc->run; i++) {
            if (pc->pairs) {
                if (pc->es == 8) phase_copy2_f64(pc, i);
                else phase_copy2_f32(pc, i);
            } else if (pc->es == 8) {
                phase_copy_f64(pc, i);
            } else {
                phase_copy_f32(pc, i);
            }
        }
    }
}

/* Cut each image's output into f_parts x v_parts so that batch * parts is a multiple of the
 * thread count: whole register-tile rows (MR output channels) or whole vectors, part r of R
 * taking grains [r*G/R, (r+1)*G/R); the pixels when there are more of them than output
 * channels (if they make enough parts), the channels otherwise. (More, smaller units taken
 * dynamically measured no better: 2-4% slower on r50.c2/c4 with 4 units a thread; nor did
 * blocking tiles so that a weight panel serves several from L2.) */
static void partition(dplan *p, int *nt)
{
    size_t a = (size_t)*nt, bt = p->n * p->groups;
    while (bt) { const size_t r = a % bt; a = bt; bt = r; } /* gcd(nt, N*G) */
    const size_t parts = (size_t)*nt / a;
    const size_t max_v = cdiv(p->nvec, 2), max_f = cdiv(p->f, p->mr);
    p->f_parts = p->v_parts = 1;
    if (parts > 1) {
        const int cut_pixels = p->f < p->plane ? max_v >= parts : max_f < parts;
        if (cut_pixels) p->v_parts = min_sz(parts, max_v);
        else p->f_parts = min_sz(parts, max_f);
    }
    p->units = p->n * p->groups * p->f_parts * p->v_parts;
    if ((size_t)*nt > p->units) *nt = (int)p->units;
}

/* Where the direct kernel reads: x in place (returns 1, *pitch = its row pitch) when `copy`
 * is 0, the convolution has stride 1, x has enough channels for the channel-inner loop, its
 * rows unit stride (or one column) and a pitch of at least Wo, not much wider than the padded
 * row; otherwise the padded phase-split copy (returns 0, *hh x *u planes, pitch u). */
static int direct_layout(const oxo_tensor4 *x, const oxo_conv2d_geom *g, size_t lanes, int copy,
                         size_t *pitch, size_t *hh, size_t *u)
{
    const ptrdiff_t p = x->h > 1 ? x->sh : (ptrdiff_t)(g->wo > x->w ? g->wo : x->w);
    const size_t widest = (x->w > g->wo ? x->w : g->wo) + 2 * (size_t)g->pw + lanes;
    if (!copy && g->sh == 1 && g->sw == 1 && x->c >= OXO_DIRECT_MIN_C_IN_PLACE && x->h > 0 && x->w > 0 &&
        (x->sw == 1 || x->w == 1) && p >= (ptrdiff_t)g->wo && p > 0 && (size_t)p <= widest) {
        *pitch = (size_t)p;
        *hh = *u = 0;
        return 1;
    }
    *hh = cdiv((g->ho - 1) * (size_t)g->sh + (g->kh - 1) * (size_t)g->dh + 1, (size_t)g->sh);
    *u = cdiv((g->wo - 1) * (size_t)g->sw + (g->kw - 1) * (size_t)g->dw + 1, (size_t)g->sw);
    *pitch = *u;
    return 0;
}

/* ---- the grid's last few lanes as dot products ------------------------------------------ *
 * When the grid ends a few lanes past a whole number of vectors (at most a quarter of one: the
 * 49th pixel of a 7x7 map), those pixels are not given a vector of their own (its FMAs would
 * be 1/16 used): each one's receptive field is gathered into a column of C*KH*KW values (0 in
 * the padding) before the tiles run, and each unit multiplies a panel of its filter rows with
 * those columns by the ISA's dot-product kernel right after its last tile of that panel
 * (tail_rows), while the panel's weights are still in L2.
 * (A run of grid lanes holds a run of pixels in raster order: consecutive in y.) Measured,
 * alternating calls, GFLOP/s with / without the dot products (a vector for the tail instead):
 * r50.c5.3x3 (512->512, 7x7) 1 thread 94.0 / 81.8, 2 threads 197.0 / 165.3; r50.c4.3x3
 * (14x14, 4 lanes) 1.00-1.04x. In the tiles' units rather than a pass of their own after
 * them (which read all of W again, from L3 where W is larger than L2: 9.4 MB for r50.c5.3x3),
 * GFLOP/s ratio fused / separate pass, alternating calls, both orders: r50.c5.3x3 2 threads
 * 1.015-1.017x, 1 thread 1.01x; 1024->1024 at 7x7 (W 37.7 MB) 2 threads 1.11-1.14x, 1 thread
 * 1.10x; where W fits in L2 (64-256 channels at 14x14 and 7x7) 0.97-1.04x, no steady sign. An
 * image cut by pixels has its parts take the panels in turn (each part's last tile runs every
 * panel); the last part taking all of them measured the same. */

/* How many of a grid's lanes go to dot products: the lanes past its whole vectors when they
 * are at most a quarter of one and at least one whole vector precedes them; else 0. */
static size_t dot_tail_lanes(size_t grid_lanes, size_t lanes)
{
    const size_t rest = grid_lanes % lanes;
    return grid_lanes >= lanes && 4 * rest <= lanes ? rest : 0;
}

/* Each tail pixel's receptive field as a row of p->tail_cols (image b's pixels at
 * b*tail_npix). Not oxo_pack_im2col (transposed): its per-row set-up (divisions, the
 * padding's run bounds) is made for blocks hundreds of columns wide and costs more than the
 * copy of 1-4 columns (r50.c5.3x3, alternating calls, this loop / the packer: 2 threads
 * 1.02-1.05x, 1 thread 1.00x). */
static void tail_gather(const dplan *p, const oxo_tensor4 *x, char *cols)
{
    const oxo_conv2d_geom *g = p->g;
    const size_t es = p->es, k = p->c * p->taps;
    for (size_t b = 0; b < p->n; b++) {
        for (size_t j = 0; j < p->tail_npix; j++) {
            const size_t ho = (p->tail_pix0 + j) / g->wo, wo = (p->tail_pix0 + j) % g->wo;
            char *col = cols + (b * p->tail_npix + j) * k * es;
            for (size_t c = 0, q = 0; c < p->c; c++) {
                for (size_t kh = 0; kh < g->kh; kh++) {
                    const ptrdiff_t r = (ptrdiff_t)ho * g->sh - g->ph + (ptrdiff_t)kh * g->dh;
                    for (size_t kw = 0; kw < g->kw; kw++, q++) {
                        const ptrdiff_t cc = (ptrdiff_t)wo * g->sw - g->pw + (ptrdiff_t)kw * g->dw;
                        char *dst = col + q * es;
                        if (r < 0 || r >= (ptrdiff_t)p->h || cc < 0 || cc >= (ptrdiff_t)p->w) {
                            memset(dst, 0, es);
                        } else {
                            const ptrdiff_t at = (ptrdiff_t)b * x->sn + (ptrdiff_t)c * x->sc + r * x->sh + cc * x->sw;
                            memcpy(dst, (const char *)x->data + at * (ptrdiff_t)es, es);
                        }
                    }
                }
            }
        }
    }
}

/* ---- the kernel vectorized along output channels ---------------------------------------- *
 * Where the ISA has one (oxo_direct_fv_tile), the direct algorithm runs it on the padded
 * stride-phase copy: tiles of 7 pixels of one output row x 32 output channels (f32 zmm),
 * weights packed per block of channels, taps in runs over consecutive columns so that one
 * broadcast of an input value serves a run's taps (a 3x3 run: 9 broadcasts and 6 weight
 * vectors for 42 FMAs, where the pixel-vectorized kernel spends 10 loads, 4 of them masked
 * and unaligned, on 24). Measured on an Intel Xeon core with two FMA units, alternating
 * calls, pixel kernel -> this one: 2 threads r50.c2.3x3 275 -> 335 GFLOP/s (1.22x),
 * r50.c3.3x3 1.12x, incep3a.3x3 1.12x, the r50 stem 1.27x; 1 thread 1.21x, 1.17x, 1.14x,
 * 1.21x; batch 8 1.11-1.18x; float64 1.18-1.30x. Packing W costs a pass over
 * F*C*taps weights (ks->transpose_rows: 16 x 16 register transposes), which the kernel then
 * reuses N*Ho*Wo times, and the copy one over x: it runs from OXO_FV_MIN_PIXELS output
 * pixels per call, more where W exceeds OXO_FV_W_BYTES (its pass then comes from DRAM), and
 * calls of OXO_FV_MIN_FLOPS, with rows of at least a tile's pixels and blocks of channels at
 * least half used. Alternating calls, 2 / 1 threads, pixel kernel -> this one: r50.c4.3x3
 * (196 pixels, 590K weights packed in 199 us on one thread, 279 us with a scalar copy)
 * 1.11x / 1.12x, 128->128 at 14x14 1.09x / 1.18x, r50.c4.3x3 at batch 8 1.22x / 1.24x,
 * 512->512 at 7x7 batch 4 1.06x / 1.07x; 256->256 at 12x12 (144 pixels) 0.78x / 1.03x,
 * at 10x10 0.87x / 0.96x, 512->512 at 14x14 (2.4M weights) 0.89x / 0.91x; incep3a.5x5, 20
 * MFLOP: 0.72x on 2 threads. Once a unit packs its block into its thread's scratch (see
 * run_fv), fewer pixels pay in float32 where the taps run along whole kernel rows and a
 * block's packed weights fit in about half of L2, from OXO_FV_SMALL_MAP_FLOPS (alternating
 * calls, 2 / 1 threads, pixel kernel -> this one): r50.c5.3x3 (49 pixels) 1.08x / 1.15x,
 * 384->384 at 7x7 1.01x / 1.14x, 512->512 at 14x14 1.13x / 1.20x, r50.c5.3x3 at batch 4
 * 1.02x / 1.16x, 256->256 at 10x10 and 12x12 1.03-1.04x / 1.05-1.11x; kept out:
 * 256->256 at 7x7 (58 MFLOP) 0.95x on 2 threads, 1024->1024 at 7x7 (1.2 MB a block)
 * 0.89-0.92x, 512->512 stride 2 to 7x7 (runs of 1 then, 0.71-0.74x; with the alternating
 * runs of 2 and 1, stop 26, still 0.71-0.75x), and float64 (512->512 at 14x14 0.91x on 1
 * thread). */
enum { OXO_FV_MIN_PIXELS = 192 };
#define OXO_FV_MIN_FLOPS 5e7
#define OXO_FV_W_BYTES (4.0 * 1024 * 1024)
#define OXO_FV_SMALL_MAP_FLOPS 1e8
#define OXO_FV_SMALL_MAP_BLOCK_BYTES (640.0 * 1024)

/* Only where 512-bit FMAs run at full width (oxo_probe_full_width: two 512-bit FMA units a
 * core, as on Intel's server cores). On Zen 4, whose 512-bit FMAs take two 256-bit passes,
 * the pixel kernel is as fast or faster on every layer measured (alternating calls, pixel
 * kernel -> this one, 2 / 1 threads): r50.c2.3x3 0.99x / 1.02x, r50.c3.3x3 0.96x / 1.00x,
 * r50.c4.3x3 0.97x / 0.98x, r50.c5.3x3 0.83x / 0.88x, incep3a.3x3 0.95x / 1.01x, the stem
 * 1.02x / 1.04x, float64 r50.c2.3x3 0.71x on 1 thread. */
static atomic_int allow_fv = 1; /* tests: 0 never, 1 by the rule, 2 wherever the ISA has it,
                                   3 by the rule as if 512-bit FMAs were full width */
static atomic_size_t fv_runs = 0;
void oxo_conv2d_allow_fv(int mode) { atomic_store(&allow_fv, mode); }
size_t oxo_conv2d_fv_runs(void) { return atomic_load(&fv_runs); }

int oxo_conv2d_fv_width_ok(void)
{
    const oxo_kernels *k32 = oxo_kernels_for(oxo_isa_active(), OXO_F32);
    return k32 != NULL && k32->direct_fv != NULL && oxo_probe_full_width(k32);
}

/* x and f: one group's (x->c and f per group), `groups` of them */
static int fv_applies(const oxo_kernels *ks, const oxo_tensor4 *x, const oxo_conv2d_geom *g, size_t f, size_t groups)
{
    const int mode = atomic_load_explicit(&allow_fv, memory_order_relaxed);
    if (!ks->direct_fv || (mode != 1 && mode != 3)) return ks->direct_fv && mode == 2;
    if (mode == 1 && !oxo_conv2d_fv_width_ok()) return 0;
    const size_t block = ks->direct_fv_nv * ks->lanes;
    /* groups of fewer filters than a block: the pixel kernel (float32, C = F = 16 at 56x56,
     * 4 images standing in for 4 groups: 0.68x on this kernel; 32 filters: 1.17-1.39x). In
     * float64 a block is 16: groups of 16 filters ran 1.00-1.21x the pixel kernel (64 -> 64
     * in 4 groups at 56x56, 128 -> 128 in 8 and 256 -> 256 in 16 at 28x28, 1 and 2 threads),
     * groups of 32 1.10-1.33x. The size terms below are one group's weights and all groups'
     * pixels. */
    if (groups > 1 && f < block) return 0;
    const double pixels = (double)x->n * (double)groups * (double)(g->ho * g->wo);
    const double weights = (double)f * (double)(x->c * g->kh * g->kw);
    const double flops = 2.0 * pixels * weights, wbytes = weights * 64.0 / (double)ks->lanes; /* zmm */
    if (flops < OXO_FV_MIN_FLOPS || g->wo < ks->direct_fv_np || 2 * f < cdiv(f, block) * block) return 0;
    if (pixels >= OXO_FV_MIN_PIXELS * (wbytes > OXO_FV_W_BYTES ? wbytes / OXO_FV_W_BYTES : 1.0)) return 1;
    /* fewer pixels (float32): runs as long as the kernel's rows (stride and dilation 1), a
     * call of OXO_FV_SMALL_MAP_FLOPS, and one block's packed weights in about half of L2 */
    const double block_bytes = (double)(x->c * g->kh * g->kw) * 64.0 * (double)ks->direct_fv_nv;
    return ks->lanes == 16 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
           flops >= OXO_FV_SMALL_MAP_FLOPS && block_bytes <= OXO_FV_SMALL_MAP_BLOCK_BYTES;
}

typedef struct fvrun {
    const dplan *p;
    size_t block, blocks, k;  /* channels per block, blocks of a group's F, a group's C*taps */
    size_t gblocks;           /* blocks of all groups: block J is block J % blocks of group J / blocks */
    size_t runs, run, run2;   /* the taps in runs of `run` consecutive columns (alternately
                               * `run` and `run2` where run2 > 0) */
    const size_t *order;      /* [taps]: the taps (kh*KW + kw) in run order */
    const ptrdiff_t *run_off; /* [runs]: the input offset of each run's first tap */
    char *wp, *bp;            /* packed weights [slots][k][block], bias [slots][block] or NULL:
                                 a slot per block, or with pack_in_unit per thread */
    int by_rows;              /* taps in W's order and W's columns contiguous: ks->transpose_rows */
    size_t r_parts, units;
    int pack_in_unit;         /* a unit packs its block's weights first, into its thread's slot,
                               * unless the slot holds them already (held[tid]); the units are
                               * then in block order (block, image, rows), else (image, block,
                               * rows) */
    size_t *held;             /* [threads]: the block in each thread's slot, or SIZE_MAX */
    atomic_size_t next_pack, next;
} fvrun;

/* Packing in units of (block j, OXO_FV_PACK_C channels): W's rows of the block read
 * together (their cache lines serve 16 taps in turn), the packed block written in order. */
enum { OXO_FV_PACK_C = 16, OXO_FV_UNITS_PER_THREAD = 2 };

/* Where block j's packed weights and bias go: block j's slot, or with pack_in_unit the
 * calling thread's, reused by its every unit (it stays in L2: writing each block to its own
 * place, r50.c4.3x3's 2.4 MB, took the lines from L3 on every call). */
static size_t fv_slot(const fvrun *r, size_t j, int tid) { return r->pack_in_unit ? (size_t)tid : j; }

/* Block J's first output channel (of all F) and its number of channels. */
static size_t fv_first_row(const fvrun *r, size_t J, size_t *nf)
{
    const size_t j = J % r->blocks;
    *nf = min_sz(r->block, r->p->f - j * r->block);
    return J / r->blocks * r->p->f + j * r->block;
}

static char *fv_wblock(const fvrun *r, size_t j, int tid)
{
    return r->wp + fv_slot(r, j, tid) * r->k * r->block * r->p->es;
}

static char *fv_bblock(const fvrun *r, size_t j, int tid)
{
    return r->bp ? r->bp + fv_slot(r, j, tid) * r->block * r->p->es : NULL;
}

#define OXO_DEFINE_FV_PACK(T, NAME)                                                             \
    static void NAME(const fvrun *r, size_t u, int tid)                                         \
    {                                                                                           \
        const dplan *p = r->p;                                                                  \
        const size_t cchunks = cdiv(p->c, OXO_FV_PACK_C), j = u / cchunks;                      \
        const size_t c0 = u % cchunks * OXO_FV_PACK_C, c1 = min_sz(c0 + OXO_FV_PACK_C, p->c);   \
        size_t nf;                                                                              \
        const size_t f0 = fv_first_row(r, j, &nf);                                              \
        const T *w = (const T *)p->wt + (ptrdiff_t)f0 * p->rs_w;                                \
        T *dst = (T *)fv_wblock(r, j, tid) + c0 * p->taps * r->block;                           \
        for (size_t c = c0; c < c1; c++) {                                                      \
            for (size_t s = 0; s < p->taps; s++, dst += r->block) {                             \
                const ptrdiff_t col = (ptrdiff_t)(c * p->taps + r->order[s]) * p->cs_w;         \
                size_t i = 0;                                                                   \
                for (; i < nf; i++) dst[i] = w[(ptrdiff_t)i * p->rs_w + col];                   \
                for (; i < r->block; i++) dst[i] = 0;                                           \
            }                                                                                   \
        }                                                                                       \
        if (r->bp && c0 == 0) {                                                                 \
            T *bias = (T *)fv_bblock(r, j, tid);                                                \
            for (size_t i = 0; i < r->block; i++) bias[i] = i < nf ? ((const T *)p->bias)[f0 + i] : 0; \
        }                                                                                       \
    }
OXO_DEFINE_FV_PACK(float, fv_pack_f32)
OXO_DEFINE_FV_PACK(double, fv_pack_f64)

/* The same unit where the packed block is W's block transposed (r->by_rows): the ISA's
 * transpose of `lanes` rows at a time, the bias as above. r50.c4.3x3 (590K weights), one
 * thread: 279 -> 199 us. */
static void fv_pack_by_rows(const fvrun *r, size_t u, int tid)
{
    const dplan *p = r->p;
    const size_t cchunks = cdiv(p->c, OXO_FV_PACK_C), j = u / cchunks, lanes = p->lanes, es = p->es;
    const size_t c0 = u % cchunks * OXO_FV_PACK_C, c1 = min_sz(c0 + OXO_FV_PACK_C, p->c);
    size_t nf;
    const size_t f0 = fv_first_row(r, j, &nf), k0 = c0 * p->taps;
    for (size_t v = 0; v * lanes < r->block; v++) {
        const size_t rows = nf > v * lanes ? min_sz(nf - v * lanes, lanes) : 0;
        const char *src = (const char *)p->wt + (rows ? ((ptrdiff_t)(f0 + v * lanes) * p->rs_w + (ptrdiff_t)k0) * (ptrdiff_t)es : 0);
        char *dst = fv_wblock(r, j, tid) + (k0 * r->block + v * lanes) * es;
        p->ks->transpose_rows(src, p->rs_w, rows, (c1 - c0) * p->taps, dst, r->block);
    }
    if (r->bp && c0 == 0) {
        char *bias = fv_bblock(r, j, tid);
        memset(bias, 0, r->block * es);
        memcpy(bias, (const char *)p->bias + f0 * es, nf * es);
    }
}

static void fv_pack(const fvrun *r, size_t u, int tid)
{
    if (r->by_rows) fv_pack_by_rows(r, u, tid);
    else if (r->p->es == 8) fv_pack_f64(r, u, tid);
    else fv_pack_f32(r, u, tid);
}

static void fv_pack_thread(void *arg, int tid)
{
    fvrun *r = (fvrun *)arg;
    const size_t units = r->gblocks * cdiv(r->p->c, OXO_FV_PACK_C);
    for (;;) {
        const size_t u = atomic_fetch_add_explicit(&r->next_pack, 1, memory_order_relaxed);
        if (u >= units) break;
        fv_pack(r, u, tid);
    }
}

/* Unit u: image b, block j (of all groups' blocks), output rows [h0, h1); see pack_in_unit for
 * the order. A thread takes its units in increasing order, so it packs a block at most once. */
static void fv_unit(const fvrun *r, size_t u, int tid)
{
    const dplan *p = r->p;
    const oxo_conv2d_geom *g = p->g;
    const size_t rr = u % r->r_parts, v = u / r->r_parts; /* v: (image, block) or (block, image) */
    const size_t b = r->pack_in_unit ? v % p->n : v / r->gblocks;
    const size_t j = r->pack_in_unit ? v / p->n : v % r->gblocks;
    size_t nf;
    const size_t f0 = fv_first_row(r, j, &nf), q = j / r->blocks;
    const size_t h0 = g->ho * rr / r->r_parts, h1 = g->ho * (rr + 1) / r->r_parts;
    const size_t es = p->es, np = p->ks->direct_fv_np;
    if (r->pack_in_unit && r->held[tid] != j) {
        const size_t cchunks = cdiv(p->c, OXO_FV_PACK_C);
        for (size_t cc = 0; cc < cchunks; cc++) fv_pack(r, j * cchunks + cc, tid);
        r->held[tid] = j;
    }
    oxo_direct_fv_tile t = {
        .m = nf, .c = p->c, .runs = r->runs, .run = r->run, .run2 = r->run2,
        .w = fv_wblock(r, j, tid), .cs_x = p->src_c, .run_off = r->run_off,
        .bias = fv_bblock(r, j, tid), .act = p->act, .rs_y = (ptrdiff_t)p->plane,
    };
    for (size_t ho = h0; ho < h1; ho++) {
        for (size_t wo = 0; wo < g->wo; wo += np) {
            t.np = min_sz(np, g->wo - wo);
            t.x = p->src + ((ptrdiff_t)b * p->src_n + (ptrdiff_t)(q * p->c) * p->src_c + (ptrdiff_t)(ho * p->pitch + wo)) * (ptrdiff_t)es;
            t.y = p->y + ((b * p->groups * p->f + f0) * p->plane + ho * g->wo + wo) * es;
            p->ks->direct_fv(&t);
        }
    }
}

static void fv_thread(void *arg, int tid)
{
    fvrun *r = (fvrun *)arg;
    for (;;) {
        const size_t u = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
        if (u >= r->units) break;
        fv_unit(r, u, tid);
    }
}

/* The taps in run order: for each kernel row, the columns of each stride phase (kw*dw % sw)
 * in increasing kw, cut where two taps do not read neighbouring columns. `order` gets the
 * taps (kh*KW + kw), `off` their offsets in the copy, `run_off` each run's first offset;
 * returns the number of runs and sets *run and *run2, trying in turn: runs of 7, 5 or 3
 * taps (*run2 = 0; a 3x3 at stride 1: 3), runs that alternate between 4 and 3 or 3 and 2
 * taps (a 7x7 and a 5x5 at stride 2: a kernel row's even columns, then its odd ones), runs
 * of 2, runs of 2 and 1 (a 3x3 at stride 2), runs of 1. */
static size_t fv_runs_of(const oxo_conv2d_geom *g, const ptrdiff_t *tap_off, size_t *order, ptrdiff_t *off,
                         ptrdiff_t *run_off, size_t *run, size_t *run2)
{
    size_t n = 0;
    for (size_t kh = 0; kh < g->kh; kh++) {
        for (size_t qw = 0; qw < (size_t)g->sw; qw++) {
            for (size_t kw = 0; kw < g->kw; kw++) {
                if ((size_t)((ptrdiff_t)kw * g->dw % g->sw) != qw) continue;
                order[n] = kh * g->kw + kw;
                off[n] = tap_off[order[n]];
                n++;
            }
        }
    }
    /* (R, R2): 7, 5, 3, the pairs, 2, 1 (a pair's mean run is longer than 2, but (2, 1)'s) */
    static const size_t lengths[][2] = {{7, 0}, {5, 0}, {3, 0}, {4, 3}, {3, 2}, {2, 0}, {2, 1}, {1, 0}};
    for (size_t l = 0; l < sizeof lengths / sizeof *lengths; l++) {
        const size_t R = lengths[l][0], R2 = lengths[l][1];
        size_t s = 0, runs = 0;
        for (; s < n; runs++) { /* run `runs` takes taps [s, s + len): all joined but the first */
            const size_t len = R2 && runs % 2 ? R2 : R;
            if (s + len > n) break;
            size_t i = 1;
            while (i < len && off[s + i] == off[s + i - 1] + 1 && order[s + i] / g->kw == order[s + i - 1] / g->kw) i++;
            if (i < len) break;
            run_off[runs] = off[s];
            s += len;
        }
        if (s == n && (!R2 || runs % 2 == 0)) {
            *run = R, *run2 = R2;
            return runs;
        }
    }
    return 0; /* not reached: runs of 1 always fit */
}

/* Packs the weights, then runs the tiles. */
static int run_fv(const dplan *p, int nt, const size_t *order, size_t runs, size_t run, size_t run2,
                  const ptrdiff_t *run_off)
{
    fvrun r;
    r.p = p;
    r.order = order;
    r.run = run;
    r.run2 = run2;
    r.runs = runs;
    r.run_off = run_off;
    r.block = p->ks->direct_fv_nv * p->lanes;
    r.blocks = cdiv(p->f, r.block);
    r.gblocks = p->groups * r.blocks;
    r.k = p->c * p->taps;
    r.by_rows = p->ks->transpose_rows && p->cs_w == 1;
    for (size_t s = 0; s < p->taps && r.by_rows; s++) r.by_rows = order[s] == s;
    /* units of (image, block, rows): about OXO_FV_UNITS_PER_THREAD a thread, taken
     * dynamically (a worker that wakes late leaves its share to the others). 2 a thread
     * against 4, alternating calls, 2 threads: r50.c3.3x3 1.05-1.08x, incep3a.3x3 1.05x,
     * r50.c2.3x3 1.01-1.03x, the stem 1.00x; 8 a thread: 0.92-1.05x. */
    const size_t want = (size_t)nt * OXO_FV_UNITS_PER_THREAD, have = p->n * r.gblocks;
    r.r_parts = nt > 1 && have < want ? min_sz(cdiv(want, have), p->g->ho) : 1;
    r.units = have * r.r_parts;
    /* The units pack their blocks' weights themselves, right before their tiles read them,
     * into their thread's one block of scratch (see fv_unit), and take the blocks in order:
     * no separate pass, and a packed block (294 KiB for r50.c4.3x3) and the lines it is
     * written to stay in the L2 of the core that reads it, for all the block's images and
     * rows. A thread packs each block it runs (at most all of W per thread, where several
     * threads share a block's images or rows). First for one image, each unit a whole block:
     * alternating calls, 2 / 1 threads, packing pass -> in the unit (each block to its own
     * place): r50.c4.3x3 1.10-1.11x / 1.03-1.04x, r50.c3.3x3 1.03-1.04x / 1.00x, incep3a.3x3
     * 1.01-1.03x / 0.99x, 128->128 at 14x14 0.95-0.97x on 2 threads; then into the thread's
     * block instead (the lines of a block's own place came from L3: r50.c4.3x3's packing
     * took 15% of its time on one thread, 8% now): r50.c4.3x3 1.08x / 1.08-1.09x, r50.c3.3x3
     * 1.00x / 1.02x, incep3a.3x3 1.02x / 1.01x, 128->128, 160->160 and 192->192 at 14x14
     * 1.05-1.08x / 1.05-1.10x against the pass. Then everywhere on several threads, and on
     * one where W exceeds half of L2 (its packed blocks, packed in a pass, then came from L3
     * for every image): an Intel core with two FMA units, alternating calls in one process,
     * the same bits, pass -> in the unit: 2 threads, batch 1, where blocks are split by rows
     * (fewer blocks than 2 a thread): r50.c2.3x3 1.03x, the stem 1.01x, 256->64 at 28x28
     * 1.05x, 512->64 at 14x14 1.19x, 512->96 at 28x28 1.03x, 1024->64 at 14x14 1.03x; batch 8:
     * r50.c2.3x3 1.04x, c3 1.02x, c4 1.03x, c5 1.22x, incep3a.3x3 1.02x, the stem 1.04x (batch
     * 3: c2 1.04x, c4 1.05x, c5 1.24x); 1 thread, batch 8: c4 1.04x, c5 1.28x, but c3 0.96x,
     * the stem 0.98x, c2 and incep3a.3x3 1.00x (W within half of L2: the pass stays there). */
    const double w_bytes = (double)r.gblocks * (double)r.k * (double)r.block * (double)p->es;
    r.pack_in_unit = nt > 1 || p->n == 1 || w_bytes > 0.5 * (double)oxo_l2_bytes();
    /* Not kept: each thread claiming its next unit ahead, and the tiles fetching that unit's
     * raw W into L2 on the way (a prefetch per (channel, run) step in the kernel's loop,
     * behind a count). Measured against the same build with the count at 0 it gave
     * r50.c5.3x3 1.02-1.11x, but against the build before it (alternating processes, 2
     * threads) the kernel's changed loop cost r50.c2.3x3 0.77-0.88x, c3 0.78-0.85x, c4
     * 0.84-0.89x, incep3a.3x3 0.79-0.84x. */
    /* the packed weights: every block's, or one block (and its bias) a thread */
    const size_t slots = r.pack_in_unit ? (size_t)nt : r.gblocks;
    if (r.k && slots > (size_t)-1 / r.k / r.block / p->es / 2) return OXO_ENOMEM;
    const size_t wp_bytes = slots * (r.k + (p->bias ? 1 : 0)) * r.block * p->es;
    r.wp = oxo_scratch_alloc(wp_bytes + (size_t)nt * sizeof(size_t));
    if (!r.wp) return OXO_ENOMEM;
    r.bp = p->bias ? r.wp + slots * r.k * r.block * p->es : NULL;
    r.held = (size_t *)(r.wp + wp_bytes);
    for (int t = 0; t < nt; t++) r.held[t] = SIZE_MAX;
    atomic_init(&r.next_pack, 0);
    /* all threads, even for a few units: a worker left idle now falls asleep, and on some
     * machines wakes too late for the tiles (r50.c3.3x3, 2 threads: the tiles took as long
     * as on one in half the calls) */
    const size_t pack_units = r.gblocks * cdiv(p->c, OXO_FV_PACK_C);
    if (!r.pack_in_unit) oxo_parallel(pack_units < (size_t)nt ? (int)pack_units : nt, fv_pack_thread, &r);

    atomic_init(&r.next, 0);
    oxo_parallel(r.units < (size_t)nt ? (int)r.units : nt, fv_thread, &r);
    oxo_scratch_free(r.wp);
    atomic_fetch_add_explicit(&fv_runs, 1, memory_order_relaxed);
    return OXO_OK;
}

int oxo_conv2d_direct_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                           ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                           const void *bias, int act, void *y, int n_threads)
{
    return oxo_conv2d_direct_grouped_nchw(dt, x, w, rs_w, cs_w, f, geom, 1, bias, act, y, n_threads);
}

int oxo_conv2d_direct_grouped_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                                   ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom, size_t groups,
                                   const void *bias, int act, void *y, int n_threads)
{
    const oxo_conv2d_geom *g = geom;
    if (x->n == 0 || f == 0 || g->ho == 0 || g->wo == 0) return OXO_OK;
    if (groups == 0 || x->c % groups || f % groups) return OXO_EINVAL;
    /* one group's input: what the layout and the kernel see (the copy takes all of x) */
    oxo_tensor4 xg = *x;
    xg.c = x->c / groups;
    if (!oxo_conv2d_geom_valid(g)) return OXO_EINVAL;
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), dt);
    if (!ks || !ks->direct) return OXO_EINVAL;

    dplan p;
    memset(&p, 0, sizeof p);
    p.ks = ks;
    p.g = g;
    p.es = elsize(dt);
    p.lanes = ks->lanes;
    p.mr = ks->direct_mr;
    p.nv = ks->direct_nv;
    p.n = x->n, p.c = xg.c, p.h = x->h, p.w = x->w, p.f = f / groups;
    p.groups = groups;
    p.taps = g->kh * g->kw;
    p.wt = (const char *)w;
    p.rs_w = rs_w, p.cs_w = cs_w;
    p.bias = (const char *)bias;
    p.act = act;
    p.y = (char *)y;
    p.plane = g->ho * g->wo;

    char *staging = NULL;
    size_t hh, u;
    const int fv = fv_applies(ks, &xg, g, f / groups, groups);
    p.in_place = direct_layout(&xg, g, p.lanes, fv, &p.pitch, &hh, &u);
    p.taps_inner = !p.in_place && p.taps >= OXO_DIRECT_MIN_TAPS_INNER;
    /* the copy's phases, those the taps read (see phase_copy): ph.qh[idx[kh]] is row kh's,
     * and ph.qw[idx[KH + kw]] column kw's */
    phases ph = {NULL, NULL, 0, 0};
    ptrdiff_t *sel = NULL;
    size_t *idx = NULL;
    if (p.in_place) {
        p.src = (const char *)x->data;
        p.src_n = x->sn;
        p.src_c = x->sc;
    } else {
        sel = oxo_aligned_alloc(2 * (g->kh + g->kw) * sizeof *sel);
        if (!sel) return OXO_ENOMEM;
        idx = (size_t *)(sel + g->kh + g->kw);
        ph.qh = sel;
        ph.qw = sel + g->kh;
        for (size_t kh = 0; kh < g->kh; kh++) idx[kh] = oxo_phase_index(ph.qh, &ph.nh, ((ptrdiff_t)kh * g->dh) % g->sh);
        for (size_t kw = 0; kw < g->kw; kw++) idx[g->kh + kw] = oxo_phase_index(ph.qw, &ph.nw, ((ptrdiff_t)kw * g->dw) % g->sw);
        const double chan = (double)(ph.nh * ph.nw) * (double)hh * (double)u;
        if (chan * (double)x->n * (double)x->c * (double)p.es > (double)PTRDIFF_MAX / 2) {
            oxo_aligned_free(sel);
            return OXO_ENOMEM;
        }
        p.src_c = (ptrdiff_t)(ph.nh * ph.nw * hh * u);
        p.src_n = p.src_c * (ptrdiff_t)x->c;
        staging = oxo_scratch_alloc((size_t)p.src_n * x->n * p.es);
        if (!staging) {
            oxo_aligned_free(sel);
            return OXO_ENOMEM;
        }
        p.src = staging;
    }
    p.grid_lanes = g->ho * p.pitch;
    p.nvec = cdiv(p.grid_lanes, p.lanes);
    if (!fv && groups == 1 && dot_tail_lanes(p.grid_lanes, p.lanes) && cs_w == 1 && ks->dot) {
        const size_t full = p.grid_lanes / p.lanes;
        for (size_t j = full * p.lanes; j < p.grid_lanes; j++) {
            if (j % p.pitch >= g->wo) continue; /* nobody's lane */
            if (!p.tail_npix) p.tail_pix0 = j / p.pitch * g->wo + j % p.pitch;
            p.tail_npix++;
        }
        p.nvec = full;
        p.grid_lanes = full * p.lanes; /* the vectors' tiles end there */
    }
    p.segs = p.pitch == g->wo ? 1 : (p.lanes - 1) / p.pitch + 2;

    ptrdiff_t *tap_off = oxo_aligned_alloc(p.taps * sizeof *tap_off);
    if (!tap_off) {
        oxo_aligned_free(sel);
        oxo_scratch_free(staging);
        return OXO_ENOMEM;
    }
    for (size_t kh = 0, q = 0; kh < g->kh; kh++) {
        for (size_t kw = 0; kw < g->kw; kw++, q++) {
            const ptrdiff_t rh = (ptrdiff_t)kh * g->dh, rw = (ptrdiff_t)kw * g->dw;
            if (p.in_place) {
                tap_off[q] = (rh - g->ph) * (ptrdiff_t)p.pitch + (rw - g->pw);
            } else {
                const ptrdiff_t phase = (ptrdiff_t)(idx[kh] * ph.nw + idx[g->kh + kw]);
                tap_off[q] = phase * (ptrdiff_t)(hh * u) + (rh / g->sh) * (ptrdiff_t)u + rw / g->sw;
            }
        }
    }
    p.tap_off = tap_off;

    /* Channels per block: the block's input rows under one tile and its weights in L1. Fixed
     * by the shape and the kernel set, never by the thread count (it sets the sum order). */
    {
        const size_t tile = p.nv * p.lanes;
        const size_t rows = (cdiv(tile, p.pitch) + 1) * (p.in_place ? 1 : ph.nh * ph.nw) + (g->kh - 1) * (size_t)g->dh;
        const size_t width = min_sz(p.pitch, tile + (g->kw - 1) * (size_t)g->dw);
        const size_t per_channel = (rows * width + p.mr * p.taps) * p.es;
        p.cb = OXO_DIRECT_L1_BYTES / per_channel;
        if (p.cb < 1) p.cb = 1;
    }

    /* Threads: as many as asked, but none with less than a minimum of work. */
    const double flops = 2.0 * (double)x->n * (double)f * (double)p.plane * (double)(p.c * p.taps + 1);
    int nt = oxo_resolve_threads(n_threads);
    const double cap = flops / OXO_DIRECT_MIN_FLOPS_PER_THREAD;
    if (cap < nt) nt = cap < 1 ? 1 : (int)cap;

    if (staging) {
        phase_copy pc;
        pc.x = x;
        pc.g = g;
        pc.ph = &ph;
        pc.es = p.es;
        pc.hh = hh;
        pc.u = u;
        pc.chan = (size_t)p.src_c;
        pc.dst = staging;
        pc.pairs = g->sw == 2 && ph.nw == 2 && x->sw == 1;
        pc.row2 = ks->phase_row2;
        atomic_init(&pc.next, 0);
        const size_t items = phase_items(&pc);
        /* about 8 runs a thread: planes of a few pixels each (a 7x7 map in 4 phases) made the
         * counter's cache line bounce between the cores for every one (512->64 3x3 stride 2
         * on 7x7, 2 threads: the copy took longer than the convolution) */
        pc.run = items / (8 * (size_t)nt) + 1;
        /* a copy of under OXO_DIRECT_COPY_ALONE bytes takes less than a second thread's wake
         * (16->32 5x5 at 28x28, 64 KiB: 3 us on 1 thread, 14 us on 2) */
        const int copiers = (size_t)p.src_n * x->n * p.es < OXO_DIRECT_COPY_ALONE ? 1 : nt;
        oxo_parallel(items < (size_t)copiers ? (int)(items ? items : 1) : copiers, phase_copy_thread, &pc);
    }
    oxo_aligned_free(sel);

    if (fv) {
        size_t *order = oxo_aligned_alloc(p.taps * (sizeof(size_t) + 2 * sizeof(ptrdiff_t)));
        int rc = OXO_ENOMEM;
        if (order) {
            ptrdiff_t *off = (ptrdiff_t *)(order + p.taps), *run_off = off + p.taps;
            size_t run = 1, run2 = 0;
            const size_t runs = fv_runs_of(g, tap_off, order, off, run_off, &run, &run2);
            rc = run_fv(&p, nt, order, runs, run, run2, run_off);
        }
        oxo_aligned_free(order);
        oxo_aligned_free(tap_off);
        oxo_scratch_free(staging);
        return rc;
    }
    partition(&p, &nt);
    /* per thread: tap masks, row and column bits, store masks, then (64-byte aligned) store
     * offsets */
    const size_t masks = (p.taps * p.nv + g->kh + g->kw + p.nv * p.segs) * sizeof(uint32_t);
    p.scratch_per_thread = cdiv(masks, 64) * 64 + cdiv(p.nv * p.segs * sizeof(ptrdiff_t), 64) * 64;
    char *scratch = oxo_aligned_alloc(p.scratch_per_thread * (size_t)nt);
    /* the tail pixels' receptive fields, [image][pixel][C*taps] (see tail_gather) */
    const size_t k = p.c * p.taps;
    char *cols = !p.tail_npix || (k && p.n * p.tail_npix > (size_t)-1 / k / p.es)
                     ? NULL : oxo_aligned_alloc(p.n * p.tail_npix * k * p.es);
    if (!scratch || (p.tail_npix && !cols)) {
        oxo_aligned_free(cols);
        oxo_aligned_free(scratch);
        oxo_aligned_free(tap_off);
        oxo_scratch_free(staging);
        return OXO_ENOMEM;
    }
    if (cols) {
        tail_gather(&p, x, cols);
        p.tail_cols = cols;
    }
    drun r;
    r.p = &p;
    r.scratch = scratch;
    atomic_init(&r.next, 0);
    oxo_parallel(nt, direct_thread, &r);
    oxo_aligned_free(cols);
    oxo_aligned_free(scratch);
    oxo_aligned_free(tap_off);
    oxo_scratch_free(staging);
    return OXO_OK;
}

/* ---- auto ------------------------------------------------------------------------------- *
 * Which algorithm is faster, from the lanes each keeps busy (measured on the KxK suite and a
 * sweep of C, F, maps 2x2-224x224, kernels 1-7, strides 1-2, dilations 1-2; Zen 4, 1 and 2
 * threads): at equal lane use the direct kernel is 1.1-1.2x faster (no packing, the whole
 * reduction in registers) and it wins; it loses where its grid of output rows leaves most
 * lanes idle (maps of a few pixels, often strided) while the GEMM engine sends a narrow pixel
 * tail to its dot-product kernel. im2col packs every element of its B matrix for F rows of
 * FMAs: with few filters packing weighs like ~16 more rows (strided layers with F = 8 or 32
 * ran 1.3-3.5x faster direct). */
int oxo_conv2d_prefer_direct(oxo_dtype dt, const oxo_tensor4 *x, size_t f, const oxo_conv2d_geom *g)
{
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), dt);
    if (!ks || !ks->direct || g->ho == 0 || g->wo == 0) return 1;
    const size_t lanes = ks->lanes, pixels = g->ho * g->wo;
    if (fv_applies(ks, x, g, f, 1)) { /* lanes used: of its blocks of channels, of its rows' tiles */
        const size_t block = ks->direct_fv_nv * lanes, np = ks->direct_fv_np;
        const double used = (double)f / (double)(cdiv(f, block) * block) *
                            (double)g->wo / (double)(cdiv(g->wo, np) * np);
        return 1.15 * used >= (double)f / (double)(f + 16);
    }
    size_t pitch, hh, u;
    direct_layout(x, g, lanes, 0, &pitch, &hh, &u);
    const size_t grid = g->ho * pitch;
    /* a short tail of the grid goes to dot products (see tail_gather): about its own lanes' cost */
    const size_t spent = dot_tail_lanes(grid, lanes) ? grid : cdiv(grid, lanes) * lanes;
    const double direct = (double)pixels / (double)spent;
    const size_t tail = pixels % lanes;
    const double lanes_used = (tail == 0 || 2 * tail <= lanes) ? 1.0
                              : (double)pixels / (double)(cdiv(pixels, lanes) * lanes);
    const double gemm = lanes_used * (double)f / (double)(f + 16);
    return 1.15 * direct >= gemm;
}
