/* pack.c: the packers that feed the GEMM engine blocks of B it cannot read in place.
 *
 * Every packer has the oxo_pack_b_fn signature: fill rows [p0, p0+kc) x columns
 * [j0, j0+nc) of image b's B into dst, row-major (dst[p*ld + j]) or transposed
 * (dst[j*ld + p], for the dot-product tail). Written once per dtype by a macro. */
#include <string.h>

#include "pack.h"

/* ---- strided B (an oxo_gemm's own description) ---------------------------------------- */

/* The start of o[p*ld + q] = src[p + q*sq] (p < kc, q < n; a transposed source, W^T for
 * NHWC, contiguous along p): the columns q it did, in 4 x 4 blocks transposed in SSE registers
 * (baseline on x86-64); the packer does the rest one element at a time, a store per element
 * to kc different cache lines. NHWC / NCHW speed, Zen 4: 1024->256 at 14x14, 2 threads,
 * 0.75 -> 1.00; 160->960 at 7x7, 1 thread, 0.59 -> 0.86. */
#if defined(__SSE__) || defined(_M_X64)
#include <xmmintrin.h>
static size_t transpose4_f32(const float *src, ptrdiff_t sq, size_t kc, size_t n, float *o, ptrdiff_t ld)
{
    size_t q = 0;
    for (; q + 4 <= n; q += 4) {
        const float *s0 = src + (ptrdiff_t)q * sq, *s1 = s0 + sq, *s2 = s1 + sq, *s3 = s2 + sq;
        float *oq = o + q;
        size_t p = 0;
        for (; p + 4 <= kc; p += 4) {
            __m128 r0 = _mm_loadu_ps(s0 + p), r1 = _mm_loadu_ps(s1 + p);
            __m128 r2 = _mm_loadu_ps(s2 + p), r3 = _mm_loadu_ps(s3 + p);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            _mm_storeu_ps(oq + (ptrdiff_t)p * ld, r0);
            _mm_storeu_ps(oq + (ptrdiff_t)(p + 1) * ld, r1);
            _mm_storeu_ps(oq + (ptrdiff_t)(p + 2) * ld, r2);
            _mm_storeu_ps(oq + (ptrdiff_t)(p + 3) * ld, r3);
        }
        for (; p < kc; p++) {
            float *d = oq + (ptrdiff_t)p * ld;
            d[0] = s0[p];
            d[1] = s1[p];
            d[2] = s2[p];
            d[3] = s3[p];
        }
    }
    return q;
}
#else
#define transpose4_f32(src, sq, kc, n, o, ld) ((size_t)0)
#endif
#define transpose4_f64(src, sq, kc, n, o, ld) ((size_t)0)

/* The same with the active ISA's 16 x 16 register transposes (oxo_kernels.transpose_rows,
 * AVX-512 f32), 16 columns q at a time, then transpose4_f32 for the rest. NHWC (W^T packed
 * per block) on an Intel Xeon, alternating calls, 4 x 4 -> 16 x 16, 1 / 2 threads:
 * r50.c4.reduce 1.10x / 1.08x, c4.expand 1.03x / 1.03x, c5.reduce 1.03x / 1.04x, mv2.14.exp
 * 1.07x / 1.00x, incep3a.1x1 0.99x / 1.05x, the other r50 and mv2 layers 1.00-1.02x. */
static size_t transpose16_f32(const float *src, ptrdiff_t sq, size_t kc, size_t n, float *o, ptrdiff_t ld)
{
    const oxo_kernels *ks = oxo_kernels_for(oxo_isa_active(), OXO_F32);
    size_t q = 0;
    if (ks && ks->transpose_rows) {
        for (; q + 16 <= n; q += 16) ks->transpose_rows(src + (ptrdiff_t)q * sq, sq, 16, kc, o + q, (size_t)ld);
    }
    return q + transpose4_f32(src + (ptrdiff_t)q * sq, sq, kc, n - q, o + q, ld);
}

/* Where image b's (b = image * groups + group) row p0 of B starts, in elements from g->B. */
static ptrdiff_t strided_b_start(const oxo_gemm *g, size_t b, size_t p0)
{
    const size_t groups = g->groups > 1 ? g->groups : 1;
    return (ptrdiff_t)(b / groups) * g->bs_b + (ptrdiff_t)(b % groups) * g->gs_b + (ptrdiff_t)p0 * g->rs_b;
}

