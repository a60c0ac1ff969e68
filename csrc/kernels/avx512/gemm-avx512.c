/* gemm-avx512.c: AVX-512F micro-kernels, f32 and f64.
 *
 * Computes: C (m x n) (+)= A (m x k) B (k x n), bias and activation fused in the store
 *           (see oxo_tile in onexone.h for strides and flags).
 * Tile:     broadcast kernel 8 rows x 3 zmm (8x48 f32, 8x24 f64): 24 accumulators,
 *           3 B vectors and 1 broadcast in flight, 28 of the 32 zmm registers.
 *           f32 GEMMs at most 16 columns wide: 16 rows x 1 zmm (the tall set, 16 chains).
 *           f32 GEMMs of 17-24 or 5-8 columns with A contiguous along K (NHWC): 8 x 3 and
 *           16 x 1 zmm of 8 columns x 2 steps of K each (the pairs sets, B packed in pairs
 *           of rows).
 *           dot kernel up to 4 x 4 (16 accumulators).
 *           direct convolution kernel (direct_vec_template.h, oxo_direct_tile): 6 output
 *           channels x 4 zmm of output pixels (6x64 f32, 6x32 f64), masks in k registers;
 *           and along output channels (direct_fv_template.h): 7 pixels x 2 zmm of channels.
 * ISA:      AVX-512F (masking, 32 registers). Compiled with -mavx512f -mavx512vl -mfma only
 *           in this file; chosen at run time by dispatch.c.
 * Edges:    lane masks (fault-suppressing loads/stores) on the last vector; m < 6 by the
 *           instance compiled for that m. Nothing outside the tile is read or written.
 */
#include <immintrin.h>
#include <string.h>
#include "../kernel_common.h"

#ifndef OXO_UNROLL
#define OXO_UNROLL _Pragma("GCC unroll 16")
#endif

#ifndef OXO_MR /* the tile; -DOXO_MR=.. -DOXO_NV=.. to try others */
#define OXO_MR 8
#define OXO_NV 3
#endif
#define OXO_UNROLL_K _Pragma("GCC unroll 2")
/* direct convolution (direct_vec_template.h): 6 output channels x 4 zmm of output pixels,
 * 24 accumulators, 4 input vectors, 1 broadcast; the 4 lane masks stay in k registers.
 * (8 x 3 measured the same on 56x56 maps, worse on 7x7 ones, whose 49 pixels 6 x 4 covers) */
#ifndef OXO_DIRECT_MR
#define OXO_DIRECT_MR 6
#define OXO_DIRECT_NV 4
#endif
/* direct convolution along output channels (direct_fv_template.h): 7 pixels x 2 zmm of
 * output channels (7x32 f32, 7x16 f64), 14 accumulators, up to 14 weight vectors (a run of
 * 7 taps), 1 broadcast */
#define OXO_FV_NP 7
#define OXO_FV_NV 2
/* keeps a lane mask in a k register through the loop (GCC otherwise reloads it from the
 * stack on every iteration) */
#define OXO_KEEP_MASK(m) __asm__("" : "+Yk"(m))

/* ---- f32 ---- */
#define OXO_T float
#define OXO_V __m512
#define OXO_L 16
#define OXO_M __mmask16
#define OXO_MASK(n) ((__mmask16)(0xFFFFu >> (16 - (n))))
#define OXO_LOAD(p) _mm512_loadu_ps(p)
#define OXO_LOADM(m, p) _mm512_maskz_loadu_ps(m, p)
#define OXO_STORE(p, v) _mm512_storeu_ps(p, v)
#define OXO_STOREM(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define OXO_SET1(x) _mm512_set1_ps(x)
#define OXO_ZERO() _mm512_setzero_ps()
#define OXO_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define OXO_ADD(a, b) _mm512_add_ps(a, b)
#define OXO_MAX(a, b) _mm512_max_ps(a, b)
#define OXO_MIN(a, b) _mm512_min_ps(a, b)
#define OXO_HSUM(v) _mm512_reduce_add_ps(v)
#define OXO_NAME(x) oxo_f32_##x##__avx512
/* 16 vectors v[k] -> out[k] = sum of v[k]'s lanes, by halving: 256-bit, 128-bit, 64-bit and
 * 32-bit halves of pairs added (15 adds, 30 shuffles). Lane 4L+m of the last sum holds
 * v[4m+L]'s total, so the caller passes v[4j+i] = acc[i][j] and gets out[4i+j]. */
