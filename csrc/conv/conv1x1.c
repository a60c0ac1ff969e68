/* conv1x1.c: the 1x1 convolution and its gradients, each as one call of the GEMM engine.
 *
 * Forward, NCHW, per image n and group q (C = g*Cg channels in, F = g*Fg out, P = H*W):
 *     y[n, q] (Fg x P) = act(W_q (Fg x Cg) @ x[n, q] (Cg x P) + bias_q)
 *   W read in place (broadcast), the pixels of x are the GEMM's columns: read in place when a
 *   channel plane is contiguous, packed block by block otherwise (a strided convolution is
 *   the strided view x[:, :, ::sh, ::sw], never copied whole).
 * Forward, NHWC: y[n] (P x F) = act(x[n] (P x C) @ W^T (C x F) + bias): the pixels are the
 *   GEMM's rows (broadcast), W^T's blocks are packed, the output rows are contiguous; deep
 *   layers on small maps, and strided or cropped pixels, instead compute y[n]^T with the NCHW
 *   product (x^T's blocks packed from the pixels in place) and store it transposed.
 * Gradients (NCHW): grad_x[n, q] = W_q^T @ dy[n, q];  grad_w_q = sum_n dy[n, q] @ x[n, q]^T.
 * Gradients (NHWC): grad_x[n] = dy[n] @ W;           grad_w = sum_n dy[n]^T @ x[n].
 */
#include "../onexone.h"
#include "../gemm/pack.h"
#include "../threads.h"
#include "pixels.h"
#include <stdatomic.h>
#include <string.h>

static size_t groups_of(size_t groups) { return groups > 1 ? groups : 1; }

/* The NCHW product's GEMM: per image and group, y (Fg x P) = W_q x[n, q] (Cg x P), y NCHW. */
static void nchw_gemm(oxo_gemm *g, oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                      ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act, void *y,
                      int n_threads)
{
    const size_t p = x->h * x->w, G = groups_of(groups), fg = f / G, cg = x->c / G;
    memset(g, 0, sizeof *g);
    g->dtype = dt;
    g->batch = x->n;
    g->M = fg;
    g->N = p;
    g->K = cg;
    g->A = w;
    g->rs_a = sw_f;
    g->cs_a = sw_c;
    g->B = x->data;
    g->bs_b = x->sn;
    g->rs_b = x->sc;
    oxo_pixel_columns(x->h, x->w, x->sh, x->sw, g);
    g->C = y;
    g->bs_c = (ptrdiff_t)(f * p);
    g->rs_c = (ptrdiff_t)p;
    g->bias = bias;
    g->bias_mode = bias ? OXO_BIAS_ROW : OXO_BIAS_NONE;
    g->act = act;
    g->n_threads = n_threads;
    g->groups = G;
    g->gs_a = (ptrdiff_t)fg * sw_f;
    g->gs_b = (ptrdiff_t)cg * x->sc;
    g->gs_c = (ptrdiff_t)(fg * p);
    g->gs_bias = (ptrdiff_t)fg;
}

int oxo_conv1x1_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                     ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act, void *y,
                     int n_threads)
{
    oxo_gemm g;
    nchw_gemm(&g, dt, x, w, sw_f, sw_c, f, groups, bias, act, y, n_threads);
    return oxo_gemm_run(&g);
}

/* NHWC through the NCHW product, for deep layers on small maps: y[n]^T (F x P) = W x[n]^T,
 * x^T's blocks packed from the pixel rows (the strided packer, 4 x 4 register transposes)
 * and the tiles of y^T stored transposed straight into y (cs_c = F: each pixel's filters
 * one masked vector, oxo_tile). Same sums as the NCHW product. Against computing y^T into a
 * scratch and transposing that into y in a second parallel region, alternating calls, batch
 * 1, an Intel core with two FMA units, float32, 2 / 1 threads: 160->960 at 7x7 1.30x / 1.04x,
 * 320->1280 1.22x / 1.03x, 512->2048 1.10x / 1.01x, 2048->512 1.03x / 1.01x (float64: 1.33x
 * / 1.15x, 1.18x / 1.05x, 1.09x / 1.04x, 1.09x / 1.08x). */
