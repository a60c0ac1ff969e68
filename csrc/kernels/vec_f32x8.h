/* vec_f32x8.h: the unmasked part of gemm_vec_template.h's vocabulary for 8 floats in a ymm
 * register, shared by the AVX2 kernels and AVX-512's half-width set; each file adds its own
 * masks (AVX2: vector masks, AVX-512VL: k registers), OXO_HSUM's name and OXO_NAME. */
#ifndef ONEXONE_VEC_F32X8_H
#define ONEXONE_VEC_F32X8_H
static inline float oxo_hsum_f32x8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif
#define OXO_T float
#define OXO_V __m256
#define OXO_L 8
#define OXO_LOAD(p) _mm256_loadu_ps(p)
#define OXO_STORE(p, v) _mm256_storeu_ps(p, v)
#define OXO_SET1(x) _mm256_set1_ps(x)
#define OXO_ZERO() _mm256_setzero_ps()
#define OXO_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define OXO_ADD(a, b) _mm256_add_ps(a, b)
#define OXO_MAX(a, b) _mm256_max_ps(a, b)
#define OXO_MIN(a, b) _mm256_min_ps(a, b)
#define OXO_HSUM(v) oxo_hsum_f32x8(v)