static inline void oxo_reduce16_ps(const __m512 v[16], float out[16])
{
    __m512 s1[8], s2[4], s3[2];
    for (int k = 0; k < 8; k++)
        s1[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int k = 0; k < 4; k++)
        s2[k] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[2 * k], s1[2 * k + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(s1[2 * k], s1[2 * k + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int k = 0; k < 2; k++)
        s3[k] = _mm512_add_ps(_mm512_shuffle_ps(s2[2 * k], s2[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(s2[2 * k], s2[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                        _mm512_shuffle_ps(s3[0], s3[1], _MM_SHUFFLE(3, 1, 3, 1))));
}
#define OXO_REDUCE16(v, out) oxo_reduce16_ps(v, out)
#define OXO_MASKBITS(b) ((__mmask16)(b))
#define OXO_LOADA(p) _mm512_load_ps(p)
/* 8 vectors of 16 lanes, P[p] for p < np (np <= 8), transposed in registers into 16 rows of
 * np lanes, row r (r < rows) stored under an np-lane mask at y + r*rs_y (unpack pairs of
 * vectors, shuffle to 4 of them per 128-bit block, join the two halves per 256 bits): 40
 * shuffles and 16 stores instead of a scalar copy per element. Used by the stores of tiles
 * that hold a transposed output: the channel-vectorized direct tile (direct_fv_template.h:
 * pixels x channels, y NCHW) and the GEMM tile writing y^T into an NHWC y (filters x pixels). */
static inline __attribute__((always_inline)) void
oxo_tstore16_f32(float *y, ptrdiff_t rs_y, size_t rows, const __m512 P[8], const int np)
{
    const __mmask8 k = (__mmask8)((1u << np) - 1);
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    __m512 t[8], u[8];
    OXO_UNROLL for (int q = 0; q < 4; q++) { /* block b: (P[2q], P[2q+1]) at lanes 4b, 4b+1 / 4b+2, 4b+3 */
        t[2 * q] = _mm512_unpacklo_ps(P[2 * q], P[2 * q + 1]);
        t[2 * q + 1] = _mm512_unpackhi_ps(P[2 * q], P[2 * q + 1]);
    }
    OXO_UNROLL for (int h = 0; h < 2; h++) { /* u[4h + r], block b: lane 4b + r of vectors 4h .. 4h+3 */
        u[4 * h] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
        u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
    }
    OXO_UNROLL for (int r = 0; r < 4; r++) { /* rows r, 4+r (a) and 8+r, 12+r (b): 8 vectors' lanes each */
        const __m512 a = _mm512_permutex2var_ps(u[r], lo, u[4 + r]);
        const __m512 b = _mm512_permutex2var_ps(u[r], hi, u[4 + r]);
        const __m256 out[4] = {_mm512_castps512_ps256(a),
                               _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)),
                               _mm512_castps512_ps256(b),
                               _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(b), 1))};
        OXO_UNROLL for (int j = 0; j < 4; j++) {
            const size_t row = (size_t)(4 * j + r);
            if (row < rows) _mm256_mask_storeu_ps(y + (ptrdiff_t)row * rs_y, k, out[j]);
        }
    }
}

/* the direct tile: np <= 7 pixels x OXO_FV_NV vectors of channels, m channels */
static inline __attribute__((always_inline)) void
oxo_fv_store_f32(float *y, ptrdiff_t rs_y, size_t m, const __m512 acc[][OXO_FV_NV], const int np)
{
    OXO_UNROLL for (int v = 0; v < OXO_FV_NV; v++) {
        __m512 P[8];
        OXO_UNROLL for (int p = 0; p < 8; p++) P[p] = p < np ? acc[p][v] : _mm512_setzero_ps();
        if (m > (size_t)v * 16) oxo_tstore16_f32(y + (ptrdiff_t)v * 16 * rs_y, rs_y, m - (size_t)v * 16, P, np);
    }
}

/* the GEMM tile with C transposed (rs_c 1): MR rows x NV vectors of n columns, each column
 * one masked row of MR elements, cs_c apart */
static inline __attribute__((always_inline)) void
oxo_gemm_tstore_f32(float *c, ptrdiff_t cs_c, size_t n, __m512 acc[][OXO_NV], const int mr, const int nv)
{
    OXO_UNROLL for (int v = 0; v < nv; v++) {
        __m512 P[8];
        OXO_UNROLL for (int i = 0; i < 8; i++) P[i] = i < mr ? acc[i][v] : _mm512_setzero_ps();
        if (n > (size_t)v * 16) oxo_tstore16_f32(c + (ptrdiff_t)v * 16 * cs_c, cs_c, n - (size_t)v * 16, P, mr);
    }
}
#define OXO_TSTORE(c, cs_c, n, acc, MR, NV) oxo_gemm_tstore_f32(c, cs_c, n, acc, MR, NV)

/* oxo_kernels.transpose_rows: 16 rows x 16 columns at a time, loaded (the last columns under
 * a mask; rows past `rows` as zeros), transposed in registers (unpack pairs of rows, shuffle
 * to 4 rows per 128-bit block, then two rounds of 128-bit block shuffles: 64 shuffles per 256
 * elements) and stored as 16 rows of dst. The channel-vectorized direct kernel's weights are
 * packed by it: r50.c4.3x3's 590K weights on one thread 279 us with a scalar copy. */
static void oxo_f32_transpose_rows__avx512(const void *src_, ptrdiff_t rs, size_t rows, size_t cols,
                                           void *dst_, size_t ld)
{
    const float *src = (const float *)src_;
    float *dst = (float *)dst_;
    for (size_t k = 0; k < cols; k += 16) {
        const size_t nk = cols - k < 16 ? cols - k : 16;
        const __mmask16 m = (__mmask16)(0xFFFFu >> (16 - nk));
        __m512 r[16], t[16], u[16];
        OXO_UNROLL for (int i = 0; i < 16; i++)
            r[i] = (size_t)i < rows ? _mm512_maskz_loadu_ps(m, src + (ptrdiff_t)i * rs + k) : _mm512_setzero_ps();
        OXO_UNROLL for (int j = 0; j < 8; j++) { /* per 128-bit block: rows 2j, 2j+1 interleaved */
            t[2 * j] = _mm512_unpacklo_ps(r[2 * j], r[2 * j + 1]);
            t[2 * j + 1] = _mm512_unpackhi_ps(r[2 * j], r[2 * j + 1]);
        }
        OXO_UNROLL for (int j = 0; j < 4; j++) { /* u[4j + c], block b: rows 4j..4j+3 of column 4b + c */
            u[4 * j] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0x44);
            u[4 * j + 1] = _mm512_shuffle_ps(t[4 * j], t[4 * j + 2], 0xEE);
            u[4 * j + 2] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0x44);
            u[4 * j + 3] = _mm512_shuffle_ps(t[4 * j + 1], t[4 * j + 3], 0xEE);
        }
        OXO_UNROLL for (int c = 0; c < 4; c++) { /* columns c, 4 + c, 8 + c, 12 + c */
            const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
            const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
            const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
            const __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
            const __m512 col[4] = {_mm512_shuffle_f32x4(v0, w0, 0x88), _mm512_shuffle_f32x4(v1, w1, 0x88),
                                   _mm512_shuffle_f32x4(v0, w0, 0xDD), _mm512_shuffle_f32x4(v1, w1, 0xDD)};
            OXO_UNROLL for (int b = 0; b < 4; b++) {
                const size_t kk = (size_t)(4 * b + c);
                if (kk < nk) _mm512_storeu_ps(dst + (k + kk) * ld, col[b]);
            }
        }
    }
}
/* oxo_kernels.phase_row2: 16 outputs of each phase at a time from two masked loads of 32
 * input columns (the lanes outside the row: zeros, never read), split by two
 * lane permutes, stored under the outputs' mask. A row of the 28x28 maps' copies (15 wide)
 * is one step, where the portable loop ran 3 steps of 4 and scalar edges. With padding,
 * each row's first and last steps load under a mask and expand in registers (vexpandps);
 * measured on an Intel Xeon only, not on AMD's Zen 4, where this copy also runs (for the
 * pixel kernel at stride 2). */
