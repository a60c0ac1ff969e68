/* gemm-scalar.c: portable C micro-kernels, f32 and f64, for every CPU without AVX2 (and
 * for aarch64, where the compiler vectorizes them itself).
 *
 * Computes: the same tiles as the vector kernels (see oxo_tile in onexone.h).
 * Tile:     4 x 16 for gemm, 4 x 4 for dot, any m <= 4, n <= 16.
 * Reduction: one chain per element along k, like the vector kernels; fused (fma) where the
 *           target has a fused multiply-add instruction, a*b+c otherwise.
 * Edges:    plain loops bounded by m and n.
 */
#include <math.h>
#include "../kernel_common.h"

#define OXO_SMR 4
#define OXO_SNR 16

#if defined(FP_FAST_FMAF)
#define OXO_FMAF(a, b, c) fmaf(a, b, c)
#else
#define OXO_FMAF(a, b, c) ((a) * (b) + (c))
#endif
#if defined(FP_FAST_FMA)
#define OXO_FMAD(a, b, c) fma(a, b, c)
#else
#define OXO_FMAD(a, b, c) ((a) * (b) + (c))
#endif

#define OXO_DEFINE_SCALAR_KERNELS(T, FMA, SUFFIX)                                               \
    static void oxo_gemm_##SUFFIX(const oxo_tile *t)                                           \
    {                                                                                          \
        const T *a = (const T *)t->a, *b = (const T *)t->b;                                    \
        T *c = (T *)t->c;                                                                      \
        const T *bias = (const T *)t->bias;                                                    \
        const size_t m = t->m, n = t->n;                                                       \
        T acc[OXO_SMR][OXO_SNR];                                                               \
        for (size_t i = 0; i < m; i++)                                                         \
            for (size_t j = 0; j < n; j++)                                                     \
                acc[i][j] = (t->flags & OXO_TILE_ACCUM) ? c[i * t->rs_c + j * t->cs_c] : (T)0; \
        for (size_t p = 0; p < t->k; p++) {                                                    \
            const T *brow = b + (ptrdiff_t)p * t->rs_b;                                        \
            for (size_t i = 0; i < m; i++) {                                                   \
                const T ai = a[(ptrdiff_t)i * t->rs_a + (ptrdiff_t)p * t->cs_a];               \
                for (size_t j = 0; j < n; j++) acc[i][j] = FMA(ai, brow[j], acc[i][j]);        \
            }                                                                                  \
        }                                                                                      \
        for (size_t i = 0; i < m; i++)                                                         \
            for (size_t j = 0; j < n; j++) {                                                   \
                T s = acc[i][j];                                                               \
                if (t->flags & OXO_TILE_ADDC) s = c[i * t->rs_c + j * t->cs_c] + s;            \
                if (t->flags & OXO_TILE_FINAL) {                                               \
                    if (t->bias_mode == OXO_BIAS_ROW) s += bias[i];                            \
                    else if (t->bias_mode == OXO_BIAS_COL) s += bias[j];                       \
                    s = oxo_activate_scalar_(s, t->act);                                       \
                }                                                                              \
                c[i * t->rs_c + j * t->cs_c] = s;                                              \
            }                                                                                  \
    }                                                                                          \
    static void oxo_dot_##SUFFIX(const oxo_dot_tile *t)                                        \
    {                                                                                          \
        const T *a = (const T *)t->a, *bt = (const T *)t->bt;                                  \
        T *c = (T *)t->c;                                                                      \
        const T *bias = (const T *)t->bias;                                                    \
        for (size_t i = 0; i < t->m; i++)                                                      \
            for (size_t j = 0; j < t->n; j++) {                                                \
                const T *ai = a + (ptrdiff_t)i * t->rs_a, *bj = bt + (ptrdiff_t)j * t->rs_bt;  \
                T s = 0;                                                                       \
                for (size_t p = 0; p < t->k; p++) s = FMA(ai[p], bj[p], s);                    \
                T *cij = c + (ptrdiff_t)i * t->rs_c + (ptrdiff_t)j * t->cs_c;                  \
                if (t->flags & (OXO_TILE_ACCUM | OXO_TILE_ADDC)) s = *cij + s;                 \
                if (t->flags & OXO_TILE_FINAL) {                                               \
                    if (t->bias_mode == OXO_BIAS_ROW) s += bias[i];                            \
                    else if (t->bias_mode == OXO_BIAS_COL) s += bias[j];                       \
                    s = oxo_activate_scalar_(s, t->act);                                       \
                }                                                                              \
                *cij = s;                                                                      \
            }                                                                                  \
    }

OXO_DEFINE_SCALAR_KERNELS(float, OXO_FMAF, f32_scalar)

static float oxo_f32_fma_probe__scalar(long iters)
{
    float a[12];
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < 12; i++) a[i] = OXO_FMAF(a[i], 1.0000001f, 1e-7f);
    }
    float s = 0;
    for (int i = 0; i < 12; i++) s += a[i];
    return s;
}
OXO_DEFINE_SCALAR_KERNELS(double, OXO_FMAD, f64_scalar)

/* the portable direct-convolution kernels (direct-scalar.c) */
void oxo_f32_direct__scalar(const oxo_direct_tile *t);
void oxo_f64_direct__scalar(const oxo_direct_tile *t);
void oxo_f32_dw__scalar(const oxo_dw_tile *t);
void oxo_f64_dw__scalar(const oxo_dw_tile *t);

const oxo_kernels oxo_f32_kernels_scalar = {
    "f32-gemm-4x16-scalar", OXO_SMR, OXO_SNR, 1, oxo_gemm_f32_scalar, oxo_dot_f32_scalar, 4, 4, oxo_f32_fma_probe__scalar,
    oxo_f32_direct__scalar, 4, 8, NULL, oxo_f32_dw__scalar};
const oxo_kernels oxo_f64_kernels_scalar = {
    "f64-gemm-4x16-scalar", OXO_SMR, OXO_SNR, 1, oxo_gemm_f64_scalar, oxo_dot_f64_scalar, 4, 4, oxo_f32_fma_probe__scalar,
    oxo_f64_direct__scalar, 4, 8, NULL, oxo_f64_dw__scalar};
