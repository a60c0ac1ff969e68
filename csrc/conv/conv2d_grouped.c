/* conv2d_grouped.c: grouped KxK convolutions and the gradients of conv2d, through im2col
 * blocks and the GEMM engine.
 *
 * Per image n and group q (Cg = C/groups channels in, Fg = F/groups out, K' = Cg*KH*KW,
 * P = Ho*Wo), with col[n, q] the (K' x P) im2col matrix of x[n, q] (never materialized):
 *   forward:  y[n, q]   (Fg x P)  = act(W_q (Fg x K') @ col[n, q] + bias_q)
 *   grad_w:   dW_q      (Fg x K') = sum_n dy[n, q] (Fg x P) @ col[n, q]^T (P x K')
 *   grad_x:   dcol      (K' x P)  = W_q^T (K' x Fg) @ dy[n, q] (Fg x P), then col2im: every
 *             entry of dcol added to the input pixel it was read from.
 * col and col^T come block by block from the im2col packer (csrc/gemm/pack.c); groups offset
 * its input by q*Cg channels. col2im gives each thread whole channels of dx, and adds the
 * taps in a fixed order: the result does not depend on the thread count.
 */
#include <stdatomic.h>
#include <string.h>

#include "../gemm/pack.h"
#include "../onexone.h"
#include "../threads.h"
#include "pixels.h"

/* im2col of group q of image n: the packer sees image index n*groups + q */
typedef struct grouped_im2col {
    oxo_im2col base; /* x with the channels of one group */
    size_t groups;
    ptrdiff_t group_stride; /* Cg * x.sc */
    size_t es;              /* element size */
    oxo_pack_b_fn im2col;   /* the dtype's im2col packer */
    int transpose;          /* 1: pack col^T (rows: pixels, columns: c, kh, kw) */
} grouped_im2col;

static void pack_grouped(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,
                         void *dst, size_t ld, int transposed)
{
    const grouped_im2col *g = (const grouped_im2col *)ctx;
    const size_t n = b / g->groups, q = b % g->groups;
    oxo_im2col one = g->base;
    one.x.data = (const char *)one.x.data + (ptrdiff_t)q * g->group_stride * (ptrdiff_t)g->es;
    if (g->transpose) /* col^T's block (rows p0.., columns j0..) is col's block (j0.., p0..) */
        g->im2col(&one, n, j0, nc, p0, kc, dst, ld, !transposed);
    else
        g->im2col(&one, n, p0, kc, j0, nc, dst, ld, transposed);
}

static grouped_im2col grouped_context(oxo_dtype dt, const oxo_tensor4 *x,
                                      const oxo_conv2d_geom *geom, size_t groups, int transpose)
{
    grouped_im2col g;
    g.base.x = *x;
    g.base.x.c = x->c / groups;
    g.base.kh = geom->kh, g.base.kw = geom->kw, g.base.ho = geom->ho, g.base.wo = geom->wo;
    g.base.sh = geom->sh, g.base.sw = geom->sw, g.base.ph = geom->ph, g.base.pw = geom->pw;
    g.base.dh = geom->dh, g.base.dw = geom->dw;
    g.groups = groups;
    g.group_stride = (ptrdiff_t)(x->c / groups) * x->sc;
    g.es = dt == OXO_F64 ? 8 : 4;
    g.im2col = dt == OXO_F64 ? oxo_pack_im2col_f64 : oxo_pack_im2col_f32;
    g.transpose = transpose;
    return g;
}

static size_t groups_of(size_t groups) { return groups > 1 ? groups : 1; }

int oxo_conv2d_im2col_grouped(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                              ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                              size_t groups, const void *bias, int act, void *y, int n_threads)
{
    const size_t G = groups_of(groups), fg = f / G, p = geom->ho * geom->wo;
    const grouped_im2col ctx = grouped_context(dt, x, geom, G, 0);
    oxo_gemm g = {0};
    g.dtype = dt;
    g.batch = x->n;
    g.M = fg;
    g.N = p;
    g.K = (x->c / G) * geom->kh * geom->kw;
    g.A = w;
    g.rs_a = rs_w;
    g.cs_a = cs_w;
    g.pack_b = pack_grouped;
    g.pack_ctx = &ctx;
    g.C = y;
    g.bs_c = (ptrdiff_t)(f * p);
    g.rs_c = (ptrdiff_t)p;
    g.bias = bias;
    g.bias_mode = bias ? OXO_BIAS_ROW : OXO_BIAS_NONE;
    g.act = act;
    g.n_threads = n_threads;
    g.groups = G;
    g.gs_a = (ptrdiff_t)fg * rs_w;
    g.gs_c = (ptrdiff_t)(fg * p);
    g.gs_bias = (ptrdiff_t)fg;
    return oxo_gemm_run(&g);
}

