/* conv1x1.c: the 1x1 convolution over NCHW as one batched GEMM call.
 *
 *   y[n] (F x P) = act(W (F x C) @ x[n] (C x P) + bias),   P = H*W
 *
 * x may be any strided view: its pixels are the GEMM's columns, read in place when each
 * channel plane is contiguous and packed block by block by the engine otherwise. */
#include "../onexone.h"

/* Describe the pixels of an h x w plane with strides (sh, sw) as GEMM columns. */
static void pixel_columns(size_t h, size_t w, ptrdiff_t sh, ptrdiff_t sw, oxo_gemm *g)
{
    if (h * w <= 1) {
        g->b_w = 0, g->cs_bh = 0, g->cs_bw = 1;
    } else if (w == 1) {
        g->b_w = 0, g->cs_bh = 0, g->cs_bw = sh;
    } else if (h == 1 || sh == (ptrdiff_t)w * sw) {
        g->b_w = 0, g->cs_bh = 0, g->cs_bw = sw;
    } else {
        g->b_w = w, g->cs_bh = sh, g->cs_bw = sw;
    }
}

int oxo_conv1x1_nchw(oxo_dtype dt, const oxo_tensor4 *x, const void *w, ptrdiff_t sw_f,
                     ptrdiff_t sw_c, size_t f, const void *bias, int act, void *y, int n_threads)
{
    const size_t p = x->h * x->w;
    oxo_gemm g = {0};
    g.dtype = dt;
    g.batch = x->n;
    g.M = f;
    g.N = p;
    g.K = x->c;
    g.A = w;
    g.rs_a = sw_f;
    g.cs_a = sw_c;
    g.B = x->data;
    g.bs_b = x->sn;
    g.rs_b = x->sc;
    pixel_columns(x->h, x->w, x->sh, x->sw, &g);
    g.C = y;
    g.bs_c = (ptrdiff_t)(f * p);
    g.rs_c = (ptrdiff_t)p;
    g.bias = bias;
    g.bias_mode = bias ? OXO_BIAS_ROW : OXO_BIAS_NONE;
    g.act = act;
    g.n_threads = n_threads;
    return oxo_gemm_run(&g);
}