static void oxo_f32_phase_row2__avx512(void *r0_, void *r1_, const void *in_, ptrdiff_t pw, size_t w, size_t u)
{
    float *r0 = (float *)r0_, *r1 = (float *)r1_;
    const float *in = (const float *)in_;
    if (!in) {
        memset(r0, 0, u * sizeof(float));
        memset(r1, 0, u * sizeof(float));
        return;
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const ptrdiff_t W = (ptrdiff_t)w;
    for (size_t i = 0; i < u; i += 16) {
        const ptrdiff_t k0 = 2 * (ptrdiff_t)i - pw; /* the input column of lane 0 */
        __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
        for (int h = 0; h < 2; h++) { /* lanes k0 + 16h .. + 15 that lie in [0, W) */
            const ptrdiff_t k = k0 + 16 * h, a = k < 0 ? -k : 0, e = W - k > 16 ? 16 : W - k;
            if (a >= e) continue;
            const __mmask16 m = (__mmask16)((0xFFFFu >> (16 - (e - a))) << a);
            /* lanes a .. e-1 from in[k + a] on: the first e - a lanes loaded from there (no
             * address before the row), moved up to lane a in registers (vexpandps from memory
             * is microcoded on some cores) */
            const __m512 v = a == 0 && e == 16 ? _mm512_loadu_ps(in + k)
                             : _mm512_maskz_expand_ps(m, _mm512_maskz_loadu_ps((__mmask16)(0xFFFFu >> (16 - (e - a))), in + k + a));
            if (h) hi = v;
            else lo = v;
        }
        const size_t n = u - i < 16 ? u - i : 16;
        const __mmask16 out = (__mmask16)(0xFFFFu >> (16 - n));
        _mm512_mask_storeu_ps(r0 + i, out, _mm512_permutex2var_ps(lo, even, hi));
        _mm512_mask_storeu_ps(r1 + i, out, _mm512_permutex2var_ps(lo, odd, hi));
    }
}
#define OXO_FV_STORE(y, rs_y, m, acc, np) oxo_fv_store_f32(y, rs_y, m, acc, np)
/* Full 8 x 48 tiles load B's last vector without its mask (a copy of the k loop of their
 * own, see gemm_vec_template.h). On the Intel machine (two 512-bit FMA units), stop 30,
 * alternating processes, masked -> plain, GFLOP/s medians of 8 pairs: an in-L2 GEMM 2048->64
 * at 4x12, 1 thread, 1.03-1.05x (every pair 1.03-1.10x); 2 threads, batch 1: r50.c5.reduce
 * 1.02-1.04x, r50.c4.reduce 1.03-1.04x, r50.c4.expand 1.00-1.05x, r50.c3.reduce 1.00-1.02x,
 * r50.c2.expand 1.00-1.02x, r50.c2.reduce 0.98-1.04x; batch 8 r50.c3.reduce 1.02-1.04x,
 * r50.c2.reduce 1.01-1.02x; 1 thread r50.c5.reduce 1.02-1.04x. Zen 4 had measured this
 * copy on every set at 0.91-0.95x, by code layout (see gemm_vec_template.h); on this set
 * alone, stop 31, alternating processes, masked / plain: r50 layers at 1 and 2 threads and
 * mv2 layers at 2 threads 0.99-1.01x, so Zen 4 runs it too. */
#define OXO_FULL_TILE_PLAIN 1
#include "../gemm_vec_template.h"
#undef OXO_FULL_TILE_PLAIN
#include "../direct_vec_template.h"
#include "../direct_fv_template.h"
#include "../dw_vec_template.h"
/* the wide set: 6 rows x 4 zmm (6 x 64), for GEMMs of 64 or 128 columns with B packed (NHWC with
 * F = 64 or 128, see oxo_gemm_run), which the 8 x 48 grid cuts into 48 + 16 or 48 + 48 + 32
 * columns, the last tile of 1 or 2 vectors short of broadcasts' worth of FMAs. Same FMA chains
 * per element as the 8 x 48 tile. C stored transposed goes through the buffer (never chosen) */
#define OXO_TILE_MR 6
#define OXO_TILE_NV 4
#define OXO_TILE_NO_TSTORE
#undef OXO_NAME
#define OXO_NAME(x) oxo_f32_##x##__avx512w
#include "../gemm_vec_template.h"

/* the tall set: GEMMs at most one vector wide (NHWC with F <= 16, maps of <= 16 pixels), 16
 * rows x 1 zmm, 16 accumulators: the 8 x 48 tile would keep only 8 FMA chains there, each
 * with a broadcast load of its own */
#define OXO_TILE_MR 16
#define OXO_TILE_NV 1
#undef OXO_NAME
#define OXO_NAME(x) oxo_f32_##x##__avx512t
#include "../gemm_vec_template.h"
#include "../vec_undef.h"

/* ---- f32 pairs of K: GEMMs at most 24 columns wide whose A is contiguous along K --------
 * (NHWC with F <= 24: y (pixels x F) = x (pixels x C) @ W^T.) A zmm tile there is 1.5 vectors
 * wide, its second vector masked to 8 lanes (a quarter of the FMA lanes idle), and the tall
 * tile (16 rows x 1 vector) loads a broadcast per FMA. Here B's rows come in pairs: row h of
 * the packed block holds B[2h + e, j] at lane 2j + e (oxo_pack_pairs_f32, pack.c), and each
 * step broadcasts two neighbouring elements of a row of A, A[i, 2h] and A[i, 2h + 1], as one
 * 64-bit pair: a vector covers 8 columns x 2 steps of K with every lane useful, 3 vectors 24
 * columns. Tiles: 8 rows x 3 vectors (9-24 columns: 24 accumulators) and 16 x 1 (1-8
 * columns: 16), one B vector per 8 columns and 1 broadcast.
 * Each element's sum is two FMA chains, over its even and its odd k, added at the end of the
 * block (even + odd; then bias and activation on the last block). A block that continues
 * C (OXO_TILE_ACCUM) starts the even chain from C's value; with OXO_TILE_ADDC, C is added to
 * the block's sum (even + odd). An odd K's last step is an FMA
 * under the even lanes' mask (nothing past A's row is read). */
static inline __attribute__((always_inline)) void
oxo_f32_gemm_pairs_tile(const oxo_tile *t, const int MR, const int NV)
{
    const char *a = (const char *)t->a;
    const float *b = (const float *)t->b;
    float *c = (float *)t->c;
    const ptrdiff_t r1 = t->rs_a * (ptrdiff_t)sizeof(float), rs_b = t->rs_b, rs_c = t->rs_c;
    const size_t k = t->k, n = t->n;
    const __mmask16 even = 0x5555;
    __m512 acc[16][3];
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        OXO_UNROLL for (int v = 0; v < NV; v++) {
            acc[i][v] = _mm512_setzero_ps();
            if ((t->flags & OXO_TILE_ACCUM) && n > (size_t)v * 8) { /* C's columns 8v.. into the even lanes */
                const size_t cols = n - (size_t)v * 8 < 8 ? n - (size_t)v * 8 : 8;
                const __m512 cv = _mm512_maskz_loadu_ps((__mmask16)((1u << cols) - 1), c + i * rs_c + v * 8);
                acc[i][v] = _mm512_maskz_expand_ps(even, cv);
            }
        }
    }
    for (size_t h = 0; h < k / 2; h++) {
        __m512 bv[3];
        OXO_UNROLL for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + v * 16);
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            double pair;
            memcpy(&pair, a + i * r1 + (ptrdiff_t)(2 * h * sizeof(float)), sizeof pair);
            const __m512 ai = _mm512_castpd_ps(_mm512_set1_pd(pair));
            OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        b += rs_b;
    }
    if (k & 1) {
        __m512 bv[3];
        OXO_UNROLL for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + v * 16);
        OXO_UNROLL for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(*(const float *)(a + i * r1 + (ptrdiff_t)((k - 1) * sizeof(float))));
            OXO_UNROLL for (int v = 0; v < NV; v++) acc[i][v] = _mm512_mask3_fmadd_ps(ai, bv[v], acc[i][v], even);
        }
    }
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __mmask16 m0 = (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1);
    const __mmask16 m1 = (__mmask16)(n > 16 ? (1u << (n - 16)) - 1 : 0);
    const float *bias = (const float *)t->bias;
    OXO_UNROLL for (int i = 0; i < MR; i++) {
        /* columns 0-15 (even + odd lanes of the first two vectors), then 16-23 */
        __m512 o0, o1 = _mm512_setzero_ps();
        if (NV >= 2) {
            o0 = _mm512_add_ps(_mm512_permutex2var_ps(acc[i][0], ev, acc[i][1]), _mm512_permutex2var_ps(acc[i][0], od, acc[i][1]));
        } else {
            o0 = _mm512_add_ps(_mm512_permutexvar_ps(ev, acc[i][0]), _mm512_permutexvar_ps(od, acc[i][0]));
        }
        if (NV == 3) o1 = _mm512_add_ps(_mm512_permutexvar_ps(ev, acc[i][2]), _mm512_permutexvar_ps(od, acc[i][2]));
        if (t->flags & OXO_TILE_ADDC) {
            o0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c + i * rs_c), o0);
            if (NV == 3) o1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + i * rs_c + 16), o1);
        }
        if (t->flags & OXO_TILE_FINAL) {
            if (t->bias_mode == OXO_BIAS_ROW) {
                o0 = _mm512_add_ps(o0, _mm512_set1_ps(bias[i]));
                o1 = _mm512_add_ps(o1, _mm512_set1_ps(bias[i]));
            } else if (t->bias_mode == OXO_BIAS_COL) {
                o0 = _mm512_add_ps(o0, _mm512_maskz_loadu_ps(m0, bias));
                if (NV == 3) o1 = _mm512_add_ps(o1, _mm512_maskz_loadu_ps(m1, bias + 16));
            }
            o0 = oxo_f32_activate__avx512(o0, t->act);
            o1 = oxo_f32_activate__avx512(o1, t->act);
        }
        _mm512_mask_storeu_ps(c + i * rs_c, m0, o0);
        if (NV == 3) _mm512_mask_storeu_ps(c + i * rs_c + 16, m1, o1);
    }
}