int oxo_conv2d_grad_w(oxo_dtype dt, const oxo_tensor4 *dy, const oxo_tensor4 *x,
                      const oxo_conv2d_geom *geom, size_t groups, void *dw, int n_threads)
{
    /* dw (F x Cg*KH*KW, C-contiguous); dy (N, F, Ho, Wo) with its pixels one sequence */
    const size_t G = groups_of(groups), fg = dy->c / G, kp = (x->c / G) * geom->kh * geom->kw;
    const size_t p = geom->ho * geom->wo;
    ptrdiff_t sp;
    if (!oxo_tensor_pixel_sequence(dy, &sp)) return OXO_EINVAL;
    const grouped_im2col ctx = grouped_context(dt, x, geom, G, 1);
    oxo_gemm g = {0};
    g.dtype = dt;
    g.batch = dy->n;
    g.reduce_batch = 1;
    g.M = fg;
    g.N = kp;
    g.K = p;
    g.A = dy->data; /* A[i = f, k = pixel] */
    g.bs_a = dy->sn;
    g.rs_a = dy->sc;
    g.cs_a = sp;
    g.pack_b = pack_grouped; /* B[k = pixel, j = (c, kh, kw)] = col^T */
    g.pack_ctx = &ctx;
    g.C = dw;
    g.rs_c = (ptrdiff_t)kp;
    g.n_threads = n_threads;
    g.groups = G;
    g.gs_a = (ptrdiff_t)fg * dy->sc;
    g.gs_c = (ptrdiff_t)(fg * kp);
    return oxo_gemm_run(&g);
}

/* ---- grad_x: dcol = W^T dy per image, then col2im ---------------------------------------- */
typedef struct col2im_job {
    const oxo_conv2d_geom *geom;
    size_t c, h, w;        /* dx image: c channels of h x w, C-contiguous */
    size_t kp, p;          /* dcol: rows per group (Cg*KH*KW) ... */
    size_t groups, cg;
    const void *dcol;      /* (groups*kp) x p, C-contiguous */
    void *dx;              /* one image of dx */
    int f64;
    atomic_size_t next;    /* next channel to take */
} col2im_job;

