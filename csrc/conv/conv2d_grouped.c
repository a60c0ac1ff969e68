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
    if (G * kp && p > ((size_t)-1) / es / (G * kp)) return OXO_ENOMEM;
    void *dcol = oxo_aligned_alloc(G * kp * p * es);
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
    oxo_aligned_free(dcol);
    return rc;
}