/* instances (m, vectors): up to 8 rows of 1-3 vectors, 16 of 1; one entry for both sets */
#define OXO_PAIRS_(X) X(1, 1) X(1, 2) X(1, 3) X(2, 1) X(2, 2) X(2, 3) X(3, 1) X(3, 2) X(3, 3) \
    X(4, 1) X(4, 2) X(4, 3) X(5, 1) X(5, 2) X(5, 3) X(6, 1) X(6, 2) X(6, 3) X(7, 1) X(7, 2) X(7, 3) \
    X(8, 1) X(8, 2) X(8, 3) X(9, 1) X(10, 1) X(11, 1) X(12, 1) X(13, 1) X(14, 1) X(15, 1) X(16, 1)
#define OXO_PAIRS_INST_(M, NV) \
    static __attribute__((noinline)) void oxo_f32_gemm_pairs_##M##x##NV(const oxo_tile *t) { oxo_f32_gemm_pairs_tile(t, M, NV); }
#define OXO_PAIRS_CASE_(M, NV) case (M) * 8 + (NV): oxo_f32_gemm_pairs_##M##x##NV(t); break;
OXO_PAIRS_(OXO_PAIRS_INST_)
static void oxo_f32_gemm_pairs__avx512(const oxo_tile *t)
{
    if (t->m == 0 || t->n == 0 || t->m > 16 || t->n > 24) return;
    switch ((int)t->m * 8 + (int)((t->n + 7) / 8)) {
    OXO_PAIRS_(OXO_PAIRS_CASE_)
    default: break; /* no such instance */
    }
}
#undef OXO_PAIRS_VECS_
#undef OXO_PAIRS_
#undef OXO_PAIRS_INST_
#undef OXO_PAIRS_CASE_