#define OXO_DEFINE_COL2IM(T, NAME)                                                             \
    static void NAME(const col2im_job *j, size_t c)                                            \
    {                                                                                          \
        const oxo_conv2d_geom *g = j->geom;                                                    \
        const T *dcol = (const T *)j->dcol + c * g->kh * g->kw * j->p;                         \
        T *dx = (T *)j->dx + c * j->h * j->w;                                                  \
        memset(dx, 0, j->h * j->w * sizeof(T));                                                \
        for (size_t kh = 0; kh < g->kh; kh++)                                                  \
            for (size_t kw = 0; kw < g->kw; kw++) {                                            \
                const T *row = dcol + (kh * g->kw + kw) * j->p;                                \
                for (size_t ho = 0; ho < g->ho; ho++) {                                        \
                    const ptrdiff_t h = (ptrdiff_t)ho * g->sh - g->ph + (ptrdiff_t)kh * g->dh; \
                    if (h < 0 || h >= (ptrdiff_t)j->h) continue;                               \
                    for (size_t wo = 0; wo < g->wo; wo++) {                                    \
                        const ptrdiff_t w =                                                    \
                            (ptrdiff_t)wo * g->sw - g->pw + (ptrdiff_t)kw * g->dw;             \
                        if (w >= 0 && w < (ptrdiff_t)j->w)                                     \
                            dx[h * (ptrdiff_t)j->w + w] += row[ho * g->wo + wo];               \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
    }
OXO_DEFINE_COL2IM(float, col2im_f32)
OXO_DEFINE_COL2IM(double, col2im_f64)

static void col2im_thread(void *arg, int tid)
{
    col2im_job *j = (col2im_job *)arg;
    (void)tid;
    for (;;) {
        const size_t c = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (c >= j->c) break;
        if (j->f64) col2im_f64(j, c);
        else col2im_f32(j, c);
    }
}

int oxo_conv2d_grad_x(oxo_dtype dt, const oxo_tensor4 *dy, const void *w, ptrdiff_t rs_w,
                      ptrdiff_t cs_w, const oxo_conv2d_geom *geom, size_t groups, size_t c,
                      size_t h, size_t wd, void *dx, int n_threads)
{
    /* dx (N, C, H, W) C-contiguous; w viewed as (F, Cg*KH*KW) */
    const size_t G = groups_of(groups), fg = dy->c / G, cg = c / G;
    const size_t kp = cg * geom->kh * geom->kw, p = geom->ho * geom->wo;
    const size_t es = dt == OXO_F64 ? 8 : 4;
    if (G * kp != 0 && p > ((size_t)-1) / es / (G * kp)) return OXO_ENOMEM;
    void *dcol = oxo_scratch_alloc(G * kp * p * es);
    if (!dcol) return OXO_ENOMEM;
    const int nt = oxo_resolve_threads(n_threads);
    int rc = OXO_OK;
    for (size_t n = 0; n < dy->n && rc == OXO_OK; n++) {
        oxo_gemm g = {0}; /* dcol_q (K' x P) = W_q^T (K' x Fg) @ dy[n, q] (Fg x P) */
        g.dtype = dt;
        g.batch = 1;
        g.M = kp;
        g.N = p;
        g.K = fg;
        g.A = w; /* A[i = (c, kh, kw), k = f] = W[f, (c, kh, kw)] */
        g.rs_a = cs_w;
        g.cs_a = rs_w;
        g.gs_a = (ptrdiff_t)fg * rs_w;
        g.B = (const char *)dy->data + (ptrdiff_t)n * dy->sn * (ptrdiff_t)es;
        g.rs_b = dy->sc;
        g.gs_b = (ptrdiff_t)fg * dy->sc;
        oxo_pixel_columns(geom->ho, geom->wo, dy->sh, dy->sw, &g);
        g.C = dcol;
        g.rs_c = (ptrdiff_t)p;
        g.gs_c = (ptrdiff_t)(kp * p);
        g.groups = G;
        g.n_threads = nt;
        rc = oxo_gemm_run(&g);
        if (rc != OXO_OK) break;
        col2im_job job;
        job.geom = geom;
        job.c = c, job.h = h, job.w = wd;
        job.kp = kp, job.p = p, job.groups = G, job.cg = cg;
        job.dcol = dcol;
        job.dx = (char *)dx + n * c * h * wd * es;
        job.f64 = dt == OXO_F64;
        atomic_init(&job.next, 0);
        oxo_parallel(nt, col2im_thread, &job);
    }
    oxo_scratch_free(dcol);
    return rc;
}

/* ---- depthwise: one input channel per group ------------------------------------------- *
 * Units (image, input channel, band of output rows), taken by the threads one by one. A unit
 * copies the input rows its band reads into a zero-padded, column-phase-split band (columns
 * u*sw + q of the padded row in phase q, only the phases some tap reads, as the direct
 * kernel's phase copy; at most about OXO_DW_BAND_BYTES), then each of the channel's F/C
 * output channels is one oxo_dw_tile over it. Every output is one FMA chain over the taps in
 * order: the result does not depend on the thread count. */
enum { OXO_DW_BAND_BYTES = 64 << 10, OXO_DW_UNIT_OUTPUTS = 4096 };

typedef struct dw_job {
    const oxo_tensor4 *x;
    const oxo_conv2d_geom *g;
    const oxo_kernels *ks;
    const char *w;
    ptrdiff_t rs_w, cs_w;
    const char *bias;
    int act;
    char *y;
    size_t es, f, mult;          /* output channels, per input channel */
    size_t band, bands;          /* output rows per band, bands per plane */
    size_t chans;                /* input channels per unit (small maps: several) */
    size_t rows_max, u;          /* padded rows per band (most), columns per phase */
    const ptrdiff_t *qw;         /* the column phases in use */
    size_t nw;
    const ptrdiff_t *tap_phase, *tap_row, *tap_col; /* per tap: where its input starts */
    char *scratch;
    size_t scratch_per_thread;   /* bytes: the tap offsets, then (64-byte aligned) the band */
    atomic_size_t next;
} dw_job;

#define OXO_DEFINE_DW_COPY(T, NAME, ROW)                                                        \
    /* padded rows [r0, r0 + nrows) of channel c of image b into band (phase-major) */           \
    static void NAME(const dw_job *j, size_t b, size_t c, size_t r0, size_t nrows, T *band)     \
    {                                                                                          \
        const oxo_tensor4 *x = j->x;                                                           \
        const oxo_conv2d_geom *g = j->g;                                                       \
        const T *src = (const T *)x->data + (ptrdiff_t)b * x->sn + (ptrdiff_t)c * x->sc;       \
        for (size_t iq = 0; iq < j->nw; iq++) {                                                \
            ptrdiff_t ua, ue;                                                                  \
            oxo_phase_cols(j->qw[iq], g->pw, g->sw, x->w, j->u, &ua, &ue);                     \
            for (size_t r = 0; r < nrows; r++) {                                               \
                const ptrdiff_t h = (ptrdiff_t)(r0 + r) - g->ph;                               \
                const T *in = h < 0 || h >= (ptrdiff_t)x->h ? NULL : src + h * x->sh + (j->qw[iq] - g->pw) * x->sw; \
                ROW(band + (iq * nrows + r) * j->u, in, g->sw * x->sw, ua, ue, j->u);          \
            }                                                                                  \
        }                                                                                      \
    }
OXO_DEFINE_DW_COPY(float, dw_copy_f32, oxo_phase_row_f32)
OXO_DEFINE_DW_COPY(double, dw_copy_f64, oxo_phase_row_f64)

static void dw_thread(void *arg, int tid)
{
    dw_job *j = (dw_job *)arg;
    const oxo_conv2d_geom *g = j->g;
    const size_t taps = g->kh * g->kw;
    ptrdiff_t *off = (ptrdiff_t *)(j->scratch + (size_t)tid * j->scratch_per_thread);
    char *band = (char *)off + (taps * sizeof *off + 63) / 64 * 64;
    const size_t groups = (j->x->c + j->chans - 1) / j->chans;
    const size_t units = j->x->n * groups * j->bands;
    for (;;) {
        const size_t unit = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (unit >= units) break;
        const size_t b = unit / j->bands / groups, c0 = unit / j->bands % groups * j->chans;
        const size_t c1 = c0 + j->chans < j->x->c ? c0 + j->chans : j->x->c;
        const size_t ho0 = unit % j->bands * j->band;
        const size_t nout = g->ho - ho0 < j->band ? g->ho - ho0 : j->band;
        const size_t nrows = (nout - 1) * (size_t)g->sh + (g->kh - 1) * (size_t)g->dh + 1;
        for (size_t q = 0; q < taps; q++) /* phase plane, row, column of tap q's first input */
            off[q] = (j->tap_phase[q] * (ptrdiff_t)nrows + j->tap_row[q]) * (ptrdiff_t)j->u + j->tap_col[q];
        oxo_dw_tile t;
        t.rows = nout;
        t.wo = g->wo;
        t.taps = taps;
        t.src = band;
        t.tap_off = off;
        t.row_step = g->sh * (ptrdiff_t)j->u;
        t.act = j->act;
        for (size_t c = c0; c < c1; c++) {
            if (j->es == 8) dw_copy_f64(j, b, c, ho0 * (size_t)g->sh, nrows, (double *)band);
            else dw_copy_f32(j, b, c, ho0 * (size_t)g->sh, nrows, (float *)band);
            for (size_t m = 0; m < j->mult; m++) {
                const size_t f = c * j->mult + m;
                t.w = j->w + (ptrdiff_t)f * j->rs_w * (ptrdiff_t)j->es;
                t.bias = j->bias ? j->bias + f * j->es : NULL;
                t.y = j->y + ((b * j->f + f) * g->ho + ho0) * g->wo * j->es;
                j->ks->dw(&t);
            }
        }
    }
}

int oxo_conv2d_depthwise_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t rs_w,
                              ptrdiff_t cs_w, size_t f, const oxo_conv2d_geom *geom,
                              const void *bias, int act, void *y, int n_threads)
{
    const oxo_conv2d_geom *g = geom;
    if (x->n == 0 || f == 0 || g->ho == 0 || g->wo == 0) return OXO_OK;
    if (x->c == 0 || f % x->c || cs_w != 1 || !oxo_conv2d_geom_valid(g)) return OXO_EINVAL;
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), dt);
    if (!ks || !ks->dw) return OXO_EINVAL;
    const size_t es = dt == OXO_F64 ? 8 : 4, taps = g->kh * g->kw;

    /* the column phases the taps read, and each tap's phase, row and column offset */
    ptrdiff_t *meta = oxo_aligned_alloc((g->kw + 3 * taps) * sizeof *meta);
    if (!meta) return OXO_ENOMEM;
    ptrdiff_t *qw = meta, *tap_phase = meta + g->kw, *tap_row = tap_phase + taps, *tap_col = tap_row + taps;
    size_t nw = 0;
    const size_t u = ((g->wo - 1) * (size_t)g->sw + (g->kw - 1) * (size_t)g->dw) / (size_t)g->sw + 1;
    for (size_t kw = 0; kw < g->kw; kw++) {
        const size_t iq = oxo_phase_index(qw, &nw, ((ptrdiff_t)kw * g->dw) % g->sw);
        for (size_t kh = 0; kh < g->kh; kh++) {
            tap_phase[kh * g->kw + kw] = (ptrdiff_t)iq;
            tap_row[kh * g->kw + kw] = (ptrdiff_t)kh * g->dh;
            tap_col[kh * g->kw + kw] = ((ptrdiff_t)kw * g->dw) / g->sw;
        }
    }
    /* bands of output rows whose padded input rows fit OXO_DW_BAND_BYTES (at least one row) */
    const size_t row_bytes = nw * u * es, reach = (g->kh - 1) * (size_t)g->dh + 1;
    size_t band = OXO_DW_BAND_BYTES / row_bytes > reach ? (OXO_DW_BAND_BYTES / row_bytes - reach) / (size_t)g->sh + 1 : 1;
    if (band > g->ho) band = g->ho;
    const size_t bands = (g->ho + band - 1) / band, rows_max = (band - 1) * (size_t)g->sh + reach;
    if ((double)rows_max * (double)row_bytes > (double)PTRDIFF_MAX / 4) {
        oxo_aligned_free(meta);
        return OXO_ENOMEM;
    }

    const double flops = 2.0 * (double)x->n * (double)f * (double)g->ho * (double)g->wo * (double)taps;
    int nt = oxo_resolve_threads(n_threads);
    const double cap = flops / (1 << 17);
    if (cap < nt) nt = cap < 1 ? 1 : (int)cap;
    /* small maps: several channels a unit, about OXO_DW_UNIT_OUTPUTS outputs, so a unit's fixed
     * costs (taking it, its offsets) stay small beside its work, yet 4 units a thread at least */
    const size_t per_channel = band * g->wo * (f / x->c), planes = x->n * x->c;
    size_t chans = bands == 1 && per_channel < OXO_DW_UNIT_OUTPUTS ? OXO_DW_UNIT_OUTPUTS / per_channel : 1;
    if (chans > planes / (4 * (size_t)nt)) chans = planes / (4 * (size_t)nt);
    if (chans > x->c) chans = x->c;
    if (chans < 1) chans = 1;
    const double units = (double)x->n * (double)((x->c + chans - 1) / chans) * (double)bands;
    if (units < nt) nt = (int)units;

    dw_job j;
    j.x = x, j.g = g, j.ks = ks;
    j.w = (const char *)w, j.rs_w = rs_w, j.cs_w = cs_w;
    j.bias = (const char *)bias, j.act = act, j.y = (char *)y;
    j.es = es, j.f = f, j.mult = f / x->c;
    j.band = band, j.bands = bands, j.chans = chans, j.rows_max = rows_max, j.u = u;
    j.qw = qw, j.nw = nw, j.tap_phase = tap_phase, j.tap_row = tap_row, j.tap_col = tap_col;
    j.scratch_per_thread = (taps * sizeof(ptrdiff_t) + 63) / 64 * 64 + (rows_max * row_bytes + 63) / 64 * 64;
    j.scratch = oxo_aligned_alloc(j.scratch_per_thread * (size_t)nt);
    if (!j.scratch) {
        oxo_aligned_free(meta);
        return OXO_ENOMEM;
    }
    atomic_init(&j.next, 0);
    oxo_parallel(nt, dw_thread, &j);
    oxo_aligned_free(j.scratch);
    oxo_aligned_free(meta);
    return OXO_OK;
}
