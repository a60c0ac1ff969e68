/* pixels.h: how the ops see the pixels of an h x w plane with strides (sh, sw). */
#ifndef ONEXONE_PIXELS_H
#define ONEXONE_PIXELS_H
#include <stddef.h>

#include "../onexone.h"

/* Do the pixels form one arithmetic sequence (one row, one column, or rows back to back)?
 * If so, *step is the stride from one pixel to the next (0 for a broadcast view). */
static inline int oxo_pixel_sequence(size_t h, size_t w, ptrdiff_t sh, ptrdiff_t sw,
                                     ptrdiff_t *step)
{
    if (h * w <= 1) *step = 1;
    else if (w == 1) *step = sh;
    else if (h == 1 || sh == (ptrdiff_t)w * sw) *step = sw;
    else return 0;
    return 1;
}

/* oxo_pixel_sequence for a tensor that the caller laid out so; an empty one (whose strides
 * NumPy leaves arbitrary, and which nobody reads) always passes. */
static inline int oxo_tensor_pixel_sequence(const oxo_tensor4 *t, ptrdiff_t *step)
{
    if (oxo_pixel_sequence(t->h, t->w, t->sh, t->sw, step)) return 1;
    *step = 1;
    return t->n == 0 || t->c == 0 || t->h == 0 || t->w == 0;
}

/* The pixels as a GEMM's B columns: one strided sequence, or an image of rows. */
static inline void oxo_pixel_columns(size_t h, size_t w, ptrdiff_t sh, ptrdiff_t sw, oxo_gemm *g)
{
    ptrdiff_t step;
    if (oxo_pixel_sequence(h, w, sh, sw, &step)) {
        g->b_w = 0, g->cs_bh = 0, g->cs_bw = step;
    } else {
        g->b_w = w, g->cs_bh = sh, g->cs_bw = sw;
    }
}

#endif