/* ---- f64 ---- */
#define OXO_T double
#define OXO_V __m512d
#define OXO_L 8
#define OXO_M __mmask8
#define OXO_MASK(n) ((__mmask8)(0xFFu >> (8 - (n))))
#define OXO_LOAD(p) _mm512_loadu_pd(p)
#define OXO_LOADM(m, p) _mm512_maskz_loadu_pd(m, p)
#define OXO_STORE(p, v) _mm512_storeu_pd(p, v)
#define OXO_STOREM(p, m, v) _mm512_mask_storeu_pd(p, m, v)
#define OXO_SET1(x) _mm512_set1_pd(x)
#define OXO_ZERO() _mm512_setzero_pd()
#define OXO_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define OXO_ADD(a, b) _mm512_add_pd(a, b)
#define OXO_MAX(a, b) _mm512_max_pd(a, b)
#define OXO_MIN(a, b) _mm512_min_pd(a, b)
#define OXO_HSUM(v) _mm512_reduce_add_pd(v)
#define OXO_NAME(x) oxo_f64_##x##__avx512
#define OXO_MASKBITS(b) ((__mmask8)(b))
#define OXO_LOADA(p) _mm512_load_pd(p)
#include "../gemm_vec_template.h"
#include "../direct_vec_template.h"
#include "../direct_fv_template.h"
#include "../dw_vec_template.h"