#define OXO_DEFINE_PACK_STRIDED(T, NAME, TRANSPOSE4)                                         \
    void NAME(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc, void *dst, \
              size_t ld, int transposed)                                                       \
    {                                                                                          \
        const oxo_gemm *g = (const oxo_gemm *)ctx;                                             \
        const T *base = (const T *)g->B + strided_b_start(g, b, p0);                           \
        const size_t bw = g->b_w ? g->b_w : g->N;                                              \
        T *out = (T *)dst;                                                                     \
        /* walk the columns in runs that stay on one image row */                              \
        for (size_t j = 0; j < nc;) {                                                          \
            const size_t hi = (j0 + j) / bw, lo = (j0 + j) % bw;                               \
            const size_t run = bw - lo < nc - j ? bw - lo : nc - j;                            \
            const T *src = base + (ptrdiff_t)hi * g->cs_bh + (ptrdiff_t)lo * g->cs_bw;         \
            const ptrdiff_t sp = g->rs_b, sq = g->cs_bw;                                       \
            /* dst element (p, q) is at out + p*dp + q*dq */                                   \
            const ptrdiff_t dp = transposed ? 1 : (ptrdiff_t)ld;                               \
            const ptrdiff_t dq = transposed ? (ptrdiff_t)ld : 1;                               \
            T *o = out + (ptrdiff_t)j * dq;                                                    \
            if (!transposed && sq == 1) {                                                      \
                for (size_t p = 0; p < kc; p++)                                                \
                    memcpy(o + (ptrdiff_t)p * dp, src + (ptrdiff_t)p * sp, run * sizeof(T));   \
            } else if ((sq < 0 ? -sq : sq) <= (sp < 0 ? -sp : sp)) { /* read along columns */  \
                for (size_t p = 0; p < kc; p++)                                                \
                    for (size_t q = 0; q < run; q++)                                           \
                        o[(ptrdiff_t)p * dp + (ptrdiff_t)q * dq] = src[(ptrdiff_t)p * sp + (ptrdiff_t)q * sq]; \
            } else { /* read along rows (a transposed source: W^T, x^T) */                     \
                size_t q = !transposed && sp == 1 ? TRANSPOSE4(src, sq, kc, run, o, dp) : 0;   \
                for (; q < run; q++)                                                           \
                    for (size_t p = 0; p < kc; p++)                                            \
                        o[(ptrdiff_t)p * dp + (ptrdiff_t)q * dq] = src[(ptrdiff_t)p * sp + (ptrdiff_t)q * sq]; \
            }                                                                                  \
            j += run;                                                                          \
        }                                                                                      \
    }
OXO_DEFINE_PACK_STRIDED(float, oxo_pack_strided_f32, transpose16_f32)
OXO_DEFINE_PACK_STRIDED(double, oxo_pack_strided_f64, transpose4_f64)

/* B's columns one by one, each along K: where K is contiguous (W^T for NHWC) a pair of rows
 * is one 8-byte move. B is a few thousand weights, packed once per block. */
void oxo_pack_pairs_f32(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,
                        void *dst, size_t ld, int transposed)
{
    (void)transposed;
    const oxo_gemm *g = (const oxo_gemm *)ctx;
    const float *base = (const float *)g->B + strided_b_start(g, b, p0);
    const size_t bw = g->b_w ? g->b_w : g->N, width = (nc + 7) / 8 * 8, pairs = kc / 2;
    const ptrdiff_t rs = g->rs_b;
    float *out = (float *)dst;
    for (size_t h = 0; h < (kc + 1) / 2; h++) { /* the padding columns; an odd kc's last row */
        memset(out + h * ld + 2 * nc, 0, 2 * (width - nc) * sizeof(float));
        if (h == pairs) memset(out + h * ld, 0, 2 * nc * sizeof(float));
    }
    for (size_t j = 0; j < nc; j++) {
        const size_t col = j0 + j;
        const float *src = base + (ptrdiff_t)(col / bw) * g->cs_bh + (ptrdiff_t)(col % bw) * g->cs_bw;
        float *o = out + 2 * j;
        if (rs == 1) {
            for (size_t h = 0; h < pairs; h++) memcpy(o + h * ld, src + 2 * h, 2 * sizeof(float));
        } else {
            for (size_t h = 0; h < pairs; h++) {
                o[h * ld] = src[(ptrdiff_t)(2 * h) * rs];
                o[h * ld + 1] = src[(ptrdiff_t)(2 * h + 1) * rs];
            }
        }
        if (kc & 1) o[pairs * ld] = src[(ptrdiff_t)(kc - 1) * rs];
    }
}

/* ---- im2col -------------------------------------------------------------------------- */
/* For output row ho and kernel offset (kh, kw): the input row, or -1 in the padding, and the
 * range [lo, hi) of output columns whose input column is inside the image. */
static ptrdiff_t in_row(const oxo_im2col *g, size_t ho, size_t kh)
{
    const ptrdiff_t h = (ptrdiff_t)ho * g->sh - g->ph + (ptrdiff_t)kh * g->dh;
    return (h >= 0 && h < (ptrdiff_t)g->x.h) ? h : -1;
}