static int nhwc_transposed(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                           ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act,
                           void *y, int n_threads)
{
    const size_t p = x->h * x->w, fg = f / groups_of(groups);
    oxo_gemm g;
    nchw_gemm(&g, dt, x, w, sw_f, sw_c, f, groups, bias, act, y, n_threads);
    g.bs_c = (ptrdiff_t)(p * f);
    g.rs_c = 1;
    g.cs_c = (ptrdiff_t)f;
    g.gs_c = (ptrdiff_t)fg;
    return oxo_gemm_run(&g);
}

int oxo_conv1x1_nhwc(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                     ptrdiff_t sw_c, size_t f, size_t groups, const void *bias, int act, void *y,
                     int n_threads)
{
    const size_t p = x->h * x->w, G = groups_of(groups), fg = f / G, cg = x->c / G;
    ptrdiff_t sp;
    /* Pixels that are not one sequence (a strided convolution's x[:, ::sh, ::sw, :], a
     * cropped view): the NCHW product, whose packer reads them in place as x^T's columns.
     * Against gathering them into a contiguous copy first (what this did before), alternating
     * calls, stride 2 on an Intel core with two 512-bit FMA units, 2 threads, batch 1: 256->512
     * at 56x56 1.07x, 512->1024 at 28x28 1.06x, 1024->2048 at 14x14 1.01x, 64->128 1.20x,
     * 256->64 1.37x, 32->16 at 112x112 1.51x; 1 thread 1.00-1.29x; batch 8 1.02-2.58x. */
    if (!oxo_tensor_pixel_sequence(x, &sp))
        return nhwc_transposed(dt, x, w, sw_f, sw_c, f, groups, bias, act, y, n_threads);
    /* images whose pixels continue one another's sequence (a contiguous NHWC batch) are one
     * GEMM of N*P rows: W^T's blocks are then packed once, not once per image */
    const int one = x->n > 1 && x->sn == (ptrdiff_t)p * sp;
    /* What each route transposes: W (C*F elements, once per GEMM) or x and y (P*(C+F) per
     * image; y now in the GEMM's stores, see nhwc_transposed). First measured with y
     * transposed in a second parallel region, NHWC/NCHW, batch 1, alternating calls,
     * 2 / 1 threads, W^T route -> this one: 2048->512 at 7x7 0.86 / 0.87 -> 0.96 / 0.98,
     * 512->2048 0.85 / 0.87 -> 0.94 / 0.93, 320->1280 0.86 / 0.88 -> 0.88 / 0.95 (Zen 4).
     * 160->960 (C*F / (P*(C+F)) = 2.8): Zen 4 0.84 / 0.89 -> 0.77 / 0.95; an Intel core with
     * two FMA units, GFLOP/s W^T route -> this one, 133-145 -> 178-188 / 108-122 -> 119-138.
     * The rule asks for 2.5: 1024->256 at 14x14 (1.04) loses on this route (2 threads 0.8x),
     * and still did with y stored transposed (NHWC/NCHW, 2 / 1 threads: this route 0.78 /
     * 0.91, W^T 0.86 / 0.85; 96->576 at 14x14 0.64 / 0.87 against 0.81 / 0.91). */
    const double rows = (double)(one ? x->n * p : p);
    if (p && f && x->n && 2.5 * rows * (double)(x->c + f) <= (double)x->c * (double)f)
        return nhwc_transposed(dt, x, w, sw_f, sw_c, f, groups, bias, act, y, n_threads);
    oxo_gemm g = {0};
    g.dtype = dt;
    g.batch = one ? 1 : x->n;
    g.M = one ? x->n * p : p;
    g.N = fg;
    g.K = cg;
    g.A = x->data; /* rows: pixels, along K: channels */
    g.bs_a = x->sn;
    g.rs_a = sp;
    g.cs_a = x->sc;
    /* B = W^T (row c, column f at w[f*sw_f + c*sw_c]), packed per block (4 x 4 register
     * transposes, pack.c). Measured against dot products of a pixel's channels with a
     * filter's (nothing packed), alternating calls, 2 threads, GFLOP/s packed / dot:
     * 2048->512 at 7x7 167 / 163, 512->2048 170 / 161, 320->1280 167 / 151, 160->960
     * 157 / 135 (1 thread: 90 / 81, 89 / 83, 89 / 76, 87 / 67). */
    g.B = w;
    g.rs_b = sw_c;
    g.b_w = 0;
    g.cs_bw = sw_f;
    g.C = y;
    g.bs_c = (ptrdiff_t)(p * f);
    g.rs_c = (ptrdiff_t)f;
    g.bias = bias;
    g.bias_mode = bias ? OXO_BIAS_COL : OXO_BIAS_NONE;
    g.act = act;
    g.n_threads = n_threads;
    g.groups = G;
    g.gs_a = (ptrdiff_t)cg * x->sc;
    g.gs_b = (ptrdiff_t)fg * sw_f;
    g.gs_c = (ptrdiff_t)fg;
    g.gs_bias = (ptrdiff_t)fg;
    return oxo_gemm_run(&g);
}

