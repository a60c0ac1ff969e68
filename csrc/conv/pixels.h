/* pixels.h: how the ops see the pixels of an h x w plane with strides (sh, sw). */
#ifndef ONEXONE_PIXELS_H
#define ONEXONE_PIXELS_H
#include <stddef.h>
#include <string.h>

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

/* ---- zero-padded, stride-phase-split copies (the direct kernel's phase copy in conv2d.c, the
 * depthwise band in conv2d_grouped.c): element u of a row of phase q is the input at column
 * u*sw + q - pw, or 0 outside [0, W). */

/* A convolution's geometry is one the drivers take: kernel >= 1, stride and dilation >= 1,
 * padding >= 0. */
static inline int oxo_conv2d_geom_valid(const oxo_conv2d_geom *g)
{
    return g->kh > 0 && g->kw > 0 && g->sh >= 1 && g->sw >= 1 && g->dh >= 1 && g->dw >= 1 && g->ph >= 0 &&
           g->pw >= 0;
}

/* The index of phase q in sel[0..n), added at the end if new: the phases some tap reads, in
 * the order the taps first read them. */
static inline size_t oxo_phase_index(ptrdiff_t *sel, size_t *n, ptrdiff_t q)
{
    for (size_t i = 0; i < *n; i++)
        if (sel[i] == q) return i;
    sel[*n] = q;
    return (*n)++;
}

/* The columns [*ua, *ue) of a row of U that come from the input (c0 = q - pw: the input column
 * of u = 0). */
static inline void oxo_phase_cols(ptrdiff_t q, ptrdiff_t pw, ptrdiff_t sw, size_t w, size_t u,
                                  ptrdiff_t *ua, ptrdiff_t *ue)
{
    const ptrdiff_t c0 = q - pw;
    ptrdiff_t a = c0 >= 0 ? 0 : (-c0 + sw - 1) / sw;
    ptrdiff_t e = (ptrdiff_t)w - c0 <= 0 ? 0 : ((ptrdiff_t)w - c0 + sw - 1) / sw;
    if (e > (ptrdiff_t)u) e = (ptrdiff_t)u;
    if (a > e) a = e;
    *ua = a;
    *ue = e;
}

/* row[0, u): zeros, in[ua*step .. ue*step) step by step (in: the input row at column c0, or
 * NULL for a padding row), zeros. */
#define OXO_DEFINE_PHASE_ROW(T, NAME)                                                          \
    static inline void NAME(T *row, const T *in, ptrdiff_t step, ptrdiff_t ua, ptrdiff_t ue,    \
                            size_t u)                                                          \
    {                                                                                          \
        if (!in) {                                                                             \
            memset(row, 0, u * sizeof(T));                                                     \
            return;                                                                            \
        }                                                                                      \
        for (ptrdiff_t i = 0; i < ua; i++) row[i] = 0;                                         \
        if (step == 1) memcpy(row + ua, in + ua, (size_t)(ue - ua) * sizeof(T));                \
        else if (step == 2) /* a constant stride: the compiler vectorizes it */                 \
            for (ptrdiff_t i = ua; i < ue; i++) row[i] = in[2 * i];                             \
        else for (ptrdiff_t i = ua; i < ue; i++) row[i] = in[i * step];                        \
        for (ptrdiff_t i = ue; i < (ptrdiff_t)u; i++) row[i] = 0;                              \
    }
OXO_DEFINE_PHASE_ROW(float, oxo_phase_row_f32)
OXO_DEFINE_PHASE_ROW(double, oxo_phase_row_f64)
#undef OXO_DEFINE_PHASE_ROW

/* Both column phases of a row at stride 2 in one pass: r0[i] = in[2i - pw], r1[i] =
 * in[2i + 1 - pw] for i < u (0 outside the row's w columns; in NULL: a padding row). */
#define OXO_DEFINE_PHASE_ROW2(T, NAME)                                                         \
    static inline void NAME(T *r0, T *r1, const T *in, ptrdiff_t pw, size_t w, size_t u)        \
    {                                                                                          \
        if (!in) {                                                                             \
            memset(r0, 0, u * sizeof(T));                                                      \
            memset(r1, 0, u * sizeof(T));                                                      \
            return;                                                                            \
        }                                                                                      \
        const ptrdiff_t c = -pw, W = (ptrdiff_t)w, U = (ptrdiff_t)u; /* r0[i]: column 2i + c */ \
        ptrdiff_t a = c >= 0 ? 0 : (1 - c) / 2, e = (W - c) / 2; /* both in the row */         \
        if (e > U) e = U;                                                                      \
        if (a > e) a = e;                                                                      \
        for (ptrdiff_t i = 0; i < a; i++) {                                                    \
            const ptrdiff_t k = 2 * i + c;                                                     \
            r0[i] = k >= 0 && k < W ? in[k] : 0;                                               \
            r1[i] = k + 1 >= 0 && k + 1 < W ? in[k + 1] : 0;                                   \
        }                                                                                      \
        const T *s = in + (2 * a + c); /* column 2a + c >= 0: no address before the row */    \
        for (ptrdiff_t i = 0; i < e - a; i++) { /* the compiler vectorizes it (even/odd shuffles) */ \
            r0[a + i] = s[2 * i];                                                              \
            r1[a + i] = s[2 * i + 1];                                                          \
        }                                                                                      \
        for (ptrdiff_t i = e; i < U; i++) {                                                    \
            const ptrdiff_t k = 2 * i + c;                                                     \
            r0[i] = k >= 0 && k < W ? in[k] : 0;                                               \
            r1[i] = k + 1 >= 0 && k + 1 < W ? in[k + 1] : 0;                                   \
        }                                                                                      \
    }
OXO_DEFINE_PHASE_ROW2(float, oxo_phase_row2_f32)
OXO_DEFINE_PHASE_ROW2(double, oxo_phase_row2_f64)
#undef OXO_DEFINE_PHASE_ROW2

#endif