static float oxo_f64_fma_probe_as_f32__avx512(long iters) { return oxo_f64_fma_probe__avx512(iters); }
#include "../vec_undef.h"

/* ---- f32 in ymm: the narrow set --------------------------------------------------------
 * For GEMMs 21-24 columns wide (NHWC with F = 24), where a zmm tile is one vector and a
 * dot-product tail: 8 rows x 3 ymm (8 x 24), 24 accumulators; AVX-512VL gives the masks and
 * the 32 registers. On Zen 4 a ymm FMA is half a zmm one, so full ymm lanes run at the zmm
 * peak. The tile is the zmm set's (OXO_MR x OXO_NV vectors); measured in oxo_gemm_run. */
#include "../vec_f32x8.h"
#define OXO_M __mmask8
#define OXO_MASK(n) ((__mmask8)(0xFFu >> (8 - (n))))
#define OXO_LOADM(m, p) _mm256_maskz_loadu_ps(m, p)
#define OXO_STOREM(p, m, v) _mm256_mask_storeu_ps(p, m, v)
#define OXO_NAME(x) oxo_f32_##x##__avx512y
#include "../gemm_vec_template.h"

static const oxo_kernels oxo_f32_kernels_avx512y = {
    "f32-gemm-8x24-avx512y", OXO_MR, OXO_NV * 8, 8, oxo_f32_gemm__avx512y, oxo_f32_dot__avx512y, 4, 4,
    oxo_f32_fma_probe__avx512y, NULL, 0, 0, NULL, NULL};