int oxo_conv1x1_grad_x(oxo_dtype dt, int nhwc, const oxo_tensor4 *dy, const void *w,
                       ptrdiff_t sw_f, ptrdiff_t sw_c, size_t c, size_t groups, void *dx,
                       int n_threads)
{
    /* dy is described as (N, F, Ho, Wo) whatever its layout; dx is C-contiguous,
     * (N, C, Ho, Wo) or (N, Ho, Wo, C) */
    const size_t p = dy->h * dy->w, G = groups_of(groups), fg = dy->c / G, cg = c / G;
    ptrdiff_t sp = 0;
    const int dy_sequence = oxo_tensor_pixel_sequence(dy, &sp);
    oxo_gemm g = {0};
    g.dtype = dt;
    g.batch = dy->n;
    g.K = fg;
    g.n_threads = n_threads;
    g.groups = G;
    g.C = dx;
    if (!nhwc) { /* dx (Cg x P) = W^T (Cg x Fg) @ dy (Fg x P) */
        g.M = cg;
        g.N = p;
        g.A = w; /* A[i=c, k=f] = W[f, c]; group q's rows of W start at q*Fg */
        g.rs_a = sw_c;
        g.cs_a = sw_f;
        g.gs_a = (ptrdiff_t)fg * sw_f;
        g.B = dy->data;
        g.bs_b = dy->sn;
        g.rs_b = dy->sc;
        g.gs_b = (ptrdiff_t)fg * dy->sc;
        oxo_pixel_columns(dy->h, dy->w, dy->sh, dy->sw, &g);
        g.bs_c = (ptrdiff_t)(c * p);
        g.rs_c = (ptrdiff_t)p;
        g.gs_c = (ptrdiff_t)(cg * p);
    } else { /* dx (P x Cg) = dy (P x Fg) @ W (Fg x Cg) */
        if (!dy_sequence) return OXO_EINVAL;
        g.M = p;
        g.N = cg;
        g.A = dy->data;
        g.bs_a = dy->sn;
        g.rs_a = sp;
        g.cs_a = dy->sc;
        g.gs_a = (ptrdiff_t)fg * dy->sc;
        g.B = w;
        g.rs_b = sw_f;
        g.b_w = 0;
        g.cs_bw = sw_c;
        g.gs_b = (ptrdiff_t)fg * sw_f;
        g.bs_c = (ptrdiff_t)(p * c);
        g.rs_c = (ptrdiff_t)c;
        g.gs_c = (ptrdiff_t)cg;
    }
    return oxo_gemm_run(&g);
}

/* B of grad_w where x's pixels are not one sequence (the strided view x[:, :, ::sh, ::sw] of a
 * strided convolution, read in place, never copied whole): rows p of the block are pixels
 * (output row p / Wo, column p % Wo), its columns channels j0 .. j0 + nc of image b / groups,
 * group b % groups. Read along whichever of pixels and channels is closer in memory. */
typedef struct pixel_rows {
    oxo_tensor4 x;
    size_t groups, cg;
} pixel_rows;

