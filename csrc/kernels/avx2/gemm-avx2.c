/* gemm-avx2.c: AVX2+FMA micro-kernels, f32 and f64.
 *
 * Computes: C (m x n) (+)= A (m x k) B (k x n), bias and activation fused in the store
 *           (see oxo_tile in onexone.h).
 * Tile:     broadcast kernel 6 rows x 2 ymm (6x16 f32, 6x8 f64): 12 accumulators, 2 B vectors
 *           and 1 broadcast, 15 of the 16 ymm registers. dot kernel up to 4 x 4... bounded by
 *           16 registers the compiler spills a little there; it only runs on narrow edges.
 *           direct convolution kernel (direct_vec_template.h, oxo_direct_tile): 6 output
 *           channels x 2 ymm of output pixels, masks as vmaskmov lane vectors.
 * ISA:      AVX2 + FMA3, compiled with -mavx2 -mfma only in this file.
 * Edges:    vmaskmov loads/stores (fault-suppressing) on the last vector; m < 6 by the instance
 *           compiled for that m. Nothing outside the tile is read or written.
 */
#include <immintrin.h>
#include "../kernel_common.h"

#define OXO_MR 6
#define OXO_NV 2
#define OXO_UNROLL_K _Pragma("GCC unroll 2")
/* direct convolution (direct_vec_template.h): 6 output channels x 2 ymm of output pixels */
#define OXO_DIRECT_MR 6
#define OXO_DIRECT_NV 2

static inline __m256i oxo_mask32_avx2(int n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}
static inline __m256i oxo_mask64_avx2(int n)
{
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), idx);
}
/* lane mask from bits (bit l set: lane l on), for the direct kernel */
static inline __m256i oxo_maskbits32_avx2(unsigned b)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)b), bit), bit);
}
static inline __m256i oxo_maskbits64_avx2(unsigned b)
{
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x((long long)b), bit), bit);
}
static inline double oxo_hsum_pd_avx2(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/* vmaskmovps is a load and an ALU uop: the f32 tiles load a full tile's last vector of B
 * plainly (gemm_vec_template.h). Intel Xeon under ONEXONE_ISA=avx2, alternating processes,
 * GFLOP/s with the mask -> without: 2 threads r50.c4.reduce 146-147 -> 165-171, r50.c5.reduce
 * 141-147 -> 162-164, r50.c2.expand 150-158 -> 167-170, the other r50 and mv2 layers
 * 1.01-1.11x; 1 thread 0.95-1.11x (mv2.112.proj 0.95-1.06x). Not for float64: 0.86-1.05x.
 * Full tiles also store their last vector plainly: 1.00-1.05x here (2 threads, K = 16-1024);
 * meant for AMD's AVX2 cores, where a masked store is microcoded (not measured there). */
#define OXO_FULL_TILE_PLAIN 1
/* ---- f32 ---- */
#include "../vec_f32x8.h"
#define OXO_M __m256i
#define OXO_MASK(n) oxo_mask32_avx2(n)
#define OXO_LOADM(m, p) _mm256_maskload_ps(p, m)
#define OXO_STOREM(p, m, v) _mm256_maskstore_ps(p, m, v)
#define OXO_NAME(x) oxo_f32_##x##__avx2
#define OXO_MASKBITS(b) oxo_maskbits32_avx2(b)
#include "../gemm_vec_template.h"
#include "../direct_vec_template.h"
#include "../dw_vec_template.h"
#undef OXO_FULL_TILE_PLAIN
#include "../vec_undef.h"

/* ---- f64 ---- */
#define OXO_T double
#define OXO_V __m256d
#define OXO_L 4
#define OXO_M __m256i
#define OXO_MASK(n) oxo_mask64_avx2(n)
#define OXO_LOAD(p) _mm256_loadu_pd(p)
#define OXO_LOADM(m, p) _mm256_maskload_pd(p, m)
#define OXO_STORE(p, v) _mm256_storeu_pd(p, v)
#define OXO_STOREM(p, m, v) _mm256_maskstore_pd(p, m, v)
#define OXO_SET1(x) _mm256_set1_pd(x)
#define OXO_ZERO() _mm256_setzero_pd()
#define OXO_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define OXO_ADD(a, b) _mm256_add_pd(a, b)
#define OXO_MAX(a, b) _mm256_max_pd(a, b)
#define OXO_MIN(a, b) _mm256_min_pd(a, b)
#define OXO_HSUM(v) oxo_hsum_pd_avx2(v)
#define OXO_NAME(x) oxo_f64_##x##__avx2
#define OXO_MASKBITS(b) oxo_maskbits64_avx2(b)
#include "../gemm_vec_template.h"
#include "../direct_vec_template.h"
#include "../dw_vec_template.h"

static float oxo_f64_fma_probe_as_f32__avx2(long iters) { return oxo_f64_fma_probe__avx2(iters); }

const oxo_kernels oxo_f32_kernels_avx2 = {
    "f32-gemm-6x16-avx2", 6, 16, 8, oxo_f32_gemm__avx2, oxo_f32_dot__avx2, 4, 4, oxo_f32_fma_probe__avx2,
    oxo_f32_direct__avx2, OXO_DIRECT_MR, OXO_DIRECT_NV, NULL, oxo_f32_dw__avx2};
const oxo_kernels oxo_f64_kernels_avx2 = {
    "f64-gemm-6x8-avx2", 6, 8, 4, oxo_f64_gemm__avx2, oxo_f64_dot__avx2, 4, 4, oxo_f64_fma_probe_as_f32__avx2,
    oxo_f64_direct__avx2, OXO_DIRECT_MR, OXO_DIRECT_NV, NULL, oxo_f64_dw__avx2};