static const oxo_kernels oxo_f32_kernels_avx512w = {
    "f32-gemm-6x64-avx512", 6, 64, 16, oxo_f32_gemm__avx512w, oxo_f32_dot__avx512w, 4, 4,
    oxo_f32_fma_probe__avx512w, NULL, 0, 0, NULL, NULL};

static const oxo_kernels oxo_f32_kernels_avx512t = {
    "f32-gemm-16x16-avx512", 16, 16, 16, oxo_f32_gemm__avx512t, oxo_f32_dot__avx512t, 4, 4,
    oxo_f32_fma_probe__avx512t, NULL, 0, 0, NULL, NULL};

/* the pairs sets: 8 rows x 24 columns and 16 x 8, a vector 8 columns (x 2 steps of K), B packed
 * in pairs of rows (see oxo_f32_gemm_pairs_tile); no dot kernel. The wide set's `pairs` is the
 * narrow one (oxo_gemm_run takes the narrow one for N <= 8). */
static const oxo_kernels oxo_f32_kernels_avx512p1 = {
    "f32-gemm-16x8-pairs-avx512", 16, 8, 8, oxo_f32_gemm_pairs__avx512, NULL, 0, 0,
    oxo_f32_fma_probe__avx512t, NULL, 0, 0, NULL, NULL};
static const oxo_kernels oxo_f32_kernels_avx512p = {
    "f32-gemm-8x24-pairs-avx512", 8, 24, 8, oxo_f32_gemm_pairs__avx512, NULL, 0, 0,
    oxo_f32_fma_probe__avx512t, NULL, 0, 0, NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, &oxo_f32_kernels_avx512p1};

const oxo_kernels oxo_f32_kernels_avx512 = {
    "f32-gemm-8x48-avx512", OXO_MR, OXO_NV * 16, 16, oxo_f32_gemm__avx512, oxo_f32_dot__avx512, 4, 4, oxo_f32_fma_probe__avx512,
    oxo_f32_direct__avx512, OXO_DIRECT_MR, OXO_DIRECT_NV, &oxo_f32_kernels_avx512y, oxo_f32_dw__avx512,
    oxo_f32_direct_fv__avx512, OXO_FV_NP, OXO_FV_NV, oxo_f32_transpose_rows__avx512, &oxo_f32_kernels_avx512t,
    oxo_f32_phase_row2__avx512, &oxo_f32_kernels_avx512p, &oxo_f32_kernels_avx512w};
const oxo_kernels oxo_f64_kernels_avx512 = {
    "f64-gemm-8x24-avx512", OXO_MR, OXO_NV * 8, 8, oxo_f64_gemm__avx512, oxo_f64_dot__avx512, 4, 4, oxo_f64_fma_probe_as_f32__avx512,
    oxo_f64_direct__avx512, OXO_DIRECT_MR, OXO_DIRECT_NV, NULL, oxo_f64_dw__avx512,
    oxo_f64_direct_fv__avx512, OXO_FV_NP, OXO_FV_NV};