#define OXO_DEFINE_PACK_PIXEL_ROWS(T, NAME)                                                     \
    static void NAME(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,     \
                     void *dst, size_t ld, int transposed)                                      \
    {                                                                                           \
        const pixel_rows *pr = (const pixel_rows *)ctx;                                         \
        const oxo_tensor4 *x = &pr->x;                                                          \
        const T *base = (const T *)x->data + (ptrdiff_t)(b / pr->groups) * x->sn +              \
                        (ptrdiff_t)((b % pr->groups) * pr->cg + j0) * x->sc;                    \
        const ptrdiff_t dp = transposed ? 1 : (ptrdiff_t)ld, dq = transposed ? (ptrdiff_t)ld : 1; \
        const ptrdiff_t asc = x->sc < 0 ? -x->sc : x->sc, asw = x->sw < 0 ? -x->sw : x->sw;     \
        T *out = (T *)dst;                                                                      \
        for (size_t p = 0; p < kc;) { /* runs of pixels along one output row */                 \
            const size_t ho = (p0 + p) / x->w, wo = (p0 + p) % x->w;                            \
            const size_t run = x->w - wo < kc - p ? x->w - wo : kc - p;                         \
            const T *src = base + (ptrdiff_t)ho * x->sh + (ptrdiff_t)wo * x->sw;                \
            T *o = out + (ptrdiff_t)p * dp;                                                     \
            if (asc <= asw) { /* channels closer (NHWC): pixel by pixel */                      \
                for (size_t r = 0; r < run; r++) {                                              \
                    const T *s = src + (ptrdiff_t)r * x->sw;                                    \
                    T *d = o + (ptrdiff_t)r * dp;                                               \
                    if (dq == 1 && x->sc == 1) memcpy(d, s, nc * sizeof(T));                    \
                    else for (size_t q = 0; q < nc; q++) d[(ptrdiff_t)q * dq] = s[(ptrdiff_t)q * x->sc]; \
                }                                                                               \
            } else { /* pixels closer (NCHW): channel by channel */                             \
                for (size_t q = 0; q < nc; q++) {                                               \
                    const T *s = src + (ptrdiff_t)q * x->sc;                                    \
                    T *d = o + (ptrdiff_t)q * dq;                                               \
                    for (size_t r = 0; r < run; r++) d[(ptrdiff_t)r * dp] = s[(ptrdiff_t)r * x->sw]; \
                }                                                                               \
            }                                                                                   \
            p += run;                                                                           \
        }                                                                                       \
    }
OXO_DEFINE_PACK_PIXEL_ROWS(float, pack_pixel_rows_f32)
OXO_DEFINE_PACK_PIXEL_ROWS(double, pack_pixel_rows_f64)

int oxo_conv1x1_grad_w(oxo_dtype dt, const oxo_tensor4 *dy, const oxo_tensor4 *x, size_t groups,
                       void *dw, int n_threads)
{
    /* dw (F x Cg, C-contiguous) = sum_n dy[n] (F x P) @ x[n]^T (P x Cg), per group; dy and x
     * are described as (N, F|C, Ho, Wo) whatever their layout, dy's pixels one sequence */
    const size_t p = dy->h * dy->w, G = groups_of(groups), fg = dy->c / G, cg = x->c / G;
    ptrdiff_t sp_dy, sp_x;
    if (!oxo_tensor_pixel_sequence(dy, &sp_dy)) return OXO_EINVAL;
    oxo_gemm g = {0};
    g.dtype = dt;
    g.batch = dy->n;
    g.reduce_batch = 1;
    g.M = fg;
    g.N = cg;
    g.K = p;
    g.A = dy->data; /* A[i=f, k=pixel] */
    g.bs_a = dy->sn;
    g.rs_a = dy->sc;
    g.cs_a = sp_dy;
    g.gs_a = (ptrdiff_t)fg * dy->sc;
    g.B = x->data; /* B[k=pixel, j=c] = x[c, pixel] */
    g.bs_b = x->sn;
    g.gs_b = (ptrdiff_t)cg * x->sc;
    /* B's blocks packed from x (pixels x channels), or NHWC's read in place. Against dot
     * products of dy's and x's rows (nothing packed, 4 x 4 dot tiles), NCHW, alternating
     * calls, GFLOP/s dot -> packed, on an Intel core with two 512-bit FMA units: batch 1, 2
     * threads, 256->512 at 56x56 164 -> 283, 512->1024 at 28x28 167 -> 293, 64->256 151 ->
     * 207, 1024->2048 at 14x14 141 -> 291; 1 thread 79-86 -> 136-154; batch 8 1.05-2.05x;
     * float64 1.24-2.2x. The broadcast tile's loads per FMA are a quarter of the dot tile's. */
    pixel_rows pr = {*x, G, cg};
    if (!oxo_tensor_pixel_sequence(x, &sp_x)) {
        g.pack_b = dt == OXO_F64 ? pack_pixel_rows_f64 : pack_pixel_rows_f32;
        g.pack_ctx = &pr;
    } else { /* B[k=pixel, j=c] = x[c, pixel] */
        g.rs_b = sp_x;
        g.b_w = 0;
        g.cs_bw = x->sc;
    }
    g.C = dw;
    g.rs_c = (ptrdiff_t)cg;
    g.gs_c = (ptrdiff_t)(fg * cg);
    g.groups = G;
    g.n_threads = n_threads;
    return oxo_gemm_run(&g);
}