static void valid_cols(const oxo_im2col *g, size_t kw, size_t *lo, size_t *hi)
{
    /* w = wo*sw - pw + kw*dw must be in [0, W) */
    const ptrdiff_t off = (ptrdiff_t)kw * g->dw - g->pw;
    ptrdiff_t a = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
    ptrdiff_t z = (ptrdiff_t)g->x.w - 1 - off; /* largest wo*sw */
    ptrdiff_t e = z < 0 ? 0 : z / g->sw + 1;
    if (e > (ptrdiff_t)g->wo) e = (ptrdiff_t)g->wo;
    if (a > e) a = e;
    *lo = (size_t)a;
    *hi = (size_t)e;
}

/* Each row p of the block is, along one output row, a run of zeros (left padding), a run of
 * input elements (copied: memcpy when both strides are 1) and a run of zeros (right padding);
 * an output row whose input row is in the padding is all zeros. */
#define OXO_DEFINE_PACK_IM2COL(T, NAME)                                                        \
    void NAME(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc, void *dst, \
              size_t ld, int transposed)                                                       \
    {                                                                                          \
        const oxo_im2col *g = (const oxo_im2col *)ctx;                                         \
        const T *x = (const T *)g->x.data + (ptrdiff_t)b * g->x.sn;                            \
        const size_t khw = g->kh * g->kw;                                                      \
        T *out = (T *)dst;                                                                     \
        const ptrdiff_t dj = transposed ? (ptrdiff_t)ld : 1, dp = transposed ? 1 : (ptrdiff_t)ld; \
        const ptrdiff_t step = g->sw * g->x.sw; /* input elements between output columns */    \
        for (size_t p = 0; p < kc; p++) {                                                      \
            const size_t q = p0 + p, c = q / khw, kh = (q % khw) / g->kw, kw = q % g->kw;      \
            size_t lo, hi;                                                                     \
            valid_cols(g, kw, &lo, &hi);                                                       \
            const T *xc = x + (ptrdiff_t)c * g->x.sc;                                          \
            const ptrdiff_t wofs = (ptrdiff_t)kw * g->dw - g->pw;                              \
            T *o = out + (ptrdiff_t)p * dp;                                                    \
            for (size_t j = 0; j < nc;) {                                                      \
                const size_t ho = (j0 + j) / g->wo, wo0 = (j0 + j) % g->wo;                    \
                const size_t run = g->wo - wo0 < nc - j ? g->wo - wo0 : nc - j;                \
                const ptrdiff_t h = in_row(g, ho, kh);                                         \
                /* columns [wo0, wo0 + run): zeros, then [a, e) from x, then zeros */          \
                size_t a = h < 0 ? wo0 + run : (lo > wo0 ? lo : wo0);                          \
                size_t e = h < 0 ? wo0 + run : (hi < wo0 + run ? hi : wo0 + run);              \
                if (a > wo0 + run) a = wo0 + run;                                              \
                if (e < a) e = a;                                                              \
                T *oj = o + (ptrdiff_t)j * dj;                                                 \
                if (transposed) {                                                              \
                    size_t r = 0;                                                              \
                    for (; r < a - wo0; r++) oj[(ptrdiff_t)r * dj] = 0;                        \
                    if (e > a) {                                                               \
                        const T *src = xc + h * g->x.sh + ((ptrdiff_t)a * g->sw + wofs) * g->x.sw; \
                        for (size_t i = 0; i < e - a; i++, r++) oj[(ptrdiff_t)r * dj] = src[(ptrdiff_t)i * step]; \
                    }                                                                          \
                    for (; r < run; r++) oj[(ptrdiff_t)r * dj] = 0;                            \
                } else {                                                                       \
                    memset(oj, 0, (a - wo0) * sizeof(T));                                      \
                    if (e > a) {                                                               \
                        const T *src = xc + h * g->x.sh + ((ptrdiff_t)a * g->sw + wofs) * g->x.sw; \
                        T *d = oj + (a - wo0);                                                 \
                        if (step == 1) memcpy(d, src, (e - a) * sizeof(T));                    \
                        else for (size_t i = 0; i < e - a; i++) d[i] = src[(ptrdiff_t)i * step]; \
                    }                                                                          \
                    memset(oj + (e - wo0), 0, (wo0 + run - e) * sizeof(T));                    \
                }                                                                              \
                j += run;                                                                      \
            }                                                                                  \
        }                                                                                      \
    }
OXO_DEFINE_PACK_IM2COL(float, oxo_pack_im2col_f32)
OXO_DEFINE_PACK_IM2COL(double, oxo_pack_im2col_f64)
