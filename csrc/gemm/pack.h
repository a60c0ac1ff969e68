/* pack.h: packers for the GEMM engine's B operand (see oxo_pack_b_fn in onexone.h). */
#ifndef ONEXONE_PACK_H
#define ONEXONE_PACK_H
#include "../onexone.h"

/* B described by the strided fields of an oxo_gemm (ctx is that oxo_gemm). */
void oxo_pack_strided_f32(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,
                          void *dst, size_t ld, int transposed);
void oxo_pack_strided_f64(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,
                          void *dst, size_t ld, int transposed);

/* B described by the strided fields of an oxo_gemm, in pairs of rows for the kernel sets that
 * take them (oxo_kernels.pairs): dst[(p / 2) * ld + 2 * j + p % 2] = B[p0 + p, j0 + j], zeros
 * after an odd kc's last row and in columns [nc, nc rounded up to 8). */
void oxo_pack_pairs_f32(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,
                        void *dst, size_t ld, int transposed);

/* im2col of one image of a convolution, never materialized whole: B[p, j] with
 * p = (c, kh, kw) and j = (ho, wo) is x[c, ho*sh - ph + kh*dh, wo*sw - pw + kw*dw], or 0 in
 * the padding. A 1x1 kernel with stride is the strided 1x1 convolution. */
typedef struct oxo_im2col {
    oxo_tensor4 x; /* (N, C, H, W) with element strides */
    size_t kh, kw, ho, wo;
    ptrdiff_t sh, sw, ph, pw, dh, dw;
} oxo_im2col;

void oxo_pack_im2col_f32(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,
                         void *dst, size_t ld, int transposed);
void oxo_pack_im2col_f64(const void *ctx, size_t b, size_t p0, size_t kc, size_t j0, size_t nc,
                         void *dst, size_t ld, int transposed);

#endif
